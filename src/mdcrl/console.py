"""What a run prints: the progress bar and the metrics table, not Lightning's chatter.

Lightning logs its INFO lines (accelerator, "Trainer.fit stopped", an advertising tip) through its
own handler and, under Hydra, through Hydra's root handler as well: every line twice. During a fit
those loggers are raised to WARNING (real warnings still show), and the warnings that our own use
cannot fix are filtered by their exact text:
- torch 2.13 deprecates a `LeafSpec` check that Lightning 2.6 still makes on every step;
- a resumed run writes into its own checkpoints/ directory, which Lightning warns "is not empty";
- the in-memory data loaders need no worker processes, which Lightning suggests adding.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")
EXPECTED_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",
    r"Checkpoint directory .* exists and is not empty",
    r".*does not have many workers which may be a bottleneck",
)


@contextmanager
def quiet_lightning():
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
