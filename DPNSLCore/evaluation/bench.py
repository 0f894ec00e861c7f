"""Benchmark: ``python -m DPNSLCore.bench [VOLUME] --scale 4 --methods linear,cubic,lean,paper``.

Times every method on the same volume in one run (the volume is first decimated by ``scale`` along its slice
axis, so the output has the input's size; ``--observed`` takes it as acquired, ``--slices N`` extends it) and
prints output voxels per second, the ratio of each time to linear interpolation's, the peak memory each
method added (host RSS sampled every 5 ms; CUDA peak too) and the banding measures of each output (:mod:`.banding`).
Each method runs in its own subprocess so that memory kept by an earlier one cannot hide a later one's peak.
Presets run with fresh weights: speed does not depend on training.

``--profile`` adds where each method's time went, stage by stage, as seconds and share: read (once), calibration,
the network's encoder, upsampler (spline experts, router, mixing) and decoder, the anchor and projection, destripe,
bounds, output (conversion, placement, the consistency check) and write (a NIfTI of the output, as the command line
writes it). The network's parts are timed by forward hooks on its modules (:class:`StageClock.watch`); since they
also run inside calibration, the network stage is split between them in proportion to their hooked times.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from ..inference.allocator import keep_freed_memory
from ..inference.api import upsample
from ..inference.engine import PRECISIONS, resolve_precision
from ..inference.ensemble import ENSEMBLE_SIZES
from ..inference.tiling import TilingOptions
from ..inference.timing import StageClock
from ..io.volumes import Geometry, Volume, detect_slice_axis, read_volume, write_volume
from ..models.registry import open_model, resolve_device
from ..ops.operators import simulate_acquisition
from ..resources import sample_path
from .banding import banding_or_none

SAMPLE = "ct_chest_1mm_crop.nii.gz"  # the packaged thin CT crop, used when no volume is given


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class PeakMemory:
    """Context manager sampling the process RSS in a thread; ``peak`` is the rise over the starting RSS."""

    def __enter__(self) -> PeakMemory:
        self.start, self.peak, self._stop = _rss_bytes(), 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes() - self.start)
            time.sleep(0.005)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes() - self.start)


def time_method(lr: np.ndarray, scale: float, method: str, device: torch.device, tiling: TilingOptions,
                repeats: int, *, calibrate: bool = True, spacing_zyx: tuple[float, float, float] | None = None,
                output_dtype: str = "input", ensemble: int = 1, profile: bool = False,
                precision: str = "float32") -> dict:
    """Best-of-``repeats`` wall time and peak memory of one method on ``lr`` (slice axis 0; ``spacing_zyx`` its
    voxel size, which ``calibrate`` reads; the calibration's seconds are part of the time), and the banding of its
    output as written (``output_dtype`` "input": the input's integer type, rounded, as the command line writes it;
    "float32": before rounding; ``ensemble``: DP-NSL's self-ensemble size). ``profile``: also the seconds of each
    stage of the last repeat (``stages``), the network's parts included, and of writing the output as NIfTI."""
    model = None
    if method not in ("linear", "cubic"):
        model = open_model(method, device, allow_untrained=True)  # speed does not depend on training
        kind = "dpnsl"
    else:
        kind = method
    times, peak = [], 0
    stack = lr if spacing_zyx is None else Volume(lr, Geometry.from_spacing_zyx(spacing_zyx))
    parts = StageClock(device)
    hooks = []
    if profile and model is not None:
        estimator = model.model.estimator
        for name in ("encoder", "upsampler", "decoder"):
            hooks += parts.watch(getattr(estimator, name), name)
    for _ in range(repeats):
        parts.seconds.clear()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            out = upsample(stack, scale, method=kind, model=model, device=str(device), tiling=tiling, slice_axis=0,
                           output_dtype=output_dtype, calibrate=calibrate, ensemble=ensemble if kind == "dpnsl" else 1,
                           **({"precision": precision} if kind == "dpnsl" else {}))
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        peak = max(peak, mem.peak)
    for hook in hooks:
        hook.remove()
    stages = {}
    if profile:
        stages = dict(out.timings)
        if "network" in stages and parts.seconds:  # the hooks also fire in calibration's passes: the network
            inside, hooked = stages.pop("network"), sum(parts.seconds.values())  # stage is split in their proportion
            stages.update({name: inside * sec / hooked for name, sec in parts.seconds.items()})
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            write_volume(Volume(out.volume, Geometry.from_spacing_zyx((1.0, 1.0, 1.0))), Path(folder) / "out.nii.gz")
            stages["write"] = time.perf_counter() - start
    periodicity, texture = banding_or_none(out.volume, scale)
    cuda_peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    return {"method": method, "seconds": min(times), "voxels": int(np.prod(out.plan.output_shape)),
            "peak_rss": peak, "cuda_peak": cuda_peak, "error": out.consistency_error, "periodicity": periodicity,
            "texture": texture, "detail_gain": out.detail_gain, "dtype": str(out.volume.dtype), "stages": stages}


def describe_device(device: torch.device) -> str:
    """The processor behind ``device``, for the header: a speed figure says little without it (two 2-core machines
    of this project differ by their CPU's instruction set). CPU: its model name (``/proc/cpuinfo`` on Linux, else
    the platform's) and the instruction set PyTorch's kernels use; CUDA: the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}"


def mirror_extend(array: np.ndarray, n: int) -> np.ndarray:
    """``array`` extended (or cut) to ``n`` slices along axis 0 by mirroring it back and forth (memory tests)."""
    period = np.concatenate([np.arange(array.shape[0]), np.arange(array.shape[0] - 2, 0, -1)])
    return np.ascontiguousarray(array[period[np.arange(n) % len(period)]])


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def format_table(rows: list[dict]) -> str:
    """Markdown table with voxels/s and ratios to linear (the first row must be linear)."""
    base = next(r["seconds"] for r in rows if r["method"] == "linear")
    lines = ["| method | time (s) | output Mvox/s | time / linear | peak memory (GB) | max abs(A x - y) | "
             "periodicity 1/s | texture acq./synth. |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mem = r["peak_rss"] / 1e9 if not r["cuda_peak"] else r["cuda_peak"] / 1e9
        lines.append(f"| {r['method']} | {r['seconds']:.2f} | {r['voxels'] / r['seconds'] / 1e6:.2f} | "
                     f"{r['seconds'] / base:.1f} | {mem:.2f} | {r['error']:.2g} | {_fmt(r.get('periodicity'))} | "
                     f"{_fmt(r.get('texture'))} |")
    return "\n".join(lines)


STAGE_ORDER = ("read", "calibration", "encoder", "upsampler", "decoder", "interpolation",
               "projection", "destripe", "bounds", "output", "write")


def format_profile(rows: list[dict], read_seconds: float) -> str:
    """Markdown table: seconds and share of each stage per method (read once, charged to every method)."""
    stages = [s for s in STAGE_ORDER if s == "read" or any(s in r["stages"] for r in rows)]
    stages += sorted({s for r in rows for s in r["stages"]} - set(stages))
    head = "| stage | " + " | ".join(f"{r['method']} (s) | share" for r in rows) + " |"
    lines = [head, "|---" * (1 + 2 * len(rows)) + "|"]
    totals = [read_seconds + sum(r["stages"].values()) for r in rows]
    for stage in stages:
        cells = []
        for r, total in zip(rows, totals, strict=True):
            sec = read_seconds if stage == "read" else r["stages"].get(stage)
            cells.append("– | –" if sec is None else f"{sec:.2f} | {100 * sec / total:.0f} %")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"**{t:.2f}** | 100 %" for t in totals) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m DPNSLCore.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("volume", nargs="?", help="volume (default: the packaged thin CT crop)")
    p.add_argument("--scale", type=float, default=4)
    p.add_argument("--methods", default="linear,cubic,lean", help="comma list: linear, cubic, presets, ct, mr, paths")
    p.add_argument("--observed", action="store_true",
                   help="take the volume as the acquired thick volume (default: decimate it by --scale first)")
    p.add_argument("--slices", type=int, help="mirror-extend the observed volume to this many slices (memory tests)")
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--tile-size", type=int, default=TilingOptions.tile_size)
    p.add_argument("--z-window", type=int, default=TilingOptions.z_window)
    p.add_argument("--no-calibrate", action="store_true", help="DP-NSL without fitting its detail gain to the "
                   "volume (default: fitted, as upsample does; its seconds are timed)")
    p.add_argument("--output-dtype", choices=["input", "float32"], default="input",
                   help="output type the banding is measured on: input (default; the input's integer type, rounded, "
                   "as `dpnsl upsample` writes it) or float32 (before rounding: on smooth scans rounding to whole HU "
                   "moves the periodicity by up to 0.07)")
    p.add_argument("--ensemble", type=int, default=1, choices=ENSEMBLE_SIZES, metavar="N",
                   help="DP-NSL's in-plane self-ensemble size (1, 2, 4, 8; default 1: off); timed")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="DP-NSL's encoder arithmetic: float32 (default: the reference, the same on every machine), "
                   "bfloat16, or auto as `dpnsl upsample` (bfloat16 on a CPU that computes it natively); timed")
    p.add_argument("--profile", action="store_true", help="also print the seconds and share of each stage per "
                   "method (read, calibration, encoder, upsampler, decoder, projection, destripe, bounds, write)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: time one method, print JSON
    args = p.parse_args(argv)
    keep_freed_memory()
    try:
        device = resolve_device(args.device)
        tiling = TilingOptions(tile_size=args.tile_size, z_window=args.z_window)
        path = args.volume or str(sample_path(SAMPLE))
        start = time.perf_counter()
        vol = read_volume(path)
        read_seconds = time.perf_counter() - start
        axis = detect_slice_axis(vol.geometry)
        array = np.moveaxis(vol.array, axis, 0)
        spacing = vol.geometry.spacing_zyx
        spacing = (spacing[axis] * (1 if args.observed else args.scale), *(spacing[a] for a in range(3) if a != axis))
        lr = array if args.observed else simulate_acquisition(array, args.scale)[0].astype(array.dtype)
        if args.slices:
            lr = mirror_extend(lr, args.slices)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.one:
        print(json.dumps(time_method(lr, args.scale, args.one, device, tiling, args.repeats,
                                     calibrate=not args.no_calibrate, spacing_zyx=spacing,
                                     output_dtype=args.output_dtype, ensemble=args.ensemble,
                                     profile=args.profile, precision=args.precision)))
        return 0
    print(f"{path}: observed {lr.shape} {lr.dtype} (slices first) -> x{args.scale:g}, device {device} "
          f"({describe_device(device)}), "
          f"{torch.get_num_threads()} threads, {tiling}, output {args.output_dtype}"
          + (f", DP-NSL self-ensemble of {args.ensemble}" if args.ensemble > 1 else "")
          + (f", DP-NSL encoder in {resolve_precision(args.precision, device)[0]}"
             + (" (auto)" if args.precision == "auto" else "") if args.precision != "float32" else ""))
    methods = ["linear", *[m for m in args.methods.split(",") if m and m != "linear"]]
    rows = []
    for method in methods:
        cmd = [sys.executable, "-m", "DPNSLCore.bench", *(argv if argv is not None else sys.argv[1:]), "--one", method]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            print(f"error: {method} failed:\n{done.stderr}", file=sys.stderr)
            return 2
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        fitted = rows[-1]["detail_gain"] != 1
        gain = f" (detail gain {rows[-1]['detail_gain']:.2f})" if fitted else ""
        print(f"  {method}: {rows[-1]['seconds']:.2f} s{gain}", flush=True)
    print(format_table(rows))
    if args.profile:
        print(f"\nWhere the time went (read {read_seconds:.2f} s, once for every method):\n")
        print(format_profile(rows, read_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
