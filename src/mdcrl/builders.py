"""Build the objects of a run from its settings: data, autoencoder, training module, trainer."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mdcrl.callbacks import RunClock, StopMemory
from mdcrl.data import MultiDomainData, generate_mixing_data
from mdcrl.data.balls import balls_settings, generate_balls_data, load_balls_cache, save_balls_cache
from mdcrl.data.encoded import load_encoded, rescale_to_range, standardize_encodings
from mdcrl.data.mnist import build_mnist_data
from mdcrl.data.tables import arrays_to_data, read_table, stable_first
from mdcrl.errors import ConfigError, DataInputError
from mdcrl.models.autoencoders import build_autoencoder, warm_start_linear
from mdcrl.models.base import Autoencoder, fit_whitening
from mdcrl.models.module import MultiDomainAutoencoder
from mdcrl.moment import MomentEstimate, moment_stable_subspace
from mdcrl.rundir import CurveLogger
from mdcrl.settings import ModelSettings, RunSettings
from mdcrl.validation import check_memory

log = logging.getLogger(__name__)


def min_per_domain(settings: RunSettings) -> int:
    """Samples each domain needs: the min-max penalty's top_k, and 2 for a standard deviation."""
    return max(2, settings.penalties.minmax.top_k)


def user_data(settings: RunSettings, x, domains, z=None, z_dim_stable_true: int | None = None, stable=None) -> MultiDomainData:
    """A user's arrays (read from a file, or given to the estimator), checked, split and standardised
    with the run's source settings (valid_fraction, test_fraction, standardize) and seed; ``stable``:
    the indices of z's stable columns (instead of z_dim_stable_true, stable block first)."""
    source = settings.data.source
    return arrays_to_data(
        x,
        domains,
        z,
        z_dim_stable_true,
        stable,
        source["valid_fraction"],
        source["test_fraction"],
        source["standardize"],
        settings.seed,
        min_per_domain=min_per_domain(settings),
    )


def stable_latents_first(source, z):
    """datamodule=from_file: (z with the stable latents first, their number), from
    datamodule.stable_latent_columns (names among datamodule.latent_columns, or indices into the
    file's latents) or else datamodule.z_dim_invariant_true (the stable latents are the leading ones)."""
    named = list(source.get("stable_latent_columns") or [])
    if not named:
        return z, source.z_dim_invariant_true
    setting = "datamodule.stable_latent_columns"
    if z is None:
        raise DataInputError(
            f"{setting} lists stable latents, but {source.path} holds no ground-truth latents (datamodule.latent_columns)."
        )
    latent_columns = list(source.latent_columns or [])
    indices = []
    for entry in named:
        if isinstance(entry, int) and not isinstance(entry, bool):
            indices.append(entry)
        elif entry in latent_columns:
            indices.append(latent_columns.index(entry))
        else:
            raise DataInputError(
                f"{setting} names {entry!r}, which is not among datamodule.latent_columns={latent_columns}; "
                "list the stable latents' columns there too."
            )
    return stable_first(np.asarray(z), indices, source.z_dim_invariant_true, setting, "datamodule.z_dim_invariant_true")


def build_data(settings: RunSettings, run_dir=None) -> MultiDomainData:
    """The run's data; ``run_dir``: where datamodule=mnist caches its data when datamodule.data_dir is null."""
    name, source = settings.data.name, OmegaConf.create(settings.data.source)
    if name == "mixing":
        return generate_mixing_data(source.dataset, settings.seed)
    if name in ("mixing_encoded", "balls_encoded"):
        data, _ = load_encoded(settings.run_path, expected_kind=name.removesuffix("_encoded"))
        return rescale_to_range(data, *source.rescale_range)
    if name == "mnist_encoded":
        data, _ = load_encoded(settings.run_path, expected_kind="mnist")
        return standardize_encodings(data) if source.dataset.normalize else data
    if name == "md_balls":
        return build_balls_data(source, settings.seed)
    if name == "mnist":
        return build_mnist_data(source, settings.seed, run_dir)
    if name == "from_file":
        x, domains, z = read_table(source.path, source.domain_column, source.latent_columns)
        z, z_dim_stable_true = stable_latents_first(source, z)
        return user_data(settings, x, domains, z, z_dim_stable_true)
    raise ConfigError(f"datamodule.name={name!r} is not supported; arrays are passed to fit_run(data=...).")


def build_balls_data(source, seed: int) -> MultiDomainData:
    """Generate the balls images, or load them from datamodule.data_dir (load_dataset=True);
    with save_dataset=True, cache what was generated there."""
    expected = balls_settings(source.dataset, seed)
    if source.load_dataset:
        return load_balls_cache(Path(source.data_dir), expected)
    data = generate_balls_data(source.dataset, seed)
    if source.save_dataset:
        save_balls_cache(data, Path(source.data_dir), expected)
    return data


