"""Warnings that point at the user's code, however deep in the library they are raised."""

from __future__ import annotations

import sys
import warnings

_PACKAGE = __name__.rpartition(".")[0]


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` with the stack level of the first caller outside this package.

    Public functions reach the same check through different call depths (numpy or
    dask path, widget or CLI), so a fixed ``stacklevel`` points into the library on some.
    """
    # stacklevel 1 is this function; 2 its caller, the frame _getframe(1) returns.
    level, frame = 2, sys._getframe(1)
    while frame is not None and _is_ours(frame.f_globals.get("__name__", "")):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)


def _is_ours(module: str) -> bool:
    return module == _PACKAGE or module.startswith(_PACKAGE + ".")
