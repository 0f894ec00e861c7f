"""Whole-volume inference in bounded memory: the tiling options and the plans of tiles and z windows.

In-plane the volume is cut into tiles read with a halo of the network's in-plane receptive radius; along the
slice axis into windows of ``z_window`` observed slices read with a halo of its z receptive radius. Each tile
and window *owns* a disjoint block of the output and computes it from exactly the context a whole-volume pass
would give it, so the result does not depend on the tile size or the z window (to float round-off).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


class Cancelled(RuntimeError):  # noqa: N818 (reads better at the call site: `except Cancelled`)
    """Raised when the ``cancel`` callback asks to stop; no output is produced."""


@dataclass(frozen=True)
class TilingOptions:
    """How whole volumes are cut for the network; bounds the peak memory, never changes the result.

    Args:
        tile_size: in-plane core tile in voxels (>= 1). Peak memory grows with its square: lower it to save memory.
        z_window: observed slices per network window (>= 1), read with a z halo of the receptive radius.
            Larger windows waste less compute on the halo and use more memory.
        release_memory: hand freed memory back to the OS after every tile (glibc ``malloc_trim``): the lowest
            resident memory, for a host process that keeps running (Slicer), at a small cost in speed.

    Raises:
        ValueError: a value out of range, or (``from_value``) an unknown key.
    """

    tile_size: int = 224
    z_window: int = 48
    release_memory: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.release_memory, bool):
            raise ValueError(f"`release_memory` must be True or False, got {self.release_memory!r}")
        for name, low in (("tile_size", 1), ("z_window", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}")

    @classmethod
    def from_value(cls, value: TilingOptions | Mapping[str, Any] | None) -> TilingOptions:
        """Accept options, a mapping of some of their fields (unknown keys are an error), or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"`tiling` must be a TilingOptions or a dict, got {type(value).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown tiling option(s) {unknown}; the options are {sorted(known)}")
        return cls(**value)


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

    @property
    def read(self) -> slice:
        """The part of the input to read."""
        return slice(self.read_start, self.read_stop)

    @property
    def keep(self) -> slice:
        """The part of what comes back to keep."""
        return slice(self.keep_start, self.keep_stop)


def plan_tiles(size: int, tile: int, halo: int) -> list[Span]:
    """Cut an axis of ``size`` voxels into equal cores of at most ``tile`` voxels, read with ``halo`` of context.

    The cores are balanced (512 voxels with tile 224 give cores of 170, 171 and 171, not 224 + 224 + 64), so no
    tile wastes its halo on a thin sliver.
    """
    if tile < 1:
        raise ValueError(f"`tile_size` must be >= 1 voxel, got {tile}")
    count = math.ceil(size / tile)
    bounds = [size * i // count for i in range(count + 1)]  # cores differ by at most one voxel
    spans = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        read_start, read_stop = max(0, start - halo), min(size, stop + halo)
        spans.append(Span(read_start, read_stop, start - read_start, stop - read_start))
    return spans


@dataclass(frozen=True)
class ZWindow:
    """Observed slices ``[read_start, read_stop)`` are read to compute HR slices ``[hr_start, hr_stop)``."""

    read_start: int
    read_stop: int
    hr_start: int
    hr_stop: int


def plan_z_windows(n_lr: int, n_hr: int, scale: float, window: int, halo: int) -> list[ZWindow]:
    """Windows that partition the HR slices; each reads its core observed slices plus ``halo`` on each side.

    The cores are balanced as :func:`plan_tiles`'s (300 observed slices with window 48 give seven cores of 42 or 43
    slices, not six of 48 and a sliver of 12): as many windows, so the same halo work, and a smaller largest window,
    which sets the network's peak memory. HR slice k (at observed position p = k / scale) belongs to the window whose
    core ``[a, b)`` contains p; the last window also takes the HR tail past the last observed slice. The read span
    covers ``[p - halo, p + halo]`` for every owned p (clipped to the volume): ``halo`` is the z receptive radius in
    observed slices, counted from the HR position.
    """
    if window < 1:
        raise ValueError(f"`z_window` must be >= 1 observed slice, got {window}")
    count = math.ceil(n_lr / window)
    cores = [n_lr * i // count for i in range(count + 1)]  # cores differ by at most one slice
    out = []
    for a, b in zip(cores[:-1], cores[1:], strict=True):
        k0 = int(math.ceil(a * scale - 1e-9))
        k1 = n_hr if b == n_lr else int(math.ceil(b * scale - 1e-9))
        if k1 > k0:
            out.append(ZWindow(max(0, a - halo), min(n_lr, b + halo), k0, k1))
    return out
