"""``python -m DPNSLCore.upsample``: runs :func:`DPNSLCore.cli.upsample.main` (also ``dpnsl upsample``).

This file shares its name with the function ``DPNSLCore.upsample``. Importing it as a module
(``import DPNSLCore.upsample``) makes Python bind the module to ``DPNSLCore.upsample``; the module is therefore
callable and forwards to :func:`DPNSLCore.inference.api.upsample`, so ``DPNSLCore.upsample(volume, 5)`` works
either way. (Module ``__class__`` assignment is the documented way to customise a module, see the Python
reference, "Customizing module attribute access".)
"""

import sys
import types

from DPNSLCore.cli.upsample import main


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from DPNSLCore.inference.api import upsample

        return upsample(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
else:
    sys.modules[__name__].__class__ = _CallableModule
