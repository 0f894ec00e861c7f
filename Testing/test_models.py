"""Tests of the DP-NSL network: configs, shapes, routing, gradients, MCP consistency, receptive field."""

from __future__ import annotations

import json

import pytest
import torch

from DPNSLCore.models import (
    DPNSL,
    PRESETS,
    ModelConfig,
    NullSpaceEstimator,
    build_model,
    count_parameters,
    preset,
)
from DPNSLCore.ops.operators import make_degradation

PAPER_PARAMETERS = 4.38e6


def tiny(name: str = "paper", **changes) -> ModelConfig:
    """A preset shrunk for fast tests (same structure, fewer channels and blocks)."""
    cfg = preset(name)
    if name == "paper":
        cfg = cfg.replace(features=8, blocks=1, mos_features=8, context_features=8)
    return cfg.replace(**changes)


def make_input(n_lr: int = 4, size: int = 8, batch: int = 1, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(batch, 1, n_lr, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def seeded_model(cfg: ModelConfig, seed: int = 0) -> DPNSL:
    """A fresh model whose zero-initialised last conv is randomised, so every part shapes the output."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    torch.nn.init.normal_(model.estimator.decoder.final.weight, std=0.2)
    return model


def test_fresh_model_starts_near_the_range_anchor() -> None:
    model = build_model(preset("lean")).eval()
    deg = make_degradation("sample", 2.5, n_lr=4)
    out = model(make_input(4, 12), deg)
    assert out["f"].abs().max() < 0.05  # intensities are ~[0, 1]
    assert (out["output"] - out["anchor"]).abs().max() < 0.05


ABLATIONS = {
    "trilinear": {"upsampler": "trilinear"},
    "mlp": {"decoder": "mlp"},
    "deg3": {"degrees": (3,)},
    "deg24": {"degrees": (2, 4)},
    "hard_gumbel": {"router": "hard_gumbel"},
    "no_anchor": {"anchor": "none"},
    "cubic_anchor": {"anchor": "cubic"},
    "linear_projection": {"projection": "linear"},
    "no_projection": {"projection": "none"},
    "no_mcp": {"use_mcp": False},
}


# ---- config -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_json_round_trip(name: str) -> None:
    cfg = preset(name)
    again = ModelConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json())["degrees"] == list(cfg.degrees)


def test_default_preset_is_lean() -> None:
    assert preset() == PRESETS["lean"]
    assert build_model(preset()).config.name == "lean"


def test_derived_sizes() -> None:
    cfg = preset("paper")
    assert cfg.n_experts == 3 and cfg.decoder_channels == 128
    assert cfg.replace(upsampler="trilinear").n_experts == 1


@pytest.mark.parametrize(("changes", "message"), [
    ({"degrees": ()}, "`degrees` must be a non-empty set"),
    ({"degrees": (3, 5)}, "`degrees` must be a non-empty set"),
    ({"degrees": (3, 3)}, "`degrees` must be a non-empty set"),
    ({"upsampler": "bicubic"}, "`upsampler` must be one of"),
    ({"decoder": "unet"}, "`decoder` must be one of"),
    ({"anchor": "spline"}, "`anchor` must be one of"),
    ({"projection": "zero"}, "`projection` must be one of"),
    ({"features": 0}, "`features` must be an integer >= 1"),
    ({"head_kernel": 5}, "`head_kernel` must be one of"),
    ({"decoder_branches": ("dw9",)}, "`decoder_branches item` must be one of"),
    ({"decoder_branch_fraction": 0.5}, "`decoder_branch_fraction`"),
])
def test_config_rejects_bad_values(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        preset("paper").replace(**changes)


def test_config_rejects_unknown_keys() -> None:
    data = preset("lean").to_dict() | {"colour": "blue"}
    with pytest.raises(ValueError, match=r"unknown model config keys \['colour'\]"):
        ModelConfig.from_dict(data)


def test_unknown_preset_is_named() -> None:
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        preset("huge")


def test_paper_parameter_count_within_5_percent() -> None:
    n = count_parameters(build_model(preset("paper")))
    assert abs(n - PAPER_PARAMETERS) / PAPER_PARAMETERS < 0.05, n


def test_count_parameters_counts_trainable_only() -> None:
    model = build_model(preset("lean"))
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == total
    model.estimator.encoder.requires_grad_(False)
    assert count_parameters(model) == total - sum(p.numel() for p in model.estimator.encoder.parameters())


# ---- shapes and routing -------------------------------------------------------------------------
CASES = {"paper": preset("paper"), "paper_tiny": tiny(), "lean": preset("lean")}
CASES |= {f"lean_{k}": preset("lean").replace(**v) for k, v in ABLATIONS.items()}
CASES |= {f"paper_{k}": tiny(**v) for k, v in ABLATIONS.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_shapes_and_routing(case: str) -> None:
    cfg = CASES[case]
    model = seeded_model(cfg).eval()
    deg = make_degradation("decimate", 3, n_lr=3)
    y = make_input(3, 6, batch=2)
    with torch.no_grad():
        out = model(y, deg)
    assert set(out) == {"output", "anchor", "f", "detail", "routing"}
    for key in ("output", "anchor", "f", "detail"):
        assert out[key].shape == (2, 1, 7, 6, 6), key
    routing = out["routing"]
    assert routing.shape == (2, cfg.n_experts, 7, 6, 6)
    assert routing.min() >= 0 and routing.max() <= 1
    torch.testing.assert_close(routing.sum(1), torch.ones(2, 7, 6, 6))
    assert torch.isfinite(out["output"]).all()


@pytest.mark.parametrize("cfg", [tiny(router="hard_gumbel"), preset("lean").replace(router="hard_gumbel")],
                         ids=["paper_tiny", "lean"])
def test_hard_gumbel_routing_is_one_hot(cfg: ModelConfig) -> None:
    model = seeded_model(cfg)
    deg = make_degradation("decimate", 2, n_lr=3)
    for train in (True, False):
        model.train(train)
        routing = model(make_input(3, 6), deg)["routing"]
        assert set(routing.unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(routing.sum(1), torch.ones_like(routing[:, 0]))


def test_lean_routing_interpolates_between_lr_slices() -> None:
    """lean: router on the LR grid, probabilities linearly interpolated along z (smooth routing maps)."""
    model = seeded_model(preset("lean")).eval()
    y = make_input(3, 6)
    positions = torch.tensor([0.0, 0.25, 0.5, 1.0])
    with torch.no_grad():
        _, routing = model.estimator(y, positions, 4.0)
    torch.testing.assert_close(routing[:, :, 1], 0.75 * routing[:, :, 0] + 0.25 * routing[:, :, 3])
    torch.testing.assert_close(routing[:, :, 2], 0.5 * routing[:, :, 0] + 0.5 * routing[:, :, 3])


# ---- equivalent evaluation paths ----------------------------------------------------------------
@pytest.mark.parametrize("degrees", [(2, 3, 4), (3,)])
def test_separable_path_equals_full_outer_product(degrees) -> None:
    model = seeded_model(preset("lean").replace(degrees=degrees)).double()
    est = model.estimator
    y = make_input(5, 7, batch=2, dtype=torch.float64)
    positions = torch.arange(0, 11, dtype=torch.float64) / 2.5  # non-integer scale
    fast, r_fast = est(y, positions, 2.5)
    est.upsampler.separable = False
    full, r_full = est(y, positions, 2.5)
    torch.testing.assert_close(fast, full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r_fast, r_full, rtol=0, atol=0)


@pytest.mark.parametrize("cfg", [preset("lean"), tiny()], ids=["lean", "paper_tiny"])
def test_banded_inference_equals_single_pass(cfg: ModelConfig) -> None:
    est = seeded_model(cfg).double().estimator.eval()
    y = make_input(4, 11, dtype=torch.float64)
    positions = torch.arange(10, dtype=torch.float64) / 3
    f_grad, r_grad = est(y, positions, 3.0)  # autograd on: one band
    est.band_voxels = 1  # one row per band
    with torch.no_grad():
        f_band, r_band = est(y, positions, 3.0)
    torch.testing.assert_close(f_band, f_grad.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r_band, r_grad.detach(), rtol=1e-12, atol=1e-12)


def test_banded_inference_with_a_bfloat16_encoder_converts_each_band_to_the_same_values() -> None:
    """The no-grad bands take the encoder's bfloat16 features and convert band by band (no whole-window float32
    copy): the result is the single pass's, which converts the whole map at once, to float32 round-off."""
    est = seeded_model(preset("lean")).estimator.eval()
    y = make_input(5, 14)
    positions = torch.arange(12, dtype=torch.float64) / 3
    f_one, r_one = est(y, positions, 3.0, encoder_dtype=torch.bfloat16)  # autograd on: one band
    est.band_voxels = 1
    with torch.no_grad():
        f_band, r_band = est(y, positions, 3.0, encoder_dtype=torch.bfloat16)
        f_fp32, _ = est(y, positions, 3.0)
    torch.testing.assert_close(f_band, f_one.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r_band, r_one.detach(), rtol=1e-5, atol=1e-6)
    assert f_band.dtype == torch.float32 and (f_band - f_fp32).abs().max() > 1e-6  # bfloat16 did run


@pytest.mark.parametrize("grad", [False, True], ids=["bands", "one_pass"])
def test_routing_not_asked_for_is_none_and_f_is_unchanged(grad: bool) -> None:
    est = seeded_model(preset("lean")).estimator.eval()
    y = make_input(4, 12)
    positions = torch.arange(10, dtype=torch.float64) / 3
    with torch.set_grad_enabled(grad):
        f, routing = est(y, positions, 3.0)
        f_alone, none = est(y, positions, 3.0, routing=False)
    assert routing is not None and none is None
    torch.testing.assert_close(f_alone, f, rtol=0, atol=0)


@pytest.mark.parametrize("cfg", [preset("lean"), tiny()], ids=["lean", "paper_tiny"])
def test_float32_fast_path_matches_float64(cfg: ModelConfig) -> None:
    """float32 on CPU runs the oneDNN convs and in-place inference kernels; float64 runs the reference ones."""
    model = seeded_model(cfg).eval()
    y = make_input(4, 9, batch=2)
    positions = torch.arange(10, dtype=torch.float64) / 3
    with torch.no_grad():
        f32, r32 = model.estimator(y, positions, 3.0)
        f64, r64 = model.double().estimator(y.double(), positions, 3.0)
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), f64, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(r32.double(), r64, rtol=1e-4, atol=1e-5)


