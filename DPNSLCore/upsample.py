"""Entry point of ``python -m DPNSLCore.upsample``; the code is in :mod:`DPNSLCore.cli_upsample`.

Import the function as ``DPNSLCore.upsample`` (never ``import DPNSLCore.upsample``, which names this file).
"""

import sys

from DPNSLCore.cli_upsample import main

if __name__ == "__main__":
    sys.exit(main())
