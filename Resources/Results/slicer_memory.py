"""Peak memory of the Slicer module's Upsample inside one process, beyond what the scene already holds.

A 512x512x100 int16 CT volume node (the real 5 mm chest CT, mirror-extended to 100 slices) is upsampled x4 by the
module's Qt-free logic (slicer-core MRML nodes, 2 CPU threads), with and without the parts; the resident set size
is sampled every 10 ms, and the peak above the level before the click is reported next to the output's size.

    python Resources/Results/slicer_memory.py ../shared/data/ct_lung1_5mm.nii.gz [--parts]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "DPNSLSlicer")]

import slicer  # noqa: E402
from DPNSLLib.logic import SLICER_TILING, SliceSuperResolutionLogic  # noqa: E402

import DPNSLCore  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("volume")
    p.add_argument("--slices", type=int, default=100)
    p.add_argument("--scale", type=float, default=4)
    p.add_argument("--parts", action="store_true")
    p.add_argument("--tile-size", type=int, default=None)
    p.add_argument("--z-window", type=int, default=None)
    p.add_argument("--keep-freed", action="store_true", help="do not hand freed memory back after each tile")
    p.add_argument("--no-calibrate", action="store_true", help="add the network's detail without a fitted gain")
    args = p.parse_args()
    vol = DPNSLCore.read_volume(args.volume)
    reps = int(np.ceil(args.slices / vol.array.shape[0]))
    stack = np.concatenate([vol.array if k % 2 == 0 else vol.array[::-1] for k in range(reps)])[: args.slices]
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "thick")
    matrix = np.diag([*vol.geometry.spacing, 1.0])
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(stack.astype(np.int16)))
    del stack, vol
    logic = SliceSuperResolutionLogic()
    logic.loadModel("ct", "cpu")  # loading the model is not part of the click's peak
    before, peak, running = rss(), [0], [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], rss())
            time.sleep(0.01)

    thread = threading.Thread(target=sample)
    thread.start()
    start = time.perf_counter()
    changed = {k: v for k, v in (("tile_size", args.tile_size), ("z_window", args.z_window)) if v}
    if args.keep_freed:
        changed["release_memory"] = False
    tiling = {**SLICER_TILING, **changed}
    result = logic.upsample(node, args.scale, model="ct", device="cpu", returnParts=args.parts, tiling=tiling,
                            calibrate=not args.no_calibrate)
    seconds = time.perf_counter() - start
    running[0] = False
    thread.join()
    kept = rss() - before
    output = result[0] if args.parts else result
    voxels = slicer.util.arrayFromVolume(output)
    gib = 1024**3
    added = peak[0] - before
    print(f"input {slicer.util.arrayFromVolume(node).shape} int16 -> output {voxels.shape} {voxels.dtype} "
          f"({voxels.nbytes / gib:.2f} GiB); parts {'on' if args.parts else 'off'}: peak {added / gib:.2f} GiB "
          f"beyond the scene before the click ({added / voxels.nbytes:.1f}x the output), {kept / gib:.2f} GiB "
          f"still held after it, {seconds:.0f} s, "
          f"tiling {tiling}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
