"""Write docs/results.md and the README's results table from the result files (run from the repository root).

    python Resources/Results/make_results.py

Reads Resources/Results/headline/<tag>/ (run.sh), Resources/Results/secondary/<tag>/ (secondary/run.sh),
Resources/Results/defects/{before,after}.md (defects/run.py) and Resources/Results/speed/*.md (speed/run.sh); every
table says which files it comes from. Nothing here measures anything.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE / "headline"))
from tables import ACQ_NAMES, PATIENT_OF, SHIPPED_SEEN, gains, read, section  # noqa: E402

#: the headline: the shipped models on the patients no training step of theirs saw (folds.json "unseen_by_previous"),
#: the product's defaults; the steps and bfloat16 tables are runs of the same models with one thing changed
NEW = "current"
NEW_WHAT = ("the shipped models (v5 CT, v4 MR) with this version's code (encoder in float32; the default bfloat16 "
            "moves each cell by ≤ 0.001 dB)")
#: the shipped MR model fine-tuned on each unseen MR patient itself (headline/oracle.sh): a ceiling, never a result
ORACLE = "oracle"
#: the lean and mid presets trained from scratch on the UIH T1 itself (oracle.sh scratch): does capacity lift it?
ORACLE_SCRATCH = "oracle_scratch"
#: the previous version (its code and the same models) on every patient: the "before"
OLD = "previous"
STEPS = {"calibration": "nocal", "destripe": "nodestripe", "bounds": "nobounds"}
START, END = "<!-- results:start", "<!-- results:end -->"


def _exists(tag: str) -> bool:
    return any((HERE / "headline" / tag).glob("*/scores.csv"))


def headline_summary(tag: str, before: str | None = OLD) -> list[str]:
    """The README table: gain over the better baseline, mean ± std over patients, x2-x7, x4 PSNRs, and the x4 gain of
    the ``before`` results on the same patients."""
    table = read(HERE / "headline" / tag)
    old = read(HERE / "headline" / before) if before and _exists(before) else {}
    lines = ["| gain over the better of linear and cubic (dB) | ×2 | ×3 | ×4 | ×5 | ×6 | ×7 "
             "| ×4 PSNR: linear / cubic / DP-NSL | ×4 gain, previous version |", "|---" * 9 + "|"]
    for modality, acq in (("ct", "profile"), ("ct", "decimate"), ("mr", "profile"), ("mr", "decimate")):
        patients = table.get((modality, acq))
        if not patients:
            continue
        g = gains(patients)
        scales = sorted({s for ss in g.values() for s in ss})
        cells = [f"{np.mean([g[p][s] for p in g]):+.2f} ± {np.std([g[p][s] for p in g]):.2f}" for s in scales]
        at4 = [np.mean([patients[p][4.0][m] for p in patients]) for m in ("linear", "cubic", "dpnsl")]
        g_old = gains(old.get((modality, acq), {}))
        was = [g_old[p][4.0] for p in g if p in g_old and 4.0 in g_old[p]]
        lines.append(f"| {modality.upper()}, {ACQ_NAMES[acq]} ({len(g)} patient{'s' * (len(g) > 1)}) | "
                     + " | ".join(cells) + f" | {at4[0]:.2f} / {at4[1]:.2f} / **{at4[2]:.2f}** | "
                     + (f"{np.mean(was):+.2f}" if len(was) == len(g) else "–") + " |")
    return lines


def steps_table(tag: str) -> list[str]:
    """Each default step against the same run without it: the worst and the mean change per patient and scale."""
    base = read(HERE / "headline" / tag)
    lines = ["| step | modality, acquisition | mean change (dB) | worst patient / scale (dB) | best (dB) |",
             "|---|---|---|---|---|"]
    for step, suffix in STEPS.items():
        other = HERE / "headline" / f"{tag}_{suffix}"
        if not any(other.glob("*/scores.csv")):
            lines.append(f"| {step} | not measured | | | |")
            continue
        without = read(other)
        for key in sorted(base):
            if key not in without:
                continue
            deltas = [(base[key][p][s]["dpnsl"] - without[key][p][s]["dpnsl"], p, s)
                      for p in base[key] for s in base[key][p] if p in without[key] and s in without[key][p]]
            if not deltas:
                continue
            worst, best = min(deltas), max(deltas)
            lines.append(f"| {step} | {key[0].upper()}, {ACQ_NAMES[key[1]]} | {np.mean([d[0] for d in deltas]):+.3f} | "
                         f"{worst[0]:+.3f} ({worst[1]}, ×{worst[2]:g}) | {best[0]:+.3f} |")
    return lines


def _secondary_gains(tag: str) -> dict:
    """{(acquisition, stack): {scale: DP-NSL minus the better baseline}} of secondary/run.sh's files."""
    rows: dict = defaultdict(lambda: defaultdict(dict))
    for path in sorted((HERE / "secondary" / tag).glob("*/scores.csv")):
        acq = path.parent.name.split("_")[-1]
        for row in csv.DictReader(path.open()):
            rows[(acq, row["volume"].split("/")[-1])][float(row["scale"])][row["method"]] = float(row["psnr"])
    complete = {"linear", "cubic", "dpnsl"}
    return {k: {s: m["dpnsl"] - max(m["linear"], m["cubic"]) for s, m in v.items() if complete <= set(m)}
            for k, v in rows.items()}


