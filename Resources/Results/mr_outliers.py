"""Do a few very bright voxels (vessels, fat, a spike) hurt DP-NSL on MR? 50 voxels of the observed stack set to
FACTOR times the maximum; PSNR in the clean volume's min/max scale, away from their columns; DP-NSL with the
network's MR input rule (the default) and with the min/max rule it replaced.

Usage: python Resources/Results/mr_outliers.py VOLUME SCALE decimate|profile FACTOR
"""

import sys

import numpy as np

import DPNSLCore
from DPNSLCore.evaluation.metrics import center_crop, psnr
from DPNSLCore.io.intensity import IntensityNormalizer
from DPNSLCore.ops.operators import simulate_acquisition


def main() -> None:
    path, scale, acquisition, factor = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    raw = np.ascontiguousarray(center_crop(DPNSLCore.read_volume(path).array.astype(np.float32), 256))
    lr, hr = simulate_acquisition(raw, scale, degradation=acquisition, profile="box", thickness=1.0)
    lo, hi = float(raw.min()), float(raw.max())
    rng = np.random.default_rng(0)
    bad = np.zeros(lr.shape, bool)
    bad[tuple(rng.integers(0, n, 50) for n in lr.shape)] = True
    dirty = lr.copy()
    dirty[bad] = hi * factor
    geometry = DPNSLCore.Geometry(spacing=(1.0, 1.0, float(scale)))
    keep = ~np.broadcast_to(bad.any(axis=0), hr.shape)[scale:-scale]  # away from the outliers' columns
    truth = ((hr - lo) / (hi - lo))[scale:-scale]
    thickness = 1.0 if acquisition == "profile" else None

    def row(name: str, y: np.ndarray, **options) -> None:
        out = DPNSLCore.upsample(DPNSLCore.Volume(y, geometry), scale, degradation=acquisition, thickness=thickness,
                                 **options)
        u = np.clip((out.volume - lo) / (hi - lo), 0, 1)[scale:-scale]
        gain = f", detail gain {out.detail_gain:.2f}" if options.get("model") else ""
        print(f"| {name} | {psnr(u[keep], truth[keep]):.2f}{gain} |")

    print(f"{path.split('/')[-1]} x{scale} {acquisition}, 50 observed voxels at {factor:g} x the maximum\n")
    print("| method | PSNR (dB) away from them |\n|---|---|")
    row("linear, clean", lr, method="linear")
    row("DP-NSL, clean", lr, model="mr", device="cpu")
    row("DP-NSL, with the outliers (MR input rule)", dirty, model="mr", device="cpu")
    row("DP-NSL, with the outliers (min/max rule)", dirty, model="mr", device="cpu",
        intensity=IntensityNormalizer.for_mr(dirty))


if __name__ == "__main__":
    main()
