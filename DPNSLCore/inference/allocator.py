"""Process-level control of glibc's allocator (never applied on import of the library).

The command lines, bench, evaluation and training let the network's z windows (and training steps) reuse freed
memory (speed: :func:`keep_freed_memory`, :func:`reuse_freed_memory`); runs that put memory first, as inside Slicer,
hand it back after each tile (:attr:`DPNSLCore.inference.tiling.TilingOptions.release_memory`).
"""

import ctypes
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_MMAP_MAX_DEFAULT = 65536  # glibc's own default: large blocks mapped
_MMAP_THRESHOLD_MAX = 32 << 20  # the largest threshold glibc accepts on 64-bit

_kept = False  # whether keep_freed_memory() changed this process's allocator (glibc has no getter)
_reusing = False  # inside reuse_freed_memory()


def keep_freed_memory() -> bool:
    """Let :func:`reuse_freed_memory` keep the network's freed buffers in the heap for the next window; blocks
    above 32 MiB stay mapped elsewhere, as glibc maps them by default. Returns True when applied (glibc only).

    Inference allocates and frees the same few large buffers per z window; returning them each time costs page
    faults that made whole-volume inference 25-35 % slower on 2-core machines (one network window of 18 x 224 x 224
    observed voxels at x4, one thread: 2.13 -> 1.80 s, the same output bit for bit). Keeping every block in the heap
    for the whole run, as this did before, fragmented it: the column's estimate, projection and bounds step and the
    output volume sat between the windows' buffers, and on a 512 x 512 x 300 CT at x4 the heap held 2.8 GB of free
    memory beside 1.9 GB in use (4.1 GB peak RSS; docs/results.md).
    """
    global _kept
    libc = _libc()
    if libc is None:
        return False
    _kept = bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TOP_PAD, 256 << 20)) \
        and bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX))
    return _kept


@contextmanager
def reuse_freed_memory(*, release: bool = False) -> Iterator[None]:
    """Within: every block comes from the heap and goes back to it (``M_MMAP_MAX = 0``), so the next window or
    training step reuses its pages without faulting them in again; after: large blocks mapped again. With
    ``release``, leaving also hands the heap's free pages back (``malloc_trim``), so what the windows freed does not
    stay resident beside a large column's own arrays. Does nothing unless :func:`keep_freed_memory` was applied;
    nested, only the outermost acts.

    The release costs a page fault per page the next windows touch again, so the engine asks for it only for large
    columns (:data:`DPNSLCore.inference.engine.RELEASE_COLUMN_BYTES`): on the 512 x 512 x 300 CT at x4, 3.01 GB peak
    RSS instead of 4.04 GB for 7 % more time; on 60 x 384 x 384 at x4 it would cost 11 % and save nothing.
    """
    global _reusing
    libc = _libc() if _kept and not _reusing else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    _reusing = True
    try:
        yield
    finally:
        _reusing = False
        libc.mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)
        if release:
            release_freed_memory()


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextmanager
def released_on_leaving() -> Iterator[None]:
    """Within: nothing changes; leaving (also on an error): :func:`release_freed_memory`. For a stage whose
    temporaries below glibc's mapping threshold (the bounds step's 20 MB column chunks) would otherwise stay resident
    as holes in the heap that the next stage cannot fill."""
    try:
        yield
    finally:
        release_freed_memory()


def release_freed_memory() -> bool:
    """Return the heap's free pages to the OS now (glibc ``malloc_trim``); True when something was released.

    Tile after tile, the network's freed buffers stay resident in glibc's heaps (fragmented, above its trim
    threshold): measured in a Slicer-like process on a 512x512x60 x4 run, 264 MiB beyond the output without this
    after each tile, 30 MiB with it. A no-op (False) where glibc is not the allocator.
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    return bool(libc.malloc_trim(0))


def available_memory_bytes() -> int | None:
    """Memory a new allocation can still get without the OOM killer: MemAvailable + SwapFree of /proc/meminfo on
    Linux; None elsewhere (not known: no check is made).

    Linux overcommits: ``np.empty`` of an output larger than the machine succeeds and the process is killed later,
    mid-run and without a message, when the pages are touched; so the need is compared with this up front.
    """
    try:
        with open("/proc/meminfo") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        return sum(int(fields[key].split()[0]) * 1024 for key in ("MemAvailable", "SwapFree"))
    except (OSError, KeyError, ValueError):
        return None