# ---- gradients ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [preset("lean"), tiny(), preset("lean").replace(upsampler="trilinear"),
                                 tiny(decoder="mlp", degrees=(2,))], ids=["lean", "paper_tiny", "trilinear", "mlp"])
def test_gradients_reach_every_parameter(cfg: ModelConfig) -> None:
    model = seeded_model(cfg).train()
    deg = make_degradation("decimate", 2, n_lr=3)
    y = make_input(3, 6, batch=2)
    out = model(y, deg)
    target = torch.rand_like(out["output"])
    (out["output"] - target).abs().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().max() > 0, name


@pytest.mark.parametrize("degrees", [(2, 3, 4), (3,)])
def test_separable_gradients_equal_the_full_outer_products(degrees) -> None:
    """The separable mixing has its own backward (run by run): every parameter's and the input's gradient must be
    autograd's through the full path, at a non-integer scale where runs have different lengths."""
    grads = []
    for separable in (True, False):
        model = seeded_model(preset("lean").replace(degrees=degrees)).double().train()
        model.estimator.upsampler.separable = separable
        y = make_input(5, 7, batch=2, dtype=torch.float64).requires_grad_()
        positions = torch.arange(0, 11, dtype=torch.float64) / 2.5
        f, routing = model.estimator(y, positions, 2.5)
        weights = torch.rand(f.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        ((f * weights).sum() + (routing * weights).sum()).backward()
        grads.append([y.grad] + [p.grad for _, p in sorted(model.named_parameters())])
    for fast, full in zip(*grads, strict=True):
        torch.testing.assert_close(fast, full, rtol=1e-10, atol=1e-12)


def test_separable_mixing_passes_gradcheck() -> None:
    from DPNSLCore.models.mos import _SeparableMix
    from DPNSLCore.models.zgrid import runs

    g = torch.Generator().manual_seed(0)
    experts, index = 2, torch.tensor([0, 0, 1, 1, 1, 3])  # a cell (2) without HR slices

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    inputs = (rand(2, experts, 6, 3, 2), *(rand(2, 2, 6, 3, 2) for _ in range(experts)),
              *(rand(2, 2, 3, 4, 3, 2) for _ in range(experts)), *(rand(1, 3, 1, 1, 1) for _ in range(experts)))
    assert torch.autograd.gradcheck(lambda p, *t: _SeparableMix.apply(runs(index), p, experts, *t), inputs)


@pytest.mark.parametrize("needs", ["all", "weights only"])
def test_depthwise_conv_gradients_equal_conv3d(needs: str) -> None:
    """fast_conv3d's depthwise backward (the input gradient as a flipped-kernel conv) against conv3d's autograd."""
    from torch.nn import functional as tf

    from DPNSLCore.models.encoder import fast_conv3d

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 5, 9, 8, generator=g).contiguous(memory_format=torch.channels_last_3d)
    weight, bias = torch.randn(4, 1, 3, 3, 5, generator=g), torch.randn(4, generator=g)
    grad = torch.randn(2, 4, 5, 9, 8, generator=g)
    results = []
    for conv in (lambda a, w, b: fast_conv3d(a, w, b, (1, 1, 2), 4),
                 lambda a, w, b: tf.conv3d(a, w, b, padding=(1, 1, 2), groups=4)):
        leaves = [t.clone().requires_grad_(needs == "all" or t is not x) for t in (x, weight, bias)]
        out = conv(*leaves)
        out.backward(grad)
        results.append([out.detach()] + [t.grad for t in leaves])
    for fast, ref in zip(*results, strict=True):
        if ref is None:
            assert fast is None
        else:
            torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


