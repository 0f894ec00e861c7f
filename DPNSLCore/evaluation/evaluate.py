"""Evaluation with the paper's protocol (DESIGN.md section 5), every method in one run on the same volumes.

Protocol per volume and scale s: normalise (CT window or MR range) -> optional z block -> centre crop 256 x 256
in-plane -> trim the HR stack so (n - 1) % s == 0 -> y = every s-th slice -> upsample y with each method
(``DPNSLCore.upsample``) -> clip to [0, 1], drop the first and last s slices -> PSNR (peak 1) and 3-plane SSIM.
Also measured: max |A x - y| of each method (0 = exactly consistent) and the per-slice MAE along z.

Command lines::

    python -m DPNSLCore.evaluate --data VOL... --scales 2,3,4,5,6,7 --methods linear,cubic,dpnsl \\
        --checkpoint runs/ct/best.safetensors --modality ct --held-out 0.15 --out results/ct
    python -m DPNSLCore.evaluate --paired ct_phantom_5mm.nii.gz ct_phantom_1mm.nii.gz --checkpoint ... --out DIR

Every method sees the same normalised LR stack (the volume normalised once, as the paper does); the learned model
gets it through ``upsample(..., intensity=identity)``, so nothing is renormalised on the way.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.acquisition import parse_scales
from ..data.stacks import TrainingVolume, load_volumes, split_block, usable_axes
from ..inference.allocator import keep_freed_memory
from ..inference.api import METHODS, UpsampleResult, upsample
from ..inference.engine import PRECISIONS
from ..inference.ensemble import ENSEMBLE_SIZES
from ..io.intensity import IntensityNormalizer
from ..io.volumes import Geometry, Volume
from ..models.network import DPNSL
from ..models.registry import LoadedModel
from ..ops.operators import make_degradation, simulate_acquisition
from .banding import banding_or_none
from .loading import load_dpnsl
from .metrics import center_crop, evaluate_protocol, per_slice_mae, psnr
from .report import MethodScore, SummaryRow, summarise, write_report


def parse_methods(text: str | Sequence[str]) -> tuple[str, ...]:
    """"linear,cubic,dpnsl" -> tuple. Raises ValueError on an unknown or missing method."""
    methods = tuple(m.strip() for m in text.split(",") if m.strip()) if isinstance(text, str) else tuple(text)
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise ValueError(f"`methods` must be a comma-separated subset of {', '.join(METHODS)}, got {text!r}")
    return methods


def parse_block(text: str | None) -> slice | None:
    """"START:STOP" (either may be empty) -> slice of z slices; None -> None."""
    if text is None:
        return None
    try:
        start, stop = (int(p) if p.strip() else None for p in text.split(":"))
    except ValueError as err:
        raise ValueError(f"`block` must be START:STOP slice indices along z such as 234:275, got {text!r}") from err
    return slice(start, stop)


def upsample_normalised(lr: np.ndarray, scale: float, method: str, *, model: LoadedModel | DPNSL | None = None,
                        normalizer: IntensityNormalizer | None = None, degradation: str = "decimate",
                        device: str | torch.device = "auto", profile: str = "box",
                        thickness: float = 1.0, adapt: float = 0.0, destripe: bool = True, calibrate: bool = True,
                        spacing_zyx: tuple[float, float, float] | None = None, ensemble: int = 1,
                        bounds: bool = True, precision: str = "float32") -> UpsampleResult:
    """Upsample a normalised LR stack (slice axis 0) with ``method``; the result's ``volume`` is the normalised HR
    prediction (``detail_gain``: the gain calibration fitted, 1 for the baselines).

    Baselines run on the normalised values directly; ``dpnsl`` runs the product path (module docstring).
    ``spacing_zyx`` (mm, of ``lr``) gives the stack its geometry, which adaptation and calibration read.

    Raises:
        ValueError: ``dpnsl`` without a model/normaliser, or a model trained for another modality.
    """
    acquisition = {"degradation": degradation, "profile": profile, "thickness": thickness, "slice_axis": 0}
    if method != "dpnsl":
        return upsample(lr, scale, method=method, **acquisition)
    if model is None or normalizer is None:
        raise ValueError("method 'dpnsl' needs a model and the volume's normalizer")
    # the stack is already normalised: CT as the network expects it, MR by the protocol's min/max, which the
    # network's input rule (the product's, upsample's default) then rescales from this stack (not a constant one,
    # e.g. a validation block of background: no rule rescales that)
    constant = float(lr.max()) <= float(lr.min())
    rule = IntensityNormalizer(normalizer.kind, 1.0, 0.0) if normalizer.kind == "ct" or constant else None
    stack = lr if spacing_zyx is None else Volume(lr, Geometry.from_spacing_zyx(spacing_zyx))
    return upsample(stack, scale, model=model, method="dpnsl", device=device, modality=normalizer.kind,
                    intensity=rule, adapt=adapt or None, destripe=destripe, calibrate=calibrate,
                    ensemble=ensemble, bounds="auto" if bounds else None, precision=precision, **acquisition)


@dataclass
class ProtocolOptions:
    """Choices of the protocol: in-plane crop (voxels), the simulated acquisition, SSIM on/off, device.

    ``degradation="decimate"`` is the paper's protocol; ``"profile"`` with ``thickness=1`` is the thick-slice
    protocol: each acquired slice is the box average of s thin slices centred on every s-th slice.
    """

    crop: int = 256
    degradation: str = "decimate"
    ssim: bool = True
    device: str | torch.device = "auto"
    profile: str = "box"
    thickness: float = 1.0  # in acquired slice spacings (profile only)
    adapt: float = 0.0  # seconds of adaptation of the model to each simulated input (dpnsl only; 0: off)
    destripe: bool = True  # remove the phase-locked part of DP-NSL's detail (upsample's default)
    calibrate: bool = True  # fit DP-NSL's detail gain to each simulated input (its in-plane axes; upsample's default)
    ensemble: int = 1  # DP-NSL's in-plane self-ensemble size (1, 2, 4 or 8; upsample's default 1: off)
    bounds: bool = True  # keep DP-NSL's output in the physical range (upsample's default)
    precision: str = "float32"  # DP-NSL's encoder arithmetic (upsample's default float32)

    def acquisition_text(self) -> str:
        text = f"{self.profile} profile (thickness {self.thickness:g} spacings)" if self.degradation == "profile" \
            else self.degradation
        text += f", DP-NSL adapted {self.adapt:g} s to each input" if self.adapt else ""
        text += "" if self.calibrate else ", DP-NSL without calibration"
        text += f", DP-NSL self-ensemble of {self.ensemble}" if self.ensemble > 1 else ""
        text += "" if self.bounds else ", DP-NSL without the physical range"
        text += "" if self.precision == "float32" else f", DP-NSL's encoder in {self.precision}"
        return text + ("" if self.destripe else ", DP-NSL without destripe")


class TooFewSlicesError(ValueError):
    """A volume (or block) is too short for the protocol at some scale."""


def _check_scored(volume: TrainingVolume, n_hr: int, scale: float, ssim: bool) -> None:
    """Enough slices must remain once the first and last ceil(s) are excluded: 2 (so that at least one was not
    acquired), 11 for the SSIM window."""
    border = int(np.ceil(scale - 1e-9))
    need = 11 if ssim else 2
    if n_hr - 2 * border < need:
        fix = "; or pass --no-ssim (PSNR only)" if ssim else ""
        raise TooFewSlicesError(
            f"{volume.name}: {volume.array.shape[0]} slices leave {n_hr - 2 * border} scored slices at scale "
            f"{scale:g} (the first and last {border} are excluded), {need} needed: use a longer volume or block, or "
            f"smaller scales{fix}")


def score_volume(volume: TrainingVolume, scales: Sequence[float], methods: Sequence[str], *,
                 model: LoadedModel | DPNSL | None = None,
                 options: ProtocolOptions | None = None) -> list[MethodScore]:
    """Run the protocol on one normalised volume (slice axis 0) for every scale and method."""
    options = options or ProtocolOptions()
    cropped = np.ascontiguousarray(center_crop(volume.array, options.crop))
    scores = []
    for scale in scales:
        acquisition = {"profile": options.profile, "thickness": options.thickness}
        lr, hr = simulate_acquisition(cropped, scale, degradation=options.degradation, **acquisition)
        _check_scored(volume, hr.shape[0], scale, options.ssim)
        deg = make_degradation(options.degradation, scale, lr.shape[0], **acquisition)
        border = int(np.ceil(scale - 1e-9))
        for method in methods:
            start = time.perf_counter()
            result = upsample_normalised(lr, scale, method, model=model, normalizer=volume.normalizer,
                                         degradation=options.degradation, device=options.device, adapt=options.adapt,
                                         destripe=options.destripe, calibrate=options.calibrate,
                                         ensemble=options.ensemble, bounds=options.bounds,
                                         precision=options.precision,
                                         spacing_zyx=(volume.spacing[0] * scale, *volume.spacing[1:]), **acquisition)
            pred = result.volume
            seconds = time.perf_counter() - start
            consistency = float((deg.forward(torch.from_numpy(pred)) - torch.from_numpy(lr)).abs().max())
            if options.ssim:
                metrics = evaluate_protocol(pred, hr, scale)
            else:
                metrics = {"psnr": psnr(np.clip(pred, 0, 1)[border:-border], hr[border:-border]), "ssim": None}
            periodicity, texture = banding_or_none(np.clip(pred, 0, 1), scale)
            scores.append(MethodScore(volume.name, float(scale), method, metrics["psnr"], metrics["ssim"],
                                      consistency, seconds, per_slice_mae(np.clip(pred, 0, 1), hr), periodicity,
                                      texture, result.detail_gain,
                                      None if result.calibration is None else result.calibration.psnr_gain_db))
    return scores


def referencebanding_or_none(volumes: Sequence[TrainingVolume], scales: Sequence[float], crop: int) -> str:
    """One line per scale with the banding measures of the thin reference volumes themselves (the target, ~1)."""
    lines = []
    for scale in scales:
        values = [banding_or_none(np.ascontiguousarray(center_crop(v.array, crop)), scale) for v in volumes]
        known = [v for v in values if v[0] is not None]
        if known:
            p, t = np.mean([k[0] for k in known]), np.mean([k[1] for k in known])
            lines.append(f"- thin reference at ×{scale:g}: periodicity {p:.2f}, texture acquired/synthesised {t:.2f}")
    return "\n".join(lines)


@dataclass
class EvaluationResult:
    """Per-volume scores, the mean ± std summary, the Markdown table and the files written."""

    scores: list[MethodScore]
    summary: list[SummaryRow]
    markdown: str
    files: list[Path]


def _select(volume: TrainingVolume, block: slice | None, held_out: float | None) -> TrainingVolume:
    """The z block ``block``, or the last ``held_out`` fraction of slices (the block training held out)."""
    if held_out is not None:
        return split_block(volume, held_out, gap=0)[1]
    if block is None:
        return volume
    start, stop, _ = block.indices(volume.array.shape[0])
    return TrainingVolume(volume.array[block], volume.spacing, f"{volume.name}[{start}:{stop}]", volume.normalizer)


AXIS_NAMES = ("z", "y", "x")
EVAL_AXIS_RATIO = 2.5  # with axes="hr": axes whose spacing is within 2.5x the finest (not the thick slice axes)


def volume_views(volume: TrainingVolume, axes: str = "z", axis_ratio: float = EVAL_AXIS_RATIO) -> list[TrainingVolume]:
    """The stacks a volume is scored along: itself (``axes="z"``), one view per high-resolution axis (``axes="hr"``:
    every axis within ``axis_ratio`` of the finest spacing, moved to axis 0 and named ``name [along y]``, so a thick
    scan contributes its in-plane axes and a thin one all three), or ``axes="auto"``: z when z is such an axis (a
    thin volume), else the high-resolution axes (a thick scan's in-plane axes)."""
    if axes not in ("z", "hr", "auto"):
        raise ValueError(f"`axes` must be 'z', 'hr' or 'auto', got {axes!r}")
    fine = usable_axes(volume.spacing, axis_ratio)
    if axes == "z" or (axes == "auto" and 0 in fine):
        return [volume]
    views = []
    for axis in fine:
        order = [axis, *(a for a in range(3) if a != axis)]
        views.append(TrainingVolume(np.moveaxis(volume.array, axis, 0), tuple(volume.spacing[a] for a in order),
                                    f"{volume.name} [along {AXIS_NAMES[axis]}]", volume.normalizer))
    return views


def evaluate(paths: Sequence[str | Path], scales: str | Sequence[float], methods: str | Sequence[str], *,
             checkpoint: str | None = None, modality: str = "auto", block: str | None = None,
             held_out: float | None = None, out: str | Path | None = None, options: ProtocolOptions | None = None,
             model: LoadedModel | DPNSL | None = None, axes: str = "z") -> EvaluationResult:
    """Evaluate ``methods`` on every volume of ``paths`` at every scale; write a report to ``out`` when given.

    A (volume, scale) pair with too few slices for the protocol is skipped and listed under the title; the
    ``n`` column of the table counts the volumes behind each row.

    Args:
        block: "START:STOP" z slices of every volume; or ``held_out``: the last fraction of each volume's
            slices, the block ``python -m DPNSLCore.train --val-block F`` held out.
        axes: "z" (the file's slice axis) or "hr" (every high-resolution axis, :func:`volume_views`; the block
            options then do not apply).

    Raises:
        FileNotFoundError: a data path or the checkpoint is missing. ValueError: bad scales, methods or block.
        TooFewSlicesError: no volume fits any scale.
    """
    scales, methods, z_block = parse_scales(scales), parse_methods(methods), parse_block(block)
    if z_block is not None and held_out is not None:
        raise ValueError("give either `block` (START:STOP) or `held_out` (a fraction), not both")
    options = options or ProtocolOptions()
    if axes != "z" and (z_block is not None or held_out is not None):
        raise ValueError("`block`/`held_out` select z slices: use them with axes='z' only")
    volumes = [view for v in load_volumes(paths, modality) for view in volume_views(v, axes)]
    if "dpnsl" in methods and model is None:
        model = load_dpnsl(checkpoint, modality if modality != "auto" else volumes[0].normalizer.kind,
                           options.device)
    scores: list[MethodScore] = []
    skipped: list[str] = []
    for vol in volumes:
        for scale in scales:  # a short block may fit the small scales only: skip the rest, and say so
            try:
                scores.extend(score_volume(_select(vol, z_block, held_out), [scale], methods, model=model,
                                           options=options))
            except TooFewSlicesError as err:
                skipped.append(str(err).split(": use")[0])
    if not scores:
        raise TooFewSlicesError("no volume is long enough for any scale: " + "; ".join(skipped))
    rows = summarise(scores)
    title = (f"Paper protocol: normalised ({', '.join(sorted({v.normalizer.kind for v in volumes}))}), centre crop "
             f"{options.crop}, {options.acquisition_text()}, borders of s slices excluded; {len(volumes)} volume(s)")
    title += "".join(f"\n- skipped {note}" for note in skipped)
    title += ("\n- banding: periodicity = power at 1/s over its neighbours, texture = in-plane |Laplacian| of "
              "acquired over synthesised slices; both ~1 on a real thin volume")
    reference = referencebanding_or_none([_select(v, z_block, held_out) for v in volumes], scales, options.crop)
    title += f"\n{reference}" if reference else ""
    if out is None:
        from .report import markdown_table

        return EvaluationResult(scores, rows, f"{title}\n\n{markdown_table(rows)}", [])
    written = write_report(scores, out, title=title)
    return EvaluationResult(scores, rows, written["markdown"], written["files"])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m DPNSLCore.evaluate", allow_abbrev=False,
                                description="Compare slice upsampling methods with the paper's protocol.")
    p.add_argument("--data", nargs="+", metavar="PATH", help="thin-slice volumes (files or folders)")
    p.add_argument("--paired", nargs=2, metavar=("THICK", "THIN"), help="real thick/thin pair of one session")
    p.add_argument("--scales", default="2,3,4,5,6,7", help="comma-separated factors (default: 2,3,4,5,6,7)")
    p.add_argument("--methods", default="linear,cubic,dpnsl", help="subset of linear,cubic,dpnsl")
    p.add_argument("--checkpoint", help="model checkpoint (.safetensors); default: the shipped model")
    p.add_argument("--modality", choices=["auto", "ct", "mr"], default="auto", help="intensity normalisation")
    p.add_argument("--block", metavar="START:STOP", help="evaluate only these z slices of every volume")
    p.add_argument("--held-out", type=float, metavar="F", help="evaluate only the last fraction F of each volume's "
                   "z slices: the block `train --val-block F` held out")
    p.add_argument("--crop", type=int, default=256, help="centre crop in-plane (voxels, default 256)")
    p.add_argument("--axes", choices=["z", "hr", "auto"], default="z", help="score along z (default), along every "
                   "high-resolution axis (spacing within 2.5x the finest: a thick scan's in-plane axes), or auto: z "
                   "for thin volumes, the in-plane axes for thick ones")
    p.add_argument("--degradation", choices=["decimate", "sample", "profile"],
                   help="simulated acquisition (default decimate, the paper's protocol; profile with --thickness 1 is "
                   "the thick-slice protocol); for --paired the acquisition assumed of the real thick series, "
                   "default auto (upsample's: the model's training acquisition; profile when --profile or "
                   "--thickness is given)")
    p.add_argument("--profile", choices=["box", "gaussian"], help="slice profile for profile (default box)")
    p.add_argument("--thickness", type=float, help="slice thickness in acquired spacings (profile; default 1, for "
                   "--paired the thick series' header)")
    p.add_argument("--fit-profile", action="store_true", help="with --paired: measure the thick series' slice "
                   "profile instead (the box or Gaussian, 0.5-1.5 spacings, that best predicts it from the thin "
                   "series) and print the --profile/--thickness to upsample that scanner's thick series with")
    p.add_argument("--no-ssim", action="store_true", help="PSNR only (faster)")
    p.add_argument("--adapt", type=float, default=0.0, metavar="SECONDS",
                   help="adapt the model to each simulated input for SECONDS first (dpnsl; default 0: off)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="add DP-NSL's detail as the network made it (default: its gain is fitted to each input on its "
                   "own in-plane axes, as upsample does)")
    p.add_argument("--no-destripe", action="store_true",
                   help="keep DP-NSL's detail as the network made it (default: its phase-locked part is removed)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="DP-NSL's encoder arithmetic: float32 (default: the reference, the same on every machine, "
                   "so the tables are), bfloat16, or auto as `dpnsl upsample` (bfloat16 on a CPU that computes it "
                   "natively: the headline within 0.001 dB)")
    p.add_argument("--no-bounds", action="store_true",
                   help="leave DP-NSL's output where the network put it (default: kept in the physical range)")
    p.add_argument("--ensemble", type=int, default=1, choices=ENSEMBLE_SIZES, metavar="N",
                   help="DP-NSL's in-plane self-ensemble: its estimate averaged over N flips/transposes (1, 2, 4, 8; "
                   "default 1: off)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", metavar="DIR", help="write results.md, summary.csv, scores.csv and MAE plots here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    if not args.data and not args.paired:
        print("error: give --data PATH... and/or --paired THICK THIN", file=sys.stderr)
        return 2
    if args.fit_profile and not args.paired:
        print("error: --fit-profile measures the profile of a real pair: give --paired THICK THIN", file=sys.stderr)
        return 2
    options = ProtocolOptions(args.crop, args.degradation or "decimate", not args.no_ssim, args.device,
                              args.profile or "box", 1.0 if args.thickness is None else args.thickness, args.adapt,
                              not args.no_destripe, not args.no_calibrate, args.ensemble, not args.no_bounds,
                              args.precision)
    try:
        if args.data:
            result = evaluate(args.data, args.scales, args.methods, checkpoint=args.checkpoint,
                              modality=args.modality, block=args.block, held_out=args.held_out, out=args.out,
                              options=options, axes=args.axes)
            print(result.markdown)
        if args.paired and args.fit_profile:
            from .profile_fit import fit_slice_profile, write_profile_fit

            fits = fit_slice_profile(*args.paired)
            print(write_profile_fit(fits, args.out, f"slice profile of {args.paired[0]} from {args.paired[1]}"))
        elif args.paired:
            from .paired import paired_check, paired_markdown

            rows = paired_check(*args.paired, parse_methods(args.methods), checkpoint=args.checkpoint,
                                modality=args.modality, degradation=args.degradation, profile=args.profile,
                                thickness=args.thickness, device=args.device, out=args.out,
                                destripe=not args.no_destripe, calibrate=not args.no_calibrate,
                                ensemble=args.ensemble)
            print(paired_markdown(rows))
    except (ValueError, TypeError, FileNotFoundError, MemoryError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
