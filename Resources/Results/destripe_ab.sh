#!/usr/bin/env bash
# Destripe on and off, every other choice the same, on leave-out volumes (MR patient 26 T1 and FLAIR along z; the
# CT phantom along z), both protocols, PSNR only. Output: Resources/Results/v3/destripe_ab.md (venv active).
D=../shared/data
for acq in profile decimate; do
  for ds in "" "--no-destripe"; do
    echo "== mr $acq $ds"
    python -m DPNSLCore.evaluate --data $D/mr_ms_patient26_t1_1mm.nii.gz $D/mr_ms_patient26_flair_1mm.nii.gz --axes auto --scales 2,4,6 --methods cubic,dpnsl --modality mr --degradation $acq --thickness 1 --no-ssim $ds 2>&1 | grep -E "^\|" | head -20
    echo "== ct $acq $ds"
    python -m DPNSLCore.evaluate --data $D/ct_phantom_1mm.nii.gz --axes auto --scales 2,4,6 --methods cubic,dpnsl --modality ct --degradation $acq --thickness 1 --no-ssim $ds 2>&1 | grep -E "^\|" | head -20
  done
done
