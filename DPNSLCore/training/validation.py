"""Validation during training: held-out volumes upsampled whole, PSNR per scale against linear and cubic.

The baselines do not change during training, so they are computed once and cached; each validation only runs
the model. Scores use the evaluation protocol (DESIGN.md section 5) without SSIM, to stay quick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..data.stacks import TrainingVolume
from ..evaluation.evaluate import ProtocolOptions, score_volume
from ..ops.operators import hr_length

BASELINE_METHODS = ("linear", "cubic")
MIN_LR_SLICES = 5  # after dropping s HR slices at each end, 3 acquired slices and 2 gaps remain


def metric_columns(scales: Sequence[float], tags: Sequence[str] = ("",)) -> list[str]:
    """CSV columns the validation fills: PSNR per scale (per acquisition tag) per method, gains over each
    baseline, the mean gain. The tag is empty for a single acquisition (``val_psnr_x4_dpnsl``), else e.g.
    ``val_psnr_x4_profile_dpnsl``."""
    columns = []
    for tag in tags:
        for s in scales:
            key = _key(s, tag)
            columns += [f"val_psnr_{key}_{m}" for m in ("dpnsl", *BASELINE_METHODS)]
            columns += [f"val_gain_{key}_{m}" for m in BASELINE_METHODS]
    return [*columns, "val_mean_gain"]


def _finite_mean(values: Sequence[float]) -> float:
    """Mean of the finite PSNRs: a held-out block without signal (e.g. the background slices at the end of a
    skull-stripped MR) is reconstructed exactly by every method (inf dB) and says nothing, so it is left out."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _key(scale: float, tag: str) -> str:
    return f"x{scale:g}_{tag}" if tag else f"x{scale:g}"


class Validator:
    """Scores a model on fixed held-out volumes (normalised, slice axis 0).

    Args:
        volumes: held-out blocks or volumes (each with its normaliser).
        scales: validation scales.
        degradation, profile, thickness: the acquisition that simulates the LR input (the one trained for);
            "mix" scores both decimate and the profile of ``thickness`` (columns tagged ``decimate``/``profile``).
        device: where the model runs.
        crop: centre crop in-plane (voxels).
    """

    def __init__(self, volumes: Sequence[TrainingVolume], scales: Sequence[float], *, degradation: str = "decimate",
                 device: str | torch.device = "cpu", crop: int = 256, profile: str = "box",
                 thickness: float = 1.0) -> None:
        self.volumes, self.scales = list(volumes), tuple(scales)
        need = hr_length(MIN_LR_SLICES, max(self.scales)) if self.scales else 0
        for v in self.volumes:
            if v.array.shape[0] < need:
                raise ValueError(f"validation volume {v.name} has {v.array.shape[0]} slices; scale "
                                 f"{max(self.scales):g} needs at least {need} ({MIN_LR_SLICES} acquired slices): raise "
                                 "--val-block or lower --val-scales")
        kinds = ("decimate", "profile") if degradation == "mix" else (degradation,)
        self.tags = kinds if degradation == "mix" else ("",)
        self.columns = metric_columns(self.scales, self.tags)
        self.options = {tag: ProtocolOptions(crop=crop, degradation=kind, ssim=False, device=device, profile=profile,
                                             thickness=thickness) for tag, kind in zip(self.tags, kinds, strict=True)}
        self._baselines: dict[tuple[str, float, str], float] | None = None

    def _mean_psnr(self, methods: Sequence[str], model: torch.nn.Module | None) -> dict[tuple[str, float, str], float]:
        out = {}
        for tag, options in self.options.items():
            scores = [s for v in self.volumes for s in score_volume(v, self.scales, methods, model=model,
                                                                    options=options)]
            out.update({(tag, scale, m): _finite_mean([s.psnr for s in scores if s.scale == scale and s.method == m])
                        for scale in self.scales for m in methods})
        return out

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        """Validation metrics of ``model`` keyed by :func:`metric_columns`; the model is left in train mode."""
        if self._baselines is None:
            self._baselines = self._mean_psnr(BASELINE_METHODS, None)
        try:
            ours = self._mean_psnr(("dpnsl",), model)
        finally:
            model.train()
        metrics: dict[str, float] = {}
        gains = []
        for tag in self.tags:
            for s in self.scales:
                key = _key(s, tag)
                metrics[f"val_psnr_{key}_dpnsl"] = ours[(tag, s, "dpnsl")]
                for m in BASELINE_METHODS:
                    metrics[f"val_psnr_{key}_{m}"] = self._baselines[(tag, s, m)]
                    metrics[f"val_gain_{key}_{m}"] = ours[(tag, s, "dpnsl")] - self._baselines[(tag, s, m)]
                gains.append(metrics[f"val_gain_{key}_linear"])
        finite = [g for g in gains if math.isfinite(g)]
        metrics["val_mean_gain"] = float(np.mean(finite)) if finite else math.nan
        return metrics
