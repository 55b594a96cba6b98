"""PyTorch's spellings of :class:`~chainrule.Tensor` methods, next to NumPy's.

A training loop written for PyTorch mostly runs unchanged on chainrule
tensors: ``x.size(0)``, ``x.view_as(y)``, ``x.unsqueeze(1)``,
``x.permute(0, 2, 1)``, ``x.sum(dim=1, keepdim=True)``,
``out.argmax(dim=1)``, ``x.eq(y)``, ``x.float()``.  Every method is a
chainrule operation, so it is differentiable where the operation is.
Comparisons and ``argmax`` give plain NumPy arrays (they carry no
derivative), so what follows them is NumPy's spelling: ``(pred ==
target).sum()``.

The keyword ``dim`` selects PyTorch's meaning where it differs from
NumPy's: ``x.max(dim=1)`` / ``x.min(dim=1)`` return ``(values, indices)``,
and ``x.var(dim=1)`` / ``x.std(dim=1)`` are unbiased unless
``unbiased=False`` (or ``correction=0``).  Without ``dim`` the methods keep
NumPy's meaning (``x.max(axis=1)`` is the maxima, ``x.var()`` divides by n).

>>> import numpy as np, chainrule as cr
>>> x = cr.tensor(np.arange(6.0).reshape(2, 3))
>>> x.size(0), x.size(), x.numel(), x.dim()
(2, (2, 3), 6, 2)
>>> x.sum(dim=1, keepdim=True).shape
(2, 1)
>>> values, indices = x.max(dim=1)
>>> indices
array([2, 2])
>>> bool(x.eq(x).all()), x.unsqueeze(0).shape, x.permute(1, 0).shape
(True, (1, 2, 3), (3, 2))
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from . import numpy as cnp
from .ops.nn import log_softmax, softmax
from .tensor import Tensor

__all__ = ["install", "MaxResult"]

#: What ``x.max(dim=...)`` / ``x.min(dim=...)`` return (PyTorch's ``(values, indices)``).
MaxResult = namedtuple("MaxResult", ["values", "indices"])

_NO_DIM = object()


def _axis(method: str, dim: Any, axis: Any) -> Any:
    if dim is not _NO_DIM and axis is not None:
        raise TypeError(f"Tensor.{method}: give dim or axis, not both")
    return axis if dim is _NO_DIM else dim


def _no_out(name: str, out: Any) -> None:
    if out is not None:
        raise TypeError(f"Tensor.{name}: out= is not supported (a tensor's result is a new "
                        "tensor); assign the result instead")


def _reduction(name: str) -> Any:
    fn = getattr(cnp, name)

    def method(self: Tensor, axis: Any = None, keepdims: bool = False, *, dim: Any = _NO_DIM,
               keepdim: bool | None = None, out: Any = None, **kwargs: Any) -> Any:
        _no_out(name, out)
        keep = keepdims if keepdim is None else keepdim
        kwargs = {k: v for k, v in kwargs.items() if v is not np._NoValue}  # (from np.sum(x))
        return fn(self, axis=_axis(name, dim, axis), keepdims=keep, **kwargs)

    method.__name__ = name
    method.__doc__ = (f"``chainrule.numpy.{name}(self, axis, keepdims)``; PyTorch's ``dim`` and "
                      "``keepdim`` are accepted too.")
    return method


def _extremum(name: str) -> Any:
    fn, arg = getattr(cnp, name), getattr(cnp, "arg" + name)

    def method(self: Tensor, axis: Any = None, keepdims: bool = False, *, dim: Any = _NO_DIM,
               keepdim: bool | None = None, out: Any = None, **kwargs: Any) -> Any:
        _no_out(name, out)
        keep = keepdims if keepdim is None else keepdim
        kwargs = {k: v for k, v in kwargs.items() if v is not np._NoValue}
        if kwargs:
            raise TypeError(f"Tensor.{name}: unexpected arguments {sorted(kwargs)}")
        if dim is _NO_DIM:
            return fn(self, axis=axis, keepdims=keep)
        _axis(name, dim, axis)
        return MaxResult(fn(self, axis=dim, keepdims=keep), arg(self, axis=dim, keepdims=keep))

    method.__name__ = name
    method.__doc__ = (f"NumPy's ``{name}(axis, keepdims)``; with ``dim=`` PyTorch's "
                      f"``(values, indices)`` along ``dim``.")
    return method


def _spread(name: str) -> Any:
    fn = getattr(cnp, name)

    def method(self: Tensor, axis: Any = None, keepdims: bool = False, ddof: int = 0, *,
               dim: Any = _NO_DIM, keepdim: bool | None = None, unbiased: bool | None = None,
               correction: int | None = None) -> Any:
        keep = keepdims if keepdim is None else keepdim
        if dim is not _NO_DIM or unbiased is not None or correction is not None:
            # PyTorch's meaning: unbiased unless told otherwise
            ddof = 1 if unbiased is None or unbiased else 0
            ddof = ddof if correction is None else int(correction)
        return fn(self, axis=_axis(name, dim, axis), keepdims=keep, ddof=ddof)

    method.__name__ = name
    method.__doc__ = (f"NumPy's ``{name}(axis, keepdims, ddof)``; with ``dim``/``unbiased``/"
                      "``correction``, PyTorch's (unbiased by default).")
    return method


def _arg(name: str) -> Any:
    fn = getattr(cnp, name)

    def method(self: Tensor, axis: Any = None, *args: Any, dim: Any = _NO_DIM,
               keepdim: bool | None = None, **kwargs: Any) -> Any:
        if keepdim is not None:
            kwargs["keepdims"] = keepdim
        return fn(self, _axis(name, dim, axis), *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"``chainrule.numpy.{name}``; PyTorch's ``dim``/``keepdim`` accepted too."
    return method


def _cumulative(name: str) -> Any:
    fn = getattr(cnp, name)

    def method(self: Tensor, axis: Any = None, *, dim: Any = _NO_DIM) -> Any:
        return fn(self, axis=_axis(name, dim, axis))

    method.__name__ = name
    method.__doc__ = f"``chainrule.numpy.{name}``; PyTorch's ``dim`` accepted too."
    return method


def _along(fn: Any, name: str) -> Any:
    def method(self: Tensor, dim: Any = -1) -> Any:
        return fn(self, axis=dim)

    method.__name__ = name
    method.__doc__ = f"``{name}`` along ``dim`` (PyTorch's method)."
    return method


def _cast(dtype: Any, name: str) -> Any:
    def method(self: Tensor) -> Any:
        return cnp.astype(self, dtype)

    method.__name__ = name
    method.__doc__ = f"This tensor as ``{np.dtype(dtype).name}`` (PyTorch's ``.{name}()``)."
    return method


def _same(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """The tensor itself: chainrule tensors live in host memory and are always contiguous
    (PyTorch's ``.cpu()``, ``.contiguous()``, ``.to(...)`` with a device)."""
    for a in list(args) + list(kwargs.values()):
        if a is None or isinstance(a, str):
            continue
        try:
            dtype = np.dtype(a)
        except TypeError:
            continue
        return cnp.astype(self, dtype) if dtype != self.dtype else self
    return self


def _view_as(self: Tensor, other: Any) -> Any:
    """This tensor reshaped like ``other``."""
    return cnp.reshape(self, tuple(other.shape))


def _permute(self: Tensor, *dims: Any) -> Any:
    """The axes in the order ``dims`` (``x.permute(0, 2, 1)`` or ``x.permute((0, 2, 1))``)."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return cnp.transpose(self, dims)


def _unsqueeze(self: Tensor, dim: int) -> Any:
    """A new axis of length one at ``dim``."""
    return cnp.expand_dims(self, dim)


def _squeeze(self: Tensor, axis: Any = None, *, dim: Any = _NO_DIM) -> Any:
    """Drop axes of length one (all of them, or ``axis``/``dim``)."""
    return cnp.squeeze(self, _axis("squeeze", dim, axis))


def _t(self: Tensor) -> Any:
    """The transpose of a matrix (a vector or scalar is returned as it is, as in PyTorch)."""
    if self.ndim > 2:
        raise ValueError(f"Tensor.t: expects at most 2 dimensions, got shape {self.shape}; "
                         "use permute or transpose for more")
    return cnp.transpose(self) if self.ndim == 2 else self


def _clamp(self: Tensor, min: Any = None, max: Any = None) -> Any:
    """Values limited to ``[min, max]`` (either may be ``None``)."""
    if min is None and max is None:
        raise ValueError("Tensor.clamp: give at least one of min and max")
    out = self
    if min is not None:
        out = cnp.maximum(out, min)
    if max is not None:
        out = cnp.minimum(out, max)
    return out


def _masked_fill(self: Tensor, mask: Any, value: Any) -> Any:
    """``value`` where ``mask`` is true, this tensor elsewhere (not in place)."""
    return cnp.where(mask, value, self)


def _new(fill: Any) -> Any:
    def method(self: Tensor, *size: Any, dtype: Any = None) -> Any:
        if len(size) == 1 and isinstance(size[0], (tuple, list)):
            size = tuple(size[0])
        return fill(size, dtype=self.dtype if dtype is None else dtype)

    return method


def install() -> None:
    """Add the PyTorch spellings to :class:`~chainrule.Tensor`."""
    for name in ("sum", "mean", "prod", "logsumexp", "all", "any"):
        setattr(Tensor, name, _reduction(name))
    for name in ("max", "min"):
        setattr(Tensor, name, _extremum(name))
    for name in ("var", "std"):
        setattr(Tensor, name, _spread(name))
    for name in ("argmax", "argmin"):
        setattr(Tensor, name, _arg(name))
    for name in ("cumsum", "cumprod"):
        setattr(Tensor, name, _cumulative(name))
    methods = {
        "view_as": _view_as, "permute": _permute, "unsqueeze": _unsqueeze, "squeeze": _squeeze,
        "t": _t, "clamp": _clamp, "masked_fill": _masked_fill,
        "numel": lambda self: int(self.size), "dim": lambda self: self.ndim,
        "clone": lambda self: cnp.copy(self),
        "cpu": _same, "contiguous": _same, "to": _same,
        "float": _cast(np.float32, "float"), "double": _cast(np.float64, "double"),
        "half": _cast(np.float16, "half"), "long": _cast(np.int64, "long"),
        "int": _cast(np.int32, "int"), "bool": _cast(np.bool_, "bool"),
        "pow": lambda self, exponent: self ** exponent,
        "matmul": lambda self, other: self @ other, "mm": lambda self, other: self @ other,
        "eq": lambda self, other: self == other, "ne": lambda self, other: self != other,
        "lt": lambda self, other: self < other, "le": lambda self, other: self <= other,
        "gt": lambda self, other: self > other, "ge": lambda self, other: self >= other,
        "softmax": _along(softmax, "softmax"), "log_softmax": _along(log_softmax, "log_softmax"),
        "new_zeros": _new(cnp.zeros), "new_ones": _new(cnp.ones),
    }
    for name, method in methods.items():
        setattr(Tensor, name, method)
