"""Checks of a composed config, run before any data is generated or any file is written.

Each error names the setting (as a Hydra override path) and how to fix it. First every number is
checked for its type (an integer where a count is meant: 8.5 or "abc" is refused, not truncated),
finiteness and lower bound (NUMBER_SETTINGS); then the settings are checked against each other; then
the memory the data and the model would need is estimated and compared with what the machine has.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from pathlib import Path

from omegaconf import OmegaConf

from mdcrl.data.balls import OVERLAP_REDRAWS
from mdcrl.data.base import SPLITS
from mdcrl.data.mixing import mixing_dims
from mdcrl.data.polynomial import num_monomials
from mdcrl.errors import ConfigError
from mdcrl.settings import (
    ACTIVATION_NAMES,
    INITS,
    LINEAR_FRAMES,
    LOSS_TRANSFORMS,
    PENALTY_NAMES,
    REDUCTIONS,
    split_step_rows,
)

_MISSING = object()
log = logging.getLogger(__name__)

# The model settings that some code reads (settings.RunSettings.from_config); others are typos or
# +added keys that would be silently ignored.
MODEL_KEYS = {
    "z_dim", "z_dim_invariant", "z_dim_invariant_fraction", "restarts", "restart_selection_epochs", "whiten", "init",
    "penalty_weight", "penalty_reduction", "penalty_criterion", "minmax_loss", "mmd_loss", "stddev_loss", "whiten_dims",
    "hinge_loss_weight", "hinge_loss", "optimizer", "scheduler", "save_encoded_data", "autoencoder", "penalty_standardize",
    "warm_start_margin", "warm_start_patience", "restart_agreement",
}  # fmt: skip
TOP_KEYS = {
    "datamodule", "model", "trainer", "callbacks", "logger", "seed", "run_path", "ckpt_path", "print_metrics",
    "nonlinear_probe", "num_threads", "check_memory", "hydra",
}  # fmt: skip


def rows_per_step(cfg) -> tuple[str, int]:
    """The setting that decides how many rows an optimiser step (and its penalties) sees, and that number."""
    step = split_step_rows((cfg.model.get("optimizer") or {}).get("step_batch_size"), cfg.datamodule.batch_size)
    if step is None:
        return "datamodule.batch_size", int(cfg.datamodule.batch_size)
    return "model.optimizer.step_batch_size", step


def warn_suspicious(cfg, per_domain: int) -> None:
    """Settings that run but probably do not do what was meant: one warning line each."""
    unread = sorted({f"model.{k}" for k in cfg.model if k not in MODEL_KEYS} | {k for k in cfg if k not in TOP_KEYS})
    if unread:
        log.warning("no code reads %s (a typo, or a key added with +?); they are ignored", ", ".join(unread))
    weights = {k: float(v) for k, v in (cfg.model.get("penalty_criterion") or {}).items()}
    if not cfg.model.get("save_encoded_data") and float(cfg.model.penalty_weight) > 0 and not any(weights.values()):
        log.warning(
            "model.penalty_weight=%s but every penalty weight in model.penalty_criterion is 0: this trains a plain "
            "autoencoder (set e.g. model.penalty_criterion.minmax=1.0 for an invariance penalty)",
            cfg.model.penalty_weight,
        )
    ds = cfg.datamodule.get("dataset") or {}
    if cfg.datamodule.name == "mixing" and not ds.get("correlated_z") and float(ds.get("corr_prob") or 0) > 0:
        log.warning(
            "datamodule.dataset.corr_prob=%s is ignored: it applies to the dynamic SCM only "
            "(datamodule.dataset.correlated_z=True)",
            ds.corr_prob,
        )
    k = int(ds.get("num_domains") or 0) if cfg.datamodule.name == "mixing" else 0
    setting, rows = rows_per_step(cfg)
    if k and any(weights.values()) and rows < k * per_domain:
        log.warning(
            "%s=%s holds about %.1f rows of each of the %d domains, fewer than the %d each penalty "
            "needs: most batches compare few domains; raise %s to >= %d",
            setting,
            rows,
            rows / k,
            k,
            per_domain,
            setting,
            k * per_domain,
        )


# (override path, kind, lower bound, may be null). kind: int | real | pair (two reals).
# A path that a config does not have (another datamodule) is skipped.
NUMBER_SETTINGS = [
    ("seed", "int", None, False),
    ("datamodule.batch_size", "int", 1, False),
    ("trainer.max_epochs", "int", 0, False),  # 0: the closed form alone (model.init=moment), see validate_config
    ("trainer.gradient_clip_val", "real", 0, True),
    ("model.z_dim", "int", 2, True),
    ("model.z_dim_invariant", "int", 1, True),
    ("model.z_dim_invariant_fraction", "real", 0, True),
    ("model.penalty_weight", "real", 0, False),
    ("model.hinge_loss_weight", "real", 0, False),
    ("model.warm_start_margin", "real", 0, False),
    ("model.warm_start_patience", "int", 1, True),
    ("model.restart_agreement", "real", 0, True),
    ("model.minmax_loss.top_k", "int", 1, False),
    ("model.mmd_loss.fix_sigma", "real", None, True),
    ("model.mmd_loss.kernel_number", "int", 1, False),
    ("model.mmd_loss.kernel_multiplier", "real", None, False),
    ("model.optimizer.lr", "real", None, False),
    ("model.optimizer.weight_decay", "real", 0, True),
    ("model.optimizer.step_batch_size", "int", 1, True),
    ("datamodule.dataset.z_dim", "int", 2, False),
    ("datamodule.dataset.z_dim_invariant", "int", None, True),
    ("datamodule.dataset.x_dim", "int", 1, True),
    ("datamodule.dataset.num_domains", "int", None, False),
    ("datamodule.dataset.num_samples.train", "int", 1, False),
    ("datamodule.dataset.num_samples.valid", "int", 1, False),
    ("datamodule.dataset.num_samples.test", "int", 1, False),
    ("datamodule.dataset.polynomial_degree", "int", None, True),
    ("datamodule.dataset.corr_prob", "real", None, False),
    ("datamodule.dataset.domain_dist_ranges", "pair", None, False),
    ("datamodule.dataset.invariant_dist_params", "pair", None, False),
    ("datamodule.dataset.n_balls_invariant", "int", None, False),
    ("datamodule.dataset.n_balls_spurious", "int", None, False),
    ("datamodule.dataset.ball_size", "real", None, False),
    ("datamodule.dataset.image_size", "int", 8, False),
    ("datamodule.dataset.augment_shift", "int", 0, False),
    ("datamodule.dataset.invariant_low", "pair", None, False),
    ("datamodule.dataset.invariant_high", "pair", None, False),
    ("datamodule.dataset.domain_box_size", "pair", None, False),
    ("datamodule.rescale_range", "pair", None, False),
    ("datamodule.valid_fraction", "real", None, False),
    ("datamodule.test_fraction", "real", None, False),
    ("datamodule.z_dim_invariant_true", "int", 1, True),
    ("num_threads", "int", 1, True),
]


# Settings that also take the value auto (a default chosen by the run's other settings).
AUTO_SETTINGS = {"model.warm_start_patience"}


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_number(path: str, value, kind: str, minimum, nullable: bool) -> None:
    if value is None:
        _require(nullable, f"{path} must be set (it is null).")
        return
    if kind == "pair":
        ok = OmegaConf.is_list(value) or isinstance(value, (list, tuple))
        _require(
            ok and len(value) == 2 and all(_is_real(v) for v in value),
            f"{path}={_shown(value)} must be two finite numbers, e.g. {path}=[-1.0,1.0].",
        )
        return
    if kind == "int":
        _require(
            _is_real(value) and float(value).is_integer(),
            f"{path}={value!r} must be a whole number"
            + (f" >= {minimum}" if minimum is not None else "")
            + f"; set {path}=<integer>.",
        )
    else:
        _require(_is_real(value), f"{path}={value!r} must be a finite number; set {path}=<number>.")
    if minimum is not None:
        _require(
            value >= minimum,
            f"{path}={value!r} must be >= {minimum}; set {path}=<{'a whole' if kind == 'int' else 'a'} number >= {minimum}>"
            + (" or null." if nullable else "."),
        )


def _shown(value) -> str:
    return str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value).replace(" ", "")


def validate_numbers(cfg) -> None:
    """Type, finiteness and lower bound of every numeric setting, and of each penalty weight; and
    that every group above a setting is a mapping (num_samples=400 where num_samples.train=... goes)."""
    for path, kind, minimum, nullable in NUMBER_SETTINGS:
        _require_mappings_above(cfg, path)
        value = OmegaConf.select(cfg, path, default=_MISSING)
        if path in AUTO_SETTINGS and isinstance(value, str):
            _require(value == "auto", f"{path}={value!r} must be auto, a whole number >= {minimum} or null; set {path}=auto.")
            continue
        if value is not _MISSING:
            _check_number(path, value, kind, minimum, nullable)
    criteria = cfg.model.get("penalty_criterion") or {}
    for name in criteria:
        _check_number(f"model.penalty_criterion.{name}", criteria[name], "real", 0, False)


def _require_mappings_above(cfg, path: str) -> None:
    node, parts = cfg, path.split(".")
    for depth, key in enumerate(parts[:-1]):
        if not OmegaConf.is_dict(node) or key not in node:
            return  # a path this config does not have (another datamodule)
        node = node[key]
        if not OmegaConf.is_dict(node):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(
                f"{where}={node!r} must be a group of settings, not a value: set its entries, e.g. {where}.{parts[depth + 1]}=..."
            )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _require_flag(node, key: str, path: str) -> None:
    """A true/false setting (absent counts as false): refused by name when it is anything else."""
    value = node.get(key, False)
    _require(isinstance(value, bool), f"{path}.{key}={value!r} must be true or false.")


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
    size = int(ds.image_size)
    _require(
        size & (size - 1) == 0,
        f"{p}.image_size={size} must be a power of two (8, 16, 32, 64, ...): the decoder doubles a 4x4 map up to it.",
    )
    redraw = ds.get("overlap_redraw", "all")
    _require(
        redraw in OVERLAP_REDRAWS,
        f"{p}.overlap_redraw={redraw!r} must be one of {list(OVERLAP_REDRAWS)} (which balls an overlapping sample redraws).",
    )
    _require(0.0 <= float(ds.corr_prob) <= 1.0, f"{p}.corr_prob={ds.corr_prob} must be a probability in [0, 1].")
    _require_samples_per_domain(ds.num_samples, k, min_per_domain)
    _require(
        not (dm.save_dataset and dm.load_dataset), "datamodule.save_dataset and datamodule.load_dataset cannot both be True."
    )


def validate_mnist_dataset(dm, min_per_domain: int) -> None:
    """The coloured digits' settings (data/mnist.py); the digit source itself is checked when read."""
    from mdcrl.data.mnist import CORNER, SPURIOUS_METHODS

    p = "datamodule.dataset"
    ds = dm.dataset
    k = int(ds.num_domains)
    _require(k >= 2, f"{p}.num_domains={k} must be >= 2: invariance is defined across domains.")
    _require(
        ds.spurious_method in SPURIOUS_METHODS,
        f"{p}.spurious_method={ds.spurious_method!r} is unknown; choose one of {list(SPURIOUS_METHODS)}.",
    )
    _require(0.0 <= float(ds.corr_prob) <= 1.0, f"{p}.corr_prob={ds.corr_prob} must be a probability in [0, 1].")
    _require(int(ds.augment_shift) >= 0, f"{p}.augment_shift={ds.augment_shift} must be >= 0 pixels.")
    size = int(ds.image_size)
    if "corner" in str(ds.spurious_method):
        _require(
            size >= 2 * CORNER,
            f"{p}.image_size={size} must be >= {2 * CORNER} to hold a {CORNER}x{CORNER} colour patch in a corner.",
        )
    path = ds.get("path")
    if path not in (None, ""):
        _require(
            Path(str(path)).expanduser().exists(),
            f"{p}.path={path} does not exist; fix it, or set it to null for the embedded digits.",
        )
    if dm.load_dataset:
        _require(
            dm.get("data_dir") not in (None, ""),
            "datamodule.load_dataset=True needs datamodule.data_dir=<the folder (or run directory) the data was saved in>.",
        )
    _require_samples_per_domain(ds.num_samples, k, min_per_domain)


