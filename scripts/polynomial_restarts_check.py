"""Does the validation score pick the best copy, and how many copies of a stage-1 run succeed? For
each restart of a run's best checkpoint: its learning rate (model.optimizer.lr times its
restart_lr_scales factor), its validation selection score (run.json, what chose the kept copy) and
the held-out r2_z_from_h it would have given (a linear probe of the true z from that copy's
encoding, as metrics.json computes it for the kept copy). Uses the true latents: a diagnostic of
the restarts (docs/polynomial.md), never a selection.
    python scripts/polynomial_restarts_check.py multirun/polynomial/stage1/x200-p3-z14-seed*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

from mdcrl.builders import build_data, build_module
from mdcrl.metrics import linear_r2
from mdcrl.settings import RunSettings, per_restart_lr_scales
from mdcrl.train import load_weights


def restart_rows(run: Path) -> list[tuple[int, float, float, float]]:
    """(copy, learning rate, validation selection score, held-out r2_z_from_h) of every restart."""
    settings = RunSettings.from_config(OmegaConf.load(run / "config.yaml"))
    data = build_data(settings, run)
    module = build_module(settings, data)
    load_weights(module, run / "checkpoints" / "best.ckpt")
    scores = json.loads((run / "run.json").read_text())["restart_selection_scores"]
    scales = per_restart_lr_scales(settings.optim.restart_lr_scales, len(scores)) or (1.0,) * len(scores)
    train, test = data.splits["train"], data.splits["test"]
    rows = []
    for copy, (score, scale) in enumerate(zip(scores, scales)):
        module.autoencoder.chosen.fill_(copy)
        r2 = linear_r2(module.encode(train.x), train.z, module.encode(test.x), test.z)
        rows.append((copy, settings.optim.lr * scale, score, r2))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="stage-1 run directories (config.yaml, run.json, checkpoints/)")
    args = parser.parse_args(argv)
    print("| stage-1 run | kept copy | copies: lr / validation score / r2_z_from_h |")
    print("|---|---|---|")
    for run in args.runs:
        rows = restart_rows(run)
        kept = min(rows, key=lambda r: r[2])[0]
        cells = "; ".join(f"{c}: {lr:g} / {score:.2e} / {r2:.4f}" for c, lr, score, r2 in rows)
        print(f"| {run.parent.name}/{run.name} | {kept} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
