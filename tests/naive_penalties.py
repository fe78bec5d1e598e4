"""Naive loop references for the penalties: one Python loop per domain pair, coordinate and domain.

They follow the definitions of docs/design.md, Objective, literally; the vectorised versions in mdcrl.penalties must
match them, and benchmarks/ times both.
"""

import itertools

import torch


def _present(domains, num_domains, min_count=1):
    return [i for i in range(num_domains) if int((domains == i).sum()) >= min_count]


def _reduce(values, reduction):
    stacked = torch.stack(values)
    return stacked.sum() if reduction == "sum" else stacked.mean()


def naive_minmax_penalty(h, domains, num_domains, top_k=5, loss_transform="mse", reduction="mean"):
    present = _present(domains, num_domains)
    if len(present) < 2:
        return h.sum() * 0.0
    k = min([top_k] + [int((domains == i).sum()) for i in present])
    f = (lambda d: d**2) if loss_transform == "mse" else (lambda d: d.abs())
    pair_losses = []
    for i, j in itertools.combinations(present, 2):
        total = 0.0
        for c in range(h.shape[1]):
            vi = torch.sort(h[domains == i, c]).values
            vj = torch.sort(h[domains == j, c]).values
            total = total + f(vi[:k] - vj[:k]).mean() + f(vi[-k:] - vj[-k:]).mean()
        pair_losses.append(total / h.shape[1])
    return _reduce(pair_losses, reduction)


def naive_mmd_penalty(
    h, domains, num_domains, fix_sigma=None, kernel_number=5, kernel_multiplier=2.0, reduction="mean", unbiased=False
):
    present = _present(domains, num_domains, min_count=2 if unbiased else 1)
    if len(present) < 2:
        return h.sum() * 0.0
    n = h.shape[0]
    if fix_sigma is None:
        total = 0.0
        for a in range(n):
            total += float(((h[a] - h) ** 2).sum().detach())
        centre = total / (n * n - n)
    else:
        centre = fix_sigma
    base = centre / kernel_multiplier ** (kernel_number // 2)
    widths = [base * kernel_multiplier**q for q in range(kernel_number)]

    def mean_kernel(a, b, distinct=False):
        sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        k = sum(torch.exp(-sq / w) for w in widths)
        if not distinct:
            return k.mean()
        m = len(a)  # the U-statistic: pairs of distinct rows only
        return (k.sum() - k.diagonal().sum()) / (m * (m - 1))

    losses = []
    for i, j in itertools.combinations(present, 2):
        hi, hj = h[domains == i], h[domains == j]
        losses.append(mean_kernel(hi, hi, unbiased) + mean_kernel(hj, hj, unbiased) - 2 * mean_kernel(hi, hj))
    return _reduce(losses, reduction)


def naive_reference_mmd(h, domains, num_domains, fix_sigma=None, kernel_number=1, kernel_multiplier=1.0):
    """The reference code's MMD as its definition reads: for each pair of domains, both truncated to
    their first min(n_i, n_j) rows, the bandwidth from the pair's own rows, summed over pairs."""
    present = _present(domains, num_domains)
    losses = []
    for i, j in itertools.combinations(present, 2):
        hi, hj = h[domains == i], h[domains == j]
        m = min(len(hi), len(hj))
        hi, hj = hi[:m], hj[:m]
        both = torch.cat([hi, hj])
        n = len(both)
        sq_all = ((both[:, None, :] - both[None, :, :]) ** 2).sum(-1)
        centre = float(sq_all.detach().sum()) / (n * n - n) if fix_sigma is None else fix_sigma
        base = centre / kernel_multiplier ** (kernel_number // 2)
        widths = [base * kernel_multiplier**q for q in range(kernel_number)]

        def mean_kernel(a, b, widths=widths):
            sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
            return sum(torch.exp(-sq / w) for w in widths).mean()

        losses.append(mean_kernel(hi, hi) + mean_kernel(hj, hj) - 2 * mean_kernel(hi, hj))
    return torch.stack(losses).sum()


def _std(values, eps):
    return torch.sqrt(values.var(unbiased=True) + eps)


def naive_stddev_penalty(h, domains, num_domains, stddev_eps=1e-8, reduction="mean"):
    present = _present(domains, num_domains, min_count=2)
    if len(present) < 2:
        return h.sum() * 0.0
    losses = []
    for i, j in itertools.combinations(present, 2):
        for c in range(h.shape[1]):
            losses.append((_std(h[domains == i, c], stddev_eps) - _std(h[domains == j, c], stddev_eps)) ** 2)
    return _reduce(losses, reduction)


def naive_hinge_loss(h, domains, num_domains, stddev_threshold=1.0, stddev_eps=1e-4, reduction="mean"):
    present = _present(domains, num_domains, min_count=2)
    if not present:
        return h.sum() * 0.0
    per_domain = []
    for i in present:
        per_domain.append(
            torch.stack([torch.relu(stddev_threshold - _std(h[domains == i, c], stddev_eps)) for c in range(h.shape[1])]).mean()
        )
    return _reduce(per_domain, reduction)


def naive_domain_means_penalty(h, domains, num_domains, ridge=1e-5):
    """Pillai's trace tr(S_T^-1 S_B) from its definition (sums over rows and a loop over domains),
    less d (k - 1) / (n - 1), over min(d, k - 1)."""
    present = _present(domains, num_domains)
    if len(present) < 2:
        return h.sum() * 0.0
    n, d = h.shape
    mean = sum(h[a] for a in range(n)) / n
    total = sum(torch.outer(h[a] - mean, h[a] - mean) for a in range(n)) / n
    total = total + ridge * torch.diagonal(total).mean() * torch.eye(d, dtype=h.dtype)
    between = 0.0
    for i in present:
        rows = h[domains == i]
        gap = rows.mean(dim=0) - mean
        between = between + (len(rows) / n) * torch.outer(gap, gap)
    trace = torch.trace(torch.linalg.inv(total) @ between)
    k = len(present)
    return (trace - d * (k - 1) / (n - 1)) / min(d, k - 1)


def naive_domain_covariances_penalty(h, domains, num_domains, ridge=1e-5):
    """Each domain's rows split into alternate halves in batch order, each half's covariance, the
    inner product of the two halves' deviations from the share-weighted average, whitened by the
    pooled within-domain covariance; share-weighted mean over domains, over d."""
    present = _present(domains, num_domains, min_count=4)
    if len(present) < 2:
        return h.sum() * 0.0
    d = h.shape[1]
    rows = {i: h[domains == i] for i in present}
    n = sum(len(r) for r in rows.values())
    shares = {i: len(rows[i]) / n for i in present}

    def cov(x):
        centred = x - x.mean(dim=0)
        return sum(torch.outer(c, c) for c in centred) / (len(x) - 1)

    halves = {i: (cov(rows[i][0::2]), cov(rows[i][1::2])) for i in present}
    pooled = sum(shares[i] * (halves[i][0] + halves[i][1]) / 2 for i in present)
    pooled = pooled + ridge * torch.diagonal(pooled).mean() * torch.eye(d, dtype=h.dtype)
    inv_root = torch.linalg.inv(torch.linalg.cholesky(pooled))
    mean_a = sum(shares[i] * halves[i][0] for i in present)
    mean_b = sum(shares[i] * halves[i][1] for i in present)
    total = 0.0
    for i in present:
        dev_a = inv_root @ (halves[i][0] - mean_a) @ inv_root.T
        dev_b = inv_root @ (halves[i][1] - mean_b) @ inv_root.T
        total = total + shares[i] * (dev_a * dev_b).sum()
    return total / d