# ---- measurement consistency --------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 3, 4, 7])
def test_decimate_output_is_exactly_consistent(scale: int) -> None:
    model = seeded_model(preset("lean")).eval()
    deg = make_degradation("decimate", scale, n_lr=3)
    y = make_input(3, 5, batch=2, seed=scale)
    with torch.no_grad():
        out = model(y, deg)
    assert torch.equal(deg.forward(out["output"]), y)
    assert torch.equal(out["output"], out["anchor"] + out["detail"])


@pytest.mark.parametrize("kind", ["sample", "profile"])
def test_non_integer_scale_output_is_consistent(kind: str) -> None:
    model = seeded_model(preset("lean")).eval()
    deg = make_degradation(kind, 2.5, n_lr=4)
    y = make_input(4, 5, seed=3)
    with torch.no_grad():
        out = model(y, deg)
    err = (deg.forward(out["output"]) - y).abs().max()
    assert err <= 1e-5 * y.abs().max()
    assert out["output"].shape[-3] == deg.n_hr


def test_without_mcp_output_is_anchor_plus_f() -> None:
    deg = make_degradation("decimate", 2, n_lr=3)
    y = make_input(3, 5)
    with torch.no_grad():
        out = seeded_model(preset("lean").replace(use_mcp=False)).eval()(y, deg)
        torch.testing.assert_close(out["output"], deg.anchor(y) + out["f"])
        plain = seeded_model(preset("lean").replace(use_mcp=False, anchor="none")).eval()(y, deg)
        torch.testing.assert_close(plain["output"], plain["f"])


