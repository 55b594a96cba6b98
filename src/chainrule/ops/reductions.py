"""Reductions: sum, mean, prod, max/min, var/std, cumulative ops, logsumexp.

Axes are stored in the primitives' parameters as *negative* indices, so the
same parameter addresses the same axis of a cotangent or tangent that
carries extra leading batch axes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import NUMPY_TYPES, library_name, namespace_of
from ..core.primitive import Box, Primitive, primitive
from ._broadcast import _inverse, batch_shape, broadcast_to, reshape, transpose_p
from .elementwise import conj, equal, exp, is_complex, real, sqrt, where
from .indexing import concat_p

__all__ = [
    "sum", "mean", "prod", "max", "min", "amax", "amin", "var", "std", "cumsum", "cumprod",
    "logsumexp", "count_nonzero",
]

_builtin_sum = sum


def _ndim(x: Any) -> int:
    return len(getattr(x, "shape", ()))


def normalize_axes(axis: Any, ndim: int, op: str) -> tuple[int, ...]:
    """Axes as a sorted tuple of negative indices; ``None`` means every axis."""
    if axis is None:
        return tuple(range(-ndim, 0))
    if isinstance(axis, (list, tuple)):
        axes = tuple(int(a) for a in axis)
    else:
        axes = (int(axis),)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{op}: axis {a} is out of bounds for an array of dimension {ndim}"
            )
        out.append(a - ndim if a >= 0 else a)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    n = len(shape)
    return tuple(1 if i - n in axes else s for i, s in enumerate(shape))


def expand_reduced(g: Any, x: Any, out: Any, axes: tuple, keepdims: bool) -> Any:
    """Cotangent of a reduction's output, broadcast back over the input's shape."""
    b = batch_shape(g, out)
    xs = tuple(x.shape)
    if type(g) is np.ndarray or isinstance(g, np.generic):  # no graph to record: no dispatch
        if not keepdims:
            g = g.reshape(b + _kept_shape(xs, axes))
        return np.broadcast_to(g, b + xs)
    if not keepdims:
        g = reshape(g, shape=b + _kept_shape(xs, axes))
    return broadcast_to(g, shape=b + xs)


# --- sum ------------------------------------------------------------------------------

def _sum_impl(xp, x, axes, keepdims):
    return xp.sum(x, axis=axes, keepdims=keepdims)


reduce_sum: Primitive = primitive(
    "reduce_sum", _sum_impl,
    lambda x, axes, keepdims: np.sum(x, axis=axes, keepdims=keepdims),
    vjp=(lambda g, out, x, axes, keepdims: expand_reduced(g, x, out, axes, keepdims),),
    jvp=(lambda t, out, x, axes, keepdims: reduce_sum(t, axes=axes, keepdims=keepdims),),
    saves="nothing",
)


def sum(x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> Any:
    """Sum over ``axis`` (all axes by default), like ``numpy.sum``."""
    if dtype is not None:
        from .creation import astype

        x = astype(x, dtype)
    return reduce_sum(x, axes=normalize_axes(axis, _ndim(x), "sum"), keepdims=bool(keepdims))


def _count(shape: tuple, axes: tuple) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Arithmetic mean over ``axis``, like ``numpy.mean``."""
    axes = normalize_axes(axis, _ndim(x), "mean")
    total = reduce_sum(x, axes=axes, keepdims=bool(keepdims))
    n = _count(tuple(getattr(x, "shape", ())), axes)
    return total / n if n else total * np.nan


# --- max / min ---------------------------------------------------------------------------

def _chooser(name: str, np_fn: Any, xp_name: str):
    def impl(xp, x, axes, keepdims):
        return getattr(xp, xp_name)(x, axis=axes, keepdims=keepdims)

    def share(x, out, axes, keepdims):
        # Ties share the derivative equally: deterministic and symmetric.
        o = out if keepdims else reshape(out, shape=_kept_shape(tuple(x.shape), axes))
        hit = equal(x, o)  # a plain boolean array of x's library
        xp = namespace_of(hit)
        weight = xp.astype(hit, _raw(x).dtype)
        return weight / xp.sum(weight, axis=axes, keepdims=True)

    def vjp(g, out, x, axes, keepdims):
        if type(x) is np.ndarray and _is_np(g) and _is_np(out):
            ct = _pick_np(g, out, x, axes, keepdims)
            if ct is not None:
                return ct
        return expand_reduced(g, x, out, axes, keepdims) * share(x, out, axes, keepdims)

    def jvp(t, out, x, axes, keepdims):
        return reduce_sum(t * share(x, out, axes, keepdims), axes=axes, keepdims=keepdims)

    return primitive(name, impl, lambda x, axes, keepdims: np_fn(x, axis=axes, keepdims=keepdims),
                     vjp=(vjp,), jvp=(jvp,))


