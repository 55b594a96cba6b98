"""Which array namespace serves the arrays at hand.

NumPy is the default and the fast path: plain ``ndarray`` and NumPy scalars
never leave it.  Any other array-API library (array-api-strict, CuPy, Dask,
...) is served through its own namespace, found once per array type and
cached.  ``array-api-compat`` is used when installed (it smooths over the
libraries that are not fully compliant); otherwise the array's own
``__array_namespace__`` is asked.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["namespace_of", "is_numpy_namespace", "NUMPY_TYPES"]

#: Types that NumPy serves directly (Python scalars are promoted by NumPy).
NUMPY_TYPES: frozenset[type] = frozenset(
    {np.ndarray, float, int, bool, complex}
    | {t for t in np.sctypeDict.values() if isinstance(t, type)}
)

_cache: dict[type, Any] = {}


def _namespace_of_type(t: type, example: Any) -> Any:
    try:
        import array_api_compat

        xp = array_api_compat.array_namespace(example)
    except ImportError:
        getter = getattr(example, "__array_namespace__", None)
        if getter is None:
            raise TypeError(
                f"chainrule cannot work with arrays of type {t.__module__}.{t.__name__}: "
                "it is neither a NumPy array nor an array-API array"
            ) from None
        xp = getter()
    except TypeError as exc:
        raise TypeError(
            f"chainrule cannot work with arrays of type {t.__module__}.{t.__name__}: {exc}"
        ) from None
    # array-api-compat hands back its NumPy wrapper for NumPy subclasses; keep np.
    if getattr(xp, "__name__", "").endswith("numpy") and isinstance(example, np.ndarray):
        return np
    return xp


def namespace_of(*values: Any) -> Any:
    """Return the array namespace serving ``values`` (``numpy`` by default).

    >>> import numpy as np
    >>> namespace_of(np.ones(3), 2.0) is np
    True
    """
    found = np
    for v in values:
        t = type(v)
        if t in NUMPY_TYPES or v is None or t is list or t is tuple:
            continue
        xp = _cache.get(t)
        if xp is None:
            xp = _cache[t] = _namespace_of_type(t, v)
        if xp is np:
            continue
        if found is not np and found is not xp:
            raise TypeError(
                f"cannot mix arrays of {found.__name__} and {xp.__name__} in one operation; "
                "convert them to one library first"
            )
        found = xp
    return found


def is_numpy_namespace(xp: ModuleType | Any) -> bool:
    """True when ``xp`` is NumPy itself (the fast path)."""
    return xp is np
