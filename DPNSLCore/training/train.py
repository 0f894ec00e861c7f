"""Train a DP-NSL model on thin-slice volumes (the paper's recipe, DESIGN.md section 4).

Adam (0.9, 0.999), L1 loss between the model output and the HR window, learning rate halved every
``--lr-step`` steps (the paper: every 200 of 1000 epochs, so the default is ``--steps / 5``); one model for
several scales (one drawn per batch). Validation every ``--val-every`` steps upsamples each held-out block
whole and reports PSNR per scale for the model, linear and cubic. Outputs: see :mod:`DPNSLCore.training.state`.

Examples::

    python -m DPNSLCore.train --data ct_chest_abdomen_1mm.nii.gz ct_phantom_1mm.nii.gz --modality ct \\
        --preset lean --scales 2,3,4 --steps 20000 --out runs/ct
    python -m DPNSLCore.train --resume runs/ct --steps 40000          # continue exactly where it stopped
    torchrun --nproc_per_node=4 -m DPNSLCore.train --data ... --modality ct --device auto --amp --out runs/ct

With torchrun (WORLD_SIZE > 1) each process trains on its own GPU under DistributedDataParallel and draws its
own samples (the batch sampler is keyed by rank, so it plays the role of a DistributedSampler for this endless
random sampling); ``--batch-size`` is per process; rank 0 validates, logs and writes checkpoints.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.functional import l1_loss, mse_loss
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import __version__
from ..data.acquisition import ScaleSpec, TrainingAcquisition, parse_scales
from ..data.augment import BlurAugment
from ..data.stacks import MR_RULES, TrainingVolume, load_volumes, split_block, usable_axes
from ..data.windows import SliceWindowDataset, parse_crop
from ..inference.allocator import keep_freed_memory, reuse_freed_memory
from ..inference.request import default_profile_thickness
from ..models import PRESETS, build_model, load_checkpoint, read_checkpoint_info, save_checkpoint
from ..models.registry import resolve_device
from . import state as ts
from .losses import banding_loss, gain_loss
from .validation import Validator

#: Options a resumed run may change; every other option is taken from the run folder.
RESUMABLE = ("steps", "workers", "device", "val_every", "checkpoint_every", "log_every", "quiet", "resume")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m DPNSLCore.train", allow_abbrev=False,
                                description="Train a DP-NSL slice super-resolution model.")
    p.add_argument("--data", nargs="+", metavar="PATH", help="thin-slice training volumes (files or folders)")
    p.add_argument("--modality", choices=["ct", "mr", "auto"],
                   help="intensity normalisation (required): ct or mr for every volume, or auto for a joint model "
                   "(each volume normalised by its own rule, guessed from its intensities and listed in the run's "
                   "arguments; the model then takes its rule from the input at inference)")
    p.add_argument("--val-data", nargs="+", metavar="PATH", help="whole volumes for validation")
    p.add_argument("--val-block", type=float, help="fraction of z slices held out at the end of each training "
                   "volume (default 0.15 without --val-data, else 0)")
    p.add_argument("--val-gap", type=int, default=4, help="slices dropped between training and held-out block")
    p.add_argument("--preset", default="lean", choices=sorted(PRESETS), help="model preset (default lean)")
    p.add_argument("--loss", choices=["l1", "mse", "gain"], default="l1",
                   help="l1 (the paper), mse (learns faster when residuals are small) or gain (each sample's PSNR "
                   "change against the anchor, averaged: easy crops count as much as hard ones; training/losses.py)")
    p.add_argument("--banding-weight", type=float, default=0.0,
                   help="weight of the banding penalty (per-phase bias and texture against the truth, "
                   "training/losses.py) added to the loss; default 0: the paper's loss alone")
    p.add_argument("--blur-share", type=float, default=0.0,
                   help="share of training windows smoothed by a Gaussian before the acquisition is simulated, so "
                   "the model learns to add little to smooth scans (soft kernels; training/augment.py); default 0")
    p.add_argument("--blur-sigma", default="0.5:1.5",
                   help="Gaussian sigma of --blur-share in voxels: a value or LOW:HIGH drawn per window")
    p.add_argument("--blur-axes", default="all", help="axes --blur-share smooths: all (default) or inplane (the "
                   "slices only, not along the slice axis)")
    p.add_argument("--init", metavar="CHECKPOINT", help="start from these weights (same preset, anchor and "
                   "projection) instead of a fresh initialisation; the optimiser starts fresh")
    p.add_argument("--input-scale", type=float, default=None,
                   help="network input standardisation: (y - mean) * scale; default 1 / std of the training data")
    p.add_argument("--anchor", choices=["linear", "cubic", "none"], default=None,
                   help="range anchor B of the projection (default: the preset's, linear as in the paper)")
    p.add_argument("--scales", default="2,3,4", help="training scales: a list, one drawn per batch (default 2,3,4), "
                   "or a range LOW:HIGH drawn uniformly (integers within it for decimate batches), e.g. 1.5:7")
    p.add_argument("--val-scales", help="validation scales (default: the training scales)")
    p.add_argument("--n-lr", type=int, default=4, help="observed slices per training window (paper: 4)")
    p.add_argument("--crop", default="64:256", help="in-plane crop: a size or MIN:MAX drawn per batch")
    p.add_argument("--degradation", choices=["decimate", "sample", "profile", "mix"], default="decimate",
                   help="simulated acquisition; mix: decimate batches (--decimate-share) and slice-profile ones")
    p.add_argument("--profile", choices=["box", "gaussian"], default="box")
    p.add_argument("--thickness", default="1", help="slice thickness in LR spacings (profile, mix): a value or a "
                   "range LOW:HIGH drawn per batch, e.g. 0.75:1.5")
    p.add_argument("--decimate-share", type=float, default=0.5, help="share of decimate batches under mix")
    p.add_argument("--projection", choices=["pinv", "spline"], default=None,
                   help="null-space projection P (default: the preset's, pinv as in the paper; spline: P = the "
                   "anchor, no seam at the acquired slices)")
    p.add_argument("--axis-ratio", type=float, default=1.5, help="axes with spacing <= ratio x finest are slice axes")
    p.add_argument("--mr-intensity", choices=MR_RULES, default="protocol",
                   help="how MR volumes are scaled to [0, 1] for training and validation: protocol (min/max, the "
                        "paper's rule) or input (0.1th to 99.9th percentile, what upsample gives the network)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=20000, help="total optimisation steps")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-step", type=int, help="halve the learning rate every N steps (default steps / 5)")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, help="default: --val-every")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--out", help="run folder (default runs/<preset>-<modality>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast of the network (CUDA only)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR exactly where it stopped")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _given(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """Destinations of the options that appear on the command line."""
    return {a.dest for a in parser._actions for o in a.option_strings
            if any(t == o or t.startswith(o + "=") for t in argv)}


def _complete(args: argparse.Namespace) -> argparse.Namespace:
    """Fill derived defaults and validate values."""
    if not args.data or not args.modality:
        raise ValueError("give --data PATH... and --modality ct|mr|auto (or --resume DIR)")
    spec = ScaleSpec.parse(args.scales if isinstance(args.scales, str) else tuple(args.scales))
    args.scales = spec.to_json()
    default_val = list(spec.values) if not spec.is_range else [float(v) for v in spec.integers() if v in (2, 4)]
    args.val_scales = list(parse_scales(args.val_scales)) if args.val_scales else (default_val or [spec.low])
    args.thickness = str(args.thickness)
    TrainingAcquisition(args.degradation, spec, args.profile, TrainingAcquisition.parse_thickness(args.thickness),
                        getattr(args, "decimate_share", 0.5))
    parse_crop(args.crop)
    blur_of(args)
    if args.val_block is None:
        args.val_block = 0.0 if args.val_data else 0.15
    args.lr_step = args.lr_step or max(1, args.steps // 5)
    args.checkpoint_every = args.checkpoint_every or args.val_every
    args.out = args.out or f"runs/{args.preset}-{args.modality}"
    for name in ("steps", "batch_size", "lr_step", "val_every", "checkpoint_every", "log_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    return args


def resolve_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, merge with the saved options of ``--resume``, fill defaults and validate.

    Raises:
        ValueError: missing --data/--modality, an option that may not change on resume, or bad values.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    if not args.resume:
        return _complete(args)
    saved = ts.load_args(Path(args.resume))
    saved["thickness"] = str(saved.get("thickness", "1"))  # older runs stored a float
    given = {k: getattr(args, k) for k in _given(parser, argv)}
    merged = _complete(argparse.Namespace(**{**saved, **given, "out": args.resume, "argv": argv}))
    changed = sorted(k for k in saved if k not in (*RESUMABLE, "out") and saved[k] != getattr(merged, k, None))
    if changed:
        raise ValueError(f"--resume continues a run with its own options; these cannot change: {changed} "
                         "(start a new run with --out instead)")
    return merged


def blur_of(args: argparse.Namespace) -> BlurAugment:
    """The run's smooth-volume augmentation (off for runs saved before the option existed)."""
    return BlurAugment.parse(getattr(args, "blur_share", 0.0), getattr(args, "blur_sigma", "0.5:1.5"),
                             getattr(args, "blur_axes", "all"))


