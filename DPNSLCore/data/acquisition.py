"""What a training run simulates: the scales and the acquisitions its windows are drawn under.

Real thick slices are averages over a slice profile; the paper's protocol keeps every s-th thin slice. A model
for real data must see both, at the scales users ask for (×5–×7 and non-integer ones too), so a run draws, per
batch, one (acquisition, scale, thickness) from a :class:`TrainingAcquisition`:

- ``decimate``, ``sample`` or ``profile``: that acquisition only (the earlier single-kind runs);
- ``mix``: ``decimate`` with probability ``decimate_share`` (at an integer scale), else a ``profile`` slice
  profile whose thickness is drawn uniformly from ``thickness`` (in observed spacings: < 1 leaves gaps between
  slices, > 1 overlaps them).

Scales are a list (``2,3,4``: one of them per batch) or a range (``1.5:7``: uniform per batch; integer draws
within it for ``decimate``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..ops.grid import PROFILES

KINDS = ("decimate", "sample", "profile", "mix")


def parse_range(text: str | float, name: str, example: str) -> tuple[float, float]:
    """A command-line value or range: ``"1"`` -> (1, 1), ``"0.5:1.5"`` -> (0.5, 1.5); ``name`` and ``example`` word
    the error (``"`thickness`"``, ``"such as 0.75:1.5"``).

    Raises:
        ValueError: not a number, or more than two parts.
    """
    message = f"{name} must be a number or LOW:HIGH {example}, got {text!r}"
    try:
        parts = [float(p) for p in str(text).split(":")]
    except ValueError as err:
        raise ValueError(message) from err
    if len(parts) not in (1, 2):
        raise ValueError(message)
    return parts[0], parts[-1]



def parse_scales(text: str | Sequence[float]) -> tuple[float, ...]:
    """"2,3,4" -> (2.0, 3.0, 4.0). Raises ValueError on an empty list, a non-number or a value <= 1."""
    items = [p for p in text.split(",") if p.strip()] if isinstance(text, str) else list(text)
    try:
        scales = tuple(float(s) for s in items)
    except ValueError as err:
        raise ValueError(f"`scales` must be numbers separated by commas such as 2,3,4, got {text!r}") from err
    if not scales or any(not (s > 1 and np.isfinite(s)) for s in scales):
        raise ValueError(f"`scales` must be factors > 1 such as 2,3,4, got {text!r}")
    return scales

@dataclass(frozen=True)
class ScaleSpec:
    """Training scales: ``values`` (one drawn per batch) or a ``(low, high)`` range drawn uniformly."""

    values: tuple[float, ...] = ()
    low: float | None = None
    high: float | None = None

    @classmethod
    def parse(cls, text: str | list | tuple | ScaleSpec) -> ScaleSpec:
        """``"2,3,4"`` -> values, ``"1.5:7"`` -> range; a list of numbers -> values.

        Raises:
            ValueError: not numbers, a value <= 1, or low >= high.
        """
        if isinstance(text, ScaleSpec):
            return text
        if isinstance(text, str) and ":" in text:
            try:
                low, high = (float(p) for p in text.split(":"))
            except ValueError as err:
                raise ValueError(f"a scale range is LOW:HIGH such as 1.5:7, got {text!r}") from err
            if not (1.0 < low < high and math.isfinite(high)):
                raise ValueError(f"a scale range needs 1 < LOW < HIGH, got {text!r}")
            return cls(low=low, high=high)
        return cls(values=parse_scales(text))

    @property
    def is_range(self) -> bool:
        return self.low is not None

    @property
    def largest(self) -> float:
        return float(self.high if self.is_range else max(self.values))

    def integers(self) -> tuple[int, ...]:
        """The integer scales a decimate batch may use."""
        if self.is_range:
            return tuple(range(math.ceil(self.low - 1e-9), math.floor(self.high + 1e-9) + 1))
        return tuple(int(round(v)) for v in self.values if abs(v - round(v)) < 1e-9)

    def to_json(self) -> str | list[float]:
        """What the run folder records: ``"1.5:7"`` or the list."""
        return f"{self.low:g}:{self.high:g}" if self.is_range else list(self.values)


@dataclass(frozen=True)
class Draw:
    """The acquisition of one batch: ``thickness`` is 0 for decimate/sample (no profile)."""

    kind: str
    scale: float
    thickness: float = 0.0


@dataclass(frozen=True)
class TrainingAcquisition:
    """Per-batch acquisition of a run (see the module docstring).

    Args:
        kind: "decimate", "sample", "profile" or "mix".
        scales: the scale spec.
        profile: "box" or "gaussian" (profile batches).
        thickness: (low, high) slice thickness in observed spacings for profile batches (low == high: fixed).
        decimate_share: probability of a decimate batch ("mix" only).

    Raises:
        ValueError: an unknown kind/profile, a bad thickness or share, or no integer scale where decimate needs one.
    """

    kind: str
    scales: ScaleSpec
    profile: str = "box"
    thickness: tuple[float, float] = (1.0, 1.0)
    decimate_share: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"`degradation` must be one of {KINDS}, got {self.kind!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"`profile` must be one of {PROFILES}, got {self.profile!r}")
        low, high = self.thickness
        if not (0.0 < low <= high <= 10.0):
            raise ValueError(f"`thickness` must be a value or LOW:HIGH within (0, 10] spacings, got {low}:{high}")
        if not 0.0 <= self.decimate_share <= 1.0:
            raise ValueError(f"`decimate_share` must lie in [0, 1], got {self.decimate_share}")
        uses_decimate = self.kind == "decimate" or (self.kind == "mix" and self.decimate_share > 0)
        if uses_decimate and not self.scales.integers():
            raise ValueError(f"decimate needs integer scales, and {self.scales.to_json()} holds none; add one (e.g. "
                             "2,3,4) or use --degradation sample/profile")
        if self.kind == "decimate" and not self.scales.is_range and len(self.scales.integers()) != len(
                self.scales.values):
            raise ValueError(f"every scale must be an integer for decimate, got {list(self.scales.values)}; use "
                             "--degradation sample, profile or mix for the others")

    @classmethod
    def parse_thickness(cls, text: str | float | tuple[float, float]) -> tuple[float, float]:
        """``"1"`` -> (1, 1), ``"0.75:1.5"`` -> (0.75, 1.5)."""
        if isinstance(text, tuple):
            return float(text[0]), float(text[1])
        return parse_range(text, "`thickness`", "such as 0.75:1.5")

    def draw(self, rng: np.random.Generator) -> Draw:
        """One batch's (kind, scale, thickness) from ``rng``."""
        kind = self.kind
        if kind == "mix":
            kind = "decimate" if rng.random() < self.decimate_share else "profile"
        if kind == "decimate":
            scale = float(rng.choice(self.scales.integers()))
        elif self.scales.is_range:
            scale = float(rng.uniform(self.scales.low, self.scales.high))
        else:
            scale = float(rng.choice(self.scales.values))
        thickness = float(rng.uniform(*self.thickness)) if kind == "profile" else 0.0
        return Draw(kind, scale, thickness)

    def record(self) -> dict:
        """The acquisition a model trained this way is for (``ModelConfig.acquisition``)."""
        if self.kind in ("decimate", "sample"):
            return {"kind": self.kind}
        low, high = self.thickness
        thickness = low if low == high else [low, high]
        if self.kind == "profile":
            return {"kind": "profile", "profile": self.profile, "thickness": thickness}
        return {"kind": "mix", "profile": self.profile, "thickness": thickness, "decimate_share": self.decimate_share}
