"""Is a polynomial stage-1 encoding affine in z, or only a smooth function of it? For each true
latent coordinate, the held-out R^2 of a linear probe of it from the whole stage-1 encoding h (what
r2_z_from_h averages) and of a least-squares probe on the monomials of h up to --degree. A coordinate
whose linear R^2 is low while the polynomial one is high is recovered, but bent: the encoder found a
nonlinear reparametrisation of it that costs the reconstruction little (docs/polynomial.md). Uses
the true latents: a diagnostic, never a selection.
    python scripts/polynomial_stage1_check.py multirun/polynomial/stage1/x200-p3-z14-seed*
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mdcrl.data.encoded import load_encoded
from mdcrl.data.polynomial import monomial_features, monomial_plan
from mdcrl.metrics import probe_r2_per_target


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(0), train.std(0) + 1e-12
    return (train - mean) / std, (test - mean) / std


def row(values: np.ndarray) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="polynomial stage-1 run directories (with encoded/)")
    parser.add_argument("--degree", type=int, default=3, help="degree of the monomials of h in the second probe")
    args = parser.parse_args(argv)
    print(f"| stage-1 run | block | linear R^2 per coordinate | degree-{args.degree} R^2 per coordinate |")
    print("|---|---|---|---|")
    for run in args.runs:
        data, _ = load_encoded(run, expected_kind="mixing")
        train, test = data.splits["train"], data.splits["test"]
        h_train, h_test = standardised(train.x.astype(np.float64), test.x.astype(np.float64))
        linear = probe_r2_per_target(h_train, train.z, h_test, test.z)
        plan = monomial_plan(h_train.shape[1], args.degree)
        poly = probe_r2_per_target(monomial_features(h_train, plan), train.z, monomial_features(h_test, plan), test.z)
        d_s = data.z_dim_stable_true
        for block, part in (("z_S", slice(0, d_s)), ("z_U", slice(d_s, None))):
            print(f"| {run.name} | {block} | {row(linear[part])} | {row(poly[part])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
