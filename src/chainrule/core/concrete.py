"""Explicit reads of concrete values, for chainrule's own code that needs numbers.

Some helpers must look at values, not just compute with them: integer class
labels (to validate them and pick the fused loss), index arrays, the size of
a boolean mask.  Converting a traced value with ``np.asarray`` raises (no
value may leave a trace unnoticed), so those helpers call
:func:`concrete_value` instead.  While a function is traced for
``cr.compile`` the read records a *guard*: the compiled program checks the
value at run time and is traced again when it differs, so the result is
never stale.  A symbolic graph node without a value raises ``TypeError``.

The object that answers is found by duck typing (a ``_concrete()`` method on
its type), so this module imports nothing above the core.
"""

from __future__ import annotations

from typing import Any

from .primitive import Box
from .trace import STAGING

__all__ = ["concrete_value", "is_staged"]


def concrete_value(x: Any) -> Any:
    """The plain value under ``x`` (any number of boxes removed), read on purpose.

    >>> import chainrule as cr
    >>> concrete_value(cr.tensor([1, 2]))
    array([1, 2])
    """
    while True:
        read = getattr(type(x), "_concrete", None)
        if read is not None:
            return read(x)
        if not isinstance(x, Box):
            return x
        x = x.data


def is_staged(x: Any) -> bool:
    """True when ``x`` is (or wraps) a value being staged into a program or a graph, whose
    concrete value should not be looked at unless needed (each look is a guard)."""
    while isinstance(x, Box):
        if x._level in STAGING:
            return True
        x = x.data
    return getattr(type(x), "_concrete", None) is not None
