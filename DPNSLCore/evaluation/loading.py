"""The DP-NSL model an evaluation scores: a checkpoint or the shipped model, checked against the data's modality."""

from __future__ import annotations

from ..models.registry import LoadedModel, open_model

__all__ = ["load_dpnsl"]


def load_dpnsl(checkpoint: str | None, modality: str, device: str = "auto") -> LoadedModel:
    """The DP-NSL model of a checkpoint, or the shipped model for ``modality``, with where it came from.

    Raises:
        ValueError: the model was trained on another modality than ``modality``.
    """
    loaded = open_model(checkpoint or (modality if modality in ("ct", "mr") else None), device)
    if modality in ("ct", "mr") and loaded.modality not in (None, modality):
        raise ValueError(f"{loaded.source} was trained on {loaded.modality.upper()} but the data is normalised as "
                         f"{modality.upper()}; pass --modality {loaded.modality} or another checkpoint")
    return loaded
