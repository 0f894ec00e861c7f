#!/usr/bin/env bash
# Every figure of the README's results section for the v3 models, on leave-out patients only (never seen by any
# training step along any axis): CT = the skull phantom (ct_phantom_1mm, and its real 5 mm / 1 mm pair) and
# ct_lung2_5mm (its in-plane axes); MR = MS patient 26 (T1, T2, FLAIR) and ms12 FLAIR thick (its in-plane axes).
# Thin volumes are scored along z, thick ones along their in-plane axes (evaluate --axes auto).
# Usage: Resources/Results/run_v3.sh [ct|mr|thick|thick-ct|thick-mr|pair|all]
# Candidate models: CT_MODEL / MR_MODEL (checkpoint files, default the shipped ones) and RESULTS (the output folder,
# default Resources/Results/v3), e.g. CT_MODEL=runs/joint/last.safetensors RESULTS=/tmp/joint run_v3.sh ct;
# EXTRA: more options for every evaluate and bench run, e.g. EXTRA=--no-calibrate; ACQS: the leave-out protocols
# (default "decimate profile")
set -euo pipefail
D=${DATA:-../shared/data}
R=${RESULTS:-Resources/Results/v3}
what=${1:-all}
mkdir -p $R
leaveout() {  # leaveout NAME MODALITY CHECKPOINT FILES... (CHECKPOINT empty: the shipped model)
  local name=$1 modality=$2 model=$3; shift 3
  for acq in ${ACQS:-decimate profile}; do
    python -m DPNSLCore.evaluate --data "$@" --axes auto --scales ${SCALES:-2,3,4,5,6,7} --methods linear,cubic,dpnsl \
      --modality "$modality" ${model:+--checkpoint "$model"} --degradation $acq --thickness 1 --no-ssim ${EXTRA:-} \
      --out $R/${name}_$acq > /dev/null
  done
}
if [[ $what == ct || $what == all ]]; then
  leaveout ct ct "${CT_MODEL:-}" $D/ct_phantom_1mm.nii.gz $D/ct_lung2_5mm.nii.gz
fi
if [[ $what == mr || $what == all ]]; then
  leaveout mr mr "${MR_MODEL:-}" $D/mr_ms_patient26_{t1,t2,flair}_1mm.nii.gz $D/mr_ms_patient12_study1_flair_thick.nii.gz
fi
if [[ $what == pair || $what == all ]]; then
  python -m DPNSLCore.evaluate --paired $D/ct_phantom_5mm.nii.gz $D/ct_phantom_1mm.nii.gz \
    --methods linear,cubic,dpnsl ${CT_MODEL:+--checkpoint "$CT_MODEL"} ${EXTRA:-} --out $R/paired | tee $R/paired.md
fi
thick_scans=()
[[ $what == thick || $what == all || $what == thick-ct ]] && thick_scans+=(ct_lung1_5mm:5:ct ct_lung2_5mm:5:ct)
[[ $what == thick || $what == all || $what == thick-mr ]] && thick_scans+=(mr_ms_patient01_study1_t2w_thick:4:mr \
    mr_ms_patient12_study1_flair_thick:3:mr mr_brain1_t1c_6p5mm:5:mr)
if (( ${#thick_scans[@]} )); then  # stripes on real thick scans at their own resolution, defaults
  for scan in "${thick_scans[@]}"; do
    IFS=: read -r name scale model <<< "$scan"
    [[ $model == ct && -n ${CT_MODEL:-} ]] && model=$CT_MODEL
    [[ $model == mr && -n ${MR_MODEL:-} ]] && model=$MR_MODEL
    python -m DPNSLCore.bench $D/$name.nii.gz --observed --scale $scale --methods linear,cubic,$model ${EXTRA:-} \
      > $R/bench_$name.md
  done
fi
