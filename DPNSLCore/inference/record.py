"""The provenance record of one upsampling run: what was read, how the request resolved, which model (file and
SHA-256), every note, the timings and ``max |A x - y|``, as one JSON-ready dict.

The command line writes it beside each output (``<output>.json``); the Slicer module keeps it on the output node
(attribute ``DPNSL.record``); a batch manifest points to it. One builder, so every front end records the same.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .api import UpsampleResult

__all__ = ["file_sha256", "run_record", "write_record"]


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _geometry(shape: tuple[int, ...], spacing_zyx: tuple[float, ...] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"shape_zyx": [int(n) for n in shape]}
    if spacing_zyx is not None:
        out["spacing_zyx_mm"] = [round(float(s), 6) for s in spacing_zyx]
    return out


def run_record(result: UpsampleResult, *, input_shape: tuple[int, ...], input_spacing_zyx: tuple[float, ...] | None,
               source: str | None = None, output: str | None = None, command: str | None = None,
               timings: dict[str, float] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of ``result`` (see the module docstring).

    Args:
        input_shape, input_spacing_zyx: what was read (numpy order, mm).
        source, output: the paths, as given; command: the command line, when there was one.
        timings: seconds per stage measured outside ``upsample`` (read, write), merged with the result's own.
        extra: more fields (e.g. the PACS send report).
    """
    plan = result.plan
    model = None
    if result.method == "dpnsl":
        model = {"source": result.model_source, "modality": result.modality,
                 "expert_degrees": list(result.expert_degrees)}
        if result.model_file is not None:
            model.update(file=str(result.model_file), sha256=file_sha256(result.model_file))
    stages = {**(timings or {}), **result.timings}
    spacing = result.geometry.spacing_zyx if result.geometry is not None else None
    record: dict[str, Any] = {
        "dpnsl_version": __version__,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "input": {"path": source, **_geometry(input_shape, input_spacing_zyx)},
        "output": {"path": output, **_geometry(result.volume.shape, spacing), "dtype": str(result.volume.dtype)},
        "plan": {"text": plan.describe(), "slice_axis": plan.slice_axis, "scale": plan.scale,
                 "degradation": plan.degradation, "profile": plan.profile, "thickness_spacings": plan.thickness,
                 "input_spacing_mm": plan.input_spacing, "output_spacing_mm": plan.output_spacing},
        "method": result.method,
        "model": model,
        "detail_gain": result.detail_gain,
        "calibration": None if result.calibration is None else {
            "applied": result.calibration.applied, "fitted": result.calibration.fitted,
            "least_squares": result.calibration.raw, "views_gain_db": result.calibration.psnr_gain_db},
        "max_abs_Ax_minus_y": float(result.consistency_error),
        "notes": list(result.notes),
        "timings_s": {k: round(float(v), 3) for k, v in stages.items()},
    }
    record.update(extra or {})
    return record


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_record(record: dict[str, Any], path: str | Path) -> None:
    """Write ``record`` as indented JSON to ``path`` atomically (a hidden temporary file, then a rename)."""
    path = Path(path)
    tmp = path.parent / f".tmp-{secrets.token_hex(4)}-{path.name}"
    try:
        tmp.write_text(json.dumps(record, indent=1, default=_json_default) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