def _setup_device(args: argparse.Namespace) -> tuple[int, int, torch.device]:
    """(rank, world size, device); starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(args.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if args.amp and device.type != "cuda":
        raise ValueError(f"--amp needs a CUDA device, got {device}; drop --amp on CPU")
    return rank, world, device


def _prepare_data(args: argparse.Namespace, *, report: bool = True) -> tuple[SliceWindowDataset, list]:
    """Training dataset (held-out blocks removed) and validation volumes; ``report``: print the rules a joint
    run chose (rank 0 of a torchrun job only, so the line appears once).

    A held-out block is cut along z only from volumes whose z is a high-resolution axis; thick volumes (their
    in-plane axes are the training stacks) are used whole, since a block of thick slices cannot be scored.
    """
    rule = getattr(args, "mr_intensity", "protocol")  # runs saved before the option: the protocol's rule
    volumes = load_volumes(args.data, args.modality, rule)
    args.volume_modalities = {v.name: v.normalizer.kind for v in volumes}  # saved with the run's arguments
    if args.modality == "auto" and report:
        print("modalities: " + ", ".join(f"{Path(n).name} {k.upper()}" for n, k in args.volume_modalities.items()))
    val = []
    if args.val_block > 0:
        pairs = [split_block(v, args.val_block, args.val_gap) if 0 in usable_axes(v.spacing, args.axis_ratio)
                 else (v, None) for v in volumes]
        volumes, val = [p[0] for p in pairs], [p[1] for p in pairs if p[1] is not None]
    if args.val_data:
        val += load_volumes(args.val_data, args.modality, rule)
        args.volume_modalities.update({v.name: v.normalizer.kind for v in val})
    val = _with_signal(val, report=report)
    scales = args.scales if isinstance(args.scales, str) else tuple(args.scales)
    dataset = SliceWindowDataset(volumes, scales, n_lr=args.n_lr, crop=args.crop, degradation=args.degradation,
                                 profile=args.profile, thickness=TrainingAcquisition.parse_thickness(args.thickness),
                                 decimate_share=getattr(args, "decimate_share", 0.5), axis_ratio=args.axis_ratio,
                                 blur=blur_of(args), seed=args.seed)
    return dataset, val


def _with_signal(val: list[TrainingVolume], *, report: bool) -> list[TrainingVolume]:
    """The validation volumes that hold any signal. A blank one (one value everywhere, e.g. the background slices
    that end a skull-stripped MR in atlas space) is reconstructed exactly by every method and scores nothing, so
    it is left out and named; if every one is blank, the run would never validate, never write
    ``best.safetensors`` and report a gain of -inf: that is refused before training, with the fix."""
    has_signal = [bool(np.ptp(v.array)) for v in val]
    signal = [v for v, keep in zip(val, has_signal, strict=True) if keep]
    blank = [v.name for v, keep in zip(val, has_signal, strict=True) if not keep]
    if blank and not signal:
        raise ValueError(f"no validation volume holds any signal: {', '.join(blank)} are background only (one value "
                         "everywhere); pass --val-data with a volume that has signal, a larger --val-block, or "
                         "--val-block 0 to train without validation (then last.safetensors is the model)")
    if blank and report:
        print(f"validation: {', '.join(blank)} left out (background only: every method reconstructs it exactly)")
    return signal


def _set_input_standardisation(args: argparse.Namespace, dataset: SliceWindowDataset) -> None:
    """Mean and 1/std of the training voxels (stored in the model config), unless given or resumed."""
    if getattr(args, "input_shift", None) is not None and getattr(args, "input_scale", None) is not None:
        return
    if getattr(args, "init", None):  # fine-tuning keeps the standardisation the weights were trained with
        config = read_checkpoint_info(args.init)["config"]
        args.input_shift, args.input_scale = config.input_shift, config.input_scale
        return
    values = np.concatenate([v.array[::4, ::4, ::4].ravel() for v in dataset.volumes])
    args.input_shift = float(values.mean())
    args.input_scale = getattr(args, "input_scale", None) or float(1.0 / max(values.std(), 1e-6))


def _init_weights(path: str, model: torch.nn.Module) -> dict:
    """The weights of checkpoint ``path`` for ``model``, read safely; its architecture must match."""
    initial = load_checkpoint(path)
    not_architecture = ("input_shift", "input_scale", "acquisition", "modality")  # a run may change what it is for
    mine = {k: v for k, v in model.config.to_dict().items() if k not in not_architecture}
    theirs = {k: v for k, v in initial.config.to_dict().items() if k not in not_architecture}
    if mine != theirs:
        changed = sorted(k for k in mine if mine[k] != theirs.get(k))
        raise ValueError(f"--init {path}: its model differs from this run's in {changed}; use the same --preset, "
                         "--anchor and --projection")
    if (initial.config.input_shift, initial.config.input_scale) != (model.config.input_shift, model.config.input_scale):
        raise ValueError(f"--init {path}: its input standardisation differs; pass --input-scale "
                         f"{initial.config.input_scale} and train on the same data")
    return initial.state_dict()


@dataclass
class TrainResult:
    """Where the run is and how it ended."""

    out: Path
    step: int
    best_gain: float
    last_val: dict[str, float]
    loss: float


def model_modality(modality: str) -> str | None:
    """The modality a run's model is for (``ModelConfig.modality``): None for a joint model (``--modality auto``)."""
    return None if modality == "auto" else modality


