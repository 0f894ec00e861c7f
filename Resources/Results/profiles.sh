#!/usr/bin/env bash
# Which slice profile fits real thick scans (README, "Which slice profile"): the profile measured on the real
# phantom pair, the pair's PSNR under each assumed profile (shipped CT model, defaults otherwise), and whether the
# real chest CTs' slices are possible at all under each profile (columns with no consistent values in the range).
# Usage: Resources/Results/profiles.sh [fit|pair|feasibility|simulated|all]   (outputs in $RESULTS, default Resources/Results/v6/profiles)
set -euo pipefail
D=${DATA:-../shared/data}
R=${RESULTS:-Resources/Results/v6/profiles}
what=${1:-all}
mkdir -p $R
pair=($D/ct_phantom_5mm.nii.gz $D/ct_phantom_1mm.nii.gz)
if [[ $what == fit || $what == all ]]; then
  python -m DPNSLCore.evaluate --paired "${pair[@]}" --fit-profile --out $R > /dev/null
fi
if [[ $what == pair || $what == all ]]; then
  for spec in box:1 box:1.1 box:1.2 box:1.25 box:1.3 gaussian:0.8 gaussian:0.85 gaussian:0.9 gaussian:1; do
    python -m DPNSLCore.evaluate --paired "${pair[@]}" --methods dpnsl --profile ${spec%%:*} --thickness ${spec##*:} \
      --out $R/paired_${spec/:/_} > /dev/null
  done
fi
if [[ $what == feasibility || $what == all ]]; then
  for scan in ct_lung1_5mm ct_lung2_5mm ct_phantom_5mm; do
    python Resources/Results/profile_feasibility.py $D/$scan.nii.gz --scale 5 box:1 box:1.2 box:1.3 gaussian:0.7 gaussian:0.9
  done > $R/feasibility.md
fi
if [[ $what == simulated || $what == all ]]; then  # leave-out CT stacks under simulated Gaussian thick slices
  python -m DPNSLCore.evaluate --data $D/ct_phantom_1mm.nii.gz $D/ct_lung2_5mm.nii.gz --axes auto --scales 2,4,6 \
    --methods linear,cubic,dpnsl --modality ct --degradation profile --profile gaussian --thickness 0.9 --no-ssim \
    --out $R/ct_gaussian09_profile > /dev/null
fi
