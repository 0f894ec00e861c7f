"""Find and load models: shipped weights by name, presets (fresh, untrained), or a checkpoint file."""

from __future__ import annotations

import os
from pathlib import Path

import torch

#: Shipped default models: name -> file name, searched in WEIGHT_DIRS.
SHIPPED = {"ct": "dpnsl_ct.safetensors", "mr": "dpnsl_mr.safetensors"}


def weight_dirs() -> list[Path]:
    """Where shipped weights are looked up, in order: $DPNSL_WEIGHTS_DIR, the package, the repository."""
    dirs = [Path(os.environ["DPNSL_WEIGHTS_DIR"])] if os.environ.get("DPNSL_WEIGHTS_DIR") else []
    here = Path(__file__).resolve().parent
    return [*dirs, here / "weights", here.parent / "Resources" / "Models"]


def shipped_path(name: str) -> Path | None:
    """Path of the shipped weights called ``name`` ("ct" or "mr"), or None when not installed."""
    for folder in weight_dirs():
        candidate = folder / SHIPPED[name]
        if candidate.is_file():
            return candidate
    return None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; explicit CUDA requests fail clearly when absent."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use 'auto' or 'cpu'")
    return torch.device(device)


def _load_file(path: Path, device: torch.device) -> torch.nn.Module:
    """A checkpoint with ``model.modality`` set from its training metadata (None when unknown)."""
    from .models import load_checkpoint, read_checkpoint_info

    model = load_checkpoint(path, device=device).eval()
    model.modality = read_checkpoint_info(path)["extra"].get("modality")
    return model


def load_model(path_or_name: str | Path | None = None, device: str | torch.device = "auto") -> torch.nn.Module:
    """Load a DP-NSL model ready for inference (eval mode, on ``device``).

    Args:
        path_or_name: None or "ct" (the shipped CT model), "mr" (shipped MR model), a preset name such as
            "lean" or "paper" (freshly initialised, untrained), or the path of a checkpoint (.safetensors).
        device: "auto", "cpu", "cuda" or "cuda:N".

    Raises:
        FileNotFoundError: shipped weights or checkpoint missing. ValueError: unknown name or bad checkpoint.
    """
    from .models import PRESETS, build_model

    dev = resolve_device(device)
    name = "ct" if path_or_name is None else str(path_or_name)
    if name in SHIPPED:
        path = shipped_path(name)
        if path is None:
            raise FileNotFoundError(
                f"the shipped {name.upper()} weights ({SHIPPED[name]}) are not installed in any of "
                f"{[str(d) for d in weight_dirs()]}; pass a checkpoint path, or a preset such as 'lean' for an "
                "untrained model"
            )
        return _load_file(path, dev)
    if name in PRESETS:
        model = build_model(PRESETS[name]).to(dev).eval()
        model.modality = None
        return model
    path = Path(name).expanduser()
    if path.suffix in (".safetensors", ".pt", ".pth") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return _load_file(path, dev)
    raise ValueError(
        f"unknown model {name!r}: use a shipped name {sorted(SHIPPED)}, a preset {sorted(PRESETS)}, "
        "or a checkpoint path"
    )
