"""Is the invariant ball distributed the same way in every domain? The invariance penalties of the
balls runs, computed on the TRUE invariant latents z_S (standardised) of a stage-1 run's encoded
validation split, with the true domain labels and with the labels shuffled (what sampling noise
alone gives). The balls may not overlap (SPEC: redrawn when closer than 2r), so where a domain's
spurious box meets the invariant box the invariant ball avoids that domain's spurious ball: z_S is
then not exactly invariant, and a penalty that the truth does not satisfy pulls h_S away from it.
    python scripts/balls_invariance_check.py multirun/balls-cpu/stage1/k16-independent-seed*
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mdcrl import penalties
from mdcrl.data.encoded import load_encoded


def penalties_of(z_s: torch.Tensor, domains: torch.Tensor, num_domains: int) -> dict[str, float]:
    h = ((z_s - z_s.mean(0)) / z_s.std(0))[None]
    return {
        "mmd": penalties.mmd_penalty(h, domains, num_domains, fix_sigma=None, kernel_number=5, kernel_multiplier=2.0).item(),
        "minmax": penalties.minmax_penalty(h, domains, num_domains, top_k=5, loss_transform="mse").item(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="stage-1 balls run directories (with encoded/)")
    parser.add_argument("--shuffles", type=int, default=5, help="shuffled-label repetitions (mean reported)")
    args = parser.parse_args(argv)
    print("| stage-1 run | MMD, true domains | MMD, shuffled | min-max, true domains | min-max, shuffled |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        data, _ = load_encoded(run, expected_kind="balls")
        split = data.splits["valid"]
        z_s = torch.from_numpy(split.z[:, : data.z_dim_stable_true].astype(np.float32))  # the invariant balls' centres
        domains = torch.from_numpy(split.domain).long()
        k = data.num_domains
        true = penalties_of(z_s, domains, k)
        gen = torch.Generator().manual_seed(0)
        shuffled = [penalties_of(z_s, domains[torch.randperm(len(domains), generator=gen)], k) for _ in range(args.shuffles)]
        mean = {n: float(np.mean([s[n] for s in shuffled])) for n in true}
        print(f"| {run.name} | {true['mmd']:.4f} | {mean['mmd']:.4f} | {true['minmax']:.4f} | {mean['minmax']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
