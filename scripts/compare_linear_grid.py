"""Before / after table of the linear grid from two mdcrl-report CSVs (report.csv).

    python scripts/compare_linear_grid.py docs/results/linear/before-warm-start/report.csv \
        docs/results/linear/report.csv --metric r2_zinv_from_hinv --scm independent > table.md

Rows z_dim x num_domains; columns: each method of the "after" report, and beside it the same column
of the "before" report where it has one (cells: mean ± std over seeds, 4 decimals; n when not 5).
With --tolerance T, then every (cell, method) whose mean moved by more than T, largest drop first.
"""

from __future__ import annotations

import argparse
import math

import pandas as pd


def cell(row) -> str:
    if row is None or row["count"] == 0 or math.isnan(row["mean"]):
        return "—"
    std = "—" if math.isnan(row["std"]) else f"{row['std']:.4f}"
    n = "" if row["count"] == 5 else f" (n={int(row['count'])})"
    return f"{row['mean']:.4f} ± {std}{n}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=str)
    parser.add_argument("after", type=str)
    parser.add_argument("--metric", default="r2_zinv_from_hinv")
    parser.add_argument("--scm", default="independent", help="independent | dynamic")
    parser.add_argument(
        "--tolerance", type=float, default=None, help="also list every cell whose mean moved by more than this (after - before)"
    )
    args = parser.parse_args(argv)
    frames = {}
    for name, path in (("before", args.before), ("after", args.after)):
        table = pd.read_csv(path)
        table = table[(table["metric"] == args.metric) & table["column"].str.contains(args.scm)]
        frames[name] = {(r.z_dim, r.num_domains, r.column): r._asdict() for r in table.itertuples()}
    methods = sorted({c for _, _, c in frames["after"]}, key=lambda c: (not c.startswith("closed"), c))
    cells = sorted({(z, k) for z, k, _ in frames["after"]} | {(z, k) for z, k, _ in frames["before"]})
    header = ["z_dim", "k"]
    for method in methods:
        label = method.rsplit(",", 1)[0]
        if any(c == method for _, _, c in frames["before"]):
            header.append(f"{label} (before)")
        header.append(label)
    print(f"{args.metric}, {args.scm} SCM\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for z, k in cells:
        row = [str(z), str(k)]
        for method in methods:
            if any(c == method for _, _, c in frames["before"]):
                row.append(cell(frames["before"].get((z, k, method))))
            row.append(cell(frames["after"].get((z, k, method))))
        print("| " + " | ".join(row) + " |")
    if args.tolerance is not None:
        print_changes(frames, args.tolerance)


def print_changes(frames: dict, tolerance: float) -> None:
    """Every (cell, method) present before and after whose mean moved by more than ``tolerance``."""
    moved = []
    for key, after in frames["after"].items():
        before = frames["before"].get(key)
        if before is not None and abs(after["mean"] - before["mean"]) > tolerance:
            moved.append((after["mean"] - before["mean"], key, before["mean"], after["mean"]))
    shared = sum(key in frames["before"] for key in frames["after"])
    print(f"\n{len(moved)} of {shared} (cell, method) means moved by more than {tolerance}:\n")
    for change, (z, k, method), before, after in sorted(moved):
        print(f"- ({z}, {k}) {method.rsplit(',', 1)[0]}: {before:.4f} -> {after:.4f} ({change:+.4f})")


if __name__ == "__main__":
    main()