def _is_np(v: Any) -> bool:
    return type(v) is np.ndarray or isinstance(v, np.generic)


def _pick_np(g, out, x, axes, keepdims):
    """max/min's cotangent on NumPy values when every group has one extremum: ``g`` where
    ``x`` hits it, in two passes; ``None`` (the general rule) for ties, NaNs or mixed dtypes."""
    kept = _kept_shape(x.shape, axes)
    hit = x == (out if keepdims else out.reshape(kept))
    if g.dtype != x.dtype or not (np.add.reduce(hit, axis=axes) == 1).all():
        return None
    return np.multiply(g if keepdims else g.reshape(g.shape[:g.ndim - out.ndim] + kept), hit)


def _raw(x):
    while isinstance(x, Box):
        x = x.data
    return x


reduce_max = _chooser("reduce_max", np.max, "max")
reduce_min = _chooser("reduce_min", np.min, "min")


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Largest value over ``axis``; ties share the gradient equally."""
    return reduce_max(x, axes=normalize_axes(axis, _ndim(x), "max"), keepdims=bool(keepdims))


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Smallest value over ``axis``; ties share the gradient equally."""
    return reduce_min(x, axes=normalize_axes(axis, _ndim(x), "min"), keepdims=bool(keepdims))


amax = max
amin = min


# --- cumulative ------------------------------------------------------------------------------

def _cumsum_impl(xp, x, axis):
    if hasattr(xp, "cumulative_sum"):
        return xp.cumulative_sum(x, axis=axis)
    return xp.cumsum(x, axis=axis)


def _rev_cumsum(g, axis):
    # sum_{j >= i} g_j = total - (prefix sum up to i) + g_i, without flipping.
    return reduce_sum(g, axes=(axis,), keepdims=True) - cumsum_p(g, axis=axis) + g


cumsum_p: Primitive = primitive(
    "cumsum", _cumsum_impl, lambda x, axis: np.cumsum(x, axis=axis),
    vjp=(lambda g, out, x, axis: _rev_cumsum(g, axis),),
    jvp=(lambda t, out, x, axis: cumsum_p(t, axis=axis),),
    saves="nothing",
)


def _flat_axis(x: Any, axis: Any, op: str) -> tuple[Any, int]:
    if axis is None:
        return reshape(x, shape=(-1,)), -1
    return x, normalize_axes(axis, _ndim(x), op)[0]


def cumsum(x: Any, axis: Any = None) -> Any:
    """Cumulative sum along ``axis`` (of the flattened array when ``axis`` is None)."""
    x, ax = _flat_axis(x, axis, "cumsum")
    return cumsum_p(x, axis=ax)


def _cumprod_impl(xp, x, axis):
    if hasattr(xp, "cumulative_prod"):
        return xp.cumulative_prod(x, axis=axis)
    return xp.cumprod(x, axis=axis)


def _is_numpy(x: Any) -> bool:
    raw = _raw(x)
    return type(raw) in NUMPY_TYPES or isinstance(raw, np.ndarray | np.generic)


def _no_zeros(x: Any) -> bool | None:
    """True when ``x`` has no zero entry (picks the division path of the product rules).

    Other array libraries answer with their own namespace; for a lazy library (Dask)
    the answer would compute ``x`` while the graph is being built, so it is ``None``
    (unknown) and the callers take a path that is exact either way.
    """
    raw = _raw(x)
    if _is_numpy(raw):
        return bool(np.all(np.asarray(raw) != 0))
    xp = namespace_of(raw)
    if library_name(xp) == "dask" or getattr(xp, "_staged", False):
        return None  # (graph nodes and traced values: no look at the data either)
    return bool(xp.all(raw != 0))


def _shift(y: Any, s: int, axis: int, reverse: bool) -> Any:
    """``y`` moved by ``s`` along (negative) ``axis``, zero-filled: entry k becomes
    ``y[k + s]`` (reverse) or ``y[k - s]`` (forward)."""
    raw = _raw(y)
    xp = namespace_of(raw)
    tail = (slice(None),) * (-axis - 1)
    if s >= raw.shape[axis]:
        return xp.zeros_like(raw)
    zeros = xp.zeros_like(raw[(Ellipsis, slice(0, s)) + tail])  # y's dtype and device
    if reverse:
        return concat_p(y[(Ellipsis, slice(s, None)) + tail], zeros, axis=axis)
    return concat_p(zeros, y[(Ellipsis, slice(None, -s)) + tail], axis=axis)


