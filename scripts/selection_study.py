"""How the held-out selection score ranks a finished run's untrained warm start against the
checkpoint training chose, under two definitions: the previous one (penalties averaged over
1024-row batches of the split in its stored, domain-sorted order) and the current one (penalties
over the whole validation split at once: models.module). Next to each, the test r2_zinv_from_hinv
(ground truth: a report only, never a choice). Runs need checkpoints/warm_start.ckpt (model.init=moment).

    python scripts/selection_study.py <sweep directory> [--penalty mmd|minmax|minmax-mmd]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from mdcrl.builders import build_data, build_module
from mdcrl.evaluation import split_losses
from mdcrl.io import read_json, read_text
from mdcrl.metrics import linear_r2
from mdcrl.settings import RunSettings
from mdcrl.train import load_weights


@torch.no_grad()
def sorted_batch_selection(module, split, batch_size: int) -> np.ndarray:
    """The previous score: per 1024-row batch of the split as stored (domain by domain), averaged."""
    module.eval()
    total, count = 0.0, 0
    for start in range(0, len(split.x), batch_size):
        x = torch.from_numpy(split.x[start : start + batch_size])
        domains = torch.from_numpy(split.domain[start : start + batch_size])
        parts, h = module.evaluation_parts(x, domains)
        total = total + module.selection_score(parts["recon_mse"], h[..., : module.z_dim_stable], domains).double() * len(x)
        count += len(x)
    return (total / count).numpy()


def penalty_of(cfg) -> str:
    minmax, mmd = float(cfg.model.penalty_criterion.minmax), float(cfg.model.penalty_criterion.mmd)
    return "minmax-mmd" if minmax and mmd else ("mmd" if mmd else "minmax")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--penalty", default="mmd", choices=["mmd", "minmax", "minmax-mmd"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for metrics_path in sorted(args.sweep.glob("*/metrics.json")):
        run = metrics_path.parent
        cfg = OmegaConf.create(read_text(run / "config.yaml"))
        if penalty_of(cfg) != args.penalty or not (run / "checkpoints" / "warm_start.ckpt").is_file():
            continue
        info = read_json(run / "run.json")
        settings = RunSettings.from_config(cfg)
        data = build_data(settings)
        module = build_module(settings, data)
        train, valid, test = (data.splits[k] for k in ("train", "valid", "test"))
        d_s, batch = module.z_dim_stable, settings.data.batch_size
        scores = {}
        for name, checkpoint in (("warm", "warm_start.ckpt"), ("chosen", Path(info["best_checkpoint"]).name)):
            load_weights(module, run / "checkpoints" / checkpoint)
            copy = module.chosen_restart
            r2 = linear_r2(module.encode(train.x)[:, :d_s], train.z[:, :d_s], module.encode(test.x)[:, :d_s], test.z[:, :d_s])
            old = float(sorted_batch_selection(module, valid, batch)[copy])
            new = float(split_losses(module, valid, batch)["selection"][copy])
            scores[name] = (r2, old, new)
        ds = cfg.datamodule.dataset
        rows.append((ds.z_dim, ds.num_domains, cfg.seed, scores))
        w, c = scores["warm"], scores["chosen"]
        print(
            f"z {ds.z_dim:2d} k {ds.num_domains:2d} seed {cfg.seed:5d}  r2 warm {w[0]:.4f} chosen {c[0]:.4f}  "
            f"sorted batches: warm {w[1]:.5f} chosen {c[1]:.5f}  whole split: warm {w[2]:.5f} chosen {c[2]:.5f}",
            flush=True,
        )
    differ = [s for *_, s in rows if abs(s["warm"][0] - s["chosen"][0]) > 1e-4]
    better = [s for s in differ if s["warm"][0] > s["chosen"][0]]
    for label, i in (("sorted batches", 1), ("whole split", 2)):
        first = sum(s["warm"][i] < s["chosen"][i] for s in better)
        print(f"{label}: of {len(better)} runs whose warm start has the higher r2, the score ranks it first in {first}")


if __name__ == "__main__":
    main()
