"""OmegaConf resolvers used by the configs; registered by the command line before Hydra starts."""

import hashlib
from pathlib import Path

from omegaconf import OmegaConf

from mdcrl.settings import PRESENTATION_SETTINGS

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def run_id(overrides: str) -> str:
    """A short stable directory name for a sweep job: the same overrides always give the same
    directory, so re-running a sweep finds (and skips or resumes) its earlier runs. Quotes are
    dropped first: Hydra keeps each override as typed, so logger.wandb.tags=["a","b"] (quotes kept
    by a caller that passes them through) and logger.wandb.tags=[a,b] (the shell removed them) are
    the same setting but were two run ids, and a sweep re-ran 80 finished runs. (Hydra sorts the
    overrides, so their order never mattered.) A run directory's config.yaml still guards against
    the rare overrides that differ only in quoting (x="1", a string, against x=1)."""
    canonical = overrides.replace('"', "").replace("'", "")
    return "run-" + hashlib.sha1(canonical.encode()).hexdigest()[:12]


def presentation_keys() -> list[str]:
    """Overrides left out of a sweep job's run id: the presentation settings, and the launcher's
    number of parallel jobs."""
    return [*PRESENTATION_SETTINGS, "hydra.launcher.n_jobs"]


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("mdcrl_run_id", run_id, replace=True)
    OmegaConf.register_new_resolver("mdcrl_presentation_keys", presentation_keys, replace=True)
