"""Checkpoints: weights in a safetensors file whose metadata holds the model spec (JSON) and a version.

Only tensors and JSON text are stored, so loading never executes code. A model rebuilds itself from the
file: ``load_checkpoint(path)`` reads the config, builds the network and loads the weights strictly.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .config import ModelConfig
from .network import DPNSL, build_model

FORMAT_NAME = "dpnsl"
FORMAT_VERSION = 1


def save_checkpoint(model: DPNSL, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Write `model`'s weights and config to a safetensors file, atomically (temp file + rename).

    Args:
        model: a DPNSL model (its ``config`` is stored).
        path: destination file, conventionally ``*.safetensors``; its folder must exist.
        extra: JSON-serialisable dict stored as metadata (e.g. training info: epochs, data, PSNR).

    Returns:
        The path written.

    Raises:
        TypeError: `model` is not a DPNSL model or `extra` is not a JSON-serialisable dict.
        FileNotFoundError: the destination folder does not exist.
    """
    if not isinstance(model, DPNSL):
        raise TypeError(f"`model` must be a DPNSL model (models.build_model), got {type(model).__name__}.")
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"`extra` must be a dict or None, got {type(extra).__name__}.")
    try:
        extra_json = json.dumps(extra or {}, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`extra` must be JSON-serialisable (numbers, strings, lists, dicts): {exc}") from exc
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write checkpoint {path}: folder {path.parent} does not exist.")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION),
                "config": model.config.to_json(), "extra": extra_json}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _read_metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt or foreign files
        raise ValueError(f"{path} is not a readable safetensors file ({exc}); "
                         "DPNSL checkpoints are written by models.save_checkpoint.") from exc
    if metadata.get("format") != FORMAT_NAME or "config" not in metadata:
        raise ValueError(f"{path} is a safetensors file without a DPNSL model config in its metadata; "
                         "it was not written by models.save_checkpoint.")
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise ValueError(f"{path} has checkpoint format version {version!r}, this DPNSL reads version "
                         f"{FORMAT_VERSION}; update DPNSL or re-export the checkpoint.")
    return metadata


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """Config and metadata of a checkpoint without building the model.

    Returns:
        dict with "config" (ModelConfig), "format_version" (int) and "extra" (dict).

    Raises:
        FileNotFoundError: no such file. ValueError: not a DPNSL safetensors checkpoint, or bad config.
    """
    path = Path(path)
    metadata = _read_metadata(path)
    try:
        config = ModelConfig.from_json(metadata["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid model config in the checkpoint: {exc}") from exc
    try:
        extra = json.loads(metadata.get("extra", "{}"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the `extra` metadata is not valid JSON: {exc}") from exc
    if config.modality is None and extra.get("modality") in ("ct", "mr"):  # files written before the field
        config = config.replace(modality=extra["modality"])
    return {"config": config, "format_version": int(metadata["format_version"]), "extra": extra}


def _check_state(path: Path, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    wrong = sorted(f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                   if k in state and state[k].shape != v.shape)
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unknown:
        problems.append(f"unknown keys {unknown}")
    if wrong:
        problems.append(f"wrong shapes (file != config) {wrong}")
    if problems:
        raise ValueError(f"{path}: weights do not match the stored config ({model.config.name!r}): "
                         + "; ".join(problems))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> DPNSL:
    """Rebuild a DPNSL model from a checkpoint written by `save_checkpoint` (returned in eval mode).

    Args:
        path: the ``.safetensors`` file.
        device: where to put the weights ("cpu", "cuda", torch.device).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a safetensors file, no/unknown config, format version mismatch, or weights whose
            keys or shapes do not match the config (the offending keys are named).
    """
    path = Path(path)
    config = read_checkpoint_info(path)["config"]
    model = build_model(config)
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        state = {k: handle.get_tensor(k) for k in handle.keys()}
    _check_state(path, model, state)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
