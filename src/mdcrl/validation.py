"""Checks of a composed config, run before any data is generated or any file is written.

Each error names the setting (as a Hydra override path) and how to fix it.
"""

from __future__ import annotations

from pathlib import Path

import math

import torch

from mdcrl.data.mixing import SPLITS, mixing_dims
from mdcrl.penalties import LOSS_TRANSFORMS, PENALTY_NAMES, REDUCTIONS


class ConfigError(ValueError):
    """A setting that cannot work; the message names the override to change."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _require_samples_per_domain(num_samples, k: int, min_per_domain: int) -> None:
    for name in SPLITS:
        n = int(num_samples[name])
        _require(
            n // k >= min_per_domain,
            f"datamodule.dataset.num_samples.{name}={n} gives {n // k} samples per domain for {k} domains; "
            f"need at least {min_per_domain} per domain (num_samples.{name} >= {min_per_domain * k}).",
        )


def validate_mixing_dataset(ds, min_per_domain: int) -> None:
    p = "datamodule.dataset"
    _require(int(ds.z_dim) >= 2, f"{p}.z_dim={ds.z_dim} must be >= 2 (one stable and one spurious coordinate).")
    z_dim, d_s, x_dim = mixing_dims(ds)
    _require(
        1 <= d_s < z_dim,
        f"{p}.z_dim_invariant={d_s} must be between 1 and z_dim - 1 = {z_dim - 1} "
        f"(z_dim={z_dim}); set {p}.z_dim_invariant=null for floor(z_dim/2).",
    )
    k = int(ds.num_domains)
    _require(k >= 2, f"{p}.num_domains={k} must be >= 2: invariance is defined across domains.")
    if ds.linear:
        _require(
            x_dim >= z_dim,
            f"{p}.x_dim={x_dim} < z_dim={z_dim}: linear mixing z -> x would not be injective; "
            f"use {p}.x_dim >= {z_dim} (or null for 2*z_dim).",
        )
    _require_samples_per_domain(ds.num_samples, k, min_per_domain)
    low, high = ds.domain_dist_ranges
    _require(low < high, f"{p}.domain_dist_ranges=[{low}, {high}] is inverted or empty; use [low, high] with low < high.")
    a, b = ds.invariant_dist_params
    _require(a < b, f"{p}.invariant_dist_params=[{a}, {b}] is inverted or empty; use [a, b] with a < b.")
    _require(0.0 <= float(ds.corr_prob) <= 1.0, f"{p}.corr_prob={ds.corr_prob} must be a probability in [0, 1].")
    if not ds.linear:
        _require(
            ds.non_linearity == "polynomial",
            f"{p}.non_linearity={ds.non_linearity!r} is unknown; the supported value is 'polynomial'.",
        )
        _require(
            int(ds.polynomial_degree) >= 1,
            f"{p}.polynomial_degree={ds.polynomial_degree} must be >= 1 (1 = affine, 2 = quadratic, ...).",
        )


def validate_balls_dataset(dm, min_per_domain: int) -> None:
    p = "datamodule.dataset"
    ds = dm.dataset
    r = float(ds.ball_size)
    _require(0.0 < r < 0.5, f"{p}.ball_size={ds.ball_size} must be in (0, 0.5) (a radius as a fraction of the image side).")
    k = int(ds.num_domains)
    _require(k >= 2, f"{p}.num_domains={k} must be >= 2: invariance is defined across domains.")
    n_inv, n_sp = int(ds.n_balls_invariant), int(ds.n_balls_spurious)
    _require(n_inv >= 1 and n_sp >= 1, f"{p}.n_balls_invariant={n_inv} and n_balls_spurious={n_sp} must both be >= 1.")
    _require(n_inv + n_sp <= 8, f"{p}: at most 8 balls in all (one fixed colour each), got {n_inv + n_sp}.")
    low, high = list(ds.invariant_low), list(ds.invariant_high)
    _require(len(low) == 2 and len(high) == 2, f"{p}.invariant_low/invariant_high must be [x, y] pairs, got {low} and {high}.")
    _require(
        all(0.0 <= a < b <= 1.0 for a, b in zip(low, high)),
        f"{p}.invariant_low={low} must be below invariant_high={high} in both coordinates, inside [0, 1].",
    )
    # Balls of radius r fit side by side in a square of side s when ceil(sqrt(n)) * 2r <= s.
    need_inv = 2 * r * math.ceil(math.sqrt(n_inv))
    _require(
        min(b - a for a, b in zip(low, high)) >= need_inv,
        f"{p}: the invariant range {low}-{high} is too small to hold {n_inv} balls of ball_size={r} without overlap "
        f"(each side needs >= {need_inv:.3f}); widen it or use smaller balls.",
    )
    box_min, box_max = list(ds.domain_box_size)
    need_sp = 2 * r * math.ceil(math.sqrt(n_sp))
    _require(
        need_sp <= box_min <= box_max <= 1.0,
        f"{p}.domain_box_size={[box_min, box_max]}: the spurious boxes are too small to hold {n_sp} balls of "
        f"ball_size={r} without overlap (need {need_sp:.3f} <= min <= max <= 1).",
    )
    _require(0.0 <= float(ds.corr_prob) <= 1.0, f"{p}.corr_prob={ds.corr_prob} must be a probability in [0, 1].")
    _require_samples_per_domain(ds.num_samples, k, min_per_domain)
    _require(not (dm.save_dataset and dm.load_dataset), "datamodule.save_dataset and datamodule.load_dataset cannot both be True.")


def validate_model(model) -> None:
    p = "model"
    criteria = dict(model.penalty_criterion)
    unknown = sorted(set(criteria) - set(PENALTY_NAMES))
    _require(not unknown, f"{p}.penalty_criterion has unknown penalties {unknown}; known: {list(PENALTY_NAMES)}.")
    for name, weight in criteria.items():
        _require(weight is not None and float(weight) >= 0, f"{p}.penalty_criterion.{name}={weight} must be >= 0.")
    for key in ("penalty_weight", "hinge_loss_weight"):
        _require(float(model[key]) >= 0, f"{p}.{key}={model[key]} must be >= 0.")
    _require(int(model.minmax_loss.top_k) >= 1, f"{p}.minmax_loss.top_k={model.minmax_loss.top_k} must be >= 1.")
    _require(
        model.minmax_loss.loss_transform in LOSS_TRANSFORMS,
        f"{p}.minmax_loss.loss_transform={model.minmax_loss.loss_transform!r} must be one of {list(LOSS_TRANSFORMS)}.",
    )
    mmd = model.mmd_loss
    _require(
        mmd.fix_sigma is None or float(mmd.fix_sigma) > 0,
        f"{p}.mmd_loss.fix_sigma={mmd.fix_sigma} must be > 0, or null for the mean-distance bandwidth.",
    )
    _require(int(mmd.kernel_number) >= 1, f"{p}.mmd_loss.kernel_number={mmd.kernel_number} must be >= 1.")
    _require(float(mmd.kernel_multiplier) > 0, f"{p}.mmd_loss.kernel_multiplier={mmd.kernel_multiplier} must be > 0.")
    _require(float(model.optimizer.lr) > 0, f"{p}.optimizer.lr={model.optimizer.lr} must be > 0.")
    reduction = model.get("penalty_reduction", "mean")
    _require(reduction in REDUCTIONS, f"{p}.penalty_reduction={reduction!r} must be one of {list(REDUCTIONS)}.")
    restarts = model.get("restarts", 1)
    _require(
        isinstance(restarts, int) and not isinstance(restarts, bool) and restarts >= 1,
        f"{p}.restarts={restarts!r} must be an integer >= 1 (copies trained at once; the one with the lowest val/selection is kept).",
    )
    _require(isinstance(model.get("whiten", False), bool), f"{p}.whiten={model.get('whiten')!r} must be true or false.")
    scheduler = model.get("scheduler") or {}
    _require(
        scheduler.get("name", "plateau") in ("plateau", "cosine"),
        f"{p}.scheduler.name={scheduler.get('name')!r} must be plateau or cosine.",
    )


def validate_trainer(trainer) -> None:
    accelerator = str(trainer.get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda"):
        _require(
            torch.cuda.is_available(),
            f"trainer.accelerator={accelerator!r} but no CUDA GPU is visible on this machine; "
            "run with trainer.accelerator=cpu (or trainer.accelerator=auto).",
        )
    _require(int(trainer.get("max_epochs", 1)) >= 1, f"trainer.max_epochs={trainer.get('max_epochs')} must be >= 1.")


def validate_checkpoint_path(ckpt_path) -> None:
    """Only local checkpoint files: Lightning fetches a URL and unpickles it with weights_only=False,
    so a remote checkpoint could run code on this machine."""
    if ckpt_path in (None, ""):
        return
    _require(
        "://" not in str(ckpt_path),
        f"ckpt_path={ckpt_path} is a URL; only local checkpoint files are loaded (a downloaded checkpoint "
        "is unpickled and can run code). Download it yourself, check where it comes from, and pass the local path.",
    )
    _require(Path(str(ckpt_path)).is_file(), f"ckpt_path={ckpt_path} is not a file; pass an existing .ckpt file or ckpt_path=null.")


def validate_config(cfg) -> None:
    validate_checkpoint_path(cfg.get("ckpt_path"))
    validate_model(cfg.model)
    validate_trainer(cfg.trainer)
    _require(int(cfg.datamodule.batch_size) >= 1, f"datamodule.batch_size={cfg.datamodule.batch_size} must be >= 1.")
    if cfg.datamodule.name == "mixing":
        validate_mixing_dataset(cfg.datamodule.dataset, max(2, int(cfg.model.minmax_loss.top_k)))
    if cfg.datamodule.name == "md_balls":
        validate_balls_dataset(cfg.datamodule, max(2, int(cfg.model.minmax_loss.top_k)))
    if cfg.datamodule.name == "from_file":
        dm = cfg.datamodule
        _require(dm.get("path") not in (None, ""), "datamodule=from_file needs datamodule.path=<your .npz, .csv or .parquet file>.")
        for key in ("valid_fraction", "test_fraction"):
            _require(0.0 <= float(dm[key]) < 0.5, f"datamodule.{key}={dm[key]} must be in [0, 0.5).")
    if cfg.datamodule.name.endswith("_encoded"):
        _require(
            cfg.get("run_path") not in (None, ""),
            f"datamodule={cfg.datamodule.name} needs run_path=<a stage-1 run directory> "
            "(a run made with model.save_encoded_data=True).",
        )
        low, high = cfg.datamodule.rescale_range
        _require(low < high, f"datamodule.rescale_range=[{low}, {high}] must have low < high.")
