"""Learning curves: ``python -m DPNSLCore.curves runs/ct/log.csv runs/mr/log.csv -o results/learning_curve.png``.

Plots the held-out PSNR gain of the model over the better baseline (linear or cubic, per scale) against the
training wall time, from the CSV logs that ``python -m DPNSLCore.train`` writes, and prints it as a table.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path


def read_gains(log: str | Path) -> dict[str, list[tuple[float, float, int]]]:
    """Per scale ("x2", ...): (wall minutes, gain in dB over the better baseline, step) at each validation."""
    with open(log, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if any(r.get(k) for k in r if k.startswith("val_psnr"))]
    scales = sorted({m.group(1) for k in (rows[0] if rows else {}) if (m := re.match(r"val_psnr_(x[\d.]+)_dpnsl", k))},
                    key=lambda s: float(s[1:]))
    curves: dict[str, list[tuple[float, float, int]]] = {s: [] for s in scales}
    for r in rows:
        for s in scales:
            best = max(float(r[f"val_psnr_{s}_linear"]), float(r[f"val_psnr_{s}_cubic"]))
            curves[s].append((float(r["time_s"]) / 60, float(r[f"val_psnr_{s}_dpnsl"]) - best, int(r["step"])))
    return curves


def plot(logs: list[str], out: str | Path) -> Path:
    """One panel per log, one line per scale; PNG written with the Agg canvas (no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(logs), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    for i, log in enumerate(logs):
        ax = fig.add_subplot(1, len(logs), i + 1)
        for scale, points in read_gains(log).items():
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=f"×{scale[1:]}")
        ax.axhline(0, color="0.6", linewidth=0.8)
        ax.set_title(Path(log).parent.name, fontsize=10)
        ax.set_xlabel("training wall time (min, 1 CPU thread)")
        ax.set_ylabel("held-out PSNR gain over best baseline (dB)")
        ax.legend(fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m DPNSLCore.curves", description=__doc__.split("\n\n")[1])
    p.add_argument("logs", nargs="+", help="log.csv files of training runs")
    p.add_argument("-o", "--output", default="learning_curve.png")
    args = p.parse_args(argv)
    for log in args.logs:
        print(f"{log}:")
        for scale, points in read_gains(log).items():
            print(f"  {scale}: " + ", ".join(f"{m:.0f} min {g:+.2f} dB" for m, g, _ in points))
    print(f"wrote {plot(args.logs, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
