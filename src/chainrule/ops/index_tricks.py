"""NumPy's index helpers ``r_`` and ``c_``: concatenation by slice notation.

``cnp.r_[a, 0:3, [5.0]]`` joins its pieces along the first axis and
``cnp.c_[a, b]`` along the last (1-d pieces become columns), with NumPy's
rules: slices become ``arange`` (or ``linspace`` for an imaginary step), a
leading string such as ``"0,2,-1"`` gives ``axis,ndmin,trans1d``.  Tensors
among the pieces stay differentiable.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.primitive import Box
from . import _broadcast as _bc
from .creation import asarray, library_of
from .shape import concatenate, transpose

__all__ = ["r_", "c_"]


def _slice_values(s: slice) -> np.ndarray:
    start = 0 if s.start is None else s.start
    step = 1 if s.step is None else s.step
    if isinstance(step, complex | np.complexfloating):
        return np.linspace(start, s.stop, int(abs(step)))  # type: ignore[call-overload]  # abs of a complex is real
    return np.arange(start, s.stop, step)


def _with_ndmin(x: Any, ndmin: int, trans1d: int) -> Any:
    """``numpy.array(x, ndmin=ndmin)`` and r_'s transposition of the new axes."""
    nd = x.ndim
    if nd >= ndmin:
        return x
    x = _bc.reshape(x, shape=(1,) * (ndmin - nd) + tuple(x.shape))
    if trans1d != -1:
        k2 = ndmin - nd
        k1 = trans1d + k2 + 1 if trans1d < 0 else trans1d
        axes = list(range(ndmin))
        x = transpose(x, axes[:k1] + axes[k2:] + axes[k1:k2])
    return x


def _same_library(pieces: list, xp: Any) -> list:
    """NumPy pieces (slices, numbers) as arrays of ``xp`` with the other pieces' dtype."""
    if xp is np:
        return pieces
    dtype = next(_raw(p).dtype for p in pieces if not isinstance(_raw(p), np.ndarray))
    return [xp.asarray(_raw(p), dtype=dtype) if isinstance(_raw(p), np.ndarray) else p
            for p in pieces]


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


class AxisConcatenator:
    """Turn slice notation into a concatenation along ``axis`` (see the module docstring)."""

    def __init__(self, name: str, axis: int = 0, ndmin: int = 1, trans1d: int = -1) -> None:
        self.name = name
        self.axis = axis
        self.ndmin = ndmin
        self.trans1d = trans1d

    def __getitem__(self, key: Any) -> Any:
        items = key if isinstance(key, tuple) else (key,)
        axis, ndmin, trans1d = self.axis, self.ndmin, self.trans1d
        pieces = []
        for k, item in enumerate(items):
            if isinstance(item, str):
                if k != 0:
                    raise ValueError(f"{self.name}: a string directive must come first, "
                                     f"got {item!r} at position {k}")
                if item in ("r", "c"):
                    raise NotImplementedError(
                        f"{self.name}: matrix directives 'r'/'c' are not supported")
                try:
                    vals = [int(v) for v in item.split(",")]
                except ValueError:
                    raise ValueError(f"{self.name}: unknown special directive {item!r}") \
                        from None
                axis = vals[0]
                if len(vals) > 1:
                    ndmin = vals[1]
                if len(vals) > 2:
                    trans1d = vals[2]
                continue
            if isinstance(item, slice):
                piece = asarray(_slice_values(item))
                pieces.append(_with_ndmin(piece, ndmin, trans1d) if ndmin > 1 else piece)
                continue
            piece = asarray(item)
            pieces.append(_with_ndmin(piece, ndmin, trans1d))
        if not pieces:
            return np.array([])
        xp = library_of(pieces)
        try:
            if xp is np and not any(isinstance(p, Box) for p in pieces):
                return np.concatenate([np.asarray(p) for p in pieces], axis=axis)
            return concatenate(_same_library(pieces, xp), axis=axis)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from exc

    def __len__(self) -> int:
        return 0


#: Concatenation along the first axis by slice notation: ``r_[a, 0:3]``.
r_ = AxisConcatenator("r_", 0, 1, -1)
#: Concatenation along the last axis, 1-d pieces as columns: ``c_[a, b]``.
c_ = AxisConcatenator("c_", -1, 2, 0)
