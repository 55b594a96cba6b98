"""Functional index updates: ``x.at[idx].set(v)`` and kin, with JAX's names.

Arrays in chainrule are never written in place (``x[i] = v`` raises
``TypeError``); ``x.at[idx].set(v)`` returns a new array instead.  Each
update is composed of differentiable operations -- ``getitem``, its
transpose ``scatter_add``, ``where`` with a constant mask and elementwise
ops -- so it is differentiable in ``x`` and ``v``, in both modes, to any
order.

The index is resolved once into flat positions of ``x`` (NumPy's indexing
of ``arange(x.size)``), so every NumPy key works.  Repeated positions:
``add`` accumulates, ``multiply`` multiplies all values in, ``min``/``max``
take the extreme of all of them and the old value, and ``set`` keeps the
*last* value, as NumPy's assignment does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.primitive import Box
from . import _broadcast as _bc
from .creation import asarray, astype, library_of, to_library
from .elementwise import maximum, minimum, where
from .indexing import _index, _normalize, _unwrap_key, getitem, scatter_add_p

__all__ = ["IndexUpdates", "IndexUpdate", "setitem_error"]


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _scatter(w: Any, positions: np.ndarray, n: int, unique: bool, xp: Any) -> Any:
    """Zeros of length ``n`` with ``w`` added in at ``positions`` (1-D)."""
    key = _normalize((n,), positions, xp, unique)[1]
    return scatter_add_p(w, key=key)


def _hit(positions: np.ndarray, n: int, xp: Any) -> Any:
    hit = np.zeros(n, dtype=bool)
    hit[positions] = True
    return to_library(hit, xp)


def _rounds(positions: np.ndarray) -> list[np.ndarray]:
    """Index groups in which no position repeats: the k-th occurrences of each position."""
    order = np.argsort(positions, kind="stable")
    sp = positions[order]
    starts = np.r_[True, sp[1:] != sp[:-1]] if sp.size else np.zeros(0, dtype=bool)
    first = np.maximum.accumulate(np.where(starts, np.arange(sp.size), 0))
    rank = np.empty(sp.size, dtype=np.intp)
    rank[order] = np.arange(sp.size) - first
    return [np.nonzero(rank == r)[0] for r in range(int(rank.max()) + 1 if rank.size else 0)]


def _last(positions: np.ndarray) -> np.ndarray:
    """The indices of the last occurrence of each position (NumPy's assignment order)."""
    order = np.argsort(positions, kind="stable")
    sp = positions[order]
    ends = np.r_[sp[1:] != sp[:-1], True] if sp.size else np.zeros(0, dtype=bool)
    return np.sort(order[ends])


def _update(x: Any, key: Any, v: Any, mode: str) -> Any:
    op = f"at[...].{mode}"
    if not (isinstance(x, Box) or hasattr(x, "shape")):
        x = np.asarray(x)
    shape = tuple(x.shape)
    if not all(isinstance(s, int) for s in shape):
        raise TypeError(f"{op}: the array's shape {shape} has sizes known only when the graph "
                        "runs; index updates need a known shape")
    n = math.prod(shape)
    try:
        positions = np.arange(n).reshape(shape)[_unwrap_key(key)]
    except IndexError as exc:
        raise IndexError(f"{op}: {exc} (array shape {shape})") from exc
    positions = np.asarray(positions)
    v = asarray(v)
    vshape = tuple(v.shape)
    try:
        ok = np.broadcast_shapes(vshape, positions.shape) == positions.shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{op}: shape mismatch: value array of shape {vshape} could not be "
                         f"broadcast to indexing result of shape {positions.shape}")
    xdtype = _raw(x).dtype
    vdtype = getattr(_raw(v), "dtype", None)
    if vdtype != xdtype:
        v = astype(v, xdtype)
    if vshape != positions.shape:
        v = _bc.broadcast_to(v, shape=positions.shape)
    m = positions.size
    flat_pos = positions.reshape(-1)
    xp = library_of(x, v)
    xf = _bc.reshape(x, shape=(n,))
    vf = _bc.reshape(v, shape=(m,))
    if m == 0:
        out = xf
    elif mode == "add" and (xp is np or np.unique(flat_pos).size == m):
        out = xf + _scatter(vf, flat_pos, n, np.unique(flat_pos).size == m, xp)
    elif mode == "set":
        last = _last(flat_pos)
        if last.size != m:
            vf = _index(vf, to_library(last, xp), unique=True)
            flat_pos = flat_pos[last]
        out = where(_hit(flat_pos, n, xp), _scatter(vf, flat_pos, n, True, xp), xf)
    else:
        out = xf
        for sel in _rounds(flat_pos):
            pos = flat_pos[sel]
            w = vf if sel.size == m else _index(vf, to_library(sel, xp), unique=True)
            hit = _hit(pos, n, xp)
            s = _scatter(w, pos, n, True, xp)
            if mode == "add":  # repeated positions on a library without a scatter-add
                out = out + s
            elif mode == "multiply":
                out = out * where(hit, s, 1.0)
            elif mode == "min":
                out = where(hit, minimum(out, s), out)
            else:
                out = where(hit, maximum(out, s), out)
    out = _bc.reshape(out, shape=shape)
    if getattr(_raw(out), "dtype", xdtype) != xdtype:
        out = astype(out, xdtype)
    return out


