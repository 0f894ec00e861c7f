"""What a training run leaves on disk, written atomically so a crash never leaves a half-written file.

A run folder holds:

- ``last.safetensors``: the model (``models.save_checkpoint``, training info in ``extra``), and
  ``last_state.pt``: what ``--resume`` reads: step, model weights, optimizer, scheduler, RNG states and best
  score, plain tensors/dicts only (``torch.save``; read back with ``torch.load(weights_only=True)``, so
  loading never runs code). Holding the weights too makes the resume point one atomic file;
- ``best.safetensors``: the model with the best mean validation PSNR gain over linear interpolation;
- ``log.csv``: one row per logged step (loss, lr, speed, validation PSNR per scale and method);
- ``train_args.json``: the resolved command-line options (``--resume`` reuses them).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

STATE_FORMAT = 1
MODEL_FILE, STATE_FILE, BEST_FILE = "last.safetensors", "last_state.pt", "best.safetensors"
LOG_FILE, ARGS_FILE = "log.csv", "train_args.json"


def _atomic(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then move the temporary file over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def rng_state() -> dict[str, Any]:
    """Torch CPU and CUDA generator states (the data pipeline is keyed by the seed and needs none)."""
    cuda = [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(folder: Path, *, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: Any, best: float, wall_time: float) -> Path:
    """Write ``last_state.pt`` atomically: everything an exact resume needs."""
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    state = {"format": STATE_FORMAT, "step": int(step), "model": weights, "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": rng_state(), "best": float(best),
             "wall_time": float(wall_time)}
    path = Path(folder) / STATE_FILE
    _atomic(path, lambda tmp: torch.save(state, tmp))
    return path


def load_state(folder: Path) -> dict[str, Any]:
    """Read ``last_state.pt`` safely (``weights_only=True``).

    Raises:
        FileNotFoundError: no state in ``folder``. ValueError: unknown format.
    """
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no training state {STATE_FILE} in {str(folder)!r}; --resume needs a run folder "
                                "written by python -m DPNSLCore.train")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a DPNSL training state of format {STATE_FORMAT}")
    return state


def save_args(folder: Path, args: dict[str, Any]) -> None:
    """Write the resolved options as JSON."""
    path = Path(folder) / ARGS_FILE
    _atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(args, indent=1, sort_keys=True), encoding="utf-8"))


def load_args(folder: Path) -> dict[str, Any]:
    """Read the options of a previous run (``--resume``)."""
    path = Path(folder) / ARGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {ARGS_FILE} in {str(folder)!r}; --resume needs a run folder written by "
                                "python -m DPNSLCore.train")
    return json.loads(path.read_text(encoding="utf-8"))


class MetricLog:
    """Append-only CSV with a fixed header; on resume, rows after the resumed step are dropped.

    Args:
        path: the CSV file.
        columns: column names; ``step`` must be the first.
        resume_step: keep only rows with step <= this (None: start a new file).

    Raises:
        ValueError: an existing file has another header (the run was started with other options).
    """

    def __init__(self, path: Path, columns: list[str], resume_step: int | None = None) -> None:
        self.path, self.columns = Path(path), list(columns)
        if resume_step is None or not self.path.is_file():
            _atomic(self.path, lambda tmp: self._write(tmp, []))
            return
        with open(self.path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        if not rows or rows[0] != self.columns:
            raise ValueError(f"{self.path} has other columns than this run; resume with the original options")
        kept = [r for r in rows[1:] if r and int(r[0]) <= resume_step]
        _atomic(self.path, lambda tmp: self._write(tmp, kept))

    def _write(self, path: str, rows: list[list[str]]) -> None:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.columns)
            writer.writerows(rows)

    def append(self, values: dict[str, Any]) -> None:
        """Add one row; missing columns stay empty, unknown keys raise KeyError."""
        unknown = set(values) - set(self.columns)
        if unknown:
            raise KeyError(f"unknown log columns {sorted(unknown)}")
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow([_format(values.get(c, "")) for c in self.columns])

    def read(self) -> list[dict[str, str]]:
        """All rows as dicts of strings."""
        with open(self.path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))


def _format(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
