"""The training core: settings -> data, model, fit, evaluation, run directory.

    fit_run(settings, run_dir)            # mdcrl.settings.RunSettings; returns (module, metrics)
    run(cfg, run_dir)                     # the command line: a composed Hydra config

Run directory:
  config.yaml      the resolved config (Hydra layout; a re-run compares it to skip or resume)
  .hydra/          Hydra's record of a command-line run, written once the config is accepted
  run.json         status (running | finished | failed), tags, seed, epochs, times (data, setup, fit,
                   evaluate, wall), the process (pid, and how many runs it has trained: a sweep
                   worker's n-th job has run_in_process n), version, error, attempts, resumed_from when an interrupted run was
                   continued, the restarts' validation selection scores and the chosen restart, the
                   whitening's dimensions, the data's sha256 (rundir.data_fingerprint). Across a
                   kill and resume, `started` is the first attempt's and wall_time_s adds the
                   earlier attempts' time up to the checkpoint the run resumed from.
  metrics.json     the final metrics (evaluation.evaluate), written atomically once everything else is done
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
import torch
from omegaconf import DictConfig, OmegaConf

from mdcrl import __version__
from mdcrl.builders import WARM_COPY, build_data, build_module, build_trainer, check_model_memory, model_dims, set_threads
from mdcrl.callbacks import RunClock, WarmStartPatience
from mdcrl.console import quiet_lightning
from mdcrl.data import MultiDomainData, MultiDomainDataModule
from mdcrl.data.encoded import save_encoded
from mdcrl.errors import CheckpointError, ConfigError, MdcrlError, RunInProgressError
from mdcrl.evaluation import evaluate, print_metrics, selection_with_null_spread, split_losses
from mdcrl.io import read_json, regular_file, write_atomic, write_json_atomic, write_text_atomic
from mdcrl.models.base import non_finite_entries
from mdcrl.models.module import MultiDomainAutoencoder
from mdcrl.rundir import RunLock, RunState, data_fingerprint, previous_run_state, remove_if_empty, write_hydra_files
from mdcrl.settings import RunSettings
from mdcrl.validation import validate_config

log = logging.getLogger(__name__)

# Runs trained in this process so far: a sweep's worker trains job after job in one process and
# pays the imports (torch, Lightning: most of a small run's start-up) once (run.json "process").
_runs_in_process = 0


def run(cfg: DictConfig, run_dir: Path | None = None) -> dict:
    """The command line's run: validate the config, convert it to settings once, fit_run. Returns the
    metrics. A run refused before it wrote anything leaves no directory behind (Hydra creates it first)."""
    run_dir = Path(run_dir) if run_dir is not None else current_run_dir()
    try:
        validate_config(cfg)
        return fit_run(RunSettings.from_config(cfg), run_dir, config=cfg)[1]
    except RunInProgressError as err:  # a second launcher of the same sweep: that run is not this one's to write
        log.warning("skipping it: %s", err)
        return {}
    except MdcrlError:
        remove_if_empty(run_dir)
        raise


def fit_run(settings: RunSettings, run_dir: Path, data: MultiDomainData | None = None, config: DictConfig | None = None):
    """The whole run; returns (trained module with its best weights, metrics). ``data`` replaces the
    configured source's data (the estimator passes its arrays this way); ``config`` is what
    config.yaml records: the command line's config, which ``run`` has validated already, or by default
    the settings in the Hydra layout, validated here. A finished run is not trained again: its
    metrics are returned, with its best weights when ``data`` is given."""
    if config is None:
        config = settings.to_config()
        validate_config(config)
    run_dir = Path(run_dir)
    if settings.run_path and Path(settings.run_path).resolve() in (run_dir.resolve(), *run_dir.resolve().parents):
        raise ConfigError(f"the run directory {run_dir} lies inside run_path={settings.run_path}; stage 2 never writes there.")
    created = not run_dir.exists()
    try:
        with RunLock(run_dir):  # one writer per run directory, from here to the end
            return locked_fit_run(settings, run_dir, data, config)
    except MdcrlError:
        if created:
            remove_if_empty(run_dir)  # a run refused before it wrote anything leaves no directory behind
        raise


def locked_fit_run(settings: RunSettings, run_dir: Path, data: MultiDomainData | None, config: DictConfig):
    """fit_run's work, with the run directory's lock held."""
    fingerprint = data_fingerprint(settings, data)
    previous = previous_run_state(settings, run_dir, fingerprint)
    if previous.state == "finished":
        log.info("%s already holds this run, finished: skipping it", run_dir)
        return finished_run(settings, run_dir, data, previous)
    set_threads(settings.num_threads)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    data_start = time.perf_counter()
    if data is None:
        data = build_data(settings, run_dir)  # before anything is written: a bad run_path or file leaves no trace
    data_time_s = time.perf_counter() - data_start
    setup_start = time.perf_counter()
    z_dim, _ = model_dims(settings.model, data)
    if settings.check_memory:
        check_model_memory(settings, data, z_dim)
    module = build_module(settings, data)  # before anything is written: a model the data cannot feed is refused cleanly
    run_dir.mkdir(parents=True, exist_ok=True)
    write_hydra_files(run_dir, config)
    clock = RunClock()
    info = run_info(settings, previous, fingerprint)
    # The data's dimensions, also when the config does not hold them (stage 2 reads them from stage 1).
    info["data"] = {"z_dim": data.z_dim_true, "z_dim_stable": data.z_dim_stable_true, "num_domains": data.num_domains}
    if "source" in data.metadata:  # which digits a coloured-digits run used (the embedded ones or a file, its sha256)
        info["data"]["source"] = data.metadata["source"]
    info["data_time_s"] = data_time_s
    info["init_used"] = "moment" if module.warm_start is not None else "random"  # random without an invariance penalty
    info["setup_time_s"] = time.perf_counter() - setup_start  # the model, warm start and run directory; + the Trainer below
    if previous.resume_from:
        log.info("resuming the unfinished run in %s from %s (epoch %d)", run_dir, previous.resume_from, previous.resume_epoch)
    write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(config, resolve=True))
    write_json_atomic(run_dir / "run.json", info)
    try:
        metrics = train_and_evaluate(settings, run_dir, data, module, previous, clock, info)
    except BaseException as err:
        info.update(status="failed", error=f"{type(err).__name__}: {err}", wall_time_s=clock.elapsed_s())
        write_json_atomic(run_dir / "run.json", info)
        raise
    write_json_atomic(run_dir / "metrics.json", metrics)
    info.update(status="finished", wall_time_s=clock.elapsed_s(), finished=time.time())
    write_json_atomic(run_dir / "run.json", info)
    if settings.print_metrics:
        print_metrics(metrics, f"mdcrl metrics (test split) - {run_dir}")
    return module, metrics


def train_and_evaluate(
    settings: RunSettings,
    run_dir: Path,
    data: MultiDomainData,
    module: MultiDomainAutoencoder,
    previous: RunState,
    clock: RunClock,
    info: dict,
) -> dict:
    """Fit ``module`` (from the resume checkpoint when there is one), load the best weights into it,
    evaluate; returns the metrics and records what it measured in ``info`` (run.json)."""
    batch_size = settings.data.batch_size
    datamodule = MultiDomainDataModule(data, batch_size, seed=settings.seed, step_batch_size=settings.optim.step_batch_size)
    input_map = module.autoencoder.input_map
    if input_map is not None:  # the whitening itself is in the checkpoints (model buffers)
        info["whitening"] = {"input_dim": int(input_map.shape[0]), "whitened_dim": int(input_map.shape[1])}
    setup_start = time.perf_counter()
    warm = save_warm_start(module, run_dir, data, batch_size) if module.warm_start is not None else None
    patience = None
    if warm is not None:  # a trained copy replaces the warm start only by more than the score's own noise
        warm["margin"] = settings.model.warm_start_margin
        warm["bar"] = warm["selection"] - warm["margin"] * warm["selection_null_std"]
        warm["patience"] = settings.warm_start_patience
        if warm["patience"] is not None:
            margin_score = warm["margin"] * warm["selection_null_std"]
            agreement = settings.model.restart_agreement
            patience = WarmStartPatience(warm["bar"], warm["patience"], WARM_COPY, margin_score, agreement)
    with quiet_lightning():
        trainer = build_trainer(settings, run_dir, clock, previous.resume_epoch, extra_callbacks=[patience] if patience else [])
        info["setup_time_s"] = info.get("setup_time_s", 0.0) + time.perf_counter() - setup_start
        fit_start = time.perf_counter()
        # weights_only: a checkpoint holds tensors and plain values only; unpickling anything else
        # (code) is refused, also for a user's ckpt_path.
        trainer.fit(module, datamodule=datamodule, ckpt_path=settings.ckpt_path or previous.resume_from, weights_only=True)
    info["fit_time_s"] = time.perf_counter() - fit_start
    info["best_checkpoint"] = load_best_weights(module, trainer, warm and warm["bar"], run_dir)
    if warm is not None:  # with the best trained epoch's score: how far training came below the bar
        trained = getattr(trainer.checkpoint_callback, "best_model_score", None)
        warm["best_trained_selection"] = None if trained is None else float(trained)
        warm["stopped_by_patience"] = patience is not None and patience.stopped_epoch is not None
        warm["narrowed_at"] = patience and patience.narrowed_from  # the first epoch one copy trained alone, or None
        warm["narrowed_because"] = patience and patience.narrowed_because  # "warm copy leads" | "restarts agree"
        warm["restart_agreement"] = patience and patience.last_agreement  # at the last check (models.base.restart_agreement)
        info["warm_start"] = {**warm, "kept_untrained": module.warm_start_kept, **module.warm_start.summary()}
    info["epochs"] = int(trainer.current_epoch)
    info["optimizer_steps"] = int(trainer.global_step)
    # The restarts' validation selection scores at the best checkpoint: the chosen one is the lowest.
    info["restart_selection_scores"] = split_losses(module, data.splits["valid"], batch_size)["selection"].tolist()
    info["chosen_restart"] = module.chosen_restart
    eval_start = time.perf_counter()
    metrics = evaluate(module, data, batch_size, nonlinear=settings.nonlinear_probe)
    info["evaluate_time_s"] = time.perf_counter() - eval_start
    if settings.model.save_encoded_data:
        save_encodings(run_dir, module, settings, data)
    return metrics


def save_encodings(run_dir: Path, module: MultiDomainAutoencoder, settings: RunSettings, data: MultiDomainData) -> None:
    """Stage 1: encode every split with the (best) weights now in the module and save them."""
    encodings = {name: module.encode(split.x) for name, split in data.splits.items()}
    source = {"name": settings.data.name, "batch_size": settings.data.batch_size, **settings.data.source}
    save_encoded(run_dir, encodings, data, source)


def warm_start_path(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "warm_start.ckpt"


def save_warm_start(module: MultiDomainAutoencoder, run_dir: Path, data: MultiDomainData, batch_size: int) -> dict:
    """The warm start before any step, as a candidate of the selection: checkpoints/warm_start.ckpt
    (with copy WARM_COPY chosen); returns its validation selection score and that score's spread
    under permuted domain labels (evaluation.selection_with_null_spread). Recomputed at every attempt:
    the untrained model is the same each time (same seed), also after a resume."""
    module.autoencoder.chosen.fill_(WARM_COPY)
    score, null_std = selection_with_null_spread(module, data.splits["valid"], batch_size, WARM_COPY)
    path = warm_start_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: torch.save({"state_dict": module.state_dict(), "val/selection": score}, f), binary=True)
    module.train()  # the validation pass left it in eval mode
    return {"selection": score, "selection_null_std": null_std}


def load_best_weights(module: MultiDomainAutoencoder, trainer: L.Trainer, warm_bar: float | None, run_dir: Path) -> str | None:
    """Load the best weights into the module: the best checkpoint's (by the checkpoint callback's
    monitor, val/selection), or the untrained warm start's where no epoch scored below ``warm_bar``
    (the warm start's score less model.warm_start_margin null spreads; also when there was no
    epoch: trainer.max_epochs=0, the closed form alone). Returns the path loaded.

    Only checkpoints of this run's own checkpoints/ are loaded: a run continued from another run's
    checkpoint (ckpt_path) inherits that run's best_model_path in the callback's state, and would
    otherwise be evaluated with the other run's weights. Such a path is ignored (with a warning) and
    this run's own best.ckpt, else its last.ckpt, else the weights in memory are used, scored on
    the validation split to compete with the warm start."""
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback else ""
    loaded = ""  # a fallback already in the module
    best = getattr(callback, "best_model_score", None) if path else None
    own = (run_dir / "checkpoints").resolve()
    if path and Path(path).resolve().parent != own:
        fallback = next((p for p in (own / "best.ckpt", own / "last.ckpt") if p.is_file()), None)
        log.warning(
            "the checkpoint callback names %s as the best checkpoint, which is not in this run's %s (state carried over "
            "from ckpt_path?); evaluating with %s instead.",
            path,
            own,
            fallback or "the weights in memory",
        )
        path = str(fallback) if fallback else ""
        if path:
            load_weights(module, path)
            loaded = path
        best = split_losses(module, trainer.datamodule.data.splits["valid"], trainer.datamodule.batch_size)["selection"]
        best = float(best[module.chosen_restart])
    if warm_bar is not None and (best is None or warm_bar <= float(best)):
        path = str(warm_start_path(run_dir))
        module.warm_start_kept = True
    if path and path != loaded:
        load_weights(module, path)
    return path or None


def load_weights(module: MultiDomainAutoencoder, path: str | Path) -> None:
    """Load a checkpoint's weights (tensors and plain values only), refusing non-finite ones."""
    state = torch.load(regular_file(path), map_location="cpu", weights_only=True)["state_dict"]
    bad = non_finite_entries(state)
    if bad:
        raise CheckpointError(
            f"{path} holds non-finite weights ({', '.join(bad[:3])}); it cannot be evaluated. "
            "Delete the run directory and train again."
        )
    module.load_state_dict(state)


