"""NumPy functions composed from other primitives: no rules of their own.

Each one is written with chainrule's differentiable operations, so it is
differentiable in both modes and to any order wherever NumPy's result
depends smoothly on the input (and has a zero derivative where it is
piecewise constant).  Bad input raises NumPy's error type, naming the
function and the shapes involved.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.primitive import Box
from . import _broadcast as _bc
from .creation import asarray, astype, library_of, numpy_dtype, to_library, zeros_like
from .elementwise import absolute, isinf, isnan, multiply, where
from .elementwise import clip as _clip_p
from .elementwise import fmod as fmod  # noqa: PLC0414  (re-exported under NumPy's name)
from .indexing import getitem, take_along_axis
from .shape import (
    concatenate,
    flip,
    is_staged,
    moveaxis,
    ravel,
    sort,
    split,
    stack,
    transpose,
    vstack,
)

__all__ = [
    "append", "diff", "gradient", "cross", "rot90", "rollaxis", "row_stack", "dsplit",
    "partition", "select", "nan_to_num", "radians", "degrees", "deg2rad", "rad2deg", "fabs",
    "clip", "fmod",
]

_NO_VALUE = object()


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _shape(x: Any) -> tuple:
    return tuple(getattr(x, "shape", np.shape(x)))


def named(op: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Re-raise NumPy's error types from inside ``fn`` with ``op``'s name in front."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (ValueError, TypeError, IndexError) as exc:
                msg = str(exc)
                if msg.startswith(op + ":"):
                    raise
                shapes = ", ".join(str(_shape(a)) for a in args
                                   if isinstance(a, Box) or hasattr(a, "shape"))
                extra = f" (input shapes: {shapes})" if shapes else ""
                raise type(exc)(f"{op}: {msg}{extra}") from exc

        return inner

    return wrap


def _axis(axis: Any, ndim: int, op: str) -> int:
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"{op}: axis must be an integer, got {axis!r}") from None
    if not -ndim <= ax < ndim:
        raise np.exceptions.AxisError(
            f"{op}: axis {ax} is out of bounds for array of dimension {ndim}")
    return ax % ndim


# --- joining and differences -------------------------------------------------------------------

@named("append")
def append(arr: Any, values: Any, axis: Any = None) -> Any:
    """Values appended to the end of ``arr`` (flattened when ``axis`` is None).

    >>> import chainrule.numpy as cnp
    >>> cnp.append([1.0, 2.0], [[3.0]])
    array([1., 2., 3.])
    """
    arr, values = asarray(arr), asarray(values)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


def _edge(x: Any, like: Any, ax: int) -> Any:
    """``prepend``/``append`` of ``diff``: broadcast to ``like``'s shape with size 1 on ``ax``."""
    like_shape = _shape(like)
    x = to_library(asarray(x), library_of(like))
    if x.ndim == 0:
        shape = like_shape[:ax] + (1,) + like_shape[ax + 1:]
        return _bc.broadcast_to(x, shape=shape)
    return x


@named("diff")
def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = _NO_VALUE,
         append: Any = _NO_VALUE) -> Any:
    """The ``n``-th discrete difference along ``axis``.

    >>> import chainrule.numpy as cnp
    >>> cnp.diff([1.0, 4.0, 9.0])
    array([3., 5.])
    """
    a = asarray(a)
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"order must be non-negative but got {n}")
    if n == 0:
        return a
    if a.ndim == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    ax = _axis(axis, a.ndim, "diff")
    parts = []
    if prepend is not _NO_VALUE:
        parts.append(_edge(prepend, a, ax))
    parts.append(a)
    if append is not _NO_VALUE:
        parts.append(_edge(append, a, ax))
    if len(parts) > 1:
        a = concatenate(parts, axis=ax)
    lo = (slice(None),) * ax + (slice(1, None),)
    hi = (slice(None),) * ax + (slice(None, -1),)
    for _ in range(n):
        a = getitem(a, lo) - getitem(a, hi)
    return a


def _slice_at(ax: int, s: Any) -> tuple:
    return (slice(None),) * ax + (s,)


