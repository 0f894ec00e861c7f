#!/usr/bin/env bash
# The banding penalty on top of the gain loss (issue 9: stripes and the texture step on real thick scans), as
# fine-tunes of the shipped v4 models: 1000 steps each on the v4 joint CT+MR data, 1 thread each side by side.
#   ct_band: the v4 CT model (Resources/Models/training/v4/joint_ct_run/last.safetensors), --banding-weight W
#   mr_band: the v4 MR model (v4/joint_run/last.safetensors), the same weight
# Weight: with the gain loss the penalty's gradient is ~300x smaller than the loss's (median over 24 batches of the
# v4 CT model; with L1 it was 4.5x larger at weight 1, where the texture ratio overshot), so W = 300 gives the two
# about equal pull. W (default 300) and the seed are arguments: banding_v5.sh ct|mr|all [W].
set -euo pipefail
D=${DATA:-../shared/data}
V4=Resources/Models/training/v4
W=${2:-300}
COMMON=(--preset lean --anchor cubic --projection spline --degradation mix --thickness 0.75:1.5
        --decimate-share 0.4 --scales 1.5:7 --val-scales 2,4 --crop 40:64 --batch-size 8 --val-every 250
        --workers 1 --seed 2 --quiet --loss gain --banding-weight "$W" --lr 3e-4 --steps 1000 --lr-step 350)
DATASET=($D/ct_chest_abdomen_1mm.nii.gz $D/ct_lung1_5mm.nii.gz
         $D/mr_ms_patient07_{t1,t2,flair}_1mm.nii.gz $D/mr_ms_patient19_{t1,t2,flair}_1mm.nii.gz $D/mr_brain_t1_1mm.nii.gz
         $D/mr_ms_patient01_study1_t2w_thick.nii.gz $D/mr_brain1_t1c_6p5mm.nii.gz)
what=${1:-all}
if [[ $what == ct || $what == all ]]; then
  python -m DPNSLCore.train --data "${DATASET[@]}" --modality auto --init $V4/joint_ct_run/last.safetensors "${COMMON[@]}" \
    --out runs/ct_band_w$W
fi
if [[ $what == mr || $what == all ]]; then
  python -m DPNSLCore.train --data "${DATASET[@]}" --modality auto --init $V4/joint_run/last.safetensors "${COMMON[@]}" \
    --out runs/mr_band_w$W
fi
