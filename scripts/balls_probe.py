"""The kernel-ridge (nonlinear) probes of every finished balls stage-2 run, next to the linear ones
of its metrics.json: is what the linear probe misses in h_S still there, nonlinearly? The CPU
presets skip the nonlinear probe during training (nonlinear_probe=false); this re-encodes the
train and test splits with each run's best checkpoint and fits both probes.
    python scripts/balls_probe.py multirun/balls-cpu/stage2 --out docs/results/balls/probes.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from balls_variants_table import stage1_case_and_seed  # scripts/ is on the path when run as a script
from omegaconf import OmegaConf

from mdcrl.metrics import evaluate_latents
from mdcrl.visualize import load_trained

KEYS = ["r2_zinv_from_hinv", "r2_zinv_from_hinv_nonlinear", "r2_zsp_from_hinv", "r2_zsp_from_hinv_nonlinear"]


def probe_run(run_dir: Path) -> dict:
    cfg, data, module = load_trained(run_dir)
    train, test = data.splits["train"], data.splits["test"]
    metrics = evaluate_latents(
        module.encode(train.x),
        train.z,
        train.domain,
        module.encode(test.x),
        test.z,
        test.domain,
        module.z_dim_stable,
        data.z_dim_stable_true,
        nonlinear=True,
    )
    case, _ = stage1_case_and_seed(cfg.run_path)
    return {"tags": f"{case}: " + "/".join(cfg.logger.wandb.tags), **{k: metrics[k] for k in KEYS}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tag", action="append", default=[], help="only runs with this wandb tag (repeatable: any of them)")
    args = parser.parse_args(argv)
    runs = [d for d in sorted(args.sweep.glob("run-*")) if (d / "metrics.json").exists()]  # finished runs
    if args.tag:
        runs = [d for d in runs if set(args.tag) & set(OmegaConf.load(d / "config.yaml").logger.wandb.tags)]
    table = pd.DataFrame([probe_run(d) for d in runs])
    cells = table.groupby("tags")[KEYS].agg(lambda v: f"{np.mean(v):.3f} ± {np.std(v):.3f} (n={len(v)})")
    lines = ["| runs | " + " | ".join(KEYS) + " |", "|---" * (len(KEYS) + 1) + "|"]
    lines += [f"| {tags} | " + " | ".join(row) + " |" for tags, row in zip(cells.index, cells.values)]
    args.out.write_text(
        "# Linear and kernel-ridge probes of the balls stage-2 runs (mean ± std over stage-1 seeds)\n\n"
        f"Made by `python scripts/balls_probe.py {args.sweep} --out {args.out}`.\n\n" + "\n".join(lines) + "\n"
    )
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
