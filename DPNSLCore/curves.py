"""``python -m DPNSLCore.curves``: runs :func:`DPNSLCore.training.curves.main` (also ``dpnsl curves``)."""

import sys

from DPNSLCore.training.curves import main

if __name__ == "__main__":
    sys.exit(main())
