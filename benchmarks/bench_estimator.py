"""Wall time of InvariantAutoencoder.fit with the packaged defaults, linear and MLP encoder, on
12,000 x 6 samples of 5 domains (a nonlinear mixing of 3 stable and 3 shifted Gaussian latents, the
size of the own-data case in docs/tutorial_own_data.md), and the diagnostics' verdict.
Run: python benchmarks/bench_estimator.py   (about half a minute)
"""

import time
import warnings

import numpy as np

from mdcrl import InvariantAutoencoder


def main():
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(0)
    n, k = 12000, 5
    domains = rng.integers(0, k, n)
    z = np.c_[rng.normal(size=(n, 3)), rng.normal(size=(n, 3)) + domains[:, None]]
    x = np.tanh(z @ rng.normal(size=(6, 6))) @ rng.normal(size=(6, 6))
    for encoder in ("linear", "mlp"):
        start = time.perf_counter()
        est = InvariantAutoencoder(encoder=encoder, z_dim=6, z_dim_stable=3, random_state=0).fit(x, domains)
        print(f"{encoder:6s} fit {time.perf_counter() - start:6.1f} s   verdict: {est.diagnostics(x, domains)['verdict']}")


if __name__ == "__main__":
    main()