def precision_table(tag: str) -> list[str]:
    """DP-NSL with the encoder in bfloat16 minus float32, per patient and scale, on the headline protocol."""
    other = HERE / "headline" / f"{tag}_bf16"
    if not any(other.glob("*/scores.csv")):
        return ["*not measured*"]
    base, half = read(HERE / "headline" / tag), read(other)
    lines = ["| modality, acquisition | mean change (dB) | largest change (dB) |", "|---|---|---|"]
    for key in sorted(base):
        deltas = [half[key][p][s]["dpnsl"] - base[key][p][s]["dpnsl"] for p in base[key] for s in base[key][p]
                  if key in half and p in half[key] and s in half[key][p]]
        if deltas:
            worst = max(deltas, key=abs)
            lines.append(f"| {key[0].upper()}, {ACQ_NAMES[key[1]]} | {np.mean(deltas):+.3f} | {worst:+.3f} |")
    return lines


def secondary_table(tag: str, before: str) -> list[str]:
    """The phantom and in-plane-axis stacks, per stack, gain over the better baseline (never in the headline); the
    previous models' in brackets."""
    new, old = _secondary_gains(tag), _secondary_gains(before)
    if not new:
        return ["*not measured*"]
    scales = sorted({s for v in new.values() for s in v})
    lines = ["| stack | acquisition | " + " | ".join(f"×{s:g}" for s in scales) + " |",
             "|---" * (len(scales) + 2) + "|"]
    for (acq, name), by_scale in sorted(new.items()):
        cells = []
        for s in scales:
            if s not in by_scale:
                cells.append("–")
                continue
            was = old.get((acq, name), {}).get(s)
            cells.append(f"{by_scale[s]:+.2f}" + (f" ({was:+.2f})" if was is not None else ""))
        lines.append(f"| {name} | {ACQ_NAMES.get(acq, acq)} | " + " | ".join(cells) + " |")
    return lines


def ceiling_table(tag: str = ORACLE, targets: dict | None = None) -> list[str]:
    """×4 gain over the better baseline of the shipped MR model and of the same model fine-tuned on each unseen MR
    patient itself (``oracle.sh``), per patient and mean, beside the issue's targets."""
    targets = targets or {"profile": 1.5, "decimate": 1.0}
    mine, shipped = read(HERE / "headline" / tag), read(HERE / "headline" / NEW)
    acqs = [a for a in ("profile", "decimate") if ("mr", a) in mine and ("mr", a) in shipped]
    if not acqs:
        return [f"*not measured (Resources/Results/headline/{tag}/ missing)*"]
    cols = [(a, g) for a in acqs for g in (gains(shipped[("mr", a)]), gains(mine[("mr", a)]))]
    patients = sorted(set.intersection(*[set(g) for _, g in cols]))
    lines = ["| ×4, gain over the better baseline (dB) | " + " | ".join(
        f"{ACQ_NAMES[a]}: {who}" for a in acqs for who in ("shipped model", "trained on the patient itself")) + " |",
        "|---" * (1 + len(cols)) + "|"]
    lines += [f"| {p} | " + " | ".join(f"{g[p][4.0]:+.2f}" for _, g in cols) + " |" for p in patients]
    lines.append("| **mean** (target) | " + " | ".join(
        f"**{np.mean([g[p][4.0] for p in patients]):+.2f}** (≥ +{targets[a]:.1f})" for a, g in cols) + " |")
    return lines


