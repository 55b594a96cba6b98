"""Norms and the rest of ``numpy.linalg``: ``norm``, ``pinv``, ``matrix_power``, ``lstsq``,
``multi_dot``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import namespace_of
from ...core.primitive import Box, primitive
from .._broadcast import reshape
from ..elementwise import (
    absolute,
    conj,
    divide,
    is_complex,
    not_equal,
    power,
    real,
    where,
)
from ..reductions import amax, amin, expand_reduced, reduce_sum
from ._common import (
    LinAlgError,
    _arr,
    _check_matrix,
    _check_square,
    _const,
    _expand_last,
    _eye,
    _fmask,
    _is_boxed,
    _mH,
    _mT,
    _nd,
    _permute_axes,
    _raw,
)
from .decompositions import svd
from .products import matmul, matmul_p
from .solve import inv

# --- norms ------------------------------------------------------------------------------------

def _norm2_np(x, axes, keepdims):
    if x.dtype.kind == "c":
        x = np.abs(x)
    if x.ndim == 1 and not keepdims:
        return np.sqrt(np.dot(x, x))
    return np.sqrt(np.add.reduce(x * x, axis=axes, keepdims=keepdims))


def _norm2_impl(xp, x, axes, keepdims):
    if "complex" in str(x.dtype):
        x = xp.abs(x)
    return xp.sqrt(xp.sum(x * x, axis=axes, keepdims=keepdims))


def _safe(out: Any) -> Any:
    """``out`` with zeros replaced by ones (the 2-norm's gradient at 0 is defined as 0)."""
    return out + _fmask(out == 0, out)


def _norm2_vjp(g, out, x, axes, keepdims):
    if is_complex(x):  # d||x|| = Re(sum(conj(x) dx)) / ||x||
        return expand_reduced(real(g) / _safe(out), x, out, axes, keepdims) * conj(x)
    return expand_reduced(g / _safe(out), x, out, axes, keepdims) * x


def _norm2_jvp(t, out, x, axes, keepdims):
    if is_complex(x):
        return real(reduce_sum(t * conj(x), axes=axes, keepdims=keepdims)) / _safe(out)
    return reduce_sum(t * x, axes=axes, keepdims=keepdims) / _safe(out)


norm2_p = primitive(
    "norm2", _norm2_impl, _norm2_np, vjp=(_norm2_vjp,), jvp=(_norm2_jvp,),
)


def _norm_axes(axis: Any, nd: int) -> tuple:
    axes = axis if isinstance(axis, tuple) else tuple(axis) if isinstance(axis, list) else (axis,)
    out = []
    for ax in axes:
        try:
            ax = int(ax)
        except TypeError:
            raise TypeError(f"norm: axis must be an int or a tuple of ints, got {axis!r}") from None
        if not -nd <= ax < nd:
            raise ValueError(f"norm: axis {ax} is out of bounds for an array of dimension {nd}")
        out.append(ax - nd if ax >= 0 else ax)
    if len(set(out)) != len(out):
        raise ValueError(f"norm: duplicate axes in {axis!r}")
    return tuple(out)


def _vector_norm(x: Any, ord: Any, axes: tuple, keepdims: bool) -> Any:
    if ord is None or ord == 2:
        return norm2_p(x, axes=tuple(sorted(axes)), keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
    if ord == np.inf:
        return amax(absolute(x), axis=axes, keepdims=keepdims)
    if ord == -np.inf:
        return amin(absolute(x), axis=axes, keepdims=keepdims)
    if ord == 0:  # the number of non-zeros: piecewise constant, no derivative
        raw = _raw(x)
        nz = not_equal(raw, 0)
        return reduce_sum(_fmask(nz, raw), axes=tuple(sorted(axes)), keepdims=keepdims)
    if ord == 1:
        return reduce_sum(absolute(x), axes=tuple(sorted(axes)), keepdims=keepdims)
    p = float(ord)
    s = reduce_sum(power(absolute(x), p), axes=tuple(sorted(axes)), keepdims=keepdims)
    return power(s, 1.0 / p)


def _matrix_norm(x: Any, ord: Any, row: int, col: int, keepdims: bool) -> Any:
    nd = _nd(x)
    axes = tuple(sorted((row, col)))
    if ord is None or ord == "fro":
        return norm2_p(x, axes=axes, keepdims=keepdims)
    if ord in (1, -1, np.inf, -np.inf):
        summed, picked = (row, col) if ord in (1, -1) else (col, row)
        pick = amax if ord in (1, np.inf) else amin
        r = pick(reduce_sum(absolute(x), axes=(summed,), keepdims=True), axis=picked,
                 keepdims=True)
    elif ord in ("nuc", 2, -2):
        others = [i for i in range(nd) if i - nd not in (row, col)]
        xm = _permute_axes(x, others + [row + nd, col + nd])
        s = svd(xm, compute_uv=False)
        if ord == "nuc":
            r = reduce_sum(s, axes=(-1,), keepdims=False)
        else:
            r = (amax if ord == 2 else amin)(s, axis=-1)
        shape = list(x.shape)
        shape[row] = shape[col] = 1
        r = reshape(r, shape=tuple(shape))
    else:
        raise ValueError(f"norm: invalid norm order {ord!r} for matrices")
    if keepdims:
        return r
    return reshape(r, shape=tuple(d for i, d in enumerate(x.shape) if i - nd not in axes))


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """Vector or matrix norm with NumPy's ``ord``/``axis``/``keepdims`` rules.

    The default is the 2-norm of the flattened input; its gradient at the
    zero vector is defined as 0 (not NaN).

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> x = cr.tensor([3.0, 4.0], requires_grad=True)
    >>> y = cnp.linalg.norm(x); y.backward()
    >>> float(y), x.grad
    (5.0, array([0.6, 0.8]))
    """
    x = _arr(x)
    nd = _nd(x)
    keepdims = bool(keepdims)
    if axis is None:
        if ord is None:
            return norm2_p(x, axes=tuple(range(-nd, 0)), keepdims=keepdims)
        if nd == 1:
            axis = (-1,)
        elif nd == 2:
            axis = (-2, -1)
        else:
            raise ValueError(f"norm: ord={ord!r} needs axis for an array of shape "
                             f"{tuple(x.shape)} (1-D or 2-D without axis)")
    axes = _norm_axes(axis, nd)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes, keepdims)
    if len(axes) == 2:
        return _matrix_norm(x, ord, axes[0], axes[1], keepdims)
    raise ValueError(f"norm: axis must name 1 or 2 axes, got {axis!r}")


def vector_norm(x: Any, /, *, axis: Any = None, keepdims: bool = False, ord: Any = 2) -> Any:
    """Vector norm over ``axis`` (all axes, flattened, by default), like NumPy 2's."""
    x = _arr(x)
    nd = _nd(x)
    axes = tuple(range(-nd, 0)) if axis is None else _norm_axes(axis, nd)
    return _vector_norm(x, ord, axes, bool(keepdims))


def matrix_norm(x: Any, /, *, keepdims: bool = False, ord: Any = "fro") -> Any:
    """Matrix norm over the last two axes, like NumPy 2's."""
    x = _arr(x)
    _check_matrix(x, "matrix_norm")
    return _matrix_norm(x, ord, -2, -1, bool(keepdims))


# --- more: pinv, matrix_power, lstsq, multi_dot -------------------------------------------------

_NoValue = object()


def pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = _NoValue) -> Any:
    """Moore-Penrose pseudo-inverse via the SVD (``numpy.linalg.pinv``); differentiable
    where the rank does not change."""
    a = _arr(a)
    _check_matrix(a, "pinv")
    raw = _raw(a)
    if not isinstance(a, Box) and isinstance(a, np.ndarray):
        kw = {} if rtol is _NoValue else {"rtol": rtol}
        return np.linalg.pinv(a, rcond, hermitian, **kw)
    if rcond is None:
        if rtol is _NoValue:
            rcond = 1e-15
        elif rtol is None:
            eps = np.finfo(raw.dtype).eps if isinstance(raw, np.ndarray) else (
                np.finfo(np.float32).eps if "32" in str(raw.dtype) else np.finfo(float).eps)
            rcond = max(a.shape[-2:]) * eps  # type: ignore[union-attr]  # a Tensor
        else:
            rcond = rtol
    u, s, vh = svd(a, full_matrices=False)
    s_raw = _raw(s)
    xp = namespace_of(s_raw)
    rc = np.asarray(rcond)
    smax = xp.max(s_raw, axis=-1, keepdims=True)
    cutoff = smax * float(rc) if rc.ndim == 0 else smax * _const(rc[..., None], s_raw)
    keep = s_raw > cutoff
    s_inv = divide(_fmask(keep, s), where(keep, s, 1.0))
    return matmul_p(_mH(vh), _expand_last(s_inv) * _mH(u))


