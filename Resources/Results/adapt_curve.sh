#!/usr/bin/env bash
# Gain of --adapt SECONDS on leave-out patients at x4 (thick-slice protocol: box profile, thickness = spacing):
# the skull phantom CT (1 mm, along z) and MS patient 26's T1 (1 mm, along z). 2 CPU cores, nothing else running.
set -euo pipefail
D=${DATA:-../shared/data}
R=${RESULTS:-Resources/Results/v3/adapt}  # RESULTS, CASES (e.g. CASES=mr:mr_ms_patient26_t1_1mm) to redo a part
mkdir -p $R
for case in ${CASES:-ct:ct_phantom_1mm mr:mr_ms_patient26_t1_1mm}; do
  IFS=: read -r modality name <<< "$case"
  for seconds in 0 30 90; do
    python -m DPNSLCore.evaluate --data $D/$name.nii.gz --scales 4 --methods linear,cubic,dpnsl --modality $modality \
      --degradation profile --thickness 1 --no-ssim --adapt $seconds --out $R/${name}_adapt$seconds > /dev/null
    echo "$name adapt ${seconds}s: $(grep ',dpnsl,' $R/${name}_adapt$seconds/summary.csv | cut -d, -f4)" \
         "(cubic $(grep ',cubic,' $R/${name}_adapt$seconds/summary.csv | cut -d, -f4))"
  done
done | tee $R/curve.txt
