"""``python -m DPNSLCore.evaluate``: runs :func:`DPNSLCore.evaluation.evaluate.main` (also ``dpnsl evaluate``)."""

import sys

from DPNSLCore.evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
