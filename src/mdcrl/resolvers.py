"""OmegaConf resolvers used by the configs; registered by the command line before Hydra starts."""

import hashlib
from pathlib import Path

from omegaconf import OmegaConf

from mdcrl.settings import PRESENTATION_SETTINGS

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def run_id(overrides: str) -> str:
    """A short stable directory name for a sweep job: the same overrides always give the same
    directory, so re-running a sweep finds (and skips or resumes) its earlier runs."""
    return "run-" + hashlib.sha1(overrides.encode()).hexdigest()[:12]


def presentation_keys() -> list[str]:
    """Overrides left out of a sweep job's run id: the presentation settings, and the launcher's
    number of parallel jobs."""
    return [*PRESENTATION_SETTINGS, "hydra.launcher.n_jobs"]


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("mdcrl_run_id", run_id, replace=True)
    OmegaConf.register_new_resolver("mdcrl_presentation_keys", presentation_keys, replace=True)
