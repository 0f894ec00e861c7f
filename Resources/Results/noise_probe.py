"""Is the synthesised slices' missing texture (the texture ratio > 1) the noise of the acquired ones?

A leave-out stack, the paper's decimation or the thick-slice protocol: the truth, the shipped model's output
(defaults), and that output plus white Gaussian noise of 0.5 / 0.75 / 1 times the thin truth's noise sigma
(Immerkaer's estimate) added in the null space of A (so A x = y still holds), with PSNR, periodicity and texture.

Usage: python Resources/Results/noise_probe.py VOLUME ct|mr SCALE decimate|profile
"""

import sys

import numpy as np
import torch

from DPNSLCore.evaluation.banding import banding
from DPNSLCore.evaluation.evaluate import load_dpnsl, upsample_normalised
from DPNSLCore.evaluation.metrics import center_crop, psnr
from DPNSLCore.io.intensity import IntensityNormalizer
from DPNSLCore.io.volumes import read_volume
from DPNSLCore.ops.operators import make_degradation, null_space_detail, simulate_acquisition

MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], float)  # Immerkaer's Laplacian-difference mask


def immerkaer_sigma(slices: np.ndarray) -> float:
    """Gaussian noise sigma of a stack of 2-D slices (Immerkaer 1996): sqrt(pi / 2) / 6 * mean |slice * MASK|."""
    total, count = 0.0, 0
    for s in slices.astype(np.float64):
        h, w = s.shape
        conv = sum(MASK[i, j] * s[i:h - 2 + i, j:w - 2 + j] for i in range(3) for j in range(3))
        total, count = total + float(np.abs(conv).sum()), count + conv.size
    return float(np.sqrt(np.pi / 2) / 6 * total / count)


def row(name: str, volume: np.ndarray, truth: np.ndarray, scale: int, extra: str = "") -> str:
    periodicity, texture = banding(np.clip(volume, 0, 1), scale)
    score = psnr(np.clip(volume, 0, 1)[scale:-scale], truth[scale:-scale]) if volume is not truth else float("inf")
    return f"| {name} | {score:.2f} | {periodicity:.2f} | {texture:.3f} | {extra} |"


def main() -> None:
    path, modality, scale, acquisition = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    raw = read_volume(path).array.astype(np.float32)
    normalizer = IntensityNormalizer.for_ct() if modality == "ct" else IntensityNormalizer.for_mr(raw)
    x = np.ascontiguousarray(center_crop(normalizer.forward(raw), 256))
    lr, hr = simulate_acquisition(x, scale, degradation=acquisition, profile="box", thickness=1.0)
    model = load_dpnsl(None, modality, "cpu")
    pred = upsample_normalised(lr, scale, "dpnsl", model=model, normalizer=normalizer, degradation=acquisition,
                               device="cpu", spacing_zyx=(1.0 * scale, 1.0, 1.0)).volume
    sigma = immerkaer_sigma(hr)
    print(f"{path.split('/')[-1]} x{scale} {acquisition}: noise sigma (Immerkaer, [0, 1] units) acquired "
          f"{immerkaer_sigma(lr):.4f}, thin truth {sigma:.4f}, DP-NSL output {immerkaer_sigma(pred):.4f}\n")
    print("| | PSNR (dB) | periodicity | texture | max abs(A x - y) |\n|---|---|---|---|---|")
    print(row("thin truth", hr, hr, scale))
    print(row("DP-NSL (defaults)", pred, hr, scale))
    deg = make_degradation(acquisition, scale, lr.shape[0], thickness=1.0)
    rng = np.random.default_rng(0)
    for k in (0.5, 0.75, 1.0):
        noise = torch.from_numpy(rng.normal(0.0, k * sigma, pred.shape).astype(np.float32))
        noisy = pred + null_space_detail(noise, deg, "spline", anchor="cubic").numpy()
        error = float((deg.forward(torch.from_numpy(noisy)) - torch.from_numpy(lr)).abs().max())
        print(row(f"+ noise {k:g} sigma", noisy, hr, scale, f"{error:.1e}"))


if __name__ == "__main__":
    main()
