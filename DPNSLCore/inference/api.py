"""The public upsampling API: one call for the baselines and the learned model, on arrays or geometry-aware volumes.

``upsample`` resolves the request once (:class:`.request.UpsampleRequest`), picks the model and the intensity rule
and says why (``result.notes``), then runs the tiled engine (:mod:`.engine`). It never modifies its input or a
caller's model. The network runs on normalised intensities; the projection runs in the input's own units, so for
``decimate`` every observed slice of the output equals the input bit for bit.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.intensity import MR_INPUT_PERCENTILE, IntensityNormalizer, explain_modality, looks_like_shifted_ct
from ..io.volumes import Geometry, Volume
from ..models.network import DPNSL
from ..models.registry import LoadedModel, open_model, resolve_device
from ..ops.baselines import BASELINES
from ..ops.bounds import IntensityBounds
from ..ops.destripe import DestripeOptions, phase_period
from .adapt import AdaptOptions, adapt_model
from .allocator import available_memory_bytes
from .calibrate import CalibrateOptions, CalibrationReport, CalibrationUnavailableError, fit_detail_gain
from .engine import (
    baseline_column,
    check_precision,
    emulated_bfloat16_warning,
    network_column,
    network_halo,
    output_bytes,
    resolve_precision,
    run_volume,
)
from .ensemble import check_ensemble
from .request import UpsamplePlan, UpsampleRequest
from .tiling import CancelFn, ProgressFn, TilingOptions
from .timing import StageClock

METHODS = ("dpnsl", *BASELINES)
MODALITIES = ("auto", "ct", "mr")


@dataclass
class UpsampleResult:
    """What :func:`upsample` returns. Arrays keep the input's axis order (slice axis where it was)."""

    volume: np.ndarray  # (..., n_hr along the slice axis, ...), float32 or the requested output dtype
    geometry: Geometry | None  # upsampled geometry when the input was a Volume
    plan: UpsamplePlan  # the resolved request: axis, scale, acquisition, grid
    method: str
    consistency_error: float  # max |A x - y| in input units, measured on `volume` as returned
    anchor: np.ndarray | None = None  # range-space anchor B y (return_parts=True)
    detail: np.ndarray | None = None  # null-space detail (I - P A) f, in input units
    routing: np.ndarray | None = None  # (E, *volume.shape) router weights in [0, 1], experts first
    expert_degrees: tuple[int, ...] = ()
    model_source: str | None = None  # e.g. "shipped CT model (dpnsl_ct.safetensors)"
    model_file: Path | None = None  # the weights file of the model used (None: a baseline or an in-memory model)
    modality: str | None = None  # intensity rule used for the network: "ct" or "mr"
    notes: tuple[str, ...] = ()  # how the axis, acquisition, model and modality were chosen
    detail_gain: float = 1.0  # scale of the network's detail (calibrate=True fits it to the volume)
    calibration: CalibrationReport | None = None  # what calibration measured on the volume (None: not run)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (network, bounds, ...)

    @property
    def scale(self) -> float:
        return self.plan.scale

    @property
    def slice_axis(self) -> int:
        return self.plan.slice_axis

    @property
    def degradation(self) -> str:
        return self.plan.degradation

    def to_volume(self) -> Volume:
        """The result as a geometry-aware :class:`Volume` (needs an input Volume)."""
        if self.geometry is None:
            raise ValueError("the input was a bare array, so the result has no geometry; pass a Volume")
        return Volume(self.volume, self.geometry, modality=self.modality)


def _as_array(volume: np.ndarray | Volume | torch.Tensor) -> tuple[np.ndarray, Geometry | None]:
    if isinstance(volume, Volume):
        array, geometry = volume.array, volume.geometry
    elif isinstance(volume, torch.Tensor):
        array, geometry = volume.detach().cpu().numpy(), None
    elif isinstance(volume, np.ndarray):
        array, geometry = volume, None
    else:
        kind = type(volume).__name__
        raise TypeError(f"`volume` must be a numpy array, torch tensor or DPNSLCore.Volume, got {kind}")
    if array.ndim != 3:
        raise ValueError(f"`volume` must be 3-D (slices, rows, cols), got shape {array.shape}; take one channel/frame")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"`volume` must hold real numbers, got dtype {array.dtype}")
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValueError(f"`volume` contains {bad} NaN/inf voxels; fill or mask them before upsampling")
    return array, geometry


