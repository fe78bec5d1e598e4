"""Build a run from a composed config, fit it, evaluate it on held-out data and write its directory.

Run directory (SPEC 7):
  config.yaml      the resolved config (also what a re-run compares against to skip or resume)
  run.json         status (running | finished | failed), tags, seed, epochs, times (fit, evaluate,
                   wall), version, error, resumed_from when an interrupted run was continued, the
                   restarts' validation selection scores and the chosen restart, the whitening's
                   dimensions, the data's sha256 (rundir.data_fingerprint). Across a kill and resume,
                   `started` is the first attempt's and wall_time_s adds the earlier attempts' time
                   up to the checkpoint the run resumed from.
  metrics.json     the final SPEC 5 metrics, written atomically once everything else is done
  csv/metrics.csv  per-epoch train/validation curves (rundir.CurveLogger: kept across a resume)
  checkpoints/     best.ckpt (lowest val/selection, used for evaluation) and last.ckpt (for resuming);
                   they hold every restart's weights, the chosen restart and the input whitening
  encoded/         stage 1 only: the encoded splits (see mdcrl.data.encoded)
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mdcrl import __version__
from mdcrl.data import MultiDomainData, MultiDomainDataModule, generate_mixing_data
from mdcrl.data.balls import balls_settings, generate_balls_data, load_balls_cache, save_balls_cache
from mdcrl.data.encoded import load_encoded, rescale_to_range, save_encoded
from mdcrl.data.tables import arrays_to_data, read_table
from mdcrl.callbacks import RunClock
from mdcrl.errors import ConfigError, MdcrlError
from mdcrl.io import read_json, write_json_atomic, write_text_atomic
from mdcrl.identifiability import support_identifiable_for
from mdcrl.metrics import HEADLINE, REFERENCE_NAMES, evaluate_latents, invariance_diagnostics
from mdcrl.models.autoencoders import build_autoencoder
from mdcrl.models.base import fit_whitening
from mdcrl.models.module import MultiDomainAutoencoder
from mdcrl.rundir import (
    RunState, data_fingerprint, previous_run_state, remove_if_empty, write_hydra_files, CurveLogger,
)
from mdcrl.validation import check_memory, validate_config

log = logging.getLogger(__name__)


def build_data(cfg: DictConfig) -> MultiDomainData:
    name = cfg.datamodule.name
    if name == "mixing":
        return generate_mixing_data(cfg.datamodule.dataset, int(cfg.seed))
    if name in ("mixing_encoded", "balls_encoded"):
        data, _ = load_encoded(cfg.run_path, expected_kind=name.removesuffix("_encoded"))
        return rescale_to_range(data, *cfg.datamodule.rescale_range)
    if name == "md_balls":
        return build_balls_data(cfg)
    if name == "from_file":
        dm = cfg.datamodule
        x, domains, z = read_table(dm.path, dm.domain_column, dm.latent_columns)
        return arrays_to_data(
            x, domains, z, dm.z_dim_invariant_true, dm.valid_fraction, dm.test_fraction, dm.standardize,
            int(cfg.seed), min_per_domain=max(2, int(cfg.model.minmax_loss.top_k)),
        )
    raise ValueError(f"datamodule.name={name!r} is not supported")


def build_balls_data(cfg: DictConfig) -> MultiDomainData:
    """Generate the balls images, or load them from datamodule.data_dir (load_dataset=True);
    with save_dataset=True, cache what was generated there."""
    dm = cfg.datamodule
    settings = balls_settings(dm.dataset, int(cfg.seed))
    if dm.load_dataset:
        return load_balls_cache(Path(dm.data_dir), settings)
    data = generate_balls_data(dm.dataset, int(cfg.seed))
    if dm.save_dataset:
        save_balls_cache(data, Path(dm.data_dir), settings)
    return data


def save_encodings(run_dir: Path, module: MultiDomainAutoencoder, cfg: DictConfig, data: MultiDomainData) -> None:
    """Stage 1: encode every split with the (best) weights now in the module and save them."""
    encodings = {name: module.encode(split.x) for name, split in data.splits.items()}
    save_encoded(run_dir, encodings, data, OmegaConf.to_container(cfg.datamodule, resolve=True))


def model_dims(model_cfg: DictConfig, data: MultiDomainData) -> tuple[int, int]:
    """(z_dim, z_dim_invariant) of the learned latents: from the model config when set, else the data's."""
    z_dim = model_cfg.get("z_dim") or data.z_dim_true
    d_s = model_cfg.get("z_dim_invariant")
    if d_s is None:
        fraction = model_cfg.get("z_dim_invariant_fraction")
        d_s = int(z_dim * fraction) if fraction is not None else data.z_dim_invariant_true
    if not z_dim:
        raise ConfigError("the data has no ground-truth latents to size the model: set model.z_dim=<latent dimension>.")
    if not 1 <= d_s < z_dim:
        raise ConfigError(
            f"model.z_dim_invariant={d_s} must be between 1 and model.z_dim - 1 = {z_dim - 1}; "
            "set model.z_dim_invariant (or model.z_dim_invariant_fraction)."
        )
    return int(z_dim), int(d_s)


