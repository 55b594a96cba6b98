"""Array creation and other helpers that pass data through without derivatives.

``zeros_like`` and friends look through tensors to their arrays and keep the
array's library; ``stop_gradient`` and ``astype`` are the two that return
tensors (``astype`` is differentiable between floating dtypes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import dtype_in, namespace_of
from ..core.primitive import Box, primitive
from .elementwise import is_complex, real

__all__ = [
    "array", "asarray", "zeros", "ones", "full", "empty", "eye", "identity", "arange",
    "linspace", "zeros_like", "ones_like", "full_like", "empty_like", "argmax", "argmin",
    "argsort", "allclose", "isclose", "shape", "ndim", "size", "stop_gradient", "astype",
    "float32", "float64", "int32", "int64", "bool_", "result_type", "copy", "nonzero",
    "array_equal", "unique", "searchsorted", "floor_divide",
]

float32 = np.float32
float64 = np.float64
int32 = np.int32
int64 = np.int64
bool_ = np.bool_


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _xp(x: Any) -> Any:
    return namespace_of(x)


def array(obj: Any, dtype: Any = None, copy: bool = True) -> Any:
    """A plain array of ``obj`` (tensors are looked through; their library is kept)."""
    raw = _raw(obj)
    if isinstance(raw, (np.ndarray, np.generic, list, tuple, float, int, bool, complex)):
        return np.array(raw, dtype=dtype, copy=copy)
    xp = _xp(raw)
    return xp.asarray(raw, dtype=dtype, copy=copy)


def asarray(obj: Any, dtype: Any = None) -> Any:
    """Like ``numpy.asarray``; tensors give their array, other libraries stay as they are."""
    raw = _raw(obj)
    if isinstance(raw, (np.ndarray, np.generic, list, tuple, float, int, bool, complex)):
        return np.asarray(raw, dtype=dtype)
    return _xp(raw).asarray(raw, dtype=dtype)


zeros = np.zeros
ones = np.ones
full = np.full
empty = np.empty
eye = np.eye
identity = np.identity
arange = np.arange
linspace = np.linspace
result_type = np.result_type


def _like(name: str):
    def fn(x: Any, *args: Any, **kwargs: Any) -> Any:
        raw = _raw(x)
        if isinstance(raw, (list, tuple, float, int, bool)):
            raw = np.asarray(raw)
        return getattr(_xp(raw), name)(raw, *args, **kwargs)

    fn.__name__ = name
    fn.__doc__ = f"``{name}`` of the value (a plain array of the input's library)."
    return fn


zeros_like = _like("zeros_like")
ones_like = _like("ones_like")
full_like = _like("full_like")
empty_like = _like("empty_like")
argmax = _like("argmax")
argmin = _like("argmin")
argsort = _like("argsort")
nonzero = _like("nonzero")
unique = _like("unique")


def searchsorted(a: Any, v: Any, **kwargs: Any) -> Any:
    return np.searchsorted(np.asarray(_raw(a)), np.asarray(_raw(v)), **kwargs)


def floor_divide(x: Any, y: Any) -> Any:
    return np.floor_divide(_raw(x), _raw(y))


def allclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8,
             equal_nan: bool = False) -> bool:
    return bool(np.allclose(np.asarray(_raw(a)), np.asarray(_raw(b)), rtol, atol, equal_nan))


def isclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> Any:
    return np.isclose(np.asarray(_raw(a)), np.asarray(_raw(b)), rtol, atol, equal_nan)


def array_equal(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(_raw(a)), np.asarray(_raw(b))))


def shape(x: Any) -> tuple:
    s = getattr(x, "shape", None)
    return tuple(s) if s is not None else np.shape(x)


def ndim(x: Any) -> int:
    return len(shape(x))


def size(x: Any) -> int:
    return int(np.prod(shape(x)))


def stop_gradient(x: Any) -> Any:
    """The value of ``x`` with no derivative through it, at every level."""
    if isinstance(x, Box):
        from ..core.primitive import box_class

        return box_class[0](_raw(x))
    return x


def copy(x: Any) -> Any:
    """A copy (differentiable: the derivative passes straight through)."""
    return x * 1


def _astype_impl(xp, x, dtype):
    if xp is np or not hasattr(xp, "astype"):
        return x.astype(dtype)
    return xp.astype(x, dtype_in(xp, dtype))  # NumPy dtypes spelt as the library spells them


def _cast_like(g: Any, x: Any) -> Any:
    if is_complex(g) and not is_complex(x):  # complex -> real keeps the real part, as NumPy
        g = real(g)
    return astype_p(g, dtype=x.dtype)


astype_p = primitive(
    "astype", _astype_impl, lambda x, dtype: np.asarray(x).astype(dtype),
    vjp=(lambda g, out, x, dtype: _cast_like(g, x),),
    jvp=(lambda t, out, x, dtype: _cast_like(t, out),),
)


def astype(x: Any, dtype: Any) -> Any:
    """Convert to ``dtype``; differentiable between floating dtypes, the gradient cast back."""
    if not isinstance(x, Box):
        raw = x if hasattr(x, "dtype") else np.asarray(x)
        return _astype_impl(_xp(raw), raw, dtype)
    if not np.issubdtype(np.dtype(dtype), np.inexact):
        return _astype_impl(_xp(_raw(x)), _raw(x), dtype)
    return astype_p(x, dtype=dtype)