def _check_out(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """A preallocated output must have the output's shape and dtype (it is written in place, never converted)."""
    if out is None:
        return
    if not isinstance(out, np.ndarray) or tuple(out.shape) != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"`out` must be a numpy array of shape {tuple(shape)} and dtype {np.dtype(dtype)} (the output "
                         f"of this request), got {getattr(out, 'shape', None)} {getattr(out, 'dtype', type(out))}")
    if not out.flags.writeable:
        raise ValueError("`out` must be writeable")


def _check_type_holds_input(array: np.ndarray, dtype: np.dtype) -> None:
    """An integer output type must hold the input's values: the acquired slices are kept, not clipped."""
    if not np.issubdtype(dtype, np.integer) or array.dtype == dtype:
        return
    info, low, high = np.iinfo(dtype), float(array.min()), float(array.max())
    if low < info.min or high > info.max:
        raise ValueError(f"the output type {dtype} holds [{info.min}, {info.max}], the input's values span "
                         f"[{low:g}, {high:g}]: the acquired slices would be clipped; choose float32 or a wider type")


def _type_clipped_note(clipped: int, total: int, dtype: np.dtype, error: float) -> str:
    info = np.iinfo(dtype)
    return (f"warning: {clipped} voxel(s) ({100.0 * clipped / max(total, 1):.3g} %) fell outside {dtype}'s range "
            f"[{info.min}, {info.max}] and were clipped when converting (max |A x - y| after it: {error:.3g}); "
            "write float32 (output_dtype='float32', --output-dtype float32) to keep them")


def _reader_notes(volume: object) -> list[str]:
    """What the reader chose (which DICOM series) and did about slices missing from a series (see
    :func:`DPNSLCore.io.volumes.read_volume`)."""
    if not isinstance(volume, Volume):
        return []
    notes, filled = list(volume.reader_notes), volume.filled_slices
    if filled:
        n = volume.array.shape[0]
        rows = ", ".join(map(str, filled))
        notes.append(f"DICOM: {len(filled)} slice(s) missing from the series (rows {rows} of {n} on "
                     f"its regular grid): filled by linear interpolation of their acquired neighbours; the "
                     f"{n - len(filled)} acquired slices keep their true world positions")
    return notes


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def _check_memory(need: dict[str, int]) -> None:
    """Refuse, before any work, a run whose whole-volume arrays do not fit in the memory left on this machine (on
    Linux the allocation itself would succeed and the process be killed later without a word)."""
    available, total = available_memory_bytes(), sum(need.values())
    if available is None or total <= available:
        return
    parts = ", ".join(f"{name} {_gib(n)}" for name, n in need.items())
    raise MemoryError(f"this run needs about {_gib(total)} for its whole-volume arrays ({parts}) and this machine has "
                      f"{_gib(available)} left (available memory + free swap): ask for a smaller scale or a coarser "
                      "target spacing, crop the volume, write an integer output type instead of float32, or leave "
                      "out the parts (--save-parts, return_parts)")


def resolve_output_dtype(output_dtype: Any, array: np.ndarray) -> np.dtype:
    """The output dtype ``upsample`` writes: None/"float32" -> float32; "input" -> the input's dtype for integer inputs,
    else float32; or a numpy dtype (for callers that preallocate ``out``)."""
    if output_dtype is None:
        return np.dtype(np.float32)
    if isinstance(output_dtype, str) and output_dtype == "input":
        return array.dtype if np.issubdtype(array.dtype, np.integer) else np.dtype(np.float32)
    try:
        dtype = np.dtype(output_dtype)
    except TypeError as err:
        raise ValueError(f"`output_dtype` must be 'input', a numpy dtype or its name, got {output_dtype!r}") from err
    if not (np.issubdtype(dtype, np.integer) or dtype in (np.float32, np.float64)):
        raise ValueError(f"`output_dtype` must be an integer type, float32 or float64, got {dtype}")
    return dtype


@dataclass(frozen=True)
class _ModelChoice:
    model: DPNSL
    source: str
    normalizer: IntensityNormalizer
    notes: tuple[str, ...]
    path: Path | None = None


