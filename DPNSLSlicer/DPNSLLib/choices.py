"""The panel's closed choices as Enums: one definition shared by the parameter node, the .ui and the Logic.

Each Enum's ``value`` is the string DPNSLCore expects (``"decimate"``, ``"ct"``, ``"cuda"``), and
``label()`` is the text shown in the combo box (the parameter node wrapper calls it when it fills one).
"""

from __future__ import annotations

import enum


class ScaleMode(enum.Enum):
    """How the user states the target grid: a factor, or the slice spacing they want."""

    FACTOR = "factor"
    SPACING = "spacing"

    def label(self) -> str:
        return {"factor": "Scale factor", "spacing": "Target slice spacing"}[self.value]


class DegradationModel(enum.Enum):
    """How the thick slices were acquired from the thin ones (DESIGN.md section 1)."""

    AUTO = "auto"
    DECIMATE = "decimate"
    SAMPLE = "sample"
    PROFILE = "profile"

    def label(self) -> str:
        return {
            "auto": "Automatic (the model's: slice profile for real thick slices)",
            "decimate": "Decimate (keep every s-th slice, integer s: the paper's simulation)",
            "sample": "Sample (any real s > 1)",
            "profile": "Slice profile (thick slices averaged over their thickness)",
        }[self.value]


class ProfileShape(enum.Enum):
    """The shape of a thick slice's profile along the slice axis (its width is the slice thickness)."""

    BOX = "box"
    GAUSSIAN = "gaussian"

    def label(self) -> str:
        return {"box": "Box (thickness = width)", "gaussian": "Gaussian (thickness = FWHM)"}[self.value]


class ModelChoice(enum.Enum):
    """Which network weights DP-NSL runs with."""

    CT = "ct"
    MR = "mr"
    CHECKPOINT = "checkpoint"

    def label(self) -> str:
        return {"ct": "Bundled CT model", "mr": "Bundled MR model", "checkpoint": "Checkpoint file"}[self.value]


class DeviceChoice(enum.Enum):
    """Where the network runs; AUTO takes CUDA when PyTorch sees a GPU, else the CPU."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"

    def label(self) -> str:
        return {"auto": "Automatic", "cpu": "CPU", "cuda": "CUDA (GPU)"}[self.value]


METHODS: tuple[str, ...] = ("linear", "cubic", "dpnsl")
"""Upsampling methods in the order the Compare section plots them."""

METHOD_LABELS: dict[str, str] = {"linear": "Linear", "cubic": "Cubic B-spline", "dpnsl": "DP-NSL"}
"""Legend text per method."""


def enumValue(choice: enum.Enum | str, enumType: type[enum.Enum], argName: str) -> str:
    """Return the DPNSLCore string for an Enum member or its string value, rejecting anything else.

    Args:
        choice: an ``enumType`` member or one of its values, e.g. ``DegradationModel.SAMPLE`` or ``"sample"``.
        enumType: the Enum class that lists the allowed values.
        argName: the caller's argument name, used in the error message.

    Returns:
        The member's value, e.g. ``"sample"``.

    Raises:
        ValueError: if ``choice`` is not one of the allowed values.
    """
    if isinstance(choice, enumType):
        return str(choice.value)
    allowed = [str(member.value) for member in enumType]
    if isinstance(choice, str) and choice.lower() in allowed:
        return choice.lower()
    raise ValueError(f"`{argName}` must be one of {allowed}, got {choice!r}.")
