"""The shipped CT and MR models: they load safely, are small, know their modality, and are the default.

The quality check here is a regression guard on the repository's own thin crops (which come from training
volumes); the honest held-out numbers are in the README and come from `python -m DPNSLCore.evaluate`.
"""


import numpy as np
import pytest

import DPNSLCore
from DPNSLCore.evaluation.metrics import psnr
from DPNSLCore.io.intensity import IntensityNormalizer
from DPNSLCore.models.registry import SHIPPED, shipped_path
from DPNSLCore.resources import SAMPLE_DATA_DIR

SAMPLES = SAMPLE_DATA_DIR
CROPS = {"ct": "ct_chest_1mm_crop.nii.gz", "mr": "mr_t1_1mm_crop.nii.gz"}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_weights_are_small_and_describe_themselves(name):
    path = shipped_path(name)
    assert path is not None and path.stat().st_size < 5e6
    model = DPNSLCore.load_model(name, device="cpu")
    assert model.config.modality == name and model.config.name == "lean"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_is_consistent_and_beats_cubic_on_the_sample_crop(name):
    volume = DPNSLCore.read_volume(SAMPLES / CROPS[name]).array.astype(np.float32)
    norm = IntensityNormalizer.for_volume(volume, name)
    lr, hr = DPNSLCore.simulate_acquisition(volume, 4)
    learned = DPNSLCore.upsample(lr, 4, model=name, device="cpu", intensity=norm)
    cubic = DPNSLCore.upsample(lr, 4, method="cubic")
    np.testing.assert_array_equal(learned.volume[::4], lr)
    gain = psnr(norm.forward(learned.volume), norm.forward(hr)) - psnr(norm.forward(cubic.volume), norm.forward(hr))
    assert gain > 0.1


def test_default_model_follows_the_modality():
    ct = DPNSLCore.read_volume(SAMPLES / "ct_lung1_5mm_crop.nii.gz").array[:6, :32, :32]
    result = DPNSLCore.upsample(ct, 2, device="cpu", return_parts=True)
    assert result.method == "dpnsl" and result.expert_degrees == (2, 3, 4)
    np.testing.assert_array_equal(result.volume[::2], ct)
