"""OmegaConf resolvers used by the configs; registered by the command line before Hydra starts."""

import hashlib
import json
from pathlib import Path

from omegaconf import OmegaConf

from mdcrl.settings import PRESENTATION_SETTINGS, RunSettings, saved_identity

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def run_id(overrides: str, _root_=None) -> str:
    """A short stable directory name for a sweep job: the hash of what the run computes (its
    settings' identity, RunSettings.identity), so that re-running a sweep finds (and skips or
    resumes) its earlier runs however their overrides were written: an explicit override equal to
    the default (model.init=moment), an experiment= preset against the same settings typed out, or
    quoting (logger.wandb.tags=["a","b"] against [a,b]) no longer make another directory (each had
    made a re-run repeat finished runs). Presentation settings are not part of the identity.

    Sweeps made before this kept their directories, named by the hash of the override string: such
    a directory is used where it holds a run with this identity. Where the settings cannot be read
    (a config that validation will refuse), the override string's hash names the job; the run then
    stops with validation's message and leaves no directory behind."""
    by_overrides = _overrides_id(overrides)
    if _root_ is None:
        return by_overrides
    try:
        identity = task_identity(_root_)
    except Exception:  # noqa: BLE001 - validation, not the directory's name, reports a bad config
        return by_overrides
    by_identity = "run-" + hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    sweep_dir = Path(str(OmegaConf.select(_root_, "hydra.sweep.dir", default=".")))
    if not (sweep_dir / by_identity).exists() and _saved_identity(sweep_dir / by_overrides) == identity:
        return by_overrides
    return by_identity


def _overrides_id(overrides: str) -> str:
    # Quotes are dropped: Hydra keeps each override as typed (and sorts them, so order never mattered).
    canonical = overrides.replace('"', "").replace("'", "")
    return "run-" + hashlib.sha1(canonical.encode()).hexdigest()[:12]


def task_identity(root) -> dict:
    """RunSettings.identity() of a composed config (the hydra node, if any, left out)."""
    plain = OmegaConf.to_container(root, resolve=False)
    plain.pop("hydra", None)
    return RunSettings.from_config(OmegaConf.create(plain)).identity()


def _saved_identity(run_dir: Path) -> dict | None:
    try:
        return saved_identity(run_dir)
    except Exception:  # noqa: BLE001 - no readable config.yaml: not this run's directory
        return None


def presentation_keys() -> list[str]:
    """Overrides left out of a sweep job's run id: the presentation settings, and the launcher's
    number of parallel jobs."""
    return [*PRESENTATION_SETTINGS, "hydra.launcher.n_jobs"]


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("mdcrl_run_id", run_id, replace=True)
    OmegaConf.register_new_resolver("mdcrl_presentation_keys", presentation_keys, replace=True)
