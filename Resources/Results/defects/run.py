"""The defect cases of issue 29, rebuilt from the shared data, scored with the product's defaults and with each default
step switched off (the product route: raw intensities in, as a user's scan; PSNR on the protocol's normalisation).

    python Resources/Results/defects/run.py > Resources/Results/defects/after.md
    PYTHONPATH=<a checkout of an older commit> python Resources/Results/defects/run.py > before.md   # the same cases

Cases:
- a skull-stripped MR (zero background) under thick slices at odd scales x3, x5, x7 (MS patient 26 T1, T2);
- thin bright vessels: the in-plane axis of a real post-contrast T1 (mr_brain1_t1c_6p5mm, 0.78 mm) at x3;
- an MR whose in-plane spacing is much finer than its slices: the UIH 3D T1 (1 mm) averaged to 3 mm slices, under
  decimation x2 and x3 (the calibration views are in-plane 1 mm resampled to the output spacing);
- long series: a 64 x 64 centre crop of the chest CT taken as acquired, 150 / 300 / 600 slices (mirror-extended) at
  x4: the modality chosen, the seconds, and whether anything went to stderr (LAPACK errors).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time

import numpy as np

import DPNSLCore
from DPNSLCore.evaluation.metrics import center_crop, psnr
from DPNSLCore.ops.operators import simulate_acquisition

DATA = os.environ.get("DATA", "../shared/data")
STEPS = {"defaults": {}, "no calibration": {"calibrate": False}, "no destripe": {"destripe": False},
         "no bounds": {"bounds": None}}


def _score(pred: np.ndarray, truth: np.ndarray, border: int, lo: float, hi: float) -> float:
    norm = (np.asarray(pred, np.float64) - lo) / (hi - lo)
    ref = (truth - lo) / (hi - lo)
    return psnr(np.clip(norm, 0, 1)[border:-border], ref[border:-border])


def thin_case(name: str, thin: np.ndarray, spacing_zyx: tuple[float, float, float], scale: int, acq: str) -> str:
    """One row: baselines, defaults, and each step off (PSNR dB) on a thin stack with its simulated acquisition."""
    thin = np.ascontiguousarray(center_crop(thin.astype(np.float64), 256))
    lr, hr = simulate_acquisition(thin, scale, degradation=acq, thickness=1.0)
    lr = np.rint(lr).astype(np.int16)  # stored as a scanner would
    lo, hi, border = float(hr.min()), float(hr.max()), int(np.ceil(scale))
    geometry = DPNSLCore.Geometry.from_spacing_zyx((spacing_zyx[0] * scale, *spacing_zyx[1:]))
    scores = {m: _score(DPNSLCore.upsample(lr, scale, method=m, degradation=acq, thickness=1.0, slice_axis=0).volume,
                        hr, border, lo, hi) for m in ("linear", "cubic")}
    gain = ""
    for step, kwargs in STEPS.items():
        result = DPNSLCore.upsample(DPNSLCore.Volume(lr, geometry), scale, degradation=acq, thickness=1.0,
                                    slice_axis=0, output_dtype="float32", **kwargs)
        scores[step] = _score(result.volume, hr, border, lo, hi)
        if step == "defaults":
            gain = f"{result.detail_gain:.2f}"
    best = max(scores["linear"], scores["cubic"])
    cells = " | ".join(f"{scores[k]:.2f}" for k in ("linear", "cubic", *STEPS))
    costs = " / ".join(f"{scores['defaults'] - scores[k]:+.2f}" for k in list(STEPS)[1:])
    return f"| {name} | {cells} | {scores['defaults'] - best:+.2f} | {costs} | {gain} |"


def long_case(n: int) -> str:
    vol = DPNSLCore.read_volume(f"{DATA}/ct_chest_abdomen_1mm.nii.gz")
    array = vol.array
    while array.shape[0] < n:
        array = np.concatenate([array, array[::-1]])
    c0, c1 = (array.shape[1] - 64) // 2, (array.shape[2] - 64) // 2
    crop = np.ascontiguousarray(array[:n, c0:c0 + 64, c1:c1 + 64])
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err):
        result = DPNSLCore.upsample(DPNSLCore.Volume(crop, vol.geometry), 4, slice_axis=0)
    seconds = time.perf_counter() - start
    model = next((x for x in result.notes if x.startswith("model:")), "")
    modality = "CT" if "modality CT" in model else "MR" if "modality MR" in model else "?"
    bounds = next((x.split(":")[0] for x in result.notes if x.startswith("output kept in")), "no box")
    stage = getattr(result, "timings", {}).get("bounds")
    bounds_s = f"{stage:.2f}" if stage is not None else "–"
    return (f"| {n} slices, 64 x 64, x4 | {modality} | {seconds:.1f} | {bounds_s} | "
            f"{'none' if not err.getvalue().strip() else err.getvalue().strip().splitlines()[0][:60]} | {bounds} |")


def main() -> None:
    print("| case | linear | cubic | defaults | no calibration | no destripe | no bounds | defaults − better "
          "baseline | cost of calibration / destripe / bounds | detail gain |")
    print("|---" * 10 + "|")
    for contrast in ("t1", "t2"):
        vol = DPNSLCore.read_volume(f"{DATA}/mr_ms_patient26_{contrast}_1mm.nii.gz")
        for scale in (3, 5, 7):
            print(thin_case(f"MS 26 {contrast.upper()} (skull-stripped), thick x{scale}", vol.array,
                            vol.geometry.spacing_zyx, scale, "profile"), flush=True)
    t1c = DPNSLCore.read_volume(f"{DATA}/mr_brain1_t1c_6p5mm.nii.gz")
    view = np.moveaxis(t1c.array, 1, 0)  # its 0.78 mm y axis as the slice axis
    sp = t1c.geometry.spacing_zyx
    print(thin_case("T1 post-contrast, in-plane axis, thick x3", view, (sp[1], sp[0], sp[2]), 3, "profile"),
          flush=True)
    uih = DPNSLCore.read_volume(f"{DATA}/mr_brain_uih_t1_3d.nii.gz")
    n = uih.array.shape[0] // 3 * 3
    coarse = uih.array[:n].astype(np.float64).reshape(n // 3, 3, *uih.array.shape[1:]).mean(1)
    sp = uih.geometry.spacing_zyx
    for scale in (2, 3):
        print(thin_case(f"UIH T1 at 3 mm slices, 1 mm in-plane, decimation x{scale}", coarse, (3 * sp[0], *sp[1:]),
                        scale, "decimate"), flush=True)
    print("\n| long series | modality chosen | seconds (whole run, defaults) | bounds step (s) | stderr | box |")
    print("|---|---|---|---|---|---|")
    for n in (150, 300, 600):
        print(long_case(n), flush=True)


if __name__ == "__main__":
    sys.exit(main())
