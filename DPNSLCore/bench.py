"""``python -m DPNSLCore.bench``: runs :func:`DPNSLCore.evaluation.bench.main` (also ``dpnsl bench``)."""

import sys

from DPNSLCore.evaluation.bench import main

if __name__ == "__main__":
    sys.exit(main())
