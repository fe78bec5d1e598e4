#!/usr/bin/env bash
# Reproduce the paper's linear-mixing grid: the seed README's six commands (4 z_dims x 4 domain
# counts x 5 seeds each, 480 runs) through the parallel launcher, then the report.
#   scripts/reproduce_linear_grid.sh           the full grid   -> docs/results/linear/
#   scripts/reproduce_linear_grid.sh --quick   a smoke test: z_dim 8, 2 and 4 domains, 2 seeds, 30 epochs
#   scripts/reproduce_linear_grid.sh --penalty minmax   only the commands of one penalty
#                                              (minmax | mmd | minmax-mmd; repeatable)
#   scripts/reproduce_linear_grid.sh --part closed-form   the closed-form moment estimate alone
#                                              (experiment=moment_baseline) on the min-max commands' data
#   scripts/reproduce_linear_grid.sh --part random-init   the min-max commands with model.init=random
#                                              (the paper's initialisation, beside the warm start)
#   scripts/reproduce_linear_grid.sh --out DIR  write the report to DIR instead of docs/results/linear
#   scripts/reproduce_linear_grid.sh --sweep DIR  run into DIR instead of multirun/linear-grid (e.g. a
#                                              variant with extra overrides beside the defaults' grid)
# Without --penalty/--part: every part, in the order minmax, closed-form, mmd, minmax-mmd, random-init;
# with them, the parts named, in the order given.
# Re-running resumes: finished runs are skipped, interrupted ones resume from their last checkpoint,
# and the report always covers every run under the sweep directory.
# Extra Hydra overrides may follow (e.g. hydra.launcher.n_jobs=4).
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=multirun/linear-grid
OUT=docs/results/linear
EXTRA=()
PENALTIES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick)
      SWEEP=multirun/linear-grid-quick
      OUT=docs/results/linear-quick
      EXTRA+=(datamodule.dataset.z_dim=8 datamodule.dataset.num_domains=2,4 seed=1235,4256 trainer.max_epochs=30 nonlinear_probe=false)
      shift ;;
    --penalty|--part) PENALTIES+=("$2"); shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --sweep) SWEEP="$2"; shift 2 ;;
    *) break ;;
  esac
