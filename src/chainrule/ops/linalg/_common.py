"""Shared pieces of the linear-algebra family: helpers, axis permutations, tuple outputs."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from ...backend import namespace_of
from ...core.primitive import Box, Primitive, primitive
from .._broadcast import reshape, sum_to, transpose_p
from ..elementwise import (
    conj,
    is_complex,
)
from ..reductions import reduce_sum

LinAlgError = np.linalg.LinAlgError  # a ValueError subclass, as in NumPy

SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
QRResult = namedtuple("QRResult", ["Q", "R"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])


# --- small helpers ------------------------------------------------------------------------

def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _arr(x: Any) -> Any:
    """Tensors and arrays pass through; lists and Python scalars become NumPy arrays."""
    if isinstance(x, Box) or (hasattr(x, "shape") and hasattr(x, "dtype")):
        return x
    return np.asarray(x)


def _nd(x: Any) -> int:
    return len(x.shape)


def _is_boxed(*xs: Any) -> bool:
    return any(isinstance(x, Box) for x in xs)


def _const(values: np.ndarray, like: Any) -> Any:
    """A constant (no derivative) in the library and dtype of ``like``."""
    raw = _raw(like)
    if isinstance(raw, (np.ndarray, np.generic)):
        return values.astype(raw.dtype, copy=False)
    xp = namespace_of(raw)
    return xp.asarray(values, dtype=raw.dtype)


def _eye(n: int, like: Any, m: int | None = None) -> Any:
    return _const(np.eye(n, n if m is None else m), like)


def _tril_mask(n: int, like: Any, k: int = 0) -> Any:
    return _const(np.tri(n, n, k), like)


def _triu_mask(n: int, like: Any, k: int = 0) -> Any:
    return _const(1.0 - np.tri(n, n, k - 1), like)


def _fmask(cond: Any, like: Any) -> Any:
    """A boolean array (no derivative) as 0/1 in ``like``'s dtype."""
    raw = _raw(like)
    if isinstance(cond, (np.ndarray, np.generic)):
        return np.asarray(cond).astype(raw.dtype)
    xp = namespace_of(cond)
    return xp.astype(cond, raw.dtype)


def _expand_last(x: Any, n: int = 1) -> Any:
    return reshape(x, shape=tuple(x.shape) + (1,) * n)


def _as_row(x: Any) -> Any:
    """``(..., k) -> (..., 1, k)``."""
    s = tuple(x.shape)
    return reshape(x, shape=s[:-1] + (1, s[-1]))


def _diag_embed(x: Any, like: Any) -> Any:
    """``(..., n) -> (..., n, n)`` with ``x`` on the diagonal."""
    return _expand_last(x) * _eye(x.shape[-1], like)


def _diag_part(x: Any) -> Any:
    """``(..., n, n) -> (..., n)``: the diagonal."""
    return reduce_sum(x * _eye(x.shape[-1], x), axes=(-1,), keepdims=False)


def _reduce_to(x: Any, nb: int, shape: tuple) -> Any:
    """Sum ``x`` (with ``nb`` leading batch axes) down to ``batch + shape`` (right-aligned)."""
    xs = tuple(x.shape)
    shape = tuple(shape)
    target = xs[:nb] + (1,) * (len(xs) - nb - len(shape)) + shape
    if target != xs:
        x = sum_to(x, shape=target)
    final = xs[:nb] + shape
    if final != target:
        x = reshape(x, shape=final)
    return x


def _check_square(a: Any, op: str) -> None:
    s = tuple(a.shape)
    if len(s) < 2 or s[-1] != s[-2]:
        raise LinAlgError(
            f"{op}: expected a square matrix or a stack of them (shape (..., n, n)), "
            f"got shape {s}"
        )


def _check_matrix(a: Any, op: str) -> None:
    if _nd(a) < 2:
        raise LinAlgError(
            f"{op}: expected a matrix or a stack of them (at least 2 dimensions), "
            f"got shape {tuple(a.shape)}"
        )


# --- axis permutations (private; ops/shape.py owns the public ones) ----------------------

def _mT_impl(xp, x):
    fn = getattr(xp, "matrix_transpose", None)
    return fn(x) if fn is not None else xp.linalg.matrix_transpose(x)


_mT: Primitive = primitive(
    "_linalg_mT", _mT_impl, lambda x: np.swapaxes(x, -1, -2),
    vjp=(lambda g, out, x: _mT(g),),
    jvp=(lambda t, out, x: _mT(t),),
)


def _mH(x: Any) -> Any:
    """The conjugate transpose of the last two axes (the transpose for real data)."""
    return conj(_mT(x)) if is_complex(x) else _mT(x)


def _conj(x: Any) -> Any:
    return conj(x) if x is not None and is_complex(x) else x


def _conjugate_convention(rule: Any) -> Any:
    """A reverse rule written for ``<X, Y> = Re tr(X^H Y)`` (the formulas with ``^H`` of the
    literature), turned into chainrule's ``Re(sum(G * T))``: conjugate in and out.  Real
    inputs pass straight through."""
    def wrapped(g, out, a, **params):
        if not is_complex(a):
            return rule(g, out, a, **params)
        g = tuple(_conj(x) for x in g) if type(g) is tuple else _conj(g)
        return _conj(rule(g, out, a, **params))

    return wrapped


def _permute_axes(x: Any, perm: list | tuple) -> Any:
    perm = tuple(perm)
    if perm == tuple(range(len(perm))):
        return x
    return transpose_p(x, axes=perm)  # permutes the trailing axes; batch axes stay in front


# --- tuple outputs --------------------------------------------------------------------------

def _tuple_get_vjp(g, out, x, index):
    n = len(_raw(x))
    return tuple(g if i == index else None for i in range(n))


def _tuple_get_jvp(t, out, x, index):
    if isinstance(t, Box):
        return tuple_get(t, index=index)
    return t[index]


class _TupleGet(Primitive):
    """The engine hands raw non-array values to the array-library dispatch, which would turn
    a tuple into an array; a raw tuple is indexed here directly instead."""

    __slots__ = ()

    def __call__(self, x: Any, index: int) -> Any:
        if not isinstance(x, Box):
            return x[index]
        return Primitive.__call__(self, x, index=index)


#: Entry ``index`` of a primitive's tuple output; its cotangent is a tuple with ``None`` elsewhere.
tuple_get = _TupleGet(
    "tuple_get", lambda xp, x, index: x[index], lambda x, index: x[index],
    vjp=(_tuple_get_vjp,), jvp=(_tuple_get_jvp,),
)


def _entries(out: Any, n: int) -> list:
    return [tuple_get(out, index=i) for i in range(n)]
