"""Count the NaN/Inf voxels a NIfTI file holds, which the NIfTI reader of ITK (SimpleITK <= 2.5) turns into 0.

ITK's copy of nifti_read_buffer() overwrites every non-finite float voxel with 0 without a word (fixed for ITK 6,
InsightSoftwareConsortium/ITK#6683). NaN is routine in neuroimaging (the outside of a mask, a statistical map), and
0 is a valid intensity, so a volume read that way is silently another one. :func:`count_non_finite` reads the
voxel block itself (NIfTI-1 or NIfTI-2, gzipped or not, either byte order), in chunks, for float data only: integer
data cannot hold NaN and is not read twice.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

__all__ = ["count_non_finite"]

_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 / float64
_CHUNK = 1 << 24  # bytes read at a time (a multiple of 8)


#: sizeof_hdr -> struct formats and offsets of (datatype, dim[8], vox_offset) in NIfTI-1 and NIfTI-2 headers
_LAYOUTS = {348: (("h", 70), ("8h", 40), ("f", 108)), 540: (("h", 12), ("8q", 16), ("q", 168))}


def _header(first: bytes) -> tuple[str, int, int, int] | None:
    """(byte order, datatype, voxel offset, voxel count) of a NIfTI-1/2 header, or None when it is not one."""
    for order in ("<", ">"):
        size = struct.unpack(f"{order}i", first[:4])[0]
        if size in _LAYOUTS and len(first) >= size:
            (datatype,), dims, (offset,) = (struct.unpack_from(order + fmt, first, at) for fmt, at in _LAYOUTS[size])
            return order, datatype, int(offset), int(np.prod([max(d, 1) for d in dims[1:dims[0] + 1]]))
    return None


def count_non_finite(path: str | Path) -> int | None:
    """NaN/Inf voxels in the float data of a .nii / .nii.gz file; None for integer data or a file that is not NIfTI."""
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        first = handle.read(540)
        header = _header(first)
        if header is None:
            return None
        order, datatype, offset, count = header
        if datatype not in _FLOAT_TYPES:
            return None
        dtype = np.dtype(order + _FLOAT_TYPES[datatype])
        handle.seek(offset)
        remaining, bad = count * dtype.itemsize, 0
        while remaining > 0:
            block = handle.read(min(_CHUNK, remaining))
            if not block:
                break
            usable = len(block) - len(block) % dtype.itemsize
            bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(block[:usable], dtype=dtype))))
            remaining -= len(block)
        return bad