def model_dims(model: ModelSettings, data: MultiDomainData) -> tuple[int, int]:
    """(z_dim, z_dim_stable) of the learned latents: from the model settings when set, else the data's."""
    z_dim = model.z_dim or data.z_dim_true
    d_s = model.z_dim_stable
    if d_s is None:
        fraction = model.z_dim_stable_fraction
        d_s = int(z_dim * fraction) if fraction is not None else data.z_dim_stable_true
    if not z_dim:
        raise ConfigError("the data has no ground-truth latents to size the model: set model.z_dim=<latent dimension>.")
    if data.splits["train"].x.ndim == 2:  # before the memory check builds the model for data.x_dim inputs
        require_linear_inputs(model, z_dim, data.x_dim, f"{data.x_dim} features")
    if not 1 <= d_s < z_dim:
        raise ConfigError(
            f"model.z_dim_invariant={d_s} must be between 1 and model.z_dim - 1 = {z_dim - 1}; "
            "set model.z_dim_invariant (or model.z_dim_invariant_fraction)."
        )
    return int(z_dim), int(d_s)


def require_linear_inputs(model: ModelSettings, z_dim: int, inputs: int, what: str) -> None:
    """A linear autoencoder cannot make more latents than its input has dimensions."""
    if model.autoencoder.get("name") == "linear" and z_dim > inputs:
        raise ConfigError(
            f"model.z_dim={z_dim}: a linear autoencoder cannot make more latents than its input has: the data has {what}; "
            f"set model.z_dim <= {inputs} (the estimator: z_dim)."
        )


def image_side(data: MultiDomainData) -> int | None:
    """The side of square image inputs (n, C, H, W); None for flat ones."""
    x = data.splits["train"].x
    return int(x.shape[-1]) if x.ndim == 4 else None


def build_autoencoder_for(model: ModelSettings, data: MultiDomainData, z_dim: int):
    """The configured autoencoder with model.restarts copies; with model.whiten, preceded by PCA
    whitening fitted on the train split (flat inputs only: images are never whitened)."""
    train_x = data.splits["train"].x
    whiten = model.whiten and train_x.ndim == 2
    if whiten and model.whiten_dims is not None and model.whiten_dims > data.x_dim:
        raise ConfigError(
            f"model.whiten_dims={model.whiten_dims} is more than the {data.x_dim} input features: "
            f"set model.whiten_dims <= {data.x_dim} (or null: every direction with variance)."
        )
    mean, matrix = fit_whitening(train_x, dims=model.whiten_dims) if whiten else (None, None)
    input_dim = matrix.shape[1] if whiten else data.x_dim
    if whiten:
        kept = f"{input_dim} directions with variance (of {data.x_dim} features"
        kept += f", model.whiten_dims={model.whiten_dims})" if model.whiten_dims is not None else ")"
        require_linear_inputs(model, z_dim, input_dim, kept)
    autoencoder = build_autoencoder(OmegaConf.create(model.autoencoder), input_dim, z_dim, model.restarts, image_side(data))
    if whiten:
        autoencoder.set_whitening(mean, matrix)
    return autoencoder


# The restart that model.init=moment starts at the closed-form estimate; the others start at random.
WARM_COPY = 0


def moment_warm_start(autoencoder: Autoencoder, data: MultiDomainData, z_dim: int, d_s: int) -> MomentEstimate:
    """Start copy WARM_COPY at the moment estimate of the stable subspace (mdcrl.moment), computed on
    the whitened train split: its stable latents along the estimate, its spurious ones along the most
    domain-dependent other directions (zero columns if the model has more latents than inputs)."""
    train = data.splits["train"]
    with torch.no_grad():
        x = autoencoder.prepare(torch.from_numpy(train.x)).numpy()
    estimate = moment_stable_subspace(x, train.domain, d_s)
    directions = np.concatenate([estimate.stable, estimate.spurious[:, : z_dim - d_s]], axis=1)
    directions = np.pad(directions, ((0, 0), (0, z_dim - directions.shape[1])))
    warm_start_linear(autoencoder, directions, copy=WARM_COPY)
    return estimate


