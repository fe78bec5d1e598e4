"""A user's own multi-domain data: arrays or a file (npz, CSV, Parquet) -> checked, split, standardised.

Shared by ``datamodule=from_file`` and by :class:`mdcrl.InvariantAutoencoder`, so that the same data
and seed give the same splits, the same training and the same metrics through either door.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdcrl.data.base import SPLITS, MultiDomainData, Split
from mdcrl.errors import DataInputError


def finite_matrix(x) -> np.ndarray:
    """X as a float32 (n, p) array of finite numbers, or a DataInputError saying what is wrong."""
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataInputError(f"X must be numeric ({err}); convert or drop the non-numeric columns.") from err
    if x.ndim != 2:
        raise DataInputError(f"X must be a 2-d array (samples x features), got shape {x.shape}.")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataInputError(f"X has shape {x.shape}: no rows or no feature columns to train on.")
    bad = ~np.isfinite(x)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise DataInputError(
            f"X has {int(bad.sum())} NaN/inf values (first at row {rows[0]}, column {cols[0]}); "
            "impute or drop those rows before fitting."
        )
    return x.astype(np.float32)


def check_arrays(x, domains, z=None, min_per_domain: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Validate and convert: X (n, p) finite numbers, domains (n,) labels with >= 2 domains and at least
    ``min_per_domain`` samples each, optional ground-truth latents z (n, d).

    Returns float32 X, int64 domain codes 0..k-1, float32 z ((n, 0) when absent) and the domain labels.
    """
    x = finite_matrix(x)
    domains = np.asarray(domains)
    if domains.ndim != 1 or len(domains) != len(x):
        raise DataInputError(f"X has {len(x)} rows but domains has shape {domains.shape}; pass one domain label per row.")
    missing = np.flatnonzero([_is_missing(d) for d in domains]) if domains.dtype.kind in "fcO" else []
    if len(missing):
        raise DataInputError(
            f"{len(missing)} domain labels are missing (NaN/None), first at row {missing[0]}; "
            "give those rows a domain or drop them."
        )
    if domains.dtype.kind == "O":  # mixed Python objects (e.g. 1 and "1") do not sort: compare as text
        domains = domains.astype(str)
    labels, codes = np.unique(domains, return_inverse=True)
    labels = labels.tolist()  # plain Python values (str, int, float) for messages and metadata
    if len(labels) < 2:
        raise DataInputError(f"all rows belong to one domain ({labels}); invariance needs at least 2 domains.")
    counts = np.bincount(codes)
    small = [(labels[i], int(c)) for i, c in enumerate(counts) if c < min_per_domain]
    if small:
        raise DataInputError(
            f"domains {small} have fewer than {min_per_domain} samples (the min-max top_k or the split needs that "
            "many); merge or drop them, or lower top_k."
        )
    if z is None:
        z = np.zeros((len(x), 0))
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) != len(x) or not np.isfinite(z).all():
        raise DataInputError(f"the ground-truth latents must be a finite (n, d) array with n = {len(x)}, got shape {z.shape}.")
    return x, codes.astype(np.int64), z.astype(np.float32), labels


def _is_missing(label) -> bool:
    return label is None or (isinstance(label, (float, np.floating)) and np.isnan(label))


def split_by_domain(codes: np.ndarray, num_domains: int, valid_fraction: float, test_fraction: float, seed: int):
    """Row indices of train/valid/test, stratified by domain, shuffled with ``seed``."""
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in SPLITS}
    for domain in range(num_domains):
        rows = rng.permutation(np.nonzero(codes == domain)[0])
        n_valid = max(1, int(round(valid_fraction * len(rows))))
        n_test = max(1, int(round(test_fraction * len(rows)))) if test_fraction > 0 else 0
        if n_valid + n_test >= len(rows):
            raise DataInputError(
                f"domain {domain} has {len(rows)} rows: too few to hold out {n_valid} for validation and {n_test} for "
                "testing and still train; give it more rows, or lower the valid/test fractions."
            )
        parts["valid"].append(rows[:n_valid])
        parts["test"].append(rows[n_valid : n_valid + n_test])
        parts["train"].append(rows[n_valid + n_test :])
    return {name: np.sort(np.concatenate(p)) for name, p in parts.items()}


