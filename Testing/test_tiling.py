"""Tiled whole-volume inference: plans cover everything once, and results depend neither on the in-plane tile
size nor on the z window (the engine reads exact halos), for every acquisition and both kinds of upsampler."""

import numpy as np
import pytest
import torch

from DPNSLCore.inference.api import upsample
from DPNSLCore.inference.engine import ColumnResult, is_out_of_memory, run_volume
from DPNSLCore.inference.tiling import Cancelled, TilingOptions, plan_tiles, plan_z_windows
from DPNSLCore.io.intensity import IntensityNormalizer
from DPNSLCore.models import PRESETS, build_model
from DPNSLCore.ops.operators import make_degradation

IDENTITY = IntensityNormalizer("mr", 1.0, 0.0)


def random_model(config, seed=0):
    """A model whose every weight is random and O(1), so f is far from zero and sees its whole receptive field."""
    torch.manual_seed(seed)
    model = build_model(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.4)
    return model.eval()


#: the lean preset (heads on the LR grid) and a tiny paper-like one (offset net and router at HR resolution,
#: full 3x3x3 convs), so both z margins are exercised
LEAN = PRESETS["lean"]
HR_HEADS = PRESETS["paper"].replace(features=4, blocks=1, mos_features=4, context_features=4, head_layers=1,
                                    offset_layers=1, router_layers=1, n_basis=2, decoder_expand=1, decoder_blocks=1,
                                    decoder_branches=("dw3",), decoder_branch_fraction=0.5)


def test_tiles_cover_axis_exactly_once_and_are_balanced():
    for size, tile, halo in [(17, 5, 2), (16, 16, 3), (7, 100, 4), (33, 8, 0), (512, 224, 10)]:
        covered = np.zeros(size, int)
        spans = plan_tiles(size, tile, halo)
        for span in spans:
            covered[span.write] += 1
            assert 0 <= span.read_start and span.read_stop <= size
            assert span.keep_stop - span.keep_start == span.write.stop - span.write.start <= tile
            assert span.write.start - span.read_start == min(halo, span.write.start)
        assert (covered == 1).all()
        cores = [s.write.stop - s.write.start for s in spans]
        assert max(cores) - min(cores) <= 1  # balanced: no thin sliver at the end
    assert [s.write.stop - s.write.start for s in plan_tiles(512, 224, 10)] == [170, 171, 171]


@pytest.mark.parametrize("n_lr,scale,window,halo", [(20, 2.5, 8, 3), (5, 4, 8, 2), (9, 3.7, 1, 4), (10, 2, 3, 0)])
def test_z_windows_partition_the_hr_slices(n_lr, scale, window, halo):
    deg = make_degradation("sample", scale, n_lr)
    covered = np.zeros(deg.n_hr, int)
    for w in plan_z_windows(n_lr, deg.n_hr, scale, window, halo):
        covered[w.hr_start:w.hr_stop] += 1
        positions = deg.hr_positions[w.hr_start:w.hr_stop]
        # every owned HR position p sees [p - halo, p + halo] (clipped to the volume)
        assert w.read_start == 0 or (positions - halo >= w.read_start - 1e-9).all()
        assert w.read_stop == n_lr or (positions + halo <= w.read_stop - 1e-9).all()
    assert (covered == 1).all()


def test_z_windows_are_balanced():
    """No window is a sliver (its halo work wasted) and the largest, which sets the peak memory, is as small as the
    window count allows: 300 observed slices by 48 give seven windows owning 42 or 43 observed slices each."""
    deg = make_degradation("profile", 4, 300)
    windows = plan_z_windows(300, deg.n_hr, 4, 48, 10)
    owned = [w.read_stop - w.read_start - (w.read_start > 0) * 10 - (w.read_stop < 300) * 10 for w in windows]
    assert len(windows) == 7 and owned == [42, 43, 43, 43, 43, 43, 43] and max(w.read_stop - w.read_start
                                                                              for w in windows) == 63


