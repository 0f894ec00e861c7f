"""The DP-NSL network: null-space estimator f (encoder -> upsampler -> decoder) and the MCP wrapper."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor, nn

from ..ops.destripe import DestripeOptions, remove_phase_locked
from ..ops.operators import Degradation, null_space_detail
from .config import ModelConfig
from .decoder import Decoder
from .encoder import Encoder
from .mos import MixtureOfSplines, TrilinearUpsampler


class NullSpaceEstimator(nn.Module):
    """f: LR window -> HR estimate, by a 3D EDSR encoder, a Mixture-of-Splines upsampler and a decoder.

    Args:
        config: the model spec.

    Example:
        >>> net = NullSpaceEstimator(preset("lean"))
        >>> f, routing = net(torch.rand(1, 1, 4, 32, 32), torch.arange(13) / 4, 4.0)
        >>> f.shape, routing.shape
        (torch.Size([1, 1, 13, 32, 32]), torch.Size([1, 3, 13, 32, 32]))
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.encoder = Encoder(config.features, config.blocks, config.conv)
        self.upsampler = MixtureOfSplines(config) if config.upsampler == "mos" else TrilinearUpsampler(config)
        self.decoder = Decoder(config)
        self.input_shift, self.input_scale = float(config.input_shift), float(config.input_scale)
        #: HR voxels per band of rows in no-grad forward passes (tune for cache size; any value is exact)
        self.band_voxels = 1 << 18

    @property
    def receptive_radius(self) -> int:
        """In-plane radius (voxels) beyond which input cannot change an output voxel: a safe tiling halo."""
        return self.encoder.radius + self.upsampler.radius + self.decoder.radius

    @property
    def z_receptive_radius(self) -> int:
        """Radius along z in LR slices (safe bound for any scale > 1) of an HR slice's dependence."""
        return self.encoder.radius + self.upsampler.z_radius + self.decoder.radius

    @property
    def hr_z_margin(self) -> int:
        """HR slices on each side of a wanted HR slice that its value depends on (HR-resolution convs)."""
        upsampler = self.upsampler.radius if getattr(self.upsampler, "head_resolution", "lr") == "hr" else 0
        return upsampler + self.decoder.radius

    def forward(self, y: Tensor, hr_positions: Tensor, scale: float, *,
                encoder_dtype: torch.dtype | None = None, routing: bool = True) -> tuple[Tensor, Tensor | None]:
        """Estimate f on the HR slices of an LR window.

        Args:
            y: (B, 1, n_lr, Y, X) normalised LR window (intensities ~ [0, 1]).
            hr_positions: (n_hr,) positions of the wanted HR slices in LR-slice units relative to the
                window's first slice (k / s for `decimate`; any real values, e.g. non-integer s).
            scale: slice-spacing ratio s > 1 (sets the cell size 1/s of the splines).
            encoder_dtype: None (default: the input's dtype), or e.g. bfloat16 for the encoder's convolutions (the
                upsampler and the decoder stay in the input's dtype).
            routing: False: routing is not kept (None), in no-grad passes its whole-window maps are never
                allocated (f is the same).

        Returns:
            f (B, 1, n_hr, Y, X) and routing (B, E, n_hr, Y, X): router weights in [0, 1] that sum to 1
            over the E experts (E = 1, all ones, for the trilinear upsampler); None with ``routing=False``.

        Raises:
            ValueError: wrong shapes, non-finite positions, or scale <= 1.
        """
        if y.ndim != 5 or y.shape[1] != 1:
            raise ValueError(f"`y` must have shape (B, 1, n_lr, Y, X), got {tuple(y.shape)}; "
                             "add batch and channel axes with y[None, None].")
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) \
                or scale <= 1:
            raise ValueError(f"`scale` must be a finite number > 1, got {scale!r}.")
        # channels-last-3d: the oneDNN CPU convs are 2-4x faster in it (and cuDNN supports it)
        y = (y - self.input_shift) * self.input_scale
        dtype = y.dtype
        feat = self.encoder(y.to(encoder_dtype or dtype).contiguous(memory_format=torch.channels_last_3d))
        if torch.is_grad_enabled():  # training: one band, simplest graph
            hr, probs = self.upsampler(feat.to(dtype), hr_positions, float(scale), post=self.decoder.expand)
            return self.decoder(hr, expanded=True) / self.input_scale, probs if routing else None
        # the features stay in the encoder's dtype and each band is converted on its own (the same values): no
        # whole-window float32 copy beside them
        feat, hr_positions = self._crop_z(feat, hr_positions)
        f, probs = self._banded(feat, hr_positions, float(scale), dtype, routing)
        return f / self.input_scale, probs

    def _crop_z(self, feat: Tensor, hr_positions: Tensor) -> tuple[Tensor, Tensor]:
        """Drop LR feature slices farther than the upsampler's z radius from every wanted HR position (exact:
        they cannot reach the output), so the LR heads skip the context slices a tiled caller reads."""
        positions = torch.as_tensor(hr_positions, dtype=torch.float64)
        reach = self.upsampler.z_radius + 1
        lo = max(0, int(math.floor(float(positions.min()))) - reach)
        hi = min(feat.shape[-3], int(math.ceil(float(positions.max()))) + reach + 1)
        if lo == 0 and hi == feat.shape[-3]:
            return feat, hr_positions
        return feat[:, :, lo:hi], positions - lo

    def _banded(self, feat: Tensor, hr_positions: Tensor, scale: float, dtype: torch.dtype,
                keep_routing: bool) -> tuple[Tensor, Tensor | None]:
        """Upsampler + decoder over bands of rows (with an exact halo) in ``dtype``: small, cache-friendly tensors;
        the routing maps only when ``keep_routing``."""
        b, _, _, height, width = feat.shape
        n_hr = len(hr_positions)
        rows = max(1, self.band_voxels // (n_hr * width))
        halo = self.upsampler.radius + self.decoder.radius
        f = routing = None
        for start in range(0, height, rows):
            stop = min(start + rows, height)
            lo, hi = max(start - halo, 0), min(stop + halo, height)
            band = feat[..., lo:hi, :].to(dtype).contiguous(memory_format=torch.channels_last_3d)
            hr, r = self.upsampler(band, hr_positions, scale, post=self.decoder.expand)
            fb = self.decoder(hr, expanded=True)
            if f is None:
                f = fb.new_empty(b, 1, n_hr, height, width)
                routing = r.new_empty(b, r.shape[1], n_hr, height, width) if keep_routing else None
            f[..., start:stop, :] = fb[..., start - lo:stop - lo, :]
            if routing is not None:
                routing[..., start:stop, :] = r[..., start - lo:stop - lo, :]
        return f, routing


class DPNSL(nn.Module):
    """DP-NSL: x = B y + (I - P A) f(y), the model users load (config + estimator).

    Args:
        config: the model spec (kept as ``self.config`` and stored in checkpoints).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"`config` must be a ModelConfig, got {type(config).__name__}; "
                            "use models.preset('lean') or ModelConfig.from_json(text).")
        self.config = config
        self.estimator = NullSpaceEstimator(config)

    def forward(self, y: Tensor, degradation: Degradation) -> dict[str, Tensor]:
        """Upsample an LR window with measurement-consistent projection.

        Args:
            y: (B, 1, n_lr, Y, X) normalised LR window, n_lr == degradation.n_lr.
            degradation: the acquisition operator of this window.

        Returns:
            dict with "output", "anchor", "f", "detail" (each (B, 1, n_hr, Y, X)) and "routing"
            (B, E, n_hr, Y, X). With MCP on: output = anchor + detail, detail = (I - P A) f and
            A(output) == y; with ``use_mcp=False``: output = anchor + f (f with anchor "none").
        """
        if y.ndim != 5 or y.shape[-3] != degradation.n_lr:
            raise ValueError(f"`y` must have shape (B, 1, {degradation.n_lr}, Y, X) to match the degradation, "
                             f"got {tuple(y.shape)}.")
        positions = torch.as_tensor(degradation.hr_positions, dtype=torch.float64)
        f, routing = self.estimator(y, positions, float(degradation.scale))
        output, anchor, detail = self.assemble(y, f, degradation)
        return {"output": output, "anchor": anchor, "f": f, "detail": detail, "routing": routing}

    def assemble(self, y: Tensor, f: Tensor, degradation: Degradation, *, f_scale: float = 1.0,
                 f_offset: float = 0.0, destripe: DestripeOptions | None = None,
                 detail_gain: float = 1.0,
                 clock: Callable[[str], AbstractContextManager] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """x = B y + (I - P A) f: the model's anchor and projection (its config) around a network output.

        Args:
            y: (..., n_lr, Y, X) observed slices, in any intensity units.
            f: (..., n_hr, Y, X) network output in normalised units.
            degradation: the acquisition operator A.
            f_scale, f_offset: the intensity map of ``y`` (units per normalised unit, and the intensity of
                normalised 0), so the detail is added in ``y``'s units and A x = y holds there exactly.
            destripe: also remove the detail's part locked to the slice phase, through the same projection
                (:func:`DPNSLCore.ops.destripe.remove_phase_locked`; f of shape (n_hr, Y, X)); None: off.
            detail_gain: scale of the detail (:mod:`DPNSLCore.inference.calibrate`); any value keeps A x = y.
            clock: ``clock(stage)`` gives a context manager that times a stage ("projection", "destripe"), e.g. a
                :class:`DPNSLCore.inference.timing.StageClock`; None: not timed.

        Returns:
            (output, anchor, detail) in ``y``'s units; ``use_mcp=False`` adds f unprojected (the ablation).
        """
        cfg = self.config
        timed = clock or (lambda stage: nullcontext())
        with torch.autocast(device_type=y.device.type, enabled=False):  # consistency needs float32, not bf16
            y, f = y.float(), f.float()
            projection = cfg.projection if cfg.use_mcp else "none"
            with timed("projection"):
                detail = null_space_detail(f, degradation, projection, anchor=cfg.anchor)
                factor = f_scale * detail_gain
                if factor != 1.0:  # in place unless detail is f itself (projection "none")
                    detail = detail * factor if detail is f else detail.mul_(factor)
            if destripe is not None:
                with timed("destripe"):
                    detail = remove_phase_locked(detail, degradation, destripe, projection=projection,
                                                 anchor=cfg.anchor)
            with timed("projection"):
                if cfg.anchor == "none":
                    anchor = torch.full_like(detail, float(f_offset))
                else:
                    anchor = degradation.anchor(y, cfg.anchor)
                return anchor + detail, anchor, detail


def build_model(config: ModelConfig) -> DPNSL:
    """A freshly initialised DPNSL model from its spec."""
    return DPNSL(config)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
