"""Process-level allocator tuning for the command lines (never applied on import of the library)."""

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory instead of returning it to the OS after every large tensor.

    Inference allocates and frees the same few large buffers per tile; returning them each time costs page
    faults that made whole-volume inference 25-35 % slower on 2-core machines. Returns True when applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TOP_PAD, 256 << 20))
