#!/usr/bin/env bash
# The v10 models (issue 29): every model starts from one base trained on the in-plane axes of the thick scans only
# (no patient of the headline protocol, Resources/Results/headline/folds.json), then each fold fine-tunes it on every
# patient but the ones it holds out; "all" fine-tunes it on every patient (the shipped model). Joint CT + MR models
# (--modality auto: each volume normalised by its own rule). Every run resumes exactly: rerun the same command.
# Usage: Resources/Models/training/v10.sh base | f1 ... f5 | all      (runs/v10/<name>; 1 thread each)
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
FOLDS=Resources/Results/headline/folds.py
R=${RUNS:-runs/v10}
COMMON=(--modality auto --preset lean --anchor cubic --projection spline --degradation mix --thickness 0.75:1.5
        --decimate-share 0.4 --scales 1.5:7 --val-scales 2,4 --crop 40:64 --batch-size 8 --workers 1 --quiet)
STEPS_BASE=${STEPS_BASE:-6000}
STEPS_TUNE=${STEPS_TUNE:-3000}
run() {  # run OUT ARGS...: start, or resume when OUT holds a run
  local out=$1; shift
  if [ -f "$out/last_state.pt" ]; then
    python -m DPNSLCore.train --resume "$out" --workers 1 --quiet
  else
    python -m DPNSLCore.train "$@" --out "$out"
  fi
}
what=${1:?base, f1..f5 or all}
if [[ $what == base ]]; then
  mapfile -t data < <(python $FOLDS base)
  run $R/base --data "${data[@]}" "${COMMON[@]}" --loss l1 --lr 2e-3 --steps $STEPS_BASE --lr-step 2500 \
    --val-every 1000 --seed 10
else
  mapfile -t data < <(python $FOLDS train "$what")
  run $R/$what --data "${data[@]}" "${COMMON[@]}" --init $R/base/last.safetensors --loss gain --lr 5e-4 \
    --steps $STEPS_TUNE --lr-step 1000 --blur-share 0.3 --blur-sigma 0.5:1.5 --banding-weight 100 --val-every 500 \
    --seed 11
fi
