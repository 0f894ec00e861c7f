"""Thin-slice volumes as normalised stacks in memory: read once, split by a block of slices, and their
high-resolution axes. The layer below training, evaluation and adaptation, which all score or sample these stacks.

Validation is split off by a contiguous block of slices at the end of the z axis (or by whole volumes); the
``gap`` slices before the block are dropped, and only the rest is ever sampled, along any axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from ..io.intensity import IntensityNormalizer
from ..io.volumes import READ_SUFFIXES, read_volume

MR_RULES = ("protocol", "input")  # how MR training volumes are scaled to [0, 1] (see load_volumes)


@dataclass
class TrainingVolume:
    """A normalised volume held in memory.

    Args:
        array: (Z, Y, X) float32, normalised to [0, 1].
        spacing: (z, y, x) voxel size in mm (numpy order).
        name: where it came from (for logs).
        normalizer: the intensity map that produced ``array`` (None for synthetic data).
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    name: str = "volume"
    normalizer: IntensityNormalizer | None = None


def find_volume_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders into volume paths: a folder is a DICOM series, or holds volume files.

    Raises:
        FileNotFoundError: a path does not exist. ValueError: a folder holds neither.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"data path does not exist: {str(path)!r}; check the spelling (--data)")
        if path.is_file():
            found.append(path)
            continue
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(READ_SUFFIXES))
        if files:
            found.extend(files)
        elif sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path)):
            found.append(path)
        else:
            raise ValueError(f"folder {str(path)!r} holds no volume files ({', '.join(READ_SUFFIXES)}) and no "
                             "DICOM series; give files or folders of them")
    return found


def load_volumes(paths: Sequence[str | Path], modality: str, mr_rule: str = "protocol") -> list[TrainingVolume]:
    """Read every volume once and normalise it to float32 [0, 1] with the ``modality`` rule ("ct", "mr", "auto").

    ``mr_rule``: "protocol" (min/max, the paper's and the metrics' rule) or "input" (an MR volume scaled as the
    network's input is at inference, :meth:`IntensityNormalizer.for_mr_input`: for training on what it will see).
    """
    if mr_rule not in MR_RULES:
        raise ValueError(f"`mr_rule` must be one of {MR_RULES}, got {mr_rule!r}")
    volumes = []
    for path in find_volume_files(paths):
        vol = read_volume(path)
        norm = IntensityNormalizer.for_volume(vol.array, modality)
        if norm.kind == "mr" and mr_rule == "input":
            norm = IntensityNormalizer.for_mr_input(vol.array)
        array = np.ascontiguousarray(norm.forward(vol.array.astype(np.float32)), dtype=np.float32)
        volumes.append(TrainingVolume(array, vol.geometry.spacing_zyx, str(path), norm))
    return volumes


def split_block(volume: TrainingVolume, fraction: float, gap: int = 4) -> tuple[TrainingVolume, TrainingVolume]:
    """Split off the last ``fraction`` of the z slices for validation, dropping ``gap`` slices before it.

    Returns:
        (train, validation) volumes; views of the input array (no copy). ``validation.name`` records the block
        as ``name[z0:z1]`` so evaluation can use the same block (``--block z0:z1``).

    Raises:
        ValueError: ``fraction`` not in (0, 1), or a part would be empty.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"`val_block` must be a fraction in (0, 1), got {fraction}; e.g. 0.15, or 0 for none")
    if gap < 0:
        raise ValueError(f"`gap` must be >= 0 slices, got {gap}")
    n = volume.array.shape[0]
    n_val = max(1, round(fraction * n))
    z0 = n - n_val
    if z0 - gap < 1:
        raise ValueError(f"{volume.name}: {n} slices are too few to hold out {n_val} slices with a gap of {gap}")
    train = TrainingVolume(volume.array[: z0 - gap], volume.spacing, volume.name, volume.normalizer)
    val = TrainingVolume(volume.array[z0:], volume.spacing, f"{volume.name}[{z0}:{n}]", volume.normalizer)
    return train, val


def usable_axes(spacing: Sequence[float], axis_ratio: float) -> tuple[int, ...]:
    """Numpy axes whose spacing is at most ``axis_ratio`` times the finest one: the high-resolution axes."""
    if not axis_ratio >= 1.0:
        raise ValueError(f"`axis_ratio` must be >= 1, got {axis_ratio}; 1.5 keeps axes within 1.5x the finest")
    finest = min(spacing)
    return tuple(a for a in range(3) if spacing[a] <= axis_ratio * finest * (1 + 1e-6))


