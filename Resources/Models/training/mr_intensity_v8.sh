#!/usr/bin/env bash
# Does training on what the network sees at inference help? The shipped MR model (v4) fine-tuned for 1000 steps on
# its own joint CT + MR data and recipe (gain loss, mix of decimation and box profiles, scales 1.5-7), lr 2.5e-4
# halved every 350 steps, 1 thread each (~14 min side by side), twice with the same seed:
#   control: MR volumes scaled by min/max (as v4 was trained)
#   input:   --mr-intensity input (0.1th to 99.9th percentile, upsample's MR input rule)
# Logs and arguments: Resources/Models/training/v8/; leave-out scores: Resources/Results/v8/mr_intensity/{control,input}/ from
#   ACQS=decimate MR_MODEL=runs/mr_rule_input/last.safetensors RESULTS=... Resources/Results/run_v3.sh mr
set -euo pipefail
source Resources/Models/training/v8_common.sh
what=${1:-all}
if [[ $what == control || $what == all ]]; then
  OMP_NUM_THREADS=1 python -m DPNSLCore.train --data "${CT[@]}" "${MR[@]}" --modality auto --init $INIT "${COMMON[@]}" \
    --out runs/mr_rule_control &
fi
if [[ $what == input || $what == all ]]; then
  OMP_NUM_THREADS=1 python -m DPNSLCore.train --data "${CT[@]}" "${MR[@]}" --modality auto --init $INIT "${COMMON[@]}" \
    --mr-intensity input --out runs/mr_rule_input &
fi
wait
