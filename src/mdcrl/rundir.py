"""A run directory's identity and lifecycle: is it new, finished (skip it), or unfinished (resume
it)? Plus what makes resuming safe: the data's fingerprint, a readable last checkpoint, curves that
survive the resume, and Hydra's own files written only once the config has been accepted.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import logging
import os
import pickle
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig, OmegaConf

from mdcrl.errors import ConfigError, RunInProgressError
from mdcrl.io import read_json, regular_file, sha256_file, write_text_atomic
from mdcrl.settings import RunSettings, saved_identity

log = logging.getLogger(__name__)


def data_fingerprint(settings: RunSettings, arrays=None) -> str | None:
    """sha256 of what the run trains on, when the config alone does not determine it: the user's
    arrays (the estimator), the data file (datamodule=from_file), or the stage-1 encodings (whose
    metadata.json holds each split's checksum). Generated data is fixed by its config and seed: None.
    Also None when the file is missing: reading the data then fails with the message that says so."""
    if arrays is not None:
        digest = hashlib.sha256()
        for name in sorted(arrays.splits):
            split = arrays.splits[name]
            for part in (split.x, split.z, split.domain):
                digest.update(np.ascontiguousarray(part).tobytes())
        return digest.hexdigest()
    name = settings.data.name
    path = None
    if name == "from_file":
        path = Path(settings.data.source["path"]).expanduser()
    if name.endswith("_encoded"):
        path = Path(settings.run_path).expanduser() / "encoded" / "metadata.json"
    return sha256_file(path) if path is not None and path.is_file() else None


class RunLock:
    """One writer per run directory: an exclusive flock on ``run_dir/run.lock``, which also names
    the holder (host, pid) for the message a second launcher gets (RunInProgressError). The kernel
    drops the lock when its process ends in any way (also kill -9), so a crashed run never leaves a
    stale lock behind; the file is removed on release. flock works across hosts on shared file
    systems that support it (NFS emulates it with POSIX locks)."""

    NAME = "run.lock"

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / self.NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 256).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise RunInProgressError(
                    f"{self.path.parent} is being written by {holder} (it holds {self.NAME}); this launcher leaves it alone: "
                    "run the command again once that run has finished."
                ) from None
            try:  # the holder we raced with may have removed the file after we opened it: lock the current one
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # before unlocking: a waiter then re-checks and locks a new file
            os.close(self._fd)  # drops the flock
            self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


@dataclass
class RunState:
    state: str  # new | finished | unfinished
    resume_from: str | None = None  # the checkpoint an unfinished run continues from
    resume_epoch: int = 0  # the first epoch the resumed run trains (curve rows from it on are redone)
    previous: dict | None = None  # the run.json of earlier attempts


def probe_checkpoint(path: Path) -> int:
    """The epoch after the one a checkpoint finished; raises if the file cannot be read safely
    (truncated, corrupt, or holding anything but tensors and plain values)."""
    checkpoint = torch.load(regular_file(path), map_location="cpu", weights_only=True)
    return int(checkpoint["epoch"]) + 1


def previous_run_state(settings: RunSettings, run_dir: Path, fingerprint: str | None) -> RunState:
    """What ``run_dir`` already holds. A directory that holds another config or was made from other
    data is never reused: that is an error, and nothing in it is touched. A truncated or corrupt
    last.ckpt is moved aside (with the curves made so far) and the run starts again."""
    saved = run_dir / "config.yaml"
    if not saved.exists():
        return RunState("new")
    if saved_identity(run_dir) != settings.identity():
        raise ConfigError(
            f"{run_dir} already holds a run with different settings (another seed counts: an estimator with "
            "random_state=None draws one per fit); nothing was overwritten. Choose another run directory "
            "(hydra.run.dir / hydra.sweep.dir, or the estimator's run_dir), or delete that directory."
        )
    try:
        previous = read_json(run_dir / "run.json")
    except (OSError, ValueError):
        previous = {}
    recorded = previous.get("data_sha256")
    if recorded is not None and fingerprint is not None and recorded != fingerprint:
        raise ConfigError(
            f"{run_dir} holds a run made from other data (sha256 {recorded[:12]}... there, {str(fingerprint)[:12]}... now): "
            "the data changed since that run was made, so its results and checkpoints do not describe this data; "
            "nothing was overwritten. Choose another run directory (hydra.run.dir, or the estimator's run_dir), "
            "or delete that directory."
        )
    try:
        read_json(run_dir / "metrics.json")
        return RunState("finished", previous=previous)
    except (OSError, ValueError):
        pass
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.exists() or settings.ckpt_path:
        return RunState("unfinished", previous=previous)
    try:
        return RunState("unfinished", str(last), probe_checkpoint(last), previous)
    except (RuntimeError, OSError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as err:
        aside = set_aside(run_dir, ("checkpoints", "csv"))
        log.warning(
            "%s cannot be read (%s: %s); starting this run again from epoch 0. The unreadable checkpoint and the "
            "curves so far were moved to %s.",
            last,
            type(err).__name__,
            str(err).splitlines()[0][:120],
            aside,
        )
        return RunState("unfinished", previous={**previous, "set_aside": str(aside)})


def set_aside(run_dir: Path, names) -> Path:
    """Move run_dir/<name> for each name into run_dir/set-aside-<time>/ (nothing is deleted)."""
    aside = run_dir / time.strftime("set-aside-%Y%m%d-%H%M%S")
    aside.mkdir()
    for name in names:
        if (run_dir / name).exists():
            (run_dir / name).rename(aside / name)
    return aside


class CurveWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv when it starts. This one keeps the rows
    of the epochs before ``keep_before_epoch`` (those a resumed run does not redo) and appends."""

    def __init__(self, log_dir: str, keep_before_epoch: int):
        path = Path(log_dir) / self.NAME_METRICS_FILE
        header, rows = [], []
        if keep_before_epoch > 0 and path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                header, rows = list(reader.fieldnames or []), list(reader)
        super().__init__(log_dir)  # deletes metrics.csv (_check_log_dir_exists, below); the kept rows go back in
        kept = [row for row in rows if _row_epoch(row) < keep_before_epoch]
        if header:
            self.metrics_keys = sorted(header)
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)

    def _check_log_dir_exists(self) -> None:
        """Lightning's version warns that earlier logs will be deleted, then deletes metrics.csv; here
        the rows to keep were read first and are written back, so only the deletion is kept."""
        path = Path(self.metrics_file_path)
        if path.is_file():
            path.unlink()


