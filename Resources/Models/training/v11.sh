#!/usr/bin/env bash
# The v11 models (issue 29): one joint CT + MR model per fold of Resources/Results/headline/folds.json, from scratch
# on every volume but the fold's held-out patients (thin volumes along every axis, thick scans along their in-plane
# axes), and one on every patient ("all": the shipped model). Two stages, as the earlier shipped lineage: MSE from
# scratch (lr 2e-3 halved every 1500 steps; L1 stalls on MR), then the gain loss (each crop's PSNR change against the
# anchor; lr 5e-4 halved every 500 steps). Every run resumes exactly: rerun the same command.
# Usage: Resources/Models/training/v11.sh a | b | c | all      (runs/v11/<name>_1, <name>; 1 thread each)
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
FOLDS=Resources/Results/headline/folds.py
R=${RUNS:-runs/v11}
COMMON=(--modality auto --preset lean --anchor cubic --projection spline --degradation mix --thickness 0.75:1.5
        --decimate-share 0.4 --scales 1.5:7 --val-scales 2,4 --crop 40:64 --batch-size 8 --workers 1 --quiet
        --val-every 1500)
STEPS_1=${STEPS_1:-4500}
STEPS_2=${STEPS_2:-1500}
run() {  # run OUT ARGS...: start, or resume when OUT holds a run
  local out=$1; shift
  if [ -f "$out/last_state.pt" ]; then
    python -m DPNSLCore.train --resume "$out" --workers 1 --quiet
  else
    python -m DPNSLCore.train "$@" --out "$out"
  fi
}
what=${1:?a, b, c or all}
mapfile -t data < <(python $FOLDS train "$what")
run $R/${what}_1 --data "${data[@]}" "${COMMON[@]}" --loss mse --lr 2e-3 --steps $STEPS_1 --lr-step 1500 --seed 21
run $R/$what --data "${data[@]}" "${COMMON[@]}" --init $R/${what}_1/last.safetensors --loss gain --lr 5e-4 \
  --steps $STEPS_2 --lr-step 500 --seed 22
