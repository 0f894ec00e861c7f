#!/usr/bin/env bash
# The speed figures (issue 30), on a quiet machine (2 cores), every ratio against linear measured in the same run:
#   chest60.md   bench of the default (shipped CT model) on 60 x 384 x 384 of the chest CT taken as acquired, x4, with
#                the per-stage profile; the same with the encoder in bfloat16
#   cli300.md    the whole command line on a 512 x 512 x 300 CT (ct_lung1/2_5mm stacked three times, cut to 300) at
#                x4: wall time and peak RSS (/usr/bin/time), linear and DP-NSL with its encoder in float32 and in bfloat16
#                (OLD_TREE=<checkout>: and that tree's default run)
#   presets.md   the lean, mid (~2x lean's compute) and large (~4x) presets' speed, float32 and bfloat16
#   train.md     training samples/s of the shipped recipe (200 steps after 20 of warm-up)
#   clinical.md  the clinical and archive routes: a 512 x 512 x 61 CT DICOM series (ct_lung2_5mm written as DICOM) at
#                x5 to NIfTI, to a DICOM series, and to a DICOM series sent to a local Orthanc (when installed); a
#                batch of four cases (that series and three NIfTI scans) in one process and under torchrun with two
#                ranks of one thread each
# Usage: Resources/Results/speed/run.sh [chest60|cli300|train|clinical|all]
# SUFFIX (e.g. _avx2): appended to every file name, for the figures of another CPU beside these (each bench header
# names its processor).
set -euo pipefail
here=$(dirname "$0")
D=${DATA:-../shared/data}
what=${1:-all}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ $what == chest60 || $what == all ]]; then
  python -m DPNSLCore.bench $D/ct_chest_abdomen_1mm.nii.gz --observed --slices 60 --scale 4 --methods linear,cubic,ct \
    --profile > $here/chest60${SUFFIX:-}.md
  python -m DPNSLCore.bench $D/ct_chest_abdomen_1mm.nii.gz --observed --slices 60 --scale 4 --methods linear,ct \
    --precision bfloat16 --profile > $here/chest60_bf16${SUFFIX:-}.md
  # the larger presets (fresh weights: speed does not depend on training), float32 and bfloat16
  python -m DPNSLCore.bench $D/ct_chest_abdomen_1mm.nii.gz --observed --slices 60 --scale 4 \
    --methods linear,lean,mid,large > $here/presets${SUFFIX:-}.md 2>&1 || true
  python -m DPNSLCore.bench $D/ct_chest_abdomen_1mm.nii.gz --observed --slices 60 --scale 4 \
    --methods linear,lean,mid,large --precision bfloat16 > $here/presets_bf16${SUFFIX:-}.md 2>&1 || true
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
    runs=("linear:--method linear" "DP-NSL, float32 encoder:--precision float32"
          "DP-NSL, bfloat16 encoder (the default on a CPU with AVX512-BF16):--precision bfloat16")
    # OLD_TREE=<a checkout of an earlier commit>: its default run too, in the same session
    [ -n "${OLD_TREE:-}" ] && runs+=("DP-NSL, bfloat16 encoder, the code of commit $(git -C $OLD_TREE rev-parse --short HEAD):--precision bfloat16")
    for run in "${runs[@]}"; do
      name=${run%%:*}; opts=${run#*:}; tree=.; [[ $name == *"of commit"* ]] && tree=$OLD_TREE
      (cd $tree && /usr/bin/time -f "%e %M" -o $tmp/time python -m DPNSLCore.upsample $tmp/ct300.nii.gz \
        -o $tmp/out.nii.gz --scale 4 --quiet --overwrite $opts > /dev/null)
      read -r wall kb < $tmp/time
      echo "| $name | $wall | $(python -c "print(f'{$kb / 1e6:.2f}')") | $(python -c "print(f'{1197 * 512 * 512 / $wall / 1e6:.2f}')") |"
    done
  } > $here/cli300${SUFFIX:-}.md
