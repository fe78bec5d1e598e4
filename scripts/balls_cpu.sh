#!/usr/bin/env bash
# The balls runs of docs/results/balls/README.md, at the CPU setting (experiment=balls_cpu_stage1 and
# balls_cpu_stage2), 3 seeds:
#   scripts/balls_cpu.sh [--part stage1|stage2]... [--case C]...
#     cases: k16-independent (the goal's setting: 16 domains, independent SCM), k16-dynamic
#            (corr_prob 0.5), k4-independent, k2-independent; default: all four, in that order
# Stage 1 runs in multirun/balls-cpu/stage1/<case>-seed<seed>; stage 2 builds run_path from the same
# names and runs min-max and no-penalty stage 2 on every stage-1 run (stage-2 seed 1235; the
# replicates are the stage-1 seeds). Re-running resumes: finished runs are skipped, interrupted ones
# continue from their last checkpoint. The report goes to docs/results/balls/.
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=multirun/balls-cpu
OUT=docs/results/balls
SEEDS=(1235 4256 49685)
PARTS=()
CASES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --part) PARTS+=("$2"); shift 2 ;;
    --case) CASES+=("$2"); shift 2 ;;
    *) break ;;
  esac
done
[[ ${#PARTS[@]} -gt 0 ]] || PARTS=(stage1 stage2)
[[ ${#CASES[@]} -gt 0 ]] || CASES=(k16-independent k16-dynamic k4-independent k2-independent)
wanted() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
join() { local IFS=,; echo "$*"; }
QUIET=(trainer.enable_progress_bar=false print_metrics=false "$@")
start=$(date +%s)

case_overrides() {  # the data settings of a case
  case "$1" in
    k16-independent) echo "datamodule.dataset.num_domains=16" ;;
    k16-dynamic) echo "datamodule.dataset.num_domains=16 datamodule.dataset.correlated_z=True datamodule.dataset.corr_prob=0.5" ;;
    k4-independent) echo "datamodule.dataset.num_domains=4" ;;
    k2-independent) echo "datamodule.dataset.num_domains=2" ;;
    *) echo "error: unknown --case $1; choose k16-independent, k16-dynamic, k4-independent or k2-independent" >&2; exit 2 ;;
  esac
}

if wanted stage1; then
  for c in "${CASES[@]}"; do
    # shellcheck disable=SC2046  # the case's overrides are separate words
    python run_training.py experiment=balls_cpu_stage1 $(case_overrides "$c") seed="$(join "${SEEDS[@]}")" \
      "logger.wandb.tags=[balls-$c,stage1]" "hydra.sweep.dir=$SWEEP/stage1" "hydra.sweep.subdir=$c-seed\${seed}" \
      "${QUIET[@]}" --multirun
  done
fi
if wanted stage2; then
  paths=()
  for c in "${CASES[@]}"; do
    case_overrides "$c" > /dev/null
    for seed in "${SEEDS[@]}"; do paths+=("$SWEEP/stage1/$c-seed$seed"); done
  done
  for tag in minmax none; do
    python run_training.py experiment=balls_cpu_stage2 run_path="$(join "${paths[@]}")" seed=1235 \
      model.penalty_criterion.minmax="$([[ $tag == minmax ]] && echo 1. || echo 0.)" \
      "logger.wandb.tags=[stage2-$tag]" "hydra.sweep.dir=$SWEEP/stage2" "${QUIET[@]}" --multirun
  done
fi
echo "runs: $(( $(date +%s) - start )) s" >&2
