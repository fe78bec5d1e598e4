"""Before / after table of the linear grid from two mdcrl-report CSVs (report.csv).

    python scripts/compare_linear_grid.py docs/results/linear/before-warm-start/report.csv \
        docs/results/linear/report.csv --metric r2_zinv_from_hinv --scm independent > table.md

Rows z_dim x num_domains; columns: each method of the "after" report, and beside it the same column
of the "before" report where it has one (cells: mean ± std over seeds, 4 decimals; n when not 5).
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


if __name__ == "__main__":
    main()
