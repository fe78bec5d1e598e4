"""Forward+backward time of the vectorised penalties and of a full training step, each next to the
naive loop reference (tests/naive_penalties.py) measured in the same run.

Setting: batch 1024, z_dim 64 (32 stable), 16 domains, top_k 5.
Run: python benchmarks/bench_penalties.py [--threads N]   (a sweep's runs use 1 thread each)
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from naive_penalties import (  # noqa: E402
    naive_domain_covariances_penalty,
    naive_domain_means_penalty,
    naive_minmax_penalty,
    naive_mmd_penalty,
)
from timing import median_time  # noqa: E402

from mdcrl import penalties  # noqa: E402
from mdcrl.models.autoencoders import linear_autoencoder  # noqa: E402
from mdcrl.models.module import MultiDomainAutoencoder  # noqa: E402
from mdcrl.settings import default_settings  # noqa: E402

BATCH, Z_DIM, D_S, K, TOP_K, X_DIM = 1024, 64, 32, 16, 5, 128


def fwd_bwd(penalty, h, domains, **kw):
    def step():
        leaf = h.detach().requires_grad_(True)
        penalty(leaf, domains, K, **kw).backward()

    return step


def main():
    if "--threads" in sys.argv:
        torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
    torch.manual_seed(0)
    h = torch.randn(BATCH, D_S)
    domains = torch.randint(0, K, (BATCH,))
    rows = []
    cases = [
        ("minmax (top_k=5, mse)", penalties.minmax_penalty, naive_minmax_penalty, dict(top_k=TOP_K)),
        ("mmd fixed bandwidth", penalties.mmd_penalty, naive_mmd_penalty, dict(fix_sigma=50.0)),
        ("mmd adaptive bandwidth", penalties.mmd_penalty, naive_mmd_penalty, dict(fix_sigma=None)),
        ("mmd adaptive, unbiased", penalties.mmd_penalty, naive_mmd_penalty, dict(fix_sigma=None, unbiased=True)),
        ("domain_means", penalties.domain_means_penalty, naive_domain_means_penalty, {}),
        ("domain_covariances", penalties.domain_covariances_penalty, naive_domain_covariances_penalty, {}),
    ]
    for name, fast, naive, kw in cases:
        t_fast = median_time(fwd_bwd(fast, h, domains, **kw), 20)
        t_naive = median_time(fwd_bwd(naive, h, domains, **kw), 3, warmup=1)
        rows.append((name, t_fast, t_naive))

    # A full training step (forward, both penalties, backward, Adam update) with each implementation.
    x = torch.randn(BATCH, X_DIM)
    batch = (x, None, domains)

    def make_step(naive: bool, restarts: int = 1):
        base = default_settings("mixing")
        penalties = replace(
            base.penalties,
            weights={"minmax": 1.0, "mmd": 1.0},
            minmax=replace(base.penalties.minmax, top_k=TOP_K),
            mmd=replace(base.penalties.mmd, fix_sigma=None),
        )
        module = MultiDomainAutoencoder(linear_autoencoder(X_DIM, Z_DIM, restarts), K, D_S, D_S, penalties, base.optim)
        if naive:  # h_S arrives as (restarts=1, B, d_S)
            module.penalty_terms = lambda hs, d: {
                "minmax": naive_minmax_penalty(hs[0], d, K, top_k=TOP_K),
                "mmd": naive_mmd_penalty(hs[0], d, K, fix_sigma=None),
            }
        opt = torch.optim.Adam(module.parameters(), lr=1e-3)

        def step():
            opt.zero_grad()
            module.losses(batch[0], batch[2])[0].backward()
            opt.step()

        return step

    naive_step = median_time(make_step(True), 3, warmup=1)
    rows.append(("training step (minmax + mmd)", median_time(make_step(False), 10), naive_step))
    # 4 restarts in one step (the default): against the same naive single-copy step.
    rows.append(("step, 4 restarts (minmax + mmd)", median_time(make_step(False, restarts=4), 10), naive_step))

    # The held-out MMD (validation batches, the selection score on 2048 rows; 4 restarts, the linear
    # grid's z_dim 16 with 8 stable): no gradient follows, so the forward pass skips the slope and the
    # gradient it accumulates block by block.
    h_val = torch.randn(4, 2048, 8)
    weights = torch.randn(2048, 2048)
    weights = weights + weights.T

    def heldout(need_grad: bool):
        return lambda: penalties._WeightedKernelSum.apply(h_val, weights, None, 5, 2.0, need_grad)

    with torch.no_grad():
        t_without, t_with = median_time(heldout(False), 10), median_time(heldout(True), 10)

    print(f"batch={BATCH} z_dim={Z_DIM} stable={D_S} domains={K} top_k={TOP_K} torch threads={torch.get_num_threads()}")
    print(f"{'forward+backward':34s} {'vectorised ms':>14s} {'naive loop ms':>14s} {'speed-up':>9s}")
    for name, fast, naive in rows:
        print(f"{name:34s} {fast * 1e3:14.2f} {naive * 1e3:14.1f} {naive / fast:8.1f}x")
    print(
        f"held-out MMD forward (4 restarts, 2048 rows, d_S 8): {t_without * 1e3:.1f} ms without the gradient, "
        f"{t_with * 1e3:.1f} ms with it: {t_with / t_without:.2f}x"
    )


if __name__ == "__main__":
    main()
