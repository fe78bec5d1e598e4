"""Polynomial decoder forward+backward against a per-sample Kronecker loop reference, and the time
to generate the seed's polynomial dataset size.

Setting: z_dim 14, degree 3, x_dim 200, batch 1024. Run: python benchmarks/bench_polynomial.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from naive_polynomial import kronecker_index_tuples  # noqa: E402
from timing import median_time  # noqa: E402

from mdcrl.data.mixing import generate_mixing_data  # noqa: E402
from mdcrl.data.polynomial import num_monomials  # noqa: E402
from mdcrl.models.autoencoders import PolynomialDecoder  # noqa: E402

Z_DIM, DEGREE, X_DIM, BATCH = 14, 3, 200, 1024


def kronecker_decoder_step(z, weight, bias):
    """The reference layout: per sample, Kronecker powers of z (duplicates included) times a weight
    matrix over all 1 + d + d^2 + d^3 columns; then backward."""
    leaf = z.detach().requires_grad_(True)
    rows = []
    for n in range(leaf.shape[0]):
        feats, current = [], torch.ones(1)
        for _ in range(DEGREE):
            current = torch.kron(current, leaf[n])
            feats.append(current)
        rows.append(weight @ torch.cat(feats) + bias)
    torch.stack(rows).sum().backward()


def main():
    torch.manual_seed(0)
    z = torch.randn(BATCH, Z_DIM)
    decoder = PolynomialDecoder(Z_DIM, X_DIM, DEGREE)

    def fast_step():
        leaf = z.detach().requires_grad_(True)
        decoder(leaf).sum().backward()

    kron_cols = len(kronecker_index_tuples(Z_DIM, DEGREE)) - 1
    weight, bias = torch.randn(X_DIM, kron_cols, requires_grad=True), torch.zeros(X_DIM, requires_grad=True)
    t_fast = median_time(fast_step, 20)
    t_naive = median_time(lambda: kronecker_decoder_step(z, weight, bias), 3, warmup=1)
    print(
        f"z_dim={Z_DIM} degree={DEGREE} x_dim={X_DIM} batch={BATCH}: {num_monomials(Z_DIM, DEGREE)} distinct monomials "
        f"(constant included) vs {kron_cols + 1} Kronecker columns"
    )
    print(
        f"polynomial decoder fwd+bwd: vectorised {t_fast * 1e3:.2f} ms, per-sample Kronecker loop {t_naive * 1e3:.1f} ms, "
        f"speed-up {t_naive / t_fast:.0f}x"
    )

    cfg = OmegaConf.load(ROOT / "configs" / "datamodule" / "mixing.yaml").dataset
    cfg.update(
        linear=False,
        z_dim=Z_DIM,
        x_dim=X_DIM,
        polynomial_degree=DEGREE,
        num_domains=16,
        num_samples={"train": 10000, "valid": 1000, "test": 1000},
    )
    start = time.perf_counter()
    generate_mixing_data(cfg, seed=0)
    print(
        f"generate 12000 samples (10000/1000/1000), z_dim=14, degree 3, x_dim=200, 16 domains: "
        f"{time.perf_counter() - start:.2f} s"
    )


if __name__ == "__main__":
    main()
