#!/usr/bin/env bash
# The secondary table (never averaged into the headline): the skull phantom along z, and the in-plane axes of a thick
# chest CT and of a thick FLAIR (evaluate --axes auto), all kept out of every training step; both acquisitions.
# Usage: CKPT=runs/x/last.safetensors run.sh TAG     (or SHIPPED=1 run.sh TAG: the shipped CT / MR models)
set -euo pipefail
here=$(dirname "$0")
D=${DATA:-../shared/data}
tag=${1:?give a tag}
if [ -n "${SHIPPED:-}" ]; then model=(); else model=(--checkpoint "${CKPT:?set CKPT or SHIPPED=1}"); fi
for spec in "ct:$D/ct_phantom_1mm.nii.gz $D/ct_lung2_5mm.nii.gz" "mr:$D/mr_ms_patient12_study1_flair_thick.nii.gz"; do
  modality=${spec%%:*}; files=${spec#*:}
  for acq in ${ACQS:-profile decimate}; do
    dest=$here/$tag/${modality}_$acq
    [ -f "$dest/scores.csv" ] && [ -z "${FORCE:-}" ] && continue
    python -m DPNSLCore.evaluate --data $files --axes auto --scales ${SCALES:-2,3,4,5,6,7} --methods linear,cubic,dpnsl \
      --modality $modality "${model[@]}" --degradation $acq --thickness 1 --no-ssim ${EXTRA:-} --out "$dest.tmp" > /dev/null
    rm -f "$dest.tmp"/*.png; rm -rf "$dest"; mv "$dest.tmp" "$dest"  # the tables need no plots
  done
done
