"""Encoded datasets of the two-stage pipeline (docs/design.md, Two stages).

Stage 1 writes, in its run directory:
  encoded/{train,valid,test}.safetensors   z_hat, z, domain (no pickles: safetensors loads no code)
  encoded/metadata.json                    format, kind, dimensions, domains, the generating config,
                                           and the sha256 of each split file; written last, so a
                                           stage 1 that died while encoding has no metadata.json
Stage 2 (run_path=...) reads them, checks them, and never writes into the stage-1 directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from mdcrl.data.base import SPLITS, MultiDomainData, Split
from mdcrl.errors import EncodedDataError
from mdcrl.io import file_mode, read_json, sha256_file, write_json_atomic

FORMAT = "mdcrl-encoded-v1"
ENCODED_DIR = "encoded"


def save_encoded(run_dir: Path, encodings: dict[str, np.ndarray], data: MultiDomainData, dataset_config: dict) -> Path:
    """Write the stage-1 encodings of every split, then their metadata (the completion marker)."""
    out = Path(run_dir) / ENCODED_DIR
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in SPLITS:
        split = data.splits[name]
        path = out / f"{name}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file(
            {"z_hat": np.ascontiguousarray(encodings[name], dtype=np.float32), "z": split.z, "domain": split.domain},
            str(tmp),
        )
        os.chmod(tmp, file_mode())  # safetensors writes 0600; results get the umask's mode like any other file
        tmp.replace(path)
        files[name] = {"file": path.name, "num_samples": len(split), "sha256": sha256_file(path)}
    metadata = {
        "format": FORMAT,
        "kind": data.metadata.get("kind"),
        "num_domains": data.num_domains,
        "z_dim_invariant_true": data.z_dim_stable_true,
        "z_dim_true": data.z_dim_true,
        "z_hat_dim": int(encodings["train"].shape[1]),
        "splits": files,
        "dataset": dataset_config,
    }
    if "source" in data.metadata:  # coloured digits: which grey digits stage 1 was made from
        metadata["source"] = data.metadata["source"]
    write_json_atomic(out / "metadata.json", metadata)
    return out


def load_encoded(run_path: str | Path, expected_kind: str) -> tuple[MultiDomainData, dict]:
    """Read and check a stage-1 run's encodings. Raises EncodedDataError naming the path and the problem."""
    run_path = Path(run_path).expanduser()
    if not run_path.is_dir():
        raise EncodedDataError(f"run_path={str(run_path)!r} does not exist or is not a directory; pass a stage-1 run directory.")
    meta_path = run_path / ENCODED_DIR / "metadata.json"
    if not meta_path.exists():
        status = _run_status(run_path)
        if status == "finished":
            raise EncodedDataError(
                f"run_path={str(run_path)!r} is not a stage-1 run: it has no {ENCODED_DIR}/metadata.json "
                "(run stage 1 with model.save_encoded_data=True)."
            )
        raise EncodedDataError(
            f"run_path={str(run_path)!r} is incomplete: no {ENCODED_DIR}/metadata.json and run status {status!r} "
            "(stage 1 was interrupted or is still running); rerun stage 1 with model.save_encoded_data=True."
        )
    try:
        metadata = read_json(meta_path)
    except (OSError, ValueError) as err:
        raise EncodedDataError(f"{meta_path} is corrupt ({err}); rerun stage 1.") from err
    if metadata.get("format") != FORMAT:
        raise EncodedDataError(f"{meta_path} has format {metadata.get('format')!r}, expected {FORMAT!r}.")
    if not isinstance(metadata, dict):
        raise EncodedDataError(f"{meta_path} is corrupt (not a JSON object); rerun stage 1.")
    if metadata.get("kind") != expected_kind:
        raise EncodedDataError(
            f"run_path={str(run_path)!r} holds encodings of a {metadata.get('kind')!r} dataset, but this datamodule "
            f"expects {expected_kind!r}; point run_path at a stage-1 run of the same dataset."
        )
    _check_metadata(metadata, meta_path)
    splits = {}
    for name in SPLITS:
        entry = metadata["splits"].get(name)
        path = run_path / ENCODED_DIR / (entry or {}).get("file", f"{name}.safetensors")
        if entry is None or not path.exists():
            raise EncodedDataError(f"{path} is missing: the stage-1 encoding of run_path={str(run_path)!r} is incomplete.")
        if sha256_file(path) != entry["sha256"]:
            raise EncodedDataError(f"{path} is corrupt (its checksum does not match {meta_path}); rerun stage 1.")
        try:
            arrays = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise EncodedDataError(f"{path} is corrupt ({err}); rerun stage 1.") from err
        missing = {"z_hat", "z", "domain"} - set(arrays)
        if missing:
            raise EncodedDataError(f"{path} lacks the arrays {sorted(missing)}; rerun stage 1.")
        z_hat, domain = arrays["z_hat"], arrays["domain"]
        if z_hat.ndim != 2 or len(z_hat) != len(domain) or len(arrays["z"]) != len(domain) or arrays["z"].ndim != 2:
            raise EncodedDataError(f"{path} holds arrays of inconsistent shapes; rerun stage 1.")
        recorded = {
            "z_hat_dim": (metadata.get("z_hat_dim"), z_hat.shape[1]),
            "z_dim_true": (metadata["z_dim_true"], arrays["z"].shape[1]),
            f"splits.{name}.num_samples": (metadata["splits"][name].get("num_samples"), len(domain)),
        }
        wrong = {key: pair for key, pair in recorded.items() if pair[0] is not None and pair[0] != pair[1]}
        if wrong or metadata["z_dim_invariant_true"] > metadata["z_dim_true"]:
            detail = ", ".join(f"{key}={said} but the arrays have {has}" for key, (said, has) in wrong.items())
            raise EncodedDataError(
                f"{meta_path} disagrees with {path.name} ({detail or 'z_dim_invariant_true > z_dim_true'}); "
                "the file was edited or is corrupt: rerun stage 1."
            )
        if not np.isfinite(z_hat).all():
            raise EncodedDataError(
                f"{path} holds {int((~np.isfinite(z_hat)).sum())} NaN/inf values in z_hat; the stage-1 encoder "
                "diverged or the file was edited: rerun stage 1."
            )
        if domain.size and (domain.min() < 0 or domain.max() >= metadata["num_domains"]):
            raise EncodedDataError(f"{path} has domain labels outside 0..{metadata['num_domains'] - 1}; rerun stage 1.")
        splits[name] = Split(z_hat, arrays["z"], domain.astype(np.int64))
    info = {"kind": expected_kind + "_encoded", **({"source": metadata["source"]} if "source" in metadata else {})}
    data = MultiDomainData(splits, int(metadata["num_domains"]), int(metadata["z_dim_invariant_true"]), info)
    return data, metadata


