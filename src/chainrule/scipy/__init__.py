"""``chainrule.scipy``: SciPy's functions, differentiable (what HIPS autograd users import).

Submodules mirror SciPy's: :mod:`~chainrule.scipy.special`,
:mod:`~chainrule.scipy.stats`, :mod:`~chainrule.scipy.linalg`,
:mod:`~chainrule.scipy.signal` and :mod:`~chainrule.scipy.integrate`.
Values are computed by SciPy; derivatives in both modes come from rules
written with chainrule's own ops, so they can be differentiated again.
SciPy is an optional dependency: ``pip install chainrule[scipy]``.

>>> import numpy as np, chainrule as cr
>>> from chainrule.scipy import special
>>> float(cr.grad(special.gammaln)(3.0))  # digamma(3)
0.9227843350984671
"""

from __future__ import annotations

try:
    import scipy as _scipy  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "chainrule.scipy needs SciPy, an optional extra: pip install chainrule[scipy]"
    ) from exc

from . import integrate, linalg, signal, special, stats  # noqa: E402

__all__ = ["special", "stats", "linalg", "signal", "integrate"]