def run_info(settings: RunSettings, previous: RunState, fingerprint: str | None) -> dict:
    """run.json at the start of an attempt; a continued run keeps its first start time."""
    global _runs_in_process
    _runs_in_process += 1
    earlier = previous.previous or {}
    info = {
        "status": "running",
        "tags": list(settings.trainer.loggers.get("wandb", {}).get("tags") or []),
        "seed": settings.seed,
        "mdcrl_version": __version__,
        "started": earlier.get("started", time.time()),
        "attempts": int(earlier.get("attempts", 1)) + 1 if earlier else 1,
        "data_sha256": fingerprint,
        "process": {"pid": os.getpid(), "run_in_process": _runs_in_process},
    }
    if previous.resume_from:
        info["resumed_from"] = previous.resume_from
    if earlier.get("set_aside"):
        info["set_aside"] = earlier["set_aside"]
    return info


def finished_run(settings: RunSettings, run_dir: Path, data: MultiDomainData | None, previous: RunState):
    """(module with the run's best weights, or None without ``data``; the saved metrics)."""
    metrics = read_json(run_dir / "metrics.json")
    if data is None:
        return None, metrics
    best = (previous.previous or {}).get("best_checkpoint") or str(run_dir / "checkpoints" / "best.ckpt")
    module = build_module(settings, data)
    load_weights(module, best)
    return module, metrics


def current_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)
