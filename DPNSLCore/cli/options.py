"""The upsampling options every command that upsamples takes (``dpnsl upsample``, ``dpnsl batch``), in one place."""

from __future__ import annotations

import argparse
from typing import Any

from ..inference.api import METHODS, MODALITIES
from ..inference.engine import PRECISIONS
from ..inference.ensemble import ENSEMBLE_SIZES
from ..inference.request import UpsampleRequest
from ..inference.tiling import TilingOptions
from ..ops.grid import KINDS, PROFILES

OUTPUT_DTYPES = ("input", "float32", "int16", "uint16", "int32")
FORMATS = ("auto", "nifti", "nrrd", "mha", "dicom")
#: the file suffix each --format writes (auto: the output name's own)
FORMAT_SUFFIX = {"nifti": ".nii.gz", "nrrd": ".nrrd", "mha": ".mha"}


def add_upsample_options(p: argparse.ArgumentParser) -> None:
    """The options of one upsampling run (size, method, acquisition, model, device, output type and format)."""
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
                   "gain by least squares on its own in-plane axes at the output spacing, applied when it wins "
                   "there by 1 dB; A x = y holds either way)")
    p.add_argument("--no-destripe", action="store_true",
                   help="keep the network's detail as it is (default: its part that repeats with the slice period, "
                   "locally, is removed; the acquired slices are kept either way)")
    p.add_argument("--ensemble", type=int, default=1, choices=ENSEMBLE_SIZES, metavar="N",
                   help="average the network's estimate over N in-plane flips/transposes of the input (1, 2, 4 or "
                   "8; N times the network time; default 1: off; A x = y holds either way)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the arithmetic of the network's encoder: auto (default: bfloat16 on a CPU that computes it "
                   "natively, 1.3x faster, the headline PSNR within 0.001 dB; float32 elsewhere), float32 (the same "
                   "result on every machine) or bfloat16; A x = y holds either way")
    p.add_argument("--slice-axis", default="auto", choices=["auto", "0", "1", "2"],
                   help="numpy axis of the slices (0 = the file's third axis); auto = largest spacing")
    p.add_argument("--checkpoint", "--model", dest="model", default=None,
                   help="checkpoint path or shipped name (ct, mr); default: the shipped model for the modality")
    p.add_argument("--modality", choices=MODALITIES, default="auto",
                   help="ct or mr: picks the shipped model and the intensity rule; auto: the DICOM Modality, else "
                   "from the intensities (air in HU: CT)")
    p.add_argument("--allow-untrained", action="store_true", help="accept a preset name (random weights) as model")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--tile-size", type=int, default=TilingOptions.tile_size,
                   help="in-plane tile (voxels); lower it to save memory, the result does not change")
    p.add_argument("--z-window", type=int, default=TilingOptions.z_window,
                   help="observed slices per network window; lower it to save memory, the result does not change")
    p.add_argument("--output-dtype", choices=OUTPUT_DTYPES, default="input",
                   help="input: the input's integer type (rounded) or float32 for float input (default)")
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="output format: auto (from the output name: .nii.gz, .nii, .nrrd, .mha), or dicom: a derived "
                   "DICOM series in the output folder (patient and study kept from a DICOM input)")
    p.add_argument("--send", metavar="AET@HOST:PORT", help="also store the DICOM series on this PACS (C-STORE; needs "
                   "--format dicom) and report what it accepted")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="print every note of the run (they are always in the "
                   "JSON record written beside the output)")


def request_of(args: argparse.Namespace) -> UpsampleRequest:
    """The request the options describe (validated here, before any file is read)."""
    return UpsampleRequest(scale=args.scale, spacing=args.spacing, degradation=args.degradation,
                           thickness=args.thickness, profile=args.profile, thickness_mm=args.thickness_mm,
                           slice_axis="auto" if args.slice_axis == "auto" else int(args.slice_axis))


def upsample_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`DPNSLCore.upsample` from the options (all but the volume and progress)."""
    request = request_of(args)
    return {"spacing": args.spacing, "model": args.model, "method": args.method, "degradation": args.degradation,
            "thickness": args.thickness, "profile": args.profile, "thickness_mm": args.thickness_mm,
            "slice_axis": request.slice_axis, "modality": args.modality, "device": args.device,
            "tiling": TilingOptions(tile_size=args.tile_size, z_window=args.z_window),
            "output_dtype": args.output_dtype, "allow_untrained": args.allow_untrained, "adapt": args.adapt or None,
            "destripe": not args.no_destripe, "calibrate": not args.no_calibrate, "ensemble": args.ensemble,
            "precision": args.precision}
