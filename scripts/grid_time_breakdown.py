"""Where a finished linear grid's time went, from its runs' own records (run.json), no re-run:
the runs' own time per seed command (set-up, training, evaluation, writing), the min-max + MMD
training step's cost per z_dim, and how the warm-started min-max + MMD runs ended.
    python scripts/grid_time_breakdown.py multirun/linear-grid-kernel
(docs/throughput.md, "Why the goals are out of reach on this machine")."""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from mdcrl.report import find_runs, method_name


def warm_start_outcome(info: dict) -> str:
    warm = info.get("warm_start") or {}
    if warm.get("kept_untrained"):
        return "stopped with the warm start (patience)"
    if warm.get("narrowed_at") is not None:
        return f"narrowed: {warm.get('narrowed_because')}"
    return "every copy to the floor"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sweep", type=Path)
    args = parser.parse_args()
    commands = defaultdict(lambda: defaultdict(float))
    steps = defaultdict(lambda: defaultdict(float))
    outcomes = defaultdict(lambda: defaultdict(float))
    for run in find_runs([args.sweep]):
        if run.status != "finished":
            continue
        info, method = run.info, method_name(run.config)  # "closed form", "minmax", "minmax [init=random]", ...
        row = commands[method]
        row["runs"] += 1
        row["own"] += info["wall_time_s"]
        row["training"] += info["fit_time_s"]
        if method == "minmax+mmd":  # the seed's min-max + MMD commands, warm-started
            step = steps[info["data"]["z_dim"]]
            step["fit"] += info["fit_time_s"]
            step["steps"] += info["optimizer_steps"]
            outcome = outcomes[warm_start_outcome(info)]
            outcome["runs"] += 1
            outcome["fit"] += info["fit_time_s"]
            outcome["epochs"] += info["epochs"]
    print("| method | runs | runs' own time | of which training |\n|---|---|---|---|")
    for name, row in sorted(commands.items()):
        print(f"| {name} | {row['runs']:.0f} | {row['own']:.0f} s | {row['training']:.0f} s |")
    print("\nmin-max + MMD (warm start), fit time per optimiser step (validation included):")
    for z_dim, step in sorted(steps.items()):
        print(f"  z_dim {z_dim}: {1000 * step['fit'] / step['steps']:.1f} ms")
    print("\n| how a min-max + MMD run ended | runs | training | per run | epochs per run |\n|---|---|---|---|---|")
    for name, row in sorted(outcomes.items()):
        n = row["runs"]
        print(f"| {name} | {n:.0f} | {row['fit']:.0f} s | {row['fit'] / n:.1f} s | {row['epochs'] / n:.1f} |")


if __name__ == "__main__":
    main()