def _choose_model(model: Any, array: np.ndarray, modality: str, intensity: IntensityNormalizer | None,
                  device: torch.device, allow_untrained: bool, stated: str | None = None) -> _ModelChoice:
    """The network, where it came from, the intensity rule and why (one place for these rules); ``stated``: the
    modality the input's header gives (DICOM Modality)."""
    if modality not in MODALITIES:
        raise ValueError(f"`modality` must be one of {MODALITIES}, got {modality!r}")
    notes = []
    evidence = explain_modality(array, stated) if modality == "auto" else None
    guessed = evidence.modality if evidence is not None else modality
    if isinstance(model, DPNSL):
        loaded = LoadedModel(model, "the given model")
    elif isinstance(model, LoadedModel):
        loaded = model
    elif model is None:
        loaded = open_model(guessed, device)
        why = "as given" if evidence is None else f"because {evidence.reason}"
        notes.append(f"model: {loaded.source}; modality {guessed.upper()} {why}; override with modality / model")
    elif isinstance(model, (str, Path)):
        loaded = open_model(model, device, allow_untrained=allow_untrained)
    else:
        raise TypeError(f"`model` must be None, a name, a checkpoint path or a DPNSL model, got {type(model).__name__}")
    trained_for = loaded.modality
    if modality != "auto" and trained_for not in (None, modality):
        raise ValueError(f"{loaded.source} was trained on {trained_for.upper()}, but modality={modality!r} was "
                         f"asked for; use modality={trained_for!r} or a {modality.upper()} model")
    kind = modality if modality != "auto" else (trained_for or guessed)
    if model is not None:
        notes.append(f"model: {loaded.source}, intensity rule {kind.upper()}"
                     + ("" if trained_for else f" (a model for any modality: the rule follows the input, "
                                               f"{'as given' if modality != 'auto' else 'guessed'})"))
    if not loaded.trained:
        notes.append("warning: the model is untrained (random weights)")
    if kind == "mr" and modality == "auto" and looks_like_shifted_ct(array):
        warning = ("warning: no negative values, but the intensities look like CT stored as HU + 1024 (soft tissue "
                   "near 1024); if it is CT, subtract 1024 (or fix the rescale intercept) and pass modality 'ct'")
        notes.append(warning)
        warnings.warn(warning, UserWarning, stacklevel=3)
    if intensity is None and kind == "ct":
        intensity = IntensityNormalizer.for_ct()
    elif intensity is None:
        intensity = IntensityNormalizer.for_mr_input(array)
        notes.append(_mr_input_note(intensity, float(array.min()), float(array.max())))
    return _ModelChoice(loaded.model, loaded.source, intensity, tuple(notes), loaded.path)


def _mr_input_note(rule: IntensityNormalizer, minimum: float, maximum: float) -> str:
    top = rule.offset + rule.scale
    line = (f"MR intensities given to the network from {rule.offset:.6g} (the {100 - MR_INPUT_PERCENTILE:.3g}th "
            f"percentile) to {top:.6g} (the {MR_INPUT_PERCENTILE:g}th)")
    if minimum < rule.offset:
        line += f"; the minimum {minimum:.6g} lies below"
    if maximum > top:
        line += (f"; the maximum {maximum:.6g} lies {(maximum - rule.offset) / rule.scale:.3g}x as far from the "
                 "lower end")
    if minimum < rule.offset or maximum > top:
        line += ": voxels beyond saturate in the network's input, their acquired values are kept"
    return line


def _spacing_first(geometry: Geometry | None, plan: UpsamplePlan) -> tuple[float, float, float]:
    """The input's voxel size (mm) with the slice axis first; an array without geometry: in-plane voxels of the
    output slice spacing."""
    axis = plan.slice_axis
    spacing = geometry.spacing_zyx if geometry is not None else \
        tuple(plan.scale if a == axis else 1.0 for a in range(3))
    return tuple(spacing[a] for a in [axis, *(a for a in range(3) if a != axis)])