def _plain(value):
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def validate_model(model) -> None:
    p = "model"
    criteria = dict(model.penalty_criterion)
    unknown = sorted(set(criteria) - set(PENALTY_NAMES))
    _require(not unknown, f"{p}.penalty_criterion has unknown penalties {unknown}; known: {list(PENALTY_NAMES)}.")
    _require(
        model.minmax_loss.loss_transform in LOSS_TRANSFORMS,
        f"{p}.minmax_loss.loss_transform={model.minmax_loss.loss_transform!r} must be one of {list(LOSS_TRANSFORMS)}.",
    )
    _require_flag(model.minmax_loss, "null_corrected", f"{p}.minmax_loss")
    mmd = model.mmd_loss
    _require(
        mmd.fix_sigma is None or float(mmd.fix_sigma) > 0,
        f"{p}.mmd_loss.fix_sigma={mmd.fix_sigma} must be > 0, or null for the mean-distance bandwidth.",
    )
    _require(float(mmd.kernel_multiplier) > 0, f"{p}.mmd_loss.kernel_multiplier={mmd.kernel_multiplier} must be > 0.")
    for flag in ("per_pair", "unbiased"):
        _require_flag(mmd, flag, f"{p}.mmd_loss")
    _require(
        not (mmd.get("per_pair", False) and mmd.get("unbiased", False)),
        f"{p}.mmd_loss.per_pair=true reproduces the reference's biased estimator; set {p}.mmd_loss.unbiased=false.",
    )
    _require(float(model.optimizer.lr) > 0, f"{p}.optimizer.lr={model.optimizer.lr} must be > 0.")
    reduction = model.get("penalty_reduction", "mean")
    _require(reduction in REDUCTIONS, f"{p}.penalty_reduction={reduction!r} must be one of {list(REDUCTIONS)}.")
    restarts = model.get("restarts", 1)
    _require(
        isinstance(restarts, int) and not isinstance(restarts, bool) and restarts >= 1,
        f"{p}.restarts={restarts!r} must be an integer >= 1 "
        "(copies trained at once; the one with the lowest val/selection is kept).",
    )
    agreement = model.get("restart_agreement")
    _require(
        agreement is None or 0.0 < float(agreement) <= 1.0,
        f"{p}.restart_agreement={agreement} is a fraction of the stable subspace that every restart must share: "
        f"set {p}.restart_agreement in (0, 1] (e.g. 0.999), or null to turn it off.",
    )
    scales = (model.get("optimizer") or {}).get("restart_lr_scales")
    if scales is not None:
        _require(
            OmegaConf.is_list(scales) and 1 <= len(scales) <= restarts,
            f"{p}.optimizer.restart_lr_scales={_plain(scales)} must list at most one learning-rate factor per restart "
            f"({p}.restarts={restarts}; the copies are split among the factors in equal blocks), or be null "
            f"(every copy at {p}.optimizer.lr): raise {p}.restarts or list fewer factors.",
        )
        _require(
            all(isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s) and s > 0 for s in scales),
            f"{p}.optimizer.restart_lr_scales={_plain(scales)} must be finite numbers > 0 (copy r trains at lr * scale[r]).",
        )
    selection_epochs = model.get("restart_selection_epochs")
    _require(
        selection_epochs is None
        or (isinstance(selection_epochs, int) and not isinstance(selection_epochs, bool) and selection_epochs >= 1),
        f"{p}.restart_selection_epochs={selection_epochs!r} must be an integer >= 1 (epochs before only the best "
        "copy trains on) or null (every copy trains to the end).",
    )
    _require_flag(model, "whiten", p)
    whiten_dims = model.get("whiten_dims")
    _require(
        whiten_dims is None or (isinstance(whiten_dims, int) and not isinstance(whiten_dims, bool) and whiten_dims >= 1),
        f"{p}.whiten_dims={whiten_dims!r} must be an integer >= 1 (principal directions the whitening keeps) or null (all).",
    )
    autoencoder = model.get("autoencoder") or {}
    init = model.get("init", "random")
    _require(init in INITS, f"{p}.init={init!r} must be one of {list(INITS)}.")
    if init == "moment":
        _require(
            autoencoder.get("name") == "linear",
            f"{p}.init=moment warm-starts the linear autoencoder only (this one is {autoencoder.get('name')!r}): "
            f"set {p}.init=random.",
        )
        _require(
            model.get("whiten", False),
            f"{p}.init=moment estimates the stable subspace in whitened coordinates: set {p}.whiten=true (or {p}.init=random).",
        )
    frame = autoencoder.get("frame", "free")
    _require(frame in LINEAR_FRAMES, f"{p}.autoencoder.frame={frame!r} must be one of {list(LINEAR_FRAMES)}.")
    activation = (model.get("autoencoder") or {}).get("activation", "leaky_relu")
    _require(
        activation in ACTIVATION_NAMES,
        f"{p}.autoencoder.activation={activation!r} is unknown; choose one of {sorted(ACTIVATION_NAMES)}.",
    )
    scheduler = model.get("scheduler") or {}
    _require(
        scheduler.get("name", "plateau") in ("plateau", "cosine"),
        f"{p}.scheduler.name={scheduler.get('name')!r} must be plateau or cosine.",
    )


ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")


