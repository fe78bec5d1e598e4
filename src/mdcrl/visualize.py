"""A picture of a balls stage-1 run: sample images per domain next to their reconstructions.

    mdcrl-balls-grid RUN_DIR [--out RUN_DIR/plots/balls_grid.png] [--per-domain 4] [--domains 8]
    python -m mdcrl.visualize RUN_DIR ...

Rows are domains; each row shows ``per_domain`` validation images and, to their right, the
autoencoder's reconstructions of the same images (best checkpoint of the run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from mdcrl.data.datamodule import to_model_input


def load_trained(run_dir: Path):
    """(config, data, module with the run's best weights) rebuilt from a run directory."""
    from mdcrl.builders import build_data, build_module
    from mdcrl.io import read_text
    from mdcrl.settings import RunSettings
    from mdcrl.train import load_weights

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise SystemExit(f"{run_dir} is not a run directory (no config.yaml)")
    cfg = OmegaConf.create(read_text(run_dir / "config.yaml"))
    checkpoints = sorted((run_dir / "checkpoints").glob("best*.ckpt")) or sorted((run_dir / "checkpoints").glob("last*.ckpt"))
    if not checkpoints:
        raise SystemExit(f"{run_dir} has no checkpoint in checkpoints/")
    settings = RunSettings.from_config(cfg)
    data = build_data(settings, run_dir)
    module = build_module(settings, data)
    load_weights(module, checkpoints[0])
    return cfg, data, module.eval()


def image_grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows * cols, 3, H, W) uint8 -> one (rows * (H + 2), cols * (W + 2), 3) canvas with grey gaps."""
    _, _, h, w = images.shape
    canvas = np.full((rows * (h + 2), cols * (w + 2), 3), 200, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = img.transpose(1, 2, 0)
    return canvas


def balls_grid(run_dir: Path, out: Path | None = None, per_domain: int = 4, domains: int = 8) -> Path:
    cfg, data, module = load_trained(run_dir)
    if data.splits["valid"].x.ndim != 4:
        raise SystemExit(f"{run_dir} is not an image run (datamodule={cfg.datamodule.name})")
    split = data.splits["valid"]
    chosen = [np.nonzero(split.domain == d)[0][:per_domain] for d in range(min(domains, data.num_domains))]
    rows = []
    with torch.no_grad():
        for idx in chosen:
            true = split.x[idx]
            _, recon = module.autoencoder(to_model_input(torch.from_numpy(true)))
            recon = np.clip((recon.numpy() + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
            rows.append(np.concatenate([true, recon]))
    canvas = image_grid(np.concatenate(rows), len(rows), 2 * per_domain)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out) if out else Path(run_dir) / "plots" / "balls_grid.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(2 * per_domain * 0.9, len(rows) * 0.95 + 0.6))
    ax.imshow(canvas)
    ax.set_xticks(
        [(per_domain / 2) * (canvas.shape[1] / (2 * per_domain)), (1.5 * per_domain) * (canvas.shape[1] / (2 * per_domain))]
    )
    ax.set_xticklabels(["true images", "reconstructions"])
    ax.set_yticks([(i + 0.5) * canvas.shape[0] / len(rows) for i in range(len(rows))])
    ax.set_yticklabels([f"domain {d}" for d in range(len(rows))])
    ax.tick_params(length=0)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mdcrl-balls-grid", description="Sample balls images per domain with reconstructions.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--per-domain", type=int, default=4)
    parser.add_argument("--domains", type=int, default=8)
    args = parser.parse_args(argv)
    print(balls_grid(args.run_dir, args.out, args.per_domain, args.domains))
    return 0


if __name__ == "__main__":
    sys.exit(main())
