#!/usr/bin/env bash
# v12: the previous shipped models (v5 CT, v4 MR; the files of commit ece7638, DPNSLCore/resources/models) fine-tuned
# on the new data: every volume of the shared set but the secondary table's, joint CT + MR, the gain loss, 2000 steps
# at lr 3e-4 halved every 700 steps (the earlier fine-tunes' recipe, longer for the new patients). "unseen" holds out
# the patients the previous models never saw (LIDC-IDRI-0314, MS patient 26, the UIH T1): its scores on them are the
# recipe's honest figures; "all" holds out nobody (the candidate to ship).
# Usage: Resources/Models/training/v12.sh unseen|all ct|mr     (runs/v12/<fold>_<model>; 1 thread)
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
R=${RUNS:-runs/v12}
PREVIOUS=${PREVIOUS:-runs/previous}  # git show ece7638:DPNSLCore/resources/models/dpnsl_ct.safetensors > ...
fold=${1:?unseen or all}; model=${2:?ct or mr}
mapfile -t data < <(python Resources/Results/headline/folds.py train "$fold")
out=$R/${fold}_$model
if [ -f "$out/last_state.pt" ]; then
  exec python -m DPNSLCore.train --resume "$out" --workers 1 --quiet
fi
python -m DPNSLCore.train --data "${data[@]}" --modality auto --preset lean --anchor cubic --projection spline \
  --degradation mix --thickness 0.75:1.5 --decimate-share 0.4 --scales 1.5:7 --val-scales 2,4 --crop 40:64 \
  --batch-size 8 --workers 1 --quiet --val-every 1000 --init $PREVIOUS/dpnsl_$model.safetensors --loss gain \
  --lr 3e-4 --steps 2000 --lr-step 700 --seed 31 --out "$out"
