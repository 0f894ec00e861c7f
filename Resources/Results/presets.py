"""Table and plot of the preset study: leave-out gain against inference speed (Resources/Results/presets.sh).

    python Resources/Results/presets.py Resources/Results/presets
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

PRESETS = ("lean", "mid", "large")
PROTOCOLS = ("decimate", "profile")


def gains(folder: Path) -> dict[float, float]:
    """Scale -> DP-NSL's PSNR minus the better of linear and cubic (mean over the stacks)."""
    rows = csv.DictReader(open(folder / "summary.csv"))
    by = {(float(r["scale"]), r["method"]): float(r["psnr_mean"]) for r in rows}
    return {s: by[(s, "dpnsl")] - max(by[(s, "linear")], by[(s, "cubic")]) for s, m in by if m == "dpnsl"}


def speeds(bench: Path) -> dict[str, float]:
    """Method -> output M voxels/s from a bench table."""
    out = {}
    for line in bench.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and re.fullmatch(r"[0-9.]+", cells[2] or "x"):
            out[cells[0]] = float(cells[2])
    return out


def main(folder: str) -> int:
    root = Path(folder)
    speed = speeds(root / "bench.md")
    done = [p for p in PRESETS if (root / f"{p}_profile").is_dir()]
    table = {p: {a: gains(root / f"{p}_{a}") for a in PROTOCOLS} for p in done}
    scales = sorted(next(iter(next(iter(table.values())).values())))
    head = " | ".join(f"×{s:g}" for s in scales)
    print(f"| preset | protocol | {head} | M voxels/s |")
    print("|---|---|" + "---|" * len(scales) + "---|")
    for p, rows in table.items():
        for a, g in rows.items():
            cells = " | ".join(f"{g[s]:+.2f}" for s in scales)
            print(f"| {p} | {a} | {cells} | {speed.get(p, float('nan')):.2f} |")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for a, marker in zip(PROTOCOLS, "os", strict=True):
        xs = [speed[p] for p in table]
        ys = [table[p][a][4.0] for p in table]
        ax.plot(xs, ys, marker=marker, label=f"{a} ×4")
        for p, x, y in zip(table, xs, ys, strict=True):
            ax.annotate(p, (x, y), textcoords="offset points", xytext=(4, 4))
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("output M voxels/s (2 CPU cores)")
    ax.set_ylabel("gain over better baseline (dB)")
    ax.set_title("MR leave-out patients, same training budget")
    ax.legend()
    fig.tight_layout()
    fig.savefig(root / "presets.png", dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "Resources/Results/presets"))
