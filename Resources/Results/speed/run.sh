#!/usr/bin/env bash
# The speed figures (issue 30), on a quiet machine (2 cores), every ratio against linear measured in the same run:
#   chest60.md   bench of the default (shipped CT model) on 60 x 384 x 384 of the chest CT taken as acquired, x4, with
#                the per-stage profile; the same with the encoder in bfloat16
#   cli300.md    the whole command line on a 512 x 512 x 300 CT (ct_lung1/2_5mm stacked three times, cut to 300) at
#                x4: wall time and peak RSS (/usr/bin/time), linear and the default
#   presets.md   the lean, mid (~2x lean's compute) and large (~4x) presets' speed, float32 and bfloat16
#   train.md     training samples/s of the shipped recipe (200 steps after 20 of warm-up)
# Usage: Resources/Results/speed/run.sh [chest60|cli300|train|all]
set -euo pipefail
here=$(dirname "$0")
D=${DATA:-../shared/data}
what=${1:-all}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ $what == chest60 || $what == all ]]; then
  python -m DPNSLCore.bench $D/ct_chest_abdomen_1mm.nii.gz --observed --slices 60 --scale 4 --methods linear,cubic,ct \
    --profile > $here/chest60.md
  python -m DPNSLCore.bench $D/ct_chest_abdomen_1mm.nii.gz --observed --slices 60 --scale 4 --methods linear,ct \
    --precision bfloat16 --profile > $here/chest60_bf16.md
  # the larger presets (fresh weights: speed does not depend on training), float32 and bfloat16
  python -m DPNSLCore.bench $D/ct_chest_abdomen_1mm.nii.gz --observed --slices 60 --scale 4 \
    --methods linear,lean,mid,large > $here/presets.md 2>&1 || true
  python -m DPNSLCore.bench $D/ct_chest_abdomen_1mm.nii.gz --observed --slices 60 --scale 4 \
    --methods linear,lean,mid,large --precision bfloat16 > $here/presets_bf16.md 2>&1 || true
fi
if [[ $what == cli300 || $what == all ]]; then
  python - "$D" "$tmp/ct300.nii.gz" <<'PY'
import sys, numpy as np, DPNSLCore
d, out = sys.argv[1:]
a, b = (DPNSLCore.read_volume(f"{d}/ct_lung{i}_5mm.nii.gz") for i in (1, 2))
stack = np.concatenate([a.array, b.array] * 3)[:300]
DPNSLCore.write_volume(DPNSLCore.Volume(np.ascontiguousarray(stack), a.geometry), out)
PY
  {
    echo "| run (512 x 512 x 300 CT, x4, 314 M output voxels) | wall (s) | peak RSS (GB) | output M voxels/s |"
    echo "|---|---|---|---|"
    for run in "linear:--method linear" "default:" "default, bfloat16 encoder:--precision bfloat16"; do
      name=${run%%:*}; opts=${run#*:}
      /usr/bin/time -f "%e %M" -o $tmp/time python -m DPNSLCore.upsample $tmp/ct300.nii.gz -o $tmp/out.nii.gz --scale 4 \
        --quiet --overwrite $opts > /dev/null
      read -r wall kb < $tmp/time
      echo "| $name | $wall | $(python -c "print(f'{$kb / 1e6:.2f}')") | $(python -c "print(f'{1197 * 512 * 512 / $wall / 1e6:.2f}')") |"
    done
  } > $here/cli300.md
fi
if [[ $what == train || $what == all ]]; then
  mapfile -t data < <(python Resources/Results/headline/folds.py train all)
  python -m DPNSLCore.train --data "${data[@]}" --modality auto --preset lean --anchor cubic --projection spline \
    --degradation mix --thickness 0.75:1.5 --decimate-share 0.4 --scales 1.5:7 --val-scales 2,4 --crop 40:64 \
    --batch-size 8 --lr 5e-4 --loss gain --blur-share 0.3 --banding-weight 100 --steps 220 --val-every 100000 \
    --workers 1 --quiet --out $tmp/train > /dev/null
  python - $tmp/train/log.csv > $here/train.md <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if int(r["step"]) > 20]
steps = int(rows[-1]["step"]) - int(rows[0]["step"])
seconds = float(rows[-1]["time_s"]) - float(rows[0]["time_s"])
print("| training, the shipped recipe (lean, batch 8, crops 40-64, 2 cores) | samples/s |")
print("|---|---|")
print(f"| steps {rows[0]['step']}-{rows[-1]['step']} | {8 * steps / seconds:.1f} |")
PY
fi
