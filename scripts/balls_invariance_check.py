"""Is the invariant ball distributed the same way in every domain? The invariance penalties of the
balls runs, computed on the TRUE invariant latents z_S (standardised) of a stage-1 run's encoded
validation split, with the true domain labels and with the labels shuffled (what sampling noise
alone gives). The balls may not overlap (SPEC: redrawn when closer than 2r), so where a domain's
spurious box meets the invariant box the invariant ball avoids that domain's spurious ball: z_S is
then not exactly invariant, and a penalty that the truth does not satisfy pulls h_S away from it.
    python scripts/balls_invariance_check.py multirun/balls-cpu/stage1/k16-independent-seed*

A second table asks the same of a spurious feature that every stage 2 may keep: the spurious ball's
offset from its domain's mean position (z_U minus the domain's mean of z_U). Its domain means are 0 in
every domain, and its spread changes only with the width of the domain's box, so the penalties see
little of it; yet a linear regression recovers z_U from it (train split -> test split) at the R²
shown, an upper bound on what this feature alone lets into r2_zsp_from_hinv.
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
        "domain_means": penalties.domain_means_penalty(h, domains, num_domains).item(),
        "domain_covariances": penalties.domain_covariances_penalty(h, domains, num_domains).item(),
    }


def with_shuffled(z: torch.Tensor, domains: torch.Tensor, num_domains: int, shuffles: int) -> tuple[dict, dict]:
    """penalties_of z with the true domain labels, and their mean over ``shuffles`` shuffled labellings."""
    gen = torch.Generator().manual_seed(0)
    shuffled = [penalties_of(z, domains[torch.randperm(len(domains), generator=gen)], num_domains) for _ in range(shuffles)]
    true = penalties_of(z, domains, num_domains)
    return true, {n: float(np.mean([s[n] for s in shuffled])) for n in true}


def offset_from_domain_mean(z_u: np.ndarray, domains: np.ndarray, means: np.ndarray) -> np.ndarray:
    return z_u - means[domains]


def offset_r2(data) -> float:
    """Held-out R² of the linear regression of z_U on its offset from its domain's (train) mean."""
    from sklearn.linear_model import LinearRegression

    d_s = data.z_dim_stable_true
    train, test = data.splits["train"], data.splits["test"]
    z_train, z_test = train.z[:, d_s:].astype(np.float64), test.z[:, d_s:].astype(np.float64)
    means = np.stack([z_train[train.domain == i].mean(0) for i in range(data.num_domains)])
    fit = LinearRegression().fit(offset_from_domain_mean(z_train, train.domain, means), z_train)
    return float(fit.score(offset_from_domain_mean(z_test, test.domain, means), z_test))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="stage-1 balls run directories (with encoded/)")
    parser.add_argument("--shuffles", type=int, default=5, help="shuffled-label repetitions (mean reported)")
    args = parser.parse_args(argv)
    names = ("MMD", "min-max", "domain_means", "domain_covariances")
    header = "".join(f"| {n}, true domains | {n}, shuffled " for n in names) + "|"
    rows = {"z_S": [], "offset": []}
    for run in args.runs:
        data, _ = load_encoded(run, expected_kind="balls")
        split, d_s = data.splits["valid"], data.z_dim_stable_true
        domains = torch.from_numpy(split.domain).long()
        z_u = split.z[:, d_s:].astype(np.float64)
        means = np.stack([z_u[split.domain == i].mean(0) for i in range(data.num_domains)])
        features = {
            "z_S": split.z[:, :d_s].astype(np.float64),  # the invariant balls' centres
            "offset": offset_from_domain_mean(z_u, split.domain, means),
        }
        for name, z in features.items():
            true, mean = with_shuffled(torch.from_numpy(z.astype(np.float32)), domains, data.num_domains, args.shuffles)
            cells = [f"{v[n]:.4f}" for n in ("mmd", "minmax", "domain_means", "domain_covariances") for v in (true, mean)]
            extra = [f"{offset_r2(data):.3f}"] if name == "offset" else []
            rows[name].append(f"| {run.name} | " + " | ".join(cells + extra) + " |")
    print("The invariant ball's centre z_S (validation split):\n")
    print("| stage-1 run " + header + "\n|" + "---|" * 9)
    print("\n".join(rows["z_S"]))
    print("\nThe spurious ball's offset from its domain's mean position (validation split):\n")
    print("| stage-1 run " + header + " z_U from the offset, linear R² (test) |\n|" + "---|" * 10)
    print("\n".join(rows["offset"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
