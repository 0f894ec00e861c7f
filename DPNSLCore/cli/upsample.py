"""Command line of ``dpnsl upsample`` / ``python -m DPNSLCore.upsample INPUT -o OUTPUT --scale S | --spacing MM``.

Safety rules: every output path is checked (not the input, a writable folder, a known extension, no existing file
unless ``--overwrite``) before any computation; files are written atomically, and if a later file fails the
ones this run already wrote are removed, so a run leaves all its outputs or none.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import warnings
from pathlib import Path

from tqdm import tqdm

from ..inference.allocator import keep_freed_memory
from ..inference.api import METHODS, MODALITIES, upsample
from ..inference.ensemble import ENSEMBLE_SIZES
from ..inference.request import UpsampleRequest
from ..inference.tiling import Cancelled, TilingOptions
from ..io.volumes import WRITE_SUFFIXES, Volume, read_volume, write_volume
from ..ops.grid import KINDS, PROFILES

OUTPUT_DTYPES = ("input", "float32", "int16", "uint16", "int32")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dpnsl upsample",
        description="Upsample a thick-slice CT/MR volume along its slice axis; acquired slices are kept exactly.",
    )
    p.add_argument("input", help="NIfTI/NRRD/MHA file or DICOM series folder")
    p.add_argument("--series", metavar="UID", default=None,
                   help="SeriesInstanceUID of the series to read from a DICOM folder that holds several (default: "
                   "the one with the most files, named in the output)")
    p.add_argument("-o", "--output", required=True, help=f"output file ({', '.join(WRITE_SUFFIXES)})")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--scale", type=float, help="upsampling factor along the slice axis, e.g. 5 for 5 mm -> 1 mm")
    size.add_argument("--spacing", type=float, help="target slice spacing in mm")
    p.add_argument("--method", choices=METHODS, default="dpnsl", help="default: dpnsl (the shipped model)")
    p.add_argument("--degradation", choices=["auto", *KINDS], default="auto",
                   help="acquisition model; auto (default): a slice profile for a model trained on them (the "
                   "shipped ones), else decimate for an integer scale and sample otherwise")
    p.add_argument("--profile", choices=PROFILES, help="slice profile for --degradation profile, and for auto when "
                   "the model was trained on slice profiles (default: the model's, else box)")
    p.add_argument("--thickness", type=float, default=None,
                   help="slice thickness in slice spacings (profile); default: the header's, else 1")
    p.add_argument("--thickness-mm", type=float, default=None,
                   help="slice thickness in mm (profile), instead of --thickness")
    p.add_argument("--adapt", type=float, default=0.0, metavar="SECONDS",
                   help="fine-tune a copy of the model on this volume's own in-plane axes for SECONDS before "
                   "upsampling (self-supervised; default 0: off)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="add the network's detail as it is (default: its strength is first fitted to this scan, one "
                   "gain by least squares on its own in-plane axes at the output spacing; A x = y holds either way)")
    p.add_argument("--no-destripe", action="store_true",
                   help="keep the network's detail as it is (default: its part that repeats with the slice period, "
                   "locally, is removed; the acquired slices are kept either way)")
    p.add_argument("--ensemble", type=int, default=1, choices=ENSEMBLE_SIZES, metavar="N",
                   help="average the network's estimate over N in-plane flips/transposes of the input (1, 2, 4 or "
                   "8; N times the network time; default 1: off; A x = y holds either way)")
    p.add_argument("--slice-axis", default="auto", choices=["auto", "0", "1", "2"],
                   help="numpy axis of the slices (0 = the file's third axis); auto = largest spacing")
    p.add_argument("--checkpoint", "--model", dest="model", default=None,
                   help="checkpoint path or shipped name (ct, mr); default: the shipped model for the modality")
    p.add_argument("--modality", choices=MODALITIES, default="auto",
                   help="ct or mr: picks the shipped model and the intensity rule; auto: from the intensities")
    p.add_argument("--allow-untrained", action="store_true", help="accept a preset name (random weights) as model")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--tile-size", type=int, default=TilingOptions.tile_size,
                   help="in-plane tile (voxels); lower it to save memory, the result does not change")
    p.add_argument("--z-window", type=int, default=TilingOptions.z_window,
                   help="observed slices per network window; lower it to save memory, the result does not change")
    p.add_argument("--output-dtype", choices=OUTPUT_DTYPES, default="input",
                   help="input: the input's integer type (rounded) or float32 for float input (default)")
    p.add_argument("--save-parts", metavar="DIR", help="also write anchor, detail and routing maps (dpnsl) here")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_output(path: Path, input_path: Path, overwrite: bool) -> None:
    """Refuse an output that is the input, inside an input folder, of unknown type, existing, or not writable.

    Creates the output folder when missing (and checks it can hold a file) so that no compute is wasted.

    Raises:
        ValueError: the rule broken and the fix. OSError: the folder cannot be created or written.
    """
    if _same_file(path, input_path):
        raise ValueError(f"output {str(path)!r} is the input file; DPNSL never overwrites its input: choose another "
                         "output name")
    if input_path.is_dir() and path.resolve().is_relative_to(input_path.resolve()):
        raise ValueError(f"output {str(path)!r} lies inside the input DICOM folder {str(input_path)!r}; write it "
                         "elsewhere")
    if path.is_dir():
        raise ValueError(f"output {str(path)!r} is a folder; give a file name such as {path / 'thin.nii.gz'}")
    if not any(path.name.lower().endswith(s) and len(path.name) > len(s) for s in WRITE_SUFFIXES):
        raise ValueError(f"output {str(path)!r} must end with one of {', '.join(WRITE_SUFFIXES)}")
    if path.exists() and not overwrite:
        raise ValueError(f"output {str(path)!r} exists; pass --overwrite to replace it, or choose another name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".dpnsl-write-test-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OSError(f"cannot write into {str(path.parent)!r} ({err.strerror or err}); choose a writable folder") \
            from err


def part_paths(folder: Path, stem: str, degrees: tuple[int, ...]) -> dict[str, Path]:
    """The files ``--save-parts`` writes: anchor, detail and one routing map per expert degree."""
    names = ["anchor", "detail", *[f"routing_deg{d}" for d in degrees]]
    return {name: folder / f"{stem}_{name}.nii.gz" for name in names}


def write_all(files: list[tuple[Volume, Path]]) -> None:
    """Write every (volume, path) atomically; on a failure remove the ones already written, then re-raise."""
    written: list[Path] = []
    try:
        for volume, path in files:
            write_volume(volume, path)
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


class _ProgressBar:
    """A tqdm bar created on the first progress report (so errors found before compute print cleanly)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.bar = args, None

    def __call__(self, fraction: float, message: str) -> None:
        if self.bar is None:
            self.bar = tqdm(total=100, unit="%", disable=self.args.quiet,
                            desc=f"{self.args.method} x{self.args.scale or self.args.spacing}")
        self.bar.update(round(100 * fraction) - self.bar.n)
        self.bar.set_postfix_str(message, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    output, source = Path(args.output), Path(args.input)
    try:
        tiling = TilingOptions(tile_size=args.tile_size, z_window=args.z_window)
        request = UpsampleRequest(scale=args.scale, spacing=args.spacing, degradation=args.degradation,
                                  thickness=args.thickness, profile=args.profile, thickness_mm=args.thickness_mm,
                                  slice_axis="auto" if args.slice_axis == "auto" else int(args.slice_axis))
        check_output(output, source, args.overwrite)
        parts_dir = Path(args.save_parts) if args.save_parts else None
        stem = output.name.split(".")[0]
        if parts_dir is not None:
            for path in part_paths(parts_dir, stem, (2, 3, 4)).values():  # names checked before any compute
                check_output(path, source, args.overwrite)
        volume = read_volume(source, args.series)  # the request is resolved once, by upsample
        progress = _ProgressBar(args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the same text is in result.notes, printed below
            result = upsample(volume, args.scale, spacing=args.spacing, model=args.model, method=args.method,
                              degradation=args.degradation, thickness=args.thickness, profile=args.profile,
                              thickness_mm=args.thickness_mm, slice_axis=request.slice_axis,
                              modality=args.modality, device=args.device,
                              return_parts=parts_dir is not None, tiling=tiling, output_dtype=args.output_dtype,
                              allow_untrained=args.allow_untrained, progress=progress, adapt=args.adapt or None,
                              destripe=not args.no_destripe, calibrate=not args.no_calibrate,
                              ensemble=args.ensemble)
        progress.close()
        print(f"{source}: {result.plan.describe()}", file=sys.stderr)
        for note in result.notes:
            print(f"  {note}", file=sys.stderr)
        files = [(result.to_volume(), output)]
        if parts_dir is not None:
            named = {"anchor": result.anchor, "detail": result.detail}
            if result.routing is not None:
                named.update({f"routing_deg{d}": r for d, r in zip(result.expert_degrees, result.routing, strict=True)})
            paths = part_paths(parts_dir, stem, result.expert_degrees)
            files += [(Volume(a, result.geometry), paths[name]) for name, a in named.items() if a is not None]
        write_all(files)
    except (Cancelled, KeyboardInterrupt) as why:  # the Python API's cancel, or Ctrl-C: no output is left behind
        print(f"{'cancelled' if isinstance(why, Cancelled) else 'interrupted'}: nothing written", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, MemoryError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    plan = result.plan
    src, dst = plan.input_spacing, plan.output_spacing
    print(f"wrote {output}: {volume.array.shape} -> {result.volume.shape} ({result.volume.dtype}) slices along axis "
          f"{result.slice_axis}, spacing {src:g} -> {dst:g} mm, x{result.scale:g} {plan.acquisition_text()}, method "
          f"{result.method}, max |A x - y| = {result.consistency_error:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
