"""A closed-form moment estimate of the stable subspace (the warm start of model.init=moment).

In whitened coordinates (identity covariance over all rows) a stable direction w, one along which
x.w depends on the stable latents only, keeps in every domain i

    the same mean of x.w:                 (m_i - m) . w = 0
    the same cross-covariance Cov_i(x, x.w):   (C_i - C) w = 0

(m_i, C_i: domain i's mean and covariance; m, C: those of all rows). Both hold when the stable block
is equally distributed in every domain and independent of the spurious one given the domain, and
in the dynamic SCM, where the spurious block depends on the stable one by the same mechanism in
every domain. So the stable subspace is the null space of

    M = sum_i p_i [ (m_i - m)(m_i - m)^T + (C_i - C)^2 ],     p_i = n_i / n,

and the estimate is the eigenspace of its d_S smallest eigenvalues. The other eigenvectors, most
domain-dependent first, span the spurious directions.

When it fails: where the d_S-th and (d_S+1)-th smallest eigenvalues are close (``eigengap`` near 1)
the split is decided by sampling noise; and on data where an intervention changes how the spurious
latents depend on the stable ones (a hard intervention that cuts their edges), the cross-covariances
move with the domain and the true stable directions no longer lie in the null space. The estimate is
therefore only ever a candidate: the training run starts one copy from it and keeps it only if the
paper's objective on validation data does not find better (docs/design.md, "Warm start").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# An eigen-gap below this is reported as "no clear gap": the estimate is then little better than a guess.
CLEAR_EIGENGAP = 3.0


@dataclass(frozen=True)
class MomentEstimate:
    stable: np.ndarray  # (d, d_S) orthonormal columns: the estimated stable directions
    spurious: np.ndarray  # (d, d - d_S) orthonormal columns, the most domain-dependent first
    eigenvalues: np.ndarray  # (d,) of M, ascending
    eigengap: float  # eigenvalue d_S + 1 over eigenvalue d_S (1-based, ascending): >> 1 is a clear split
    covariance_domains: int  # domains whose covariance entered M (see moment_stable_subspace)

    @property
    def clear(self) -> bool:
        return bool(self.eigengap >= CLEAR_EIGENGAP)

    def summary(self) -> dict:
        """The ground-truth-free numbers a user can read (metrics.json, the estimator's diagnostics)."""
        d_s = self.stable.shape[1]
        return {
            "eigengap": float(self.eigengap),
            "eigengap_clear": self.clear,
            "eigenvalue_last_stable": float(self.eigenvalues[d_s - 1]),
            "eigenvalue_first_spurious": float(self.eigenvalues[d_s]),
            "covariance_domains": int(self.covariance_domains),
        }


def moment_stable_subspace(x: np.ndarray, domains: np.ndarray, d_s: int) -> MomentEstimate:
    """The moment estimate of the d_S-dimensional stable subspace of whitened flat inputs x (n, d)
    with domain labels (n,). Computed in float64. Each domain is weighted by its share of the rows.
    A domain with fewer than d + 1 rows has a singular sample covariance, which would weigh every
    direction it did not sample as domain-dependent: only its mean enters M then (all domains' means
    always do)."""
    x = np.asarray(x, dtype=np.float64)
    domains = np.asarray(domains)
    n, d = x.shape
    if not 1 <= d_s < d:
        raise ValueError(f"the stable dimension d_S={d_s} must be between 1 and the input dimension - 1 = {d - 1}")
    labels, counts = np.unique(domains, return_counts=True)
    if len(labels) < 2:
        raise ValueError("the moment estimate needs at least two domains")
    mean = x.mean(axis=0)
    centred = x - mean
    total_cov = centred.T @ centred / n
    matrix = np.zeros((d, d))
    covariance_domains = 0
    for label, count in zip(labels, counts):
        rows = centred[domains == label]
        share = count / n
        shift = rows.mean(axis=0)
        matrix += share * np.outer(shift, shift)
        if count > d:
            # C_i about the domain's own mean, C about the overall one: then (C_i - C) w = 0 for stable w
            diff = np.cov(rows, rowvar=False, bias=True).reshape(d, d) - total_cov
            matrix += share * diff @ diff
            covariance_domains += 1
    matrix = (matrix + matrix.T) / 2
    values, vectors = np.linalg.eigh(matrix)
    values = np.clip(values, 0.0, None)
    gap = values[d_s] / max(values[d_s - 1], 1e-300 * max(values[-1], 1.0))
    return MomentEstimate(
        stable=vectors[:, :d_s],
        spurious=vectors[:, d_s:][:, ::-1],
        eigenvalues=values,
        eigengap=float(min(gap, 1e12)),
        covariance_domains=covariance_domains,
    )


def subspace_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared cosine of the principal angles between the column spans of a and b (same number
    of columns): 1 for the same subspace, about d_S / d for unrelated ones."""
    qa, _ = np.linalg.qr(np.asarray(a, dtype=np.float64))
    qb, _ = np.linalg.qr(np.asarray(b, dtype=np.float64))
    return float(np.square(np.linalg.svd(qa.T @ qb, compute_uv=False)).mean())
