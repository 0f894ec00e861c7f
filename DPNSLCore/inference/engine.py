"""Run a resolved plan over a whole volume, one in-plane tile column at a time, into preallocated outputs.

For each in-plane tile the engine reads the observed column (all slices, the tile plus its halo), asks a
*column function* for the output on the full HR z extent of the tile's core, converts it to the output dtype and
writes it in place. The projection runs inside the column function on the full z extent, so it is exact, and
only one column of temporaries is alive at a time: the tile size bounds the memory. The column function of the
network (:func:`network_column`) itself walks the z windows of :mod:`.tiling` with their z halo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..io.intensity import IntensityNormalizer
from ..models.network import DPNSL
from ..ops.baselines import interpolate
from ..ops.bounds import BoundsReport, IntensityBounds, keep_in_bounds
from ..ops.destripe import DestripeOptions
from ..ops.operators import Degradation
from .allocator import release_freed_memory, released_on_leaving, reuse_freed_memory
from .ensemble import check_ensemble, ensemble_average
from .tiling import CancelFn, Cancelled, ProgressFn, TilingOptions, ZWindow, plan_tiles, plan_z_windows
from .timing import StageClock

_FLOAT32 = np.dtype(np.float32)


@dataclass
class ColumnResult:
    """Output of one tile column on the HR grid, (n_hr, h, w) in input units; parts may be None."""

    output: torch.Tensor
    anchor: torch.Tensor | None = None
    detail: torch.Tensor | None = None
    routing: torch.Tensor | None = None  # (E, n_hr, h, w)
    bounds: BoundsReport | None = None  # what keeping the intensity box did in this column


@dataclass
class VolumeResult:
    """Whole-volume arrays in slice-first layout (n_hr, Y, X); ``consistency_error`` = max |A x - y|."""

    output: np.ndarray
    anchor: np.ndarray | None
    detail: np.ndarray | None
    routing: np.ndarray | None
    consistency_error: float
    bounds: BoundsReport | None = None
    type_clipped: int = 0  # voxels outside the output type's range, clipped when converting


#: ``column(y_read, keep_y, keep_x, tick) -> ColumnResult``: y_read is the (n_lr, h + halo, w + halo) float32
#: observed column, keep_y / keep_x select its core; tick(message) reports one unit of progress.
ColumnFn = Callable[[torch.Tensor, slice, slice, Callable[[str], None]], ColumnResult]


def memory_error(err: BaseException, tiling: TilingOptions) -> MemoryError:
    """A MemoryError that names the options to lower, from a CPU or CUDA out-of-memory error."""
    return MemoryError(
        f"out of memory ({str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__}) "
        f"with tile_size={tiling.tile_size}, z_window={tiling.z_window}: lower `tile_size` (--tile-size, e.g. "
        f"{max(1, tiling.tile_size // 2)}) or `z_window` (--z-window, e.g. {max(1, tiling.z_window // 2)}); "
        "neither changes the result"
    )


def output_bytes(output_shape: tuple[int, ...], out_dtype: np.dtype, *, parts: bool, n_experts: int,
                 preallocated: bool = False) -> dict[str, int]:
    """Bytes :func:`run_volume` allocates for its whole-volume arrays, by array (the output, unless the caller
    gives it preallocated; with ``parts``, the float32 anchor and detail and the ``n_experts`` routing maps).
    The per-tile working set is set by the tiling and is small beside these for large outputs."""
    voxels = int(np.prod(output_shape))
    need = {} if preallocated else {"output": voxels * np.dtype(out_dtype).itemsize}
    if parts:
        need["anchor and detail"] = 2 * voxels * 4
        if n_experts:
            need["routing maps"] = n_experts * voxels * 4
    return need


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA's and the CPU allocator's out-of-memory errors (and numpy's MemoryError)."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "not enough memory" in text)


def _convert(values: torch.Tensor, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """Float values to ``dtype`` and how many voxels the type could not hold: integers are rounded to nearest (half
    to even, as ``np.rint``) and clipped to the type's range (those are counted: clipping them can break A x = y).
    The rounding and the range check run in torch (every thread; one pass when nothing is out of range): numpy's
    rint, comparisons and clip took 1.3 s on one 1197 x 224 x 224 tile, this 0.3 s."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        rounded = torch.round(values)
        low, high = torch.aminmax(rounded)
        clipped = 0
        if float(low) < info.min or float(high) > info.max:
            clipped = int(((rounded < info.min) | (rounded > info.max)).sum())
            rounded.clamp_(info.min, info.max)
        return rounded.numpy().astype(dtype), clipped
    return values.numpy().astype(dtype, copy=False), 0


