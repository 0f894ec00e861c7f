#!/usr/bin/env bash
# Capacity for the MR model (issue 29, item 4): the shipped MR lineage's recipe (train_v3.sh's MR run, then
# gain_joint.sh's joint gain fine-tune) with the mid preset (7 encoder blocks, 16 HR channels, 2 decoder blocks:
# ~2x lean's compute; 1.58 M output voxels/s in float32 and 2.53 with bfloat16 on 2 cores, chest CT x4) on every
# patient but the headline's unseen ones (folds.py train unseen). Each stage resumes exactly: rerun this script.
# Then score it like the shipped model:
#   CKPT=runs/mid_mr_gain/last.safetensors ACQS="decimate profile" Resources/Results/headline/run.sh mid_mr unseen
# (the CT rows of that run use the same checkpoint; only its MR rows are the comparison).
set -euo pipefail
D=${DATA:-../shared/data}
mapfile -t all < <(python Resources/Results/headline/folds.py train unseen)
MR=(); CT=()
for v in "${all[@]}"; do case $(basename "$v") in mr_*) MR+=("$v");; ct_*) CT+=("$v");; esac; done
COMMON=(--preset mid --anchor cubic --projection spline --degradation mix --thickness 0.75:1.5 --decimate-share 0.4
        --scales 1.5:7 --val-scales 2,4 --crop 40:64 --batch-size 8 --workers 1 --quiet)
run() {  # run OUT STEPS ARGS...: start, or resume when OUT holds a run
  local out=$1 steps=$2; shift 2
  if [ -f "$out/last_state.pt" ]; then
    python -m DPNSLCore.train --resume "$out" --steps "$steps" --workers 1 --quiet
  else
    python -m DPNSLCore.train "$@" --steps "$steps" --out "$out"
  fi
}
# stage 1 (train_v3.sh's MR run): MSE, lr 2e-3 halved every 1250 steps
run runs/mid_mr ${STEPS_MSE:-6500} --data "${MR[@]}" --modality mr --loss mse --lr 2e-3 --lr-step 1250 \
    --val-every 500 --seed 0 "${COMMON[@]}"
# stage 2 (gain_joint.sh's joint run, the shipped MR model's last stage): CT + MR, gain loss, lr 5e-4 halved every 700
run runs/mid_mr_gain ${STEPS_GAIN:-2000} --data "${CT[@]}" "${MR[@]}" --modality auto --loss gain --lr 5e-4 \
    --lr-step 700 --val-every 250 --seed 1 --init runs/mid_mr/last.safetensors "${COMMON[@]}"
