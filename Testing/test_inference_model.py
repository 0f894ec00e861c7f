"""`upsample(method="dpnsl")` on whole volumes: exact consistency, tiling invariance, parts, models, errors."""

import numpy as np
import pytest
import torch

from DPNSLCore import Cancelled, load_model, upsample
from DPNSLCore.io.intensity import IntensityNormalizer
from DPNSLCore.models import build_model, preset, save_checkpoint


@pytest.fixture(scope="module")
def model():
    """Lean model with a randomised last conv (a fresh one adds no detail at all)."""
    torch.manual_seed(0)
    net = build_model(preset("lean"))
    torch.nn.init.normal_(net.estimator.decoder.final.weight, std=0.3)
    return net.eval()


@pytest.fixture(scope="module")
def ct():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(9, 40, 36)) * 300 - 400).astype(np.float32)  # HU-like


@pytest.mark.parametrize("scale", [2, 3, 4, 7])
def test_observed_slices_are_kept_bit_exactly(model, ct, scale):
    for calibrate in (True, False):  # the default fits the detail's gain (0 for this random network): both kept
        result = upsample(ct, scale, model=model, device="cpu", calibrate=calibrate)
        np.testing.assert_array_equal(result.volume[::scale], ct)
        assert result.consistency_error == 0.0
    assert np.abs(result.volume - upsample(ct, scale, method="linear").volume).max() > 1.0  # it adds detail


@pytest.mark.parametrize("kind,scale", [("sample", 2.5), ("profile", 3)])
def test_non_integer_and_profile_acquisitions_are_consistent(model, ct, kind, scale):
    result = upsample(ct, scale, model=model, degradation=kind, device="cpu")
    assert result.consistency_error <= 1e-5 * np.abs(ct).max()


def test_only_a_large_column_hands_the_windows_heap_back(model, ct, monkeypatch):
    """The allocator policy per column: a large one runs windows of at most LARGE_COLUMN_Z_WINDOW observed slices,
    keeps the heap for its windows only, releases it after them and again after its own stage (projection,
    destripe, bounds); a small one keeps all of its work in the heap and the z window asked for. The run releases
    once more before returning. The output is the same either way, and so is the progress count."""
    from DPNSLCore.inference import engine

    asked, released = [], []
    real_reuse, real_leaving = engine.reuse_freed_memory, engine.released_on_leaving

    def spy(*, release=False):
        asked.append(release)
        return real_reuse(release=release)

    def spy_leaving():
        asked.append("column")
        return real_leaving()

    monkeypatch.setattr(engine, "reuse_freed_memory", spy)
    monkeypatch.setattr(engine, "released_on_leaving", spy_leaving)
    monkeypatch.setattr(engine, "release_freed_memory", lambda: released.append(True))
    monkeypatch.setattr(engine, "LARGE_COLUMN_Z_WINDOW", 3)
    outputs, messages = [], []
    for threshold, expected, windows in ((1, ["column", True], ["slices"] * 3), (1 << 40, [False, False],
                                                                                   ["slices"] + ["network done"] * 2)):
        monkeypatch.setattr(engine, "RELEASE_COLUMN_BYTES", threshold)
        asked.clear(), released.clear()
        messages.clear()
        outputs.append(upsample(ct, 3, model=model, device="cpu", calibrate=False, tiling={"tile_size": 64},
                                progress=lambda _, message: messages.append(message)).volume)
        assert asked == expected and released == [True]
        # 9 observed slices: three windows of 3 (each reads all 9 with its halo), or one of 9 and two padding ticks
        steps = [m.split(": ", 1)[1] for m in messages]
        assert ["slices" if m.startswith("slices") else m for m in steps] == [*windows, "written"]
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_result_does_not_depend_on_tile_size(model, ct):
    whole = upsample(ct, 3, model=model, device="cpu", return_parts=True, tiling={"tile_size": 64})
    for tile in (7, 16):
        tiled = upsample(ct, 3, model=model, device="cpu", return_parts=True, tiling={"tile_size": tile})
        np.testing.assert_allclose(tiled.volume, whole.volume, rtol=0, atol=1e-3)  # HU; float32 round-off
        np.testing.assert_allclose(tiled.routing, whole.routing, rtol=0, atol=1e-6)