def _check_metadata(metadata: dict, meta_path: Path) -> None:
    """The fields stage 2 relies on, with their types (an edited file gets a message, not a crash)."""
    for key, minimum in (("num_domains", 2), ("z_dim_invariant_true", 0), ("z_dim_true", 0)):
        value = metadata.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise EncodedDataError(
                f"{meta_path}: {key}={value!r} must be a whole number >= {minimum}; the file was edited or is "
                "corrupt: rerun stage 1."
            )
    splits = metadata.get("splits")
    if not isinstance(splits, dict) or not all(
        isinstance(splits.get(name), dict)
        and isinstance(splits[name].get("sha256"), str)
        and isinstance(splits[name].get("file"), str)
        and "/" not in splits[name]["file"]
        for name in SPLITS
    ):
        raise EncodedDataError(
            f"{meta_path} lacks a valid 'splits' entry (file and sha256 of each of {list(SPLITS)}); the file was "
            "edited or is corrupt: rerun stage 1."
        )


def rescale_to_range(data: MultiDomainData, low: float, high: float) -> MultiDomainData:
    """Affinely map each z_hat coordinate so that the train split spans [low, high]; valid and test
    use the train split's statistics (no peeking)."""
    train = data.splits["train"].x
    lo, hi = train.min(axis=0), train.max(axis=0)
    scale = (high - low) / np.maximum(hi - lo, 1e-12)
    splits = {name: Split(((s.x - lo) * scale + low).astype(np.float32), s.z, s.domain) for name, s in data.splits.items()}
    return MultiDomainData(splits, data.num_domains, data.z_dim_stable_true, data.metadata)


def standardize_encodings(data: MultiDomainData) -> MultiDomainData:
    """Each z_hat coordinate to mean 0 and std 1 on the train split (valid and test with the train
    split's statistics); a constant coordinate is only centred."""
    train = data.splits["train"].x
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    splits = {name: Split(((s.x - mean) / std).astype(np.float32), s.z, s.domain) for name, s in data.splits.items()}
    return MultiDomainData(splits, data.num_domains, data.z_dim_stable_true, data.metadata)


def _run_status(run_path: Path) -> str:
    try:
        return read_json(run_path / "run.json").get("status", "unknown")
    except (OSError, ValueError, AttributeError):
        return "unknown"
