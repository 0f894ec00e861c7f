#!/usr/bin/env bash
# The headline protocol (issue 29, DESIGN.md section 5): every clinical thin patient of folds.json scored
# through-plane (z) by the model of the fold that held it out of every training step; decimation and thick slices
# (box profile of one spacing), x2-x7, linear and cubic measured in the same run, the product's defaults
# (calibration, destripe, bounds). Then `python tables.py RESULTS` writes the tables.
# Usage: run.sh TAG [FOLD...]        models: CKPT='runs/x/{fold}/last.safetensors' ({fold} replaced per fold and
#                                    {modality} by ct or mr), or
#        SHIPPED=1 run.sh TAG        the shipped CT / MR models for every patient (they saw some of them: tables.py
#                                    marks those)
# Results go to Resources/Results/headline/TAG/<fold>_<modality>_<acquisition>/ (scores.csv, results.md).
# EXTRA: more evaluate options (e.g. --no-calibrate, --precision bfloat16; evaluate runs the encoder in float32 unless
# told: the tables are the same on every machine); ACQS (default "decimate profile"); SCALES (default 2,...,7).
set -euo pipefail
here=$(dirname "$0")
tag=${1:?give a tag for the results folder}; shift
folds=("$@"); [ ${#folds[@]} -gt 0 ] || mapfile -t folds < <(python $here/folds.py folds)
out=$here/$tag
mkdir -p "$out"
for fold in "${folds[@]}"; do
  for modality in ct mr; do
    mapfile -t vols < <(python $here/folds.py held "$fold" $modality)
    [ ${#vols[@]} -gt 0 ] || continue
    ckpt=${CKPT:-}; ckpt=${ckpt//\{fold\}/$fold}; ckpt=${ckpt//\{modality\}/$modality}
    if [ -n "${SHIPPED:-}" ]; then model=(); else model=(--checkpoint "$ckpt"); fi
    for acq in ${ACQS:-decimate profile}; do
      dest=$out/${fold}_${modality}_$acq
      [ -f "$dest/scores.csv" ] && [ -z "${FORCE:-}" ] && continue  # finished: rerun with FORCE=1
      python -m DPNSLCore.evaluate --data "${vols[@]}" --axes z --scales ${SCALES:-2,3,4,5,6,7} \
        --methods linear,cubic,dpnsl --modality $modality "${model[@]}" --degradation $acq --thickness 1 --no-ssim \
        ${EXTRA:-} --out "$dest.tmp" > /dev/null
      rm -f "$dest.tmp"/*.png; rm -rf "$dest"; mv "$dest.tmp" "$dest"  # the tables need no plots
    done
  done
done
