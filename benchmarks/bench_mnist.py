"""Coloured digits: generation (images per second, vectorised against a naive per-image loop in the
same run, which must give the same images) and stage-1 throughput (training images per second of
the CPU preset's MLP autoencoder, forward + backward + Adam step, at 16 and 28 pixels). One thread,
as each run of a two-worker sweep has.
Run: python benchmarks/bench_mnist.py   (about half a minute)
"""

from __future__ import annotations

import time

import numpy as np
import torch
from omegaconf import OmegaConf

from mdcrl.data.mnist import DIGIT_THRESHOLD, colourise, embedded_digits, fit_to_side, sample_colours
from mdcrl.models.autoencoders import mlp_autoencoder


def naive_colourise(grey: np.ndarray, colours: np.ndarray, method: str) -> np.ndarray:
    """The per-image, per-pixel loop that colourise replaces (digits and background placements)."""
    n, h, w = grey.shape
    out = np.empty((n, 3, h, w), dtype=np.uint8)
    for i in range(n):
        floor = grey[i].min()
        for y in range(h):
            for x in range(w):
                g = grey[i, y, x]
                for c in range(3):
                    if method == "digits":
                        value = g * colours[i, c] if g > DIGIT_THRESHOLD else floor
                    else:
                        value = g if g > DIGIT_THRESHOLD else colours[i, c]
                    out[i, c, y, x] = round(min(max(float(value), 0.0), 1.0) * 255.0)
    return out


def generation(n: int = 2000, side: int = 28) -> None:
    images, labels, _ = embedded_digits()
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(images), size=n)
    grey = fit_to_side(images, side)[index]
    domain = np.repeat(np.arange(16), n // 16)
    ranges = np.sort(rng.uniform(size=(16, 3, 2)), axis=-1)
    colours = sample_colours(rng, domain, labels[index][: len(domain)], ranges, False, 0.0)
    grey = grey[: len(domain)]
    for method in ("digits", "background"):
        start = time.perf_counter()
        fast = colourise(grey, colours, method, np.random.default_rng(1))
        t_fast = time.perf_counter() - start
        m = 200  # the loop is slow: time it on a slice
        start = time.perf_counter()
        slow = naive_colourise(grey[:m], colours[:m], method)
        t_slow = (time.perf_counter() - start) * len(grey) / m
        same = np.abs(fast[:m].astype(int) - slow.astype(int)).max()
        print(
            f"generation {method:10s} {side}px: vectorised {len(grey) / t_fast:10.0f} images/s, "
            f"per-image loop {len(grey) / t_slow:8.0f} images/s, ratio {t_slow / t_fast:6.0f}x, max pixel difference {same}"
        )


def stage1_throughput(side: int, steps: int = 30, batch: int = 256) -> None:
    cfg = OmegaConf.load("src/mdcrl/configs/model/autoencoder/mlp_ae_mnist.yaml")
    z_dim = OmegaConf.load("src/mdcrl/configs/experiment/mnist_cpu_stage1.yaml").model.z_dim  # the CPU preset's latents
    model = mlp_autoencoder(3, z_dim, list(cfg.hidden_dims), image_size=side)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, side, side) * 2 - 1

    def step():
        _, recon, target = model.forward_restarts(x)
        loss = (recon - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    epoch = 20000 / (steps * batch / elapsed)
    print(
        f"stage 1 MLP {side}px, {z_dim} latents, batch {batch}: {steps * batch / elapsed:8.0f} training images/s "
        f"(an epoch of 20000: {epoch:.1f} s)"
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    generation()
    for side in (16, 28):
        stage1_throughput(side)
