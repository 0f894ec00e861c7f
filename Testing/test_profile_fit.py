"""Measuring a scanner's slice profile from a thick/thin pair: known profiles are recovered, errors say why."""

import numpy as np
import pytest
import torch

from DPNSLCore.evaluation.evaluate import main
from DPNSLCore.evaluation.profile_fit import fit_slice_profile
from DPNSLCore.io.volumes import Geometry, Volume, write_volume
from DPNSLCore.ops.operators import make_degradation


def _pair(tmp_path, profile, thickness, offset=3, n_lr=9):
    """A thin 1 mm series and the thick 5 mm series the given profile makes of it, ``offset`` thin slices in."""
    rng = np.random.default_rng(0)
    n_hr = (n_lr - 1) * 5 + 1
    z = np.arange(n_hr + 2 * offset, dtype=np.float64)
    thin = sum(rng.normal(size=(1, 6, 7)) * 80 * np.sin(z[:, None, None] / p + rng.uniform(0, 6, (1, 6, 7)))
               for p in (0.9, 1.7, 3.1, 6.0)) + 40.0
    write_volume(Volume(thin.astype(np.float32), Geometry(spacing=(0.8, 0.8, 1.0), origin=(0, 0, -offset))),
                 tmp_path / "thin.nrrd")
    deg = make_degradation("profile", 5, n_lr, profile=profile, thickness=thickness)
    thick = deg.forward(torch.from_numpy(thin[offset:offset + n_hr])).numpy()
    write_volume(Volume(thick.astype(np.float32), Geometry(spacing=(0.8, 0.8, 5.0))), tmp_path / "thick.nrrd")
    return tmp_path / "thick.nrrd", tmp_path / "thin.nrrd"


@pytest.mark.parametrize(("profile", "thickness"), [("gaussian", 0.85), ("box", 1.2), ("box", 0.7)])
def test_the_profile_that_made_the_thick_series_is_found(tmp_path, profile, thickness):
    fits = fit_slice_profile(*_pair(tmp_path, profile, thickness))
    best, runner_up = fits[0], fits[1]
    assert (best.profile, best.thickness) == (profile, thickness)
    assert best.rmse < 1e-3 < runner_up.rmse  # float32 files: exact up to their rounding
    assert best.columns == 42 and best.thickness_mm == pytest.approx(5 * thickness)
    assert 2 <= best.slices <= 7 and len({f.slices for f in fits}) == 1  # every candidate on the same slices


def test_only_slices_whose_whole_profile_lies_inside_the_thin_series_count(tmp_path):
    # no thin margin beyond the thick series: the end slices' profiles are cut, so they are left out
    fits = fit_slice_profile(*_pair(tmp_path, "box", 1.0, offset=0))
    assert fits[0].slices <= 7 and (fits[0].profile, fits[0].thickness) == ("box", 1.0)


def test_a_pair_that_cannot_be_fitted_says_why(tmp_path):
    thick, thin = _pair(tmp_path, "box", 1.0)
    with pytest.raises(ValueError, match="finer slices"):
        fit_slice_profile(thin, thick)
    far = tmp_path / "far.nrrd"
    write_volume(Volume(np.zeros((9, 6, 7), np.float32), Geometry(spacing=(0.8, 0.8, 5.0), origin=(0, 0, 500))), far)
    with pytest.raises(ValueError, match="lies inside"):
        fit_slice_profile(far, thin)
    with pytest.raises(ValueError, match="`profile` must be one of"):
        fit_slice_profile(thick, thin, [("triangle", 1.0)])


def test_the_command_line_prints_and_writes_the_profile_to_use(tmp_path, capsys):
    thick, thin = _pair(tmp_path, "gaussian", 0.85)
    assert main(["--paired", str(thick), str(thin), "--fit-profile", "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "profile_fit.md").read_text()
    assert "best: gaussian profile, thickness 0.85 spacings (4.25 mm)" in text
    assert "--profile gaussian --thickness 0.85" in capsys.readouterr().out
    assert main(["--data", str(thin), "--fit-profile"]) == 2
    assert "give --paired THICK THIN" in capsys.readouterr().err