def capacity_table(tag: str = ORACLE_SCRATCH) -> list[str]:
    """×4 gain over the better baseline on the UIH T1 of each preset trained from scratch on that patient itself."""
    rows = []
    for preset in ("lean", "mid"):
        table = read(HERE / "headline" / tag / preset)
        if set(table) != {("mr", "profile"), ("mr", "decimate")}:
            return [f"*not measured (Resources/Results/headline/{tag}/{preset}/ incomplete)*"]
        cells = [gains(table[("mr", acq)])["MR UIH T1"][4.0] for acq in ("profile", "decimate")]
        rows.append(f"| {preset} | " + " | ".join(f"{c:+.2f}" for c in cells) + " |")
    return ["| preset, trained from scratch on the UIH T1 itself | thick slices (box), ×4 | decimation, ×4 |",
            "|---|---|---|", *rows]


def _include(path: Path) -> list[str]:
    return path.read_text().rstrip().splitlines() if path.exists() else [f"*not measured ({path.name} missing)*"]


def _per_patient(tag: str, before: dict, seen: set[str]) -> list[str]:
    table = read(HERE / "headline" / tag)
    lines: list[str] = []
    for key in sorted(table, key=lambda k: (k[0], k[1] != "profile")):
        lines += section(*key, table[key], seen, before.get(key))
    return lines


