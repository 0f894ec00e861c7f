"""Whole-volume inference in bounded memory: plan windows and tiles, run them, stitch the results.

Along the slice axis the network sees windows of ``z_window`` observed slices that overlap by ``z_overlap``
slices; overlapping HR outputs are blended with linear ramps (or averaged, the paper's stride-1 mode). In-plane
the volume is cut into tiles read with a halo of at least the network's receptive radius, so each kept voxel
sees exactly what it would see in one whole-slice pass: the result does not depend on the tile size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .operators import Degradation

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


class Cancelled(RuntimeError):  # noqa: N818 (reads better at the call site: `except Cancelled`)
    """Raised when the ``cancel`` callback asks to stop; no output is produced."""


@dataclass(frozen=True)
class Span:
    """Read ``[read_start, read_stop)`` from the input; keep ``[keep_start, keep_stop)`` of what comes back."""

    read_start: int
    read_stop: int
    keep_start: int
    keep_stop: int

    @property
    def write(self) -> slice:
        """Where the kept part lands in the whole volume."""
        return slice(self.read_start + self.keep_start, self.read_start + self.keep_stop)


def plan_tiles(size: int, tile: int, halo: int) -> list[Span]:
    """Cut an axis of ``size`` voxels into cores of ``tile`` voxels read with ``halo`` voxels of context."""
    if tile < 1:
        raise ValueError(f"`tile_size` must be >= 1 voxel, got {tile}")
    spans = []
    for start in range(0, size, tile):
        stop = min(size, start + tile)
        read_start, read_stop = max(0, start - halo), min(size, stop + halo)
        spans.append(Span(read_start, read_stop, start - read_start, stop - read_start))
    return spans


def plan_z_windows(n_lr: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """LR windows ``[start, stop)`` of ``window`` slices overlapping by ``overlap``; the last ends at ``n_lr``."""
    if window < 2:
        raise ValueError(f"`z_window` must be >= 2 observed slices, got {window}")
    if not 1 <= overlap < window:
        raise ValueError(f"`z_overlap` must be in [1, z_window - 1] = [1, {window - 1}], got {overlap}")
    if n_lr <= window:
        return [(0, n_lr)]
    starts = list(range(0, n_lr - window, window - overlap)) + [n_lr - window]
    return [(a, a + window) for a in sorted(set(starts))]


def hr_span(degradation: Degradation, start: int, stop: int) -> tuple[int, int]:
    """HR indices ``[k0, k1)`` whose positions fall inside LR window ``[start, stop)`` (the last takes the tail)."""
    s = degradation.scale
    k0 = int(math.ceil(start * s - 1e-9))
    k1 = degradation.n_hr if stop == degradation.n_lr else int(math.floor((stop - 1) * s + 1e-9)) + 1
    return k0, k1


def z_weights(positions: np.ndarray, start: int, stop: int, n_lr: int, overlap: int, blend: str) -> np.ndarray:
    """Blend weight of each HR position (LR units) in window ``[start, stop)``: ramps over the overlaps."""
    if blend == "mean":
        return np.ones_like(positions)
    ramp = overlap / 2.0
    left = positions - start if start > 0 else np.full_like(positions, np.inf)
    right = (stop - 1) - positions if stop < n_lr else np.full_like(positions, np.inf)
    return np.clip((np.minimum(left, right) + 1e-3) / (ramp + 1e-3), 1e-3, 1.0)


def _device_error(err: RuntimeError, tile: int) -> RuntimeError:
    if "out of memory" in str(err).lower():
        return MemoryError(f"out of memory running a tile of {tile} voxels: pass a smaller `tile_size` or `z_window`")
    return err


def run_tiled(
    estimator: torch.nn.Module,
    y: torch.Tensor,
    degradation: Degradation,
    *,
    z_window: int,
    z_overlap: int,
    tile_size: int,
    halo: int,
    blend: str = "ramp",
    device: torch.device | str = "cpu",
    with_routing: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Evaluate the null-space estimator over a whole observed volume.

    Args:
        estimator: module called as ``estimator(y_window, hr_positions, scale) -> (f, routing)``.
        y: normalised observed volume (n_lr, Y, X) on the CPU.
        degradation: acquisition operator of the whole volume (gives the HR grid).
        halo: in-plane context in voxels (the estimator's receptive radius makes tiling exact).

    Returns:
        f (n_hr, Y, X) and, when asked, routing (E, n_hr, Y, X), both float32 on the CPU.
    """
    if blend not in ("ramp", "mean"):
        raise ValueError(f"`blend` must be 'ramp' or 'mean', got {blend!r}")
    n_lr, height, width = y.shape
    windows = plan_z_windows(n_lr, z_window, z_overlap)
    tiles = [(a, b) for a in plan_tiles(height, tile_size, halo) for b in plan_tiles(width, tile_size, halo)]
    f_sum = torch.zeros(degradation.n_hr, height, width)
    w_sum = torch.zeros(degradation.n_hr)
    routing = None
    positions = degradation.hr_positions
    total, done = len(windows) * len(tiles), 0
    for start, stop in windows:
        k0, k1 = hr_span(degradation, start, stop)
        weights = torch.from_numpy(z_weights(positions[k0:k1], start, stop, n_lr, z_overlap, blend)).float()
        rel = torch.from_numpy(positions[k0:k1] - start).float().to(device)
        for ty, tx in tiles:
            if cancel is not None and cancel():
                raise Cancelled("upsampling cancelled")
            chunk = y[start:stop, ty.read_start : ty.read_stop, tx.read_start : tx.read_stop]
            try:
                f, r = estimator(chunk[None, None].to(device), rel, degradation.scale)
            except RuntimeError as err:
                raise _device_error(err, tile_size) from err
            keep = (slice(None), slice(None), slice(None), slice(ty.keep_start, ty.keep_stop),
                    slice(tx.keep_start, tx.keep_stop))
            w = weights.view(-1, 1, 1)
            f_sum[k0:k1, ty.write, tx.write] += f[keep][0, 0].float().cpu() * w
            if with_routing:
                if routing is None:
                    routing = torch.zeros(r.shape[1], degradation.n_hr, height, width)
                routing[:, k0:k1, ty.write, tx.write] += r[keep][0].float().cpu() * w
            done += 1
            if progress is not None:
                progress(done / total, f"window {start}-{stop} of {n_lr} slices, tile {done}/{total}")
        w_sum[k0:k1] += weights
    f_sum /= w_sum.view(-1, 1, 1)
    if routing is not None:
        routing /= w_sum.view(1, -1, 1, 1)
    return f_sum, routing
