"""Gain over the better of linear/cubic of the shipped MR model, the shipped CT model (both are joint CT+MR models)
and the mean of their outputs, on leave-out stacks (evaluate's protocol; the mean of two consistent outputs is
consistent).

Usage: python Resources/Results/model_average.py SCALE decimate|profile ct|mr VOLUME...
"""

import sys

import numpy as np
import torch

from DPNSLCore.data.stacks import load_volumes
from DPNSLCore.evaluation.evaluate import upsample_normalised, volume_views
from DPNSLCore.evaluation.metrics import center_crop, psnr
from DPNSLCore.models.registry import open_model
from DPNSLCore.ops.operators import simulate_acquisition


def main() -> None:
    scale, acquisition, modality, paths = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
    models = {name: open_model(name, torch.device("cpu")) for name in ("mr", "ct")}
    print("| stack | shipped MR | shipped CT | their mean |\n|---|---|---|---|")
    for vol in [view for v in load_volumes(paths, modality) for view in volume_views(v, "auto")]:
        x = np.ascontiguousarray(center_crop(vol.array, 256))
        lr, hr = simulate_acquisition(x, scale, degradation=acquisition, profile="box", thickness=1.0)
        spacing = (vol.spacing[0] * scale, *vol.spacing[1:])

        truth = hr[scale:-scale]
        baselines = [upsample_normalised(lr, scale, m, degradation=acquisition).volume for m in ("linear", "cubic")]
        base = max(psnr(np.clip(v, 0, 1)[scale:-scale], truth) for v in baselines)
        outs = [upsample_normalised(lr, scale, "dpnsl", model=models[name], normalizer=vol.normalizer,
                                    degradation=acquisition, device="cpu", spacing_zyx=spacing).volume
                for name in ("mr", "ct")]
        gains = [psnr(np.clip(v, 0, 1)[scale:-scale], truth) - base for v in (*outs, 0.5 * (outs[0] + outs[1]))]
        name = vol.name.split("/")[-1]
        print(f"| {name} x{scale} {acquisition} | " + " | ".join(f"{g:+.2f}" for g in gains) + " |")


if __name__ == "__main__":
    main()
