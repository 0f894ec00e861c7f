"""What the NIfTI reader of ITK (SimpleITK <= 2.5) does not say about a file: NaN/Inf voxels and the sform.

- ITK's copy of nifti_read_buffer() overwrites every non-finite float voxel with 0 without a word (fixed for ITK 6,
  InsightSoftwareConsortium/ITK#6683). NaN is routine in neuroimaging (the outside of a mask, a statistical map), and
  0 is a valid intensity, so a volume read that way is silently another one. :func:`count_non_finite` reads the
  voxel block itself (NIfTI-1 or NIfTI-2, gzipped or not, either byte order), in chunks, for float data only:
  integer data cannot hold NaN and is not read twice.
- ITK writes a .nii.gz through one zlib stream at its own level (the writer's compression level is ignored): 20 s for
  a 1197 x 512 x 512 int16 output, longer than linear interpolation takes. :func:`gzip_file` compresses the file ITK
  wrote uncompressed in parallel blocks at level 1 instead, as gzip members back to back (RFC 1952: zlib, ITK,
  nibabel and Python read them as one stream).
- A file states its geometry twice, qform and sform. ITK uses the sform when it is a rotation with the pixdim
  spacings and otherwise falls back to the qform (a console warning at most); FSL and nibabel use the sform. A
  sheared or rescaled sform thus puts the same voxels in two places. :func:`sform` gives it, to compare.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["count_non_finite", "gzip_file", "sform"]

_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 / float64
_CHUNK = 1 << 24  # bytes read at a time (a multiple of 8)


#: sizeof_hdr -> struct formats and offsets of (datatype, dim[8], vox_offset, sform_code, srow_x/y/z) in NIfTI-1/2
_LAYOUTS = {348: (("h", 70), ("8h", 40), ("f", 108), ("h", 254), ("12f", 280)),
            540: (("h", 12), ("8q", 16), ("q", 168), ("i", 348), ("12d", 400))}


@dataclass(frozen=True)
class _Header:
    order: str  # "<" or ">"
    datatype: int
    offset: int  # where the voxels start
    count: int  # voxels
    sform_code: int
    srow: tuple[float, ...]  # the 3x4 sform, row-major


def _header(first: bytes) -> _Header | None:
    """The fields this module needs of a NIfTI-1/2 header, or None when ``first`` does not start with one."""
    for order in ("<", ">"):
        size = struct.unpack(f"{order}i", first[:4])[0]
        if size in _LAYOUTS and len(first) >= size:
            (datatype,), dims, (offset,), (code,), srow = (struct.unpack_from(order + fmt, first, at)
                                                           for fmt, at in _LAYOUTS[size])
            count = int(np.prod([max(d, 1) for d in dims[1:dims[0] + 1]]))
            return _Header(order, datatype, int(offset), count, int(code), tuple(float(v) for v in srow))
    return None


def _read_header(path: Path) -> tuple[_Header | None, gzip.GzipFile | BinaryIO]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    handle = opener(path, "rb")
    return _header(handle.read(540)), handle


def sform(path: str | Path) -> np.ndarray | None:
    """The (3, 4) sform of a .nii / .nii.gz file (RAS mm from voxel indices), or None when its code is 0 (unset) or
    the file is not NIfTI."""
    header, handle = _read_header(Path(path))
    handle.close()
    if header is None or header.sform_code <= 0:
        return None
    return np.asarray(header.srow, dtype=np.float64).reshape(3, 4)


def count_non_finite(path: str | Path) -> int | None:
    """NaN/Inf voxels in the float data of a .nii / .nii.gz file; None for integer data or a file that is not NIfTI."""
    header, handle = _read_header(Path(path))
    with handle:
        if header is None or header.datatype not in _FLOAT_TYPES:
            return None
        dtype = np.dtype(header.order + _FLOAT_TYPES[header.datatype])
        handle.seek(header.offset)
        remaining, bad = header.count * dtype.itemsize, 0
        while remaining > 0:
            block = handle.read(min(_CHUNK, remaining))
            if not block:
                break
            usable = len(block) - len(block) % dtype.itemsize
            bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(block[:usable], dtype=dtype))))
            remaining -= len(block)
        return bad


def gzip_file(source: str | Path, target: str | Path, *, level: int = 1, workers: int | None = None,
              block: int = 1 << 25) -> None:
    """Write ``source`` gzip-compressed to ``target``: ``block``-byte pieces compressed by ``workers`` threads (zlib
    releases the GIL; default: the CPUs, at most 4) and written in order, each a complete gzip member, so any gzip
    reader sees the whole file. At most ``workers + 1`` pieces are in memory."""
    workers = workers or min(4, os.cpu_count() or 1)
    with open(source, "rb") as src, open(target, "wb") as dst, ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        while data := src.read(block):
            pending.append(pool.submit(gzip.compress, data, level, mtime=0))
            if len(pending) > workers:
                dst.write(pending.popleft().result())
        while pending:
            dst.write(pending.popleft().result())
