"""How far below the warm start training came, in units of the score's own noise, per cell of a sweep.

For each warm-started run (run.json `warm_start`): (warm start's validation selection score - the
best trained epoch's) / the warm start's null spread (`selection_null_std`, permuted domain labels).
A trained epoch replaces the warm start only where this exceeds model.warm_start_margin (default 2).
The best trained score is read from the run's curves (csv/metrics.csv, `val/selection`), so runs
made before run.json recorded `best_trained_selection` are read too. No ground truth is used.

    python scripts/warm_start_margin_table.py SWEEP_DIR [--penalty mmd] [--scm independent]
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from mdcrl.report import Run, find_runs, penalty_name, scm_name


def run_row(run: Run) -> tuple[tuple, float] | None:
    """((penalty, scm, z_dim, num_domains), margin in null spreads) of a finished warm-started run, else None."""
    warm = run.info.get("warm_start")
    if run.status != "finished" or not warm or "selection_null_std" not in warm or not run.info.get("epochs"):
        return None
    with open(run.path / "csv" / "metrics.csv", newline="") as f:
        trained = [float(r["val/selection"]) for r in csv.DictReader(f) if r.get("val/selection")]
    ds = run.config["datamodule"]["dataset"]
    key = (penalty_name(run.config), scm_name(run.config), int(ds["z_dim"]), int(ds["num_domains"]))
    return key, (warm["selection"] - min(trained)) / warm["selection_null_std"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--penalty", default=None, help="minmax | mmd | minmax+mmd (default: all)")
    parser.add_argument("--scm", default=None, help="independent | dynamic (default: both)")
    args = parser.parse_args(argv)
    cells = defaultdict(list)
    for run in find_runs([args.sweep]):
        row = run_row(run)
        if row and args.penalty in (None, row[0][0]) and (args.scm is None or row[0][1].startswith(args.scm)):
            cells[row[0]].append(row[1])
    print("| penalty | SCM | z_dim | k | (warm - best trained) / null std, per seed | runs above the margin 2 |")
    print("|---|---|---|---|---|---|")
    for key in sorted(cells):
        values = cells[key]
        above = sum(v > 2 for v in values)
        print(f"| {' | '.join(map(str, key))} | {', '.join(f'{v:+.1f}' for v in values)} | {above} of {len(values)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
