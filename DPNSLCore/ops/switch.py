"""One rule for the on/off-or-options arguments of ``upsample`` (``destripe=``, ``calibrate=``)."""

from __future__ import annotations

from typing import TypeVar

Options = TypeVar("Options")


def options_from_switch(cls: type[Options], value: object, name: str) -> Options | None:
    """``value`` as options of ``cls``: True gives the defaults ``cls()``, False or None gives None (off), an
    instance of ``cls`` itself.

    Raises:
        TypeError: anything else, naming the argument ``name``.
    """
    if isinstance(value, cls):
        return value
    if value is True:
        return cls()
    if value is False or value is None:
        return None
    raise TypeError(f"`{name}` must be True, False or a {cls.__name__}, got {type(value).__name__}")
