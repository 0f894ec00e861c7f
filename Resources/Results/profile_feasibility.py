"""Can a real thick scan's slices come from any physical volume under a given slice profile?

Under an acquisition A the observed slices y are possible only if some volume x inside the physical range (CT from
-1024 HU) has A x = y. The upsampler's bounds step finds out column by column (:mod:`DPNSLCore.ops.bounds`: the
columns "with no consistent values in the range"); a profile under which many columns are impossible is refuted
by the scan itself. This prints that count for each assumed profile on a centre crop of a real thick scan:

    python Resources/Results/profile_feasibility.py ../shared/data/ct_lung1_5mm.nii.gz --scale 5 \\
        box:0.8 box:1 box:1.2 gaussian:0.7 gaussian:0.9
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import DPNSLCore
from DPNSLCore.io.volumes import Volume, read_volume


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("volume")
    p.add_argument("profiles", nargs="+", help="PROFILE:THICKNESS (box or gaussian, thickness in spacings)")
    p.add_argument("--scale", type=float, required=True)
    p.add_argument("--crop", type=int, default=128, help="centre crop in-plane (voxels)")
    args = p.parse_args(argv)
    volume = read_volume(args.volume)
    _, height, width = volume.array.shape
    c = args.crop // 2
    crop = np.ascontiguousarray(volume.array[:, height // 2 - c:height // 2 + c, width // 2 - c:width // 2 + c])
    sub = Volume(crop, volume.geometry)
    print(f"{args.volume}: centre {crop.shape[1]}x{crop.shape[2]} ({crop.shape[1] * crop.shape[2]} columns), "
          f"x{args.scale:g}\n\n| profile | thickness (spacings) | bounds step | time (s) |\n|---|---|---|---|")
    for spec in args.profiles:
        profile, thickness = spec.split(":")
        start = time.perf_counter()
        result = DPNSLCore.upsample(sub, args.scale, degradation="profile", profile=profile,
                                    thickness=float(thickness), calibrate=False)
        note = next(n for n in result.notes if n.startswith("output kept in"))
        print(f"| {profile} | {thickness} | {note.split(': ', 1)[1]} | {time.perf_counter() - start:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