def _linear_scan(a: Any, b: Any, axis: int, reverse: bool) -> Any:
    """``y`` with ``y_k = b_k + a_k y_{k+1}`` (reverse) or ``b_k + a_k y_{k-1}`` (forward),
    zero outside: log2(n) doubling steps of products and sums -- exact with zeros, no
    data-dependent branch (lazy libraries), and differentiable again."""
    n = b.shape[axis]
    s = 1
    while s < n:
        b = b + a * _shift(b, s, axis, reverse)
        if 2 * s < n:
            a = a * _shift(a, s, axis, reverse)
        s *= 2
    return b


def _exclusive(out: Any, axis: int) -> Any:
    """``prod_{j<k} x_j`` from ``out = cumprod(x)``: 1, then out without its last entry."""
    raw = _raw(out)
    tail = (slice(None),) * (-axis - 1)
    ones = namespace_of(raw).ones_like(raw[(Ellipsis, slice(0, 1)) + tail])
    if raw.shape[axis] == 1:
        return ones
    return concat_p(ones, out[(Ellipsis, slice(None, -1)) + tail], axis=axis)


def _cumprod_vjp_scan(g, out, x, axis):
    # ct_k = prod_{j<k} x_j * S_k with S_k = sum_{i>=k} g_i prod_{k<j<=i} x_j, that is
    # S_k = g_k + x_{k+1} S_{k+1}: a reverse linear recurrence (no division by x).
    return _exclusive(out, axis) * _linear_scan(_shift(x, 1, axis, True), g, axis, True)


def _cumprod_jvp_scan(t, out, x, axis):
    # d out_i = sum_{k<=i} t_k prod_{j<k} x_j prod_{k<j<=i} x_j = U_i with
    # U_i = t_i prod_{j<i} x_j + x_i U_{i-1}: a forward linear recurrence.
    return _linear_scan(x, t * _exclusive(out, axis), axis, False)


def _cumprod_vjp(g, out, x, axis):
    if _no_zeros(x):
        return _rev_cumsum(g * out, axis) / x
    # zeros (or not known without computing, as on Dask): the exact division-free scan
    return _cumprod_vjp_scan(g, out, x, axis)


cumprod_p = primitive(
    "cumprod", _cumprod_impl, lambda x, axis: np.cumprod(x, axis=axis),
    vjp=(_cumprod_vjp,),
    jvp=None,
)


def _cumprod_jvp(t, out, x, axis):
    if _no_zeros(x):
        return out * cumsum_p(t / x, axis=axis)
    return _cumprod_jvp_scan(t, out, x, axis)


cumprod_p.jvp = (_cumprod_jvp,)


def cumprod(x: Any, axis: Any = None) -> Any:
    """Cumulative product along ``axis``; gradients are exact even with zeros."""
    x, ax = _flat_axis(x, axis, "cumprod")
    return cumprod_p(x, axis=ax)


# --- prod ---------------------------------------------------------------------------------------

def _prod_impl(xp, x, axes, keepdims):
    return xp.prod(x, axis=axes, keepdims=keepdims)


def _prod_others(x, axes):
    """For each element, the product of the *other* elements of its reduction group."""
    if _no_zeros(x):  # (unknown on Dask: the exact path, which needs no look at x)
        return prod_p(x, axes=axes, keepdims=True) / x
    # Flatten the reduced axes to the last one, then multiply exclusive prefix and suffix products.
    xs = tuple(x.shape)
    nd = len(xs)
    pos = [a + nd for a in axes]
    kept = [i for i in range(nd) if i not in pos]
    perm = tuple(kept + pos)  # the reduced axes moved to the end
    moved = transpose_p(x, axes=perm)
    flat = reshape(moved, shape=tuple(xs[i] for i in kept) + (-1,))
    ones = flat[..., :1] * 0.0 + 1.0
    left = cumprod_p(concat_p(ones, flat[..., :-1], axis=-1), axis=-1)
    rev = flat[..., ::-1]
    right = cumprod_p(concat_p(ones, rev[..., :-1], axis=-1), axis=-1)[..., ::-1]
    others = reshape(left * right, shape=tuple(moved.shape))
    return transpose_p(others, axes=_inverse(perm))


prod_p = primitive(
    "reduce_prod", _prod_impl,
    lambda x, axes, keepdims: np.prod(x, axis=axes, keepdims=keepdims),
    vjp=(lambda g, out, x, axes, keepdims:
         expand_reduced(g, x, out, axes, keepdims) * _prod_others(x, axes),),
    jvp=(lambda t, out, x, axes, keepdims:
         reduce_sum(t * _prod_others(x, axes), axes=axes, keepdims=keepdims),),
)


