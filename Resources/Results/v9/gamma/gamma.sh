#!/usr/bin/env bash
# Gamma augmentation of the MR training windows (measured, not shipped; see README.md here). Run from the root of a
# scratch copy of the repository with gamma.patch applied (git apply Resources/Results/v9/gamma/gamma.patch):
#   Resources/Results/v9/gamma/gamma.sh 0.5   # share of MR windows given x -> x^gamma, gamma log-uniform in [0.6, 1.6]
# The recipe, seed and steps of the control in Resources/Models/training/mr_intensity_v8.sh (1 thread, ~13 min),
# then the MR leave-out tables under both protocols (~6 min each).
set -euo pipefail
D=${DATA:-../shared/data}
COMMON=(--preset lean --anchor cubic --projection spline --degradation mix --thickness 0.75:1.5
        --decimate-share 0.4 --scales 1.5:7 --val-scales 2,4 --crop 40:64 --batch-size 8 --val-every 250
        --workers 1 --seed 3 --quiet --loss gain --lr 2.5e-4 --steps 1000 --lr-step 350 --device cpu)
CT=($D/ct_chest_abdomen_1mm.nii.gz $D/ct_lung1_5mm.nii.gz)
MR=($D/mr_ms_patient07_{t1,t2,flair}_1mm.nii.gz $D/mr_ms_patient19_{t1,t2,flair}_1mm.nii.gz $D/mr_brain_t1_1mm.nii.gz
    $D/mr_ms_patient01_study1_t2w_thick.nii.gz $D/mr_brain1_t1c_6p5mm.nii.gz)
INIT=DPNSLCore/resources/models/dpnsl_mr.safetensors
share=$1
DPNSL_GAMMA=$share OMP_NUM_THREADS=1 python -m DPNSLCore.train --data "${CT[@]}" "${MR[@]}" --modality auto --init $INIT \
  "${COMMON[@]}" --out runs/gamma_$share
for acq in decimate profile; do
  ACQS=$acq MR_MODEL=runs/gamma_$share/last.safetensors RESULTS=runs/gamma_$share/scores OMP_NUM_THREADS=1 \
    Resources/Results/run_v3.sh mr
done
