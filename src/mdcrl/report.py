"""Runs -> the paper's tables and plots.

    mdcrl-report multirun/ [more run dirs ...] --out docs/results [--metrics r2_zinv_from_hinv ...]
    python -m mdcrl.report ...

Finds every run directory (one holding config.yaml) under the given paths and writes to --out:
  report.md / report.csv   rows z_dim x num_domains, columns penalty x SCM (or tags with
                           --columns tags); cells "mean ± std (n)" over seeds, one table per metric
  <metric>.png             the metric against num_domains, one line per z_dim and column
  problems                 failed, unfinished and unreadable runs, and cells that mix code versions
                           or settings other than the seed, listed in report.md and printed
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mdcrl.errors import MdcrlError, exit_on_expected_error
from mdcrl.io import read_json, read_text
from mdcrl.settings import PRESENTATION_SETTINGS

HEADLINE_METRICS = ("r2_zinv_from_hinv", "r2_zsp_from_hinv")
ROWS = ("z_dim", "num_domains")
# Config entries that may differ between the seeds of one cell without mixing experiments: the seed,
# the presentation settings (one list, mdcrl.settings), where training started from, the loggers, and
# a stage-2 run's stage-1 run (run_path: in a two-stage sweep, each replicate has its own stage 1).
PER_RUN_KEYS = ("seed", "run_path", *PRESENTATION_SETTINGS, "ckpt_path", "logger")


@dataclass
class Run:
    path: Path
    config: dict
    status: str  # finished | failed | unfinished | unreadable
    metrics: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    problem: str = ""


class ReportError(MdcrlError):
    """Nothing to report on, or nowhere to write it."""


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


# metrics.json entries that are text, not numbers, and their longest accepted length:
# evaluation.warm_start_report's verdict, metrics.invariance_verdict's.
TEXT_METRICS = {"warm_start.verdict": 40, "diagnostics.verdict": 400}


def metrics_problem(metrics) -> str:
    """Why a parsed metrics.json cannot be tabulated ('' when it can): mdcrl writes an object whose
    values are numbers, booleans, null or nested objects of those, and a word at TEXT_METRICS."""
    if not isinstance(metrics, dict):
        return f"holds a {type(metrics).__name__}, not an object of metrics"
    bad = [
        k
        for k, v in _flatten(metrics).items()
        if not (v is None or isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) < TEXT_METRICS.get(k, 0)))
    ]
    return f"has non-numeric values for {bad[:5]}" if bad else ""


def load_run(path: Path) -> Run:
    try:
        config = yaml.safe_load(read_text(path / "config.yaml")) or {}
    except (OSError, yaml.YAMLError) as err:
        return Run(path, {}, "unreadable", problem=f"config.yaml unreadable: {err}")
    try:
        info = read_json(path / "run.json") if (path / "run.json").exists() else {}
    except (OSError, ValueError) as err:
        return Run(path, config, "unreadable", problem=f"run.json is truncated or corrupt ({err})")
    if not isinstance(info, dict):
        return Run(path, config, "unreadable", problem="run.json is not an object")
    metrics_path = path / "metrics.json"
    if metrics_path.exists():
        try:
            metrics = read_json(metrics_path)
        except (OSError, ValueError) as err:
            return Run(path, config, "unreadable", info=info, problem=f"metrics.json is truncated or corrupt ({err})")
        problem = metrics_problem(metrics)
        if problem:
            return Run(path, config, "unreadable", info=info, problem=f"metrics.json {problem}")
        return Run(path, config, "finished", metrics, info)
    if info.get("status") == "failed":
        return Run(path, config, "failed", info=info, problem=info.get("error", "failed"))
    return Run(path, config, "unfinished", info=info, problem=f"no metrics.json (status {info.get('status', 'unknown')!r})")


def find_runs(paths: list[Path]) -> list[Run]:
    dirs = set()
    for root in paths:
        root = Path(root)
        if (root / "config.yaml").exists():
            dirs.add(root)
        dirs.update(p.parent for p in root.rglob("config.yaml") if p.parent.name != ".hydra")
    return [load_run(d) for d in sorted(dirs)]


def penalty_name(config: dict) -> str:
    criteria = (config.get("model") or {}).get("penalty_criterion") or {}
    on = [name for name, weight in criteria.items() if weight and float(weight) > 0]
    return "+".join(on) if on else "none"


def method_name(config: dict) -> str:
    """The column's method: "closed form" for the moment estimate alone (trainer.max_epochs=0), else
    the penalties, with the model choices that differ from the defaults (model.init=random, the free
    linear frame) in brackets. A run written before model.init existed started at random."""
    model = config.get("model") or {}
    if int((config.get("trainer") or {}).get("max_epochs", 1) or 0) == 0:
        return "closed form"
    notes = []
    if model.get("init", "random") != "moment":
        notes.append("init=random")
    if (model.get("autoencoder") or {}).get("frame") == "free":
        notes.append("free frame")
    return penalty_name(config) + (f" [{', '.join(notes)}]" if notes else "")


def scm_name(config: dict) -> str:
    ds = (config.get("datamodule") or {}).get("dataset") or {}
    if ds.get("correlated_z"):
        return f"dynamic(p={ds.get('corr_prob')})"
    return "independent"


def describe(run: Run, columns: str) -> dict:
    ds = (run.config.get("datamodule") or {}).get("dataset") or {}
    recorded = run.info.get("data") or {}  # run.json: the data's dimensions (stage 2 has them only there)
    z_dim = ds.get("z_dim") or recorded.get("z_dim") or run.config.get("model", {}).get("z_dim")
    row = {"z_dim": z_dim, "num_domains": ds.get("num_domains") or recorded.get("num_domains")}
    if columns == "tags":
        row["column"] = "/".join(run.info.get("tags") or []) or "untagged"
    else:
        row["column"] = f"{method_name(run.config)}, {scm_name(run.config)}"
    return row


@functools.cache
def packaged_defaults() -> dict:
    """The packaged default config, flattened: a run made before a setting existed lacks its key and
    ran with its default (e.g. trainer.val_check_interval, model.penalty_standardize), so beside runs
    that record the default it is not a mixed cell."""
    from omegaconf import OmegaConf

    from mdcrl.settings import compose_train_config

    return _flatten(OmegaConf.to_container(compose_train_config([]), resolve=False))


def cell_problems(cell_runs: list[Run]) -> list[str]:
    """Settings (other than per-run ones) or code versions that differ inside one cell."""
    problems = []
    flats = [_flatten(r.config) for r in cell_runs]
    keys = set().union(*flats)
    defaults = packaged_defaults()
    differing = sorted(
        k
        for k in keys
        if not any(k == p or k.startswith(p + ".") for p in PER_RUN_KEYS)
        and len({json.dumps(f.get(k, defaults.get(k))) for f in flats}) > 1
    )
    if differing:
        problems.append(f"mixed settings {differing}")
    replicates = [(r.config.get("seed"), r.config.get("run_path")) for r in cell_runs]
    repeated = sorted({str(seed) for seed, path in replicates if replicates.count((seed, path)) > 1})
    if repeated:
        problems.append(f"seeds {repeated} counted more than once (the same run in two directories?)")
    versions = {r.info.get("mdcrl_version") for r in cell_runs}
    if len(versions) > 1:
        problems.append(f"mixed code versions {sorted(map(str, versions))}")
    return problems


def summarize(runs: list[Run], metrics: list[str], columns: str = "config") -> tuple[pd.DataFrame, list[str]]:
    """Long table: one row per (z_dim, num_domains, column, metric) with mean, std (ddof=1), count."""
    finished = [r for r in runs if r.status == "finished"]
    records, problems = [], []
    cells: dict[tuple, list[Run]] = {}
    for run in finished:
        d = describe(run, columns)
        cells.setdefault((d["z_dim"], d["num_domains"], d["column"]), []).append(run)
    for (z_dim, k, column), cell_runs in sorted(cells.items(), key=lambda kv: tuple(map(str, kv[0]))):
        for problem in cell_problems(cell_runs):
            problems.append(f"z_dim={z_dim}, num_domains={k}, {column}: {problem}")
        known = [r.metrics["support_identifiable"] for r in cell_runs if r.metrics.get("support_identifiable") is not None]
        identifiable = f"{sum(map(bool, known))}/{len(known)}" if known else ""
        gap = "" if column.startswith("closed form") else optimisation_gap_mark(cell_runs)
        for metric in metrics:
            numbers = [r.metrics.get(metric) for r in cell_runs]
            numbers = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in numbers]
            non_finite = [str(r.path) for r, v in zip(cell_runs, numbers) if v is not None and not math.isfinite(v)]
            if non_finite:
                problems.append(
                    f"z_dim={z_dim}, num_domains={k}, {column}: {metric} is NaN or infinite in {len(non_finite)} run(s), "
                    f"left out of the cell: {', '.join(non_finite[:3])}"
                )
            values = np.array([v for v in numbers if v is not None and math.isfinite(v)], dtype=float)
            records.append(
                {
                    "z_dim": z_dim,
                    "num_domains": k,
                    "column": column,
                    "metric": metric,
                    "mean": values.mean() if len(values) else np.nan,
                    "std": values.std(ddof=1) if len(values) > 1 else np.nan,
                    "count": len(values),
                    "identifiable": identifiable,
                    "gap": gap,
                }
            )
    return pd.DataFrame.from_records(records), problems


# A cell whose mean found selection score exceeds the mean score at the truth by more than this
# fraction is marked: the optimiser, not the data, left the objective above the truth's.
OPTIMISATION_GAP = 0.05
# ... and by more than this, absolutely: without a penalty both scores are reconstruction errors at
# float precision (found 1e-17 against truth 1e-30 read as "+10^16 %"), which is no gap at all.
OPTIMISATION_GAP_FLOOR = 1e-6


def optimisation_gap_mark(cell_runs: list[Run]) -> str:
    """ " [opt gap +x%]" where the cell's mean selection_found exceeds its mean selection_at_truth
    by more than OPTIMISATION_GAP and by more than OPTIMISATION_GAP_FLOOR absolutely (metrics.json,
    evaluation.optimisation_gap), else ""."""
    pairs = [(r.metrics.get("selection_found"), r.metrics.get("selection_at_truth")) for r in cell_runs]
    pairs = [(f, t) for f, t in pairs if isinstance(f, (int, float)) and isinstance(t, (int, float))]
    if not pairs:
        return ""
    found, truth = (float(np.mean(v)) for v in zip(*pairs))
    if truth > 0 and found > (1 + OPTIMISATION_GAP) * truth and found - truth > OPTIMISATION_GAP_FLOOR:
        return f"opt gap +{100 * (found / truth - 1):.0f}%"
    return ""


def number(value: float, digits: int = 3) -> str:
    """``digits`` decimals, or three significant digits in exponent form for large values (1e308
    would otherwise print 300 digits)."""
    return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"


def format_cell(mean: float, std: float, count: int, identifiable: str = "", gap: str = "", digits: int = 3) -> str:
    if count == 0 or math.isnan(mean):
        return "—"
    spread = "—" if math.isnan(std) else number(std, digits)
    mark = f" [{identifiable} id]" if identifiable else ""
    mark += f" [{gap}]" if gap else ""
    return f"{number(mean, digits)} ± {spread} ({count}){mark}"


def mixed_cells_per_seed(runs: list[Run], metrics: list[str], columns: str) -> str:
    """Per-seed rows for the cells where support identifiability differs between seeds."""
    cells: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.status == "finished" and run.metrics.get("support_identifiable") is not None:
            d = describe(run, columns)
            cells.setdefault((d["z_dim"], d["num_domains"], d["column"]), []).append(run)
    lines = []
    for (z_dim, k, column), cell_runs in sorted(cells.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if len({r.metrics["support_identifiable"] for r in cell_runs}) < 2:
            continue
        for r in sorted(cell_runs, key=lambda r: str(r.config.get("seed"))):
            values = " | ".join(f"{float(r.metrics.get(m, float('nan'))):.4f}" for m in metrics)
            lines.append(
                f"| {z_dim} | {k} | {column} | {r.config.get('seed')} | {r.metrics['support_identifiable']} | {values} |"
            )
    if not lines:
        return ""
    header = [
        "## Cells with certified and uncertified seeds, per seed",
        "",
        "| z_dim | num_domains | column | seed | support_identifiable | " + " | ".join(metrics) + " |",
        "|" + "---|" * (5 + len(metrics)),
    ]
    return "\n".join(header + lines)


def markdown_tables(table: pd.DataFrame, digits: int = 3) -> str:
    parts = []
    for metric, sub in table.groupby("metric", sort=False):
        identifiable = sub["identifiable"] if "identifiable" in sub else [""] * len(sub)
        gaps = sub["gap"] if "gap" in sub else [""] * len(sub)
        cells = zip(sub["mean"], sub["std"], sub["count"], identifiable, gaps)
        sub = sub.assign(cell=[format_cell(*values, digits=digits) for values in cells])
        wide = sub.pivot_table(index=list(ROWS), columns="column", values="cell", aggfunc="first").fillna("—")
        header = "| z_dim | num_domains | " + " | ".join(wide.columns) + " |"
        lines = [f"### {metric}", "", header, "|" + "---|" * (len(wide.columns) + 2)]
        for (z_dim, k), row in wide.iterrows():
            lines.append(f"| {z_dim} | {k} | " + " | ".join(row.values) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def plot_metrics(table: pd.DataFrame, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for metric, sub in table.groupby("metric", sort=False):
        # One panel per column (penalty x SCM, or tag set), one line per z_dim: readable at 24 lines.
        columns = list(dict.fromkeys(sub["column"]))
        ncols = min(3, len(columns))
        nrows = math.ceil(len(columns) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), squeeze=False, sharey=True)
        for ax, column in zip(axes.flat, columns):
            for z_dim, line in sub[sub["column"] == column].groupby("z_dim"):
                line = line.sort_values("num_domains")
                ax.errorbar(
                    line["num_domains"], line["mean"], yerr=line["std"].fillna(0), marker="o", capsize=3, label=f"z_dim={z_dim}"
                )
            ax.set_xscale("log", base=2)
            ax.set_title(column, fontsize=9)
            ax.set_xlabel("num_domains")
            ax.grid(alpha=0.3)
        for ax in axes.flat[len(columns) :]:
            ax.axis("off")
        for ax in axes[:, 0]:
            ax.set_ylabel(metric)
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"{metric} (mean ± std over seeds)")
        fig.tight_layout()
        path = out / f"{metric}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        files.append(path)
    return files


def write_report(
    paths: list[Path], out: Path, metrics: list[str], columns: str = "config", plots: bool = True, digits: int = 3
) -> dict:
    """Gather the runs under ``paths`` and write report.md, report.csv and plots into ``out``."""
    runs = find_runs(paths)
    if not runs:
        raise ReportError(f"no run directories (with a config.yaml) under {', '.join(map(str, paths))}.")
    table, problems = summarize(runs, metrics, columns)
    bad = [r for r in runs if r.status != "finished"]
    problems += [f"{r.status}: {r.path}: {r.problem}" for r in bad]
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "report.csv", index=False)
    finished = sum(r.status == "finished" for r in runs)
    text = ["# mdcrl report", "", f"{finished} finished runs of {len(runs)} found under {', '.join(map(str, paths))}.", ""]
    if "identifiable" in table and table["identifiable"].astype(bool).any():
        text += [
            "`[a/b id]`: a of the cell's b seeds are certified identifiable by support (README, "
            '"Where the limit is 1"): only there can min-max reach r2_zinv_from_hinv = 1.',
            "",
        ]
    if "gap" in table and table["gap"].astype(bool).any():
        text += [
            f"`[opt gap +x%]`: the cell's mean validation selection score is more than {100 * OPTIMISATION_GAP:.0f}% above "
            "that of the encoder whose stable block is the least-squares map to the true z_S (metrics.json "
            "selection_found / selection_at_truth): a better solution of the objective exists that training did not reach.",
            "",
        ]
    text.append(markdown_tables(table, digits) if len(table) else "No finished runs.")
    per_seed = mixed_cells_per_seed(runs, metrics, columns)
    if per_seed:
        text += ["", per_seed]
    if problems:
        text += ["", "## Problems", ""] + [f"- {p}" for p in problems]
    (out / "report.md").write_text("\n".join(text) + "\n")
    if plots and len(table):
        plot_metrics(table, out)
    return {"runs": len(runs), "finished": finished, "problems": problems, "table": table}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mdcrl-report", description="Gather mdcrl runs into paper-style tables and plots.")
    parser.add_argument("paths", nargs="+", type=Path, help="run directories or folders that contain them (searched recursively)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="where to write report.md, report.csv and the plots")
    parser.add_argument("--metrics", nargs="+", default=list(HEADLINE_METRICS), help="metrics.json keys to tabulate")
    parser.add_argument(
        "--columns",
        choices=["config", "tags"],
        default="config",
        help="table columns: penalty x SCM from each run's config, or its tags",
    )
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--digits", type=int, default=3, choices=range(1, 9), help="decimals in report.md's cells")
    args = parser.parse_args(argv)
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"error: no such path: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file; pass a directory for report.md, report.csv and the plots.", file=sys.stderr)
        return 2
    exit_on_expected_error(
        write_report, args.paths, args.out, args.metrics, args.columns, plots=not args.no_plots, digits=args.digits
    )
    print((args.out / "report.md").read_text())
    print(f"wrote {args.out / 'report.md'} and {args.out / 'report.csv'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
