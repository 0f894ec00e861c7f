"""Intensity normalisation to [0, 1] for CT and MR, as in the paper's evaluation protocol (DESIGN.md §5).

Both modalities use one affine map ``u = clip((x - offset) / scale, 0, 1)`` with exact inverse
``x = u * scale + offset`` (for x inside the window):

- CT (Hounsfield units): clip to [-1024, inf), shift by +1024, clip to [0, 4095], divide by 4095, i.e.
  ``offset = -1024``, ``scale = 4095``: -1024 HU -> 0, 3071 HU -> 1.
- MR: the volume's own range, ``offset = min``, ``scale = max - min`` (the protocol's rule, for metrics and
  training). What the network is given at inference (:meth:`IntensityNormalizer.for_mr_input`) runs from the
  0.1th to the 99.9th percentile instead of the minimum and the maximum, so that a few very bright (or negative)
  voxels (vessels, fat, a spike) do not compress the contrast of all the tissue.

Example:
    >>> norm = IntensityNormalizer.for_ct()
    >>> float(norm.forward(np.array([-2000.0, -1024.0, 3071.0]))[2])
    1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "CT_AIR_MINIMUM", "CT_OFFSET", "CT_SCALE", "CT_PERCENTILE_THRESHOLD", "MR_INPUT_PERCENTILE", "IntensityNormalizer",
    "ModalityGuess", "explain_modality", "guess_modality", "looks_like_shifted_ct",
]

CT_OFFSET = -1024.0
CT_SCALE = 4095.0
CT_PERCENTILE_THRESHOLD = -500.0
_KINDS = ("ct", "mr")
#: upper end of the network's MR input (percent of the voxels; the lower end is 100 minus it): the MS training
#: volumes reach their maximum there (saturated at 4095), clinical ones lie 1.5-2.4x below it; every shared MR
#: volume has its minimum (0, background) at the lower end (README, "MR intensities given to the network")
MR_INPUT_PERCENTILE = 99.9
_PERCENTILE_SAMPLE = 4_000_000  # voxels (evenly strided) the percentile is taken over: ~0.1 s, not seconds

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _as_float(x: ArrayT) -> ArrayT:
    """``x`` as a floating array/tensor (integers become float32; float dtypes are kept)."""
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.to(torch.float32)
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def _min_max(volume: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Finite min and max of a non-empty volume, or ValueError."""
    if isinstance(volume, torch.Tensor):
        volume = volume.detach().cpu().numpy()
    volume = np.asarray(volume)
    if volume.size == 0:
        raise ValueError(f"`volume` must not be empty, got shape {volume.shape}")
    lo, hi = float(volume.min()), float(volume.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"`volume` must be finite, got range [{lo}, {hi}]; replace NaN/inf voxels first")
    return lo, hi


