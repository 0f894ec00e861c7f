"""Command line of ``python -m DPNSLCore.upsample INPUT -o OUTPUT --scale S | --spacing MM``.

The code lives here, not in ``DPNSLCore/upsample.py``, so that importing it never shadows the function
``DPNSLCore.upsample``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ._allocator import keep_freed_memory
from .inference import METHODS, upsample
from .io import Volume, read_volume, write_volume
from .operators import KINDS, PROFILES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m DPNSLCore.upsample",
        description="Upsample a thick-slice CT/MR volume along its slice axis; acquired slices are kept exactly.",
    )
    p.add_argument("input", help="NIfTI/NRRD/MHA file or DICOM series folder")
    p.add_argument("-o", "--output", required=True, help="output file (.nii.gz, .nrrd, .mha)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--scale", type=float, help="upsampling factor along the slice axis, e.g. 5 for 5 mm -> 1 mm")
    size.add_argument("--spacing", type=float, help="target slice spacing in mm")
    p.add_argument("--method", choices=METHODS, default="dpnsl", help="default: dpnsl (the shipped model)")
    p.add_argument("--degradation", choices=KINDS, default=None,
                   help="acquisition model: decimate (integer scale, default) or sample (default for non-integer)")
    p.add_argument("--profile", choices=PROFILES, default="box", help="slice profile for --degradation profile")
    p.add_argument("--thickness", type=float, default=1.0, help="slice thickness in slice spacings (profile)")
    p.add_argument("--slice-axis", default="auto", choices=["auto", "0", "1", "2"],
                   help="numpy axis of the slices (0 = the file's third axis); auto = largest spacing")
    p.add_argument("--checkpoint", "--model", dest="model", default=None,
                   help="checkpoint path, shipped name (ct, mr) or preset; default: shipped model for the modality")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--tile-size", type=int, default=224, help="in-plane tile size (voxels); lower it to save memory")
    p.add_argument("--z-window", type=int, default=8, help="observed slices per network window")
    p.add_argument("--z-overlap", type=int, default=2, help="observed slices shared by neighbouring windows")
    p.add_argument("--blend", choices=["ramp", "mean"], default="ramp",
                   help="window blending; 'mean' with --z-window 4 --z-overlap 3 is the paper's stride-1 averaging")
    p.add_argument("--save-parts", metavar="DIR", help="also write anchor, detail and routing maps (dpnsl) here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _write_parts(result, folder: Path, stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    named = {"anchor": result.anchor, "detail": result.detail}
    if result.routing is not None:
        for degree, weights in zip(result.expert_degrees, result.routing, strict=True):
            named[f"routing_deg{degree}"] = weights
    for name, array in named.items():
        if array is not None:
            path = folder / f"{stem}_{name}.nii.gz"
            write_volume(Volume(array, result.geometry), path)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        volume = read_volume(args.input)
        axis = None if args.slice_axis == "auto" else int(args.slice_axis)
        degradation = args.degradation
        if degradation is None:
            scale_known = args.scale is not None
            degradation = "decimate" if scale_known and float(args.scale).is_integer() else "sample"
        bar = tqdm(total=100, unit="%", disable=args.quiet, desc=f"{args.method} x{args.scale or args.spacing}")

        def progress(fraction: float, message: str) -> None:
            bar.update(round(100 * fraction) - bar.n)
            bar.set_postfix_str(message, refresh=False)

        tiling = {"tile_size": args.tile_size, "z_window": args.z_window, "z_overlap": args.z_overlap,
                  "blend": args.blend}
        result = upsample(volume, args.scale, spacing=args.spacing, model=args.model, method=args.method,
                          degradation=degradation, thickness=args.thickness, profile=args.profile, slice_axis=axis,
                          device=args.device, return_parts=bool(args.save_parts), tiling=tiling, progress=progress)
        bar.close()
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        write_volume(result.to_volume(), args.output)
        if args.save_parts:
            stem = Path(args.output).name.split(".")[0]
            _write_parts(result, Path(args.save_parts), stem)
    except (ValueError, TypeError, FileNotFoundError, MemoryError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    src, dst = volume.geometry.spacing[2 - result.slice_axis], result.geometry.spacing[2 - result.slice_axis]
    print(f"wrote {args.output}: {volume.array.shape} -> {result.volume.shape} slices along axis {result.slice_axis}, "
          f"spacing {src:g} -> {dst:g} mm, x{result.scale:g} {result.degradation}, method {result.method}, "
          f"max |A x - y| = {result.consistency_error:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
