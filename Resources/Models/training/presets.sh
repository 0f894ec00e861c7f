#!/usr/bin/env bash
# The preset study of the generalisation issue: lean and two larger presets (mid ~2x, large ~4x its compute per
# output voxel) trained on the same budget (the same steps, batches and seed, so the same data) as the shipped MR
# model's settings, then scored on the MR leave-out patients (Resources/Results/presets.sh).
# Each run resumes exactly: rerun this script (STEPS larger to continue).
set -euo pipefail
D=${DATA:-../shared/data}
STEPS=${STEPS:-1000}
LR_STEP=${LR_STEP:-400}
for p in ${PRESETS:-lean mid large}; do
  out=runs/presets/$p
  if [ -f "$out/last_state.pt" ]; then
    python -m DPNSLCore.train --resume "$out" --steps "$STEPS" --workers 1 --quiet
  else
    python -m DPNSLCore.train --preset "$p" --anchor cubic --projection spline --degradation mix --thickness 0.75:1.5 \
      --decimate-share 0.4 --scales 1.5:7 --val-scales 2,4 --crop 40:64 --batch-size 8 --lr 2e-3 --val-every 500 \
      --workers 1 --seed 0 --quiet --loss mse --modality mr --steps "$STEPS" --lr-step "$LR_STEP" --out "$out" \
      --data $D/mr_ms_patient07_{t1,t2,flair}_1mm.nii.gz $D/mr_ms_patient19_{t1,t2,flair}_1mm.nii.gz \
        $D/mr_brain_t1_1mm.nii.gz $D/mr_ms_patient01_study1_t2w_thick.nii.gz $D/mr_brain1_t1c_6p5mm.nii.gz
  fi
done