def build_module(settings: RunSettings, data: MultiDomainData) -> MultiDomainAutoencoder:
    """The training module; with model.init=moment, ``module.warm_start`` is the moment estimate that
    copy WARM_COPY starts from (None otherwise).

    A run without an invariance penalty (every weight 0: the no-penalty control) starts every copy
    at random even with model.init=moment: the estimate is itself an invariance method, and a plain
    autoencoder kept there would report a separation its objective never asked for."""
    z_dim, d_s = model_dims(settings.model, data)
    autoencoder = build_autoencoder_for(settings.model, data, z_dim)
    warm = None
    if settings.model.init == "moment" and settings.penalties.invariance_enabled:
        warm = moment_warm_start(autoencoder, data, z_dim, d_s)
    elif settings.model.init == "moment":
        log.info("model.init=moment: no invariance penalty in this run (the no-penalty control), so every copy starts at random")
    module = MultiDomainAutoencoder(
        autoencoder=autoencoder,
        num_domains=data.num_domains,
        z_dim_stable=d_s,
        z_dim_stable_true=data.z_dim_stable_true,
        penalties=settings.penalties,
        optim=settings.optim,
        restart_selection_epochs=settings.model.restart_selection_epochs,
    )
    module.warm_start = warm
    return module


def model_memory_bytes(
    autoencoder_cfg, x_dim: int, z_dim: int, restarts: int, batch_size: int, image_size=None
) -> tuple[int, str]:
    """(bytes, description) of training a model: its weights with Adam's state (4 floats per
    parameter) and, for flat inputs, a minibatch's activations in every copy (each layer's output,
    kept for the backward pass and its gradient: about 3 floats per value). The model is built on
    torch's meta device: shapes only, nothing allocated."""
    with torch.device("meta"):
        autoencoder = build_autoencoder(OmegaConf.create(autoencoder_cfg), x_dim, z_dim, restarts, image_size)
    parameters = sum(p.numel() for p in autoencoder.parameters())
    widths = sum(p.shape[-1] for name, p in autoencoder.named_parameters() if name.endswith("weight") and p.dim() >= 2)
    activations = 0 if image_size else 3 * 4 * restarts * batch_size * (x_dim + widths)
    return (
        16 * parameters + activations,
        f"the model ({parameters:,} parameters with Adam's state, {restarts} copies of a batch's activations)",
    )


def check_model_memory(settings: RunSettings, data: MultiDomainData, z_dim: int) -> None:
    """Refuse a model that would not fit in the memory available now (model_memory_bytes)."""
    needed, what = model_memory_bytes(
        settings.model.autoencoder, data.x_dim, z_dim, settings.model.restarts, settings.data.batch_size, image_side(data)
    )
    check_memory(needed, what, "model.restarts (or the model's size, or datamodule.batch_size)")


def build_loggers(settings: RunSettings, run_dir: Path, resume_epoch: int = 0) -> list:
    lg = OmegaConf.create(settings.trainer.loggers)
    loggers = []
    if lg.csv.enabled:
        loggers.append(CurveLogger(str(run_dir), keep_before_epoch=resume_epoch))
    if lg.tensorboard.enabled:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""))
    if lg.wandb.enabled:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(
            WandbLogger(project=lg.wandb.project, tags=list(lg.wandb.tags), save_dir=str(run_dir), offline=lg.wandb.offline)
        )
    return loggers


def build_callbacks(settings: RunSettings, run_dir: Path) -> list:
    callbacks = []
    for name, node in settings.trainer.callbacks.items():
        if node is None:
            continue
        extra = {"dirpath": str(run_dir / "checkpoints")} if name == "model_checkpoint" else {}
        callbacks.append(instantiate(node, **extra))
    return callbacks


def build_trainer(settings: RunSettings, run_dir: Path, clock: RunClock, resume_epoch: int = 0, extra_callbacks=()) -> L.Trainer:
    # Gradient clipping is done by the module (per restart, manual optimisation): not a Trainer option.
    options = {k: v for k, v in settings.trainer.options.items() if k != "gradient_clip_algorithm"}
    return L.Trainer(
        **options,
        max_epochs=settings.trainer.max_epochs,
        default_root_dir=str(run_dir),
        callbacks=[*build_callbacks(settings, run_dir), *extra_callbacks, StopMemory(), clock],
        logger=build_loggers(settings, run_dir, resume_epoch) or False,
        enable_model_summary=False,
    )


def set_threads(num_threads: int | None) -> None:
    """torch's intra-op threads: num_threads when set; in a parallel (joblib) sweep, the cores
    divided by the number of workers, since small models slow down badly when oversubscribed."""
    threads = num_threads
    if threads is None:
        try:
            from hydra.core.hydra_config import HydraConfig

            n_jobs = int(HydraConfig.get().launcher.get("n_jobs") or 1)
        except (ValueError, AttributeError, TypeError):
            n_jobs = 1
        if n_jobs < 0:  # joblib's convention: -1 = all cores
            n_jobs = (os.cpu_count() or 1) + 1 + n_jobs
        if n_jobs > 1:
            threads = max(1, (os.cpu_count() or 1) // n_jobs)
    if threads:
        torch.set_num_threads(int(threads))
