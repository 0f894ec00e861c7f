"""Model specification: one JSON-serialisable dataclass from which the whole network is built.

A checkpoint stores this spec next to the weights, so a model rebuilds itself from the file. Only free
choices are fields; derived sizes (number of experts, decoder width, receptive field) are properties.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

CONV_KINDS = ("full", "factorised")
UPSAMPLERS = ("mos", "trilinear")
HEAD_RESOLUTIONS = ("hr", "lr")
ROUTERS = ("soft", "hard_gumbel")
DECODERS = ("lscd", "mlp")
DECODER_BRANCHES = ("conv3", "dw3", "dw5", "dw7")
ANCHORS = ("linear", "cubic", "none")
PROJECTIONS = ("pinv", "spline", "linear", "none")
SPLINE_DEGREES = (2, 3, 4)
MODALITIES = ("ct", "mr", None)


@dataclass(frozen=True)
class ModelConfig:
    """Spec of the DP-NSL network f (encoder -> Mixture-of-Splines -> decoder) and its MCP wrapper.

    Presets (`PRESETS`, `preset(name)`):

    - ``paper``: the published configuration (DESIGN.md section 3): 64 features, 16 EDSR blocks with
      3x3x3 convs, experts of degree (2, 3, 4) with M = 3, coefficient/knot heads, offset net and router
      as 3x3x3 convs, router and offset net at HR resolution, LSCD 64 -> 128 with 2 blocks.
      The unpublished details were chosen to land on the published 4.38 M parameters: a shared
      3x3x3 64 -> 64 conv + ReLU in front of the per-expert coefficient/knot heads (``head_layers=2``),
      a 3-conv offset net (``offset_layers=3``) and the 2-conv router of the paper; per-axis
      dilations (3*M per expert) from the cell vector (1/s, 1, 1). Total 4,377,016 parameters (-0.07 %).
    - ``lean`` (default): designed for 2 CPU cores. Everything but a tiny decoder runs on the LR grid:
      encoder of 16 features with 3 factorised residual blocks (1x3x3 then 3x1x1 convs; 16 channels is
      oneDNN's sweet spot, 24 or 32 are 3-5x slower per conv), pointwise LR heads (coefficients, knots,
      offsets, router logits), experts (2, 3, 4) with M = 2, an exact separable spline evaluation to 8 HR
      channels (mos.py), and an HR decoder of one depthwise 3x3x3 conv on half the channels, GELU and a
      pointwise conv. 23,527 parameters.
      Measured on this project's 2-core AMD EPYC (Zen 4) VM, torch 2.13, inference_mode, 2 threads, best
      of 10 interleaved runs. Forward of one window, input (1, 1, 8, 192, 192) at x4 (29 x 192 x 192 =
      1.07 M output voxels); whole volume = ``upsample`` of a (24, 384, 384) volume at x4 (93 x 384 x 384 =
      13.7 M voxels, default tiling: 8-slice windows overlapping by 2, 256-voxel tiles):

      ===========================================  ======  ============  ===================  ==========
      candidate (features 16, factorised convs)    params  window ms     window M voxels/s    whole vol.
      ===========================================  ======  ============  ===================  ==========
      A: 2 blocks, M = 3                            18,924  303 (197*)    3.5 (5.4*)           2.9 (3.8*)
      B: 3 blocks, M = 2  <- lean                   23,527  270 (177*)    4.0 (6.0*)           3.1 (4.1*)
      C: 4 blocks, M = 2                            29,735  315 (208*)    3.4 (5.1*)           2.7 (3.4*)
      D: 3 blocks, M = 3                            25,132  344 (217*)    3.1 (4.9*)           --
      ===========================================  ======  ============  ===================  ==========

      Whole volume in M output voxels/s. (*) with glibc's allocator told to keep freed memory
      (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ large): on this VM page faults on fresh large
      allocations cost ~35 % of the time. The box is shared, so timings vary by +-15 %. Extra peak
      memory of one window forward: ~180 MB. M = 2 per axis is enough along z (at most s values of
      the in-cell position) and the in-plane bases only modulate per-voxel coefficients; the compute
      saved went into a third encoder block. C is the choice if training shows the model capacity-bound.
      The paper preset is GPU-sized (64-channel 3x3x3 convs at HR resolution) and not timed on CPU.
    - ``mid`` and ``large``: lean scaled up for the preset study of the generalisation issue (quality per second,
      README): mid = 7 blocks, 16 HR channels, 2 decoder blocks (49,319 parameters, ~2x lean's window time);
      large = 32 features, 6 blocks, 16 HR channels, 2 decoder blocks (164,551 parameters, ~4x).

    Ablation switches: ``upsampler`` ("mos" | "trilinear"), ``decoder`` ("lscd" | "mlp"), ``degrees``
    (any non-empty subset of {2, 3, 4}), ``anchor`` ("linear" | "none"), ``projection``
    ("pinv" | "spline" | "linear" | "none") and ``use_mcp`` (False: output = anchor + f, or f with anchor "none").
    """

    name: str = "custom"
    # what the model was trained on: "ct" (HU, fixed window) or "mr" (each volume's own range); None = unknown.
    # It sets the intensity rule at inference, so it lives here and travels with the weights.
    modality: str | None = None
    # the acquisition it was trained for: {"kind": "decimate"}, {"kind": "profile", "profile": "box",
    # "thickness": 1.0} (thickness in acquired spacings, or [low, high]) or {"kind": "mix", ...} (decimate and
    # profile batches); None = not recorded (the paper's decimate). upsample's degradation="auto" uses a slice
    # profile for a model trained on profiles ("profile" or "mix").
    acquisition: dict | None = None
    # input standardisation (set from the training data): the estimator sees (y - input_shift) * input_scale
    # and its output is divided by input_scale, so f stays in normalised-intensity units. Normalised CT has a
    # tissue contrast of ~0.01, far too small for a freshly initialised network to see.
    input_shift: float = 0.0
    input_scale: float = 1.0
    # encoder (3D EDSR on the LR window)
    features: int = 64  # encoder width C
    blocks: int = 16  # residual blocks
    conv: str = "full"  # "full" 3x3x3 or "factorised" 1x3x3 + 3x1x1 convs
    # Mixture-of-Splines upsampler
    upsampler: str = "mos"  # "mos" or "trilinear" (ablation)
    degrees: tuple[int, ...] = (2, 3, 4)  # one expert per B-spline degree
    n_basis: int = 3  # M: basis functions per axis (M^3 coefficients, 3M knots per LR voxel)
    mos_features: int = 64  # channels of the upsampled HR features
    head_resolution: str = "hr"  # where offset net and router run: "hr" (paper) or "lr" (separable, fast)
    head_kernel: int = 3  # kernel (1 or 3) of all coefficient/knot/offset/router convs
    head_layers: int = 1  # convs before each expert's coefficients/knots (the first head_layers-1 shared)
    offset_layers: int = 2  # convs of the offset net
    router_layers: int = 2  # convs of the router
    context_features: int = 64  # hidden width of the offset net and router
    router: str = "soft"  # "soft" (softmax) or "hard_gumbel"
    # decoder
    decoder: str = "lscd"  # "lscd" or "mlp" (pointwise, ablation)
    decoder_expand: int = 2  # first pointwise conv: mos_features -> expand * mos_features
    decoder_blocks: int = 2  # LSCD blocks
    decoder_branches: tuple[str, ...] = ("conv3", "dw3", "dw5", "dw7")  # non-identity LSCD branches
    decoder_branch_fraction: float = 0.2  # share of the channels per branch; identity takes the rest
    decoder_final_kernel: int = 3  # kernel (1 or 3) of the last conv to 1 channel
    # measurement-consistent projection
    use_mcp: bool = True  # False: output = anchor + f (ablation)
    anchor: str = "linear"  # "linear" or "none"
    # "pinv" (P = A+, zero-pad for decimate: the paper), "spline" (P = the anchor B: no seam at acquired slices),
    # "linear" or "none"
    projection: str = "pinv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "degrees", tuple(self.degrees))
        object.__setattr__(self, "decoder_branches", tuple(self.decoder_branches))
        _validate(self)

    # ---- derived sizes -------------------------------------------------------------------------
    @property
    def n_experts(self) -> int:
        """Number of spline experts (one per degree); 1 pseudo-expert for the trilinear upsampler."""
        return len(self.degrees) if self.upsampler == "mos" else 1

    @property
    def decoder_channels(self) -> int:
        """Width of the decoder after its first pointwise expansion."""
        return self.mos_features * self.decoder_expand

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        """Stable JSON text (sorted keys) of the config."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict; unknown keys raise ValueError naming them (e.g. a newer file format)."""
        if not isinstance(data, dict):
            raise ValueError(f"model config must be a JSON object, got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys are {sorted(known)}. "
                             "The file may come from a newer DPNSL version.")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Inverse of `to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model config is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ModelConfig:
        """Copy with some fields changed (validated), e.g. ``preset('lean').replace(upsampler='trilinear')``."""
        return dataclasses.replace(self, **changes)


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")


_ACQUISITION_KEYS = {"decimate": {"kind"}, "sample": {"kind"}, "profile": {"kind", "profile", "thickness"},
                     "mix": {"kind", "profile", "thickness", "decimate_share"}}


def _check_acquisition(acquisition: Any) -> None:
    if acquisition is None:
        return
    if not isinstance(acquisition, dict) or acquisition.get("kind") not in _ACQUISITION_KEYS:
        raise ValueError(f"`acquisition` must be None or a dict with kind 'decimate', 'sample', 'profile' or 'mix', "
                         f"got {acquisition!r}.")
    allowed = _ACQUISITION_KEYS[acquisition["kind"]]
    if set(acquisition) - allowed:
        raise ValueError(f"`acquisition` of kind {acquisition['kind']!r} takes the keys {sorted(allowed)}, got "
                         f"{sorted(acquisition)}.")
    thickness = acquisition.get("thickness", 1.0)
    values = thickness if isinstance(thickness, (list, tuple)) else [thickness]
    if not (1 <= len(values) <= 2 and all(isinstance(v, (int, float)) and 0 < v <= 10 for v in values)):
        raise ValueError(f"`acquisition` thickness must be a number or [low, high] in (0, 10] spacings, got "
                         f"{thickness!r}.")


def _validate(cfg: ModelConfig) -> None:
    if not (isinstance(cfg.input_scale, (int, float)) and 0 < cfg.input_scale < 1e6):
        raise ValueError(f"`input_scale` must be a positive number, got {cfg.input_scale!r}.")
    for name in ("features", "n_basis", "mos_features", "context_features", "decoder_expand",
                 "head_layers", "offset_layers", "router_layers"):
        _positive_int(name, getattr(cfg, name))
    for name in ("blocks", "decoder_blocks"):
        _positive_int(name, getattr(cfg, name), minimum=0)
    _choice("modality", cfg.modality, MODALITIES)
    _check_acquisition(cfg.acquisition)
    for name, allowed in (("conv", CONV_KINDS), ("upsampler", UPSAMPLERS),
                          ("head_resolution", HEAD_RESOLUTIONS), ("router", ROUTERS),
                          ("decoder", DECODERS), ("anchor", ANCHORS), ("projection", PROJECTIONS)):
        _choice(name, getattr(cfg, name), allowed)
    if cfg.projection == "spline" and cfg.anchor == "none":
        raise ValueError("`projection` 'spline' projects with the anchor B, so it needs anchor 'linear' or 'cubic', "
                         "not 'none'.")
    for name in ("head_kernel", "decoder_final_kernel"):
        _choice(name, getattr(cfg, name), (1, 3))
    if not cfg.degrees or len(set(cfg.degrees)) != len(cfg.degrees) or \
            any(d not in SPLINE_DEGREES for d in cfg.degrees):
        raise ValueError(f"`degrees` must be a non-empty set of distinct values from {SPLINE_DEGREES}, "
                         f"got {cfg.degrees!r}; e.g. (2, 3, 4) or (3,).")
    for branch in cfg.decoder_branches:
        _choice("decoder_branches item", branch, DECODER_BRANCHES)
    n_branches = len(cfg.decoder_branches)
    if not 0 < cfg.decoder_branch_fraction * n_branches <= 1:
        raise ValueError(f"`decoder_branch_fraction` * number of branches must lie in (0, 1], got "
                         f"{cfg.decoder_branch_fraction} * {n_branches}.")


PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(
        name="paper", features=64, blocks=16, conv="full", degrees=(2, 3, 4), n_basis=3, mos_features=64,
        head_resolution="hr", head_kernel=3, head_layers=2, offset_layers=3, router_layers=2,
        context_features=64, decoder="lscd", decoder_expand=2, decoder_blocks=2,
        decoder_branches=("conv3", "dw3", "dw5", "dw7"), decoder_branch_fraction=0.2, decoder_final_kernel=3,
    ),
    "lean": ModelConfig(
        name="lean", features=16, blocks=3, conv="factorised", degrees=(2, 3, 4), n_basis=2, mos_features=8,
        head_resolution="lr", head_kernel=1, head_layers=1, offset_layers=1, router_layers=1,
        context_features=16, decoder="lscd", decoder_expand=1, decoder_blocks=1, decoder_branches=("dw3",),
        decoder_branch_fraction=0.5, decoder_final_kernel=1,
    ),
    # the preset study (issue 10, commit 65e73f2): lean scaled to about 2x and 4x its compute
    "mid": ModelConfig(
        name="mid", features=16, blocks=7, conv="factorised", degrees=(2, 3, 4), n_basis=2, mos_features=16,
        head_resolution="lr", head_kernel=1, head_layers=1, offset_layers=1, router_layers=1,
        context_features=16, decoder="lscd", decoder_expand=1, decoder_blocks=2, decoder_branches=("dw3",),
        decoder_branch_fraction=0.5, decoder_final_kernel=1,
    ),
    "large": ModelConfig(
        name="large", features=32, blocks=6, conv="factorised", degrees=(2, 3, 4), n_basis=2, mos_features=16,
        head_resolution="lr", head_kernel=1, head_layers=1, offset_layers=1, router_layers=1,
        context_features=32, decoder="lscd", decoder_expand=1, decoder_blocks=2, decoder_branches=("dw3",),
        decoder_branch_fraction=0.5, decoder_final_kernel=1,
    ),
}
DEFAULT_PRESET = "lean"


def preset(name: str = DEFAULT_PRESET) -> ModelConfig:
    """The named preset config ("paper", "lean", ...)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; available presets: {sorted(PRESETS)}.")
    return PRESETS[name]
