#!/usr/bin/env bash
# The shipped models at x4 on volumes they were trained on (all axes, the 15 % validation block along z included):
# the ceiling of this model class and budget, to read the leave-out figures against. ~3 min in all.
set -euo pipefail
D=${DATA:-../shared/data}
R=${RESULTS:-Resources/Results/v9/seen}
for acq in decimate profile; do
  python -m DPNSLCore.evaluate --data $D/ct_chest_abdomen_1mm.nii.gz --axes auto --scales 4 --methods linear,cubic,dpnsl \
    --modality ct --degradation $acq --thickness 1 --no-ssim --out $R/ct_$acq > /dev/null
  python -m DPNSLCore.evaluate --data $D/mr_ms_patient07_{t1,t2,flair}_1mm.nii.gz $D/mr_ms_patient19_{t1,t2,flair}_1mm.nii.gz \
    --axes auto --scales 4 --methods linear,cubic,dpnsl --modality mr --degradation $acq --thickness 1 --no-ssim \
    --out $R/mr_$acq > /dev/null
done