@pytest.mark.parametrize("config", [LEAN, HR_HEADS], ids=["lean", "hr-heads"])
@pytest.mark.parametrize("kind,scale", [("decimate", 3), ("sample", 2.5), ("profile", 2)])
def test_result_does_not_depend_on_tiles_or_z_windows(config, kind, scale):
    model = random_model(config)
    y = torch.rand(11, 21, 19, generator=torch.Generator().manual_seed(1)).numpy()
    run = {"model": model, "degradation": kind, "device": "cpu", "intensity": IDENTITY, "return_parts": True,
           "calibrate": False}  # the random network's detail as it is (test_calibrate: calibrated runs too)
    whole = upsample(y, scale, tiling={"tile_size": 64, "z_window": 64}, **run)
    assert float(np.abs(whole.detail).max()) > 0.05  # the network really contributes
    for tiling in ({"tile_size": 5, "z_window": 1}, {"tile_size": 8, "z_window": 3, "release_memory": True},
                   {"tile_size": 21, "z_window": 4}):
        part = upsample(y, scale, tiling=tiling, **run)
        np.testing.assert_allclose(part.volume, whole.volume, rtol=0, atol=1e-5)
        np.testing.assert_allclose(part.routing, whole.routing, rtol=0, atol=1e-5)
        assert part.consistency_error <= 1e-5


def test_routing_is_a_partition_of_unity_across_windows():
    y = torch.rand(10, 6, 6).numpy()
    result = upsample(y, 2, model=random_model(LEAN), device="cpu", intensity=IDENTITY, return_parts=True,
                      tiling={"tile_size": 3, "z_window": 2})
    assert result.routing.min() >= 0 and result.routing.max() <= 1
    np.testing.assert_allclose(result.routing.sum(0), 1.0, atol=1e-5)


def test_progress_reaches_every_stage_and_cancel_stops_at_each():
    y = torch.rand(9, 8, 8).numpy()
    run = {"model": random_model(LEAN), "device": "cpu", "intensity": IDENTITY, "calibrate": False,
           "tiling": {"tile_size": 4, "z_window": 4}}
    seen = []
    upsample(y, 2, progress=lambda fraction, message: seen.append((fraction, message)), **run)
    fractions = [f for f, _ in seen]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert len(seen) == 4 * (3 + 1)  # 4 tiles x (3 z windows + writing)
    assert sum("written" in m for _, m in seen) == 4 and any("slices 0-" in m for _, m in seen)
    for stop_after in (0, 1, 3, 7, len(seen) - 1):
        calls = []

        def cancel(calls=calls, stop_after=stop_after):
            calls.append(1)
            return len(calls) > stop_after

        with pytest.raises(Cancelled):
            upsample(y, 2, cancel=cancel, **run)


def test_tiling_options_are_validated():
    assert TilingOptions.from_value(None) == TilingOptions()
    assert TilingOptions.from_value({"tile_size": 64}) == TilingOptions(tile_size=64)
    with pytest.raises(ValueError, match=r"unknown tiling option\(s\) \['tilesize'\]"):
        TilingOptions.from_value({"tilesize": 64})
    with pytest.raises(ValueError, match="`z_window` must be an integer >= 1, got 0"):
        TilingOptions(z_window=0)
    with pytest.raises(ValueError, match="`tile_size` must be an integer >= 1, got 2.5"):
        TilingOptions(tile_size=2.5)
    with pytest.raises(ValueError, match="`release_memory` must be True or False, got 'yes'"):
        TilingOptions(release_memory="yes")
    with pytest.raises(TypeError, match="`tiling` must be a TilingOptions or a dict"):
        TilingOptions.from_value(64)
    with pytest.raises(ValueError, match="unknown tiling option"):
        upsample(np.zeros((4, 8, 8), np.float32), 2, method="linear", tiling={"z_overlap": 2})


@pytest.mark.parametrize("message", ["CUDA out of memory. Tried to allocate 2.00 GiB",
                                     "DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes"])
