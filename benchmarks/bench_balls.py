"""Balls renderer throughput against a naive per-pixel Python reference, the time to generate the
seed's 60000 + 10000 images, and stage-1 training throughput at the CPU preset and at the seed's.
Run: python benchmarks/bench_balls.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from mdcrl.data.balls import BALL_COLOURS, generate_balls_data, images_to_unit_range, render
from mdcrl.models.resnet import resnet18_autoencoder
from mdcrl.settings import compose_train_config

SIZE, RADIUS = 64, 0.08


def naive_render(centres: np.ndarray) -> np.ndarray:
    """One pixel at a time, one ball at a time, in Python."""
    out = np.empty((len(centres), 3, SIZE, SIZE), dtype=np.uint8)
    for n, balls in enumerate(centres):
        for row in range(SIZE):
            for col in range(SIZE):
                colour = np.ones(3)
                for b, (cx, cy) in enumerate(balls):
                    d = ((col + 0.5 - cx * SIZE) ** 2 + (row + 0.5 - cy * SIZE) ** 2) ** 0.5
                    a = min(max(RADIUS * SIZE - d + 0.5, 0.0), 1.0)
                    colour = colour * (1 - a) + BALL_COLOURS[b] * a
                out[n, :, row, col] = np.round(colour * 255)
    return out


def main():
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.1, 0.9, size=(4096, 2, 2))
    render(centres[:64], RADIUS, SIZE)
    start = time.perf_counter()
    fast = render(centres, RADIUS, SIZE)
    t_fast = (time.perf_counter() - start) / len(centres)
    start = time.perf_counter()
    slow = naive_render(centres[:8])
    t_naive = (time.perf_counter() - start) / 8
    assert np.abs(fast[:8].astype(int) - slow.astype(int)).max() <= 1
    print(
        f"render 64x64, 2 balls: vectorised {1 / t_fast:,.0f} images/s, naive per-pixel {1 / t_naive:,.1f} images/s, "
        f"speed-up {t_naive / t_fast:,.0f}x"
    )

    cfg = OmegaConf.load("configs/datamodule/md_balls.yaml").dataset
    cfg.invariant_low, cfg.invariant_high = [0.5, 0.5], [0.9, 0.9]  # the seed's stage-1 command
    start = time.perf_counter()
    data = generate_balls_data(cfg, seed=0)
    n = sum(len(s) for s in data.splits.values())
    print(f"generate the seed's dataset ({n} images, 16 domains, sampling + rendering): {time.perf_counter() - start:.1f} s")

    stage1_throughput(data)


def stage1_throughput(data, steps: int = 3):
    """Stage-1 training speed on this CPU at the CPU preset and at the seed's: images per second through
    one Adam step (forward, backward, update) of the ResNet-18 autoencoder on one batch, and the
    minutes per epoch that implies."""
    for name in ("balls_cpu_stage1", "balls_seed_stage1"):
        cfg = compose_train_config([f"experiment={name}"])
        ds, ae = cfg.datamodule.dataset, cfg.model.autoencoder
        size, batch = int(ds.image_size), int(cfg.datamodule.batch_size)
        images = render(data.splits["train"].z[:batch].reshape(batch, -1, 2), float(ds.ball_size), size)
        x = torch.from_numpy(images_to_unit_range(images))
        model = resnet18_autoencoder(3, int(cfg.model.z_dim), int(ae.base_width), int(ae.head_dim), size)
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def step(opt=opt, model=model, x=x):
            opt.zero_grad()
            _, recon = model(x)
            ((recon - x) ** 2).mean().backward()
            opt.step()

        step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        per_step = (time.perf_counter() - start) / steps
        n_train = int(ds.num_samples.train)

        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops() / batch
        print(
            f"stage-1 throughput, experiment={name} ({size}x{size}, base_width {ae.base_width}, batch {batch}, "
            f"{torch.get_num_threads()} threads): {batch / per_step:,.0f} images/s forward+backward "
            f"-> {per_step * n_train / batch / 60:.1f} min per epoch of {n_train} images; "
            f"{flops / 1e9:.2f} GFLOP per image forward+backward, {flops * batch / per_step / 1e9:.0f} GFLOP/s here"
        )


if __name__ == "__main__":
    main()
