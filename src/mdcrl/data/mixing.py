"""Synthetic multi-domain mixing data (docs/design.md, Data).

z = (z_S, z_U): z_S ~ Uniform[a, b]^{d_S} in every domain, z_U,j | domain i ~ Uniform[low_ij, high_ij]
with per-domain boxes drawn inside ``domain_dist_ranges``. x = g(z), g linear or polynomial.
All splits share one mixing function and one set of domain boxes, drawn from the run's seed,
and every split has the same number of samples in each domain.
"""

from __future__ import annotations

import logging

import numpy as np

from mdcrl.data.base import SPLITS, MultiDomainData, Split
from mdcrl.data.polynomial import monomial_features, monomial_plan, num_monomials

log = logging.getLogger(__name__)


def mixing_dims(dataset_cfg) -> tuple[int, int, int]:
    """(z_dim, z_dim_invariant, x_dim) with the documented defaults floor(d/2) and 2d."""
    z_dim = int(dataset_cfg.z_dim)
    d_s = dataset_cfg.get("z_dim_invariant")
    d_s = z_dim // 2 if d_s is None else int(d_s)
    x_dim = dataset_cfg.get("x_dim")
    x_dim = 2 * z_dim if x_dim is None else int(x_dim)
    return z_dim, d_s, x_dim


def domain_labels(n: int, num_domains: int) -> np.ndarray:
    """Equal samples per domain. The n % k leftover samples are dropped (with a log line) rather
    than given to domain 0 as the reference code does, so that the domains stay balanced."""
    per_domain = n // num_domains
    if n % num_domains:
        log.info("dropping %d of %d samples so that each of %d domains has %d", n % num_domains, n, num_domains, per_domain)
    return np.repeat(np.arange(num_domains, dtype=np.int64), per_domain)


def sample_spurious_latent_boxes(rng: np.random.Generator, num_domains: int, d_u: int, ranges) -> np.ndarray:
    """(k, d_U, 2) boxes: for each domain and spurious coordinate, low < high uniform inside ranges."""
    ends = rng.uniform(ranges[0], ranges[1], size=(num_domains, d_u, 2))
    return np.sort(ends, axis=-1)


def sample_latents(
    rng: np.random.Generator,
    domain: np.ndarray,
    d_s: int,
    boxes: np.ndarray,
    invariant_params,
    correlated: bool,
    corr_prob: float,
) -> np.ndarray:
    n, d_u = len(domain), boxes.shape[1]
    z_s = rng.uniform(invariant_params[0], invariant_params[1], size=(n, d_s))
    low, high = boxes[domain, :, 0], boxes[domain, :, 1]
    z_u = low + (high - low) * rng.uniform(size=(n, d_u))
    if correlated:
        # Dynamic SCM: each spurious coordinate j is shifted, with probability corr_prob, by the
        # stable coordinate of the same index. When d_U > d_S the stable partners wrap around
        # (j mod d_S), so every spurious coordinate has a stable parent.
        parents = z_s[:, np.arange(d_u) % d_s]
        z_u = z_u + rng.binomial(1, corr_prob, size=(n, d_u)) * parents
    return np.concatenate([z_s, z_u], axis=1)


def generate_mixing_data(dataset_cfg, seed: int) -> MultiDomainData:
    z_dim, d_s, x_dim = mixing_dims(dataset_cfg)
    k = int(dataset_cfg.num_domains)
    rng = np.random.default_rng(seed)
    boxes = sample_spurious_latent_boxes(rng, k, z_dim - d_s, list(dataset_cfg.domain_dist_ranges))
    mixing = make_mixing_function(rng, dataset_cfg, z_dim, x_dim)
    latents = {}
    for name in SPLITS:
        domain = domain_labels(int(dataset_cfg.num_samples[name]), k)
        z = sample_latents(
            rng,
            domain,
            d_s,
            boxes,
            list(dataset_cfg.invariant_dist_params),
            bool(dataset_cfg.correlated_z),
            float(dataset_cfg.corr_prob),
        )
        latents[name] = (z, domain)
    mixing.fit(latents["train"][0])
    splits = {name: Split(mixing(z).astype(np.float32), z.astype(np.float32), d) for name, (z, d) in latents.items()}
    metadata = {
        "kind": "mixing",
        "z_dim": z_dim,
        "z_dim_invariant": d_s,
        "x_dim": x_dim,
        "domain_boxes": boxes.tolist(),
        "linear": bool(dataset_cfg.linear),
        "correlated_z": bool(dataset_cfg.correlated_z),
    }
    return MultiDomainData(splits, k, d_s, metadata)


class LinearMixing:
    """x = z G, G in R^{d x n} with Uniform[0, 1] entries, redrawn until full rank (injective)."""

    def __init__(self, rng: np.random.Generator, z_dim: int, x_dim: int):
        for _ in range(100):
            self.matrix = rng.uniform(0.0, 1.0, size=(z_dim, x_dim))
            if np.linalg.matrix_rank(self.matrix) == z_dim:
                return
        raise RuntimeError("could not draw a full-rank mixing matrix")  # probability ~0 for x_dim >= z_dim

    def fit(self, z_train: np.ndarray) -> None:
        pass

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return z @ self.matrix


class PolynomialMixing:
    """x = standardise(affine(z) + s * higher(z)): a Gaussian linear map of all distinct monomials of z
    up to ``degree``. The degree >= 2 part is rescaled to twice the largest magnitude of the affine
    part (as the reference does) and x is then standardised per coordinate; s, the mean and the std
    come from the train split and are reused unchanged for valid and test."""

    def __init__(self, rng: np.random.Generator, z_dim: int, x_dim: int, degree: int):
        self.plan = monomial_plan(z_dim, degree)
        self.weights = rng.normal(size=(num_monomials(z_dim, degree), x_dim))
        self.n_affine = 1 + z_dim
        self.scale, self.mean, self.std = 1.0, 0.0, 1.0

    def _parts(self, z: np.ndarray):
        features = monomial_features(z, self.plan)
        affine = features[:, : self.n_affine] @ self.weights[: self.n_affine]
        higher = features[:, self.n_affine :] @ self.weights[self.n_affine :]
        return affine, higher

    def fit(self, z_train: np.ndarray) -> None:
        affine, higher = self._parts(z_train)
        peak = np.abs(higher).max() if higher.size else 0.0
        self.scale = 2.0 * np.abs(affine).max() / peak if peak > 0 else 1.0
        x = affine + self.scale * higher
        self.mean, self.std = x.mean(axis=0), x.std(axis=0) + 1e-8

    def __call__(self, z: np.ndarray) -> np.ndarray:
        affine, higher = self._parts(z)
        return (affine + self.scale * higher - self.mean) / self.std


def make_mixing_function(rng: np.random.Generator, dataset_cfg, z_dim: int, x_dim: int):
    if dataset_cfg.linear:
        return LinearMixing(rng, z_dim, x_dim)
    if dataset_cfg.non_linearity == "polynomial":
        return PolynomialMixing(rng, z_dim, x_dim, int(dataset_cfg.polynomial_degree))
    raise ValueError(f"datamodule.dataset.non_linearity={dataset_cfg.non_linearity!r} is unknown; use 'polynomial'")