def test_parts_add_up_and_routing_is_a_partition_of_unity(model, ct):
    result = upsample(ct, 4, model=model, device="cpu", return_parts=True, slice_axis=2)
    assert result.volume.shape == (9, 40, 141)
    np.testing.assert_allclose(result.anchor + result.detail, result.volume, rtol=0, atol=1e-3)
    assert not result.detail[:, :, ::4].any()  # the detail lives in the null space: zero at acquired slices
    assert result.routing.shape == (3, 9, 40, 141) and result.expert_degrees == (2, 3, 4)
    assert result.routing.min() >= 0 and result.routing.max() <= 1
    np.testing.assert_allclose(result.routing.sum(0), 1.0, atol=1e-5)


def test_observed_slices_kept_with_any_intensity_rule(model, ct):
    lo, hi = float(ct.min()), float(ct.max())
    mr_like = upsample(ct, 2, model=model, device="cpu", intensity=IntensityNormalizer("mr", hi - lo, lo))
    np.testing.assert_array_equal(mr_like.volume[::2], ct)


def test_checkpoint_path_and_modality_round_trip(model, ct, tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path, extra={"modality": "ct"})
    loaded = load_model(str(path), device="cpu")
    assert loaded.config.modality == "ct"
    a = upsample(ct, 3, model=str(path), device="cpu").volume
    np.testing.assert_array_equal(a, upsample(ct, 3, model=model, device="cpu").volume)


def test_cancel_raises_and_returns_nothing(model, ct):
    with pytest.raises(Cancelled):
        upsample(ct, 2, model=model, device="cpu", cancel=lambda: True)


def test_progress_reaches_one(model, ct):
    seen = []
    upsample(ct, 2, model=model, device="cpu", progress=lambda f, m: seen.append(f))
    assert seen and seen[-1] == 1.0


def test_unknown_model_name_is_explained(ct):
    with pytest.raises(ValueError, match="unknown model 'bogus'"):
        upsample(ct, 2, model="bogus", device="cpu")