def acquisition_of(args: argparse.Namespace) -> dict:
    """The acquisition a run trains for, as stored in the model config (``ModelConfig.acquisition``)."""
    scales = args.scales if isinstance(args.scales, str) else tuple(args.scales)
    return TrainingAcquisition(args.degradation, ScaleSpec.parse(scales), args.profile,
                               TrainingAcquisition.parse_thickness(str(args.thickness)),
                               getattr(args, "decimate_share", 0.5)).record()


class _Run:
    """Model, optimiser, scheduler and bookkeeping of one run (fresh or resumed)."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        self.args, self.out = args, Path(args.out)
        torch.manual_seed(args.seed)
        self.state = ts.load_state(self.out) if args.resume else None
        config = PRESETS[args.preset].replace(input_shift=args.input_shift, input_scale=args.input_scale,
                                              modality=model_modality(args.modality),
                                              acquisition=acquisition_of(args))
        if args.anchor:
            config = config.replace(anchor=args.anchor)
        if getattr(args, "projection", None):
            config = config.replace(projection=args.projection)
        self.model = build_model(config)
        if self.state is not None:  # the state file holds the weights too, so a resume never mixes two steps
            self.model.load_state_dict(self.state["model"])
        elif getattr(args, "init", None):
            self.model.load_state_dict(_init_weights(args.init, self.model))
        self.model = self.model.to(device)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr, betas=(0.9, 0.999))
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=args.lr_step, gamma=0.5)
        self.step, self.best, self.wall = 0, float("-inf"), 0.0
        if self.state is not None:
            self.optimizer.load_state_dict(self.state["optimizer"])
            self.scheduler.load_state_dict(self.state["scheduler"])
            ts.set_rng_state(self.state["rng"])
            self.step, self.best, self.wall = self.state["step"], self.state["best"], self.state["wall_time"]

    def extra(self, val: dict[str, float]) -> dict:
        a = self.args
        command = " ".join(getattr(a, "argv", sys.argv[1:]))
        return {"command": f"python -m DPNSLCore.train {command}", "data": list(a.data),
                "val_data": list(a.val_data or []), "val_block": a.val_block, "steps": self.step,
                "wall_time_s": round(self.wall, 1), "modality": a.modality,
                "volume_modalities": getattr(a, "volume_modalities", {}), "scales": a.scales, "n_lr": a.n_lr,
                "degradation": a.degradation, "acquisition": acquisition_of(a), "preset": a.preset,
                "batch_size": a.batch_size, "val": val,
                "dpnsl_version": __version__, "torch_version": torch.__version__}

    def save(self, val: dict[str, float], best: bool) -> None:
        save_checkpoint(self.model, self.out / ts.MODEL_FILE, extra=self.extra(val))
        ts.save_state(self.out, step=self.step, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                      best=self.best, wall_time=self.wall)
        if best:
            save_checkpoint(self.model, self.out / ts.BEST_FILE, extra=self.extra(val))


def _optimise(run: _Run, net: torch.nn.Module, batch: dict, dataset: SliceWindowDataset, device: torch.device,
              amp: bool) -> float:
    """One Adam step on the loss (L1 as in the paper, MSE or the gain over the anchor) of a batch; returns it."""
    y, hr = batch["lr"].to(device, non_blocking=True), batch["hr"].to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        parts = net(y, dataset.degradation(float(batch["scale"][0]), float(batch["thickness"][0])))
    output = parts["output"]
    if run.args.loss == "gain":
        loss = gain_loss(output.float(), parts["anchor"].float(), hr)
    else:
        loss = (mse_loss if run.args.loss == "mse" else l1_loss)(output.float(), hr)
    weight = getattr(run.args, "banding_weight", 0.0)
    if weight:
        loss = loss + weight * banding_loss(output.float(), hr, float(batch["scale"][0]))
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.scheduler.step()
    run.step += 1
    return loss.item()


def train(args: argparse.Namespace) -> TrainResult:
    """Run (or resume) training as configured by :func:`resolve_args`; returns where it ended."""
    rank, world, device = _setup_device(args)
    out = Path(args.out)
    dataset, val_volumes = _prepare_data(args)
    _set_input_standardisation(args, dataset)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        ts.save_args(out, {k: v for k, v in vars(args).items() if k not in ("resume", "argv")})
    run = _Run(args, device)
    ids = [device.index] if device.type == "cuda" else None
    net = torch.nn.parallel.DistributedDataParallel(run.model, device_ids=ids) if world > 1 else run.model
    validator = Validator(val_volumes, args.val_scales, degradation=args.degradation, device=device,
                          profile=args.profile, thickness=default_profile_thickness(acquisition_of(args)))
    columns = ["step", "time_s", "loss", "lr", "samples_per_s"] + (validator.columns if val_volumes else [])
    log = ts.MetricLog(out / ts.LOG_FILE, columns, run.step if args.resume else None) if rank == 0 else None
    plan = dataset.batches(args.batch_size, start_step=run.step, steps=args.steps, rank=rank)
    loader = DataLoader(dataset, batch_sampler=plan, num_workers=args.workers, pin_memory=device.type == "cuda")
    bar = tqdm(total=args.steps, initial=run.step, disable=args.quiet or rank != 0, desc="train", unit="step")
    losses, val, base_wall, start = [], {}, run.wall, time.perf_counter()
    tick = start
    for batch in loader:
        losses.append(_optimise(run, net, batch, dataset, device, args.amp))
        now = time.perf_counter()
        speed, run.wall = args.batch_size * world / max(now - tick, 1e-9), base_wall + (now - start)
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", samples_s=f"{speed:.1f}", refresh=False)
        is_val = bool(val_volumes) and (run.step % args.val_every == 0 or run.step == args.steps)
        is_ckpt = run.step % args.checkpoint_every == 0 or run.step == args.steps
        if rank == 0 and (run.step % args.log_every == 0 or is_val or is_ckpt):
            val = validator(run.model) if is_val else {}
            loss = float(np.mean(losses[-args.log_every :]))  # mean over the last log_every steps
            log.append({"step": run.step, "time_s": round(run.wall, 3), "loss": loss,
                        "lr": run.scheduler.get_last_lr()[0], "samples_per_s": speed, **val})
            better = math.isfinite(val.get("val_mean_gain", math.nan)) and val["val_mean_gain"] > run.best
            run.best = val["val_mean_gain"] if better else run.best
            if is_ckpt or better:
                run.save(val, better)
        if world > 1 and (is_val or is_ckpt):
            dist.barrier()
        del losses[: -args.log_every]
        tick = time.perf_counter()
    bar.close()
    return TrainResult(out, run.step, run.best, val, losses[-1] if losses else math.nan)


def main(argv: list[str] | None = None) -> int:
    args = None
    keep_freed_memory()  # the same buffers every step: reused instead of mapped and unmapped (same maths)
    try:
        args = resolve_args(argv)
        with reuse_freed_memory():
            result = train(args)
        if not dist.is_initialized() or dist.get_rank() == 0:
            best = (f"best mean validation gain over linear {result.best_gain:+.2f} dB"
                    if math.isfinite(result.best_gain) else "no validation: last.safetensors is the model")
            print(f"done: {result.step} steps in {result.out}, {best}")
    except (ValueError, TypeError, FileNotFoundError, MemoryError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # checkpoints are written atomically: the last one is whole and resumes exactly
        where = "" if args is None else (f": the checkpoints written so far in {args.out} are kept; continue "
                                         f"exactly where the last one stopped with --resume {args.out}")
        print(f"interrupted{where}", file=sys.stderr)
        return 130
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