def build_autoencoder_for(model_cfg: DictConfig, data: MultiDomainData, z_dim: int):
    """The configured autoencoder with model.restarts copies; with model.whiten, preceded by PCA
    whitening fitted on the train split (flat inputs only: images are never whitened)."""
    train_x = data.splits["train"].x
    whiten = bool(model_cfg.get("whiten", False)) and train_x.ndim == 2
    mean, matrix = fit_whitening(train_x) if whiten else (None, None)
    input_dim = matrix.shape[1] if whiten else data.x_dim
    autoencoder = build_autoencoder(model_cfg.autoencoder, input_dim, z_dim, int(model_cfg.get("restarts", 1)))
    if whiten:
        autoencoder.set_whitening(mean, matrix)
    return autoencoder


def build_module(cfg: DictConfig, data: MultiDomainData) -> MultiDomainAutoencoder:
    m = cfg.model
    z_dim, d_s = model_dims(m, data)
    plain = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731
    return MultiDomainAutoencoder(
        autoencoder=build_autoencoder_for(m, data, z_dim),
        num_domains=data.num_domains,
        z_dim_invariant=d_s,
        z_dim_invariant_true=data.z_dim_invariant_true,
        penalty_weight=float(m.penalty_weight),
        penalty_reduction=str(m.get("penalty_reduction", "mean")),
        penalty_criterion={k: float(v) for k, v in m.penalty_criterion.items()},
        minmax_loss=plain(m.minmax_loss),
        mmd_loss=plain(m.mmd_loss),
        stddev_loss=plain(m.stddev_loss),
        hinge_loss_weight=float(m.hinge_loss_weight),
        hinge_loss=plain(m.hinge_loss),
        optimizer=plain(m.optimizer),
        scheduler=plain(m.scheduler),
        gradient_clip_val=cfg.trainer.get("gradient_clip_val"),
    )


def build_loggers(cfg: DictConfig, run_dir: Path, resume_epoch: int = 0) -> list:
    lg = cfg.logger
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


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list:
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        extra = {"dirpath": str(run_dir / "checkpoints")} if name == "model_checkpoint" else {}
        callbacks.append(instantiate(node, **extra))
    return callbacks


def build_trainer(cfg: DictConfig, run_dir: Path, clock: RunClock, resume_epoch: int = 0) -> L.Trainer:
    options = OmegaConf.to_container(cfg.trainer, resolve=True)
    # Gradient clipping is done by the module (per restart, manual optimisation): see build_module.
    options.pop("gradient_clip_val", None)
    options.pop("gradient_clip_algorithm", None)
    return L.Trainer(
        **options,
        default_root_dir=str(run_dir),
        callbacks=[*build_callbacks(cfg, run_dir), clock],
        logger=build_loggers(cfg, run_dir, resume_epoch) or False,
        enable_model_summary=False,
    )


def check_model_memory(cfg: DictConfig, data: MultiDomainData, z_dim: int) -> None:
    """Refuse a model whose weights and Adam state (4 floats per parameter) would not fit. The model
    is built on torch's meta device: shapes only, nothing allocated."""
    with torch.device("meta"):
        autoencoder = build_autoencoder(cfg.model.autoencoder, data.x_dim, z_dim, int(cfg.model.get("restarts", 1)))
    parameters = sum(p.numel() for p in autoencoder.parameters())
    check_memory(16 * parameters, f"the model ({parameters:,} parameters, with Adam's state)", "model.autoencoder")


