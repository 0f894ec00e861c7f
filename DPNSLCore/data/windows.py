"""Random (LR, HR) slice windows drawn from normalised stacks (:mod:`.stacks`): training and adaptation data.

Sampling follows the paper (DESIGN.md section 4) with what the data README asks for:

- every volume is read once, normalised to [0, 1] (CT window or MR range) and kept as float32;
- a sample is a window of ``hr_length(n_lr, s)`` consecutive HR slices at a random position, a random
  square in-plane crop, random flips of the two in-plane axes, and its simulated acquisition ``A x``;
- **every high-resolution axis is a slice axis**: any numpy axis whose spacing is within ``axis_ratio`` times
  the finest spacing of its volume can be the slice axis of a sample. The chosen axis is moved to axis 0 and
  nothing is resampled, so the in-plane axes of such a sample may have different spacings (e.g. 0.78 x 1.0 mm
  for a CT viewed along y): that in-plane anisotropy is accepted on purpose;
- one scale and one crop size per batch (every sample of a batch has the same shape); views smaller than the
  batch's crop sit that batch out;
- deterministic: each sample's randomness comes from ``(seed, step, rank, index)`` alone, so the same step
  gives the same batch whatever the number of workers, and resuming at step N needs no sampler state.

Validation is split off by a contiguous block of slices at the end of the z axis (or by whole volumes); the
``gap`` slices before the block are dropped, and only the rest is ever sampled, along any axis.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..ops.operators import Degradation, hr_length, make_degradation
from .acquisition import Draw, ScaleSpec, TrainingAcquisition
from .augment import BlurAugment
from .stacks import TrainingVolume, usable_axes

MIN_CROP = 8


def parse_crop(crop: str | int | tuple[int, int]) -> tuple[int, int]:
    """``"64:256"`` -> (64, 256) (a random size per batch), ``"128"`` or 128 -> (128, 128).

    Raises:
        ValueError: not one or two integers, below 8 voxels, or min > max.
    """
    if isinstance(crop, tuple):
        lo, hi = crop
    else:
        try:
            parts = [int(p) for p in str(crop).split(":")]
        except ValueError:
            parts = []
        if len(parts) not in (1, 2):
            raise ValueError(f"`crop` must be a size such as 128 or a range such as 64:256, got {crop!r}")
        lo, hi = parts[0], parts[-1]
    if lo < MIN_CROP or hi < lo:
        raise ValueError(f"`crop` must satisfy {MIN_CROP} <= min <= max voxels, got {lo}:{hi}")
    return int(lo), int(hi)


class SampleKey(NamedTuple):
    """Everything that defines one sample (what the batch sampler hands to the dataset)."""

    step: int
    index: int
    rank: int
    scale: float
    crop: int
    kind: str = "decimate"
    thickness: float = 0.0  # profile thickness in observed spacings (0: no profile)


class SliceWindowDataset(Dataset):
    """Random (LR, HR) slice windows from in-memory volumes, indexed by :class:`SampleKey`.

    Args:
        volumes: normalised training volumes (already without their validation block).
        scales: scale factors (one drawn per batch), a "LOW:HIGH" range, or a :class:`ScaleSpec`.
        n_lr: observed slices per window (the paper uses 4).
        crop: in-plane crop size, a range (min, max) drawn per batch (capped by the largest view); a sample
            comes from the views that hold its batch's crop, so small volumes only give small crops.
        degradation: "decimate", "sample", "profile" or "mix" (see :mod:`DPNSLCore.training.acquisition`), with
            ``profile``, ``thickness`` (a value or (low, high) in spacings) and ``decimate_share``.
        axis_ratio: axes with spacing <= axis_ratio * finest spacing are slice axes (see module docstring).
        blur: smooth-volume augmentation (:mod:`.augment`); None: off.
        seed: base seed; sample ``(step, index, rank)`` is a pure function of it.

    Each item is ``{"lr": (1, n_lr, c, c), "hr": (1, n_hr, c, c), "scale": float, "thickness": float}``.

    Raises:
        ValueError: bad scales or crop, no volumes, no axis long enough for the largest window, or no view as
            large as the minimum crop.
    """

    def __init__(self, volumes: Sequence[TrainingVolume], scales: Sequence[float] | str | ScaleSpec, *,
                 n_lr: int = 4, crop: str | int | tuple[int, int] = (64, 256), degradation: str = "decimate",
                 profile: str = "box", thickness: float | tuple[float, float] = 1.0, decimate_share: float = 0.5,
                 axis_ratio: float = 1.5, blur: BlurAugment | None = None, seed: int = 0) -> None:
        if not volumes:
            raise ValueError("no training volumes; give at least one with --data")
        if n_lr < 2:
            raise ValueError(f"`n_lr` must be >= 2 observed slices, got {n_lr}")
        spec = ScaleSpec.parse(scales if isinstance(scales, (str, ScaleSpec)) else tuple(scales))
        self.acquisition = TrainingAcquisition(degradation, spec, profile,
                                               TrainingAcquisition.parse_thickness(thickness), decimate_share)
        self.n_lr, self.seed, self.kind = int(n_lr), int(seed), degradation
        self.blur = blur or BlurAugment()
        self._degradations: dict[tuple[str, float, float], Degradation] = {}
        self.volumes = list(volumes)
        self.views = self._plan_views(axis_ratio)
        self._weights = np.array([w for _, w in self.views])
        self._fits = np.array([min(v.shape[1:]) for v, _ in self.views])  # largest square crop of each view
        lo, hi = parse_crop(crop)
        cap = int(self._fits.max())
        if cap < lo:
            raise ValueError(f"the largest in-plane size of any training view is {cap} voxels, below the minimum crop "
                             f"{lo}; lower --crop (e.g. {max(MIN_CROP, cap)}:{hi})")
        self.crop_range = (lo, min(hi, cap))

    @property
    def scales(self) -> tuple[float, ...]:
        """The listed training scales (empty for a range)."""
        return self.acquisition.scales.values

    def _plan_views(self, axis_ratio: float) -> list[tuple[np.ndarray, float]]:
        """(array with the slice axis moved to 0, sampling weight) for every usable (volume, axis)."""
        longest = hr_length(self.n_lr, self.acquisition.scales.largest)
        views = []
        for vol in self.volumes:
            axes = [a for a in usable_axes(vol.spacing, axis_ratio) if vol.array.shape[a] >= longest]
            for axis in axes:
                views.append((np.moveaxis(vol.array, axis, 0), vol.array.size / len(axes)))
        if not views:
            raise ValueError(f"no training volume has a high-resolution axis of at least {longest} slices (the HR "
                             f"window for n_lr={self.n_lr} at scale {self.acquisition.scales.largest:g}); use smaller "
                             "scales/n_lr")
        return views

    def degradation(self, scale: float, thickness: float = 0.0) -> Degradation:
        """The acquisition operator of windows at ``scale`` (a profile of ``thickness`` spacings when > 0)."""
        kind = "profile" if thickness > 0 else ("decimate" if self.kind in ("decimate", "mix") else self.kind)
        key = (kind, float(scale), float(thickness))
        if key not in self._degradations:
            if len(self._degradations) > 4096:  # continuous draws: keep the cache bounded
                self._degradations.clear()
            self._degradations[key] = make_degradation(kind, scale, self.n_lr, profile=self.acquisition.profile,
                                                       thickness=thickness if thickness > 0 else 1.0)
        return self._degradations[key]

    def __len__(self) -> int:
        return len(self.views)  # nominal: items are drawn by key, not by position

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor | float]:
        rng = np.random.default_rng([self.seed, key.step, key.rank, key.index])
        weights = self._weights * (self._fits >= key.crop)  # only views that hold the batch's crop
        view = self.views[rng.choice(len(self.views), p=weights / weights.sum())][0]
        deg = self.degradation(key.scale, key.thickness)
        length, height, width = view.shape
        c = key.crop
        z, y, x = (int(rng.integers(0, n - k + 1)) for n, k in ((length, deg.n_hr), (height, c), (width, c)))
        window = view[z : z + deg.n_hr, y : y + c, x : x + c]
        if rng.random() < 0.5:
            window = window[:, ::-1]
        if rng.random() < 0.5:
            window = window[:, :, ::-1]
        hr = self.blur(torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))[None], rng)
        return {"lr": deg.forward(hr).contiguous(), "hr": hr, "scale": float(key.scale),
                "thickness": float(key.thickness)}

    def batches(self, batch_size: int, *, start_step: int = 0, steps: int | None = None, rank: int = 0) -> BatchPlan:
        """Batch sampler for a DataLoader (``batch_sampler=``): steps ``start_step .. steps - 1``."""
        return BatchPlan(self, batch_size, start_step=start_step, steps=steps, rank=rank)


class BatchPlan(Sampler):
    """Yields one list of :class:`SampleKey` per step; acquisition, scale and crop are drawn per step from the seed.

    Every rank draws the same acquisition, scale and crop at a step (equal shapes across DDP processes) and its own
    samples.
    """

    def __init__(self, dataset: SliceWindowDataset, batch_size: int, *, start_step: int = 0,
                 steps: int | None = None, rank: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.start, self.stop, self.rank = dataset, batch_size, start_step, steps, rank

    def draw(self, step: int) -> tuple[Draw, int]:
        """(acquisition draw, crop size) of ``step``."""
        rng = np.random.default_rng([self.dataset.seed, step, 2**31])
        lo, hi = self.dataset.crop_range
        if self.dataset.acquisition.kind in ("decimate", "sample", "profile") and \
                not self.dataset.acquisition.scales.is_range:  # the draws of earlier runs, so they resume exactly
            a = self.dataset.acquisition
            scale = float(rng.choice(a.scales.values))
            thickness = a.thickness[0] if a.kind == "profile" else 0.0
            return Draw(a.kind, scale, thickness), int(rng.integers(lo, hi + 1))
        crop = int(rng.integers(lo, hi + 1))
        return self.dataset.acquisition.draw(rng), crop

    def __iter__(self) -> Iterator[list[SampleKey]]:
        step = self.start
        while self.stop is None or step < self.stop:
            draw, crop = self.draw(step)
            yield [SampleKey(step, i, self.rank, draw.scale, crop, draw.kind, draw.thickness)
                   for i in range(self.batch_size)]
            step += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("an endless BatchPlan has no length; give `steps`")
        return max(0, self.stop - self.start)
