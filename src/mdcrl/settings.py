"""Typed settings of a run: what the training core (mdcrl.train.fit_run) reads.

The command line composes a Hydra config and converts it once (RunSettings.from_config); the
estimator starts from the packaged defaults (default_settings) and replaces fields in Python. The
defaults live in one place, the YAML files under configs/: the dataclasses have none of their own.

Vocabulary: the stable block of the latents (z_S, h_S; "invariant" in the seed's config keys and
in the published metric names, e.g. r2_zinv_from_hinv) and the spurious block (z_U, h_U; "sp" in
metric names). See docs/design.md for the table of names.

On disk a run keeps the Hydra layout (config.yaml): ``to_config`` writes it and ``from_config``
reads it back, so that the command line, the estimator and the report share one format.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# Settings that change how a run is shown or guarded, not what it computes. One list, read by the
# run identity (RunSettings.identity, which the sweep's run ids hash: resolvers.run_id; the override
# string's fallback id leaves them out through the mdcrl_presentation_keys resolver) and the report
# (which lets them differ within a cell).
PRESENTATION_SETTINGS = ("print_metrics", "trainer.enable_progress_bar", "num_threads", "check_memory")

# The choices of a run's named settings. They live here, beside the settings and free of torch, so
# that the checks of every job before a sweep's launch (mdcrl.validation) need not import torch.
PENALTY_NAMES = ("minmax", "mmd", "stddev", "domain_means", "domain_covariances")
LOSS_TRANSFORMS = ("mse", "l1")
# "mean": average over domain pairs (ours: comparable across domain counts); "sum": the reference
# code's normalisation (min-max and MMD summed over pairs, stddev over pairs and coordinates, the
# hinge over domains).
REDUCTIONS = ("mean", "sum")
LINEAR_FRAMES = ("orthonormal", "free")
# model.init: the closed-form warm start of copy 0 (mdcrl.moment), or the paper's random init.
INITS = ("moment", "random")
ACTIVATION_NAMES = ("leaky_relu", "silu", "gelu", "tanh")


def split_step_rows(step_batch_size: int | None, batch_size: int) -> int | None:
    """Rows per optimiser step where model.optimizer.step_batch_size splits the loader's batches, else
    None: a step size of at least the batch size is a whole batch per step, the same run as null."""
    if step_batch_size is None or int(step_batch_size) >= int(batch_size):
        return None
    return int(step_batch_size)


@dataclass(frozen=True)
class MinMaxSettings:
    top_k: int
    loss_transform: str  # mse | l1
    null_corrected: bool = False  # training subtracts the penalty under shuffled domains (penalties.minmax_penalty)


@dataclass(frozen=True)
class MMDSettings:
    fix_sigma: float | None  # None: the mean pairwise squared distance of the batch
    kernel_number: int
    kernel_multiplier: float
    per_pair: bool
    unbiased: bool  # the U-statistic (penalties.mmd_penalty); false: the paper's biased estimator


@dataclass(frozen=True)
class HingeSettings:
    stddev_threshold: float
    stddev_eps: float


@dataclass(frozen=True)
class PenaltySettings:
    """The invariance penalties on the stable block: loss = recon + scale * sum_p weights[p] * penalty_p
    (+ hinge_weight * hinge). Config: model.penalty_weight (scale), model.penalty_criterion (weights),
    model.minmax_loss / mmd_loss / stddev_loss / hinge_loss (each penalty's options)."""

    weights: dict  # penalty name (minmax, mmd, stddev) -> weight; 0 turns it off
    scale: float
    reduction: str  # mean | sum over domain pairs
    minmax: MinMaxSettings
    mmd: MMDSettings
    stddev_eps: float
    hinge_weight: float
    hinge: HingeSettings
    standardize: bool = False  # min-max and stddev on h_S standardised per coordinate over the batch (module.scale_free_terms)

    @property
    def any_enabled(self) -> bool:
        """Whether the objective holds any penalty term (else it is reconstruction alone)."""
        return self.invariance_enabled or self.hinge_weight > 0

    @property
    def invariance_enabled(self) -> bool:
        """Whether the objective holds an invariance penalty (min-max, MMD or stddev) with a weight > 0."""
        return self.scale > 0 and any(w > 0 for w in self.weights.values())


@dataclass(frozen=True)
class OptimSettings:
    lr: float
    weight_decay: float
    scheduler: dict  # enabled, name (cosine | plateau), monitor, factor, patience
    gradient_clip_val: float | None
    step_batch_size: int | None = None  # rows per Adam step (the loader's batches are split); None: the batch size
    restart_lr_scales: tuple[float, ...] | None = None  # as configured: factors spread over the copies in equal blocks


@dataclass(frozen=True)
class ModelSettings:
    autoencoder: dict  # name (linear | mlp | poly | resnet18 | ...) and its options
    z_dim: int | None  # None: the data's
    z_dim_stable: int | None  # None: from z_dim_stable_fraction, else the data's
    z_dim_stable_fraction: float | None
    restarts: int
    whiten: bool
    save_encoded_data: bool
    restart_selection_epochs: int | None = None  # then only the chosen copy trains on (module.py)
    init: str = "random"  # moment: copy 0 starts at the closed-form estimate (mdcrl.moment); random: the paper's
    whiten_dims: int | None = None  # whitening keeps only this many principal directions; None: all with variance
    # init=moment: a trained copy replaces the warm start only below its score less this many null spreads
    warm_start_margin: float = 0.0
    # init=moment: stop once this many epochs passed with none below the warm start's bar; None: off;
    # "auto": by the penalties (RunSettings.warm_start_patience)
    warm_start_patience: int | str | None = None
    # init=moment, from the patience epoch: narrow to the best copy once every restart's stable subspace agrees to this; None: off
    restart_agreement: float | None = None


# model.warm_start_patience=auto: the patience by penalty, measured on the linear grid
# (docs/results/linear/mmd-patience/): with MMD the only penalty no trained copy ever scored below the warm start's bar in
# 157 of 160 runs, so its 20 epochs x 4 copies were spent for nothing; with min-max (alone or with MMD)
# a quarter of the runs first beat the bar between epochs 3 and 20, so it keeps 20.
PATIENCE_DISTRIBUTION_ONLY = 5
PATIENCE_WITH_SUPPORT = 20


def resolve_warm_start_patience(value, weights: dict) -> int | None:
    """model.warm_start_patience as the run uses it: a number or None as given; "auto" by the penalties
    (PATIENCE_DISTRIBUTION_ONLY when MMD is the only one with weight > 0, else PATIENCE_WITH_SUPPORT)."""
    if value != "auto":
        return value
    only_mmd = weights.get("mmd", 0.0) > 0 and not any(w > 0 for name, w in weights.items() if name != "mmd")
    return PATIENCE_DISTRIBUTION_ONLY if only_mmd else PATIENCE_WITH_SUPPORT


@dataclass(frozen=True)
class DataSettings:
    name: str  # mixing | md_balls | from_file | mixing_encoded | balls_encoded | arrays
    batch_size: int
    source: dict  # the source's own settings (the rest of the config's datamodule node)


@dataclass(frozen=True)
class TrainerSettings:
    max_epochs: int
    options: dict  # every other lightning.Trainer argument
    callbacks: dict  # name -> Hydra instantiate node (None: off)
    loggers: dict  # csv / tensorboard / wandb


@dataclass(frozen=True)
class RunSettings:
    data: DataSettings
    model: ModelSettings
    penalties: PenaltySettings
    optim: OptimSettings
    trainer: TrainerSettings
    seed: int
    run_path: str | None = None  # stage 2: the stage-1 run directory
    ckpt_path: str | None = None  # a checkpoint to continue from
    print_metrics: bool = True
    nonlinear_probe: bool = True
    num_threads: int | None = None
    check_memory: bool = True
    extra: dict = field(default_factory=dict)  # other top-level config keys, kept for config.yaml

    @classmethod
    def from_config(cls, cfg) -> RunSettings:
        """From a composed (and validated) config in the Hydra layout."""
        c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        m, dm, tr = dict(c["model"]), dict(c["datamodule"]), dict(c["trainer"])
        penalties = PenaltySettings(
            weights={k: float(v) for k, v in m["penalty_criterion"].items()},
            scale=float(m["penalty_weight"]),
            reduction=str(m.get("penalty_reduction", "mean")),
            minmax=MinMaxSettings(
                int(m["minmax_loss"]["top_k"]),
                m["minmax_loss"]["loss_transform"],
                bool(m["minmax_loss"].get("null_corrected", False)),
            ),
            mmd=MMDSettings(**{**{"per_pair": False, "unbiased": False}, **m["mmd_loss"]}),
            stddev_eps=float(m["stddev_loss"]["stddev_eps"]),
            hinge_weight=float(m["hinge_loss_weight"]),
            hinge=HingeSettings(**m["hinge_loss"]),
            standardize=bool(m.get("penalty_standardize", False)),
        )
        optim = OptimSettings(
            lr=float(m["optimizer"]["lr"]),
            weight_decay=float(m["optimizer"].get("weight_decay", 0.0)),
            scheduler=dict(m.get("scheduler") or {}),
            gradient_clip_val=tr.pop("gradient_clip_val", None),
            step_batch_size=m["optimizer"].get("step_batch_size"),
            restart_lr_scales=_float_tuple(m["optimizer"].get("restart_lr_scales")),
        )
        model = ModelSettings(
            autoencoder=dict(m["autoencoder"]),
            z_dim=m.get("z_dim"),
            z_dim_stable=m.get("z_dim_invariant"),
            z_dim_stable_fraction=m.get("z_dim_invariant_fraction"),
            restarts=int(m.get("restarts", 1)),
            whiten=bool(m.get("whiten", False)),
            save_encoded_data=bool(m.get("save_encoded_data", False)),
            restart_selection_epochs=m.get("restart_selection_epochs"),
            init=str(m.get("init", "random")),
            whiten_dims=m.get("whiten_dims"),
            warm_start_margin=float(m.get("warm_start_margin", 0.0)),
            warm_start_patience=m.get("warm_start_patience"),
            restart_agreement=m.get("restart_agreement"),
        )
        data = DataSettings(dm.pop("name"), int(dm.pop("batch_size")), dm)
        trainer = TrainerSettings(int(tr.pop("max_epochs")), tr, dict(c.get("callbacks") or {}), dict(c.get("logger") or {}))
        known = {
            "datamodule",
            "model",
            "trainer",
            "callbacks",
            "logger",
            "seed",
            "run_path",
            "ckpt_path",
            "print_metrics",
            "nonlinear_probe",
            "num_threads",
            "check_memory",
        }
        return cls(
            data,
            model,
            penalties,
            optim,
            trainer,
            int(c["seed"]),
            c.get("run_path"),
            c.get("ckpt_path"),
            bool(c.get("print_metrics", True)),
            bool(c.get("nonlinear_probe", True)),
            c.get("num_threads"),
            bool(c.get("check_memory", True)),
            {k: v for k, v in c.items() if k not in known},
        )

    def to_config(self) -> DictConfig:
        """The Hydra layout of these settings (config.yaml, validation, the report)."""
        p, o, m = self.penalties, self.optim, self.model
        model = {
            "z_dim": m.z_dim,
            "z_dim_invariant": m.z_dim_stable,
            "restarts": m.restarts,
            "restart_selection_epochs": m.restart_selection_epochs,
            "init": m.init,
            "warm_start_margin": m.warm_start_margin,
            "warm_start_patience": m.warm_start_patience,
            "restart_agreement": m.restart_agreement,
            "whiten": m.whiten,
            "whiten_dims": m.whiten_dims,
            "penalty_weight": p.scale,
            "penalty_reduction": p.reduction,
            "penalty_criterion": dict(p.weights),
            "minmax_loss": asdict(p.minmax),
            "mmd_loss": asdict(p.mmd),
            "stddev_loss": {"stddev_eps": p.stddev_eps},
            "hinge_loss_weight": p.hinge_weight,
            "hinge_loss": asdict(p.hinge),
            "penalty_standardize": p.standardize,
            "optimizer": {
                "lr": o.lr,
                "weight_decay": o.weight_decay,
                "step_batch_size": o.step_batch_size,
                "restart_lr_scales": None if o.restart_lr_scales is None else list(o.restart_lr_scales),
            },
            "scheduler": dict(o.scheduler),
            "save_encoded_data": m.save_encoded_data,
            "autoencoder": dict(m.autoencoder),
        }
        if m.z_dim_stable_fraction is not None:
            model["z_dim_invariant_fraction"] = m.z_dim_stable_fraction
        trainer = {"max_epochs": self.trainer.max_epochs, **self.trainer.options, "gradient_clip_val": o.gradient_clip_val}
        return OmegaConf.create(
            {
                "datamodule": {"name": self.data.name, "batch_size": self.data.batch_size, **self.data.source},
                "model": model,
                "callbacks": dict(self.trainer.callbacks),
                "logger": dict(self.trainer.loggers),
                "trainer": trainer,
                "seed": self.seed,
                "ckpt_path": self.ckpt_path,
                "run_path": self.run_path,
                "print_metrics": self.print_metrics,
                "nonlinear_probe": self.nonlinear_probe,
                "num_threads": self.num_threads,
                "check_memory": self.check_memory,
                **self.extra,
            }
        )

    @property
    def warm_start_patience(self) -> int | None:
        """model.warm_start_patience as the run uses it (auto resolved by the penalties)."""
        return resolve_warm_start_patience(self.model.warm_start_patience, self.penalties.weights)

    def identity(self) -> dict:
        """What a run computes: the settings without the presentation ones and without ckpt_path (a
        run directory may be continued from any checkpoint of the same run)."""
        plain = OmegaConf.to_container(self.to_config(), resolve=True)
        plain.pop("ckpt_path", None)
        plain["model"]["warm_start_patience"] = self.warm_start_patience  # auto and the number it stands for: one run
        for dotted in PRESENTATION_SETTINGS:
            _parent_of(plain, dotted).pop(dotted.rsplit(".", 1)[-1], None)
        optimizer = plain["model"]["optimizer"]
        optimizer["step_batch_size"] = split_step_rows(optimizer["step_batch_size"], self.data.batch_size)
        scales = per_restart_lr_scales(optimizer["restart_lr_scales"], self.model.restarts)
        optimizer["restart_lr_scales"] = None if scales is None else list(scales)
        for dotted, default in LATER_SETTINGS.items():
            node, key = _parent_of(plain, dotted), dotted.rsplit(".", 1)[-1]
            if key in node and node[key] == default:
                del node[key]
        return plain


# Settings added after runs were made, with the value that computes what a run lacking them did:
# identity() leaves a setting out when it has that value, so such a run directory still resumes
# (a sweep had stopped on "already holds a run with different settings" for this reason). Only the
# nodes passed through as they are (the datamodule's, and the penalty weights: a dict of whatever names
# the config held) need an entry: every other model setting is written by to_config with its default,
# whether the saved config had it or not.
LATER_SETTINGS = {
    "datamodule.dataset.overlap_redraw": "all",
    "model.penalty_criterion.domain_means": 0.0,
    "model.penalty_criterion.domain_covariances": 0.0,
}


def saved_identity(run_dir) -> dict:
    """The identity of the run that ``run_dir/config.yaml`` describes; raises if it cannot be read."""
    from mdcrl.io import read_text

    return RunSettings.from_config(OmegaConf.create(read_text(Path(run_dir) / "config.yaml"))).identity()


def _float_tuple(values) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def per_restart_lr_scales(factors, restarts: int) -> tuple[float, ...] | None:
    """model.optimizer.restart_lr_scales spread over the restarts in equal blocks, one factor per copy
    (factors [1, 0.5] over 8 copies: copies 0-3 at 1, 4-7 at 0.5); None when every copy is at 1, so that
    [1.0] is the same run as null."""
    if factors is None:
        return None
    scales = tuple(float(factors[r * len(factors) // restarts]) for r in range(restarts))
    return None if all(s == 1.0 for s in scales) else scales


def _parent_of(plain: dict, dotted: str) -> dict:
    node = plain
    for parent in dotted.split(".")[:-1]:
        node = node.get(parent, {})
    return node


def compose_train_config(overrides=()) -> DictConfig:
    """The packaged train config (configs/train.yaml) composed with Hydra overrides, outside a
    Hydra run: what `python run_training.py <overrides>` would run, before validation."""
    from hydra import compose, initialize_config_dir

    from mdcrl.resolvers import CONFIG_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def default_settings(
    datamodule: str = "from_file", autoencoder: str = "linear_ae", model: str = "mixing_synthetic"
) -> RunSettings:
    """The packaged defaults (configs/*.yaml) for a choice of config groups."""
    cfg = compose_train_config([f"datamodule={datamodule}", f"model={model}", f"model/autoencoder={autoencoder}"])
    return RunSettings.from_config(cfg)


__all__ = [
    "PRESENTATION_SETTINGS",
    "MinMaxSettings",
    "MMDSettings",
    "HingeSettings",
    "PenaltySettings",
    "OptimSettings",
    "ModelSettings",
    "DataSettings",
    "TrainerSettings",
    "RunSettings",
    "compose_train_config",
    "default_settings",
    "replace",
]
