"""Destripe variants on the headline protocol's unseen patients (issue 29: no default step may cost more than 0.05 dB).

Each line: a patient, acquisition and scale, then every variant's PSNR change against no destripe (dB) / the output's
periodicity (power at 1/s over its neighbours; ~1.3 for real thin volumes). The network's output is the same for every
variant, so its z windows are computed once and cached; calibration and bounds run as in the product.

Usage (from the repository root; 2 cores: about 25 minutes for the patients below):
    D=../shared/data
    python Resources/Results/destripe/variants.py $D/mr_ms_patient26_t1_1mm.nii.gz,$D/mr_ms_patient26_flair_1mm.nii.gz,\
$D/mr_ms_patient26_t2_1mm.nii.gz,$D/mr_brain_uih_t1_3d.nii.gz mr 2,3,4,5,6,7 decimate     (and profile; and CT:)
    python Resources/Results/destripe/variants.py $D/ct_chest_lidc0314_1mm.nii.gz ct 2,3,4,5,6,7 decimate
"""
import hashlib
import sys

import torch

from DPNSLCore.data.stacks import load_volumes
from DPNSLCore.evaluation.evaluate import ProtocolOptions, score_volume
from DPNSLCore.evaluation.loading import load_dpnsl
from DPNSLCore.ops.destripe import DestripeOptions

VARIANTS = {"off": False, "s2p1": DestripeOptions(2.0, 1), "s3p1": DestripeOptions(3.0, 1),
            "s3p2": DestripeOptions(3.0, 2), "s4p2": DestripeOptions(4.0, 2)}


def main() -> None:
    torch.set_num_threads(2)
    paths, modality = sys.argv[1].split(","), sys.argv[2]
    scales, acquisition = [float(s) for s in sys.argv[3].split(",")], sys.argv[4]
    model = load_dpnsl(None, modality, "cpu")
    estimator = model.model.estimator
    cache, forward = {}, estimator.forward

    def cached(chunk, positions, scale, **options):
        key = (tuple(chunk.shape), hashlib.sha1(chunk.float().numpy().tobytes()).hexdigest(),
               tuple(positions.tolist()), float(scale))
        if key not in cache:
            cache[key] = forward(chunk, positions, scale, **options)
        return cache[key]

    estimator.forward = cached
    for volume in load_volumes(paths, modality):
        for scale in scales:
            row = {}
            for name, destripe in VARIANTS.items():
                options = ProtocolOptions(degradation=acquisition, ssim=False, device="cpu", destripe=destripe)
                score = score_volume(volume, [scale], ["dpnsl"], model=model, options=options)[0]
                row[name] = (score.psnr, score.periodicity)
            base = row["off"][0]
            print(volume.name.split("/")[-1], acquisition, scale,
                  " ".join(f"{k} {v[0] - base:+.3f}/{v[1]:.2f}" for k, v in row.items()), flush=True)
            cache.clear()


if __name__ == "__main__":
    main()
