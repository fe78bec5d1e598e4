"""The on-disk cache of generated image datasets (balls, coloured digits): one npz per split (no
pickles) and settings.json, written last, with what generated them and each file's sha256."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mdcrl.data.base import SPLITS, Split
from mdcrl.io import read_json, sha256_file

SETTINGS_FILE = "settings.json"


def cache_settings(cache_format: str, ds, seed: int) -> dict:
    """Everything that determines a generated image dataset (its cache's record): the format, the
    seed and the dataset settings, resolved."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(ds, resolve=True) if not isinstance(ds, dict) else dict(ds)
    return {"format": cache_format, "seed": int(seed), "dataset": plain}


def save_image_cache(splits: dict[str, Split], directory: Path, settings: dict, what: str, error: type) -> None:
    """Write the splits and their settings. Refuses (``error``) to replace a cache made with other
    settings; the same settings already there: nothing to do."""
    directory = Path(directory)
    existing = directory / SETTINGS_FILE
    if existing.exists():
        old = read_json(existing)
        if {k: v for k, v in old.items() if k != "files"} != settings:
            raise error(
                f"{directory} already holds a {what} dataset made with other settings; nothing was overwritten. "
                "Set datamodule.data_dir to another folder."
            )
        return
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, split in splits.items():
        path = directory / f"{name}.npz"
        np.savez(path, images=split.x, z=split.z, domain=split.domain)
        files[name] = sha256_file(path)
    existing.write_text(json.dumps({**settings, "files": files}, indent=2))


def read_image_cache(directory: Path, what: str, error: type) -> tuple[dict, dict[str, Split]]:
    """(the settings that generated the cache, its splits), each split checked against its checksum."""
    directory = Path(directory)
    meta_path = directory / SETTINGS_FILE
    if not meta_path.exists():
        raise error(
            f"datamodule.load_dataset=True but {directory} holds no cached {what} dataset (no {SETTINGS_FILE}); "
            "generate one with datamodule.save_dataset=True datamodule.load_dataset=False."
        )
    try:
        saved = read_json(meta_path)
    except (OSError, ValueError) as err:
        raise error(f"{meta_path} is corrupt ({err}); delete {directory} and regenerate.") from err
    files = saved.pop("files", {})
    splits = {}
    for name in SPLITS:
        path = directory / f"{name}.npz"
        if not path.exists() or sha256_file(path) != files.get(name):
            raise error(f"{path} is missing or corrupt (checksum mismatch); delete {directory} and regenerate.")
        with np.load(path, allow_pickle=False) as f:
            splits[name] = Split(f["images"], f["z"], f["domain"])
    return saved, splits
