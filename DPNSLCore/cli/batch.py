"""``dpnsl batch IN_DIR OUT_DIR [upsample options]``: upsample every NIfTI/NRRD/MHA file and every DICOM series
under IN_DIR into OUT_DIR (same relative layout), with a manifest written as it goes.

- **Manifest**: one CSV row per finished case (input, series, output, status done/failed, error, model, seconds,
  rank), appended and flushed when the case ends, so a killed batch keeps the rows of every case it finished.
- **Resume**: a rerun skips the cases whose row says done and whose output and record exist, and redoes the rest
  (outputs are atomic, so an interrupted case left nothing); a case that failed is tried again.
- **A bad case** (unreadable file, refused request, out of memory) is recorded with its error and the batch goes on;
  the exit status is 1 when any case failed.
- **Spread** with PyTorch's launcher: ``torchrun --nproc_per_node=N [--nnodes M ...] -m DPNSLCore.batch IN OUT ...``.
  Every rank lists the same cases (sorted) and takes every WORLD_SIZE-th one from its RANK, so none is done twice
  and none skipped; each rank runs on its own device (``cuda:LOCAL_RANK`` when CUDA is there and --device is auto)
  and appends to its own manifest file (``manifest-rank<R>.csv``); rank 0 merges them into ``manifest.csv`` once
  every rank is done (a gloo barrier). One process writes ``manifest.csv`` directly.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..inference.allocator import keep_freed_memory
from ..io.volumes import READ_SUFFIXES
from .options import FORMAT_SUFFIX, add_upsample_options, request_of
from .run import Case, record_path, run_case

__all__ = ["BatchCase", "discover", "main", "read_manifest"]

MANIFEST = "manifest.csv"
COLUMNS = ["case", "input", "series", "output", "status", "error", "model", "seconds", "rank", "finished"]


@dataclass(frozen=True)
class BatchCase:
    """One case of a batch: its name (the relative input, with ``#series`` for a DICOM series) and its files."""

    name: str
    case: Case


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dpnsl batch", description="Upsample every volume and DICOM series under a "
                                "folder; resumable, spread over processes and machines with torchrun.")
    p.add_argument("input_dir", help="folder searched recursively for NIfTI/NRRD/MHA files and DICOM series")
    p.add_argument("output_dir", help="where the outputs go, in the same relative layout, with manifest.csv")
    add_upsample_options(p)
    return p


def _dicom_series(folder: Path) -> list[str]:
    import SimpleITK as sitk  # noqa: N813

    return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in sorted(READ_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def discover(input_dir: Path, output_dir: Path, fmt: str = "auto") -> list[BatchCase]:
    """Every case under ``input_dir``, sorted by name, with its output path under ``output_dir``: a file keeps its
    relative path with the output suffix (``.nii.gz`` unless ``fmt`` says otherwise; a folder for dicom); a DICOM
    series is named after its folder, plus ``_<SeriesInstanceUID>`` when the folder holds several.

    Raises:
        FileNotFoundError: ``input_dir`` is not a folder.
    """
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder not found: {str(input_dir)!r}")
    suffix = "" if fmt == "dicom" else FORMAT_SUFFIX.get(fmt, ".nii.gz")
    cases = []
    for folder, _, names in sorted(os.walk(input_dir)):
        here = Path(folder)
        rel = here.relative_to(input_dir)
        for name in sorted(names):
            if name.lower().endswith(READ_SUFFIXES):
                relative = rel / name
                out = output_dir / rel / (_strip_suffix(name) + suffix)
                cases.append(BatchCase(relative.as_posix(), Case(here / name, out)))
        if any(not n.lower().endswith(READ_SUFFIXES) for n in names):  # may hold DICOM files
            series = _dicom_series(here)
            for uid in series:
                stem = rel.name or input_dir.name
                name = stem + (f"_{uid}" if len(series) > 1 else "")
                out = output_dir / rel.parent / (name + suffix) if rel.parts else output_dir / (name + suffix)
                cases.append(BatchCase(f"{rel.as_posix()}#{uid}", Case(here, out, uid)))
    return sorted(cases, key=lambda c: c.name)


def read_manifest(output_dir: Path) -> dict[str, dict[str, str]]:
    """The last row of each case over every manifest file in ``output_dir`` (a torn last line is ignored)."""
    rows: dict[str, dict[str, str]] = {}
    for path in sorted(output_dir.glob("manifest*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("case") and row.get("status") in ("done", "failed") and row.get("finished"):
                    rows[row["case"]] = row
    return rows


def _finished(entry: BatchCase, rows: dict[str, dict[str, str]]) -> bool:
    row = rows.get(entry.name)
    return row is not None and row["status"] == "done" and entry.case.output.exists() \
        and record_path(entry.case.output).exists()


class _Manifest:
    """Appends one row per finished case and flushes it to disk at once."""

    def __init__(self, path: Path) -> None:
        new = not path.exists() or path.stat().st_size == 0
        self.handle = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (kept open for the batch)
        self.writer = csv.DictWriter(self.handle, COLUMNS)
        if new:
            self.writer.writeheader()

    def append(self, row: dict) -> None:
        self.writer.writerow({k: row.get(k, "") for k in COLUMNS})
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


def _remove_stale_temporaries(output: Path) -> None:
    """The hidden temporary files a killed run of this case left (``.tmp-<hex>-<name>``; each case has its own
    names and one rank, so no other case's files are touched)."""
    if output.parent.is_dir():
        for name in (output.name, f"{output.name}.json"):
            for stale in output.parent.glob(f".tmp-*-{name}"):
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)


def _world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) for one process."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


def _device(requested: str, local_rank: int, world: int) -> str:
    if requested == "auto" and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}" if world > 1 else "cuda"
    return "cpu" if requested == "auto" else requested


