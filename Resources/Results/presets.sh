#!/usr/bin/env bash
# The preset study (generalisation issue): the three presets trained on the same budget by
# Resources/Models/training/presets.sh, scored on the MR leave-out patients (MS patient 26 T1/T2/FLAIR along z,
# ms12 FLAIR thick along its in-plane axes) under both protocols, and timed by bench in one run (fresh weights:
# speed does not depend on training). Then Resources/Results/presets.py makes the table and the plot.
# Usage (venv active): [SCALES=4] [PRESETS="lean mid"] Resources/Results/presets.sh [eval|bench|all]
set -euo pipefail
D=${DATA:-../shared/data}
R=Resources/Results/presets
what=${1:-all}
mkdir -p $R
if [[ $what == eval || $what == all ]]; then
  for p in ${PRESETS:-lean mid large}; do
    for acq in decimate profile; do
      python -m DPNSLCore.evaluate --data $D/mr_ms_patient26_{t1,t2,flair}_1mm.nii.gz \
        $D/mr_ms_patient12_study1_flair_thick.nii.gz --axes auto --scales ${SCALES:-2,3,4,5,6,7} --methods linear,cubic,dpnsl \
        --modality mr --checkpoint runs/presets/$p/best.safetensors --degradation $acq --thickness 1 --no-ssim \
        --out $R/${p}_$acq > /dev/null
    done
  done
fi
if [[ $what == bench || $what == all ]]; then  # the README's speed volume: the thin chest CT at x4 (40.5 M voxels)
  python -m DPNSLCore.bench $D/ct_chest_abdomen_1mm.nii.gz --scale 4 --methods linear,cubic,lean,mid,large > $R/bench.md
fi
