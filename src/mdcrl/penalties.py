"""Invariance penalties on the stable block of the latents, h_S = z_hat[:, :d_S].

Every penalty compares the domains present in a batch, over all pairs i < j, and is
computed for all domains, pairs and coordinates at once with grouped tensor ops (no Python
loop over coordinates or domain pairs). Domains missing from a batch are left out of the
pairs; with fewer than two comparable domains a penalty is an exact zero that keeps the graph.
Naive loop versions used to check these live in ``tests/naive_penalties.py``.

Restarts: every penalty also takes h of shape (R, B, d), R independently trained copies of the
encoder on the same batch, and then returns the R penalties, one per restart. The per-coordinate
penalties (min-max, stddev, hinge) see the restarts as R * d columns of one (B, R * d) matrix, so
that R restarts cost one call; MMD keeps one kernel matrix per restart.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mdcrl.settings import LOSS_TRANSFORMS, REDUCTIONS


def _zero(h: torch.Tensor) -> torch.Tensor:
    # A zero that stays connected to the graph, so backward() works on a batch with one domain.
    return h.sum() * 0.0


def _as_columns(h: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B, d) -> itself, 1 restart; (R, B, d) -> (B, R * d) with restart r in columns r*d..(r+1)*d-1."""
    if h.dim() == 2:
        return h, 1
    r, b, d = h.shape
    return h.permute(1, 0, 2).reshape(b, r * d), r


def _per_restart(values: torch.Tensor, restarts: int, squeeze: bool, rows: str = "mean", columns: str = "mean") -> torch.Tensor:
    """(rows, R * d) per-row (domain pair or domain), per-column values -> (R,), reduced over the rows
    and each restart's d columns by ``rows`` / ``columns`` (mean | sum); a scalar when the input had
    no restart dimension."""
    if rows not in REDUCTIONS or columns not in REDUCTIONS:
        raise ValueError(f"penalty reduction must be one of {REDUCTIONS}, got {rows!r}/{columns!r}")
    out = values.reshape(values.shape[0], restarts, -1)
    out = out.sum(dim=2) if columns == "sum" else out.mean(dim=2)
    out = out.sum(dim=0) if rows == "sum" else out.mean(dim=0)
    return out[0] if squeeze else out


def _zero_per_restart(h: torch.Tensor) -> torch.Tensor:
    return _zero(h) if h.dim() == 2 else h.sum(dim=(1, 2)) * 0.0