@named("gradient")
def gradient(f: Any, *varargs: Any, axis: Any = None, edge_order: int = 1) -> Any:
    """Second-order central differences inside, one-sided differences at the edges.

    Spacings are scalars or coordinate arrays, as in ``numpy.gradient``; the
    result is differentiable in ``f`` (the spacings are constants).

    >>> import chainrule.numpy as cnp
    >>> cnp.gradient([1.0, 4.0, 9.0, 16.0])
    array([3., 4., 6., 7.])
    """
    f = asarray(f)
    nd = f.ndim
    if axis is None:
        axes = list(range(nd))
    else:
        seq = axis if isinstance(axis, (list, tuple)) else (axis,)
        axes = [_axis(a, nd, "gradient") for a in seq]
        if len(set(axes)) != len(axes):
            raise ValueError("duplicate value in 'axis'")
    n_axes = len(axes)
    if not varargs:
        spacing: list[Any] = [1.0] * n_axes
    elif len(varargs) == 1 and np.ndim(_raw(varargs[0])) == 0:
        spacing = [_raw(varargs[0])] * n_axes
    elif len(varargs) == n_axes:
        spacing = [np.asarray(_raw(v), dtype=float) if np.ndim(_raw(v)) else _raw(v)
                   for v in varargs]
    else:
        raise TypeError("invalid number of arguments")
    if edge_order > 2 or edge_order < 1:
        raise ValueError("'edge_order' greater than 2 not supported")
    outs = []
    for ax, dx in zip(axes, spacing):
        size = _shape(f)[ax]
        if size < edge_order + 1:
            raise ValueError(
                "Shape of array too small to calculate a numerical gradient, at least "
                "(edge_order + 1) elements are required.")
        outs.append(_gradient_1(f, ax, dx, edge_order, size))
    return outs[0] if len(outs) == 1 else outs


def _gradient_1(f: Any, ax: int, dx: Any, edge_order: int, size: int) -> Any:
    nd = f.ndim
    bshape = (-1,) + (1,) * (nd - ax - 1)  # coefficients along ``ax``, broadcast elsewhere

    def sl(s):
        return getitem(f, _slice_at(ax, s))

    if np.ndim(dx) == 0:  # uniform spacing
        h = float(dx)
        interior = (sl(slice(2, None)) - sl(slice(None, -2))) / (2.0 * h)
        if edge_order == 1:
            first = (sl(slice(1, 2)) - sl(slice(0, 1))) / h
            last = (sl(slice(-1, None)) - sl(slice(-2, -1))) / h
        else:
            first = (-1.5 * sl(slice(0, 1)) + 2.0 * sl(slice(1, 2))
                     - 0.5 * sl(slice(2, 3))) / h
            last = (0.5 * sl(slice(-3, -2)) - 2.0 * sl(slice(-2, -1))
                    + 1.5 * sl(slice(-1, None))) / h
        return concatenate([first, interior, last], axis=ax)
    x = np.asarray(dx, dtype=float)
    if x.ndim != 1 or x.shape[0] != size:
        raise ValueError("when 1d, distances must match the length of the corresponding "
                         "dimension")
    d: Any = np.diff(x)  # (a list of floats below)
    d1, d2 = d[:-1], d[1:]
    xp = library_of(f)
    a = to_library((-d2 / (d1 * (d1 + d2))).reshape(bshape), xp)
    b = to_library(((d2 - d1) / (d1 * d2)).reshape(bshape), xp)
    c = to_library((d1 / (d2 * (d1 + d2))).reshape(bshape), xp)
    d = [float(v) for v in d]
    # (array first: a non-NumPy library's array refuses a tensor on its right)
    interior = sl(slice(None, -2)) * a + sl(slice(1, -1)) * b + sl(slice(2, None)) * c
    if edge_order == 1:
        first = (sl(slice(1, 2)) - sl(slice(0, 1))) / d[0]
        last = (sl(slice(-1, None)) - sl(slice(-2, -1))) / d[-1]
    else:
        h1, h2 = d[0], d[1]
        first = (-(2.0 * h1 + h2) / (h1 * (h1 + h2)) * sl(slice(0, 1))
                 + (h1 + h2) / (h1 * h2) * sl(slice(1, 2))
                 - h1 / (h2 * (h1 + h2)) * sl(slice(2, 3)))
        h1, h2 = d[-2], d[-1]
        last = (h2 / (h1 * (h1 + h2)) * sl(slice(-3, -2))
                - (h2 + h1) / (h1 * h2) * sl(slice(-2, -1))
                + (2.0 * h2 + h1) / (h2 * (h1 + h2)) * sl(slice(-1, None)))
    return concatenate([first, interior, last], axis=ax)


