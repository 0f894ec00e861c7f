"""The headline tables from the result files of run.sh: per patient, then mean ± std over patients.

    python tables.py Resources/Results/headline/current [--compare Resources/Results/headline/previous]

A patient's PSNR is the mean over its volumes (the MS patients' T1, T2 and FLAIR); its gain at a scale is DP-NSL
minus the better of linear and cubic on that patient. Writes RESULTS/headline.md and prints it.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

SPEC = json.loads((Path(__file__).parent / "folds.json").read_text())
PATIENT_OF = {v: p for p, d in SPEC["patients"].items() for v in d["volumes"]}
ACQ_NAMES = {"profile": "thick slices (box)", "decimate": "decimation"}
#: volumes the shipped models (v5 CT, v4 MR) trained on: their rows are marked "seen" when SHIPPED results are read
SHIPPED_SEEN = {"ct_chest_abdomen_1mm.nii.gz", "mr_brain_t1_1mm.nii.gz",
                *(f"mr_ms_patient{p}_{c}_1mm.nii.gz" for p in ("07", "19") for c in ("t1", "t2", "flair"))}


def read(results: Path) -> dict:
    """{(modality, acquisition): {patient: {scale: {method: psnr}}}} from every scores.csv under ``results``."""
    table: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    for path in sorted(results.glob("*_*_*/scores.csv")):
        _, modality, acq = path.parent.name.split("_")
        for row in csv.DictReader(path.open()):
            patient = PATIENT_OF[Path(row["volume"]).name]
            table[(modality, acq)][patient][float(row["scale"])][row["method"]].append(float(row["psnr"]))
    return {k: {p: {s: {m: float(np.mean(v)) for m, v in ms.items()} for s, ms in ss.items()} for p, ss in ps.items()}
            for k, ps in table.items()}


def gains(patients: dict) -> dict:
    """{patient: {scale: DP-NSL minus the better of linear and cubic}}."""
    return {p: {s: m["dpnsl"] - max(m["linear"], m["cubic"]) for s, m in ss.items()} for p, ss in patients.items()}


def section(modality: str, acq: str, patients: dict, seen: set[str], compare: dict | None) -> list[str]:
    scales = sorted({s for ss in patients.values() for s in ss})
    g = gains(patients)
    head = "| patient | " + " | ".join(f"×{s:g}" for s in scales) + " |"
    lines = [f"### {modality.upper()}, {ACQ_NAMES[acq]}: gain over the better of linear and cubic (dB)", "",
             head, "|---" * (len(scales) + 1) + "|"]
    for p in sorted(g):
        mark = " (seen in training)" if p in seen else ""
        lines.append(f"| {p}{mark} | " + " | ".join(f"{g[p][s]:+.2f}" for s in scales) + " |")
    mean = [np.mean([g[p][s] for p in g]) for s in scales]
    std = [np.std([g[p][s] for p in g]) for s in scales]
    cells = (f"**{m:+.2f}** ± {d:.2f}" for m, d in zip(mean, std, strict=True))
    lines.append("| **mean ± std** | " + " | ".join(cells) + " |")
    if compare is not None:
        gc = gains(compare)
        common = sorted(set(gc) & set(g))
        lines.append("| before (same patients) | "
                     + " | ".join(f"{np.mean([gc[p][s] for p in common]):+.2f}" for s in scales) + " |")
    psnr = {m: [np.mean([patients[p][s][m] for p in patients]) for s in scales] for m in ("linear", "cubic", "dpnsl")}
    for m in ("linear", "cubic", "dpnsl"):
        lines.append(f"| PSNR {m} (mean) | " + " | ".join(f"{v:.2f}" for v in psnr[m]) + " |")
    cells = [(g[p][s], p, s) for p in g for s in scales]
    worst = min(cells)
    below = [c for c in cells if c[0] < 0]
    lines += ["", f"Worst patient/scale: {worst[0]:+.2f} dB ({worst[1]}, ×{worst[2]:g}); "
              f"{len(below)} of {len(cells)} patient/scale cells below the better baseline.", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--compare", type=Path, help="results of the models before (a 'before' row per table)")
    parser.add_argument("--shipped", action="store_true", help="results of the shipped models: mark seen patients")
    args = parser.parse_args()
    table = read(args.results)
    before = read(args.compare) if args.compare else {}
    seen = {PATIENT_OF[v] for v in SHIPPED_SEEN} if args.shipped else set()
    lines = [f"# Headline protocol: {args.results.name}", "",
             "Through-plane (z) on clinical patients held out of every training step of the model scoring them "
             "(Resources/Results/headline/folds.json); normalised intensities (CT window, MR min/max), centre crop "
             "256, borders of s slices excluded, the product's defaults (calibration, destripe, bounds). A "
             "patient's PSNR is the mean over its volumes.", ""]
    for key in sorted(table, key=lambda k: (k[0], k[1] != "profile")):
        lines += section(*key, table[key], seen, before.get(key))
    text = "\n".join(lines)
    (args.results / "headline.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
