"""The held-out probes of metrics.json (metrics.evaluate_latents) against a naive reference that fits
one probe per (true block, learned block) pair, as the code did before, in the same run: wall time of
each, their ratio, and the largest difference of any metric (the two must agree).

The latents are those of the closed-form moment estimate (experiment=moment_baseline's encoder) on
the linear grid's data, so that the probes see what a trained run gives them. One thread, as each
run of a two-worker sweep has.
Run: python benchmarks/bench_evaluation.py   (about a minute)
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import threadpoolctl
import torch
from omegaconf import OmegaConf
from timing import ROOT

from mdcrl.data.mixing import generate_mixing_data
from mdcrl.metrics import domain_accuracy, evaluate_latents, heldout_r2, mean_corr_coef, shuffled_order
from mdcrl.models.base import fit_whitening
from mdcrl.moment import moment_stable_subspace

CELLS = [(8, 4), (16, 8), (64, 16)]  # (z_dim, num_domains)


def naive_probes(h_train, z_train, d_train, h_test, z_test, d_test, d_h: int, d_z: int, nonlinear: bool) -> dict:
    """evaluate_latents' entries with one probe fit per (target block, source block) pair, each
    headline R^2 fitted again beside the block matrix (the code before this change)."""
    ptr, pte = shuffled_order(len(h_train)), shuffled_order(len(h_test), 1)
    h_train, z_train, d_train = h_train[ptr], z_train[ptr], d_train[ptr]
    h_test, z_test, d_test = h_test[pte], z_test[pte], d_test[pte]
    bh = {"hinv": slice(0, d_h), "hsp": slice(d_h, None)}
    bz = {"zinv": slice(0, d_z), "zsp": slice(d_z, None)}
    out = {}
    kinds = ("linear", "nonlinear") if nonlinear else ("linear",)
    for kind in kinds:
        for t, tc in bz.items():
            for s, sc in bh.items():
                out[f"{kind}.{t}_from_{s}"] = heldout_r2(h_train[:, sc], z_train[:, tc], h_test[:, sc], z_test[:, tc], kind)
    for t, tc in bz.items():  # the headline entries, fitted again beside the block matrix
        hs = bh["hinv"]
        out[f"linear.{t}_from_hinv_again"] = heldout_r2(h_train[:, hs], z_train[:, tc], h_test[:, hs], z_test[:, tc])
    for s, sc in bz.items():
        out[f"hinv_from_{s}"] = heldout_r2(z_train[:, sc], h_train[:, bh["hinv"]], z_test[:, sc], h_test[:, bh["hinv"]])
    out["z_from_h"] = heldout_r2(h_train, z_train, h_test, z_test)
    out["oracle"] = heldout_r2(z_train[:, bz["zinv"]], z_train[:, bz["zsp"]], z_test[:, bz["zinv"]], z_test[:, bz["zsp"]])
    out["mcc"] = mean_corr_coef(h_test, z_test)
    out["domain_acc_hinv"] = domain_accuracy(h_train[:, bh["hinv"]], d_train, h_test[:, bh["hinv"]], d_test)
    out["domain_acc_h"] = domain_accuracy(h_train, d_train, h_test, d_test)
    return out


def moment_latents(z_dim: int, num_domains: int):
    cfg = OmegaConf.load(ROOT / "configs" / "datamodule" / "mixing.yaml").dataset
    cfg.z_dim, cfg.num_domains = z_dim, num_domains
    data = generate_mixing_data(cfg, seed=1235)
    train, test = data.splits["train"], data.splits["test"]
    mean, matrix = fit_whitening(train.x)
    estimate = moment_stable_subspace((train.x - mean) @ matrix, train.domain, z_dim // 2)
    frame = np.concatenate([estimate.stable, estimate.spurious], axis=1)
    return [((s.x - mean) @ matrix @ frame, s.z, s.domain) for s in (train, test)]


def timed(fn, *args, repeats: int = 3, **kwargs) -> tuple[float, object]:
    """(median seconds of fn(*args, **kwargs), its result)."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], out


def main():
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    threadpoolctl.threadpool_limits(1)
    print(f"{'cell':10s} {'probes':>10s} {'naive s':>8s} {'ours s':>8s} {'ratio':>6s} {'max |diff|':>11s}")
    for z_dim, k in CELLS:
        (h_tr, z_tr, d_tr), (h_te, z_te, d_te) = moment_latents(z_dim, k)
        d = z_dim // 2
        for nonlinear in (False, True):
            arrays = (h_tr, z_tr, d_tr, h_te, z_te, d_te, d, d)
            naive_s, ref = timed(naive_probes, *arrays, nonlinear)
            ours_s, out = timed(evaluate_latents, *arrays, nonlinear=nonlinear)
            logistic_s = timed(domain_accuracy, h_tr, d_tr, h_te, d_te)[0]
            logistic_s += timed(domain_accuracy, h_tr[:, :d], d_tr, h_te[:, :d], d_te)[0]
            blocks = {f"linear.{k_}": v for k_, v in out["r2_blocks_linear"].items()}
            blocks |= {f"nonlinear.{k_}": v for k_, v in out.get("r2_blocks_nonlinear", {}).items()}
            pairs = [(ref[k_], v) for k_, v in blocks.items()]
            pairs += [(ref[k_], out[f"r2_{k_}"]) for k_ in ("hinv_from_zinv", "hinv_from_zsp", "z_from_h")]
            pairs += [(ref[k_], out[k_]) for k_ in ("mcc", "domain_acc_hinv", "domain_acc_h")]
            diff = max(abs(a - b) for a, b in pairs)
            print(
                f"({z_dim},{k}){'':4s} {'+kernel' if nonlinear else 'linear':>10s} {naive_s:8.3f} {ours_s:8.3f} "
                f"{naive_s / ours_s:6.2f} {diff:11.1e}   (both include {logistic_s:.3f} s of the two logistic domain probes)"
            )


if __name__ == "__main__":
    main()
