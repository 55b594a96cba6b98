"""SciPy, an optional dependency (the ``optimize`` extra): loaded here, required on use."""

from __future__ import annotations

from typing import Any

try:
    import scipy.sparse as sp
except ImportError:  # chainrule itself imports without SciPy; cr.sparse needs it
    sp = None

__all__ = ["sp", "require_scipy"]


def require_scipy(what: str) -> Any:
    """``scipy.sparse``, or an ImportError that says how to install it."""
    if sp is None:
        raise ImportError(
            f"{what} needs SciPy (scipy.sparse); install the optional extra: "
            "pip install 'chainrule[optimize]'"
        )
    return sp
