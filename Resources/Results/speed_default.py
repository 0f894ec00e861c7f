"""Speed of the default request (auto acquisition, bounds, destripe, calibration) on two real thick scans, and without
calibration or destripe.

    python Resources/Results/speed_default.py [DATA_DIR]

`ct_lung1_5mm` centre 256x256 at x5 and `mr_ms_patient01_study1_t2w_thick` whole at x4, 2 CPU threads, best of 2
runs each, shipped models loaded once (loading is not timed). Run it with nothing else on the machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import DPNSLCore


def best_time(volume: DPNSLCore.Volume, scale: float, model, destripe: bool, calibrate: bool,
              repeats: int = 2) -> tuple[float, int]:
    times, voxels = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = DPNSLCore.upsample(volume, scale, model=model, device="cpu", destripe=destripe, calibrate=calibrate)
        times.append(time.perf_counter() - start)
        voxels = result.volume.size
    return min(times), voxels


def main(data: str = "../shared/data") -> int:
    torch.set_num_threads(2)
    lung = DPNSLCore.read_volume(Path(data) / "ct_lung1_5mm.nii.gz")
    _, h, w = lung.array.shape
    crop = lung.array[:, (h - 256) // 2:(h + 256) // 2, (w - 256) // 2:(w + 256) // 2].copy()
    cropped = DPNSLCore.Volume(crop, lung.geometry, lung.slice_thickness, thickness_axis=lung.thickness_axis)
    cases = [("ct_lung1_5mm centre 256x256 x5", cropped, 5, "ct"),
             ("mr_ms_patient01_study1_t2w_thick x4",
              DPNSLCore.read_volume(Path(data) / "mr_ms_patient01_study1_t2w_thick.nii.gz"), 4, "mr")]
    print("| volume | destripe | calibration | time (s) | output M voxels/s |")
    print("|---|---|---|---|---|")
    for name, volume, scale, kind in cases:
        model = DPNSLCore.load_model(kind, device="cpu")
        for destripe, calibrate in ((True, True), (True, False), (False, True)):
            seconds, voxels = best_time(volume, scale, model, destripe, calibrate)
            print(f"| {name} ({voxels / 1e6:.1f} M voxels) | {'on' if destripe else 'off'} | "
                  f"{'on' if calibrate else 'off'} | {seconds:.2f} | {voxels / seconds / 1e6:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
