"""The headline protocol's folds (folds.json), as file lists for the training and evaluation scripts.

    python folds.py base                 # the volumes every model trains on (none is scored in the headline)
    python folds.py train f1             # base + every patient's volumes except those fold f1 holds out
    python folds.py train all            # base + every patient (the shipped models)
    python folds.py held f1 ct           # the CT volumes fold f1 scores (empty when it scores none of them)
    python folds.py train unseen         # every patient but those the previous shipped models never saw
    python folds.py held unseen mr       # the MR volumes of those patients
    python folds.py folds                # the fold names
Paths are printed under $DATA (default ../shared/data), one per line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SPEC = json.loads((Path(__file__).parent / "folds.json").read_text())


def scoring_fold(patient: str) -> str:
    """The fold that scores ``patient``: the first that holds it out."""
    return next(f for f, held in SPEC["folds"].items() if patient in held)


def volumes(what: str, fold: str = "all", modality: str | None = None) -> list[str]:
    patients = SPEC["patients"]
    if what == "base":
        names = list(SPEC["base"])
    elif what == "train":
        held = set(SPEC["folds"].get(fold, [])) if fold != "all" else set()
        if fold == "unseen":  # every patient but the ones the previous models never saw
            held = set(SPEC["unseen_by_previous"]["patients"])
        names = list(SPEC["base"]) + [v for p, d in patients.items() if p not in held for v in d["volumes"]]
    elif what == "held" and fold == "unseen":
        names = [v for p in SPEC["unseen_by_previous"]["patients"] for v in patients[p]["volumes"]
                 if patients[p]["modality"] == modality]
    elif what == "held":
        names = [v for p, d in patients.items() if scoring_fold(p) == fold and d["modality"] == modality
                 for v in d["volumes"]]
    else:
        raise SystemExit(__doc__)
    return names


def main(argv: list[str]) -> None:
    if argv[:1] == ["folds"]:
        print("\n".join(SPEC["folds"]))
        return
    data = os.environ.get("DATA", "../shared/data")
    names = volumes(argv[0], *argv[1:3]) if argv else volumes("?")
    if names:  # nothing at all (not an empty line) when a fold scores no volume of a modality
        print("\n".join(f"{data}/{n}" for n in names))


if __name__ == "__main__":
    main(sys.argv[1:])