def matrix_power(a: Any, n: int) -> Any:
    """``a`` multiplied by itself ``n`` times (``n < 0`` inverts first; ``n = 0`` gives the
    identity), by repeated squaring."""
    a = _arr(a)
    _check_square(a, "matrix_power")
    if not isinstance(n, (int, np.integer)):
        raise TypeError(f"matrix_power: exponent must be an integer, got {n!r}")
    n = int(n)
    if n == 0:
        raw = _raw(a)
        eye = _eye(a.shape[-1], raw)
        if isinstance(raw, np.ndarray):
            return np.broadcast_to(eye, raw.shape).copy()
        return namespace_of(raw).broadcast_to(eye, raw.shape)
    if n < 0:
        a = inv(a)
        n = -n
    result, base = None, a
    while True:
        if n & 1:
            result = base if result is None else matmul_p(result, base)
        n >>= 1
        if not n:
            return result
        base = matmul_p(base, base)


def lstsq(a: Any, b: Any, rcond: Any = None) -> tuple:
    """Least-squares solution ``(x, residuals, rank, s)`` (``numpy.linalg.lstsq``); ``x`` and
    ``residuals`` are differentiable (through the pseudo-inverse)."""
    a, b = _arr(a), _arr(b)
    if not _is_boxed(a, b) and isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.linalg.lstsq(a, b, rcond=rcond)
    if _nd(a) != 2 or _nd(b) not in (1, 2) or a.shape[0] != b.shape[0]:
        raise LinAlgError(f"lstsq: a must be (m, n) and b (m,) or (m, k) with the same m, got "
                          f"shapes {tuple(a.shape)} and {tuple(b.shape)}")
    m, n = a.shape
    s = np.linalg.svd(np.asarray(_raw(a)), compute_uv=False)
    if rcond is None:
        rcond = np.finfo(s.dtype).eps * max(m, n)
    rank = int(np.sum(s > rcond * (s.max() if s.size else 0.0)))
    x = matmul(pinv(a, rcond=rcond), b)
    if rank == n and m > n:
        resid = matmul(a, x) - b
        sq = real(resid * conj(resid)) if is_complex(resid) else resid * resid
        resid = reduce_sum(sq, axes=(0,) if _nd(b) == 2 else (-1,), keepdims=False)
        if _nd(b) == 1:
            resid = reshape(resid, shape=(1,))
    else:
        resid = np.zeros((0,), dtype=s.dtype)
    return x, resid, rank, s


def multi_dot(arrays: Any) -> Any:
    """Product of a sequence of matrices, left to right (1-D ends act as vectors)."""
    arrays = list(arrays)
    if len(arrays) < 2:
        raise ValueError("multi_dot: expected at least two arrays")
    out = arrays[0]
    for x in arrays[1:]:
        out = matmul(out, x)
    return out


def matrix_transpose(x: Any, /) -> Any:
    """Swap the last two axes."""
    x = _arr(x)
    _check_matrix(x, "matrix_transpose")
    return _mT(x)
