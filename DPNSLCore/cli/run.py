"""One upsampling case from files to files: check the targets, read, upsample, write every output atomically with
its JSON record, optionally send the DICOM series to a PACS. ``dpnsl upsample`` runs one case, ``dpnsl batch`` many.

Safety rules: every target is checked (not the input, not inside an input DICOM folder, a known format, nothing
existing unless ``--overwrite``, a writable folder) before any computation; files are written atomically, and if a
later file fails the ones this case already wrote are removed, so a case leaves all its outputs or none.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..inference.api import UpsampleResult, upsample
from ..inference.record import run_record, write_record
from ..inference.timing import StageClock
from ..io.dicom_out import dicom_context, write_dicom_series
from ..io.intensity import guess_modality
from ..io.pacs import parse_peer, send_series
from ..io.volumes import WRITE_SUFFIXES, Volume, read_volume, write_volume
from .options import FORMAT_SUFFIX, upsample_kwargs

__all__ = ["Case", "CaseResult", "check_output", "part_paths", "record_path", "run_case"]


@dataclass(frozen=True)
class Case:
    """One input (a file, or a DICOM folder with the series to read) and where its output goes."""

    source: Path
    output: Path
    series: str | None = None


@dataclass
class CaseResult:
    """What a case produced: the upsampling result, the files written and the record (also written as JSON)."""

    result: UpsampleResult
    written: list[Path]
    record: dict[str, Any]
    send_ok: bool = True
    lines: list[str] = field(default_factory=list)


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def record_path(output: Path) -> Path:
    """The JSON record beside an output: ``thin.nii.gz`` -> ``thin.nii.gz.json``; a DICOM folder ``out/`` ->
    ``out.json``."""
    return output.parent / f"{output.name}.json"


def _writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".dpnsl-write-test-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OSError(f"cannot write into {str(folder)!r} ({err.strerror or err}); choose a writable folder") from err


def check_output(path: Path, input_path: Path, overwrite: bool, *, dicom: bool = False) -> None:
    """Refuse an output that is the input, inside an input folder, of unknown type, existing, or not writable.

    Creates the output's parent folder when missing (and checks it can hold a file) so that no compute is wasted.

    Raises:
        ValueError: the rule broken and the fix. OSError: the folder cannot be created or written.
    """
    if _same_file(path, input_path):
        raise ValueError(f"output {str(path)!r} is the input; DPNSL never overwrites its input: choose another "
                         "output name")
    if input_path.is_dir() and path.resolve().is_relative_to(input_path.resolve()):
        raise ValueError(f"output {str(path)!r} lies inside the input DICOM folder {str(input_path)!r}; write it "
                         "elsewhere")
    if dicom:
        if path.exists() and not path.is_dir():
            raise ValueError(f"output {str(path)!r} is a file; --format dicom writes a series into a folder")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise ValueError(f"output folder {str(path)!r} is not empty; pass --overwrite to replace it, or choose "
                             "another folder")
    else:
        if path.is_dir():
            raise ValueError(f"output {str(path)!r} is a folder; give a file name such as {path / 'thin.nii.gz'}, "
                             "or --format dicom for a DICOM series")
        if not any(path.name.lower().endswith(s) and len(path.name) > len(s) for s in WRITE_SUFFIXES):
            raise ValueError(f"output {str(path)!r} must end with one of {', '.join(WRITE_SUFFIXES)}, or give "
                             "--format dicom to write a DICOM series into that folder")
        if path.exists() and not overwrite:
            raise ValueError(f"output {str(path)!r} exists; pass --overwrite to replace it, or choose another name")
    _writable(path.parent)


def part_paths(folder: Path, stem: str, degrees: tuple[int, ...]) -> dict[str, Path]:
    """The files ``--save-parts`` writes: anchor, detail and one routing map per expert degree."""
    names = ["anchor", "detail", *[f"routing_deg{d}" for d in degrees]]
    return {name: folder / f"{stem}_{name}.nii.gz" for name in names}


def check_case(case: Case, args: argparse.Namespace, parts_dir: Path | None = None) -> None:
    """Every target of ``case`` checked before any compute (see :func:`check_output`).

    Raises:
        ValueError / OSError: a target that may not be written, or options that do not fit together.
    """
    dicom = args.format == "dicom"
    if args.send and not dicom:
        raise ValueError("--send stores a DICOM series: add --format dicom (and an output folder)")
    if args.send:
        parse_peer(args.send)
    if args.format in FORMAT_SUFFIX and not case.output.name.lower().endswith(FORMAT_SUFFIX[args.format]) \
            and not (args.format == "nifti" and case.output.name.lower().endswith(".nii")):
        raise ValueError(f"--format {args.format} writes {FORMAT_SUFFIX[args.format]} files, but the output is "
                         f"{case.output.name!r}; rename it or leave --format auto")
    check_output(case.output, case.source, args.overwrite, dicom=dicom)
    sidecar = record_path(case.output)
    if sidecar.exists() and not args.overwrite:
        raise ValueError(f"the record {str(sidecar)!r} exists; pass --overwrite to replace it, or choose another name")
    if parts_dir is not None:
        stem = case.output.name.split(".")[0]
        for path in part_paths(parts_dir, stem, (2, 3, 4)).values():  # names checked before any compute
            check_output(path, case.source, args.overwrite)


def _derivation(result: UpsampleResult) -> str:
    plan = result.plan
    model = f", model {result.model_file.name if result.model_file else result.model_source}" \
        if result.method == "dpnsl" else ""
    return (f"DPNSL {result.method} x{plan.scale:g} along axis {plan.slice_axis} ({plan.acquisition_text()}), "
            f"{plan.input_spacing:g} -> {plan.output_spacing:g} mm{model}; acquired slices kept (max |A x - y| "
            f"{result.consistency_error:.3g})")


def _write_outputs(case: Case, volume: Volume, result: UpsampleResult, args: argparse.Namespace,
                   parts_dir: Path | None) -> tuple[list[Path], list[Path], list[str]]:
    """Write the output (file or DICOM series) and the parts; returns (files to remove on failure, DICOM files, notes).
    On a failure the outputs already written are removed and the error re-raised."""
    written: list[Path] = []
    dicom_files: list[Path] = []
    notes: list[str] = []
    try:
        out_volume = result.to_volume()
        if args.format == "dicom":
            modality = result.modality or volume.modality or guess_modality(volume.array)
            modality = modality if modality in ("ct", "mr") else "mr"
            context = dicom_context(volume, modality, series_description=f"DPNSL x{result.scale:g} thin",
                                    derivation=_derivation(result))
            notes += list(context.notes)
            dicom_files = write_dicom_series(out_volume, case.output, context, overwrite=args.overwrite)
            written.append(case.output)
        else:
            write_volume(out_volume, case.output)
            written.append(case.output)
        if parts_dir is not None:
            named = {"anchor": result.anchor, "detail": result.detail}
            if result.routing is not None:
                named.update({f"routing_deg{d}": r for d, r in zip(result.expert_degrees, result.routing, strict=True)})
            paths = part_paths(parts_dir, case.output.name.split(".")[0], result.expert_degrees)
            for name, array in named.items():
                if array is not None:
                    write_volume(Volume(array, result.geometry), paths[name])
                    written.append(paths[name])
    except BaseException:
        remove_outputs(written)
        raise
    return written, dicom_files, notes


def remove_outputs(paths: list[Path]) -> None:
    """Remove files and DICOM folders a failed case wrote."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def run_case(case: Case, args: argparse.Namespace, *, parts_dir: Path | None = None,
             progress: Callable[[float, str], None] | None = None, command: str | None = None,
             device: str | None = None) -> CaseResult:
    """Read, upsample and write one case with its record (targets checked first: :func:`check_case`).

    ``device`` overrides ``args.device`` (a batch rank's own GPU). A failed PACS send leaves the written files and
    says so in the record (``send``) and in ``CaseResult.send_ok``.

    Raises:
        ValueError, TypeError, FileNotFoundError, MemoryError, OSError: the case cannot be done (nothing written).
        Cancelled / KeyboardInterrupt: stopped (nothing written).
    """
    check_case(case, args, parts_dir)
    clock = StageClock()
    with clock("read"):
        volume = read_volume(case.source, case.series)
    kwargs = upsample_kwargs(args)
    if device is not None:
        kwargs["device"] = device
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the same text is in result.notes
        result = upsample(volume, args.scale, return_parts=parts_dir is not None, progress=progress, **kwargs)
    start = time.perf_counter()
    written, dicom_files, write_notes = _write_outputs(case, volume, result, args, parts_dir)
    clock.add("write", time.perf_counter() - start)
    extra: dict[str, Any] = {"format": "dicom" if args.format == "dicom" else "file", "writer_notes": write_notes}
    send_ok = True
    if args.send:
        peer = parse_peer(args.send)
        with clock("send"):
            try:
                report = send_series(dicom_files, peer)
                extra["send"] = {"peer": str(peer), "sent": report.sent, "stored": report.stored,
                                 "failures": list(report.failures), "text": report.text()}
                send_ok = report.ok
            except ConnectionError as err:
                extra["send"] = {"peer": str(peer), "error": str(err)}
                send_ok = False
    record = run_record(result, input_shape=volume.array.shape, input_spacing_zyx=volume.geometry.spacing_zyx,
                        source=str(case.source), output=str(case.output), command=command,
                        timings=dict(clock.seconds), extra=extra)
    try:
        write_record(record, record_path(case.output))
    except BaseException:
        remove_outputs(written)
        raise
    return CaseResult(result, written, record, send_ok, summary_lines(case, volume, result, record))


def summary_lines(case: Case, volume: Volume, result: UpsampleResult, record: dict[str, Any]) -> list[str]:
    """The four lines a run prints by default: what was read and the grid, the model and acquisition, the
    consistency, what was written (warnings and the send report come on top)."""
    shape = " x ".join(str(n) for n in volume.array.shape)
    lines = [f"read {case.source} ({shape}): {result.plan.describe()}"]
    if result.method == "dpnsl":
        why = next((n.split("; override")[0].split("; modality ", 1)[1] for n in result.notes
                    if n.startswith("model:") and "; modality " in n), "")
        gain = f", detail gain {result.detail_gain:.2f}" if result.calibration is not None else ""
        lines.append(f"model: {result.model_source}" + (f"; {why}" if why else "") + gain)
    else:
        lines.append(f"method {result.method} (no model)")
    lines.append(f"max |A x - y| = {result.consistency_error:.3g} (the acquired slices are kept)")
    shape_out = " x ".join(str(n) for n in result.volume.shape)
    where = "DICOM series in " if record.get("format") == "dicom" else ""
    lines.append(f"wrote {where}{case.output} ({shape_out}, {result.volume.dtype}) and its record "
                 f"{record_path(case.output)}")
    return lines
