"""Self-supervised adaptation to the input volume (``upsample(..., adapt=SECONDS)``, ``--adapt SECONDS``).

A thick-slice scan is thin in-plane: viewed along one of its in-plane axes it is a high-resolution stack of this
very patient, scanner and reconstruction. Adaptation fine-tunes a copy of the model for a wall-clock budget on
windows of those views, degraded with the acquisition the run will use (the plan's kind, scale and slice
profile), with the training recipe's L1 loss, then the copy upsamples the real slice axis. The caller's model is
never changed; every window is drawn from a fixed seed, so a given number of steps gives the same weights.

The in-plane views are anisotropic (e.g. 0.6 mm along y by 5 mm along z), as the training views of thick
volumes are; whether the gain is worth its seconds is measured in the README (the gain-vs-seconds table).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.functional import l1_loss

from ..data.stacks import TrainingVolume
from ..data.windows import SliceWindowDataset
from ..models.network import DPNSL
from .request import UpsamplePlan
from .tiling import CancelFn, Cancelled, ProgressFn


@dataclass(frozen=True)
class AdaptOptions:
    """How to adapt: wall-clock ``seconds`` (> 0), Adam learning rate, windows per step, largest crop, seed, and
    optionally ``max_steps`` (stop at whichever comes first: a step count makes the result reproducible)."""

    seconds: float
    lr: float = 2e-4
    batch_size: int = 4
    crop: int = 64
    seed: int = 0
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"`adapt` must be a positive number of seconds, got {self.seconds!r}")
        if not self.lr > 0 or self.batch_size < 1 or self.crop < 8 or (self.max_steps is not None and
                                                                         self.max_steps < 1):
            raise ValueError("adaptation needs lr > 0, batch_size >= 1, crop >= 8 and max_steps >= 1 (or None)")


@dataclass(frozen=True)
class AdaptReport:
    """What adaptation did: optimisation steps, seconds, the L1 loss of the first and the last 10 steps."""

    steps: int
    seconds: float
    loss_first: float
    loss_last: float
    views: int

    def text(self) -> str:
        return (f"adapted to this volume: {self.steps} steps in {self.seconds:.0f} s on {self.views} in-plane "
                f"view(s), L1 {self.loss_first:.4g} -> {self.loss_last:.4g} (normalised units)")


def adapt_model(model: DPNSL, normalised: np.ndarray, spacing_zyx: tuple[float, float, float], plan: UpsamplePlan,
                options: AdaptOptions, device: torch.device, *, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> tuple[DPNSL, AdaptReport]:
    """Fine-tune a copy of ``model`` on the high-resolution in-plane axes of ``normalised``.

    Args:
        model: the model to start from (not modified).
        normalised: (n, Y, X) the input in the network's [0, 1] units, slice axis first.
        spacing_zyx: its voxel size, slice axis first (mm; the slice axis must be the coarse one).
        plan: the resolved request: its acquisition and scale are simulated.
        options: budget and recipe.
        device: where to train.
        progress: ``progress(fraction, message)`` over the budget; cancel: return True to stop (raises Cancelled).

    Returns:
        (the adapted copy in eval mode, the report).

    Raises:
        ValueError: no in-plane axis long enough for the plan's scale, or in-plane views too small to crop.
    """
    volume = TrainingVolume(np.ascontiguousarray(normalised, dtype=np.float32), tuple(spacing_zyx), "input")
    kind = plan.degradation
    fits = max(min(d for i, d in enumerate(normalised.shape) if i != a) for a in (1, 2))  # largest view crop
    try:
        dataset = SliceWindowDataset([volume], [plan.scale], crop=(min(32, options.crop, fits), options.crop),
                                     degradation=kind, profile=plan.profile, thickness=plan.thickness,
                                     seed=options.seed)
    except ValueError as err:
        raise ValueError(f"cannot adapt to this volume: {err}") from err
    net = copy.deepcopy(model).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=options.lr)
    losses: list[float] = []
    start = time.perf_counter()
    for keys in dataset.batches(options.batch_size):
        items = [dataset[k] for k in keys]
        y = torch.stack([i["lr"] for i in items]).to(device)
        hr = torch.stack([i["hr"] for i in items]).to(device)
        output = net(y, dataset.degradation(keys[0].scale, keys[0].thickness))["output"]
        loss = l1_loss(output, hr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
        elapsed = time.perf_counter() - start
        if progress is not None:
            progress(min(elapsed / options.seconds, 1.0), f"adapting to this volume: step {len(losses)}, "
                     f"L1 {losses[-1]:.4g}")
        if cancel is not None and cancel():
            raise Cancelled("cancelled while adapting to the volume")
        if elapsed >= options.seconds or len(losses) == options.max_steps:
            break
    net.eval()
    report = AdaptReport(len(losses), time.perf_counter() - start, float(np.mean(losses[:10])),
                         float(np.mean(losses[-10:])), len(dataset.views))
    return net, report
