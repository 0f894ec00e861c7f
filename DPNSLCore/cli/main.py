"""``dpnsl COMMAND [ARGS]``: one console script for every command line (also ``python -m DPNSLCore COMMAND``).

Each command is the same as its ``python -m DPNSLCore.<command>`` form; ``dpnsl COMMAND --help`` shows its options.
"""

from __future__ import annotations

import importlib
import sys

#: command -> module whose ``main(argv)`` runs it
COMMANDS = {
    "upsample": "DPNSLCore.cli.upsample",
    "batch": "DPNSLCore.cli.batch",
    "train": "DPNSLCore.training.train",
    "evaluate": "DPNSLCore.evaluation.evaluate",
    "bench": "DPNSLCore.evaluation.bench",
    "curves": "DPNSLCore.training.curves",
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its command; prints the list of commands on ``--help`` or a wrong name."""
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: dpnsl {" + ",".join(COMMANDS) + "} [ARGS]   (dpnsl COMMAND --help for its options)"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}\n{usage}", file=sys.stderr)
        return 2
    return int(importlib.import_module(COMMANDS[command]).main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
