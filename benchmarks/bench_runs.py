"""Wall time of whole runs through the real entry point (python run_training.py ...).

1. the default experiment (no overrides): linear mixing, z_dim 8, 4 domains, min-max;
2. z_dim 64, 16 domains, min-max + MMD (adaptive bandwidth), trained until early stopping
   or max_epochs (the seed's largest linear setting).
Run: python benchmarks/bench_runs.py   (a few minutes)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from timing import entry_point_time

RUNS = {
    "default run": [],
    "d=64, k=16, minmax+mmd": [
        "model.penalty_criterion.minmax=1.",
        "model.penalty_criterion.mmd=1.",
        "model.mmd_loss.fix_sigma=null",
        "datamodule.dataset.z_dim=64",
        "datamodule.dataset.num_domains=16",
        "~callbacks.visualization_callback",
    ],
}


def main():
    print(f"{'run':28s} {'wall s':>8s} {'epochs':>7s} {'r2_zinv_from_hinv':>18s} {'r2_zsp_from_hinv':>17s}")
    for name, overrides in RUNS.items():
        with tempfile.TemporaryDirectory() as tmp:
            wall = entry_point_time([*overrides, f"hydra.run.dir={tmp}"])
            metrics = json.loads((Path(tmp) / "metrics.json").read_text())
            info = json.loads((Path(tmp) / "run.json").read_text())
        print(
            f"{name:28s} {wall:8.1f} {info['epochs']:7d} {metrics['r2_zinv_from_hinv']:18.4f} {metrics['r2_zsp_from_hinv']:17.4f}"
        )


if __name__ == "__main__":
    main()