# ---- receptive field ----------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [preset("lean"), tiny(), preset("lean").replace(decoder="mlp")],
                         ids=["lean", "paper_tiny", "lean_mlp"])
def test_receptive_radius_is_a_true_in_plane_bound(cfg: ModelConfig) -> None:
    est = seeded_model(cfg).double().estimator.eval()
    r = est.receptive_radius
    size = 2 * r + 5
    c = size // 2
    y = make_input(3, size, dtype=torch.float64)
    perturbed = y + torch.randn_like(y)
    keep = slice(c - r, c + r + 1)
    perturbed[..., keep, keep] = y[..., keep, keep]
    positions = torch.arange(7, dtype=torch.float64) / 3
    with torch.no_grad():
        f0, r0 = est(y, positions, 3.0)
        f1, r1 = est(perturbed, positions, 3.0)
    assert torch.equal(f0[..., c, c], f1[..., c, c])
    assert torch.equal(r0[..., c, c], r1[..., c, c])
    assert not torch.equal(f0, f1)  # the perturbation does reach voxels near it


@pytest.mark.parametrize("cfg", [preset("lean"), tiny()], ids=["lean", "paper_tiny"])
def test_z_receptive_radius_is_a_true_bound(cfg: ModelConfig) -> None:
    est = seeded_model(cfg).double().estimator.eval()
    rz = est.z_receptive_radius
    n_lr = 2 * rz + 3
    y = make_input(n_lr, 4, dtype=torch.float64)
    centre = n_lr // 2
    perturbed = y.clone()
    perturbed[:, :, centre + rz + 1:] += 1.0
    perturbed[:, :, : centre - rz] -= 1.0
    positions = torch.tensor([centre - 0.5, centre, centre + 0.5], dtype=torch.float64)
    with torch.no_grad():
        f0, _ = est(y, positions, 2.0)
        f1, _ = est(perturbed, positions, 2.0)
    assert torch.equal(f0[:, :, 1], f1[:, :, 1])


