#!/usr/bin/env bash
# Fine-tunes of the v3 models, 2000 steps each at 1 thread (the issue-10 experiments; joint_gain is the shipped MR model since v4,
# its run folder is Resources/Models/training/v4/joint_run; the runs were started from the then shipped files, the same
# weights as below):
#   ct_gain:    the CT model on its own data, with the gain loss (each crop's PSNR change against the anchor, averaged)
#   joint_gain: the MR model on CT + MR data (--modality auto: each volume normalised by its own rule), gain loss
#   ct_l1:      control for ct_gain: the same 2000 steps with the CT model's own loss (L1)
#   mr_gain:    control for joint_gain on MR: the MR model on its own data, gain loss
#   joint_ct:   the joint run started from the CT model instead (2 threads)
# Same recipe as train_v3.sh otherwise (mix of decimation and box profiles, scales 1.5-7, lean, cubic anchor,
# spline projection); lr 5e-4 halved every 700 steps. Leave-out scores: Resources/Results/run_v3.sh with CT_MODEL /
# MR_MODEL set to the run's last.safetensors (the commands are in the README).
set -euo pipefail
D=${DATA:-../shared/data}
V3=Resources/Models/training/v3  # the v3 models as shipped before this change: each run's best.safetensors
COMMON=(--preset lean --anchor cubic --projection spline --degradation mix --thickness 0.75:1.5
        --decimate-share 0.4 --scales 1.5:7 --val-scales 2,4 --crop 40:64 --batch-size 8 --val-every 250
        --workers 1 --seed 1 --quiet --loss gain --lr 5e-4 --steps 2000 --lr-step 700)
CT=($D/ct_chest_abdomen_1mm.nii.gz $D/ct_lung1_5mm.nii.gz)
MR=($D/mr_ms_patient07_{t1,t2,flair}_1mm.nii.gz $D/mr_ms_patient19_{t1,t2,flair}_1mm.nii.gz $D/mr_brain_t1_1mm.nii.gz
    $D/mr_ms_patient01_study1_t2w_thick.nii.gz $D/mr_brain1_t1c_6p5mm.nii.gz)
what=${1:-all}
if [[ $what == ct || $what == all ]]; then
  python -m DPNSLCore.train --data "${CT[@]}" --modality ct --init $V3/ct_run/best.safetensors "${COMMON[@]}" --out runs/ct_gain
fi
if [[ $what == ct_l1 || $what == all ]]; then
  python -m DPNSLCore.train --data "${CT[@]}" --modality ct --init $V3/ct_run/best.safetensors "${COMMON[@]}" --loss l1 \
    --out runs/ct_l1
fi
if [[ $what == mr || $what == all ]]; then
  python -m DPNSLCore.train --data "${MR[@]}" --modality mr --init $V3/mr_run/best.safetensors "${COMMON[@]}" --out runs/mr_gain
fi
if [[ $what == joint_ct || $what == all ]]; then
  python -m DPNSLCore.train --data "${CT[@]}" "${MR[@]}" --modality auto --init $V3/ct_run/best.safetensors "${COMMON[@]}" \
    --out runs/joint_ct
fi
if [[ $what == joint || $what == all ]]; then
  python -m DPNSLCore.train --data "${CT[@]}" "${MR[@]}" --modality auto --init $V3/mr_run/best.safetensors "${COMMON[@]}" \
    --out runs/joint_gain
fi
