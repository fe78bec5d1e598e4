#!/usr/bin/env bash
# The coloured-digits runs of docs/results/mnist/README.md at the CPU setting (experiment=mnist_cpu_stage1
# and mnist_cpu_stage2, the embedded scikit-learn digits), 3 seeds:
#   scripts/mnist_cpu.sh [--part stage1|stage2|stage2-biased|stage2-linear|stage2-converged|stage2-sigma-null|report]... [--case C]...
#                        [--sweep DIR] [--stage1 OVERRIDE]... [hydra overrides...]
#     --sweep DIR:       the runs' directory (default multirun/mnist-cpu-z64; with another, --part report
#                        writes to DIR/report instead of docs/results/mnist)
#     --stage1 OVERRIDE: a hydra override for stage 1 only (the trailing overrides go to every stage)
#     stage2-linear:     min-max + MMD stage 2 with the linear autoencoder of the linear grid and its
#                        moment warm start (LINEAR_STAGE2 below) instead of the MLP, and its no-penalty
#                        control (not in the default parts)
#     stage2-biased:     min-max + MMD stage 2 with model.mmd_loss.unbiased=false, the published biased
#                        MMD estimator the preset used before (not in the default parts)
#     stage2-converged:  the preset and its no-penalty control trained until the selection score stops
#                        improving (the library's early stopping: 1% in 20 epochs, at most 150 epochs)
#                        instead of the fixed 50 epochs (not in the default parts)
#     stage2-sigma-null: min-max + MMD stage 2 with model.mmd_loss.fix_sigma=null (the MMD bandwidth
#                        from the batch's mean distance, as the seed's linear MMD commands set it),
#                        beside the preset's fixed bandwidth 1 (not in the default parts)
#     cases: digits-independent, digits-dynamic (corr_prob 0.8), background-independent,
#            background-dynamic; default: all four, in that order
# Stage 1 runs in SWEEP/stage1/<case>-seed<seed>; stage 2 builds run_path from the same names and runs
# on every stage-1 run (stage-2 seed 1235; the replicates are the stage-1 seeds): the preset (min-max +
# MMD + domain_means), the published objective (min-max + MMD) and no penalty. Re-running resumes:
# finished runs are skipped. The report goes to docs/results/mnist/.
# The parts stage2-biased/-linear/-converged/-sigma-null are the studies of the previous preset (32
# latents, no domain_means; docs/results/mnist/README.md): they set domain_means=0 themselves, and ran as
#   scripts/mnist_cpu.sh --sweep multirun/mnist-cpu --part stage1 --part PART model.z_dim=32
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=multirun/mnist-cpu-z64
OUT=docs/results/mnist
SEEDS=(1235 4256 49685)
source scripts/two_stage_cases.sh
parse_args "$@"
[[ $SWEEP == multirun/mnist-cpu-z64 ]] || OUT=$SWEEP/report  # docs/results/mnist is the default sweep's report
QUIET=(trainer.enable_progress_bar=false print_metrics=false "${REST[@]}")
start=$(date +%s)

case_overrides() {  # the data settings of a case
  local dynamic="datamodule.dataset.correlated_z=True datamodule.dataset.corr_prob=0.8"
  case "$1" in
    digits-independent) echo "datamodule.dataset.spurious_method=digits" ;;
    digits-dynamic) echo "datamodule.dataset.spurious_method=digits $dynamic" ;;
    background-independent) echo "datamodule.dataset.spurious_method=background" ;;
    background-dynamic) echo "datamodule.dataset.spurious_method=background $dynamic" ;;
    *) echo "error: unknown --case $1; choose digits-independent, digits-dynamic, background-independent or background-dynamic" >&2; exit 2 ;;
  esac
}
# The linear grid's autoencoder as stage 2 (PCA-whitened encodings, orthonormal frame, 4 restarts, one
# of them at the closed-form moment estimate of the stable subspace, lr 0.01), in place of the MLP.
LINEAR_STAGE2=(model/autoencoder=linear_ae model.init=moment model.whiten=true model.restarts=4 model.optimizer.lr=0.01)
defaults stage1 stage2 report -- digits-independent digits-dynamic background-independent background-dynamic