class IndexUpdate:
    """``x.at[idx]``: the updates of ``x`` at ``idx`` (each returns a new array)."""

    __slots__ = ("_x", "_key")

    def __init__(self, x: Any, key: Any) -> None:
        self._x = x
        self._key = key

    def get(self) -> Any:
        """``x[idx]``."""
        return getitem(self._x, self._key)

    def set(self, values: Any) -> Any:
        """``x`` with ``values`` at ``idx`` (the last one wins where positions repeat).

        >>> import chainrule as cr
        >>> cr.tensor([1.0, 2.0, 3.0]).at[1].set(9.0)
        tensor([1., 9., 3.])
        """
        return _update(self._x, self._key, values, "set")

    def add(self, values: Any) -> Any:
        """``x`` with ``values`` added at ``idx`` (repeated positions accumulate).

        >>> import chainrule as cr
        >>> cr.tensor([1.0, 2.0, 3.0]).at[[0, 0]].add(1.0)
        tensor([3., 2., 3.])
        """
        return _update(self._x, self._key, values, "add")

    def multiply(self, values: Any) -> Any:
        """``x`` multiplied by ``values`` at ``idx`` (every repeated value multiplies in).

        >>> import chainrule as cr
        >>> cr.tensor([1.0, 2.0, 3.0]).at[[1, 1]].multiply(3.0)
        tensor([ 1., 18.,  3.])
        """
        return _update(self._x, self._key, values, "multiply")

    mul = multiply

    def min(self, values: Any) -> Any:  # noqa: A003
        """``minimum(x, values)`` at ``idx`` (over every repeated value).

        >>> import chainrule as cr
        >>> cr.tensor([1.0, 2.0, 3.0]).at[2].min(0.5)
        tensor([1. , 2. , 0.5])
        """
        return _update(self._x, self._key, values, "min")

    def max(self, values: Any) -> Any:  # noqa: A003
        """``maximum(x, values)`` at ``idx`` (over every repeated value).

        >>> import chainrule as cr
        >>> cr.tensor([1.0, 2.0, 3.0]).at[0].max(5.0)
        tensor([5., 2., 3.])
        """
        return _update(self._x, self._key, values, "max")


class IndexUpdates:
    """``x.at``: index it to get an :class:`IndexUpdate`."""

    __slots__ = ("_x",)

    def __init__(self, x: Any) -> None:
        self._x = x

    def __getitem__(self, key: Any) -> IndexUpdate:
        return IndexUpdate(self._x, key)


def setitem_error(self: Any, key: Any, value: Any) -> None:
    """``x[key] = value`` on a tensor or graph node: arrays here are immutable."""
    raise TypeError(
        f"'{type(self).__name__}' object does not support item assignment: chainrule arrays "
        "are immutable (in-place writes would corrupt saved values); use "
        "x = x.at[key].set(value) (or .add, .multiply, .min, .max) instead"
    )
