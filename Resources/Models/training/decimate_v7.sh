#!/usr/bin/env bash
# Paper-protocol (decimation-only) fine-tunes of the shipped models: does a model specialised for `decimate` win
# back what the acquisition mix costs under decimation (issue 9: "one model for both if it can, else two")?
#   ct_dec: the shipped v5 CT model (its v5 recipe: in-plane blur on half the windows, banding penalty 100), every
#           batch decimated (integer scales 2-7) instead of 40 % of them
#   mr_dec: the shipped v4 MR model likewise (v5 recipe without blur and banding, as the v4 MR model was trained)
# 1500 steps each at lr 3e-4 halved every 500 steps, seed 2, 1 thread each side by side (OMP_NUM_THREADS=1).
# Stage 2 (`long-ct`, `long-mr`): 3000 more steps from each stage-1 result at lr 1.5e-4 halved every 1000 steps,
# into runs/ct_dec_long and runs/mr_dec_long.
# Stage 3 (`back-ct`, `back-mr`): can one model hold both? 1000 steps of the shipped models' own acquisition mix
# (v5_common.sh: 40 % decimation) from each stage-2 result at lr 1.5e-4 halved every 350 steps, into
# runs/ct_dec_back and runs/mr_dec_back.
# Scored on the leave-out patients (Resources/Results/v7/NAME/): ACQS=decimate RESULTS=Resources/Results/v7/ct_dec
# CT_MODEL=runs/ct_dec/last.safetensors Resources/Results/run_v3.sh ct (MR_MODEL=... mr); stage 3 with both ACQS.
set -euo pipefail
source "$(dirname "$0")/v5_common.sh"
DEC=(--degradation decimate --steps 1500 --lr-step 500)
CT_RECIPE=(--blur-share 0.5 --blur-sigma 0.5:1.5 --blur-axes inplane --banding-weight 100)  # the v5 CT model's
LONG=(--steps 3000 --lr 1.5e-4 --lr-step 1000)
tune() {  # tune NAME INIT [OPTION...]: a fine-tune of INIT on the v5 data and recipe into runs/NAME, in the background
  local name=$1 init=$2; shift 2
  python -m DPNSLCore.train --data "${DATASET[@]}" --modality auto --init "$init" "${COMMON[@]}" "$@" --out runs/$name &
}
what=${1:-all}
[[ $what == ct || $what == all ]] && tune ct_dec Resources/Models/training/v5/ct_inplane50_band/last.safetensors \
  "${DEC[@]}" "${CT_RECIPE[@]}"
[[ $what == mr || $what == all ]] && tune mr_dec $V4/joint_run/last.safetensors "${DEC[@]}"
[[ $what == long-ct || $what == long-all ]] && tune ct_dec_long runs/ct_dec/last.safetensors "${DEC[@]}" "${LONG[@]}" \
  "${CT_RECIPE[@]}"
[[ $what == long-mr || $what == long-all ]] && tune mr_dec_long runs/mr_dec/last.safetensors "${DEC[@]}" "${LONG[@]}"
[[ $what == back-ct || $what == back-all ]] && tune ct_dec_back runs/ct_dec_long/last.safetensors --lr 1.5e-4 \
  "${CT_RECIPE[@]}"
[[ $what == back-mr || $what == back-all ]] && tune mr_dec_back runs/mr_dec_long/last.safetensors --lr 1.5e-4
wait