def test_out_of_memory_names_the_options_to_lower(message):
    def column(y_read, keep_y, keep_x, tick):
        raise RuntimeError(message)

    assert is_out_of_memory(RuntimeError(message)) and not is_out_of_memory(RuntimeError("shape mismatch"))
    deg = make_degradation("decimate", 2, 4)
    with pytest.raises(MemoryError, match=r"tile_size=32, z_window=5: lower `tile_size` \(--tile-size, e.g. 16\)"):
        run_volume(np.zeros((4, 8, 8), np.float32), 0, deg, column, halo=0, tiling=TilingOptions(32, 5),
                   steps_per_column=1)


def test_other_errors_pass_through_unchanged():
    def column(y_read, keep_y, keep_x, tick):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_volume(np.zeros((4, 8, 8), np.float32), 0, make_degradation("decimate", 2, 4), column, halo=0,
                   tiling=TilingOptions(), steps_per_column=1)


def test_engine_writes_integer_outputs_rounded_and_reports_their_consistency():
    def column(y_read, keep_y, keep_x, tick):
        y = y_read[:, keep_y, keep_x]
        hr = torch.repeat_interleave(y, 2, dim=0)[:-1] + 0.4  # 0.4 off everywhere, observed slices included
        return ColumnResult(hr)

    y = np.arange(4 * 3 * 3, dtype=np.int16).reshape(4, 3, 3)
    out = run_volume(y, 0, make_degradation("decimate", 2, 4), column, halo=0, tiling=TilingOptions(2),
                     steps_per_column=1, out_dtype=np.dtype(np.int16))
    assert out.output.dtype == np.int16 and out.consistency_error == 0.0  # rounding restores the observed slices
    np.testing.assert_array_equal(out.output[::2], y)


def test_engine_counts_the_voxels_an_integer_output_type_cannot_hold():
    def column(y_read, keep_y, keep_x, tick):
        y = y_read[:, keep_y, keep_x]
        hr = torch.repeat_interleave(y, 2, dim=0)[:-1]
        hr[1::2] = 300.0  # synthesised slices above uint8's range; the observed ones inside
        return ColumnResult(hr)

    y = np.full((4, 3, 3), 7, np.uint8)
    out = run_volume(y, 0, make_degradation("decimate", 2, 4), column, halo=0, tiling=TilingOptions(2),
                     steps_per_column=1, out_dtype=np.dtype(np.uint8))
    assert out.type_clipped == 3 * 3 * 3 and out.output.max() == 255 and out.consistency_error == 0.0
    floats = run_volume(y, 0, make_degradation("decimate", 2, 4), column, halo=0, tiling=TilingOptions(2),
                        steps_per_column=1)
    assert floats.type_clipped == 0 and floats.output.max() == 300.0


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int8, np.float32])
def test_engine_converts_to_the_output_type_as_numpy_rint_and_clip(dtype):
    """The conversion runs in torch for speed; it must round half to even and clip exactly as numpy would."""
    def column(y_read, keep_y, keep_x, tick):
        y = y_read[:, keep_y, keep_x]
        hr = torch.repeat_interleave(y, 2, dim=0)[:-1]
        hr[1::2] = (torch.arange(hr[1::2].numel()) * 1337.25 - 70000.0).view_as(hr[1::2])  # exact in float32
        hr[1, 0, :4] = torch.tensor([0.5, 1.5, -0.5, 2.5])  # ties: 0, 2, -0, 2
        return ColumnResult(hr)

    y = np.full((4, 3, 5), 7, dtype)
    out = run_volume(y, 0, make_degradation("decimate", 2, 4), column, halo=0, tiling=TilingOptions(8),
                     steps_per_column=1, out_dtype=np.dtype(dtype))  # one tile
    hr = np.repeat(y.astype(np.float32), 2, axis=0)[:-1]
    hr[1::2] = (np.arange(hr[1::2].size) * 1337.25 - 70000.0).reshape(hr[1::2].shape)
    hr[1, 0, :4] = [0.5, 1.5, -0.5, 2.5]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        expected = np.clip(np.rint(hr), info.min, info.max).astype(dtype)
        assert out.type_clipped == int(np.count_nonzero((np.rint(hr) < info.min) | (np.rint(hr) > info.max))) > 0
    else:
        expected = hr
    np.testing.assert_array_equal(out.output, expected)
