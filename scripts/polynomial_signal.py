"""How much of x each true latent explains on its own, for polynomial mixing: for each coordinate i,
the mean squared residual of x (standardised) after least squares on every monomial of the other
latents. A coordinate whose unique share is small is one the autoencoder must reconstruct x very
precisely to recover (docs/polynomial.md).

    python scripts/polynomial_signal.py --z-dim 14 --degree 3 --x-dim 200 --num-domains 16 --seeds 1235 4256
"""

from __future__ import annotations

import argparse

import numpy as np
from omegaconf import OmegaConf

from mdcrl.cli import CONFIG_DIR
from mdcrl.data.mixing import generate_mixing_data
from mdcrl.data.polynomial import monomial_features, monomial_plan


def unique_shares(z: np.ndarray, x: np.ndarray, degree: int) -> np.ndarray:
    shares = []
    for i in range(z.shape[1]):
        others = np.delete(z, i, axis=1)
        features = monomial_features(others, monomial_plan(others.shape[1], degree))
        weights, *_ = np.linalg.lstsq(features, x, rcond=None)
        shares.append(((x - features @ weights) ** 2).mean())
    return np.array(shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--z-dim", type=int, default=14)
    parser.add_argument("--degree", type=int, default=3)
    parser.add_argument("--x-dim", type=int, default=200)
    parser.add_argument("--num-domains", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4000, help="train samples used for the fit")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1235, 4256, 49685, 7383, 9271])
    args = parser.parse_args()
    dataset = OmegaConf.load(f"{CONFIG_DIR}/datamodule/mixing.yaml").dataset
    dataset.update(z_dim=args.z_dim, x_dim=args.x_dim, num_domains=args.num_domains, linear=False, polynomial_degree=args.degree)
    stable, spurious = [], []
    for seed in args.seeds:
        data = generate_mixing_data(dataset, seed)
        train, d_s = data.splits["train"], data.z_dim_stable_true
        z, x = (a[: args.samples].astype(np.float64) for a in (train.z, train.x))
        shares = unique_shares(z, x, args.degree)
        stable.append(shares[:d_s].mean())
        spurious.append(shares[d_s:].mean())
        print(f"seed {seed}: unique share of x, stable {np.round(shares[:d_s], 4)}, spurious {np.round(shares[d_s:], 4)}")
    print(
        f"mean over {len(args.seeds)} seeds: stable {np.mean(stable):.4f} ± {np.std(stable):.4f}, "
        f"spurious {np.mean(spurious):.4f} ± {np.std(spurious):.4f} (x standardised: total 1)"
    )


if __name__ == "__main__":
    main()