fi
if [[ $what == train || $what == all ]]; then
  # OLD_TREE=<a checkout of an earlier commit>: the same steps with its code too (the before of issue 30)
  mapfile -t data < <(python Resources/Results/headline/folds.py train all | xargs realpath)
  {
    echo "| training, the shipped recipe (lean, batch 8, crops 40-64, 2 cores), steps 21-220 | samples/s |"
    echo "|---|---|"
    for tree in "" ${OLD_TREE:-}; do
      rm -rf $tmp/train
      (cd ${tree:-.} && python -m DPNSLCore.train --data "${data[@]}" --modality auto --preset lean --anchor cubic \
        --projection spline --degradation mix --thickness 0.75:1.5 --decimate-share 0.4 --scales 1.5:7 \
        --val-scales 2,4 --crop 40:64 --batch-size 8 --lr 5e-4 --loss gain --blur-share 0.3 --banding-weight 100 \
        --steps 220 --val-every 100000 --workers 1 --quiet --out $tmp/train > /dev/null)
      label="this version"; [ -n "$tree" ] && label="the code of commit $(git -C $tree rev-parse --short HEAD)"
      python - $tmp/train/log.csv "$label" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if int(r["step"]) > 20]
steps = int(rows[-1]["step"]) - int(rows[0]["step"])
seconds = float(rows[-1]["time_s"]) - float(rows[0]["time_s"])
print(f"| {sys.argv[2]} | {8 * steps / seconds:.1f} |")
PY
    done
  } > $here/train${SUFFIX:-}.md
fi
if [[ $what == clinical || $what == all ]]; then
  mkdir -p $tmp/archive
  python - "$D" "$tmp/archive" <<'PY'
import shutil, sys, DPNSLCore
d, out = sys.argv[1:]
DPNSLCore.write_volume(DPNSLCore.read_volume(f"{d}/ct_lung2_5mm.nii.gz"), f"{out}/lung2_dicom", format="dicom")
for name in ("ct_lung1_5mm", "ct_liver_crlm1004_5mm", "mr_brain1_t1c_6p5mm"):
    shutil.copy(f"{d}/{name}.nii.gz", out)
PY
  timed() {  # timed NAME OUTPUT_VOXELS COMMAND...: one table row
    local name=$1 vox=$2; shift 2
    /usr/bin/time -f "%e %M" -o $tmp/time "$@" > $tmp/log 2>&1 || { cat $tmp/log; return 1; }
    read -r wall kb < $tmp/time
    echo "| $name | $wall | $(python -c "print(f'{$kb / 1e6:.2f}')") | $(python -c "print(f'{$vox / $wall / 1e6:.2f}')") |"
  }
  series=$tmp/archive/lung2_dicom
  vox=$((301 * 512 * 512))
  {
    echo "| route (2 cores) | wall (s) | peak RSS (GB) | output M voxels/s |"
    echo "|---|---|---|---|"
    timed "DICOM series (512 x 512 x 61, 5 mm) -> NIfTI, x5" $vox python -m DPNSLCore.upsample $series \
      -o $tmp/o.nii.gz --scale 5 --overwrite
    timed "the same -> DICOM series (301 files)" $vox python -m DPNSLCore.upsample $series -o $tmp/o_dcm \
      --format dicom --scale 5 --overwrite
    if command -v Orthanc > /dev/null; then
      mkdir -p $tmp/orthanc/db
      printf '{"Name":"t","StorageDirectory":"%s","IndexDirectory":"%s","DicomAet":"ORTHANC","DicomPort":4343,"HttpPort":8343,"RemoteAccessAllowed":false,"DicomCheckCalledAet":false,"UnknownSopClassAccepted":true}' \
        $tmp/orthanc/db $tmp/orthanc/db > $tmp/orthanc/conf.json
      Orthanc $tmp/orthanc/conf.json > $tmp/orthanc/log 2>&1 &
      orthanc_pid=$!
      sleep 5
      timed "the same -> DICOM series sent to a local Orthanc (C-STORE)" $vox python -m DPNSLCore.upsample $series \
        -o $tmp/o_send --format dicom --scale 5 --send ORTHANC@127.0.0.1:4343 --overwrite
      kill $orthanc_pid; wait $orthanc_pid 2> /dev/null || true
    fi
    bvox=$(( (61 + 48) * 5 * 512 * 512 + 41 * 5 * 395 * 302 + 25 * 5 * 256 * 256 ))
    timed "batch of 4 cases (that CT series, two CT and one MR NIfTI files), x5, one process" $bvox python -m DPNSLCore.batch \
      $tmp/archive $tmp/batch1 --scale 5
    timed "the same batch, torchrun --nproc_per_node=2 (1 thread each)" $bvox env OMP_NUM_THREADS=1 torchrun \
      --nproc_per_node=2 -m DPNSLCore.batch $tmp/archive $tmp/batch2 --scale 5
  } > $here/clinical${SUFFIX:-}.md
fi
