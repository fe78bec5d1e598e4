"""What the benchmarks share: the median wall time of repeated calls after a warm-up, and the wall
time of a run through the real entry point (python run_training.py ...)."""

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["trainer.enable_progress_bar=false", "print_metrics=false"]


def median_time(fn, repeats: int, warmup: int = 5) -> float:
    """Median seconds per call of fn()."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def entry_point_time(overrides: list[str], multirun: bool = False) -> float:
    """Wall seconds of `python run_training.py <overrides> [--multirun]` from the repository root,
    quiet (no progress bar, no metrics table); its output is captured, a failure raises."""
    start = time.perf_counter()
    command = [sys.executable, "run_training.py", *overrides, *QUIET, *(["--multirun"] if multirun else [])]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start