def test_missing_checkpoint_is_explained(ct, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        upsample(ct, 2, model=str(tmp_path / "none.safetensors"), device="cpu")


def test_unavailable_cuda_is_explained(ct):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        upsample(ct, 2, model="lean", device="cuda")


@pytest.mark.filterwarnings("ignore:warning. precision bfloat16 on a CPU without native:UserWarning")  # any CPU
def test_a_bfloat16_encoder_keeps_every_acquired_slice_and_stays_close_to_float32():
    import DPNSLCore
    from DPNSLCore.models.registry import open_model

    rng = np.random.default_rng(3)
    thick = rng.normal(40, 200, (8, 40, 40)).astype(np.float32)
    model = open_model("ct", "cpu")
    common = {"model": model, "device": "cpu", "modality": "ct", "calibrate": False}
    full = DPNSLCore.upsample(thick, 3, degradation="decimate", precision="float32", **common)
    half = DPNSLCore.upsample(thick, 3, degradation="decimate", precision="bfloat16", **common)
    np.testing.assert_array_equal(half.volume[::3], thick)  # the acquired slices, bit for bit
    assert 0 < float(np.abs(half.volume - full.volume).max()) < 20.0  # HU: reduced precision, not another model
    assert "precision: the encoder's convolutions in bfloat16 (asked)" in half.notes
    profile = DPNSLCore.upsample(thick, 3, degradation="profile", precision="bfloat16", **common)
    assert profile.consistency_error < 1e-3
    with pytest.raises(ValueError, match="`precision` must be one of"):
        DPNSLCore.upsample(thick, 3, precision="float16", **common)


@pytest.mark.parametrize(("flags", "expected"), [
    ("fpu sse avx2 avx512f avx512_bf16 avx512_vnni", "bfloat16"),  # AVX512-BF16 (Zen 4, Cooper Lake)
    ("fpu avx2 avx512f amx_bf16 amx_tile", "bfloat16"),            # AMX (Sapphire Rapids)
    ("fpu sse avx2 avx512f avx512bw", "float32"),                  # AVX-512 without BF16: emulated, slower
    ("fpu sse avx2", "float32"),
])
def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it_and_says_so(flags, expected):
    from DPNSLCore.inference.engine import resolve_precision

    chosen, note = resolve_precision("auto", torch.device("cpu"), cpu_flags=f"flags\t\t: {flags}")
    start = "precision: the encoder's convolutions in bfloat16" if expected == "bfloat16" else "precision: float32"
    assert chosen == expected and note.startswith(start)
    assert "(auto:" in note
    assert resolve_precision("auto", torch.device("cuda"), cpu_flags=f"flags: {flags}")[0] == "float32"
    assert resolve_precision("float32", torch.device("cpu"), cpu_flags=f"flags: {flags}")[0] == "float32"


def test_bfloat16_asked_on_a_cpu_that_only_emulates_it_is_warned_about(monkeypatch):
    """Emulated bfloat16 ran the chest CT bench 26x slower than float32 on an AVX2 CPU: asking for it there is
    allowed, never silent."""
    import DPNSLCore
    from DPNSLCore.inference import engine

    cpu = torch.device("cpu")
    for flags, warned in (("fpu sse avx2", True), ("fpu avx2 avx512f avx512_bf16", False),
                          ("fpu avx2 amx_bf16", False)):
        note = engine.emulated_bfloat16_warning("bfloat16", cpu, cpu_flags=f"flags: {flags}")
        assert (note is not None) == warned
    assert engine.emulated_bfloat16_warning("float32", cpu, cpu_flags="flags: avx2") is None
    assert engine.emulated_bfloat16_warning("bfloat16", torch.device("cuda"), cpu_flags="flags: avx2") is None
    monkeypatch.setattr(engine, "native_bfloat16", lambda device, cpu_flags=None: False)
    thick = np.random.default_rng(4).normal(40, 200, (6, 24, 24)).astype(np.float32)
    common = {"model": "ct", "device": "cpu", "modality": "ct", "calibrate": False}
    with pytest.warns(UserWarning, match="bfloat16 on a CPU without native bfloat16"):
        out = DPNSLCore.upsample(thick, 2, precision="bfloat16", **common)
    assert any(n.startswith("warning: precision bfloat16 on a CPU without native") for n in out.notes)
    quiet = DPNSLCore.upsample(thick, 2, precision="auto", **common)  # auto takes float32 here: nothing to warn
    assert not any("native bfloat16 (no" in n for n in quiet.notes)


def test_the_default_precision_is_auto_and_the_run_says_which_it_took():
    import DPNSLCore
    from DPNSLCore.inference.engine import native_bfloat16

    thick = np.random.default_rng(4).normal(40, 200, (6, 24, 24)).astype(np.float32)
    out = DPNSLCore.upsample(thick, 2, model="ct", device="cpu", modality="ct", calibrate=False)
    said = [n for n in out.notes if n.startswith("precision:")]
    expected = "bfloat16 (auto:" if native_bfloat16(torch.device("cpu")) else "float32 (auto:"
    assert len(said) == 1 and expected in said[0]


def test_a_column_runs_its_largest_windows_first(model):
    """Edge windows read their halo on one side only; run first, they left heap holes too small for the next window
    (a float32 512 x 512 x 300 CT at x4 peaked at 3.0-3.3 GB, 2.9 GB largest first). Every window still runs once,
    and the output does not depend on the order."""
    from DPNSLCore.inference.tiling import plan_z_windows

    volume = (np.random.default_rng(1).normal(size=(30, 20, 20)) * 300 - 400).astype(np.float32)
    messages = []
    upsample(volume, 3, model=model, device="cpu", calibrate=False, tiling={"z_window": 4},
             progress=lambda _, message: messages.append(message))
    reads = [tuple(int(v) for v in m.split("slices ")[1].split(" of")[0].split("-")) for m in messages
             if "slices" in m]
    windows = plan_z_windows(30, 88, 3.0, 4, model.estimator.z_receptive_radius)
    assert sorted(reads) == sorted((w.read_start, w.read_stop) for w in windows)
    sizes = [stop - start for start, stop in reads]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