def run_volume(array: np.ndarray, slice_axis: int, degradation: Degradation, column: ColumnFn, *, halo: int,
               tiling: TilingOptions, steps_per_column: int, out_dtype: np.dtype = _FLOAT32,
               parts: bool = False, n_experts: int = 0, progress: ProgressFn | None = None,
               cancel: CancelFn | None = None, out: np.ndarray | None = None,
               clock: StageClock | None = None) -> VolumeResult:
    """Evaluate ``column`` over every in-plane tile of ``array`` (any real dtype, never modified).

    Args:
        array: observed volume, slice axis at ``slice_axis``.
        halo: in-plane context (voxels) each column reads around its core.
        steps_per_column: progress units one column reports (its ticks + 1 for writing it).
        parts: also fill anchor, detail and (``n_experts`` > 0) routing.
        out: a preallocated output in the input's axis order (``VolumeResult.output`` is then a view of it), e.g. a
            Slicer volume node's own voxel array, so the result is never copied.
        clock: charged the "output" seconds (conversion, placing each tile, the consistency check); the column
            function charges its own stages.

    Raises:
        Cancelled: ``cancel()`` returned True (nothing is returned). MemoryError: out of memory, with advice.
    """
    clock = clock or StageClock()
    view = np.moveaxis(array, slice_axis, 0)
    n_lr, height, width = view.shape
    n_hr = degradation.n_hr
    rows, cols = plan_tiles(height, tiling.tile_size, halo), plan_tiles(width, tiling.tile_size, halo)
    tiles = [(a, b) for a in rows for b in cols]
    try:
        output = np.empty((n_hr, height, width), dtype=out_dtype) if out is None else np.moveaxis(out, slice_axis, 0)
        anchor = np.empty((n_hr, height, width), np.float32) if parts else None
        detail = np.empty((n_hr, height, width), np.float32) if parts else None
        routing = np.empty((n_experts, n_hr, height, width), np.float32) if parts and n_experts else None
    except MemoryError as err:
        raise memory_error(err, tiling) from err
    total, done, error, report, type_clipped = len(tiles) * steps_per_column, 0, 0.0, None, 0

    def tick(message: str) -> None:
        nonlocal done
        if cancel is not None and cancel():
            raise Cancelled("upsampling cancelled")
        done += 1
        if progress is not None:
            progress(min(done / total, 1.0), message)

    for index, (ty, tx) in enumerate(tiles):
        def tick_tile(what: str, label: str = f"tile {index + 1}/{len(tiles)}") -> None:
            tick(f"{label}: {what}")

        y_read = torch.from_numpy(np.ascontiguousarray(view[:, ty.read, tx.read], dtype=np.float32))
        try:
            res = column(y_read, ty.keep, tx.keep, tick_tile)
            with clock("output"):
                block, clipped = _convert(res.output, out_dtype)
        except (RuntimeError, MemoryError) as err:
            if is_out_of_memory(err):
                raise memory_error(err, tiling) from err
            raise
        with clock("output"):
            output[:, ty.write, tx.write] = block
            type_clipped += clipped
            if res.bounds is not None:
                report = res.bounds if report is None else report.merge(res.bounds)
            y_core = y_read[:, ty.keep, tx.keep]
            written = torch.from_numpy(block).float() if block.dtype != np.float32 else torch.from_numpy(block)
            error = max(error, float((degradation.forward(written) - y_core).abs().max()))
            if parts:
                anchor[:, ty.write, tx.write] = res.anchor.numpy()
                detail[:, ty.write, tx.write] = res.detail.numpy()
                if routing is not None and res.routing is not None:
                    routing[:, :, ty.write, tx.write] = res.routing.numpy()
        del res, block, written
        if tiling.release_memory:
            release_freed_memory()
        tick_tile("written")
    release_freed_memory()  # what the tiles freed stays out of what follows (writing the output copies it once more)
    return VolumeResult(output, anchor, detail, routing, error, report, type_clipped)


