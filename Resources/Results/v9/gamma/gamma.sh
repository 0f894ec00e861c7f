#!/usr/bin/env bash
# Gamma augmentation of the MR training windows (measured, not shipped; see README.md here). Run from the root of a
# scratch copy of the repository with gamma.patch applied (git apply Resources/Results/v9/gamma/gamma.patch):
#   Resources/Results/v9/gamma/gamma.sh 0.5   # share of MR windows given x -> x^gamma, gamma log-uniform in [0.6, 1.6]
# The recipe, seed and steps of the control in Resources/Models/training/mr_intensity_v8.sh (1 thread, ~13 min),
# then the MR leave-out tables under both protocols (~6 min each).
set -euo pipefail
source Resources/Models/training/v8_common.sh
share=$1
DPNSL_GAMMA=$share OMP_NUM_THREADS=1 python -m DPNSLCore.train --data "${CT[@]}" "${MR[@]}" --modality auto --init $INIT \
  "${COMMON[@]}" --out runs/gamma_$share
for acq in decimate profile; do
  ACQS=$acq MR_MODEL=runs/gamma_$share/last.safetensors RESULTS=runs/gamma_$share/scores OMP_NUM_THREADS=1 \
    Resources/Results/run_v3.sh mr
done