@dataclass(frozen=True)
class IntensityNormalizer:
    """Affine intensity map to [0, 1] and back: ``forward(x) = clip((x - offset) / scale, 0, 1)``.

    ``inverse(u) = u * scale + offset`` undoes ``forward`` exactly inside the window.

    Build it with :meth:`for_ct`, :meth:`for_mr` or :meth:`for_volume`; store it with :meth:`to_dict`.

    Args:
        kind: "ct" or "mr".
        scale: intensity units per normalised unit (> 0, finite); 4095 for CT, max - min for MR.
        offset: intensity that maps to 0 (finite); -1024 for CT, the volume's min for MR.

    Raises:
        ValueError: on an unknown kind, a non-positive or non-finite scale, or a non-finite offset.
    """

    kind: str
    scale: float
    offset: float

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"`kind` must be one of {_KINDS}, got {self.kind!r}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"`scale` must be finite and > 0, got {self.scale!r}")
        if not math.isfinite(self.offset):
            raise ValueError(f"`offset` must be finite, got {self.offset!r}")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "offset", float(self.offset))

    @classmethod
    def for_ct(cls) -> IntensityNormalizer:
        """CT normaliser: HU window [-1024, 3071] -> [0, 1] (paper protocol)."""
        return cls("ct", CT_SCALE, CT_OFFSET)

    @classmethod
    def for_mr(cls, volume: np.ndarray | torch.Tensor) -> IntensityNormalizer:
        """MR normaliser from the volume's range: min -> 0, max -> 1.

        Raises:
            ValueError: if ``volume`` is empty, not finite, or constant (max == min: nothing to scale).
        """
        lo, hi = _min_max(volume)
        if hi <= lo:
            raise ValueError(
                f"`volume` is constant (every voxel = {lo}); MR normalisation divides by max - min: "
                "check the input, or use IntensityNormalizer.for_ct() for CT in HU"
            )
        return cls("mr", hi - lo, lo)

    @classmethod
    def for_mr_input(cls, volume: np.ndarray | torch.Tensor,
                     percentile: float = MR_INPUT_PERCENTILE) -> IntensityNormalizer:
        """MR normaliser for the network's input: the (100 - ``percentile``)-th percentile -> 0, the
        ``percentile``-th -> 1 (voxels beyond saturate in the network's input only; the acquired values are kept
        by the projection). Falls back to min/max (:meth:`for_mr`) when the two percentiles coincide.

        Raises:
            ValueError: as :meth:`for_mr`, or a percentile outside [50, 100].
        """
        if not 50 <= percentile <= 100:
            raise ValueError(f"`percentile` must lie in [50, 100], got {percentile!r}")
        full = cls.for_mr(volume)
        values = volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
        values = values.ravel()[:: max(1, values.size // _PERCENTILE_SAMPLE)]
        bottom, top = (float(v) for v in np.percentile(values, [100 - percentile, percentile]))
        return cls("mr", top - bottom, bottom) if top > bottom else full

    @classmethod
    def for_volume(cls, volume: np.ndarray | torch.Tensor, modality: str = "auto") -> IntensityNormalizer:
        """Normaliser for ``volume`` with ``modality`` "ct", "mr" or "auto" (see :func:`guess_modality`)."""
        if modality not in ("auto", *_KINDS):
            raise ValueError(f"`modality` must be 'auto', 'ct' or 'mr', got {modality!r}")
        if modality == "auto":
            modality = guess_modality(volume)
        return cls.for_ct() if modality == "ct" else cls.for_mr(volume)

    def forward(self, x: ArrayT) -> ArrayT:
        """Map intensities to [0, 1]; numpy in -> numpy out, tensor in -> tensor out (integers become float32)."""
        u = (_as_float(x) - self.offset) / self.scale
        return u.clamp(0.0, 1.0) if isinstance(u, torch.Tensor) else np.clip(u, 0.0, 1.0)

    def inverse(self, u: ArrayT) -> ArrayT:
        """Map normalised values back to intensities: ``u * scale + offset`` (no clipping)."""
        return _as_float(u) * self.scale + self.offset

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict ``{"kind", "scale", "offset"}``."""
        return {"kind": self.kind, "scale": self.scale, "offset": self.offset}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntensityNormalizer:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ValueError: if keys are missing or unknown, or values invalid.
        """
        keys = {"kind", "scale", "offset"}
        if not isinstance(data, dict) or set(data) != keys:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"`data` must be a dict with exactly the keys {sorted(keys)}, got {got}")
        return cls(str(data["kind"]), float(data["scale"]), float(data["offset"]))


CT_AIR_MINIMUM = -900.0  # at or below this is air in HU (about -1000): no MR rule gives such values
CT_AIR_SHARE, CT_AIR_VOXELS = 0.0005, 64  # this share and count of voxels at air make a CT (one spike does not)


@dataclass(frozen=True)
class ModalityGuess:
    """The modality the intensities (or the header) point to, and why, in words."""

    modality: str
    reason: str


def guess_modality(array: np.ndarray | torch.Tensor, stated: str | None = None) -> str:
    """"ct" or "mr" for a volume: :func:`explain_modality` without the reason."""
    return explain_modality(array, stated).modality


def explain_modality(array: np.ndarray | torch.Tensor, stated: str | None = None) -> ModalityGuess:
    """Which intensity rule a volume needs, "ct" or "mr", and why.

    Rule: the header's modality (``stated``, e.g. DICOM Modality) when it is CT or MR; else "ct" when the
    intensities reach air in Hounsfield units: the 1st percentile below -500 (at least 1 % air around the body), or
    at least 0.05 % of the voxels (and 64) at or below -900 HU (a crop or a body-masked CT with little air still
    holds some, e.g. the trachea: a 64x64 centre crop of 150 slices of a chest CT has its 1st percentile at
    -139 HU and 525 voxels, 0.085 %, of air; one outlier voxel is not air).
    MR intensities are non-negative, or small around 0 when z-scored, so they give "mr". CT stored with a shift
    (HU + 1024, no negative values) is reported as "mr" (:func:`looks_like_shifted_ct` warns): pass the modality.

    Raises:
        ValueError: if ``array`` is empty or contains NaN/inf.
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    _min_max(array)
    if stated is not None and stated.lower() in _KINDS:
        return ModalityGuess(stated.lower(), f"the header says {stated.upper()}")
    flat = array.reshape(-1)
    sample = flat[:: max(1, flat.size // _PERCENTILE_SAMPLE)]
    first = float(np.percentile(sample, 1))
    if first < CT_PERCENTILE_THRESHOLD:
        return ModalityGuess("ct", f"the intensities look like HU (1st percentile {first:.4g}, below -500: air)")
    air = int(np.count_nonzero(array <= CT_AIR_MINIMUM))
    if air >= max(CT_AIR_VOXELS, CT_AIR_SHARE * array.size):
        return ModalityGuess("ct", f"the intensities reach air in HU ({air} voxels, {100 * air / array.size:.2g} %, "
                                   "at or below -900)")
    return ModalityGuess("mr", f"the intensities show no air in HU (1st percentile {first:.4g} >= -500, "
                               f"{air} voxels at or below -900)")


def looks_like_shifted_ct(array: np.ndarray | torch.Tensor) -> bool:
    """True when a volume with no negative values looks like CT stored as HU + 1024 (a missing rescale intercept).

    Rule: no value below 0, and at least 30 % of the voxels above 200 lie in [974, 1124] (soft tissue, -50..100 HU
    after the shift). On the shared data every clinical CT shifted by +1024 is flagged (39-50 %) and no MR is
    (at most 18 %).
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.size == 0 or float(array.min()) < 0:
        return False
    sample = array.reshape(-1)[:: max(1, array.size // 2_000_000)]  # ~2 M voxels are plenty for a fraction
    body = sample[sample > 200]
    return bool(body.size) and float(np.mean((body >= 974) & (body <= 1124))) >= 0.3