def baseline_column(degradation: Degradation, method: str, clock: StageClock | None = None) -> ColumnFn:
    """Column function of an interpolation baseline (no halo; the anchor is the output, the detail zero)."""
    clock = clock or StageClock()

    def column(y_read, keep_y, keep_x, tick):
        y = y_read[:, keep_y, keep_x]
        with clock("interpolation"):
            out = interpolate(y, degradation, method)
        return ColumnResult(out, out, torch.zeros_like(out))

    return column


#: the network's arithmetic: "auto" (bfloat16 where the CPU computes it natively, else float32), float32, or bfloat16
#: for the encoder's convolutions
PRECISIONS = ("auto", "float32", "bfloat16")
#: a column whose estimate f takes at least this many bytes hands the windows' freed heap back before its own stage
#: (:func:`.allocator.reuse_freed_memory`) and what that stage freed after it (:func:`.allocator.released_on_leaving`);
#: a smaller one keeps all of it in the heap (faster, nothing to save)
RELEASE_COLUMN_BYTES = 128 << 20
#: a large column's z windows read at most this many observed slices (fewer if ``TilingOptions.z_window`` says so):
#: a window's working set is its encoder's feature maps, which grow with the slices it reads (a 236 x 236 window
#: reading 68 slices: about 1.0-1.3 GB in bfloat16, reading 44: 0.7-0.8 GB, the same seconds per output slice);
#: on the 512 x 512 x 300 CT at x4 that set is the run's peak. Small columns keep the wider windows (fewer halo
#: slices read again: 24 cost about 8 % on 60 x 384 x 384, two bench runs each). Any window gives the same output.
LARGE_COLUMN_Z_WINDOW = 24
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bfloat16(device: torch.device, cpu_flags: str | None = None) -> bool:
    """True on a CPU whose instruction set computes bfloat16 (AVX512-BF16 or AMX-BF16, from /proc/cpuinfo on Linux;
    ``cpu_flags`` replaces it in tests); False on other CPUs, where bfloat16 is emulated and slower, on other
    systems (not known) and on other devices (CUDA keeps float32: not measured there)."""
    if device.type != "cpu":
        return False
    if cpu_flags is None:
        try:
            with open("/proc/cpuinfo") as handle:
                cpu_flags = next((line for line in handle if line.startswith("flags")), "")
        except OSError:
            return False
    return any(flag in cpu_flags.split() for flag in _NATIVE_BF16_FLAGS)


