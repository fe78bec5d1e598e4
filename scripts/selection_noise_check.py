"""Can the validation selection score tell the found solution from the truth at all? For each run:
the score of the found latents and of the truth's (evaluation.truth_latents: the least-squares map
to the true z_S), each beside its null, the same score with the validation rows' domain labels
permuted (no domain dependence left: what the score reads for a perfectly invariant block at this
sample size). A found score within the null's spread means the objective, estimated on this data,
cannot see the spurious part the found block still holds: statistics, not optimisation. Uses the
true latents: a diagnostic (docs/results/linear/studies/), never a selection.
    python scripts/selection_noise_check.py RUN_DIR... [--permutations 20]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from mdcrl.builders import build_data, build_module
from mdcrl.evaluation import model_inputs, selection_of_latents, truth_latents
from mdcrl.settings import RunSettings
from mdcrl.train import load_weights


def score_rows(run: Path, permutations: int) -> dict:
    """The found and the truth's validation selection scores, and their permuted-domain nulls (mean, std)."""
    settings = RunSettings.from_config(OmegaConf.load(run / "config.yaml"))
    data = build_data(settings, run)
    module = build_module(settings, data)
    # the weights the run was evaluated with: best.ckpt, or warm_start.ckpt where the warm start was kept
    chosen = Path(json.loads((run / "run.json").read_text())["best_checkpoint"]).name
    load_weights(module, run / "checkpoints" / chosen)
    train, valid = data.splits["train"], data.splits["valid"]
    d_s = module.z_dim_stable
    x_train, x_valid = model_inputs(module, train.x), model_inputs(module, valid.x)
    found = (module.encode(train.x), module.encode(valid.x), d_s)
    truth = (*truth_latents(data, x_train, x_valid, found[0].shape[1] - d_s), data.z_dim_stable_true)
    rng = np.random.default_rng(0)
    shuffles = [rng.permutation(valid.domain) for _ in range(permutations)]
    out = {"r2_zinv_from_hinv": json.loads((run / "metrics.json").read_text())["r2_zinv_from_hinv"]}
    for name, (h_train, h_valid, dims) in (("found", found), ("truth", truth)):
        null = [selection_of_latents(module, h_train, h_valid, x_train, x_valid, d, dims) for d in shuffles]
        score = selection_of_latents(module, h_train, h_valid, x_train, x_valid, valid.domain, dims)
        out[name] = (score, float(np.mean(null)), float(np.std(null, ddof=1)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (config.yaml, metrics.json, checkpoints/)")
    parser.add_argument("--permutations", type=int, default=20)
    args = parser.parse_args(argv)
    print("| run | r2_zinv_from_hinv | found: score / null | truth: score / null | (found - null) / null std |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        row = score_rows(run, args.permutations)
        (f, f_mean, f_std), (t, t_mean, t_std) = row["found"], row["truth"]
        print(
            f"| {run.name} | {row['r2_zinv_from_hinv']:.4f} | {f:.5f} / {f_mean:.5f} ± {f_std:.5f} "
            f"| {t:.5f} / {t_mean:.5f} ± {t_std:.5f} | {(f - f_mean) / f_std:+.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