stage2() {  # stage2 TAG [overrides...]: stage 2 on every stage-1 run of every case
  local tag=$1 c
  shift
  for c in "${CASES[@]}"; do
    python run_training.py experiment=mnist_cpu_stage2 run_path="$(stage1_paths "$c")" seed=1235 "$@" \
      "logger.wandb.tags=[mnist-$c,stage2-$tag]" "hydra.sweep.dir=$SWEEP/stage2" "${QUIET[@]}" --multirun
  done
}
if wanted stage1; then
  run_stage1 mnist_cpu_stage1 mnist
fi
NO_MEANS=model.penalty_criterion.domain_means=0.  # the published objective: no domain_means penalty
if wanted stage2; then  # the preset: min-max + the MMD U-statistic (model.mmd_loss.unbiased=true) + domain_means
  stage2 minmax-mmd-unbiased-means model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=1. model.penalty_criterion.domain_means=1.
  stage2 minmax-mmd-unbiased model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=1. $NO_MEANS
  stage2 none model.penalty_criterion.minmax=0. model.penalty_criterion.mmd=0. $NO_MEANS
fi
if wanted stage2-linear; then
  stage2 minmax-mmd-linear model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=1. $NO_MEANS "${LINEAR_STAGE2[@]}"
  # the no-penalty control starts every restart at random (no warm start without an invariance penalty)
  stage2 none-linear model.penalty_criterion.minmax=0. model.penalty_criterion.mmd=0. $NO_MEANS "${LINEAR_STAGE2[@]}"
fi
if wanted stage2-biased; then  # the published MMD estimator (biased: a chance term that rewards clustered h_S)
  stage2 minmax-mmd model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=1. $NO_MEANS model.mmd_loss.unbiased=false
fi
# The library's default early stopping (configs/callbacks/default.yaml), which the preset turns off.
CONVERGED=("callbacks.early_stopping={_target_:lightning.pytorch.callbacks.EarlyStopping,monitor:val/log_selection,mode:min,patience:20,min_delta:0.01}" trainer.max_epochs=150)
if wanted stage2-converged; then
  stage2 minmax-mmd-unbiased-converged model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=1. $NO_MEANS "${CONVERGED[@]}"
  stage2 none-converged model.penalty_criterion.minmax=0. model.penalty_criterion.mmd=0. $NO_MEANS "${CONVERGED[@]}"
fi
if wanted stage2-sigma-null; then
  stage2 minmax-mmd-sigma-null model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=1. $NO_MEANS model.mmd_loss.fix_sigma=null
fi
echo "runs: $(( $(date +%s) - start )) s" >&2
if wanted report; then
  python -m mdcrl.report "$SWEEP" --out "$OUT" --columns tags --no-plots \
    --metrics digit_acc_from_h digit_acc_from_hinv digit_acc_from_hsp color_r2_from_h color_r2_from_hinv color_r2_from_hsp \
    domain_acc_hinv recon_mse > /dev/null
  # The pictures, seed 1235 of the first case: stage 1's coloured inputs per domain and their
  # reconstructions; stage 2's h_S and h_U with and without the penalties.
  mdcrl-balls-grid "$SWEEP/stage1/digits-independent-seed1235" --out "$OUT/digits_grid.png" > /dev/null
  python - "$SWEEP" "$OUT" <<'PY'
import subprocess, sys
from pathlib import Path
from omegaconf import OmegaConf
sweep, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = {}
for run in sorted((sweep / "stage2").glob("run-*")):
    cfg = OmegaConf.load(run / "config.yaml")
    if cfg.run_path.endswith("digits-independent-seed1235") and (run / "metrics.json").exists():
        runs[list(cfg.logger.wandb.tags)[-1]] = str(run)
chosen = [runs[t] for t in ("stage2-minmax-mmd-unbiased-means", "stage2-minmax-mmd-unbiased", "stage2-none") if t in runs]
subprocess.run([sys.executable, "scripts/mnist_latents.py", *chosen, "--out", str(out / "latents.png")], check=True, stdout=subprocess.DEVNULL)
PY
  echo "report: $OUT/report.md" >&2
fi