def validate_trainer(trainer) -> None:
    accelerator = str(trainer.get("accelerator", "cpu"))
    _require(
        accelerator in ACCELERATORS,
        f"trainer.accelerator={accelerator!r} is not one mdcrl runs on; choose one of {list(ACCELERATORS)} (cpu here).",
    )
    if accelerator not in ("mps", "gpu", "cuda"):
        return
    import torch  # here, not at the top: a sweep checks every job before its launch without torch

    if accelerator == "mps":
        _require(torch.backends.mps.is_available(), "trainer.accelerator='mps' but this machine has no Apple GPU; use cpu.")
    if accelerator in ("gpu", "cuda"):
        _require(
            torch.cuda.is_available(),
            f"trainer.accelerator={accelerator!r} but no CUDA GPU is visible on this machine; "
            "run with trainer.accelerator=cpu (or trainer.accelerator=auto).",
        )


def validate_trainer_arguments(trainer) -> None:
    """Every trainer.* key must be a lightning.Trainer argument: one added with + that is not would
    otherwise end the run in Trainer's TypeError, after the data were made."""
    import inspect

    import lightning as L  # here: the sweep's check before its launch leaves this to each run

    known = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    for key in trainer:
        if key in known:
            continue
        near = difflib.get_close_matches(str(key), sorted(known), n=1)
        raise ConfigError(
            f"trainer.{key} is not an argument of lightning.Trainer; "
            + (f"did you mean trainer.{near[0]}? " if near else "")
            + f"remove trainer.{key} from the command line (or config)."
        )


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
    _require(
        Path(str(ckpt_path)).is_file(), f"ckpt_path={ckpt_path} is not a file; pass an existing .ckpt file or ckpt_path=null."
    )
    import torch  # here, not at the top: a sweep checks every job before its launch without torch

    from mdcrl.models.base import non_finite_entries

    try:  # tensors and plain values only: a checkpoint that needs code to unpickle is refused
        checkpoint = torch.load(str(ckpt_path), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated, corrupt or unsafe files
        raise ConfigError(
            f"ckpt_path={ckpt_path} cannot be loaded safely ({type(err).__name__}: {str(err).splitlines()[0][:160]}); "
            "it is truncated, corrupt, or holds pickled objects beyond tensors and plain values."
        ) from err
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    _require(isinstance(state, dict), f"ckpt_path={ckpt_path} is not a checkpoint of an mdcrl run (no state_dict).")
    bad = non_finite_entries(state)
    _require(not bad, f"ckpt_path={ckpt_path} holds non-finite weights ({', '.join(bad[:3])}); continue from another checkpoint.")


GIB = 1024**3


def available_memory_bytes() -> int | None:
    """Memory the machine can give a new process now (MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def estimated_data_bytes(dm) -> int:
    """Peak memory of generating and holding the configured synthetic data (0 for data read from
    files: their size is known only once read). Measured factors: generation works in float64 and
    keeps a float32 copy and torch views, about 3x the float64 arrays; polynomial mixing also holds
    the monomial features; images are uint8, plus float rendering of one chunk."""
    if dm.name not in ("mixing", "md_balls", "mnist"):
        return 0
    ds = dm.dataset
    n = sum(int(ds.num_samples[name]) for name in SPLITS)
    if dm.name == "md_balls":
        return 2 * n * 3 * int(ds.image_size) ** 2
    if dm.name == "mnist":  # float32 grey and colour copies of a split while it is coloured, then uint8
        return 4 * 4 * n * 3 * int(ds.image_size) ** 2
    z_dim, _, x_dim = mixing_dims(ds)
    width = z_dim + x_dim + (0 if ds.linear else num_monomials(z_dim, int(ds.polynomial_degree)))
    mixing = 2 * 8 * (z_dim if ds.linear else num_monomials(z_dim, int(ds.polynomial_degree))) * x_dim  # the map, float64
    return 3 * 8 * n * width + mixing


def check_memory(needed: int, what: str, setting: str) -> None:
    """Refuse a run whose estimated need exceeds the memory available now (check_memory=false skips it)."""
    available = available_memory_bytes()
    if available is None or needed <= available:
        return
    raise ConfigError(
        f"{setting}: {what} needs about {needed / GIB:.1f} GiB of memory, but this machine has "
        f"{available / GIB:.1f} GiB available; lower {setting}, or set check_memory=false if you know better."
    )


def validate_config(cfg, with_lightning: bool = True) -> None:
    """Refuse a config mdcrl cannot run, with one line naming the setting. with_lightning=False leaves
    out the two checks that import Lightning: the Trainer's argument names and the model's size
    against the memory available (it builds the model on torch's meta device). A sweep's check of
    every job before its launch stays free of torch, and each run still makes both before any work."""
    validate_checkpoint_path(cfg.get("ckpt_path"))
    validate_numbers(cfg)
    weights = cfg.model.get("penalty_criterion") or {}
    step = (cfg.model.get("optimizer") or {}).get("step_batch_size")
    _require(
        step is None or int(step) <= int(cfg.datamodule.batch_size),
        f"model.optimizer.step_batch_size={step} exceeds datamodule.batch_size={cfg.datamodule.batch_size}: a step "
        "takes rows of one loader batch; set model.optimizer.step_batch_size <= datamodule.batch_size, or null.",
    )
    step_setting, step_rows = rows_per_step(cfg)
    _require(
        step_rows >= 4 or not any(float(w) > 0 for w in weights.values()),
        f"{step_setting}={step_rows} cannot hold two domains of two rows each, the least an "
        f"invariance penalty compares (it would always be 0); set {step_setting} >= 4 (the seed's batch: 1024).",
    )
    validate_model(cfg.model)
    validate_trainer(cfg.trainer)
    if with_lightning:
        validate_trainer_arguments(cfg.trainer)
    _require(
        int(cfg.trainer.max_epochs) >= 1 or cfg.model.get("init") == "moment",
        "trainer.max_epochs=0 trains nothing: it evaluates the closed-form warm start alone, which needs "
        "model.init=moment (experiment=moment_baseline); otherwise set trainer.max_epochs >= 1.",
    )
    per_domain = max(2, int(cfg.model.minmax_loss.top_k))  # as builders.min_per_domain, on the config
    warn_suspicious(cfg, per_domain)
    if cfg.datamodule.name == "mixing":
        validate_mixing_dataset(cfg.datamodule.dataset, per_domain)
    if cfg.datamodule.name == "md_balls":
        validate_balls_dataset(cfg.datamodule, per_domain)
    if cfg.datamodule.name == "mnist":
        validate_mnist_dataset(cfg.datamodule, per_domain)
    if cfg.datamodule.name == "from_file":
        dm = cfg.datamodule
        _require(
            dm.get("path") not in (None, ""), "datamodule=from_file needs datamodule.path=<your .npz, .csv or .parquet file>."
        )
        for key in ("valid_fraction", "test_fraction"):
            _require(0.0 <= float(dm[key]) < 0.5, f"datamodule.{key}={dm[key]} must be in [0, 0.5).")
    if cfg.datamodule.name.endswith("_encoded"):
        _require(
            cfg.get("run_path") not in (None, ""),
            f"datamodule={cfg.datamodule.name} needs run_path=<a stage-1 run directory> "
            "(a run made with model.save_encoded_data=True).",
        )
        try:  # a symlink loop or an unreadable parent: one line here, not a traceback from resolve() later
            os.stat(Path(str(cfg.run_path)).expanduser())
        except FileNotFoundError:
            pass  # load_encoded says so, naming the path
        except OSError as err:
            raise ConfigError(
                f"run_path={cfg.run_path} cannot be followed ({err.strerror or err}); pass a stage-1 run directory."
            ) from None
        if "rescale_range" in cfg.datamodule:
            low, high = cfg.datamodule.rescale_range
            _require(low < high, f"datamodule.rescale_range=[{low}, {high}] must have low < high.")
    if cfg.get("check_memory", True):
        check_memory(
            estimated_data_bytes(cfg.datamodule), "generating the data", "datamodule.dataset.num_samples (or z_dim, x_dim)"
        )
        if with_lightning and cfg.datamodule.name == "mixing":  # the model is known from the config: check it before any work
            from mdcrl.builders import model_memory_bytes

            z_dim, _, x_dim = mixing_dims(cfg.datamodule.dataset)
            needed, what = model_memory_bytes(
                OmegaConf.to_container(cfg.model.autoencoder, resolve=True),
                x_dim,
                int(cfg.model.get("z_dim") or z_dim),
                int(cfg.model.restarts),
                int(cfg.datamodule.batch_size),
            )
            check_memory(needed, what, "model.restarts (or the model's size, or datamodule.batch_size)")
