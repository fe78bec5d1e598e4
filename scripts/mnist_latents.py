"""A picture of a coloured-digits stage-2 run: the test split's h_S and h_U, each projected on its
first two principal components; every point drawn in its image's true colour (r, g, b), and the
digit written at each digit's mean. h_S should group by digit with the colours mixed; h_U should
be ordered by colour.

    python scripts/mnist_latents.py RUN_DIR [RUN_DIR ...] --out docs/results/mnist/latents.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mdcrl.visualize import load_trained


def principal_plane(h: np.ndarray) -> np.ndarray:
    centred = h - h.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--points", type=int, default=1500)
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(args.runs), 2, figsize=(9, 4.2 * len(args.runs)), squeeze=False)
    for row, run_dir in enumerate(args.runs):
        cfg, data, module = load_trained(run_dir)
        test = data.splits["test"]
        pick = np.random.default_rng(0).permutation(len(test))[: args.points]
        h = module.encode(test.x[pick])
        digits, colours = test.z[pick, 0].astype(int), np.clip(test.z[pick, 1:], 0, 1)
        d_s = module.z_dim_stable
        weights = cfg.model.penalty_criterion
        label = ", ".join(f"{k} {float(v):g}" for k, v in weights.items() if float(v) > 0) or "no penalty"
        for col, (block, name) in enumerate(((h[:, :d_s], "h_S"), (h[:, d_s:], "h_U"))):
            plane = principal_plane(block)
            ax = axes[row, col]
            ax.scatter(plane[:, 0], plane[:, 1], c=colours, s=6, linewidths=0)
            for digit in range(10):
                at = plane[digits == digit].mean(axis=0)
                ax.text(at[0], at[1], str(digit), fontsize=13, weight="bold", ha="center", va="center")
            ax.set_title(f"{name} ({block.shape[1]} dims), {label}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(args.out)


if __name__ == "__main__":
    main()
