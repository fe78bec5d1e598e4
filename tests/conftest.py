import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


CONFIG_DIR = str(ROOT / "src" / "mdcrl" / "configs")

# Overrides that keep a test run quiet and cheap to evaluate (no bar, no table, no kernel probe, no plot).
QUIET = ["trainer.enable_progress_bar=false", "print_metrics=false", "nonlinear_probe=false", "~callbacks.visualization_callback"]
# ... and that shrink a linear-mixing run to a second or two.
TINY = [
    "datamodule.dataset.num_samples.train=1200",
    "datamodule.dataset.num_samples.valid=400",
    "datamodule.dataset.num_samples.test=400",
    "datamodule.batch_size=256",
    "trainer.max_epochs=4",
    *QUIET,
]

# A polynomial stage 1 of a few seconds: poly_ae on a small mixing (add model.restarts).
TINY_POLY = [
    "seed=5", "trainer.max_epochs=3", "trainer.min_epochs=1", "model/autoencoder=poly_ae", "datamodule.dataset.linear=false",
    "datamodule.dataset.z_dim=4", "datamodule.dataset.x_dim=12", "model.autoencoder.hidden_dims=[16,16]",
]  # fmt: skip


def compose_config(overrides=(), tiny=True):
    from mdcrl.settings import compose_train_config

    return compose_train_config((TINY if tiny else []) + list(overrides))


@pytest.fixture
def compose():
    return compose_config


def seed_commands():
    """The seed README's commands, verbatim (tests/seed_commands.txt was copied from it)."""
    return [line.strip() for line in (ROOT / "tests" / "seed_commands.txt").read_text().splitlines() if line.strip()]