def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Product over ``axis``; the gradient is exact when inputs contain zeros."""
    return prod_p(x, axes=normalize_axes(axis, _ndim(x), "prod"), keepdims=bool(keepdims))


# --- statistics ---------------------------------------------------------------------------------

def var(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Any:
    """Variance over ``axis`` (``ddof`` as in NumPy)."""
    axes = normalize_axes(axis, _ndim(x), "var")
    centred = x - mean(x, axis=axes, keepdims=True)
    n = _count(tuple(getattr(x, "shape", ())), axes) - ddof
    if is_complex(centred):  # NumPy: the mean of |x - mean|^2, a real number
        return reduce_sum(real(centred * conj(centred)), axes=axes, keepdims=bool(keepdims)) / n
    return reduce_sum(centred * centred, axes=axes, keepdims=bool(keepdims)) / n


def std(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Any:
    """Standard deviation over ``axis`` (``ddof`` as in NumPy)."""
    v = var(x, axis=axis, keepdims=keepdims, ddof=ddof)
    if ddof == 0 and _count(tuple(getattr(x, "shape", ())), normalize_axes(axis, _ndim(x),
                                                                            "std")) == 1:
        return v  # one value per group: identically 0, and so is its derivative (not sqrt'(0))
    return sqrt(v)


def _lse_np(x, axes, keepdims):
    """NumPy's logsumexp: one temporary, updated in place."""
    x = np.asarray(x)
    if not x.size or x.dtype.kind not in "fc":
        return _lse_impl(np, x, axes, keepdims)
    m = np.maximum.reduce(x, axis=axes, keepdims=True)
    if not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0.0).astype(x.dtype)
    t = np.subtract(x, m)
    if type(t) is not np.ndarray:  # (a 0-d input)
        return _lse_impl(np, x, axes, keepdims)
    np.exp(t, out=t)
    out = np.log(np.add.reduce(t, axis=axes, keepdims=True))
    out += m
    if not keepdims:
        out = out.reshape(tuple(s for i, s in enumerate(out.shape) if i - out.ndim not in axes))
    return out


def _lse_impl(xp, x, axes, keepdims):
    if xp is np:
        x = np.asarray(x)
    if x.size:
        m = xp.max(x, axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    else:
        m = xp.zeros(_kept_shape(tuple(x.shape), axes), dtype=x.dtype)
    # The shift is a constant: logsumexp does not depend on it (the rules never see it).
    out = xp.log(xp.sum(xp.exp(x - m), axis=axes, keepdims=True)) + m
    if not keepdims:
        out = xp.reshape(out, tuple(s for i, s in enumerate(out.shape)
                                    if i - len(out.shape) not in axes))
    return out


def _lse_weights(x, out, axes, keepdims):
    """``exp(x - logsumexp(x))`` (the softmax over ``axes``), for the rules."""
    o = out if keepdims else reshape(out, shape=_kept_shape(tuple(x.shape), axes))
    return exp(x - o)


def _lse_vjp(g, out, x, axes, keepdims):
    if type(x) is np.ndarray and _is_np(g) and _is_np(out) and x.dtype.kind in "fc":
        # NumPy values: the softmax computed in one buffer, then scaled in place
        kept = _kept_shape(x.shape, axes)
        w = np.subtract(x, out if keepdims else out.reshape(kept))
        gk = g if keepdims else g.reshape(g.shape[:g.ndim - out.ndim] + kept)
        if type(w) is not np.ndarray:  # (a 0-d input gives a NumPy scalar)
            return gk * np.exp(w)
        np.exp(w, out=w)
        if gk.dtype == w.dtype and gk.ndim <= w.ndim:
            return np.multiply(w, gk, out=w)
        return gk * w
    return expand_reduced(g, x, out, axes, keepdims) * _lse_weights(x, out, axes, keepdims)


# One primitive instead of max, shift, exp, sum, log: the rules read x and the result.
reduce_logsumexp = primitive(
    "reduce_logsumexp", _lse_impl, _lse_np,
    vjp=(_lse_vjp,),
    jvp=(lambda t, out, x, axes, keepdims:
         reduce_sum(t * _lse_weights(x, out, axes, keepdims), axes=axes, keepdims=keepdims),),
)


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(x)))`` over ``axis`` without overflow (shifted by the maximum).

    >>> import chainrule.numpy as cnp
    >>> float(cnp.logsumexp([1000.0, 1000.0]))
    1000.6931471805599
    """
    if isinstance(x, (list, tuple)):  # nested sequences: an array first, so axes are right
        x = np.asarray(x)
    axes = normalize_axes(axis, _ndim(x), "logsumexp")
    return reduce_logsumexp(x, axes=axes, keepdims=bool(keepdims))


def count_nonzero(x: Any, axis: Any = None) -> Any:
    """Number of non-zero entries (not differentiable)."""
    raw = _raw(x)
    if type(raw) in NUMPY_TYPES or isinstance(raw, np.ndarray | np.generic | list | tuple):
        return np.count_nonzero(np.asarray(raw), axis=axis)
    return namespace_of(raw).count_nonzero(raw, axis=axis)  # stays in the array's library


_ = where