done
[[ ${#PENALTIES[@]} -gt 0 ]] || PENALTIES=(minmax closed-form mmd minmax-mmd random-init)
EXTRA+=(trainer.enable_progress_bar=false print_metrics=false "hydra.sweep.dir=$SWEEP" "$@")
# Run one sweep command and append its wall time, tags and part-specific overrides to $SWEEP/times.txt.
timed() {
  local t0 label
  t0=$(date +%s)
  "$@"
  label=$(printf '%s\n' "$@" | grep -E '^(logger.wandb.tags=|experiment=|model.init=)' | tr '\n' ' ')
  mkdir -p "$SWEEP" && echo "$(( $(date +%s) - t0 )) s  $label" >> "$SWEEP/times.txt"
}

start=$(date +%s)
# The six commands, verbatim from the seed README; our overrides are appended before --multirun.
# Each part's wall time goes to $SWEEP/times.txt.
part_minmax() {
timed python run_training.py ckpt_path=null model=mixing_synthetic model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=0. datamodule=mixing datamodule.batch_size=1024 datamodule.dataset.linear=True datamodule.dataset.z_dim=8,16,32,64 datamodule.dataset.num_domains=2,4,8,16 ~callbacks.visualization_callback logger.wandb.tags=["linear-uniform","minmax"] datamodule.dataset.correlated_z=False seed=1235,4256,49685,7383,9271 "${EXTRA[@]}" --multirun
timed python run_training.py ckpt_path=null model=mixing_synthetic model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=0. datamodule=mixing datamodule.batch_size=1024 datamodule.dataset.linear=True datamodule.dataset.z_dim=8,16,32,64 datamodule.dataset.num_domains=2,4,8,16 ~callbacks.visualization_callback logger.wandb.tags=["linear-corr","minmax"] datamodule.dataset.correlated_z=True datamodule.dataset.corr_prob=0.5 seed=1235,4256,49685,7383,9271 "${EXTRA[@]}" --multirun
}
part_closed_form() {
timed python run_training.py ckpt_path=null model=mixing_synthetic model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=0. datamodule=mixing datamodule.batch_size=1024 datamodule.dataset.linear=True datamodule.dataset.z_dim=8,16,32,64 datamodule.dataset.num_domains=2,4,8,16 ~callbacks.visualization_callback logger.wandb.tags=["linear-uniform","minmax"] datamodule.dataset.correlated_z=False seed=1235,4256,49685,7383,9271 experiment=moment_baseline "${EXTRA[@]}" --multirun
timed python run_training.py ckpt_path=null model=mixing_synthetic model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=0. datamodule=mixing datamodule.batch_size=1024 datamodule.dataset.linear=True datamodule.dataset.z_dim=8,16,32,64 datamodule.dataset.num_domains=2,4,8,16 ~callbacks.visualization_callback logger.wandb.tags=["linear-corr","minmax"] datamodule.dataset.correlated_z=True datamodule.dataset.corr_prob=0.5 seed=1235,4256,49685,7383,9271 experiment=moment_baseline "${EXTRA[@]}" --multirun
}
part_mmd() {
timed python run_training.py ckpt_path=null model=mixing_synthetic model.penalty_criterion.minmax=0. model.penalty_criterion.mmd=1. model.mmd_loss.fix_sigma=null datamodule=mixing datamodule.batch_size=1024 datamodule.dataset.linear=True datamodule.dataset.z_dim=8,16,32,64 datamodule.dataset.num_domains=2,4,8,16 ~callbacks.visualization_callback logger.wandb.tags=["linear-uniform","mmd"] datamodule.dataset.correlated_z=False datamodule.dataset.corr_prob=0.0 seed=1235,4256,49685,7383,9271 "${EXTRA[@]}" --multirun
timed python run_training.py ckpt_path=null model=mixing_synthetic model.penalty_criterion.minmax=0. model.penalty_criterion.mmd=1. model.mmd_loss.fix_sigma=null datamodule=mixing datamodule.batch_size=1024 datamodule.dataset.linear=True datamodule.dataset.z_dim=8,16,32,64 datamodule.dataset.num_domains=2,4,8,16 ~callbacks.visualization_callback logger.wandb.tags=["linear-corr","mmd"] datamodule.dataset.correlated_z=True datamodule.dataset.corr_prob=0.5 seed=1235,4256,49685,7383,9271 "${EXTRA[@]}" --multirun
}
part_minmax_mmd() {
timed python run_training.py ckpt_path=null model=mixing_synthetic model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=1. model.mmd_loss.fix_sigma=null datamodule=mixing datamodule.batch_size=1024 datamodule.dataset.linear=True datamodule.dataset.z_dim=8,16,32,64 datamodule.dataset.num_domains=2,4,8,16 ~callbacks.visualization_callback logger.wandb.tags=["linear-uniform","minmax-mmd"] datamodule.dataset.correlated_z=False seed=1235,4256,49685,7383,9271 "${EXTRA[@]}" --multirun
timed python run_training.py ckpt_path=null model=mixing_synthetic model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=1. model.mmd_loss.fix_sigma=null datamodule=mixing datamodule.batch_size=1024 datamodule.dataset.linear=True datamodule.dataset.z_dim=8,16,32,64 datamodule.dataset.num_domains=2,4,8,16 ~callbacks.visualization_callback logger.wandb.tags=["linear-corr","minmax-mmd"] datamodule.dataset.correlated_z=True datamodule.dataset.corr_prob=0.5 seed=1235,4256,49685,7383,9271 "${EXTRA[@]}" --multirun
}
part_random_init() {
timed python run_training.py ckpt_path=null model=mixing_synthetic model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=0. datamodule=mixing datamodule.batch_size=1024 datamodule.dataset.linear=True datamodule.dataset.z_dim=8,16,32,64 datamodule.dataset.num_domains=2,4,8,16 ~callbacks.visualization_callback logger.wandb.tags=["linear-uniform","minmax"] datamodule.dataset.correlated_z=False seed=1235,4256,49685,7383,9271 model.init=random "${EXTRA[@]}" --multirun
timed python run_training.py ckpt_path=null model=mixing_synthetic model.penalty_criterion.minmax=1. model.penalty_criterion.mmd=0. datamodule=mixing datamodule.batch_size=1024 datamodule.dataset.linear=True datamodule.dataset.z_dim=8,16,32,64 datamodule.dataset.num_domains=2,4,8,16 ~callbacks.visualization_callback logger.wandb.tags=["linear-corr","minmax"] datamodule.dataset.correlated_z=True datamodule.dataset.corr_prob=0.5 seed=1235,4256,49685,7383,9271 model.init=random "${EXTRA[@]}" --multirun
}
for part in "${PENALTIES[@]}"; do
  case "$part" in
    minmax|closed-form|mmd|minmax-mmd|random-init) "part_${part//-/_}" ;;
    *) echo "unknown part $part (minmax | closed-form | mmd | minmax-mmd | random-init)" >&2; exit 2 ;;
  esac
done
echo "sweeps: $(( $(date +%s) - start )) s" >&2
python -m mdcrl.report "$SWEEP" --out "$OUT" --metrics r2_zinv_from_hinv r2_zsp_from_hinv r2_hinv_from_zinv > /dev/null
echo "report: $OUT/report.md" >&2