def _adapted(net: DPNSL, array: np.ndarray, geometry: Geometry | None, plan: UpsamplePlan,
             normalizer: IntensityNormalizer, adapt: float | AdaptOptions, device: torch.device,
             progress: ProgressFn | None, cancel: CancelFn | None) -> tuple[DPNSL, str, ProgressFn | None]:
    """Adapt a copy of ``net`` to this volume; the first half of the progress goes to it. Returns the copy, the
    note and the progress callback for the rest of the run."""
    options = adapt if isinstance(adapt, AdaptOptions) else AdaptOptions(float(adapt))
    normalised = normalizer.forward(np.moveaxis(np.asarray(array), plan.slice_axis, 0).astype(np.float32))
    spacing = _spacing_first(geometry, plan)
    first = None if progress is None else (lambda f, m: progress(0.5 * f, m))
    adapted, report = adapt_model(net, normalised, spacing, plan, options, device, progress=first, cancel=cancel)
    rest = None if progress is None else (lambda f, m: progress(0.5 + 0.5 * f, m))
    return adapted, report.text(), rest


def _bounds(bounds: Any, array: np.ndarray, normalizer: IntensityNormalizer,
            dtype: np.dtype) -> IntensityBounds | None:
    """The intensity box of ``bounds`` ("auto", (low, high) or None) for this input and intensity rule, within
    what the output type ``dtype`` holds."""
    if bounds is None:
        return None
    if isinstance(bounds, str) and bounds == "auto":
        if normalizer.kind == "ct":  # -1024 and 3071 HU in the input's units
            box = IntensityBounds.for_input(array, "ct", floor=normalizer.offset,
                                            ceiling=normalizer.offset + normalizer.scale)
        else:
            box = IntensityBounds.for_input(array, "mr")
        return None if box is None else box.within_type(dtype)
    try:
        low, high = (float(v) for v in bounds)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`bounds` must be 'auto', a (low, high) pair or None, got {bounds!r}") from err
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"`bounds` must be finite with low < high, got {bounds!r}")
    if low > float(array.min()) or high < float(array.max()):
        raise ValueError(f"`bounds` {bounds!r} must contain the input's range [{array.min()}, {array.max()}]: "
                         "the acquired slices are kept exactly")
    return IntensityBounds(low, high, "given").within_type(dtype)


def _for_inference(model: DPNSL, device: torch.device) -> DPNSL:
    """``model`` itself when it is already in eval mode on ``device``, else a copy that is: never mutate it."""
    on_device = all(p.device == device for p in model.parameters())
    if on_device and not model.training:
        return model
    return copy.deepcopy(model).to(device).eval()


