"""glibc allocator control: the network's windows reuse freed heap memory, everything else is mapped as glibc maps it
by default, and leaving the windows of a large column hands the heap's free pages back. Each case runs in a fresh
interpreter (the settings are process-wide)."""

import ctypes
import subprocess
import sys
import textwrap

import pytest


def _has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not _has_mallinfo2(),
                                reason="glibc >= 2.33 (mallinfo2) only: the allocator control is a no-op elsewhere")

PROBE = textwrap.dedent("""
    import ctypes, numpy as np
    from DPNSLCore.inference.allocator import keep_freed_memory, reuse_freed_memory

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    MB = 1 << 20

    def mapped_by(nbytes):  # bytes glibc mapped outside its heap for one live block of nbytes
        before = libc.mallinfo2().hblkhd
        block = np.ones(nbytes, np.uint8)
        grown = libc.mallinfo2().hblkhd - before
        del block
        return grown // MB

    def rss():
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * 4096 // MB
""")


def _run(body: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", PROBE + textwrap.dedent(body)], capture_output=True, text=True,
                         check=True)
    return [int(v) for v in out.stdout.split()]


def test_only_the_windows_keep_large_blocks_in_the_heap_and_a_release_gives_the_pages_back():
    outside, inner_nested, inside, resident, after_release, after, kept = _run("""
        assert keep_freed_memory()
        outside = mapped_by(64 * MB)
        with reuse_freed_memory(release=True):
            with reuse_freed_memory():  # nested: the inner one must leave the outer one's setting
                inner_nested = mapped_by(64 * MB)
            inside = mapped_by(64 * MB)
            block = np.ones(512 * MB, np.uint8)  # in the heap; freed, its pages stay resident
            del block
            resident = rss()
        after_release, after = rss(), mapped_by(64 * MB)
        with reuse_freed_memory():  # without release the freed heap stays resident for the next windows
            block = np.ones(512 * MB, np.uint8)
            del block
        print(outside, inner_nested, inside, resident, after_release, after, rss() - after_release)
    """)
    assert outside == 64 and after == 64  # mapped, as by default
    assert inner_nested == 0 and inside == 0  # from the heap, reusable
    assert after_release < resident - 400  # the 512 MB the windows freed went back to the OS
    assert kept > 400


def test_without_keep_freed_memory_nothing_changes():
    (inside,) = _run("""
        with reuse_freed_memory():
            inside = mapped_by(64 * MB)
        print(inside)
    """)
    assert inside == 64


def test_released_on_leaving_hands_the_heap_back_on_leaving_and_on_an_error(monkeypatch):
    from DPNSLCore.inference import allocator

    calls = []
    monkeypatch.setattr(allocator, "release_freed_memory", lambda: calls.append("trim") or True)
    with allocator.released_on_leaving():
        assert calls == []  # nothing on entering
    assert calls == ["trim"]
    with pytest.raises(KeyError), allocator.released_on_leaving():
        raise KeyError("a stage failed")
    assert calls == ["trim", "trim"]