def _row_epoch(row: dict) -> float:
    try:
        return float(row.get("epoch") or 0)
    except ValueError:
        return 0.0


class CurveLogger(CSVLogger):
    """CSVLogger (csv/metrics.csv) that keeps a resumed run's earlier rows and writes every row as
    it is logged, so that a kill loses no row of an epoch it had checkpointed."""

    def __init__(self, save_dir: str, keep_before_epoch: int = 0):
        super().__init__(save_dir=save_dir, name="csv", version="", flush_logs_every_n_steps=1)
        self._keep_before_epoch = keep_before_epoch

    @property
    def experiment(self) -> CurveWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = CurveWriter(self.log_dir, self._keep_before_epoch)
        return self._experiment


def write_hydra_files(run_dir: Path, cfg: DictConfig) -> None:
    """Hydra's record of a command-line run (.hydra/config.yaml, overrides.yaml, hydra.yaml).
    Hydra would write it before the task starts (configs/train.yaml turns that off with
    hydra.output_subdir=null), which left it behind for a config that validation then refused,
    even inside a stage-1 run_path. Written here once the config is accepted; nothing outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    out = run_dir / ".hydra"
    write_text_atomic(out / "config.yaml", OmegaConf.to_yaml(cfg))
    write_text_atomic(out / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(hydra_cfg.overrides.task))))
    write_text_atomic(out / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))


def remove_if_empty(run_dir: Path) -> None:
    """A run directory that Hydra created for a run that was refused before writing anything."""
    try:
        run_dir.rmdir()  # only succeeds when empty
    except OSError:
        pass
