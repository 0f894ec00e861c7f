"""Evaluation results as tables and plots: per-volume scores, mean ± std summaries, Markdown, CSV, MAE plots."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class MethodScore:
    """One method on one volume at one scale (normalised intensities, paper protocol).

    Attributes:
        consistency: max |A x - y| of the unclipped prediction, normalised units (0 = exactly consistent).
        mae: (n_hr,) per-slice mean absolute error along the slice axis over the whole trimmed stack.
        seconds: wall time of the upsampling call.
        periodicity, texture: the banding measures of the prediction (:mod:`.banding`; ~1.0 without banding),
            None when the stack is too short for them.
        detail_gain: the gain of the network's detail that calibration applied to this input (1: none).
        calibration_db: what the gain calibration fitted won on the input's own in-plane views, in dB (None: no
            calibration ran).
    """

    volume: str
    scale: float
    method: str
    psnr: float
    ssim: float | None
    consistency: float
    seconds: float
    mae: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    periodicity: float | None = None
    texture: float | None = None
    detail_gain: float = 1.0
    calibration_db: float | None = None


@dataclass
class SummaryRow:
    """Mean ± std over volumes of one method at one scale; ``gain`` is the mean PSNR gain over ``linear``."""

    scale: float
    method: str
    n: int
    psnr_mean: float
    psnr_std: float
    ssim_mean: float | None
    ssim_std: float | None
    consistency: float
    gain: float | None
    seconds: float
    periodicity: float | None = None
    texture: float | None = None


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    if np.isinf(array).any():
        return float(array.mean()), 0.0  # inf PSNR (exact) stays inf, std is meaningless then
    return float(array.mean()), float(array.std())


def summarise(scores: Sequence[MethodScore]) -> list[SummaryRow]:
    """Group scores by (scale, method), in first-seen order, and average over volumes."""
    groups: dict[tuple[float, str], list[MethodScore]] = {}
    for score in scores:
        groups.setdefault((score.scale, score.method), []).append(score)
    rows = []
    for (scale, method), group in groups.items():
        psnr_mean, psnr_std = _mean_std([g.psnr for g in group])
        ssims = [g.ssim for g in group if g.ssim is not None]
        ssim_mean, ssim_std = _mean_std(ssims) if ssims else (None, None)
        reference = {g.volume: g.psnr for g in groups.get((scale, "linear"), [])}
        gains = [g.psnr - reference[g.volume] for g in group if g.volume in reference]
        gain = float(np.mean(gains)) if gains and all(math.isfinite(v) for v in gains) else None
        rows.append(SummaryRow(scale, method, len(group), psnr_mean, psnr_std, ssim_mean, ssim_std,
                               max(g.consistency for g in group), gain, float(sum(g.seconds for g in group)),
                               _mean_or_none([g.periodicity for g in group]),
                               _mean_or_none([g.texture for g in group])))
    return rows


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pm(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if math.isfinite(mean) else f"{mean}"


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    """Markdown table: scale, method, PSNR and SSIM mean ± std, gain over linear, max |A x − y|, the banding
    measures (periodicity at 1/s, acquired / synthesised texture), time."""
    lines = ["| scale | method | PSNR (dB) | Δ vs linear (dB) | SSIM | max \\|Ax − y\\| | periodicity 1/s | "
             "texture acq./synth. | n | time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gain = "–" if r.gain is None else f"{r.gain:+.2f}"
        lines.append(f"| ×{r.scale:g} | {r.method} | {_pm(r.psnr_mean, r.psnr_std, 2)} | {gain} | "
                     f"{_pm(r.ssim_mean, r.ssim_std, 4)} | {r.consistency:.2g} | {_fmt(r.periodicity)} | "
                     f"{_fmt(r.texture)} | {r.n} | {r.seconds:.1f} |")
    return "\n".join(lines) + "\n"


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _atomic_csv(path: str | Path, header: list[str], rows: list[list]) -> None:
    """Write a CSV via a temp file and a rename, so a reader never sees half a table."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def write_summary_csv(rows: Sequence[SummaryRow], path: str | Path) -> None:
    """One line per (scale, method): n, PSNR/SSIM mean and std, gain over linear, max |A x - y|, seconds."""
    _atomic_csv(path, ["scale", "method", "n", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "gain_vs_linear",
                       "max_consistency_error", "periodicity", "texture_ratio", "seconds"],
                [[f"{r.scale:g}", r.method, r.n, r.psnr_mean, r.psnr_std, _blank(r.ssim_mean), _blank(r.ssim_std),
                  _blank(r.gain), r.consistency, _blank(r.periodicity), _blank(r.texture), r.seconds] for r in rows])


def write_scores_csv(scores: Sequence[MethodScore], path: str | Path) -> None:
    """One line per (volume, scale, method)."""
    _atomic_csv(path, ["volume", "scale", "method", "psnr", "ssim", "consistency_error", "periodicity",
                       "texture_ratio", "seconds", "detail_gain", "calibration_db"],
                [[s.volume, f"{s.scale:g}", s.method, s.psnr, _blank(s.ssim), s.consistency, _blank(s.periodicity),
                  _blank(s.texture), s.seconds, s.detail_gain, _blank(s.calibration_db)] for s in scores])


def _blank(value: float | None) -> float | str:
    return "" if value is None else value


def plot_mae(scores: Sequence[MethodScore], scale: float, path: str | Path) -> Path:
    """Per-slice MAE along the slice axis at ``scale``: one panel per volume, one line per method; PNG.

    Acquired slices (every s-th for integer s) are marked; consistent methods are zero there. Uses the Agg
    canvas directly, so it never touches the global matplotlib backend (safe inside Slicer).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    chosen = [s for s in scores if s.scale == scale and s.mae.size]
    volumes = list(dict.fromkeys(s.volume for s in chosen))
    if not volumes:
        raise ValueError(f"no per-slice errors recorded at scale {scale:g}")
    fig = Figure(figsize=(8, 2.6 * len(volumes)), layout="constrained")
    FigureCanvasAgg(fig)
    for row, volume in enumerate(volumes):
        ax = fig.add_subplot(len(volumes), 1, row + 1)
        for s in (c for c in chosen if c.volume == volume):
            ax.plot(np.arange(s.mae.size), s.mae, label=s.method, linewidth=1)
        if float(scale).is_integer():
            n = max(s.mae.size for s in chosen if s.volume == volume)
            for k in range(0, n, int(scale)):
                ax.axvline(k, color="0.85", linewidth=0.5, zorder=0)
        ax.set_title(f"{Path(volume).name}  ×{scale:g}", fontsize=9)
        ax.set_xlabel("HR slice")
        ax.set_ylabel("MAE (normalised)")
        ax.legend(fontsize=8)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def write_report(scores: Sequence[MethodScore], out: str | Path, *, title: str = "", plots: bool = True) -> dict:
    """Write ``results.md``, ``summary.csv``, ``scores.csv`` and ``mae_x{s}.png`` under ``out``.

    Returns:
        {"markdown": text, "summary": rows, "files": [paths]}.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = summarise(scores)
    text = (f"{title}\n\n" if title else "") + markdown_table(rows)
    _atomic_text(out / "results.md", text)
    write_summary_csv(rows, out / "summary.csv")
    write_scores_csv(scores, out / "scores.csv")
    files = [out / "results.md", out / "summary.csv", out / "scores.csv"]
    if plots:
        for scale in dict.fromkeys(s.scale for s in scores):
            files.append(plot_mae(scores, scale, out / f"mae_x{scale:g}.png"))
    return {"markdown": text, "summary": rows, "files": files}
