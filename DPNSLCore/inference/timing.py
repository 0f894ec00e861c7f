"""Seconds per stage of a run (read, calibration, network, projection, destripe, bounds, write, ...).

A :class:`StageClock` is passed explicitly to the code that does the work (no global state); ``with clock("bounds"):``
adds the block's wall time to that stage. :meth:`StageClock.watch` times a module's forward calls with hooks, for the
network's own parts (encoder, upsampler, decoder) in ``bench --profile``. On CUDA the clock synchronises before
reading the time, so asynchronous kernels are charged to the stage that launched them.

    >>> clock = StageClock()
    >>> with clock("read"):
    ...     pass
    >>> list(clock.seconds)
    ['read']
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["StageClock"]


class StageClock:
    """Accumulates wall seconds per named stage, in first-seen order."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self._cuda = device is not None and device.type == "cuda"

    def _now(self) -> float:
        if self._cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = self._now()
        try:
            yield
        finally:
            self.add(stage, self._now() - start)

    def watch(self, module: torch.nn.Module, stage: str) -> list:
        """Charge every forward call of ``module`` to ``stage``; returns the hook handles (``.remove()`` them)."""
        starts: list[float] = []

        def before(*_):
            starts.append(self._now())

        def after(*_):
            self.add(stage, self._now() - starts.pop())

        return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]

    def total(self) -> float:
        return sum(self.seconds.values())
