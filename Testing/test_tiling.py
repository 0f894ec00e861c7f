"""Tiled whole-volume inference: plans cover everything once, and results do not depend on the tile size."""

import numpy as np
import pytest
import torch

from DPNSLCore.operators import make_degradation
from DPNSLCore.tiling import Cancelled, hr_span, plan_tiles, plan_z_windows, run_tiled


class ConvPredictor(torch.nn.Module):
    """Analytic stand-in for the estimator: in-plane 5x5 box filter of the nearest LR slice, plus z position.

    Its in-plane receptive radius is exactly 2 voxels; routing is a fixed softmax of two position-based logits.
    """

    receptive_radius = 2

    def forward(self, y, positions, scale):
        nearest = positions.round().long().clamp(0, y.shape[2] - 1)
        hr = y[:, :, nearest]
        kernel = torch.ones(1, 1, 1, 5, 5) / 25
        f = torch.nn.functional.conv3d(hr, kernel, padding=(0, 2, 2)) + positions.view(1, 1, -1, 1, 1) * 0.01
        logits = torch.stack([positions, -positions]).view(1, 2, -1, 1, 1).expand(1, 2, -1, *y.shape[-2:])
        return f, logits.softmax(dim=1)


def test_tiles_cover_axis_exactly_once():
    for size, tile, halo in [(17, 5, 2), (16, 16, 3), (7, 100, 4), (33, 8, 0)]:
        covered = np.zeros(size, int)
        for span in plan_tiles(size, tile, halo):
            covered[span.write] += 1
            assert 0 <= span.read_start and span.read_stop <= size
            assert span.keep_stop - span.keep_start == span.write.stop - span.write.start
        assert (covered == 1).all()


@pytest.mark.parametrize("n_lr,window,overlap", [(20, 8, 2), (5, 8, 2), (9, 4, 3), (10, 4, 1)])
def test_z_windows_cover_every_hr_slice(n_lr, window, overlap):
    deg = make_degradation("sample", 2.5, n_lr)
    covered = np.zeros(deg.n_hr, int)
    for start, stop in plan_z_windows(n_lr, window, overlap):
        assert stop - start == min(window, n_lr)
        k0, k1 = hr_span(deg, start, stop)
        covered[k0:k1] += 1
    assert (covered >= 1).all()


def _run(y, deg, tile, **kw):
    opts = {"z_window": 4, "z_overlap": 2, "halo": ConvPredictor.receptive_radius, "with_routing": True}
    return run_tiled(ConvPredictor(), y, deg, tile_size=tile, **{**opts, **kw})


@pytest.mark.parametrize("kind,scale", [("decimate", 3), ("sample", 2.5)])
def test_result_is_independent_of_tile_size(kind, scale):
    y = torch.rand(9, 23, 19, generator=torch.Generator().manual_seed(0))
    deg = make_degradation(kind, scale, 9)
    f_whole, r_whole = _run(y, deg, 64)
    for tile in (1, 4, 7):
        f, r = _run(y, deg, tile)
        torch.testing.assert_close(f, f_whole, rtol=0, atol=1e-6)
        torch.testing.assert_close(r, r_whole, rtol=0, atol=1e-6)


def test_blending_reproduces_a_window_independent_predictor():
    # the predictor's output depends only on the absolute HR position when the window offset is added back,
    # so any blend of windows must equal one pass over the whole stack
    class Absolute(torch.nn.Module):
        receptive_radius = 0

        def forward(self, y, positions, scale):
            start = y[0, 0, 0, 0, 0]  # the window's first slice carries its own index
            value = (positions + start).view(1, 1, -1, 1, 1).expand(1, 1, -1, *y.shape[-2:])
            return value.clone(), torch.ones(1, 1, *value.shape[2:])

    y = torch.arange(12.0).view(12, 1, 1).expand(12, 3, 3).contiguous()
    deg = make_degradation("sample", 3.5, 12)
    for blend in ("ramp", "mean"):
        f, _ = run_tiled(Absolute(), y, deg, z_window=5, z_overlap=3, tile_size=2, halo=0, blend=blend)
        expected = torch.from_numpy(deg.hr_positions).float().view(-1, 1, 1).expand_as(f)
        torch.testing.assert_close(f, expected)


def test_routing_stays_a_partition_of_unity_after_blending():
    y = torch.rand(10, 6, 6)
    _, routing = _run(y, make_degradation("decimate", 2, 10), 3)
    assert routing.min() >= 0 and routing.max() <= 1
    torch.testing.assert_close(routing.sum(0), torch.ones(routing.shape[1:]))


def test_progress_is_reported_and_cancel_stops():
    y = torch.rand(9, 8, 8)
    deg = make_degradation("decimate", 2, 9)
    seen = []
    _run(y, deg, 4, progress=lambda fraction, message: seen.append(fraction))
    assert seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(Cancelled):
        _run(y, deg, 4, cancel=lambda: len(seen) > 0)


def test_bad_window_options_are_rejected():
    with pytest.raises(ValueError, match="z_overlap"):
        plan_z_windows(10, 4, 4)
    with pytest.raises(ValueError, match="z_window"):
        plan_z_windows(10, 1, 0)
    with pytest.raises(ValueError, match="tile_size"):
        plan_tiles(10, 0, 2)