def stable_first(z: np.ndarray, stable, z_dim_stable_true: int | None, setting: str, count_setting: str):
    """(z with the columns listed in ``stable`` first, in that order, then the others in theirs; the
    number of stable latents). ``stable`` (indices into z's columns) None: z as given, stable block
    first, with z_dim_stable_true. ``setting``/``count_setting``: the names errors show."""
    if stable is None:
        return z, z_dim_stable_true
    if not z.shape[1]:
        raise DataInputError(f"{setting} lists stable latents, but no ground-truth latents were given.")
    indices = list(np.atleast_1d(np.asarray(stable, dtype=object)))
    if not indices or any(isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) for i in indices):
        raise DataInputError(f"{setting}={list(stable)!r} must be a non-empty list of latent column indices (integers).")
    indices = [int(i) for i in indices]
    bad = [i for i in indices if not 0 <= i < z.shape[1]]
    if bad:
        raise DataInputError(f"{setting} has indices {bad} outside the {z.shape[1]} latent columns (0 to {z.shape[1] - 1}).")
    if len(set(indices)) != len(indices):
        raise DataInputError(f"{setting}={indices} lists a latent twice; list each stable latent once.")
    if z_dim_stable_true is not None and int(z_dim_stable_true) != len(indices):
        raise DataInputError(
            f"{count_setting}={z_dim_stable_true} disagrees with {setting}, which lists {len(indices)} stable latents; "
            f"give only {setting}."
        )
    rest = [i for i in range(z.shape[1]) if i not in indices]
    return z[:, indices + rest], len(indices)


def arrays_to_data(
    x,
    domains,
    z=None,
    z_dim_stable_true: int | None = None,
    stable=None,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    standardize: bool = True,
    seed: int = 0,
    min_per_domain: int = 2,
) -> MultiDomainData:
    """Checked, split (stratified by domain) and standardised (train statistics) user data.

    With test_fraction = 0 the test split is the validation split (nothing is held out twice).
    ``stable``: indices of z's stable columns (stable_first), instead of z_dim_stable_true.
    """
    x, codes, z, labels = check_arrays(x, domains, z, min_per_domain)
    z, z_dim_stable_true = stable_first(z, stable, z_dim_stable_true, "stable", "z_dim_stable_true")
    if z.shape[1] and z_dim_stable_true is None:
        raise DataInputError("ground-truth latents given without z_dim_stable_true (how many leading latents are stable).")
    rows = split_by_domain(codes, len(labels), valid_fraction, test_fraction, seed)
    if test_fraction <= 0:
        rows["test"] = rows["valid"]
    mean = x[rows["train"]].mean(axis=0) if standardize else np.zeros(x.shape[1], np.float32)
    std = x[rows["train"]].std(axis=0) + 1e-8 if standardize else np.ones(x.shape[1], np.float32)
    splits = {name: Split(((x[r] - mean) / std).astype(np.float32), z[r], codes[r]) for name, r in rows.items()}
    metadata = {"kind": "table", "domain_labels": labels, "x_mean": mean.tolist(), "x_std": std.tolist()}
    return MultiDomainData(splits, len(labels), int(z_dim_stable_true or 0), metadata)


def read_table(
    path: str | Path, domain_column: str = "domain", latent_columns=()
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(X, domains, z or None) from an npz (keys: x, <domain_column>, optional z), CSV or Parquet file
    (columns: <domain_column>, the latent columns, every other column is a feature)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataInputError(f"datamodule.path={str(path)!r} does not exist or is not a file.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                if "x" not in f or domain_column not in f:
                    raise DataInputError(
                        f"{path} must hold arrays 'x' and {domain_column!r} (datamodule.domain_column); it has {sorted(f.files)}."
                    )
                return f["x"], f[domain_column], (f["z"] if "z" in f else None)
        import pandas as pd

        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataInputError(f"datamodule.path={str(path)!r}: unknown file type {suffix!r}; use .npz, .csv or .parquet.")
    except DataInputError:
        raise
    except Exception as err:  # pandas/pyarrow/numpy raise many types for an unreadable file
        raise DataInputError(f"datamodule.path={str(path)!r} could not be read: {type(err).__name__}: {err}") from err
    if frame.empty:
        raise DataInputError(f"{path} has no rows (only a header); datamodule.path must point at data.")
    if domain_column not in frame.columns:
        raise DataInputError(
            f"{path} has no domain column {domain_column!r} (datamodule.domain_column); columns: {list(frame.columns)}."
        )
    latent_columns = list(latent_columns or [])
    if domain_column in latent_columns:
        raise DataInputError(
            f"datamodule.latent_columns lists the domain column {domain_column!r} (datamodule.domain_column); "
            "the domain is not a latent: remove it from latent_columns."
        )
    missing = [c for c in latent_columns if c not in frame.columns]
    if missing:
        raise DataInputError(f"{path} lacks the latent columns {missing} (datamodule.latent_columns).")
    features = frame.drop(columns=[domain_column, *latent_columns])
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise DataInputError(
            f"{path} has non-numeric feature columns {non_numeric}; encode or drop them, or list them as the "
            "domain column or latent columns."
        )
    z = frame[latent_columns].to_numpy() if latent_columns else None
    return features.to_numpy(), frame[domain_column].to_numpy(), z
