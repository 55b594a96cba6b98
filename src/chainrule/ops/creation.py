"""Array creation and other helpers that pass data through without derivatives.

``zeros_like`` and friends look through tensors to their arrays and keep the
array's library; ``stop_gradient`` and ``astype`` are the two that return
tensors (``astype`` is differentiable between floating dtypes).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..backend import NUMPY_TYPES, dtype_in, namespace_of
from ..core.primitive import Box, holds_box, primitive, sequence_to_array
from . import _broadcast as _bc
from .elementwise import is_complex, real
from .indexing import concat_p

__all__ = [
    "array", "asarray", "zeros", "ones", "full", "empty", "eye", "identity", "arange",
    "linspace", "zeros_like", "ones_like", "full_like", "empty_like", "argmax", "argmin",
    "argsort", "allclose", "isclose", "shape", "ndim", "size", "stop_gradient", "astype",
    "float32", "float64", "int32", "int64", "bool_", "result_type", "copy", "nonzero",
    "array_equal", "unique", "searchsorted", "all", "any",
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


def _raws(obj: Any, out: list) -> list:
    if type(obj) in (list, tuple):
        for e in obj:
            _raws(e, out)
    else:
        raw = _raw(obj)
        if not isinstance(raw, np.ndarray | np.generic) and type(raw) not in NUMPY_TYPES:
            out.append(raw)
    return out


def library_of(*values: Any) -> Any:
    """The array namespace of the values' arrays (through tensors and nested lists);
    NumPy when they are all NumPy arrays or Python numbers."""
    return namespace_of(*_raws(values, []))


def to_library(value: Any, xp: Any) -> Any:
    """A NumPy array or Python number as an array of ``xp`` (tensors and xp's arrays stay)."""
    if xp is np or isinstance(value, Box) or getattr(xp, "_accepts_numpy", False):
        return value  # (Dask takes NumPy operands as they are)
    if isinstance(value, np.ndarray | np.generic | float | int | bool | complex | list | tuple):
        return xp.asarray(np.asarray(value))
    return value


def numpy_dtype(raw: Any) -> np.dtype:
    """The NumPy dtype of an array of any library (array-API dtypes map by name)."""
    try:
        return np.dtype(raw.dtype)
    except TypeError:
        return np.dtype(str(raw.dtype).rsplit(".", 1)[-1])  # 'array_api_strict.float64


def _foreign(obj: Any) -> bool:
    """True when ``obj`` holds arrays of a library other than NumPy (through lists)."""
    return library_of(obj) is not np


def _traced(obj: Any) -> bool:
    """True when ``obj`` is a box or a (nested) list or tuple holding one."""
    return isinstance(obj, Box) or (type(obj) in (list, tuple) and holds_box(obj))


def _stack_nested(obj: Any, xp: Any = np) -> Any:
    """A (nested) list or tuple holding boxes, stacked into one differentiable array."""
    if type(obj) not in (list, tuple):
        if isinstance(obj, Box) or not isinstance(_raw(obj), np.ndarray | np.generic | float
                                                  | int | bool | complex):
            return obj
        return to_library(np.asarray(obj), xp)
    parts = [_stack_nested(e, xp) for e in obj]
    shapes = {tuple(p.shape) for p in parts}
    if len(shapes) > 1:
        raise ValueError(
            "array: setting an array element with a sequence; the requested array has an "
            f"inhomogeneous shape (its elements have shapes {sorted(shapes)})"
        )
    if not parts:
        return to_library(np.asarray(obj), xp)
    # stacked along a new first axis (concatenation of the parts with a unit axis in front)
    return concat_p(*[_bc.reshape(part, shape=(1,) + tuple(part.shape)) for part in parts],
                    axis=-len(parts[0].shape) - 1)


def _traced_array(obj: Any, dtype: Any, ndmin: int = 0) -> Any:
    out = _stack_nested(obj, library_of(obj))
    if dtype is not None:
        out = astype(out, dtype)
    if ndmin > out.ndim:
        out = _bc.reshape(out, shape=(1,) * (ndmin - out.ndim) + tuple(out.shape))
    return out


def array(obj: Any, dtype: Any = None, *, copy: bool = True, order: Any = "K",
          subok: bool = False, ndmin: int = 0, like: Any = None) -> Any:
    """An array of ``obj``, like ``numpy.array``.

    Values being differentiated stay differentiable: a tensor, or a (nested)
    list of tensors (stacked), gives a tensor.  Anything else gives a plain
    array of the value's library.

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> cr.grad(lambda x: cnp.sum(cnp.array([x, 2 * x])))(1.0)
    array(3.)
    """
    if _traced(obj) or (type(obj) in (list, tuple) and _foreign(obj)):
        return _traced_array(obj, dtype, ndmin)
    if isinstance(obj, (np.ndarray, np.generic, list, tuple, float, int, bool, complex)):
        return np.array(obj, dtype=dtype, copy=copy, ndmin=ndmin)
    return _xp(obj).asarray(obj, dtype=dtype, copy=copy)


def asarray(a: Any, dtype: Any = None, order: Any = None, *, device: Any = None,
            copy: Any = None, like: Any = None) -> Any:
    """Like ``numpy.asarray``; tensors (and lists holding them) stay differentiable.

    >>> import chainrule.numpy as cnp
    >>> cnp.asarray([1.0, 2.0])
    array([1., 2.])
    """
    if _traced(a) or (type(a) in (list, tuple) and _foreign(a)):
        return _traced_array(a, dtype)
    if isinstance(a, (np.ndarray, np.generic, list, tuple, float, int, bool, complex)):
        return np.asarray(a, dtype=dtype, copy=copy)
    return _xp(a).asarray(a, dtype=dtype, copy=copy)


def full(shape: Any, fill_value: Any, dtype: Any = None, order: str = "C", *,
         device: Any = None, like: Any = None) -> Any:
    """An array of ``shape`` filled with ``fill_value``; differentiable in ``fill_value``.

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> cr.grad(lambda v: cnp.sum(cnp.full((3,), v)))(2.0)
    array(3.)
    """
    if not (_traced(fill_value) or _foreign(fill_value)):
        return np.full(shape, _raw(fill_value), dtype=dtype, order=order)  # type: ignore[call-overload]  # NumPy checks order
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    v = asarray(fill_value, dtype=dtype)
    try:
        np.broadcast_shapes(tuple(v.shape), shape)
    except ValueError:
        raise ValueError(
            f"full: could not broadcast the fill value of shape {tuple(v.shape)} "
            f"to shape {shape}"
        ) from None
    if v.ndim > len(shape):
        raise ValueError(
            f"full: could not broadcast the fill value of shape {tuple(v.shape)} "
            f"to shape {shape}"
        )
    return _bc.broadcast_to(v, shape=shape)


def full_like(a: Any, fill_value: Any, dtype: Any = None, order: str = "K",
              subok: bool = True, shape: Any = None, *, device: Any = None) -> Any:
    """An array like ``a`` filled with ``fill_value``; differentiable in ``fill_value``.

    >>> import chainrule.numpy as cnp
    >>> cnp.full_like([1.0, 2.0], 7.0)
    array([7., 7.])
    """
    raw = _raw(a)
    if isinstance(raw, (list, tuple, float, int, bool, complex)):
        raw = np.asarray(raw)
    if not (_traced(fill_value) or _foreign(fill_value)):
        kwargs = {} if shape is None else {"shape": shape}
        return _xp(raw).full_like(raw, _raw(fill_value), dtype=dtype, **kwargs)
    target = tuple(raw.shape) if shape is None else shape
    if dtype is None and isinstance(raw, np.ndarray | np.generic):
        dtype = raw.dtype  # NumPy's rule: the result has a's dtype
    return full(target, fill_value, dtype=dtype)


def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True,
             retstep: bool = False, dtype: Any = None, axis: int = 0, *,
             device: Any = None) -> Any:
    """``num`` evenly spaced samples from ``start`` to ``stop``; differentiable in both.

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> cr.grad(lambda b: cnp.sum(cnp.linspace(0.0, b, 5)))(1.0)
    array(2.5)
    """
    if not (_traced(start) or _traced(stop) or _foreign(start) or _foreign(stop)):
        return np.linspace(_raw(start), _raw(stop), num, endpoint=endpoint, retstep=retstep,  # type: ignore[call-overload]  # (stubs: retstep a literal)
                           dtype=dtype, axis=axis)
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"linspace: number of samples, {num}, must be non-negative")
    start, stop = asarray(start), asarray(stop)
    div = (num - 1) if endpoint else num
    frac = np.linspace(0.0, 1.0, num, endpoint=endpoint)  # exact 0 and 1 at the ends
    bshape = np.broadcast_shapes(tuple(start.shape), tuple(stop.shape))
    frac = to_library(frac.reshape((num,) + (1,) * len(bshape)), library_of(start, stop))
    out = start * (1.0 - frac) + stop * frac
    if axis != 0:  # the samples' axis moved from the front to ``axis``
        nd = out.ndim
        ax = axis % nd
        out = _bc.transpose_p(out, axes=tuple(range(1, ax + 1)) + (0,) + tuple(range(ax + 1, nd)))
    if dtype is not None:
        out = astype(out, dtype)
    if retstep:
        step = (stop - start) / div if div > 0 else (stop - start) * np.nan
        return out, step
    return out


