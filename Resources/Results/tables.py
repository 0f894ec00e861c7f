"""README tables from evaluate's summary.csv files: PSNR mean ± std per method, the gain over the better baseline,
and DP-NSL's banding measures, one row per scale.

    python Resources/Results/tables.py Resources/Results/v3/ct_decimate Resources/Results/v3/ct_profile
    python Resources/Results/tables.py --gains FOLDER...   # one row per folder: the gain at every scale
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def table(folder: Path) -> str:
    rows = list(csv.DictReader(open(folder / "summary.csv")))
    by = {(float(r["scale"]), r["method"]): r for r in rows}
    scales = sorted({s for s, _ in by})
    n = rows[0]["n"]
    lines = [f"{folder.name} (n = {n} stacks)", "",
             "| scale | linear | cubic | DP-NSL | DP-NSL − better baseline | DP-NSL periodicity / texture |",
             "|---|---|---|---|---|---|"]
    for s in scales:
        cells = []
        top = max(("linear", "cubic", "dpnsl"), key=lambda m: float(by[(s, m)]["psnr_mean"]))
        for m in ("linear", "cubic", "dpnsl"):
            r = by[(s, m)]
            text = f"{float(r['psnr_mean']):.2f} ± {float(r['psnr_std']):.2f}"
            cells.append(f"**{text}**" if m == top else text)
        best = max(float(by[(s, m)]["psnr_mean"]) for m in ("linear", "cubic"))
        d = by[(s, "dpnsl")]
        gain = float(d["psnr_mean"]) - best
        lines.append(f"| ×{s:g} | {cells[0]} | {cells[1]} | {cells[2]} | {gain:+.2f} dB | "
                     f"{float(d['periodicity']):.2f} / {float(d['texture_ratio']):.2f} |")
    return "\n".join(lines)


def gains(folders: list[Path]) -> str:
    """One row per folder: DP-NSL's gain over the better of linear and cubic at each scale (dB)."""
    lines = []
    for folder in folders:
        rows = list(csv.DictReader(open(folder / "summary.csv")))
        by = {(float(r["scale"]), r["method"]): float(r["psnr_mean"]) for r in rows}
        scales = sorted({s for s, _ in by})
        if not lines:
            lines = ["| results | " + " | ".join(f"×{s:g}" for s in scales) + " |", "|---" * (len(scales) + 1) + "|"]
        cells = [f"{by[(s, 'dpnsl')] - max(by[(s, 'linear')], by[(s, 'cubic')]):+.2f}" for s in scales]
        lines.append(f"| {folder} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--gains"]:
        print(gains([Path(f) for f in sys.argv[2:]]))
    else:
        print("\n\n".join(table(Path(f)) for f in sys.argv[1:]))
