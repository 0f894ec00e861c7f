"""``python -m DPNSLCore.train``: runs :func:`DPNSLCore.training.train.main` (also ``dpnsl train``)."""

import sys

from DPNSLCore.training.train import main

if __name__ == "__main__":
    sys.exit(main())
