#!/usr/bin/env bash
# The balls runs of docs/results/balls/README.md, at the CPU setting (experiment=balls_cpu_stage1 and
# balls_cpu_stage2), 3 seeds:
#   scripts/balls_cpu.sh [--part stage1|stage2|seed-stage2|report]... [--case C]... [hydra overrides...]
#     seed-stage2: the seed's stage-2 setting (64 + 64 latents) on the same stage-1 runs, 100 epochs,
#                  for comparison with balls_cpu_stage2's 6 + 2 (not in the default parts)
#     cases: k16-independent (the goal's setting: 16 domains, independent SCM), k16-dynamic
#            (corr_prob 0.5), k4-independent, k2-independent; default: all four, in that order;
#            k16-exact, k16-dynamic-exact, k4-exact, k2-exact (not in the default): those cases with the
#            invariant ball exactly invariant (only the spurious ball redrawn on overlap, every domain's
#            box wide enough to leave it room)
# Stage 1 runs in multirun/balls-cpu/stage1/<case>-seed<seed>; stage 2 builds run_path from the same
# names and runs min-max and no-penalty stage 2 on every stage-1 run (stage-2 seed 1235; the
# replicates are the stage-1 seeds). Re-running resumes: finished runs are skipped, interrupted ones
# continue from their last checkpoint. The report goes to docs/results/balls/.
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=multirun/balls-cpu
OUT=docs/results/balls
SEEDS=(1235 4256 49685)
source scripts/two_stage_cases.sh
parse_args "$@"
QUIET=(trainer.enable_progress_bar=false print_metrics=false "${REST[@]}")
start=$(date +%s)

# The invariant ball exactly invariant: only the spurious ball redrawn on overlap, and every domain's box wider
# than box_side_for_exact_invariance (0.387 at the preset's radius), so that no row is ever redrawn whole.
EXACT="datamodule.dataset.overlap_redraw=spurious datamodule.dataset.domain_box_size=[0.39,0.5]"
case_overrides() {  # the data settings of a case
  case "$1" in
    k16-independent) echo "datamodule.dataset.num_domains=16" ;;
    k16-dynamic) echo "datamodule.dataset.num_domains=16 datamodule.dataset.correlated_z=True datamodule.dataset.corr_prob=0.5" ;;
    k4-independent) echo "datamodule.dataset.num_domains=4" ;;
    k2-independent) echo "datamodule.dataset.num_domains=2" ;;
    k16-exact) echo "datamodule.dataset.num_domains=16 $EXACT" ;;
    k16-dynamic-exact) echo "$(case_overrides k16-dynamic) $EXACT" ;;
    k4-exact) echo "datamodule.dataset.num_domains=4 $EXACT" ;;
    k2-exact) echo "datamodule.dataset.num_domains=2 $EXACT" ;;
    *) echo "error: unknown --case $1; choose k16-independent, k16-dynamic, k4-independent, k2-independent, k16-exact, k16-dynamic-exact, k4-exact or k2-exact" >&2; exit 2 ;;
  esac
}
defaults stage1 stage2 report -- k16-independent k16-dynamic k4-independent k2-independent

if wanted stage1; then
  run_stage1 balls_cpu_stage1 balls
fi
if wanted stage2; then
  for c in "${CASES[@]}"; do
    for tag in minmax none; do
      python run_training.py experiment=balls_cpu_stage2 run_path="$(stage1_paths "$c")" seed=1235 \
        model.penalty_criterion.minmax="$([[ $tag == minmax ]] && echo 1. || echo 0.)" \
        "logger.wandb.tags=[balls-$c,stage2-$tag]" "hydra.sweep.dir=$SWEEP/stage2" "${QUIET[@]}" --multirun
    done
  done
fi
if wanted seed-stage2; then
  for c in "${CASES[@]}"; do
    python run_training.py experiment=balls_seed_stage2 run_path="$(stage1_paths "$c")" seed=1235 trainer.max_epochs=100 \
      "logger.wandb.tags=[balls-$c,stage2-seed-setting-minmax]" "hydra.sweep.dir=$SWEEP/stage2" "${QUIET[@]}" --multirun
  done
fi
echo "runs: $(( $(date +%s) - start )) s" >&2
if wanted report; then
  python -m mdcrl.report "$SWEEP" --out "$OUT" --columns tags --no-plots \
    --metrics r2_z_from_h r2_zinv_from_hinv r2_zsp_from_hinv oracle_r2_zsp_from_zinv domain_acc_hinv recon_mse > /dev/null
  # The pictures: seed 1235 of the goal's case, stage 1's images and reconstructions, and stage 2's
  # learned invariant latents against the true ones, with and without the penalty.
  mdcrl-balls-grid "$SWEEP/stage1/k16-independent-seed1235" --out "$OUT/balls_grid.png" > /dev/null
  python - "$SWEEP" "$OUT" <<'PY'
import shutil, sys
from pathlib import Path
from omegaconf import OmegaConf
sweep, out = Path(sys.argv[1]), Path(sys.argv[2])
for run in sorted((sweep / "stage2").glob("run-*")):
    cfg = OmegaConf.load(run / "config.yaml")
    tags = list(cfg.logger.wandb.tags)
    if cfg.run_path.endswith("k16-independent-seed1235") and (run / "plots" / "latents.png").exists():
        shutil.copy(run / "plots" / "latents.png", out / f"latents_{tags[-1]}.png")
PY
  python scripts/balls_probe.py "$SWEEP/stage2" --out "$OUT/probes.md" > /dev/null
  echo "report: $OUT/report.md and $OUT/probes.md" >&2
fi
