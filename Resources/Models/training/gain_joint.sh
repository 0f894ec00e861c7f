#!/usr/bin/env bash
# Two fine-tunes of the shipped v3 models, 2000 steps each at 1 thread (the issue-10 experiments of this change):
#   ct_gain:    the CT model on its own data, with the gain loss (each crop's PSNR change against the anchor, averaged)
#   joint_gain: the MR model on CT + MR data (--modality auto: each volume normalised by its own rule), gain loss
# Same recipe as train_v3.sh otherwise (mix of decimation and box profiles, scales 1.5-7, lean, cubic anchor,
# spline projection); lr 5e-4 halved every 700 steps. Leave-out scores: Resources/Results/run_v3.sh with CT_MODEL /
# MR_MODEL set to the run's last.safetensors (the commands are in the README).
set -euo pipefail
D=${DATA:-../shared/data}
M=DPNSLCore/resources/models
COMMON=(--preset lean --anchor cubic --projection spline --degradation mix --thickness 0.75:1.5
        --decimate-share 0.4 --scales 1.5:7 --val-scales 2,4 --crop 40:64 --batch-size 8 --val-every 250
        --workers 1 --seed 1 --quiet --loss gain --lr 5e-4 --steps 2000 --lr-step 700)
CT=($D/ct_chest_abdomen_1mm.nii.gz $D/ct_lung1_5mm.nii.gz)
MR=($D/mr_ms_patient07_{t1,t2,flair}_1mm.nii.gz $D/mr_ms_patient19_{t1,t2,flair}_1mm.nii.gz $D/mr_brain_t1_1mm.nii.gz
    $D/mr_ms_patient01_study1_t2w_thick.nii.gz $D/mr_brain1_t1c_6p5mm.nii.gz)
what=${1:-all}
if [[ $what == ct || $what == all ]]; then
  python -m DPNSLCore.train --data "${CT[@]}" --modality ct --init $M/dpnsl_ct.safetensors "${COMMON[@]}" --out runs/ct_gain
fi
if [[ $what == joint || $what == all ]]; then
  python -m DPNSLCore.train --data "${CT[@]}" "${MR[@]}" --modality auto --init $M/dpnsl_mr.safetensors "${COMMON[@]}" \
    --out runs/joint_gain
fi
