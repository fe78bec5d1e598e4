"""Where a finished linear grid's time went, from its runs' own records (run.json), no re-run:
the runs' own time per seed command (set-up, training, evaluation, writing), the min-max + MMD
training step's cost per z_dim, and how the warm-started min-max + MMD runs ended.
    python scripts/grid_time_breakdown.py multirun/linear-grid-kernel
(docs/throughput.md, "Why the goals are out of reach on this machine")."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def command_of(run: dict, config: str) -> str:
    """The seed command a run belongs to: its penalty tag, and the closed form apart."""
    penalty = run["tags"][-1]
    if "max_epochs: 0" in config:
        return "the closed form (experiment=moment_baseline)"
    init = "moment" if "init: moment" in config else "random"
    return f"{penalty} (init={init})"


def warm_start_outcome(run: dict) -> str:
    warm = run.get("warm_start") or {}
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
    for path in sorted(args.sweep.glob("*/run.json")):
        run = json.loads(path.read_text())
        if run.get("status") != "finished":
            continue
        config = (path.parent / "config.yaml").read_text()
        row = commands[command_of(run, config)]
        row["runs"] += 1
        row["own"] += run["wall_time_s"]
        row["training"] += run["fit_time_s"]
        if run["tags"][-1] == "minmax-mmd" and "init: moment" in config:
            step = steps[run["data"]["z_dim"]]
            step["fit"] += run["fit_time_s"]
            step["steps"] += run["optimizer_steps"]
            outcome = outcomes[warm_start_outcome(run)]
            outcome["runs"] += 1
            outcome["fit"] += run["fit_time_s"]
            outcome["epochs"] += run["epochs"]
    print("| command | runs | runs' own time | of which training |\n|---|---|---|---|")
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
