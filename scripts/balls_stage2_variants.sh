#!/usr/bin/env bash
# The stage-2 variants tried against the saturation of balls stage 2 (docs/results/balls/README.md,
# "Stage 2 variants"), each on the given stage-1 runs of experiment=balls_cpu_stage1, stage-2 seed 1235:
#   scripts/balls_stage2_variants.sh VARIANT[,VARIANT...] STAGE1_RUN[,STAGE1_RUN...] [hydra overrides...]
# Runs go to multirun/balls-cpu/variants (re-running skips finished ones); the table is
#   python -m mdcrl.report multirun/balls-cpu/variants --columns tags --no-plots --metrics r2_zinv_from_hinv r2_zsp_from_hinv
set -euo pipefail
cd "$(dirname "$0")/.."
LINEAR="model/autoencoder=linear_ae model.init=moment model.whiten=true model.restarts=4 model.optimizer.lr=0.01 model.scheduler.name=cosine"
MMD="model.penalty_criterion.mmd=1. model.mmd_loss.fix_sigma=null"
variant_overrides() {
  case "$1" in
    preset) echo "" ;;
    none) echo "model.penalty_criterion.minmax=0." ;;
    standardized) echo "model.penalty_standardize=true" ;;
    linear-pca4) echo "$LINEAR model.whiten_dims=4 model.z_dim=4 model.z_dim_invariant=2" ;;
    linear-pca6) echo "$LINEAR model.whiten_dims=6 model.z_dim=6 model.z_dim_invariant=4" ;;
    hinge1) echo "model.hinge_loss_weight=1. model.hinge_loss.stddev_threshold=1.0" ;;
    mmd-standardized) echo "$MMD model.penalty_standardize=true" ;;
    mmd-standardized-cosine) echo "$MMD model.penalty_standardize=true model.scheduler.name=cosine" ;;
    mmd-unbiased) echo "$MMD model.mmd_loss.unbiased=true model.penalty_standardize=true" ;;
    mmd-unbiased-only) echo "$MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0." ;;
    mmd-unbiased-only-b4096) echo "$MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.scheduler.name=cosine datamodule.batch_size=4096 trainer.max_epochs=200" ;;
    wide10-mmd-unbiased-only-b4096) echo "model.z_dim=12 model.z_dim_invariant=10 $MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.scheduler.name=cosine datamodule.batch_size=4096 trainer.max_epochs=200" ;;
    wide16-mmd-unbiased-b4096) echo "model.z_dim=18 model.z_dim_invariant=16 $MMD model.mmd_loss.unbiased=true model.penalty_standardize=true model.scheduler.name=cosine datamodule.batch_size=4096 trainer.max_epochs=200" ;;
    wide16-mmd-unbiased-only-b4096) echo "model.z_dim=18 model.z_dim_invariant=16 $MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.scheduler.name=cosine datamodule.batch_size=4096 trainer.max_epochs=200" ;;
    wide16-mmd-unbiased-only-b4096-means) echo "model.z_dim=18 model.z_dim_invariant=16 $MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.penalty_criterion.domain_means=1. model.scheduler.name=cosine datamodule.batch_size=4096 trainer.max_epochs=200" ;;
    wide10-mmd-unbiased-only-b4096-means) echo "model.z_dim=12 model.z_dim_invariant=10 $MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.penalty_criterion.domain_means=1. model.scheduler.name=cosine datamodule.batch_size=4096 trainer.max_epochs=200" ;;
    wide16-mmd-unbiased-only-b4096-moments) echo "model.z_dim=18 model.z_dim_invariant=16 $MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.penalty_criterion.domain_means=1. model.penalty_criterion.domain_covariances=1. model.scheduler.name=cosine datamodule.batch_size=4096 trainer.max_epochs=200" ;;
    wide10-mmd-unbiased-only-b4096-moments) echo "model.z_dim=12 model.z_dim_invariant=10 $MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.penalty_criterion.domain_means=1. model.penalty_criterion.domain_covariances=1. model.scheduler.name=cosine datamodule.batch_size=4096 trainer.max_epochs=200" ;;
    mmd-unbiased-only-moments) echo "$MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.penalty_criterion.domain_means=1. model.penalty_criterion.domain_covariances=1." ;;
    linear-encoder-moments) echo "model.autoencoder.encoder_hidden_dims=[] $MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.penalty_criterion.domain_means=1. model.penalty_criterion.domain_covariances=1." ;;
    linear-encoder-wide16-moments) echo "model.autoencoder.encoder_hidden_dims=[] model.z_dim=18 model.z_dim_invariant=16 $MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.penalty_criterion.domain_means=1. model.penalty_criterion.domain_covariances=1. model.scheduler.name=cosine datamodule.batch_size=4096 trainer.max_epochs=200" ;;
    narrow2-mmd-unbiased-only-moments) echo "model.z_dim=4 model.z_dim_invariant=2 $MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.penalty_criterion.domain_means=1. model.penalty_criterion.domain_covariances=1." ;;
    mmd-unbiased-only-means) echo "$MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.penalty_criterion.domain_means=1." ;;
    mmd-unbiased-only-w10) echo "$MMD model.mmd_loss.unbiased=true model.penalty_criterion.minmax=0. model.penalty_weight=10." ;;
    minmax-null) echo "model.minmax_loss.null_corrected=true model.penalty_standardize=true" ;;
    minmax-null-mmd-unbiased) echo "model.minmax_loss.null_corrected=true model.penalty_standardize=true $MMD model.mmd_loss.unbiased=true" ;;
    linear-encoder-mmd) echo "model.autoencoder.encoder_hidden_dims=[] $MMD model.penalty_standardize=true" ;;
    linear-encoder) echo "model.autoencoder.encoder_hidden_dims=[] model.penalty_standardize=true" ;;
    mmd-standardized-b4096) echo "$MMD model.penalty_standardize=true model.scheduler.name=cosine datamodule.batch_size=4096 trainer.max_epochs=200" ;;
    wide16) echo "model.z_dim=18 model.z_dim_invariant=16" ;;
    wide32) echo "model.z_dim=34 model.z_dim_invariant=32" ;;
    wide16-mmd-standardized) echo "model.z_dim=18 model.z_dim_invariant=16 $MMD model.penalty_standardize=true" ;;
    wide32-mmd-standardized) echo "model.z_dim=34 model.z_dim_invariant=32 $MMD model.penalty_standardize=true" ;;
    poly4) echo "model/autoencoder=poly_ae model.autoencoder.degree=4 model.z_dim=4 model.z_dim_invariant=2 datamodule.batch_size=1024" ;;
    *) echo "error: unknown variant $1" >&2; exit 2 ;;
  esac
}
IFS=, read -r -a VARIANTS <<< "$1"
RUNS=$2
shift 2
for v in "${VARIANTS[@]}"; do
  # shellcheck disable=SC2046  # the variant's overrides are separate words
  python run_training.py experiment=balls_cpu_stage2 run_path="$RUNS" seed=1235 $(variant_overrides "$v") \
    "logger.wandb.tags=[balls-variant,$v]" hydra.sweep.dir=multirun/balls-cpu/variants \
    trainer.enable_progress_bar=false print_metrics=false "$@" --multirun
done
