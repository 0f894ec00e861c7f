"""``python -m DPNSLCore.batch``: runs :func:`DPNSLCore.cli.batch.main` (also ``dpnsl batch``; under torchrun:
``torchrun --nproc_per_node=N -m DPNSLCore.batch IN_DIR OUT_DIR ...``)."""

import sys

from DPNSLCore.cli.batch import main

if __name__ == "__main__":
    sys.exit(main())
