"""Process-level control of glibc's allocator (never applied on import of the library).

The command lines and bench keep freed memory (speed); runs that put memory first, as inside Slicer, hand it
back after each tile (:attr:`DPNSLCore.inference.tiling.TilingOptions.release_memory`).
"""

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory instead of returning it to the OS after every large tensor.

    Inference allocates and frees the same few large buffers per tile; returning them each time costs page
    faults that made whole-volume inference 25-35 % slower on 2-core machines. Buffers above glibc's mmap threshold
    (32 MiB at most) were still mapped and unmapped on every allocation: with no mmap at all (``M_MMAP_MAX = 0``)
    they come from the heap and are reused too (one network window of 18 x 224 x 224 observed voxels at x4, one
    thread: 2.13 -> 1.80 s, the same output bit for bit). Returns True when applied.
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TOP_PAD, 256 << 20)) \
        and bool(libc.mallopt(_M_MMAP_MAX, 0))


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


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