def upsample(
    volume: np.ndarray | Volume | torch.Tensor,
    scale: float | None = None,
    *,
    spacing: float | None = None,
    model: DPNSL | LoadedModel | str | Path | None = None,
    method: str = "dpnsl",
    degradation: str = "auto",
    thickness: float | None = None,
    thickness_mm: float | None = None,
    profile: str | None = None,
    slice_axis: int | str | None = "auto",
    modality: str = "auto",
    device: str | torch.device = "auto",
    return_parts: bool = False,
    intensity: IntensityNormalizer | None = None,
    tiling: TilingOptions | Mapping[str, int] | None = None,
    output_dtype: Any = None,
    allow_untrained: bool = False,
    bounds: str | tuple[float, float] | None = "auto",
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    adapt: float | AdaptOptions | None = None,
    out: np.ndarray | None = None,
    destripe: bool | DestripeOptions = True,
    calibrate: bool | CalibrateOptions = True,
    ensemble: int = 1,
    precision: str = "auto",
) -> UpsampleResult:
    """Turn a thick-slice volume into a thin-slice one; every observed slice is kept (A x = y).

    Args:
        volume: (Z, Y, X) array/tensor, or a :class:`Volume` (then the result carries the new geometry).
        scale: HR slices per observed slice spacing (> 1), or give ``spacing``, the target slice spacing in mm.
        model: a model (DPNSL or LoadedModel), a checkpoint path, or a shipped name ("ct", "mr"); None picks the
            shipped model for ``modality`` (auto: CT when the intensities look like HU, else MR).
        method: "dpnsl", "linear" or "cubic".
        degradation: how the input was acquired: "auto" (the model's training acquisition when it recorded a slice
            profile, else decimate for integer scales and sample otherwise), "decimate", "sample" or "profile";
            thickness, profile: the slice profile of "profile", and of "auto" when it resolves to one (thickness in
            spacings; None: the header's slice thickness over the spacing, else 1; profile "box" or "gaussian",
            None: the model's, else box); thickness_mm: the thickness in mm instead.
        slice_axis: numpy axis of the slices, or "auto": the largest spacing of a Volume (axis 0 for arrays).
        modality: "auto", "ct" or "mr": picks the shipped model and the intensity rule.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        return_parts: also return the anchor, the null-space detail and the routing maps.
        intensity: how to map the input to the network's [0, 1] range; default: the modality's rule (CT: fixed
            HU window; MR: from the input's 0.1th to its 99.9th percentile, :meth:`IntensityNormalizer.for_mr_input`,
            said in a note). ``IntensityNormalizer("mr", 1.0, 0.0)`` for normalised input.
        tiling: :class:`TilingOptions` (or a dict of its fields): bounds the peak memory, never changes the result.
        output_dtype: None (float32), "input" (the input's integer type, rounded), or a numpy dtype.
        allow_untrained: accept a preset name as ``model`` (random weights, for speed tests).
        bounds: "auto" keeps the network's output in the physical range (CT from -1024 HU to max(3071 HU, input
            max + 10 %), MR from 0 to input max + 50 % of the range) with A x = y intact
            (:mod:`DPNSLCore.ops.bounds`); a (low, high) pair; or None. The baselines are never bounded.
        progress: called as ``progress(fraction, message)``; cancel: return True to stop (raises Cancelled).
        adapt: seconds (or :class:`AdaptOptions`) of self-supervised fine-tuning of a copy of the model on the
            volume's own in-plane axes before upsampling (:mod:`.adapt`); None or 0: off. An array without
            geometry is taken as in-plane voxels of the output slice spacing.
        out: a preallocated output array (the output's shape and dtype, e.g. a Slicer node's voxels): written in
            place and returned as ``result.volume``, so the output is never copied.
        destripe: remove the part of the network's detail that repeats with the slice period, locally (stripes;
            :mod:`DPNSLCore.ops.destripe`, A x = y still holds); True (default), False, or
            :class:`DestripeOptions`. DP-NSL only.
        calibrate: fit the strength of the network's detail to this volume first (one least-squares gain on its
            own in-plane axes resampled to the output spacing, :mod:`.calibrate`; A x = y holds for any gain):
            True (default), False or :class:`CalibrateOptions`. ``result.detail_gain`` and a note give the gain;
            a volume too small to calibrate on keeps gain 1, and a note says so. DP-NSL only.
        ensemble: 1 (default), 2, 4 or 8: average the network's estimate over that many in-plane flips/transposes
            of the input (:mod:`.ensemble`; A x = y still holds), for that many times the network's time; a note
            says so. DP-NSL only (the baselines are exactly symmetric).
        precision: "auto" (default: bfloat16 on a CPU that computes it natively, float32 elsewhere), "float32" (the
            same result on every machine) or "bfloat16": the arithmetic of the encoder's convolutions
            (:func:`.engine.resolve_precision`; A x = y holds in either, the projection runs in float32; a note says
            which). DP-NSL only.

    Raises:
        ValueError / TypeError: bad input, scale, method, acquisition, axis, model or device, with the fix.
        Cancelled: cancelled. MemoryError: out of memory, naming the tiling option to lower.

    Example:
        >>> out = upsample(np.zeros((4, 8, 8), np.float32), 2, method="linear")
        >>> out.volume.shape, out.plan.degradation
        ((7, 8, 8), 'decimate')
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    array, geometry = _as_array(volume)
    options = TilingOptions.from_value(tiling)
    dtype = resolve_output_dtype(output_dtype, array)
    _check_type_holds_input(array, dtype)
    passes = check_ensemble(ensemble)
    check_precision(precision)  # refused before any work
    header, header_axis = (volume.slice_thickness, volume.thickness_axis) if isinstance(volume, Volume) else (None, 0)
    choice = trained = None
    if method == "dpnsl":
        dev = resolve_device(device)
        stated = volume.modality if isinstance(volume, Volume) else None
        choice = _choose_model(model, array, modality, intensity, dev, allow_untrained, stated)
        trained = choice.model.config.acquisition
    request = UpsampleRequest(scale=scale, spacing=spacing, slice_axis=slice_axis, degradation=degradation,
                              thickness=thickness, profile=profile, thickness_mm=thickness_mm)
    plan = request.resolve(array.shape, geometry=geometry, slice_thickness=header, thickness_axis=header_axis,
                           trained_acquisition=trained)
    _check_memory(output_bytes(plan.output_shape, dtype, parts=return_parts, preallocated=out is not None,
                               n_experts=choice.model.config.n_experts if choice is not None else 0))
    deg = plan.degradation_operator()
    notes = _reader_notes(volume) + list(plan.notes)
    source = kind = None
    degrees: tuple[int, ...] = ()
    gain, calibration = 1.0, None
    fit = CalibrateOptions.from_value(calibrate)
    clock = StageClock(resolve_device(device) if method == "dpnsl" else None)
    if choice is not None:
        net = _for_inference(choice.model, dev)
        if adapt:
            net, adapt_note, progress = _adapted(net, array, geometry, plan, choice.normalizer, adapt, dev,
                                                 progress, cancel)
            notes.append(adapt_note)
        box = _bounds(bounds, array, choice.normalizer, dtype)
        if box is None and bounds is not None:
            notes.append("bounds: off, an MR with negative values (z-scored, phase) has no physical intensity range")
        stripes = DestripeOptions.from_value(destripe)
        if stripes is not None and phase_period(plan.scale) is None:
            notes.append(f"destripe: off, the scale {plan.scale:g} has no short phase period")
            stripes = None
        elif stripes is not None:
            notes.append(f"destripe: the detail's part locked to the slice phase removed (same-phase means over "
                         f"±{stripes.periods} period(s), in-plane sigma {stripes.sigma:g} voxels)")
        precision, precision_note = resolve_precision(precision, dev)
        notes.append(precision_note)
        slow = emulated_bfloat16_warning(precision, dev)
        if slow is not None:
            notes.append(slow)
            warnings.warn(slow, UserWarning, stacklevel=2)
        if passes > 1:
            notes.append(f"ensemble: the network's estimate averaged over {passes} in-plane flips/transposes of the "
                         f"input ({passes}x the network time)")
        if fit is not None:
            if progress is not None:
                progress(0.0, "calibrating the detail on the volume's in-plane axes")
            try:
                with clock("calibration"):
                    calibration = fit_detail_gain(net, np.moveaxis(array, plan.slice_axis, 0),
                                                  _spacing_first(geometry, plan), plan, dev,
                                                  normalizer=choice.normalizer, destripe=stripes, options=fit,
                                                  ensemble=passes, precision=precision)
                gain = calibration.gain
                notes.append(calibration.text())
            except CalibrationUnavailableError as why:  # a tiny volume: said, and the detail kept as it is
                notes.append(str(why))
        column, ticks = network_column(net, deg, choice.normalizer, options, dev, parts=return_parts, bounds=box,
                                       destripe=stripes, detail_gain=gain, ensemble=passes, clock=clock,
                                       precision=precision)
        halo, n_experts = network_halo(net, stripes), net.config.n_experts
        source, kind, degrees, notes = choice.source, choice.normalizer.kind, tuple(net.config.degrees), \
            notes + list(choice.notes)
    else:
        column, ticks, halo, n_experts = baseline_column(deg, method, clock), 0, 0, 0
    _check_out(out, plan.output_shape, dtype)
    result = run_volume(array, plan.slice_axis, deg, column, halo=halo, tiling=options, steps_per_column=ticks + 1,
                        out_dtype=dtype, parts=return_parts, n_experts=n_experts, progress=progress, cancel=cancel,
                        out=out, clock=clock)
    if result.bounds is not None:
        notes.append(result.bounds.text(box))
    if result.type_clipped:
        notes.append(_type_clipped_note(result.type_clipped, result.output.size, dtype, result.consistency_error))

    def back(a: np.ndarray | None, lead: int = 0) -> np.ndarray | None:
        if a is None:
            return None
        moved = np.moveaxis(a, lead, lead + plan.slice_axis)
        return moved if plan.slice_axis == 0 else np.ascontiguousarray(moved)

    return UpsampleResult(
        volume=out if out is not None else back(result.output), geometry=plan.geometry, plan=plan, method=method,
        consistency_error=result.consistency_error, anchor=back(result.anchor), detail=back(result.detail),
        routing=back(result.routing, 1), expert_degrees=degrees, model_source=source, modality=kind,
        model_file=choice.path if choice is not None else None,
        notes=tuple(notes), detail_gain=gain, calibration=calibration, timings=dict(clock.seconds),
    )