# --- vector and rotation helpers ---------------------------------------------------------------

@named("cross")
def cross(a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1,
          axis: Any = None) -> Any:
    """Cross product of 3-vectors (or 2-vectors: the z component) along the given axes.

    >>> import chainrule.numpy as cnp
    >>> cnp.cross([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    array([0., 0., 1.])
    """
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = asarray(a), asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"incompatible dimensions for cross product: shapes {_shape(a)} "
                         f"and {_shape(b)}")
    a = moveaxis(a, _axis(axisa, a.ndim, "cross"), -1)
    b = moveaxis(b, _axis(axisb, b.ndim, "cross"), -1)
    na, nb = _shape(a)[-1], _shape(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(
            "incompatible dimensions for cross product (dimension must be 2 or 3), "
            f"got vectors of length {na} and {nb}")
    try:
        if all(isinstance(n, int) for n in _shape(a) + _shape(b)):  # (graph sizes: later)
            np.broadcast_shapes(_shape(a)[:-1], _shape(b)[:-1])
    except ValueError:
        raise ValueError(f"shape mismatch: vectors of shapes {_shape(a)} and {_shape(b)} "
                         "cannot be broadcast together") from None

    def comp(v, i):
        return getitem(v, (Ellipsis, i))

    a0, a1, b0, b1 = comp(a, 0), comp(a, 1), comp(b, 0), comp(b, 1)
    if na == 2 and nb == 2:
        return a0 * b1 - a1 * b0
    a2 = comp(a, 2) if na == 3 else None
    b2 = comp(b, 2) if nb == 3 else None
    c0 = (a1 * b2 if b2 is not None else 0.0) - (a2 * b1 if a2 is not None else 0.0)
    c1 = (a2 * b0 if a2 is not None else 0.0) - (a0 * b2 if b2 is not None else 0.0)
    c2 = a0 * b1 - a1 * b0
    out = stack([c0, c1, c2], axis=-1)  # each component has the broadcast shape already
    return moveaxis(out, -1, _axis(axisc, out.ndim, "cross"))


@named("rot90")
def rot90(m: Any, k: int = 1, axes: Any = (0, 1)) -> Any:
    """Rotate by 90 degrees ``k`` times in the plane of ``axes``.

    >>> import chainrule.numpy as cnp
    >>> cnp.rot90([[1.0, 2.0], [3.0, 4.0]])
    array([[2., 4.],
           [1., 3.]])
    """
    m = asarray(m)
    axes = tuple(axes)
    if len(axes) != 2:
        raise ValueError("len(axes) must be 2.")
    if m.ndim < 2:
        raise ValueError(f"Axes must be different and the array at least 2-d, got shape "
                         f"{_shape(m)}")
    a0, a1 = _axis(axes[0], m.ndim, "rot90"), _axis(axes[1], m.ndim, "rot90")
    if a0 == a1:
        raise ValueError("Axes must be different.")
    k = operator.index(k) % 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(m.ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return transpose(flip(m, a1), perm)
    return flip(transpose(m, perm), a1)


@named("rollaxis")
def rollaxis(a: Any, axis: int, start: int = 0) -> Any:
    """Roll ``axis`` backwards until it lies before position ``start`` (NumPy's rules).

    >>> import chainrule.numpy as cnp
    >>> cnp.rollaxis(cnp.ones((3, 4, 5)), 2).shape
    (5, 3, 4)
    """
    a = asarray(a)
    n = a.ndim
    axis = _axis(axis, n, "rollaxis")
    start = operator.index(start)
    if start < 0:
        start += n
    if not 0 <= start < n + 1:
        raise np.exceptions.AxisError(
            f"'start' arg requires {-n} <= start < {n + 1}, but {start} was passed in")
    if axis < start:
        start -= 1
    if axis == start:
        return a
    axes = list(range(n))
    axes.remove(axis)
    axes.insert(start, axis)
    return transpose(a, axes)


def row_stack(tup: Any, *, dtype: Any = None, casting: str = "same_kind") -> Any:
    """``vstack`` under its older name.

    >>> import chainrule.numpy as cnp
    >>> cnp.row_stack([[1.0, 2.0], [3.0, 4.0]]).shape
    (2, 2)
    """
    return vstack(tup, dtype=dtype, casting=casting)


@named("dsplit")
def dsplit(ary: Any, indices_or_sections: Any) -> list:
    """Split along axis 2 (arrays of at least 3 dimensions).

    >>> import chainrule.numpy as cnp
    >>> [p.shape for p in cnp.dsplit(cnp.ones((1, 2, 4)), 2)]
    [(1, 2, 2), (1, 2, 2)]
    """
    ary = asarray(ary)
    if ary.ndim < 3:
        raise ValueError(f"only works on arrays of 3 or more dimensions, got shape "
                         f"{_shape(ary)}")
    return split(ary, indices_or_sections, 2)


@named("partition")
def partition(a: Any, kth: Any, axis: Any = -1, kind: str = "introselect",
              order: Any = None) -> Any:
    """NumPy's partition; the gradient follows the values to where they were taken from.

    Other array libraries get a sorted array (also a valid partition: NumPy leaves
    the order inside the two parts unspecified).

    >>> import chainrule.numpy as cnp
    >>> float(cnp.partition([3.0, 1.0, 2.0], 1)[1])
    2.0
    """
    if order is not None:
        raise NotImplementedError("partition: order= (structured arrays) is not supported")
    a = asarray(a)
    if axis is None:
        a = ravel(a)
        axis = -1
    ax = _axis(axis, a.ndim, "partition")
    raw = _raw(a)
    if is_staged(a):  # values unknown while a program is traced: a full sort partitions too
        return sort(a, axis=ax)
    if library_of(a) is not np:
        # No argpartition in the array API (nor a lazy one in Dask); a sorted array is a
        # valid partition (NumPy leaves the order inside the two parts unspecified).
        n = _shape(a)[ax]
        for k in np.atleast_1d(np.asarray(_raw(kth))):
            if not -n <= int(k) < n:
                raise ValueError(f"kth(={int(k)}) out of bounds ({n})")
        return sort(a, axis=ax)
    idx = np.argpartition(raw, _raw(kth), axis=ax, kind=kind)  # type: ignore[arg-type]  # (NumPy checks kind)
    if not isinstance(a, Box):
        return np.take_along_axis(raw, idx, axis=ax)
    return take_along_axis(a, idx, axis=ax)


@named("select")
def select(condlist: Any, choicelist: Any, default: Any = 0) -> Any:
    """The element of the first choice whose condition holds, else ``default``.

    Differentiable in the choices and the default (conditions are plain booleans).

    >>> import chainrule.numpy as cnp
    >>> cnp.select([[True, False], [False, True]], [[1.0, 2.0], [3.0, 4.0]], default=-1.0)
    array([1., 4.])
    """
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    if len(condlist) == 0:
        raise ValueError("select with an empty condition list is not possible")
    conds = []
    for i, c in enumerate(condlist):
        c = np.asarray(_raw(c))
        if c.dtype != np.bool_:
            raise TypeError(f"invalid entry {i} in condlist: should be boolean ndarray")
        conds.append(c)
    xp = library_of(list(choicelist), default)
    out = to_library(asarray(default), xp)
    for c, choice in zip(reversed(conds), reversed(list(choicelist))):
        out = where(to_library(c, xp), to_library(asarray(choice), xp), out)
    return out


@named("nan_to_num")
def nan_to_num(x: Any, copy: bool = True, nan: float = 0.0, posinf: Any = None,
               neginf: Any = None) -> Any:
    """NaN and infinities replaced by finite numbers; the derivative is 1 elsewhere, 0 there.

    >>> import chainrule.numpy as cnp
    >>> cnp.nan_to_num([float("nan"), 1.0])
    array([0., 1.])
    """
    x = asarray(x)
    raw = _raw(x)
    dtype = np.dtype(x.dtype) if is_staged(x) else numpy_dtype(raw)
    if not np.issubdtype(dtype, np.inexact):
        return x
    if np.issubdtype(dtype, np.complexfloating):
        raise NotImplementedError("nan_to_num: complex inputs are not supported yet")
    info = np.finfo(dtype)
    hi = float(info.max if posinf is None else posinf)
    lo = float(info.min if neginf is None else neginf)
    if is_staged(x):  # values unknown while a program is traced: replace without looking
        big = where(x > 0, np.asarray(hi, dtype), np.asarray(lo, dtype))
        return where(isnan(x), np.asarray(nan, dtype), where(isinf(x), big, x))
    bad_nan, inf = isnan(raw), isinf(raw)  # plain boolean arrays of x's library
    if isinstance(raw, np.ndarray | np.generic) and not (bad_nan.any() or inf.any()):
        return x
    big = zeros_like(raw) + hi  # (an array: the array API refuses where() on two scalars)
    replaced = astype(where(bad_nan, float(nan), where(raw > 0, big, lo)), dtype)
    return where(bad_nan | inf, replaced, x)


def deg2rad(x: Any) -> Any:
    """Degrees to radians (``x * pi / 180``).

    >>> import chainrule.numpy as cnp
    >>> float(cnp.deg2rad(180.0))
    3.141592653589793
    """
    return multiply(x, math.pi / 180.0)


def rad2deg(x: Any) -> Any:
    """Radians to degrees (``x * 180 / pi``).

    >>> import chainrule.numpy as cnp
    >>> float(cnp.rad2deg(cnp.pi))
    180.0
    """
    return multiply(x, 180.0 / math.pi)


radians = deg2rad
degrees = rad2deg


@named("fabs")
def fabs(x: Any) -> Any:
    """Absolute value of real input (complex input raises ``TypeError`` as in NumPy).

    >>> import chainrule.numpy as cnp
    >>> cnp.fabs([-1.5, 2.0])
    array([1.5, 2. ])
    """
    x = asarray(x)
    dtype = np.dtype(x.dtype) if is_staged(x) else numpy_dtype(_raw(x))
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError("ufunc 'fabs' not supported for complex input")
    return absolute(x)


def clip(a: Any, a_min: Any = _NO_VALUE, a_max: Any = _NO_VALUE, out: Any = None, *,
         min: Any = _NO_VALUE, max: Any = _NO_VALUE, **kwargs: Any) -> Any:  # noqa: A002
    """Values limited to ``[a_min, a_max]``; NumPy's keywords, NumPy 2's ``min``/``max`` too.

    >>> import chainrule.numpy as cnp
    >>> cnp.clip([-2.0, 0.5, 3.0], a_min=0.0, a_max=1.0)
    array([0. , 0.5, 1. ])
    """
    if out is not None:
        raise TypeError("clip: out= is not supported (chainrule arrays are not written in "
                        "place)")
    if kwargs:
        raise TypeError(f"clip: unexpected keyword arguments {sorted(kwargs)}")
    if (min is not _NO_VALUE or max is not _NO_VALUE) and (
            a_min is not _NO_VALUE or a_max is not _NO_VALUE):
        raise ValueError("clip: passing `min` or `max` keyword argument when `a_min` and "
                         "`a_max` are provided is forbidden")
    lo = min if min is not _NO_VALUE else a_min
    hi = max if max is not _NO_VALUE else a_max
    lo = None if lo is _NO_VALUE else lo
    hi = None if hi is _NO_VALUE else hi
    a = asarray(a) if type(a) in (list, tuple) else a
    if lo is None and hi is None:
        return a * 1 if isinstance(a, Box) else np.clip(np.asarray(a), None, None)  # type: ignore[operator]  # a Tensor
    return _clip_p(a, lo, hi)

