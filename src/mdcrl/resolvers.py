"""OmegaConf resolvers used by the configs; registered by run_training.py before Hydra starts."""

import hashlib

from omegaconf import OmegaConf


def run_id(overrides: str) -> str:
    """A short stable directory name for a sweep job: the same overrides always give the same
    directory, so re-running a sweep finds (and skips or resumes) its earlier runs."""
    return "run-" + hashlib.sha1(overrides.encode()).hexdigest()[:12]


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("mdcrl_run_id", run_id, replace=True)
