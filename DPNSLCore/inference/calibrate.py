"""Fit the strength of the null-space detail to the input volume (on by default; off: ``calibrate=False``).

The network's detail is right in shape more often than in amount: on a soft-kernel CT (``ct_lung2_5mm``) the
shipped CT model adds detail that is not there and loses 3.5 dB to cubic at x2, while on the phantom the same detail
is worth +4 dB. How much detail a volume carries can be measured on the volume itself: a thick-slice scan is thin
in-plane, so each in-plane axis is a thin stack of this very patient, scanner and reconstruction kernel.

:func:`fit_detail_gain` resamples central views of the input's fine in-plane axes to the output slice spacing (so the
simulated acquisition has the very resolution the run asks for), simulates the run's acquisition along them (the
plan's kind, scale and slice profile), runs the model, and fits one number ``g``: the least-squares scale of the
detail, ``argmin_g ||B y + g d - x||``, clipped to ``[low, high]``. The run then adds ``g d``. Scaling the detail
keeps it in the null space of A, so A x = y holds for any ``g``; ``g = 1`` is the plain model. One scalar cannot
drift the way fine-tuning the weights does (:mod:`.adapt`), and it costs one forward pass over small views.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.functional import interpolate

from ..io.intensity import IntensityNormalizer
from ..models.network import DPNSL
from ..ops.destripe import DestripeOptions
from ..ops.operators import make_degradation, simulate_acquisition
from ..ops.switch import options_from_switch
from .engine import network_column
from .request import UpsamplePlan
from .tiling import TilingOptions

__all__ = ["CalibrateOptions", "CalibrationReport", "CalibrationUnavailableError", "calibration_views",
           "fit_detail_gain"]

FINE_RATIO = 1.5  # in-plane axes within 1.5x the finer in-plane spacing are calibrated on
MIN_THICK, MIN_SIDE = 4, 8  # a view needs this many thick slices and voxels along the other in-plane axis


class CalibrationUnavailableError(ValueError):
    """The volume is too small to calibrate on at this scale (the message says so; the run goes on with gain 1)."""


@dataclass(frozen=True)
class CalibrateOptions:
    """How the detail gain is fitted.

    Args:
        crop: in-plane size (voxels at the output spacing) of each central calibration view, >= 32.
        max_slices: thin slices per view (the central ones), >= 16.
        low, high: the range the gain is clipped to (0 <= low < high); 0 is the anchor alone.
        min_gain_db: the fitted gain is applied only when it beats gain 1 on the views by at least this much
            (dB); else the detail stays as the network made it. The views are another axis than the slice axis the
            run upsamples, and a modest win there does not carry over: the real MS T2 at x3 under thick slices (gain
            1.36, +0.07 dB on the views, -0.13 dB along z), the skull phantom at x2 under decimation (0.69, +0.56 dB
            on the views, -0.20 dB along z), the UIH T1 averaged to 3 mm slices at x2 (0.67, +0.14, -0.11). What
            calibration is for wins the views by dB: the soft-kernel chest CT ``ct_lung2_5mm`` at x2 (0.09, +3.7 dB
            on the views, +3.8 dB along its axis).
    """

    crop: int = 128
    max_slices: int = 160
    low: float = 0.0
    high: float = 1.5
    min_gain_db: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.crop, bool) or not isinstance(self.crop, int) or self.crop < 32:
            raise ValueError(f"`crop` must be an integer >= 32 (voxels), got {self.crop!r}")
        if isinstance(self.max_slices, bool) or not isinstance(self.max_slices, int) or self.max_slices < 16:
            raise ValueError(f"`max_slices` must be an integer >= 16, got {self.max_slices!r}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and 0 <= self.low < self.high):
            raise ValueError(f"the gain range must satisfy 0 <= low < high, got [{self.low!r}, {self.high!r}]")
        if not (math.isfinite(self.min_gain_db) and self.min_gain_db >= 0):
            raise ValueError(f"`min_gain_db` must be a finite number >= 0 (dB), got {self.min_gain_db!r}")

    @classmethod
    def from_value(cls, value: CalibrateOptions | bool | None) -> CalibrateOptions | None:
        """True: the defaults; False or None: off; options: themselves (:mod:`DPNSLCore.ops.switch`)."""
        return options_from_switch(cls, value, "calibrate")


@dataclass(frozen=True)
class CalibrationReport:
    """The gain applied, the fitted one (clipped), the unclipped least-squares value, and what it was fitted on.

    ``psnr_gain_db`` is the PSNR of the calibration views with the fitted gain minus with gain 1 (>= 0 before
    clipping; what the fit expects to win on the volume itself, not a guarantee for the slice axis). ``gain`` is the
    fitted gain when that reaches the options' ``min_gain_db``, else 1 (``applied`` False).
    """

    gain: float
    raw: float
    views: int
    voxels: int
    resampled_to: float | None  # the output spacing (mm) the views were resampled to; None: used as they are
    psnr_gain_db: float
    seconds: float
    fitted: float = 1.0
    applied: bool = True
    min_gain_db: float = 0.0

    def text(self) -> str:
        grid = f", resampled to {self.resampled_to:.3g} mm" if self.resampled_to is not None else ""
        clipped = f" (least squares {self.raw:.2f}, clipped)" if abs(self.raw - self.fitted) > 1e-9 else ""
        where = (f"on {self.views} in-plane view(s) of this volume{grid} ({self.voxels / 1e6:.2f} M voxels, "
                 f"{self.psnr_gain_db:+.2f} dB on them over gain 1) in {self.seconds:.1f} s")
        if not self.applied:
            return (f"detail gain 1: the gain fitted {where} was {self.fitted:.2f}{clipped}, a win below "
                    f"{self.min_gain_db:g} dB, too small to carry over to the slice axis; the detail is added as the "
                    "network made it")
        return f"detail gain {self.gain:.2f}{clipped} fitted {where}; A x = y holds for any gain"


def _central(length: int, size: int) -> slice:
    start = max(0, (length - size) // 2)
    return slice(start, start + min(size, length))


def calibration_views(volume: np.ndarray, spacing_zyx: tuple[float, float, float], output_spacing: float,
                      options: CalibrateOptions, normalizer: IntensityNormalizer | None = None,
                      ) -> tuple[list[np.ndarray], float | None]:
    """Central views of the fine in-plane axes of ``volume`` (n, Y, X), each (thin, n, other): the in-plane axis
    as the slice axis. A fine axis is within ``FINE_RATIO`` of the finer in-plane spacing (a view of a thick scan
    turned on its side, e.g. y by 5 mm z by x, has one). Axes finer than ``output_spacing`` are resampled to it
    (antialiased), so the views have the run's output resolution; returns the views and the spacing they were
    resampled to (or None). Only the crops are copied, as float32, and mapped by ``normalizer`` when given (so a
    large input is never converted whole)."""
    n = volume.shape[0]
    views, resampled = [], None
    finest = min(spacing_zyx[1], spacing_zyx[2])
    for axis in (a for a in (1, 2) if spacing_zyx[a] <= FINE_RATIO * finest):
        other = 3 - axis
        along, across = spacing_zyx[axis], spacing_zyx[other]
        factor_a = along / output_spacing if along < 0.95 * output_spacing else 1.0
        factor_b = across / output_spacing if across < 0.95 * output_spacing else 1.0
        view = np.moveaxis(volume, axis, 0)  # (thin, n, other)
        keep_a = _central(view.shape[0], math.ceil(options.max_slices / factor_a))
        keep_b = _central(view.shape[2], math.ceil(options.crop / factor_b))
        keep_n = _central(n, options.crop)
        crop = np.ascontiguousarray(view[keep_a, keep_n, keep_b], dtype=np.float32)
        block = torch.from_numpy(normalizer.forward(crop) if normalizer is not None else crop)
        if factor_a != 1.0 or factor_b != 1.0:
            size = (max(2, round(block.shape[0] * factor_a)), max(2, round(block.shape[2] * factor_b)))
            planes = block.permute(1, 0, 2)[:, None]  # (n, 1, thin, other): 2-D resampling per thick slice
            block = interpolate(planes, size=size, mode="bilinear", antialias=True, align_corners=False)[:, 0]
            block = block.permute(1, 0, 2)
            resampled = output_spacing
        views.append(block.contiguous().numpy())
    return views, resampled


def fit_detail_gain(model: DPNSL, volume: np.ndarray, spacing_zyx: tuple[float, float, float],
                    plan: UpsamplePlan, device: torch.device, *, normalizer: IntensityNormalizer | None = None,
                    destripe: DestripeOptions | None = None, options: CalibrateOptions | None = None,
                    ensemble: int = 1, precision: str = "float32") -> CalibrationReport:
    """The least-squares gain of the model's detail on the input's own in-plane axes (module docstring).

    Args:
        model: the model the run will use (not modified; run in inference mode).
        volume: (n, Y, X) the input, slice axis first (any real dtype; a view is enough, only crops are copied).
        spacing_zyx: its voxel size (mm), slice axis first.
        plan: the resolved request: its acquisition, scale and output spacing are simulated.
        normalizer: maps ``volume`` to the network's [0, 1] units (None: it is in them already).
        destripe, ensemble, precision: the run's destripe options, self-ensemble size and network precision (the
            gain is fitted to the detail the run adds).

    Raises:
        CalibrationUnavailableError: every in-plane view is too small for the plan's scale.
    """
    options = options or CalibrateOptions()
    start = time.perf_counter()
    output_spacing = spacing_zyx[0] / plan.scale
    views, resampled = calibration_views(volume, spacing_zyx, output_spacing, options, normalizer)
    identity = IntensityNormalizer("mr", 1.0, 0.0)  # already normalised
    acquisition = {"degradation": plan.degradation, "profile": plan.profile, "thickness": plan.thickness}
    border = int(math.ceil(plan.scale - 1e-9))
    margin = model.estimator.receptive_radius
    num = den = sq_error = 0.0
    voxels = 0
    usable = [v for v in views if v.shape[0] >= 2 * border + 2 * plan.scale + 2 and v.shape[1] >= MIN_THICK
              and v.shape[2] >= MIN_SIDE]
    if not usable:
        sizes = ", ".join("x".join(map(str, v.shape)) for v in views) or "none"
        raise CalibrationUnavailableError(
            f"calibration: off, the in-plane views ({sizes} voxels at the output spacing) are too small for scale "
            f"{plan.scale:g}; the detail is added as the network made it")
    for view in usable:
        lr, hr = simulate_acquisition(view, plan.scale, **acquisition)
        deg = make_degradation(plan.degradation, plan.scale, lr.shape[0], profile=plan.profile,
                               thickness=plan.thickness)
        column, _ = network_column(model, deg, identity, TilingOptions(), device, parts=True, destripe=destripe,
                                   ensemble=ensemble, precision=precision)
        whole_y, whole_x = slice(0, lr.shape[1]), slice(0, lr.shape[2])
        res = column(torch.from_numpy(lr), whole_y, whole_x, lambda message: None)
        inner_y = slice(margin, -margin) if lr.shape[1] > 4 * margin else slice(None)
        inner_x = slice(margin, -margin) if lr.shape[2] > 4 * margin else slice(None)
        keep = (slice(border, -border), inner_y, inner_x)
        truth = torch.from_numpy(hr)[keep].double()
        anchor, detail = res.anchor[keep].double(), res.detail[keep].double()
        residual = truth - anchor
        num += float((detail * residual).sum())
        den += float((detail * detail).sum())
        sq_error += float((residual * residual).sum())
        voxels += truth.numel()
    raw = num / den if den > 1e-12 else 1.0
    gain = float(min(max(raw, options.low), options.high))

    def mse(g: float) -> float:  # ||r - g d||^2 / N from the accumulated sums
        return max((sq_error - 2 * g * num + g * g * den) / voxels, 1e-20)

    psnr_gain = 10 * math.log10(mse(1.0) / mse(gain))
    applied = psnr_gain >= options.min_gain_db
    return CalibrationReport(gain if applied else 1.0, float(raw), len(usable), voxels, resampled, psnr_gain,
                             time.perf_counter() - start, gain, applied, options.min_gain_db)
