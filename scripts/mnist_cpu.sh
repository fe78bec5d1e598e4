#!/usr/bin/env bash
# The coloured-digits runs of docs/results/mnist/README.md at the CPU setting (experiment=mnist_cpu_stage1
# and mnist_cpu_stage2, the embedded scikit-learn digits), 3 seeds:
#   scripts/mnist_cpu.sh [--part stage1|stage2|report]... [--case C]... [hydra overrides...]
#     cases: digits-independent, digits-dynamic (corr_prob 0.8), background-independent,
#            background-dynamic; default: all four, in that order
# Stage 1 runs in multirun/mnist-cpu/stage1/<case>-seed<seed>; stage 2 builds run_path from the same
# names and runs min-max + MMD and no-penalty stage 2 on every stage-1 run (stage-2 seed 1235; the
# replicates are the stage-1 seeds). Re-running resumes: finished runs are skipped. The report
# goes to docs/results/mnist/.
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=multirun/mnist-cpu
OUT=docs/results/mnist
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
[[ ${#PARTS[@]} -gt 0 ]] || PARTS=(stage1 stage2 report)
[[ ${#CASES[@]} -gt 0 ]] || CASES=(digits-independent digits-dynamic background-independent background-dynamic)
wanted() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
join() { local IFS=,; echo "$*"; }
QUIET=(trainer.enable_progress_bar=false print_metrics=false "$@")
start=$(date +%s)

case_overrides() {  # the data settings of a case
  case "$1" in
    digits-independent) echo "datamodule.dataset.spurious_method=digits" ;;
    digits-dynamic) echo "datamodule.dataset.spurious_method=digits datamodule.dataset.correlated_z=True datamodule.dataset.corr_prob=0.8" ;;
    background-independent) echo "datamodule.dataset.spurious_method=background" ;;
    background-dynamic) echo "datamodule.dataset.spurious_method=background datamodule.dataset.correlated_z=True datamodule.dataset.corr_prob=0.8" ;;
    *) echo "error: unknown --case $1; choose digits-independent, digits-dynamic, background-independent or background-dynamic" >&2; exit 2 ;;
  esac
}
for c in "${CASES[@]}"; do case_overrides "$c" > /dev/null; done  # an unknown --case stops here, before any run
stage1_paths() {  # the stage-1 run directories of a case, comma-separated (stage 2's run_path sweep)
  local paths=() seed
  for seed in "${SEEDS[@]}"; do paths+=("$SWEEP/stage1/$1-seed$seed"); done
  join "${paths[@]}"
}

if wanted stage1; then
  for c in "${CASES[@]}"; do
    # shellcheck disable=SC2046  # the case's overrides are separate words
    python run_training.py experiment=mnist_cpu_stage1 $(case_overrides "$c") seed="$(join "${SEEDS[@]}")" \
      "logger.wandb.tags=[mnist-$c,stage1]" "hydra.sweep.dir=$SWEEP/stage1" "hydra.sweep.subdir=$c-seed\${seed}" \
      "${QUIET[@]}" --multirun
  done
fi
if wanted stage2; then
  for c in "${CASES[@]}"; do
    for tag in minmax-mmd none; do
      weight="$([[ $tag == none ]] && echo 0. || echo 1.)"
      python run_training.py experiment=mnist_cpu_stage2 run_path="$(stage1_paths "$c")" seed=1235 \
        model.penalty_criterion.minmax="$weight" model.penalty_criterion.mmd="$weight" \
        "logger.wandb.tags=[mnist-$c,stage2-$tag]" "hydra.sweep.dir=$SWEEP/stage2" "${QUIET[@]}" --multirun
    done
  done
fi
echo "runs: $(( $(date +%s) - start )) s" >&2
if wanted report; then
  python -m mdcrl.report "$SWEEP" --out "$OUT" --columns tags --no-plots \
    --metrics digit_acc_from_h digit_acc_from_hinv digit_acc_from_hsp color_r2_from_h color_r2_from_hinv color_r2_from_hsp \
    domain_acc_hinv recon_mse > /dev/null
  # The picture: seed 1235 of the first case, stage 1's coloured inputs per domain and their reconstructions.
  mdcrl-balls-grid "$SWEEP/stage1/digits-independent-seed1235" --out "$OUT/digits_grid.png" > /dev/null
  echo "report: $OUT/report.md" >&2
fi
