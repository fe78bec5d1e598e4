"""The balls stage-2 runs of one or more sweep directories as one markdown table: per stage-1 case
(the stage-1 run's directory name without its seed) and stage-2 variant (the last wandb tag), the mean
± std over the stage-1 seeds of the held-out linear probes, with every seed's value. Unfinished runs
(no metrics.json) are left out and counted.
    python scripts/balls_variants_table.py multirun/balls-cpu/variants multirun/balls-cpu/stage2
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf

METRICS = ("r2_zinv_from_hinv", "r2_zsp_from_hinv", "r2_z_from_h")


def stage1_case_and_seed(run_path) -> tuple[str, str]:
    """A stage-2 run's stage-1 case and seed, from its run_path directory name (<case>-seed<seed>)."""
    case, _, seed = Path(str(run_path)).name.rpartition("-seed")
    return case, seed


def collect(sweeps: list[Path]) -> tuple[dict, int]:
    groups, unfinished = defaultdict(dict), 0
    for sweep in sweeps:
        for run in sorted(sweep.glob("*/config.yaml")):
            run = run.parent
            if not (run / "metrics.json").exists():
                unfinished += 1
                continue
            cfg = OmegaConf.load(run / "config.yaml")
            case, seed = stage1_case_and_seed(cfg.run_path)
            metrics = json.loads((run / "metrics.json").read_text())
            groups[(case, list(cfg.logger.wandb.tags)[-1])][seed] = metrics
    return groups, unfinished


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="stage-2 sweep directories")
    args = parser.parse_args(argv)
    groups, unfinished = collect(args.sweeps)
    print("| stage-1 case | stage 2 | seeds | " + " | ".join(METRICS) + " | per seed (zinv / zsp) |")
    print("|---|---|---|" + "---|" * len(METRICS) + "---|")
    for (case, variant), runs in sorted(groups.items()):
        cells = []
        for name in METRICS:
            values = [m[name] for m in runs.values()]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
        seeds = ", ".join(f"{s}: {m['r2_zinv_from_hinv']:.3f} / {m['r2_zsp_from_hinv']:.3f}" for s, m in sorted(runs.items()))
        print(f"| {case} | {variant} | {len(runs)} | " + " | ".join(cells) + f" | {seeds} |")
    if unfinished:
        print(f"\n({unfinished} unfinished runs left out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
