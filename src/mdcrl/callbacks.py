"""Callbacks named in the configs (callbacks.visualization_callback)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np


class LatentScatterPlot(L.Callback):
    """At the end of fitting, plot each learned stable coordinate against the true stable and
    spurious latents on the validation split (plots/latents.png in the run directory)."""

    def __init__(self, max_coordinates: int = 4, filename: str = "plots/latents.png"):
        self.max_coordinates = max_coordinates
        self.filename = filename

    def on_fit_end(self, trainer, pl_module):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        split = trainer.datamodule.data.splits["valid"]
        h = pl_module.encode(split.x)
        d_s, d_true = pl_module.z_dim_invariant, pl_module.z_dim_invariant_true
        n = min(self.max_coordinates, d_s)
        fig, axes = plt.subplots(n, 2, figsize=(7, 2.6 * n), squeeze=False)
        for c in range(n):
            for col, (block, title) in enumerate(((split.z[:, :d_true], "z_S"), (split.z[:, d_true:], "z_U"))):
                # Show the true coordinate of the block that correlates most with this learned one.
                corr = np.abs([np.corrcoef(h[:, c], block[:, j])[0, 1] for j in range(block.shape[1])])
                j = int(np.nanargmax(corr)) if np.isfinite(corr).any() else 0
                axes[c, col].scatter(block[:, j], h[:, c], c=split.domain, s=3, cmap="tab20")
                axes[c, col].set_xlabel(f"true {title}[{j}]")
                axes[c, col].set_ylabel(f"h_S[{c}]")
        fig.tight_layout()
        out = Path(trainer.default_root_dir) / self.filename
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=80)
        plt.close(fig)
