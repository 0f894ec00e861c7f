#!/usr/bin/env bash
# A ceiling for the MR targets of issue 29: the shipped MR model fine-tuned on one unseen headline patient ITSELF
# (every axis of its thin volumes, z included: the very slices it is then scored on), then scored on that patient
# with the headline protocol (z, x4 by default, both acquisitions, the product's defaults). No product model may do
# this; it says how much detail the lean model can learn to add to that patient at all.
# Recipe: the shipped MR lineage's last step (gain_joint.sh: gain loss, acquisition mix, scales 1.5-7, crops 40-64,
# batch 8) for 1000 steps at lr 5e-4 halved every 400, on every slice (no held-out block: on UIH a run holding out
# the top 15 % of z had a flat validation gain from step 500 on).
# Usage: oracle.sh [PATIENT...]   (uih ms26; default both). Runs go to runs/oracle_<patient>, scores to
# Resources/Results/headline/oracle/<patient>_mr_<acquisition>/. About 6 min of training per patient on 2 cores.
#        oracle.sh scratch         capacity: the lean and the mid preset (about twice lean's compute) each trained
# from scratch on the UIH T1 itself (2500 MSE steps, lr 2e-3 halved every 700), scored the same way, to
# Resources/Results/headline/oracle_scratch/<preset>/uih_mr_<acquisition>/ (about 10 and 22 min).
set -euo pipefail
D=${DATA:-../shared/data}
here=$(dirname "$0")
mkdir -p $here/oracle $here/oracle_scratch
declare -A VOLS=([uih]="$D/mr_brain_uih_t1_3d.nii.gz"
                 [ms26]="$D/mr_ms_patient26_t1_1mm.nii.gz $D/mr_ms_patient26_t2_1mm.nii.gz $D/mr_ms_patient26_flair_1mm.nii.gz")
# the shipped MR lineage's acquisitions and crops; every slice trains (no held-out block)
COMMON=(--modality mr --anchor cubic --projection spline --degradation mix --thickness 0.75:1.5 --decimate-share 0.4
        --scales 1.5:7 --crop 40:64 --batch-size 8 --val-block 0 --workers 1 --seed 1 --quiet)
score() {  # score RUN_FOLDER OUT_PREFIX VOLUMES...: x4 (SCALES), both acquisitions, the product's defaults
  local run=$1 prefix=$2; shift 2
  for acq in decimate profile; do
    python -m DPNSLCore.evaluate --data "$@" --axes z --scales ${SCALES:-4} --methods linear,cubic,dpnsl \
      --modality mr --checkpoint $run/last.safetensors --degradation $acq --thickness 1 --no-ssim \
      --out ${prefix}_mr_$acq > /dev/null
    rm -f ${prefix}_mr_$acq/*.png
  done
}
if [ "${1:-}" = scratch ]; then
  for preset in lean mid; do
    run=runs/oracle_uih_scratch_$preset
    [ -f $run/last.safetensors ] || python -m DPNSLCore.train --data ${VOLS[uih]} --preset $preset "${COMMON[@]}" \
      --loss mse --lr 2e-3 --steps 2500 --lr-step 700 --out $run
    mkdir -p $here/oracle_scratch/$preset
    score $run $here/oracle_scratch/$preset/uih ${VOLS[uih]}
    cp $run/log.csv $here/oracle_scratch/$preset/training_log.csv
  done
  exit 0
fi
patients=("$@"); [ ${#patients[@]} -gt 0 ] || patients=(uih ms26)
for p in "${patients[@]}"; do
  run=runs/oracle_$p
  [ -f $run/last.safetensors ] || python -m DPNSLCore.train --data ${VOLS[$p]} --preset lean "${COMMON[@]}" \
    --init DPNSLCore/resources/models/dpnsl_mr.safetensors --loss gain --lr 5e-4 --steps 1000 --lr-step 400 --out $run
  score $run $here/oracle/$p ${VOLS[$p]}
  cp $run/log.csv $here/oracle/${p}_training_log.csv
done
