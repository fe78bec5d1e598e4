"""Invariance penalties on the stable block of the latents, h_S = z_hat[:, :d_S].

Every penalty compares the domains present in a batch, over all pairs i < j, and is
computed for all domains, pairs and coordinates at once with grouped tensor ops (no Python
loop over coordinates or domain pairs). Domains missing from a batch are left out of the
pairs; with fewer than two comparable domains a penalty is an exact zero that keeps the graph.
Naive loop versions used to check these live in ``tests/naive_penalties.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PENALTY_NAMES = ("minmax", "mmd", "stddev")
LOSS_TRANSFORMS = ("mse", "l1")


def _zero(h: torch.Tensor) -> torch.Tensor:
    # A zero that stays connected to the graph, so backward() works on a batch with one domain.
    return h.sum() * 0.0


def pad_by_domain(h: torch.Tensor, domains: torch.Tensor, counts: torch.Tensor, fills: tuple[float, ...]):
    """Scatter the rows of h into (num_domains, max_count, d) tensors, one per padding value in
    ``fills``; ``counts`` are the per-domain counts (bincount of domains). The sort that places the
    rows is done once for all of them."""
    order = torch.argsort(domains, stable=True)
    sorted_domains = domains[order]
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(len(domains), device=h.device) - starts[sorted_domains]
    rows = h[order]
    shape = (len(counts), int(counts.max()), h.shape[1])
    return [h.new_full(shape, fill).index_put((sorted_domains, position), rows) for fill in fills]


def _transform(diff: torch.Tensor, loss_transform: str) -> torch.Tensor:
    if loss_transform == "mse":
        return diff.square()
    if loss_transform == "l1":
        return diff.abs()
    raise ValueError(f"loss_transform must be one of {LOSS_TRANSFORMS}, got {loss_transform!r}")


def minmax_penalty(
    h: torch.Tensor,
    domains: torch.Tensor,
    num_domains: int,
    top_k: int = 5,
    loss_transform: str = "mse",
) -> torch.Tensor:
    """Support invariance: match each domain's ``top_k`` smallest and largest values per coordinate.

    For every pair of present domains: mean over (k, coordinates) of transform(min_i - min_j)
    plus the same for the maxima; averaged over pairs. When a domain in the batch has fewer
    than ``top_k`` samples, k drops to the smallest domain count in the batch for all domains,
    so that every domain is compared on the same number of order statistics.
    """
    counts = torch.bincount(domains, minlength=num_domains)
    present = torch.nonzero(counts > 0).flatten()
    if len(present) < 2:
        return _zero(h)
    k = min(int(top_k), int(counts[present].min()))
    low, high = pad_by_domain(h, domains, counts, (math.inf, -math.inf))
    mins = torch.topk(low[present], k, dim=1, largest=False, sorted=True).values
    maxs = torch.topk(high[present], k, dim=1, largest=True, sorted=True).values
    i, j = torch.triu_indices(len(present), len(present), offset=1, device=h.device)
    per_pair = _transform(mins[i] - mins[j], loss_transform).mean(dim=(1, 2)) + _transform(
        maxs[i] - maxs[j], loss_transform
    ).mean(dim=(1, 2))
    return per_pair.mean()


def squared_distances(h: torch.Tensor) -> torch.Tensor:
    """All pairwise squared Euclidean distances (B, B); clamped, with finite gradients at 0."""
    norms = h.square().sum(dim=1)
    return (norms[:, None] + norms[None, :] - 2.0 * h @ h.T).clamp_min(0.0)


def mmd_bandwidths(
    sq_dist: torch.Tensor, fix_sigma: float | None, kernel_number: int, kernel_multiplier: float
) -> torch.Tensor:
    """The kernel bandwidths: ``kernel_number`` values spaced by ``kernel_multiplier`` around a centre.

    The centre is ``fix_sigma``, or (when None) the mean pairwise squared distance of the batch,
    detached so that the bandwidth does not chase the encoder.
    """
    n = sq_dist.shape[0]
    if fix_sigma is None:
        centre = sq_dist.detach().sum() / max(n * n - n, 1)
        centre = centre.clamp_min(1e-12)
    else:
        centre = torch.tensor(float(fix_sigma), dtype=sq_dist.dtype, device=sq_dist.device)
    base = centre / kernel_multiplier ** (kernel_number // 2)
    powers = torch.arange(kernel_number, dtype=sq_dist.dtype, device=sq_dist.device)
    return base * kernel_multiplier**powers


class _WeightedKernelSum(torch.autograd.Function):
    """sum_ab W_ab * sum_q exp(-||h_a - h_b||^2 / b_q) for a symmetric W, with a closed-form gradient.

    Written by hand (not left to autograd) for speed: autograd would keep and traverse several
    B x B intermediates per kernel; here backward needs one B x B matrix and one matmul,
    d/dh_a = 4 * (rowsum(G)_a h_a - (G h)_a) with G = W * dk/d(sq). The bandwidths (from
    mmd_bandwidths, on the same squared distances) are constants.
    """

    @staticmethod
    def forward(ctx, h, weights, fix_sigma, kernel_number, multiplier):
        sq = squared_distances(h)
        widths = mmd_bandwidths(sq, fix_sigma, kernel_number, multiplier).tolist()
        kernel = slope = e = None  # slope: d kernel / d sq
        for b in reversed(widths):  # widest first, so that with multiplier 2, e_{b/2} = e_b ** 2
            e = e.square_() if (e is not None and multiplier == 2.0) else torch.exp(sq * (-1.0 / b))
            if kernel is None:
                kernel, slope = e.clone(), e * (-1.0 / b)
            else:
                kernel.add_(e)
                slope.add_(e, alpha=-1.0 / b)
        ctx.save_for_backward(h, slope.mul_(weights))
        return torch.dot(weights.flatten(), kernel.flatten())

    @staticmethod
    def backward(ctx, grad_out):
        h, g = ctx.saved_tensors
        grad_h = 4.0 * (g.sum(dim=1, keepdim=True) * h - g @ h)
        return grad_out * grad_h, None, None, None, None


def mmd_penalty(
    h: torch.Tensor,
    domains: torch.Tensor,
    num_domains: int,
    fix_sigma: float | None = None,
    kernel_number: int = 5,
    kernel_multiplier: float = 2.0,
) -> torch.Tensor:
    """Distribution invariance: squared MMD (biased estimator) between every pair of domains, averaged.

    Kernel: sum over bandwidths b of exp(-||a - c||^2 / b). One kernel matrix for the whole
    batch, with one bandwidth set shared by all pairs. The mean over pairs of
    MMD^2_ij = K_ii + K_jj - 2 K_ij (block means) is linear in the kernel matrix, so it is one
    weighted sum sum_ab W[d_a, d_b] k(h_a, h_b) with per-domain-pair coefficients W.
    """
    counts = torch.bincount(domains, minlength=num_domains)
    present = counts > 0
    num_present = int(present.sum())
    if num_present < 2:
        return _zero(h)
    n = counts.to(h.dtype).clamp_min(1.0)
    num_pairs = num_present * (num_present - 1) / 2
    # Coefficient of block (i, j) of the kernel matrix: each domain's K_ii appears in (P - 1) pairs,
    # each K_ij (i != j) with -2, split over the two symmetric blocks.
    coef = -1.0 / (n[:, None] * n[None, :])
    coef.diagonal().mul_(-(num_present - 1))
    coef = coef * (present[:, None] & present[None, :]) / num_pairs
    weights = coef[domains][:, domains]
    return _WeightedKernelSum.apply(h, weights, fix_sigma, int(kernel_number), float(kernel_multiplier))


def mmd_kernel_vanishes(
    h: torch.Tensor, fix_sigma: float | None = None, kernel_number: int = 5, kernel_multiplier: float = 2.0
) -> float | None:
    """With a fixed bandwidth, the typical kernel value exp(-mean_sq_dist / widest bandwidth) if it is
    below 1e-6 (the penalty is then a constant with vanishing gradient), else None."""
    if fix_sigma is None or h.shape[0] < 2:
        return None
    with torch.no_grad():
        sq = squared_distances(h)
        n = sq.shape[0]
        mean_sq = float(sq.sum() / (n * n - n))
        widest = float(mmd_bandwidths(sq, fix_sigma, kernel_number, kernel_multiplier).max())
    typical = math.exp(-mean_sq / widest)
    return typical if typical < 1e-6 else None


def domain_variances(h: torch.Tensor, domains: torch.Tensor, num_domains: int):
    """Unbiased per-domain variance of every coordinate (num_domains, d), two-pass, and the counts."""
    counts = torch.bincount(domains, minlength=num_domains)
    onehot = F.one_hot(domains, num_domains).to(h.dtype)
    n = counts.to(h.dtype).clamp_min(1.0)
    means = (onehot.T @ h) / n[:, None]
    centred = h - means[domains]
    var = (onehot.T @ centred.square()) / (n[:, None] - 1.0).clamp_min(1.0)
    return var, counts


def stddev_penalty(
    h: torch.Tensor, domains: torch.Tensor, num_domains: int, stddev_eps: float = 1e-8
) -> torch.Tensor:
    """Variance invariance: mean over domain pairs and coordinates of (std_i - std_j)^2.

    Domains with fewer than two samples in the batch have no standard deviation and are left out.
    """
    var, counts = domain_variances(h, domains, num_domains)
    present = torch.nonzero(counts > 1).flatten()
    if len(present) < 2:
        return _zero(h)
    std = torch.sqrt(var[present] + stddev_eps)
    i, j = torch.triu_indices(len(present), len(present), offset=1, device=h.device)
    return (std[i] - std[j]).square().mean()


def hinge_loss(
    h: torch.Tensor,
    domains: torch.Tensor,
    num_domains: int,
    stddev_threshold: float = 1.0,
    stddev_eps: float = 1e-4,
) -> torch.Tensor:
    """Anti-collapse: per domain, mean over coordinates of relu(threshold - sqrt(var + eps)),
    averaged over the domains with at least two samples in the batch."""
    var, counts = domain_variances(h, domains, num_domains)
    present = torch.nonzero(counts > 1).flatten()
    if len(present) == 0:
        return _zero(h)
    std = torch.sqrt(var[present] + stddev_eps)
    return F.relu(stddev_threshold - std).mean(dim=1).mean()
