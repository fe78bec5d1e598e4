#!/usr/bin/env bash
# The side studies behind README's "How training reaches the limit" and the penalty-reduction
# default, each the seed's first linear command (min-max, independent SCM) with a few overrides,
# 5 seeds each; reports under docs/results/linear/studies/<name>/. They were run with the training
# budget before docs/throughput.md, which experiment=full_budget restores.
#   scripts/linear_studies.sh [long-budget] [reduction] [mmd] [frame] [floors]   (default: the first three)
# frame: the free linear frame (model.autoencoder.frame=free) with the warm start, in the cells where the
# default (orthonormal) frame's results come from scripts/reproduce_linear_grid.sh; today's defaults otherwise.
# floors: shorter budgets for warm-started runs (docs/throughput.md, "Floors per init"), all 16 cells,
# min-max, with the selection code of commit d13ecda (before the held-out selection change).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=seed=1235,4256,49685,7383,9271
COMMON=(ckpt_path=null model=mixing_synthetic datamodule=mixing datamodule.batch_size=1024 datamodule.dataset.linear=True
        ~callbacks.visualization_callback datamodule.dataset.correlated_z=False trainer.enable_progress_bar=false print_metrics=false "$SEEDS"
        experiment=full_budget)
STUDIES=("$@")
[[ ${#STUDIES[@]} -gt 0 ]] || STUDIES=(long-budget reduction mmd)
for study in "${STUDIES[@]}"; do
  sweep=multirun/linear-studies/$study
  case "$study" in
    long-budget)  # the certified cells that 300 epochs leave short of the limit, trained 900 epochs
      python run_training.py "${COMMON[@]}" model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=0. \
        datamodule.dataset.z_dim=32,64 datamodule.dataset.num_domains=16 trainer.max_epochs=900 'logger.wandb.tags=["minmax","900-epochs"]' \
        "hydra.sweep.dir=$sweep" --multirun ;;
    reduction)  # the reference's normalisation (sum over domain pairs) against ours (mean), min-max
      for reduction in mean sum; do
        python run_training.py "${COMMON[@]}" model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=0. \
          datamodule.dataset.z_dim=16 datamodule.dataset.num_domains=8,16 model.penalty_reduction=$reduction \
          "logger.wandb.tags=[\"minmax\",\"reduction-$reduction\"]" "hydra.sweep.dir=$sweep" --multirun
      done ;;
    mmd)  # MMD alone in certified cells of the grid (the full MMD grid costs ~4x the min-max one)
      python run_training.py "${COMMON[@]}" model.penalty_criterion.minmax=0. model.penalty_criterion.mmd=1. model.mmd_loss.fix_sigma=null \
        datamodule.dataset.z_dim=8 datamodule.dataset.num_domains=4,8 'logger.wandb.tags=["mmd"]' "hydra.sweep.dir=$sweep" --multirun ;;
    frame)
      CURRENT=(); for arg in "${COMMON[@]}"; do [[ $arg == experiment=full_budget ]] || CURRENT+=("$arg"); done
      python run_training.py "${CURRENT[@]}" model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=0. model.autoencoder.frame=free \
        datamodule.dataset.z_dim=64 datamodule.dataset.num_domains=16 'logger.wandb.tags=["minmax","free-frame"]' \
        "hydra.sweep.dir=$sweep" --multirun
      python run_training.py "${CURRENT[@]}" model.penalty_criterion.minmax=0. model.penalty_criterion.mmd=1. model.mmd_loss.fix_sigma=null \
        model.autoencoder.frame=free datamodule.dataset.z_dim=16 datamodule.dataset.num_domains=8 'logger.wandb.tags=["mmd","free-frame"]' \
        "hydra.sweep.dir=$sweep" --multirun ;;
    floors)
      CURRENT=(); for arg in "${COMMON[@]}"; do [[ $arg == experiment=full_budget ]] || CURRENT+=("$arg"); done
      GRID=(model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=0. datamodule.dataset.z_dim=8,16,32,64 datamodule.dataset.num_domains=2,4,8,16)
      python run_training.py "${CURRENT[@]}" "${GRID[@]}" trainer.max_epochs=20 trainer.min_epochs=0 model.restart_selection_epochs=5 \
        'logger.wandb.tags=["minmax","20-epochs"]' "hydra.sweep.dir=$sweep" --multirun
      python run_training.py "${CURRENT[@]}" "${GRID[@]}" trainer.max_epochs=20 trainer.min_epochs=0 model.restart_selection_epochs=5 \
        model.optimizer.lr=0.001 'logger.wandb.tags=["minmax","20-epochs-lr-0.001"]' "hydra.sweep.dir=$sweep" --multirun
      python run_training.py "${CURRENT[@]}" "${GRID[@]}" trainer.min_epochs=30 model.restart_selection_epochs=30 \
        'logger.wandb.tags=["minmax","floor-30"]' "hydra.sweep.dir=$sweep" --multirun ;;
    *) echo "unknown study $study (long-budget | reduction | mmd | frame | floors)" >&2; exit 2 ;;
  esac
  python -m mdcrl.report "$sweep" --out "docs/results/linear/studies/$study" --columns tags \
    --metrics r2_zinv_from_hinv r2_zsp_from_hinv > /dev/null
done
