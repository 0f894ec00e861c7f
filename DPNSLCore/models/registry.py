"""Find and load models: shipped weights by name, checkpoint files, or (explicitly) untrained presets.

The modality a model was trained for lives in its config (``model.config.modality``), read from the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..resources import SHIPPED, shipped_path, weight_dirs
from .checkpoint import load_checkpoint
from .config import PRESETS
from .network import DPNSL, build_model


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; explicit CUDA requests fail clearly when absent (one policy)."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use 'auto' or 'cpu'")
    return torch.device(device)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference and what it is: ``source`` says where it came from, in words."""

    model: DPNSL
    source: str
    trained: bool = True
    path: Path | None = None  # the weights file (None: built in memory)

    @property
    def modality(self) -> str | None:
        """"ct", "mr" or None (unknown): what the model was trained on."""
        return self.model.config.modality


def load_model(path_or_name: str | Path | None = None, device: str | torch.device = "auto", *,
               allow_untrained: bool = False) -> DPNSL:
    """Load a DP-NSL model ready for inference (eval mode, on ``device``); see :func:`open_model`."""
    return open_model(path_or_name, device, allow_untrained=allow_untrained).model


def open_model(path_or_name: str | Path | None = None, device: str | torch.device = "auto", *,
               allow_untrained: bool = False) -> LoadedModel:
    """Load a model and say what it is.

    Args:
        path_or_name: None or "ct" (the shipped CT model), "mr" (the shipped MR model), the path of a checkpoint
            (.safetensors), or a preset name such as "lean" (freshly initialised: only with ``allow_untrained``).
        device: "auto", "cpu", "cuda" or "cuda:N".
        allow_untrained: accept a preset name (random weights: for benchmarks and tests, not for images).

    Raises:
        FileNotFoundError: shipped weights or checkpoint missing. ValueError: unknown name, bad checkpoint, or a
        preset without ``allow_untrained``.
    """
    dev = resolve_device(device)
    name = "ct" if path_or_name is None else str(path_or_name)
    if name in SHIPPED:
        path = shipped_path(name)
        if path is None:
            raise FileNotFoundError(
                f"the shipped {name.upper()} weights ({SHIPPED[name]}) are not installed in any of "
                f"{[str(d) for d in weight_dirs()]}; reinstall DPNSLCore, or pass a checkpoint path"
            )
        return LoadedModel(load_checkpoint(path, device=dev), f"shipped {name.upper()} model ({path.name})", path=path)
    if name in PRESETS:
        if not allow_untrained:
            raise ValueError(
                f"{name!r} is an untrained preset (random weights) and would make meaningless images; use a shipped "
                f"model ({', '.join(sorted(SHIPPED))}) or a checkpoint, or allow_untrained=True / --allow-untrained "
                "for speed tests"
            )
        return LoadedModel(build_model(PRESETS[name]).to(dev).eval(), f"untrained preset {name!r}", trained=False)
    path = Path(name).expanduser()
    if path.suffix in (".safetensors", ".pt", ".pth") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return LoadedModel(load_checkpoint(path, device=dev), f"checkpoint {path}", path=path)
    raise ValueError(
        f"unknown model {name!r}: use a shipped name {sorted(SHIPPED)}, a checkpoint path, or a preset "
        f"{sorted(PRESETS)} with allow_untrained=True"
    )
