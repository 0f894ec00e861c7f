"""Command line of ``dpnsl upsample`` / ``python -m DPNSLCore.upsample INPUT -o OUTPUT --scale S | --spacing MM``.

By default it prints four lines (what was read and the resolved grid, the model, ``max |A x - y|``, what was
written) and the warnings that need action; ``--verbose`` prints every note. Every note, the resolved plan, the
model file and its SHA-256 and the timings are also written beside the output as ``<output>.json``. The safety
rules (targets checked before any compute, atomic writes, all outputs or none) are :mod:`.run`'s.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tqdm import tqdm

from ..inference.allocator import keep_freed_memory
from ..inference.tiling import Cancelled
from ..io.volumes import WRITE_SUFFIXES
from .options import add_upsample_options, request_of
from .run import Case, check_case, remove_outputs, run_case

__all__ = ["ALWAYS_SHOWN", "build_parser", "main"]

#: notes printed even without --verbose: warnings, and what the reader chose or filled in the input
ALWAYS_SHOWN = ("warning", "DICOM:", "bounds: off")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dpnsl upsample",
        description="Upsample a thick-slice CT/MR volume along its slice axis; acquired slices are kept exactly.",
    )
    p.add_argument("input", help="NIfTI/NRRD/MHA file or DICOM series folder")
    p.add_argument("--series", metavar="UID", default=None,
                   help="SeriesInstanceUID of the series to read from a DICOM folder that holds several (default: "
                   "the one with the most files, named in the output)")
    p.add_argument("-o", "--output", required=True,
                   help=f"output file ({', '.join(WRITE_SUFFIXES)}), or a folder with --format dicom")
    add_upsample_options(p)
    p.add_argument("--save-parts", metavar="DIR", help="also write anchor, detail and routing maps (dpnsl) here")
    return p


class _ProgressBar:
    """A tqdm bar created on the first progress report (so errors found before compute print cleanly)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.bar = args, None

    def __call__(self, fraction: float, message: str) -> None:
        if self.bar is None:
            self.bar = tqdm(total=100, unit="%", disable=self.args.quiet, leave=False,
                            desc=f"{self.args.method} x{self.args.scale or self.args.spacing}")
        self.bar.update(round(100 * fraction) - self.bar.n)
        self.bar.set_postfix_str(message, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    case = Case(Path(args.input), Path(args.output), args.series)
    parts_dir = Path(args.save_parts) if args.save_parts else None
    progress = _ProgressBar(args)
    done = None
    try:
        request_of(args)  # bad sizes or profiles are refused before the files are looked at
        check_case(case, args, parts_dir)
        done = run_case(case, args, parts_dir=parts_dir, progress=progress,
                        command="dpnsl upsample " + shlex.join(argv))
    except (Cancelled, KeyboardInterrupt) as why:  # the Python API's cancel, or Ctrl-C: no output is left behind
        progress.close()
        print(f"{'cancelled' if isinstance(why, Cancelled) else 'interrupted'}: nothing written", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, MemoryError, OSError) as err:
        progress.close()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BaseException:
        if done is not None:
            remove_outputs(done.written)
        raise
    progress.close()
    notes = done.result.notes
    shown = notes if args.verbose else [n for n in notes if n.startswith(ALWAYS_SHOWN)]
    for note in [*shown, *done.record.get("writer_notes", [])]:
        print(f"  {note}", file=sys.stderr)
    print("\n".join(done.lines))
    send = done.record.get("send")
    if send is not None:
        print(send.get("text") or f"error: {send['error']}", file=sys.stdout if done.send_ok else sys.stderr)
        if not done.send_ok:
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