def merge_manifests(output_dir: Path) -> Path:
    """Write ``manifest.csv`` from every rank's rows (one row per case, its last), atomically."""
    rows = read_manifest(output_dir)
    target = output_dir / MANIFEST
    tmp = output_dir / f".tmp-{os.getpid()}-{MANIFEST}"
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for name in sorted(rows):
            writer.writerow({k: rows[name].get(k, "") for k in COLUMNS})
    os.replace(tmp, target)
    return target


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    rank, world, local_rank = _world()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))  # a barrier at the end only
    try:
        request_of(args)
        input_dir, output_dir = Path(args.input_dir), Path(args.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        cases = discover(input_dir, output_dir, args.format)
    except (ValueError, TypeError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = read_manifest(output_dir)
    mine = cases[rank::world]
    todo = [c for c in mine if not _finished(c, rows)]
    device = _device(args.device, local_rank, world)
    manifest = _Manifest(output_dir / (MANIFEST if world == 1 else f"manifest-rank{rank}.csv"))
    command = "dpnsl batch " + shlex.join(argv)
    failed = 0
    print(f"rank {rank} of {world} on {device}: {len(mine)} of {len(cases)} case(s), {len(mine) - len(todo)} done "
          f"before, {len(todo)} to do", file=sys.stderr)
    bar = tqdm(todo, desc=f"batch rank {rank}" if world > 1 else "batch", unit="case", disable=args.quiet,
               position=rank)
    try:
        for entry in bar:
            bar.set_postfix_str(entry.name, refresh=False)
            start = time.perf_counter()
            row = {"case": entry.name, "input": str(entry.case.source), "series": entry.case.series or "",
                   "output": str(entry.case.output), "rank": rank}
            _remove_stale_temporaries(entry.case.output)
            try:
                args.overwrite = True  # a case that failed before, or was killed after writing its output
                done = run_case(entry.case, args, command=command, device=device)
                model = (done.record.get("model") or {}).get("source") or done.result.method
                row.update(status="done", model=model)
            except (ValueError, TypeError, FileNotFoundError, MemoryError, OSError, RuntimeError) as err:
                failed += 1
                row.update(status="failed", error=f"{type(err).__name__}: {err}"[:500])
            row.update(seconds=f"{time.perf_counter() - start:.2f}",
                       finished=datetime.datetime.now().isoformat(timespec="seconds"))
            manifest.append(row)
    except KeyboardInterrupt:
        print(f"interrupted: the manifest keeps every finished case; rerun the same command to go on "
              f"({output_dir / MANIFEST})", file=sys.stderr)
        return 130
    finally:
        bar.close()
        manifest.close()
    if world > 1:
        dist.barrier()
        if rank == 0:
            merge_manifests(output_dir)
        dist.destroy_process_group()
    print(f"rank {rank}: {len(todo) - failed} done, {failed} failed, {len(mine) - len(todo)} skipped (done before); "
          f"manifest {output_dir / MANIFEST}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