zeros = np.zeros
ones = np.ones
empty = np.empty
eye = np.eye
identity = np.identity
arange = np.arange
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
empty_like = _like("empty_like")
argmax = _like("argmax")
argmin = _like("argmin")
argsort = _like("argsort")
nonzero = _like("nonzero")
unique = _like("unique")


def searchsorted(a: Any, v: Any, **kwargs: Any) -> Any:
    return np.searchsorted(np.asarray(_raw(a)), np.asarray(_raw(v)), **kwargs)


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
        staged = getattr(_raw(x), "_as_box", None)
        if staged is not None:  # traced (vmap, a program): no numbers, stop it where it is
            return staged()
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


def _truth(name: str):
    def fn(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, *,
           where: Any = True) -> Any:
        if out is not None:
            raise TypeError(f"{name}: out= is not supported (chainrule arrays are not "
                            "written in place)")
        raw = _raw(asarray(a)) if type(a) in (list, tuple) else _raw(a)
        xp = np if isinstance(raw, (float, int, bool, complex)) else _xp(raw)
        if xp is np:
            return getattr(np, name)(raw, axis=axis, keepdims=keepdims, where=_raw(where))
        return getattr(xp, name)(raw, axis=axis, keepdims=keepdims)

    fn.__name__ = name
    fn.__doc__ = (f"``numpy.{name}`` of the value: a plain boolean array (no derivative)."
                  f"\n\n    >>> import chainrule.numpy as cnp\n    >>> bool(cnp.{name}([1.0, 0.0]))"
                  f"\n    {name == 'any'}\n    ")
    return fn


all = _truth("all")  # noqa: A001  (NumPy's name)
any = _truth("any")  # noqa: A001

# Lists and tuples of tensors reaching a primitive are stacked by ``asarray``.
sequence_to_array[0] = asarray
