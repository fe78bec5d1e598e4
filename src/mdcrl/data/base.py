"""The data types every source produces: splits of (x, true latents, domain) and their dimensions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "valid", "test")


@dataclass
class Split:
    x: np.ndarray  # (n, x_dim) float32 observations (stage-1 encodings in stage 2), or (n, 3, H, W) uint8 images
    z: np.ndarray  # (n, z_true_dim) float32, true latents, stable block first
    domain: np.ndarray  # (n,) int64 in 0..k-1

    def __len__(self) -> int:
        return len(self.domain)


@dataclass
class MultiDomainData:
    """All splits of one dataset plus the dimensions the model and the metrics need."""

    splits: dict[str, Split]
    num_domains: int
    z_dim_stable_true: int  # d_S of the true latents: z[:, :d_S] is z_S, the rest z_U
    metadata: dict = field(default_factory=dict)

    @property
    def x_dim(self) -> int:
        return self.splits["train"].x.shape[1]

    @property
    def z_dim_true(self) -> int:
        return self.splits["train"].z.shape[1]