def load_best_weights(module: MultiDomainAutoencoder, trainer: L.Trainer) -> str | None:
    """Load the best checkpoint's weights (by the checkpoint callback's monitor) into the module."""
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback else ""
    if path:
        load_weights(module, path)
    return path or None


def load_weights(module: MultiDomainAutoencoder, path: str | Path) -> None:
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])


@torch.no_grad()
def split_losses(module: MultiDomainAutoencoder, loader) -> dict[str, np.ndarray]:
    """Sample-weighted mean of every restart's loss terms (R,) over a split, batch by batch as in training."""
    module.eval()
    totals: dict[str, np.ndarray] = {}
    count = 0
    for x, _, domains in loader:
        parts, _ = module.evaluation_parts(x.to(module.device), domains.to(module.device))
        for name, value in parts.items():
            totals[name] = totals.get(name, 0.0) + value.cpu().numpy().astype(np.float64) * len(x)
        count += len(x)
    return {name: total / count for name, total in totals.items()}


def evaluate(module: MultiDomainAutoencoder, datamodule: MultiDomainDataModule, nonlinear: bool = True) -> dict:
    splits = datamodule.data.splits
    train, test = splits["train"], splits["test"]
    h_train, h_test = module.encode(train.x), module.encode(test.x)
    if not (np.isfinite(h_train).all() and np.isfinite(h_test).all()):
        raise FloatingPointError("the trained encoder produces non-finite latents; see the run's csv/metrics.csv")
    metrics = {}
    if train.z.shape[1]:  # ground truth known: the SPEC 5 regressions
        metrics = evaluate_latents(
            h_train, train.z, train.domain, h_test, test.z, test.domain,
            module.z_dim_invariant, datamodule.data.z_dim_invariant_true, nonlinear=nonlinear,
        )
    metrics["support_identifiable"] = support_identifiable_for(datamodule.data.metadata)
    metrics["diagnostics"] = invariance_diagnostics(h_test, test.domain, module.z_dim_invariant)
    losses = split_losses(module, datamodule.test_dataloader())
    chosen = module.chosen_restart
    metrics["recon_mse"] = float(losses["recon_mse"][chosen])
    metrics["penalty"] = float(losses["penalty"][chosen])
    metrics["test_loss"] = float(losses["loss"][chosen])
    return metrics