# ---- input validation ---------------------------------------------------------------------------
def test_estimator_rejects_bad_inputs() -> None:
    est = NullSpaceEstimator(preset("lean"))
    positions = torch.arange(5) / 2
    with pytest.raises(ValueError, match=r"`y` must have shape \(B, 1, n_lr, Y, X\)"):
        est(torch.rand(3, 6, 6), positions, 2.0)
    with pytest.raises(ValueError, match="`scale` must be a finite number > 1"):
        est(make_input(3, 6), positions, 1.0)
    with pytest.raises(ValueError, match="`hr_positions` must be a non-empty 1-D tensor"):
        est(make_input(3, 6), positions[None], 2.0)
    with pytest.raises(ValueError, match="`hr_positions` must be finite"):
        est(make_input(3, 6), torch.tensor([0.0, float("nan")]), 2.0)


def test_dpnsl_rejects_window_that_does_not_match_degradation() -> None:
    model = build_model(preset("lean"))
    with pytest.raises(ValueError, match=r"`y` must have shape \(B, 1, 4, Y, X\)"):
        model(make_input(3, 6), make_degradation("decimate", 2, n_lr=4))


def test_dpnsl_rejects_non_config() -> None:
    with pytest.raises(TypeError, match="`config` must be a ModelConfig"):
        DPNSL({"name": "lean"})


def test_input_standardisation_is_an_exact_change_of_units() -> None:
    plain = seeded_model(preset("lean"))
    standardised = build_model(preset("lean").replace(input_shift=0.25, input_scale=8.0))
    standardised.load_state_dict(plain.state_dict())
    y, positions = make_input(4, 10), torch.arange(10, dtype=torch.float64) / 3
    with torch.no_grad():
        f_std, r_std = standardised.estimator(y, positions, 3.0)
        f_plain, r_plain = plain.estimator((y - 0.25) * 8.0, positions, 3.0)
    torch.testing.assert_close(f_std, f_plain / 8.0)
    torch.testing.assert_close(r_std, r_plain)


class _Probe(torch.nn.Module):
    """Records, when it runs, whether the map it watches is still alive."""

    def __init__(self) -> None:
        super().__init__()
        self.watched, self.alive = None, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.alive = self.watched() is not None
        return x * 2


class _Watch(torch.nn.Module):
    def __init__(self, probe: _Probe) -> None:
        super().__init__()
        self.probe = probe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import weakref

        out = x + 1
        self.probe.watched = weakref.ref(out)
        return out


def test_run_flat_frees_each_map_before_the_next_but_one_and_computes_the_same():
    """A nested Sequential keeps its input alive until it returns; run_flat (the encoder's blocks) does not: one
    feature map fewer at the encoder's peak, the same operations in the same order."""
    from DPNSLCore.models.encoder import Encoder, run_flat

    probe = _Probe()
    layers = torch.nn.Sequential(_Watch(probe), torch.nn.Sequential(torch.nn.ReLU(), probe))
    x = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.equal(layers(x), run_flat(layers, x))
        layers(x)
        assert probe.alive  # the nested call held the watched map
        run_flat(layers, x)
        assert not probe.alive
    for kind in ("factorised", "full"):
        torch.manual_seed(0)
        enc = Encoder(8, 2, kind).eval()
        y = torch.rand(1, 1, 5, 12, 12)
        with torch.no_grad():
            h = enc.head(y - 0.5)
            for block in enc.body:
                h_in = h
                h = block.body(h_in) + h_in
            reference = enc.tail(h) + enc.head(y - 0.5)
            assert torch.equal(enc(y), reference)
