"""Recompute the ground-truth diagnostics of finished runs from their best weights, in place.

    python scripts/recompute_diagnostics.py multirun/linear-grid [more run dirs or folders ...]

For every finished run (metrics.json present) under the paths: rebuild its data and model from
config.yaml, load the checkpoint run.json names (by its name, from the run's own checkpoints/), and
rewrite metrics.json's `selection_found` and `selection_at_truth` (evaluation.optimisation_gap) and,
for warm-started runs, `warm_start` (evaluation.warm_start_report). Nothing else in metrics.json
changes: training and the other metrics do not depend on these. Used when the definition of a
diagnostic changed after runs had finished (docs/results/linear/README.md says which).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from mdcrl.builders import build_data, build_module
from mdcrl.evaluation import model_inputs, optimisation_gap, warm_start_report
from mdcrl.io import read_json, read_text, write_json_atomic
from mdcrl.settings import RunSettings
from mdcrl.train import load_weights


def recompute(run_dir: Path) -> dict:
    metrics, info = read_json(run_dir / "metrics.json"), read_json(run_dir / "run.json")
    settings = RunSettings.from_config(OmegaConf.create(read_text(run_dir / "config.yaml")))
    data = build_data(settings)
    module = build_module(settings, data)
    # the file of that name in this run's own checkpoints/ (the directory may have moved since)
    load_weights(module, run_dir / "checkpoints" / Path(info["best_checkpoint"]).name)
    module.warm_start_kept = bool((info.get("warm_start") or {}).get("kept_untrained"))
    train = data.splits["train"]
    h_train, x_train = module.encode(train.x), model_inputs(module, train.x)
    metrics.update(optimisation_gap(module, data, h_train, x_train))
    if module.warm_start is not None:
        metrics["warm_start"] = warm_start_report(module, h_train, x_train)
    write_json_atomic(run_dir / "metrics.json", metrics)
    return metrics


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    runs = sorted({p.parent for root in args.paths for p in Path(root).rglob("metrics.json")})
    for i, run_dir in enumerate(runs):
        m = recompute(run_dir)
        print(f"{i + 1}/{len(runs)} {run_dir}: found {m['selection_found']:.4f} truth {m['selection_at_truth']:.4f}", flush=True)


if __name__ == "__main__":
    main()