def _positions_in_domain(domains: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(order, position): the rows sorted by domain, keeping batch order within a domain, and each
    sorted row's position within its domain; ``counts`` is the bincount of domains."""
    order = torch.argsort(domains, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    return order, torch.arange(len(domains), device=domains.device) - starts[domains[order]]


def pad_by_domain(h: torch.Tensor, domains: torch.Tensor, counts: torch.Tensor, fills: tuple[float, ...]):
    """Scatter the rows of h into (num_domains, max_count, d) tensors, one per padding value in
    ``fills``; ``counts`` are the per-domain counts (bincount of domains). The sort that places the
    rows is done once for all of them."""
    order, position = _positions_in_domain(domains, counts)
    sorted_domains = domains[order]
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
    reduction: str = "mean",
    null_corrected: bool = False,
) -> torch.Tensor:
    """Support invariance: match each domain's ``top_k`` smallest and largest values per coordinate.

    For every pair of present domains: mean over (k, coordinates) of transform(min_i - min_j)
    plus the same for the maxima; averaged (reduction="sum": summed) over pairs. When a domain in
    the batch has fewer than ``top_k`` samples, k drops to the smallest domain count in the batch
    for all domains, so that every domain is compared on the same number of order statistics.

    null_corrected=True subtracts the same penalty with the batch's domain labels shuffled (torch's
    global generator). Even for identically distributed domains the order statistics of a finite
    batch differ by chance, and that chance part is smallest when h piles up at its extremes, so the
    plain penalty rewards saturating h_S (docs/results/balls/); the shuffled labels see the same
    chance part and no domain difference, so the difference averages 0 for invariant h_S whatever
    its shape, and keeps the domain differences. It can be negative.
    """
    if null_corrected:
        shuffled = domains[torch.randperm(len(domains), device=domains.device)]
        return minmax_penalty(h, domains, num_domains, top_k, loss_transform, reduction) - minmax_penalty(
            h, shuffled, num_domains, top_k, loss_transform, reduction
        )
    counts = torch.bincount(domains, minlength=num_domains)
    present = torch.nonzero(counts > 0).flatten()
    if len(present) < 2:
        return _zero_per_restart(h)
    columns, restarts = _as_columns(h)
    k = min(int(top_k), int(counts[present].min()))
    low, high = pad_by_domain(columns, domains, counts, (math.inf, -math.inf))
    mins = torch.topk(low[present], k, dim=1, largest=False, sorted=True).values
    maxs = torch.topk(high[present], k, dim=1, largest=True, sorted=True).values
    i, j = torch.triu_indices(len(present), len(present), offset=1, device=h.device)
    per_pair = _transform(mins[i] - mins[j], loss_transform).mean(dim=1) + _transform(maxs[i] - maxs[j], loss_transform).mean(
        dim=1
    )
    return _per_restart(per_pair, restarts, squeeze=h.dim() == 2, rows=reduction)


def mean_squared_distance(h: torch.Tensor) -> torch.Tensor:
    """Mean squared Euclidean distance (...,) between distinct rows of h (..., B, d), without the
    B x B matrix: sum_ab ||h_a - h_b||^2 = 2 B sum_a ||h_a||^2 - 2 ||sum_a h_a||^2."""
    n = h.shape[-2]
    total = 2.0 * n * h.square().sum(dim=(-2, -1)) - 2.0 * h.sum(dim=-2).square().sum(dim=-1)
    return total.clamp_min(0.0) / max(n * n - n, 1)


def mmd_bandwidths(h: torch.Tensor, fix_sigma: float | None, kernel_number: int, kernel_multiplier: float) -> torch.Tensor:
    """The kernel bandwidths (..., kernel_number) for h (..., B, d): values spaced by ``kernel_multiplier``
    around a centre.

    The centre is ``fix_sigma``, or (when None) the mean pairwise squared distance of the batch
    (of each restart's batch for h (R, B, d)), detached so that the bandwidth does not chase
    the encoder.
    """
    if fix_sigma is None:
        centre = mean_squared_distance(h.detach()).clamp_min(1e-12)
    else:
        centre = torch.full(h.shape[:-2], float(fix_sigma), dtype=h.dtype, device=h.device)
    base = centre / kernel_multiplier ** (kernel_number // 2)
    powers = torch.arange(kernel_number, dtype=h.dtype, device=h.device)
    return base[..., None] * kernel_multiplier**powers


# Kernel-matrix entries computed at once (all restarts together): blocks of rows small enough to stay
# in cache through the ~15 elementwise passes per block (exp, squarings, sums). The whole (R, B, B)
# matrix at a time went through memory on every pass: 2.3x slower at R=4, B=1024 on one core.
KERNEL_BLOCK_ELEMENTS = 2**18


def _rows_per_block(h: torch.Tensor) -> int:
    """Rows of the kernel matrix per block (KERNEL_BLOCK_ELEMENTS entries, all restarts together) for h (..., B, d)."""
    return max(8, KERNEL_BLOCK_ELEMENTS // (h.shape[:-2].numel() * h.shape[-2]))


def _kernel_block(
    h: torch.Tensor, norms: torch.Tensor, rows: slice, cols: slice, inv: torch.Tensor, multiplier: float, need_grad: bool
):
    """The block (rows, cols) of the kernel sum_q exp(-||h_a - h_b||^2 / b_q) for h (..., B, d) with its
    squared row norms (..., B) and inv = -1 / bandwidths (..., Q), and (when need_grad) its slope
    d kernel / d(squared distance)."""
    sq = norms[..., rows, None] + norms[..., None, cols] - 2.0 * h[..., rows, :] @ h[..., cols, :].transpose(-1, -2)
    sq.clamp_min_(0.0)
    kernel = slope = e = None
    for q in reversed(range(inv.shape[-1])):  # widest first: with multiplier 2, e_{b/2} = e_b ** 2
        inv_q = inv[..., q, None, None]
        e = e.square_() if (e is not None and multiplier == 2.0) else torch.exp(sq * inv_q)
        if kernel is None:
            kernel, slope = e.clone(), (e * inv_q if need_grad else None)
        else:
            kernel.add_(e)
            if need_grad:
                slope.addcmul_(e, inv_q)  # in place
    return kernel, slope


class _WeightedKernelSum(torch.autograd.Function):
    """sum_ab W_ab * sum_q exp(-||h_a - h_b||^2 / b_q) for a symmetric W, with a closed-form gradient;
    for h (R, B, d) one value per restart (R,), each with its own bandwidths.

    Written by hand (not left to autograd) for speed: autograd would keep and traverse several
    B x B intermediates per kernel. The gradient is d/dh_a = 4 * (rowsum(G)_a h_a - (G h)_a) with
    G = W * dk/d(sq); the bandwidths (from mmd_bandwidths) are constants. The forward pass goes over
    blocks of rows (KERNEL_BLOCK_ELEMENTS), each from its diagonal on (the upper triangle; the lower
    one is its mirror), and accumulates rowsum(G) and G h block by block while the block is in
    cache, so G is never stored: backward only scales the (..., B, d) gradient by grad_out.
    """

    @staticmethod
    def forward(ctx, h, weights, fix_sigma, kernel_number, multiplier, need_grad=True):
        inv = -1.0 / mmd_bandwidths(h, fix_sigma, kernel_number, multiplier)  # (..., Q)
        norms = h.square().sum(dim=-1)
        n = h.shape[-2]
        value = h.new_zeros(h.shape[:-2])
        # Without a gradient to come (validation, the selection score) neither the slope nor the
        # gradient's sums are needed: about half of the forward pass's work. The value is the same.
        if need_grad:
            g_rowsum, g_h = h.new_zeros(h.shape[:-1]), torch.zeros_like(h)
        block = _rows_per_block(h)
        # The kernel and W are symmetric: each block of rows is computed from its diagonal on, the
        # entries right of the diagonal block count twice, and G's lower part is their mirror.
        for start in range(0, n, block):
            stop = min(start + block, n)
            rows, cols = slice(start, stop), slice(start, n)
            kernel, slope = _kernel_block(h, norms, rows, cols, inv, multiplier, need_grad)
            block_weights = weights[rows, cols]
            weighted = kernel.mul_(block_weights)
            width = stop - start
            value += weighted[..., :width].sum(dim=(-2, -1)) + 2.0 * weighted[..., width:].sum(dim=(-2, -1))
            if need_grad:
                upper = slope.mul_(block_weights)  # G[rows, start:]
                g_rowsum[..., rows] += upper.sum(dim=-1)
                g_h[..., rows, :] += upper @ h[..., cols, :]
                mirror = upper[..., width:]  # G[rows, stop:] = G[stop:, rows]^T
                g_rowsum[..., stop:] += mirror.sum(dim=-2)
                g_h[..., stop:, :] += mirror.transpose(-1, -2) @ h[..., rows, :]
        if need_grad:
            ctx.save_for_backward((g_rowsum[..., None] * h).sub_(g_h).mul_(4.0))
        return value

    @staticmethod
    def backward(ctx, grad_out):
        (grad_h,) = ctx.saved_tensors
        return grad_out[..., None, None] * grad_h, None, None, None, None, None


def weighted_kernel_sum(h, weights, fix_sigma, kernel_number, kernel_multiplier) -> torch.Tensor:
    """_WeightedKernelSum of h, told whether a gradient can follow: inside its forward pass grad mode
    is always off and ctx.needs_input_grad is still True under torch.no_grad, so only the caller knows."""
    need_grad = torch.is_grad_enabled() and h.requires_grad
    return _WeightedKernelSum.apply(h, weights, fix_sigma, int(kernel_number), float(kernel_multiplier), need_grad)


def mmd_penalty(
    h: torch.Tensor,
    domains: torch.Tensor,
    num_domains: int,
    fix_sigma: float | None = None,
    kernel_number: int = 5,
    kernel_multiplier: float = 2.0,
    reduction: str = "mean",
    per_pair: bool = False,
    unbiased: bool = False,
) -> torch.Tensor:
    """Distribution invariance: squared MMD between every pair of domains, averaged
    (reduction="sum": summed) over pairs; per restart for h (R, B, d).

    unbiased=False is the paper's (biased, V-statistic) estimator: each K_ii block mean includes the
    diagonal k(h_a, h_a), so even for identically distributed domains its expectation exceeds 0 by
    about sum_i (k(h, h) - E k(h, h')) / n_i (times the pairs domain i is in), which training can lower
    by clustering h_S (raising E k(h, h') within a domain) instead of matching the domains: saturated,
    two-level latents (docs/results/balls/). unbiased=True is the U-statistic: the diagonal left out,
    K_ii averaged over the n_i (n_i - 1) pairs of distinct rows, expectation exactly the population
    MMD^2 (0 for invariant latents whatever their shape); a domain with one row in the batch is left out.

    per_pair=True computes each pair as the reference code does (see mmd_penalty_per_pair).

    Kernel: sum over bandwidths b of exp(-||a - c||^2 / b). One kernel matrix for the whole
    batch, with one bandwidth set shared by all pairs. The mean over pairs of
    MMD^2_ij = K_ii + K_jj - 2 K_ij (block means) is linear in the kernel matrix, so it is one
    weighted sum sum_ab W[d_a, d_b] k(h_a, h_b) with per-domain-pair coefficients W.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"penalty reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if per_pair:
        if unbiased:
            raise ValueError("model.mmd_loss.per_pair=true reproduces the reference's biased estimator: set unbiased=false")
        return mmd_penalty_per_pair(h, domains, num_domains, fix_sigma, kernel_number, kernel_multiplier, reduction)
    coef = mmd_block_coefficients(domains, num_domains, reduction, unbiased, h.dtype)
    if coef is None:
        return _zero_per_restart(h)
    one_hot = torch.nn.functional.one_hot(domains, num_domains).to(h.dtype)
    weights = one_hot @ coef @ one_hot.T  # = coef[domains][:, domains], exactly; a B x B gather was 4x slower
    if unbiased:
        weights.fill_diagonal_(0.0)
    return weighted_kernel_sum(h, weights, fix_sigma, kernel_number, kernel_multiplier)


def mmd_block_coefficients(domains: torch.Tensor, num_domains: int, reduction: str, unbiased: bool, dtype) -> torch.Tensor | None:
    """The coefficient (num_domains, num_domains) of each block (i, j) of the kernel matrix in
    mmd_penalty's weighted sum, or None when fewer than two domains take part."""
    counts = torch.bincount(domains, minlength=num_domains)
    present = counts > (1 if unbiased else 0)
    num_present = int(present.sum())
    if num_present < 2:
        return None
    n = counts.to(dtype).clamp_min(1.0)
    num_pairs = num_present * (num_present - 1) / 2 if reduction == "mean" else 1.0
    # Each domain's K_ii appears in (P - 1) pairs, each K_ij (i != j) with -2, split over the two
    # symmetric blocks.
    coef = -1.0 / (n[:, None] * n[None, :])
    coef.diagonal().mul_(-(num_present - 1) * (n / (n - 1.0).clamp_min(1.0) if unbiased else 1.0))
    return coef * (present[:, None] & present[None, :]) / num_pairs


@torch.no_grad()
def mmd_penalty_relabelled(
    h: torch.Tensor,
    labellings: torch.Tensor,
    num_domains: int,
    fix_sigma: float | None = None,
    kernel_number: int = 5,
    kernel_multiplier: float = 2.0,
    reduction: str = "mean",
    unbiased: bool = False,
) -> torch.Tensor:
    """mmd_penalty of one h (N, d) under each of P domain labellings (P, N) (e.g. permutations, for
    the score's spread under shuffled labels), without gradient: (P,).

    The kernel matrix K does not depend on the labels (nor do the bandwidths), and the penalty is
    sum_ij coef_ij (O^T K O)_ij with O the labelling's one-hot (N, num_domains), so K is computed
    once, in blocks of rows, each multiplied at once by the one-hots of all labellings: one pass of
    exps instead of P (the same values up to float rounding)."""
    n = h.shape[0]
    inv = -1.0 / mmd_bandwidths(h, fix_sigma, kernel_number, kernel_multiplier)
    norms = h.square().sum(dim=-1)
    one_hots = torch.nn.functional.one_hot(labellings, num_domains).to(h.dtype)  # (P, N, D)
    stacked = one_hots.permute(1, 0, 2).reshape(n, -1)  # (N, P * D)
    kernel_one_hots = torch.empty_like(stacked)  # K @ stacked
    block = _rows_per_block(h)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        kernel, _ = _kernel_block(h, norms, rows, slice(None), inv, kernel_multiplier, False)
        if unbiased:  # the U-statistic leaves out k(h_a, h_a)
            kernel.diagonal(offset=start).zero_()
        kernel_one_hots[rows] = kernel @ stacked
    block_sums = torch.einsum("pna,npb->pab", one_hots, kernel_one_hots.view(n, *one_hots.shape[::2]))  # O^T K O
    values = []
    for labels, sums in zip(labellings, block_sums):
        coef = mmd_block_coefficients(labels, num_domains, reduction, unbiased, h.dtype)
        values.append(h.new_zeros(()) if coef is None else (coef * sums).sum())
    return torch.stack(values)


def mmd_penalty_per_pair(
    h: torch.Tensor,
    domains: torch.Tensor,
    num_domains: int,
    fix_sigma: float | None = None,
    kernel_number: int = 1,
    kernel_multiplier: float = 1.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """The reference code's MMD: for each pair of present domains, both truncated to their first
    min(n_i, n_j) rows (batch order), one kernel matrix on the pair's rows with the bandwidth centre
    taken from those rows (fix_sigma=None), MMD^2 = mean K_ii + mean K_jj - 2 mean K_ij; summed
    (or averaged) over pairs. A loop over pairs: for reproducing the reference, not for speed."""
    counts = torch.bincount(domains, minlength=num_domains)
    present = torch.nonzero(counts > 0).flatten().tolist()
    if len(present) < 2:
        return _zero_per_restart(h)
    rows = [torch.nonzero(domains == d).flatten() for d in present]
    values = []
    for a in range(len(present)):
        for b in range(a + 1, len(present)):
            m = min(len(rows[a]), len(rows[b]))
            pair = torch.cat([rows[a][:m], rows[b][:m]])
            weights = torch.full((2 * m, 2 * m), 1.0 / (m * m), dtype=h.dtype, device=h.device)
            weights[:m, m:] = weights[m:, :m] = -1.0 / (m * m)
            values.append(weighted_kernel_sum(h[..., pair, :], weights, fix_sigma, kernel_number, kernel_multiplier))
    stacked = torch.stack(values)
    return stacked.sum(dim=0) if reduction == "sum" else stacked.mean(dim=0)


def mmd_kernel_vanishes(
    h: torch.Tensor, fix_sigma: float | None = None, kernel_number: int = 5, kernel_multiplier: float = 2.0
) -> float | None:
    """With a fixed bandwidth, the typical kernel value exp(-mean_sq_dist / widest bandwidth) if it is
    below 1e-6 (the penalty is then a constant with vanishing gradient), else None."""
    if fix_sigma is None or h.shape[0] < 2:
        return None
    with torch.no_grad():
        mean_sq = float(mean_squared_distance(h))
        widest = float(mmd_bandwidths(h, fix_sigma, kernel_number, kernel_multiplier).max())
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


def _ridged_cholesky(cov: torch.Tensor, ridge: float) -> torch.Tensor:
    """Cholesky factor of cov (R, d, d) + ridge x its mean variance x I: invertible when h collapses in
    some direction."""
    scale = cov.diagonal(dim1=-2, dim2=-1).mean(dim=-1).clamp_min(1e-12)
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    return torch.linalg.cholesky(cov + (ridge * scale)[:, None, None] * eye)


def domain_means_penalty(h: torch.Tensor, domains: torch.Tensor, num_domains: int, ridge: float = 1e-5) -> torch.Tensor:
    """Linear invariance: how much of h's variance, in any direction, the domain explains through its
    mean. Pillai's trace tr(S_T^-1 S_B) of h (B, d) or (R, B, d) against the domain labels (S_T: the
    covariance of h; S_B: that of the domain means, each domain weighted by its share of the rows),
    the sum of the squared canonical correlations between h and the domain's one-hot, minus its
    expectation for identically distributed domains, d (k - 1) / (B - 1) (exact for Gaussian h), and
    divided by min(d, k - 1), so that it is at most 1.

    Invariant to every invertible affine map of h: shrinking, saturating or rotating h_S cannot lower
    it, and a spurious direction counts however little of h's variance it has. It sees the domains'
    means only; MMD and min-max see the rest of their distributions. ``ridge`` (relative to the mean
    variance) keeps S_T invertible when h collapses in some direction. Not in the paper: an option
    (model.penalty_criterion.domain_means), off by default.
    """
    counts = torch.bincount(domains, minlength=num_domains)
    present = torch.nonzero(counts > 0).flatten()
    if len(present) < 2:
        return _zero_per_restart(h)
    squeeze = h.dim() == 2
    h = h[None] if squeeze else h
    rows, d = h.shape[-2], h.shape[-1]
    centred = h - h.mean(dim=-2, keepdim=True)
    total = centred.transpose(-1, -2) @ centred / rows  # (R, d, d)
    present_counts = counts[present].to(h.dtype)
    onehot = F.one_hot(domains, num_domains)[:, present].to(h.dtype)  # (B, k)
    means = (onehot.T @ centred) / present_counts[:, None]  # (R, k, d), centred: relative to the pooled mean
    whitened = torch.linalg.solve_triangular(_ridged_cholesky(total, ridge), means.transpose(-1, -2), upper=False)
    trace = (whitened.square().sum(dim=-2) * (present_counts / rows)).sum(dim=-1)  # (R,)
    k = len(present)
    out = (trace - d * (k - 1) / (rows - 1)) / min(d, k - 1)
    return out[0] if squeeze else out


def domain_covariances_penalty(h: torch.Tensor, domains: torch.Tensor, num_domains: int, ridge: float = 1e-5) -> torch.Tensor:
    """Second-moment invariance: how far the domains' covariances of h (B, d) or (R, B, d) lie from
    their average, in the units of the pooled within-domain covariance W (so, like
    domain_means_penalty, invariant to every invertible affine map of h): the mean over domains,
    weighted by their shares, of ||W^-1/2 (S_i - S_bar) W^-1/2||_F^2 / d.

    Estimated without a chance part: each domain's rows are split in two halves (alternate rows in
    batch order), each half gives its own covariance estimate, and the penalty is the inner product
    of the two halves' deviations, whose expectation is the squared deviation itself whatever the
    shape of h (a plain squared estimate would be smaller for light-tailed h, and reward saturating
    it, as min-max does). It can be negative. Domains with fewer than 4 rows are left out. Not in the
    paper: an option (model.penalty_criterion.domain_covariances), off by default.
    """
    counts = torch.bincount(domains, minlength=num_domains)
    present = torch.nonzero(counts >= 4).flatten()
    if len(present) < 2:
        return _zero_per_restart(h)
    squeeze = h.dim() == 2
    h = h[None] if squeeze else h
    keep = (counts >= 4)[domains]
    h, domains = h[:, keep], domains[keep]
    d = h.shape[-1]
    # group 2i + half for the i-th present domain, the half from the row's position within its domain
    slot = torch.zeros(num_domains, dtype=domains.dtype, device=domains.device)
    slot[present] = torch.arange(len(present), dtype=domains.dtype, device=domains.device)
    order, position = _positions_in_domain(domains, torch.bincount(domains, minlength=num_domains))
    group = torch.empty_like(domains)
    group[order] = 2 * slot[domains[order]] + position % 2
    onehot = F.one_hot(group, 2 * len(present)).to(h.dtype)  # (B, 2k)
    group_counts = onehot.sum(dim=0)
    means = (onehot.T @ h) / group_counts[:, None]  # (R, 2k, d)
    centred = h - means[:, group]
    covs = torch.einsum("bg,rbi,rbj->rgij", onehot, centred, centred) / (group_counts - 1.0)[:, None, None]
    shares = (group_counts[0::2] + group_counts[1::2]) / onehot.shape[0]  # (k,)
    within = (covs[:, 0::2] + covs[:, 1::2]) / 2.0  # each domain's covariance, (R, k, d, d)
    chol = _ridged_cholesky((within * shares[:, None, None]).sum(dim=1), ridge)[:, None]  # (R, 1, d, d)
    half_a, half_b = covs[:, 0::2], covs[:, 1::2]

    def whitened_deviation(c):  # L^-1 (c_i - sum_j share_j c_j) L^-T, (R, k, d, d)
        c = c - (c * shares[:, None, None]).sum(dim=1, keepdim=True)
        c = torch.linalg.solve_triangular(chol, c, upper=False)
        return torch.linalg.solve_triangular(chol, c.transpose(-1, -2), upper=False)

    inner = (whitened_deviation(half_a) * whitened_deviation(half_b)).sum(dim=(-2, -1))  # (R, k)
    out = (inner * shares).sum(dim=-1) / d
    return out[0] if squeeze else out


def stddev_penalty(
    h: torch.Tensor, domains: torch.Tensor, num_domains: int, stddev_eps: float = 1e-8, reduction: str = "mean"
) -> torch.Tensor:
    """Variance invariance: mean (reduction="sum": sum) over domain pairs and coordinates of (std_i - std_j)^2.

    Domains with fewer than two samples in the batch have no standard deviation and are left out.
    """
    columns, restarts = _as_columns(h)
    var, counts = domain_variances(columns, domains, num_domains)
    present = torch.nonzero(counts > 1).flatten()
    if len(present) < 2:
        return _zero_per_restart(h)
    std = torch.sqrt(var[present] + stddev_eps)
    i, j = torch.triu_indices(len(present), len(present), offset=1, device=h.device)
    return _per_restart((std[i] - std[j]).square(), restarts, squeeze=h.dim() == 2, rows=reduction, columns=reduction)


def hinge_loss(
    h: torch.Tensor,
    domains: torch.Tensor,
    num_domains: int,
    stddev_threshold: float = 1.0,
    stddev_eps: float = 1e-4,
    reduction: str = "mean",
) -> torch.Tensor:
    """Anti-collapse: per domain, mean over coordinates of relu(threshold - sqrt(var + eps)),
    averaged (reduction="sum": summed) over the domains with at least two samples in the batch."""
    columns, restarts = _as_columns(h)
    var, counts = domain_variances(columns, domains, num_domains)
    present = torch.nonzero(counts > 1).flatten()
    if len(present) == 0:
        return _zero_per_restart(h)
    std = torch.sqrt(var[present] + stddev_eps)
    return _per_restart(F.relu(stddev_threshold - std), restarts, squeeze=h.dim() == 2, rows=reduction)