def results_page() -> str:
    previous = read(HERE / "headline" / OLD) if _exists(OLD) else {}
    lines = ["# Results", "",
             "Measured on the project's machine class (2 CPU cores, no GPU). Written by "
             "`python Resources/Results/make_results.py` from the result files named in each section; the commands "
             "that make them are in [training.md](training.md).", "",
             "## Headline: clinical patients the shipped models never saw, through-plane", "",
             f"{NEW_WHAT[0].upper() + NEW_WHAT[1:]}, on the clinical thin patients that no training step of theirs "
             "saw (`unseen_by_previous` in `Resources/Results/headline/folds.json`: CT LIDC-IDRI-0314, MR MS patient "
             "26 with T1, T2 and FLAIR, the UIH 3D T1), each scored along its z axis. Protocol of DESIGN.md §5 "
             "(centre crop 256, borders of s slices excluded, PSNR on normalised intensities), the product's defaults. "
             "Two acquisitions: thick slices (the box average of s thin slices, what a real thick reconstruction is) "
             "and the paper's decimation (every s-th slice). Gains are DP-NSL minus the better of linear and cubic on "
             "that patient, then mean ± std over patients. One CT patient: its std is 0 and says nothing.", ""]
    if _exists(NEW):
        lines += headline_summary(NEW) + ["", f"Per patient (`Resources/Results/headline/{NEW}/`; the row *before* is "
                                              "the previous version — its code, the same models — on the same "
                                              "patients):", ""]
        lines += _per_patient(NEW, previous, set())
    else:
        lines += ["*not measured yet*", ""]
    lines += ["## How far the lean model can go on the unseen MR patients", "",
              "A ceiling, not a result: `Resources/Results/headline/oracle.sh` fine-tunes the shipped MR model (1000 "
              "steps of its last recipe) on each unseen MR patient *itself*, every slice of it, z included (the very "
              "slices it is then scored on; no model of the product may do this), and scores it with the headline "
              f"protocol at ×4 (`Resources/Results/headline/{ORACLE}/`). A model trained on other patients is not "
              "expected to beat a fine-tune on the scored patient itself, and even that leaves the MR mean below "
              "both of the quality issue's ×4 targets: MS patient 26 gains nothing more under decimation, and the "
              "UIH T1 stays under +0.9 dB on both acquisitions.", ""]
    lines += ceiling_table() + [""]
    lines += ["Capacity, where the model may learn the patient itself: the lean and the mid preset (about twice "
              "lean's compute), each trained from scratch on the UIH T1 alone with the same recipe (`oracle.sh "
              f"scratch`, `Resources/Results/headline/{ORACLE_SCRATCH}/`). Gain over the better baseline on that "
              "patient:", ""]
    lines += capacity_table() + ["", "Mid adds about 0.1 dB on thick slices and 0.25 dB under decimation when it "
                                      "has seen this patient; trained on the other patients (the `mid_mr` recipe in "
                                      "[what-did-not-help.md](what-did-not-help.md)) it gave the UIH T1 nothing over "
                                      "the shipped lean model. On thick slices the UIH T1 stays at +0.85 dB even "
                                      "then, so the MR mean would reach +1.5 only if MS patient 26 gained +2.15 "
                                      "(+1.90 fine-tuned on itself); under decimation the target would need this "
                                      "vendor's scans in training, not only a larger model.", ""]
    lines += ["## Before: the previous version on every clinical patient", "",
              f"`Resources/Results/headline/{OLD}/` (v5 CT and v4 MR models, the code of the previous version). They "
              "were trained on some of these patients (marked): those rows overstate them.", ""]
    if previous:
        lines += _per_patient(OLD, {}, {PATIENT_OF[v] for v in SHIPPED_SEEN})
    lines += ["## Secondary: a phantom and in-plane axes (never in the headline)", "",
              "The skull phantom along z and the in-plane axes of a thick chest CT and a thick FLAIR, kept out of all "
              "training; the shipped models with this version's code (in brackets: the previous version). Gain over "
              "the better baseline (dB); "
              f"`Resources/Results/secondary/{NEW}/`, `Resources/Results/secondary/{OLD}/`.", ""]
    lines += secondary_table(NEW, OLD)
    lines += ["", "## The default steps, one by one", "",
              "Each step against the same run without it (`evaluate --no-calibrate`, `--no-destripe`, `--no-bounds`) "
              "on every patient and scale of the headline protocol: DP-NSL's PSNR with the step minus without it.", ""]
    lines += steps_table(NEW)
    lines += ["", "## The encoder in bfloat16", "",
              "`--precision bfloat16` against float32 on every patient and scale of the headline protocol "
              f"(`Resources/Results/headline/{NEW}_bf16/`): DP-NSL's PSNR change. The tables above are in float32, the "
              "reference arithmetic (the same on every machine); `dpnsl upsample` and `upsample()` default to "
              "`precision=\"auto\"`, which takes bfloat16 on a CPU that computes it natively (AVX512-BF16 or AMX, as "
              "this project's machine) and float32 elsewhere.", ""]
    lines += precision_table(NEW)
    lines += ["", "## The defect cases", "", "`python Resources/Results/defects/run.py` on the cases the quality issue "
              "found, rebuilt from the shared data; raw intensities in, as a user's scan.", "", "Before (the previous "
              "version's code, shipped models):", ""] + _include(HERE / "defects" / "before.md")
    lines += ["", "After:", ""] + _include(HERE / "defects" / "after.md")
    lines += ["", "## Speed", "",
              "Two CPUs of the same 2-core machine class: files without a suffix come from one with native "
              "bfloat16 (AVX512-BF16 or AMX; their headers predate the processor field), `_avx2` from an AMD EPYC "
              "with AVX2 only (`SUFFIX=_avx2 Resources/Results/speed/run.sh chest60`), where the default runs in "
              "float32 at about three quarters of the other CPU's float32 speed and forced bfloat16 is emulated.", ""]
    for path in sorted((HERE / "speed").glob("*.md")):
        lines += [f"`{path.relative_to(ROOT)}`:", "", *_include(path), ""]
    return "\n".join(lines).rstrip() + "\n"


def update_readme(table: list[str]) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    intro = (f"{NEW_WHAT[0].upper() + NEW_WHAT[1:]}, through-plane (z) on the clinical patients they never saw, "
             "per patient, then mean ± std; linear and cubic measured in the same run ([protocol and every "
             "table](docs/results.md)):")
    block = "\n".join([f"{START} (written by python Resources/Results/make_results.py; do not edit by hand) -->",
                       intro, "", *table, END])
    readme.write_text(head + block + tail)


def main() -> None:
    (ROOT / "docs" / "results.md").write_text(results_page())
    if _exists(NEW):
        update_readme(headline_summary(NEW))
    print("wrote docs/results.md" + (" and the README's table" if _exists(NEW) else ""))


if __name__ == "__main__":
    main()
