"""``python -m DPNSLCore COMMAND [ARGS]``, the same as the ``dpnsl`` console script."""

import sys

from DPNSLCore.cli.main import main

sys.exit(main())