def check_precision(precision: str) -> str:
    """``precision`` itself when it is one of :data:`PRECISIONS`.

    Raises:
        ValueError: another value.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}")
    return precision


def resolve_precision(precision: str, device: torch.device, cpu_flags: str | None = None) -> tuple[str, str]:
    """The arithmetic a run uses, and the note that says why: ``"auto"`` is bfloat16 for the encoder's convolutions
    where :func:`native_bfloat16` (1.3x faster on this project's 2-core CPU; on every patient and scale of the
    headline protocol the PSNR moved by at most 0.001 dB, and A x = y holds as in float32: the projection runs in
    float32), float32 elsewhere.

    Raises:
        ValueError: a value not in :data:`PRECISIONS`.
    """
    check_precision(precision)
    if precision != "auto":
        return precision, f"precision: the encoder's convolutions in {precision} (asked)"
    if native_bfloat16(device, cpu_flags):
        return "bfloat16", ("precision: the encoder's convolutions in bfloat16 (auto: this CPU computes bfloat16 "
                            "natively; precision float32 gives the same result on every machine)")
    return "float32", "precision: float32 (auto: this device has no native bfloat16)"


def emulated_bfloat16_warning(precision: str, device: torch.device, cpu_flags: str | None = None) -> str | None:
    """A warning when bfloat16 was asked for on a CPU that does not compute it natively: PyTorch then emulates it,
    many times slower than float32 (the chest CT bench on an AVX2 CPU: 0.10 M output voxels/s against 2.5 in
    float32). None where it is native, on other devices and for other precisions."""
    if precision != "bfloat16" or device.type != "cpu" or native_bfloat16(device, cpu_flags):
        return None
    return ("warning: precision bfloat16 on a CPU without native bfloat16 (no AVX512-BF16 or AMX): it is emulated "
            "and many times slower than float32 here; precision auto (the default) takes float32 on this CPU")


def encoder_dtype_of(precision: str) -> torch.dtype | None:
    """The encoder's dtype for a resolved ``precision`` (None: the input's, float32).

    Raises:
        ValueError: another value than "float32" or "bfloat16" (resolve "auto" with :func:`resolve_precision`).
    """
    if precision not in PRECISIONS[1:]:
        raise ValueError(f"`precision` must be one of {PRECISIONS[1:]} here, got {precision!r}")
    return torch.bfloat16 if precision == "bfloat16" else None


def network_halo(model: DPNSL, destripe: DestripeOptions | None = None) -> int:
    """In-plane halo a column of ``model`` reads: its receptive radius, plus the reach of the destripe estimate."""
    return model.estimator.receptive_radius + (destripe.radius if destripe is not None else 0)


def _widen(keep: slice, by: int, size: int) -> slice:
    return slice(max(keep.start - by, 0), min(keep.stop + by, size))


def network_column(model: DPNSL, degradation: Degradation, normalizer: IntensityNormalizer, tiling: TilingOptions,
                   device: torch.device, *, parts: bool, bounds: IntensityBounds | None = None,
                   destripe: DestripeOptions | None = None, detail_gain: float = 1.0,
                   ensemble: int = 1, clock: StageClock | None = None,
                   precision: str = "float32") -> tuple[ColumnFn, int]:
    """Column function of a DP-NSL model and the number of progress ticks per column (read with
    :func:`network_halo`).

    The estimator runs on z windows (:func:`.tiling.plan_z_windows`; at most :data:`LARGE_COLUMN_Z_WINDOW` observed
    slices in a large column) read with its z receptive radius as halo and asked for the HR slices it owns plus the
    HR margin its HR-resolution convs need; the model's own anchor and projection (:meth:`DPNSL.assemble`) then run
    on the whole column, in the input's units; with ``destripe`` the detail's phase-locked part is removed
    (:mod:`DPNSLCore.ops.destripe`, on the core widened by its reach, so the result does not depend on the tiles);
    the detail is scaled by ``detail_gain`` (:mod:`.calibrate`); and the output is kept inside ``bounds``
    (:func:`DPNSLCore.ops.bounds.keep_in_bounds`). With ``ensemble`` N > 1 the estimate of each window is the mean
    over N in-plane flips/transposes of it (:mod:`.ensemble`), before the projection. A x = y holds throughout.
    ``clock`` (:class:`.timing.StageClock`) is charged the network, projection, destripe and bounds seconds.
    ``precision`` "bfloat16" runs the encoder's convolutions in bfloat16 (:data:`PRECISIONS`).
    """
    check_ensemble(ensemble)
    encoder_dtype = encoder_dtype_of(precision)
    clock = clock or StageClock()
    estimator = model.estimator
    # each column runs its largest windows first: the heap they leave fits every later one (an edge window, reading
    # a halo on one side only, first left holes too small for the next, and the heap grew a second window's worth)
    windows, large_windows = (sorted(plan_z_windows(degradation.n_lr, degradation.n_hr, degradation.scale, size,
                                                    estimator.z_receptive_radius),
                                     key=lambda win: win.read_start - win.read_stop)
                              for size in (tiling.z_window, min(tiling.z_window, LARGE_COLUMN_Z_WINDOW)))
    margin = estimator.hr_z_margin
    positions = torch.as_tensor(degradation.hr_positions, dtype=torch.float64)

    def window_f(y_n: torch.Tensor, w: ZWindow, keep_y: slice, keep_x: slice):
        lo, hi = max(0, w.hr_start - margin), min(degradation.n_hr, w.hr_stop + margin)
        chunk = y_n[w.read_start:w.read_stop][None, None].to(device)
        f, r = ensemble_average(lambda c: estimator(c, positions[lo:hi] - w.read_start, degradation.scale,
                                                    encoder_dtype=encoder_dtype, routing=parts), chunk, ensemble)
        sel = slice(w.hr_start - lo, w.hr_stop - lo)
        r = None if r is None else r[0, :, sel, keep_y, keep_x].float().cpu()
        return f[0, 0, sel, keep_y, keep_x].float().cpu(), r

    reach = destripe.radius if destripe is not None else 0

    def column(y_read, keep_y, keep_x, tick):
        y_n = normalizer.forward(y_read)
        wide_y, wide_x = _widen(keep_y, reach, y_read.shape[1]), _widen(keep_x, reach, y_read.shape[2])
        h, w = y_n[0, wide_y, wide_x].shape
        large = degradation.n_hr * h * w * 4 >= RELEASE_COLUMN_BYTES
        # a small column keeps all of its work in the heap; a large one runs shorter windows, keeps only their work,
        # hands that back, and hands back what its own stage (projection, destripe, bounds) freed on leaving
        with released_on_leaving() if large else reuse_freed_memory(), torch.inference_mode():
            f = torch.empty(degradation.n_hr, h, w)
            routing = torch.empty(model.config.n_experts, degradation.n_hr, h, w) if parts else None
            plan = large_windows if large else windows
            with reuse_freed_memory(release=large):
                for win in plan:
                    with clock("network"):
                        fw, rw = window_f(y_n, win, wide_y, wide_x)
                    f[win.hr_start:win.hr_stop] = fw
                    if routing is not None:
                        routing[:, win.hr_start:win.hr_stop] = rw
                    del fw, rw  # views of the window's whole output: freed before the next window allocates its own
                    tick(f"slices {win.read_start}-{win.read_stop} of {degradation.n_lr}")
            for _ in range(len(large_windows) - len(plan)):  # every column reports the same number of ticks
                tick("network done")
            out, anchor, detail = model.assemble(y_read[:, wide_y, wide_x], f, degradation,
                                                 f_scale=normalizer.scale, f_offset=normalizer.offset,
                                                 destripe=destripe, detail_gain=detail_gain, clock=clock)
            inner = (slice(None), slice(keep_y.start - wide_y.start, keep_y.stop - wide_y.start),
                     slice(keep_x.start - wide_x.start, keep_x.stop - wide_x.start))
            out, anchor, detail = out[inner], anchor[inner], detail[inner]
            routing = routing[(slice(None), *inner)] if routing is not None else None
            del f  # the column's largest arrays are not needed past here: the bounds step is its memory peak
            if not parts:
                anchor = detail = None
            y_core = y_read[:, keep_y, keep_x]
            report = None
            if bounds is not None:
                with clock("bounds"):
                    out, report = keep_in_bounds(out, y_core, degradation, bounds)
                if parts and report.clipped:
                    detail = out - anchor  # output = anchor + detail still holds
        return ColumnResult(out, anchor if parts else None, detail if parts else None, routing, report)

    return column, len(large_windows)