def print_metrics(metrics: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("reference code's name")
    for key in HEADLINE:
        if key in metrics:
            table.add_row(key, f"{metrics[key]:.4f}", REFERENCE_NAMES.get(key, ""))
    Console().print(table)


def set_threads(cfg: DictConfig) -> None:
    """torch's intra-op threads: num_threads when set; in a parallel (joblib) sweep, the cores
    divided by the number of workers, since small models slow down badly when oversubscribed."""
    threads = cfg.get("num_threads")
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


def current_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def run(cfg: DictConfig, run_dir: Path | None = None) -> dict:
    """Validate, generate data, fit, evaluate and write the run directory. Returns the metrics.
    A run refused before it wrote anything leaves no directory behind (Hydra creates it first)."""
    run_dir = Path(run_dir) if run_dir is not None else current_run_dir()
    try:
        return fit_run(cfg, run_dir)[1]
    except MdcrlError:
        remove_if_empty(run_dir)
        raise


def fit_run(cfg: DictConfig, run_dir: Path | None = None, data: MultiDomainData | None = None):
    """The whole run; returns (trained module with its best weights, metrics). ``data`` replaces the
    configured datamodule's data (the estimator API passes its arrays this way). A finished run is
    not trained again: its metrics are returned, with its best weights when ``data`` is given."""
    validate_config(cfg)
    run_dir = Path(run_dir) if run_dir is not None else current_run_dir()
    if cfg.get("run_path") and Path(cfg.run_path).resolve() in (run_dir.resolve(), *run_dir.resolve().parents):
        raise ConfigError(f"the run directory {run_dir} lies inside run_path={cfg.run_path}; stage 2 never writes there.")
    fingerprint = data_fingerprint(cfg, data)
    previous = previous_run_state(cfg, run_dir, fingerprint)
    if previous.state == "finished":
        log.info("%s already holds this run, finished: skipping it", run_dir)
        return finished_run(cfg, run_dir, data, previous)
    set_threads(cfg)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    if data is None:
        data = build_data(cfg)  # before anything is written: a bad run_path or file leaves no trace
    z_dim, _ = model_dims(cfg.model, data)
    if cfg.get("check_memory", True):
        check_model_memory(cfg, data, z_dim)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_hydra_files(run_dir, cfg)
    clock = RunClock()
    info = run_info(cfg, previous, fingerprint)
    if previous.resume_from:
        log.info("resuming the unfinished run in %s from %s (epoch %d)", run_dir, previous.resume_from, previous.resume_epoch)
    write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    write_json_atomic(run_dir / "run.json", info)
    try:
        datamodule = MultiDomainDataModule(data, int(cfg.datamodule.batch_size), seed=int(cfg.seed))
        module = build_module(cfg, data)
        input_map = module.autoencoder.input_map
        if input_map is not None:  # the whitening itself is in the checkpoints (model buffers)
            info["whitening"] = {"input_dim": int(input_map.shape[0]), "whitened_dim": int(input_map.shape[1])}
        trainer = build_trainer(cfg, run_dir, clock, previous.resume_epoch)
        fit_start = time.perf_counter()
        # weights_only: a checkpoint holds tensors and plain values only; unpickling anything else
        # (code) is refused, also for a user's ckpt_path.
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path") or previous.resume_from, weights_only=True)
        info["fit_time_s"] = time.perf_counter() - fit_start
        info["best_checkpoint"] = load_best_weights(module, trainer)
        info["epochs"] = int(trainer.current_epoch)
        # The restarts' validation selection scores at the best checkpoint: the chosen one is the lowest.
        info["restart_selection_scores"] = split_losses(module, datamodule.val_dataloader())["selection"].tolist()
        info["chosen_restart"] = module.chosen_restart
        eval_start = time.perf_counter()
        metrics = evaluate(module, datamodule, nonlinear=bool(cfg.get("nonlinear_probe", True)))
        info["evaluate_time_s"] = time.perf_counter() - eval_start
        if cfg.model.get("save_encoded_data", False):
            save_encodings(run_dir, module, cfg, data)
    except BaseException as err:
        info.update(status="failed", error=f"{type(err).__name__}: {err}", wall_time_s=clock.elapsed_s())
        write_json_atomic(run_dir / "run.json", info)
        raise
    write_json_atomic(run_dir / "metrics.json", metrics)
    info.update(status="finished", wall_time_s=clock.elapsed_s(), finished=time.time())
    write_json_atomic(run_dir / "run.json", info)
    if cfg.get("print_metrics", True):
        print_metrics(metrics, f"mdcrl metrics (test split) - {run_dir}")
    return module, metrics


def run_info(cfg: DictConfig, previous: RunState, fingerprint: str | None) -> dict:
    """run.json at the start of an attempt; a continued run keeps its first start time."""
    earlier = previous.previous or {}
    info = {
        "status": "running", "tags": list(cfg.logger.wandb.tags or []), "seed": int(cfg.seed),
        "mdcrl_version": __version__, "started": earlier.get("started", time.time()),
        "attempts": int(earlier.get("attempts", 1)) + 1 if earlier else 1, "data_sha256": fingerprint,
    }
    if previous.resume_from:
        info["resumed_from"] = previous.resume_from
    if earlier.get("set_aside"):
        info["set_aside"] = earlier["set_aside"]
    return info


def finished_run(cfg: DictConfig, run_dir: Path, data: MultiDomainData | None, previous: RunState):
    """(module with the run's best weights, or None without ``data``; the saved metrics)."""
    metrics = read_json(run_dir / "metrics.json")
    if data is None:
        return None, metrics
    best = (previous.previous or {}).get("best_checkpoint") or str(run_dir / "checkpoints" / "best.ckpt")
    module = build_module(cfg, data)
    load_weights(module, best)
    return module, metrics
