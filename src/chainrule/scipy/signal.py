"""``chainrule.scipy.signal``: N-d convolution, differentiable in both inputs.

One primitive, the full convolution (SciPy computes it); ``"valid"`` and
``"same"`` are slices of it.  Its rules are convolutions again: the
cotangent of one input is the full convolution of the output's cotangent
with the other input reversed, sliced back to the input's size.

>>> import numpy as np
>>> from chainrule.scipy.signal import convolve
>>> convolve(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
array([1., 3., 2.])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.signal as ssig

from .. import numpy as cnp
from ..core.primitive import Primitive, primitive
from ._common import numpy_only

__all__ = ["convolve"]


def _full_np(a, b):
    return ssig.convolve(a, b, mode="full")


def _lead_ones(x: Any, nb: int) -> Any:
    """``x`` with ``nb`` leading size-1 axes (so it convolves along a batch axis as identity)."""
    return cnp.reshape(x, (1,) * nb + tuple(x.shape)) if nb else x


def _cotangent(g: Any, other: Any, size: tuple) -> Any:
    nb = len(g.shape) - len(other.shape)
    rev = cnp.flip(other, axis=tuple(range(len(other.shape)))) if other.shape else other
    full = full_p(g, _lead_ones(rev, nb))
    idx = (Ellipsis,) + tuple(slice(m - 1, m - 1 + n) for m, n in zip(other.shape, size))
    return full[idx]


full_p: Primitive = primitive(
    "scipy.signal.convolve", numpy_only("convolve", _full_np), _full_np,
    vjp=(lambda g, out, a, b: _cotangent(g, b, tuple(a.shape)),
         lambda g, out, a, b: _cotangent(g, a, tuple(b.shape))),
    jvp=(lambda t, out, a, b: full_p(t, _lead_ones(b, len(t.shape) - len(a.shape))),
         lambda t, out, a, b: full_p(_lead_ones(a, len(t.shape) - len(b.shape)), t)),
)


def convolve(in1: Any, in2: Any, mode: str = "full", method: str = "auto") -> Any:
    """N-d convolution of ``in1`` and ``in2`` (SciPy's ``convolve``), differentiable in both.

    ``mode`` is ``"full"``, ``"valid"`` or ``"same"`` (SciPy's meanings).

    >>> import numpy as np
    >>> convolve(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]), mode="same")
    array([1. , 2.5, 4. ])
    """
    a = in1 if hasattr(in1, "shape") else np.asarray(in1, dtype=float)
    b = in2 if hasattr(in2, "shape") else np.asarray(in2, dtype=float)
    if len(a.shape) != len(b.shape):
        raise ValueError(f"convolve: in1 and in2 should have the same dimensionality, got "
                         f"shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if mode not in ("full", "valid", "same"):
        raise ValueError(f"convolve: mode must be 'full', 'valid' or 'same', got {mode!r}")
    sa, sb = tuple(a.shape), tuple(b.shape)
    if mode == "valid":
        if not (all(x >= y for x, y in zip(sa, sb)) or all(y >= x for x, y in zip(sa, sb))):
            raise ValueError("convolve: for 'valid' mode, one must be at least as large as "
                             f"the other in every dimension (shapes {sa} and {sb})")
    if 0 in sa or 0 in sb:
        raise ValueError("convolve: inputs cannot be empty")
    full = full_p(a, b)
    if mode == "full":
        return full
    if mode == "valid":
        idx = tuple(slice(min(x, y) - 1, max(x, y)) for x, y in zip(sa, sb))
    else:  # "same": centred on the full result, in1's size
        idx = tuple(slice((x + y - 1 - x) // 2, (x + y - 1 - x) // 2 + x) for x, y in zip(sa, sb))
    return full[idx]
