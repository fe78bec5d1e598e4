"""What a shorter model.warm_start_patience would have decided, replayed from a sweep's curves.

At the patience epoch a warm-started run stops if no epoch has scored below the warm start's bar,
and trains the warm copy alone if it leads every other restart by the margin
(callbacks.WarmStartPatience). Every validation epoch's selection score of every restart is in the
run's curves (csv/metrics.csv: val/selection, val/selection_restart<r>) and the bar and margin in
run.json, so the decisions a shorter patience P would have taken can be read off a sweep run with a
longer one, without training again. For each run and each P:
- `same`: the outcome cannot differ from the recorded run's: it stops at P and was stopped
  recorded too (no epoch ever beat the bar), or it narrows to the warm copy at P and the recorded
  run ended with the warm copy chosen (the copies share nothing: the warm copy's weights are the same);
- `changed`: the first epoch below the bar lies between P and the recorded patience: the run would
  have stopped with the warm start instead of training on;
- `open`: the recorded run ended with another copy, or the warm copy does not lead at P and the
  later choice cannot be replayed.
Also the distribution of the first epoch below the bar. No ground truth is used.

    python scripts/warm_start_patience_replay.py SWEEP_DIR [--patience 5 10]
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter, defaultdict
from pathlib import Path

from mdcrl.builders import WARM_COPY
from mdcrl.report import Run, find_runs, penalty_name, scm_name


def curves(run: Run) -> list[dict]:
    """The validation rows of a run's curves, in epoch order, as floats (missing values dropped)."""
    with open(run.path / "csv" / "metrics.csv", newline="") as f:
        rows = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]
    return sorted((r for r in rows if "val/selection" in r), key=lambda r: r["epoch"])


def first_below(rows: list[dict], bar: float) -> int | None:
    return next((int(r["epoch"]) for r in rows if r["val/selection"] < bar), None)


def warm_copy_leads(row: dict, margin_score: float) -> bool:
    scores = {int(k.rsplit("restart", 1)[1]): v for k, v in row.items() if k.startswith("val/selection_restart")}
    if WARM_COPY not in scores or len(scores) < 2:
        return False
    return min(v - scores[WARM_COPY] for r, v in scores.items() if r != WARM_COPY) > margin_score


def replay(run: Run, patience: int) -> str:
    """same | changed | open: run's outcome under warm_start_patience=patience (see the module docstring)."""
    warm = run.info["warm_start"]
    rows = curves(run)
    first = first_below(rows, warm["bar"])
    recorded = warm.get("patience")
    if first is None or first >= patience:
        if first is None or (recorded is not None and first >= recorded):
            return "same"  # stopped at both (or no epoch ever beat the bar)
        return "changed"
    at = next((r for r in rows if int(r["epoch"]) == patience - 1), None)
    if at is not None and warm_copy_leads(at, warm["margin"] * warm["selection_null_std"]):
        return "same" if run.info.get("chosen_restart") == WARM_COPY else "open"
    return "open"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--patience", type=int, nargs="+", default=[5, 10])
    args = parser.parse_args(argv)
    outcomes = defaultdict(Counter)
    firsts = defaultdict(Counter)
    for run in find_runs([args.sweep]):
        warm = run.info.get("warm_start") or {}
        if run.status != "finished" or "bar" not in warm or not run.info.get("epochs"):
            continue
        group = (penalty_name(run.config), scm_name(run.config))
        first = first_below(curves(run), warm["bar"])
        firsts[group]["never" if first is None else (str(first) if first < 3 else "3-9" if first < 10 else "10+")] += 1
        for p in args.patience:
            outcomes[group, p][replay(run, p)] += 1
    heads = " | ".join(f"patience {p}: same / changed / open" for p in args.patience)
    print(f"| penalty | SCM | runs | first epoch below the bar | {heads} |")
    print("|---|---|---|---|" + "---|" * len(args.patience))
    for group in sorted(firsts):
        count = sum(firsts[group].values())
        spread = ", ".join(f"{k}: {v}" for k, v in sorted(firsts[group].items()))
        cells = [" / ".join(str(outcomes[group, p][o]) for o in ("same", "changed", "open")) for p in args.patience]
        print(f"| {group[0]} | {group[1]} | {count} | {spread} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
