"""Wall time of the linear grid's runs through the real entry point (python run_training.py ...).

1. a fixed slice of the grid: the seed README's first linear command (min-max, independent SCM)
   with z_dim=8,16, num_domains=4,8, seed=1235,4256: 8 runs through the default parallel launcher
   (2 workers), and the full grid's time extrapolated from it (480 runs at the slice's pace: a lower
   bound, since the slice holds the grid's cheapest cells and no MMD), and its floor: one start-up
   plus the runs' own time on the busier worker, i.e. the slice with no launcher, Hydra or worker
   overhead at all;
2. the breakdown of one default run (python run_training.py, no overrides): start-up (process,
   imports, Hydra, validation, exit), data, set-up (model, warm start, Trainer, callbacks, loggers),
   training, evaluation, the rest (writing the run directory).

3. with --mmd-slice instead: the seed's MMD command (independent SCM) on z_dim 16, num_domains 4, 8,
   seeds 1235, 4256, without (model.warm_start_patience=null) and with the default patience (auto:
   5 epochs for MMD alone), one after the other: wall times, epochs, metrics and their ratio.

4. with --stacking instead: the default run with every copy kept for 30 epochs at 1, 4 and 16 copies
   (16 = 4 runs x 4 restarts), the fit time per step: what stacking the runs of a worker would cost.

Run: python benchmarks/bench_grid.py [--skip-slice | --mmd-slice | --stacking]   (about a minute; --mmd-slice a few)
To time another checkout, run its copy of this file with PYTHONPATH=<checkout>/src.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from timing import entry_point_time

SLICE = [
    "ckpt_path=null",
    "model=mixing_synthetic",
    "model.penalty_criterion.minmax=1.",
    "model.penalty_criterion.mmd=0.",
    "datamodule=mixing",
    "datamodule.batch_size=1024",
    "datamodule.dataset.linear=True",
    "datamodule.dataset.z_dim=8,16",
    "datamodule.dataset.num_domains=4,8",
    "~callbacks.visualization_callback",
    'logger.wandb.tags=["linear-uniform","minmax"]',
    "datamodule.dataset.correlated_z=False",
    "seed=1235,4256",
]


def grid_slice(default_startup: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        wall = entry_point_time([*SLICE, f"hydra.sweep.dir={tmp}"], multirun=True)
        runs = [json.loads(p.read_text()) for p in Path(tmp).glob("*/run.json")]
        metrics = [json.loads(p.read_text()) for p in Path(tmp).glob("*/metrics.json")]
    epochs = [r["epochs"] for r in runs]
    processes = {r["process"]["pid"] for r in runs if "process" in r}
    r2 = [m["r2_zinv_from_hinv"] for m in metrics]
    print(f"grid slice: {len(runs)} runs in {wall:.1f} s wall ({wall / len(runs):.2f} s per run, 2 workers)")
    if processes:  # the launcher's workers reuse their process (and its imports) job after job
        print(f"  {len(runs)} runs trained in {len(processes)} worker processes: start-up paid {len(processes)} times")
    print(f"  epochs {min(epochs)}-{max(epochs)} (mean {statistics.mean(epochs):.0f}); r2_zinv_from_hinv min {min(r2):.4f}")
    print(f"  full grid (480 runs) at this pace: {480 * wall / len(runs) / 60:.1f} min")
    # What the slice would take with no sweep overhead at all: one process start-up (the default
    # run's) plus the runs' own time (set-up, training, evaluation, writing) on the busier worker.
    per_worker: dict[int, float] = {}
    for r in runs:
        pid = r.get("process", {}).get("pid", 0)
        per_worker[pid] = per_worker.get(pid, 0.0) + r["wall_time_s"]
    training = sum(r["fit_time_s"] for r in runs)
    evaluation = sum(r["evaluate_time_s"] for r in runs)
    floor = default_startup + max(per_worker.values())
    print(f"  the runs' own time: training {training:.1f} s, evaluation {evaluation:.1f} s, summed over {len(runs)} runs")
    print(f"  floor without sweep overhead (one start-up + the busier worker's runs): {floor:.1f} s")
    return wall, floor


# The seed README's MMD command (independent SCM) on a slice of the grid, for the warm start's patience.
MMD_SLICE = [
    *[o for o in SLICE if not o.startswith(("model.penalty_criterion.", "logger.wandb.tags="))],
    "model.penalty_criterion.minmax=0.",
    "model.penalty_criterion.mmd=1.",
    "model.mmd_loss.fix_sigma=null",
    'logger.wandb.tags=["linear-uniform","mmd"]',
    "datamodule.dataset.corr_prob=0.0",
]


def mmd_slice(patience: str) -> tuple[float, list]:
    """The MMD slice (z_dim 16 only: 4 runs) with model.warm_start_patience=<patience>: wall, epochs, r2."""
    overrides = [o if not o.startswith("datamodule.dataset.z_dim=") else "datamodule.dataset.z_dim=16" for o in MMD_SLICE]
    with tempfile.TemporaryDirectory() as tmp:
        wall = entry_point_time([*overrides, f"model.warm_start_patience={patience}", f"hydra.sweep.dir={tmp}"], multirun=True)
        # in the order of (num_domains, seed): the run directories' names depend on the overrides
        done = [
            (json.loads((d / "run.json").read_text()), json.loads((d / "metrics.json").read_text()))
            for d in Path(tmp).glob("run-*")
        ]
    runs, metrics = zip(*sorted(done, key=lambda pair: (pair[0]["data"]["num_domains"], pair[0]["seed"])))
    epochs = [r["epochs"] for r in runs]
    r2 = [round(m["r2_zinv_from_hinv"], 6) for m in metrics]
    print(f"MMD slice, warm_start_patience={patience}: {len(runs)} runs in {wall:.1f} s wall")
    print(f"  epochs {epochs}, r2_zinv_from_hinv {r2}")
    return wall, r2


def single_run(overrides: list[str]) -> tuple[float, dict]:
    """The wall time of python run_training.py <overrides> and its run.json."""
    with tempfile.TemporaryDirectory() as tmp:
        wall = entry_point_time([f"hydra.run.dir={tmp}", *overrides])
        return wall, json.loads((Path(tmp) / "run.json").read_text())


def stacking_cost(copies=(1, 4, 16), epochs: int = 30) -> None:
    """A proxy for batching runs: the default run with every copy kept for `epochs` epochs, at several
    numbers of copies (16 = 4 runs x 4 restarts stacked); the fit time per optimiser step of each."""
    keep_every_copy = [
        "model.warm_start_patience=null",
        "model.restart_agreement=null",
        "model.restart_selection_epochs=null",
        f"trainer.max_epochs={epochs}",
        f"trainer.min_epochs={epochs}",
    ]
    for n in copies:
        _, info = single_run([f"model.restarts={n}", *keep_every_copy])
        per_step = 1000 * info["fit_time_s"] / info["optimizer_steps"]
        print(f"default run, {n:2d} copies for {epochs} epochs: {per_step:.2f} ms per step")


def breakdown() -> tuple[float, float]:
    """The default run's wall time and its start-up (process, imports, Hydra, exit), with the parts printed."""
    wall, info = single_run([])
    run_wall = info["wall_time_s"]
    data = info.get("data_time_s")
    parts = {
        "start-up": wall - run_wall,
        "data": data,
        "set-up": info.get("setup_time_s"),
        "training": info["fit_time_s"],
        "evaluation": info["evaluate_time_s"],
    }
    parts["other"] = run_wall - sum(v for k, v in parts.items() if k != "start-up" and v is not None)
    print(f"default run: {wall:.1f} s wall, {info['epochs']} epochs")
    for name, value in parts.items():
        print(f"  {name:20s} {'n/a (in other)' if value is None else f'{value:6.2f} s'}")
    return wall, parts["start-up"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-slice", action="store_true")
    parser.add_argument(
        "--mmd-slice", action="store_true", help="only the MMD slice (z_dim 16, 4 runs) without and with the patience"
    )
    parser.add_argument(
        "--stacking", action="store_true", help="only the cost per step of 1, 4 and 16 stacked copies (a batching proxy)"
    )
    args = parser.parse_args()
    if args.stacking:
        stacking_cost()
        return
    if args.mmd_slice:
        before, before_r2 = mmd_slice("null")
        after, after_r2 = mmd_slice("auto")  # the default: 5 epochs for MMD alone
        print(f"patience auto / none: {after / before:.2f}x wall; same metrics: {before_r2 == after_r2}")
        return
    default_wall, default_startup = breakdown()
    if not args.skip_slice:
        slice_wall, floor = grid_slice(default_startup)
        print(f"slice / default run: {slice_wall / default_wall:.2f}x (the goal: <= 1)")
        print(f"floor / default run: {floor / default_wall:.2f}x (no launcher, Hydra or worker overhead at all)")


if __name__ == "__main__":
    main()
