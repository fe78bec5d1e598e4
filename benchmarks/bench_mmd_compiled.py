"""Would torch.compile make MMD's kernel cheaper? (issue 22; measured, not adopted: docs/throughput.md)

The MMD penalty's forward and backward at the grid's shape (4 restarts, batch 1024, 8 domains, one
thread), three ways:
- current: penalties._WeightedKernelSum (blocks of rows, in-place elementwise passes);
- compiled: the same blocks, with each block's elementwise part (clamp, exp, the squarings, the
  weights, the value's and the gradient's row and column sums) one torch.compile'd function
  (inductor, dynamic shapes: the triangular blocks have different widths);
- eager: that same function without compiling it (what the compiler starts from).
It prints the first call's time (the compilation) and the relative differences in value and gradient.
    python benchmarks/bench_mmd_compiled.py      (needs a C++ compiler; about a minute)
"""

from __future__ import annotations

import time

import torch

from mdcrl import penalties


def block_terms(sq, inv, weights, col_factor):
    """One block's value, its G = weights * d kernel / d sq, G's row sums, and G's column sums right of
    the diagonal block (col_factor: 1 on the diagonal block's columns, 2 right of it)."""
    sq = sq.clamp_min(0.0)
    kernel = slope = e = None
    for q in range(inv.shape[-1] - 1, -1, -1):  # widest first: with multiplier 2, e_{b/2} = e_b ** 2
        inv_q = inv[..., q, None, None]
        e = e * e if e is not None else torch.exp(sq * inv_q)
        kernel, slope = (e, e * inv_q) if kernel is None else (kernel + e, slope + e * inv_q)
    value = (kernel * weights * col_factor).sum(dim=(-2, -1))
    upper = slope * weights
    return value, upper, upper.sum(dim=-1), (upper * (col_factor - 1.0)).sum(dim=-2)


def kernel_sum_and_gradient(h, weights, terms):
    """As penalties._WeightedKernelSum (adaptive bandwidths, 5 kernels, multiplier 2), with `terms`
    computing each block's elementwise part: the value and d value / d h."""
    inv = -1.0 / penalties.mmd_bandwidths(h, None, 5, 2.0)
    norms = h.square().sum(dim=-1)
    n = h.shape[-2]
    value, g_rowsum, g_h = h.new_zeros(h.shape[:-2]), h.new_zeros(h.shape[:-1]), torch.zeros_like(h)
    block = penalties._rows_per_block(h)
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows, cols, width = slice(start, stop), slice(start, n), stop - start
        sq = norms[..., rows, None] + norms[..., None, cols] - 2.0 * h[..., rows, :] @ h[..., cols, :].transpose(-1, -2)
        col_factor = torch.ones(n - start)
        col_factor[width:] = 2.0
        v, upper, row_sums, col_sums = terms(sq, inv, weights[rows, cols], col_factor)
        value += v
        g_rowsum[..., rows] += row_sums
        g_h[..., rows, :] += upper @ h[..., cols, :]
        g_rowsum[..., stop:] += col_sums[..., width:]
        g_h[..., stop:, :] += upper[..., width:].transpose(-1, -2) @ h[..., rows, :]
    return value, (g_rowsum[..., None] * h).sub_(g_h).mul_(4.0)


def per_call_ms(fn, repeats=30):
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    compiled = torch.compile(block_terms, dynamic=True)
    restarts, batch, domains = 4, 1024, 8
    onehot = torch.nn.functional.one_hot(torch.randint(0, domains, (batch,)), domains).float()
    pair = torch.rand(domains, domains)
    weights = onehot @ (pair + pair.T) @ onehot.T
    for d in (4, 8, 32):
        h = torch.randn(restarts, batch, d)
        start = time.perf_counter()
        value, grad = kernel_sum_and_gradient(h, weights, compiled)
        first = time.perf_counter() - start
        x = h.clone().requires_grad_(True)
        reference = penalties._WeightedKernelSum.apply(x, weights, None, 5, 2.0, True)
        reference.sum().backward()

        def current(h=h):
            y = h.clone().requires_grad_(True)
            penalties._WeightedKernelSum.apply(y, weights, None, 5, 2.0, True).sum().backward()

        now = per_call_ms(current)
        fused = per_call_ms(lambda h=h: kernel_sum_and_gradient(h, weights, compiled))
        eager = per_call_ms(lambda h=h: kernel_sum_and_gradient(h, weights, block_terms))
        value_diff = ((value - reference.detach()).abs() / reference.detach().abs()).max().item()
        grad_diff = ((grad - x.grad).norm() / x.grad.norm()).item()
        print(
            f"d_S {d:2d}: current {now:.2f} ms, compiled {fused:.2f} ms ({now / fused:.2f}x), eager {eager:.2f} ms; "
            f"first compiled call {first:.1f} s; relative difference: value {value_diff:.1e}, gradient {grad_diff:.1e}"
        )


if __name__ == "__main__":
    main()
