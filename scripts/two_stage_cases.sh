# Sourced by balls_cpu.sh and mnist_cpu.sh: what a two-stage experiment over cases and seeds shares.
# The sourcing script sets SWEEP and SEEDS and defines case_overrides CASE (the data settings of a
# case, or exit 2 for an unknown one); then:
#   parse_args "$@"                 --part P and --case C (repeatable) into PARTS and CASES, --sweep DIR
#                                   into SWEEP, --stage1 OVERRIDE (repeatable) into STAGE1 (overrides of
#                                   stage 1 only); the rest (hydra overrides, every stage) into REST
#   defaults PARTS... -- CASES...   fill PARTS / CASES that were not given, check every case
#   run_stage1 EXPERIMENT PREFIX    stage 1 of every case and seed in $SWEEP/stage1/<case>-seed<seed>
#   stage1_paths CASE               those runs of a case, comma-separated (stage 2's run_path sweep)
PARTS=()
CASES=()
STAGE1=()
REST=()
parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --part) PARTS+=("$2"); shift 2 ;;
      --case) CASES+=("$2"); shift 2 ;;
      --sweep) SWEEP=$2; shift 2 ;;
      --stage1) STAGE1+=("$2"); shift 2 ;;
      *) REST=("$@"); break ;;
    esac
  done
}
defaults() {
  local parts=() cases=() c
  while [[ $1 != -- ]]; do parts+=("$1"); shift; done
  shift
  cases=("$@")
  [[ ${#PARTS[@]} -gt 0 ]] || PARTS=("${parts[@]}")
  [[ ${#CASES[@]} -gt 0 ]] || CASES=("${cases[@]}")
  for c in "${CASES[@]}"; do case_overrides "$c" > /dev/null; done  # an unknown --case stops here, before any run
}
wanted() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
join() { local IFS=,; echo "$*"; }
stage1_paths() {
  local paths=() seed
  for seed in "${SEEDS[@]}"; do paths+=("$SWEEP/stage1/$1-seed$seed"); done
  join "${paths[@]}"
}
run_stage1() {
  local c
  for c in "${CASES[@]}"; do
    # shellcheck disable=SC2046  # the case's overrides are separate words
    python run_training.py "experiment=$1" $(case_overrides "$c") seed="$(join "${SEEDS[@]}")" \
      "logger.wandb.tags=[$2-$c,stage1]" "hydra.sweep.dir=$SWEEP/stage1" "hydra.sweep.subdir=$c-seed\${seed}" \
      "${QUIET[@]}" "${STAGE1[@]}" --multirun
  done
}
