"""``Tensor``: the user-facing box of eager, define-by-run differentiation.

A tensor wraps an array (``.data``).  Operations on tensors that require
grad are recorded as graph nodes; ``backward()`` walks them back
iteratively, sums gradients on fan-out and accumulates into the ``.grad``
of leaf tensors, as in PyTorch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .core.backward import add_cotangents, backward_pass
from .core.primitive import Box, box_class
from .core.trace import EAGER_LEVEL

__all__ = ["Tensor", "tensor", "is_differentiable_dtype"]


def is_differentiable_dtype(dtype: Any) -> bool:
    """True for real and complex floating dtypes (the ones that carry gradients)."""
    try:
        return np.issubdtype(np.dtype(dtype), np.inexact)
    except TypeError:
        name = str(dtype)
        return "float" in name or "complex" in name


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


class Tensor(Box):
    """An array that can record the operations applied to it.

    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([2., 4., 6.])
    """

    __slots__ = ()
    __array_ufunc__ = None  # make NumPy operators defer to ours: ndarray * Tensor -> Tensor
    __hash__ = object.__hash__

    # --- array-like attributes ---------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        n = getattr(self.data, "size", None)  # ndarray and NumPy scalars know it
        return n if type(n) is int else math.prod(self.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def T(self) -> Tensor:
        return _np().transpose(self)

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user rather than recorded operations."""
        return self._prim is None

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        body = repr(np.asarray(_raw(self))) if _is_numpy(_raw(self)) else repr(_raw(self))
        if body.startswith("array("):
            body = "tensor(" + body[len("array("):]
        else:
            body = f"tensor({body})"
        if self.requires_grad:
            body = body[:-1] + ", requires_grad=True)"
        return body

    def __array__(self, dtype=None, copy=None):
        a = np.asarray(_raw(self))
        return a if dtype is None else a.astype(dtype)

    def __bool__(self) -> bool:
        return bool(_raw(self))

    def __float__(self) -> float:
        return float(_raw(self))

    def __int__(self) -> int:
        return int(_raw(self))

    def __index__(self) -> int:
        return int(_raw(self))

    # --- conversion --------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The value as a NumPy array (copied from the device for GPU arrays)."""
        raw = _raw(self)
        if hasattr(raw, "get") and not isinstance(raw, np.ndarray):
            return raw.get()  # CuPy
        if hasattr(raw, "compute"):
            return np.asarray(raw.compute())  # Dask
        return np.asarray(raw)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        raw = _raw(self)
        return raw.item() if hasattr(raw, "item") else raw

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """A tensor with the same value that is cut off from the graph."""
        return Tensor(_raw(self))

    def astype(self, dtype: Any) -> Tensor:
        return _np().astype(self, dtype)

    # --- autograd ----------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place (leaves only) and return ``self``."""
        if requires_grad and not is_differentiable_dtype(self.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients, not dtype {self.dtype}; "
                "convert with .astype(float) first"
            )
        if not requires_grad and self._prim is not None:
            raise RuntimeError(
                "requires_grad can only be switched off on leaf tensors; use detach()")
        self.requires_grad = requires_grad
        return self

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``.grad`` becomes ``None``)."""
        self.grad = None

    def backward(self, grad: Any = None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        ``grad`` is the upstream gradient (required unless ``self`` has one
        element).  The graph is freed afterwards unless ``retain_graph``;
        with ``create_graph`` the gradients are tensors that can be
        differentiated again.

        >>> import chainrule as cr
        >>> x = cr.tensor(3.0, requires_grad=True)
        >>> (x ** 3).backward(create_graph=True)
        >>> g = x.grad          # 3 x^2 = 27, itself differentiable
        >>> x.grad = None
        >>> g.backward()
        >>> float(x.grad)       # 6 x
        18.0
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: none of its inputs had "
                "requires_grad=True (or it was computed under no_grad())"
            )
        if grad is None:
            if self.size != 1:
                raise ValueError(
                    f"backward() without a gradient needs a tensor with one element, but this "
                    f"one has shape {self.shape}; pass grad= (an array of that shape) or "
                    "reduce it first, e.g. y.sum().backward()"
                )
            data = _raw(self.data)
            grad = np.ones_like(data) if _is_numpy(data) else _np().ones_like(data)
        else:
            if not create_graph:
                grad = _raw(grad)
            gshape = tuple(getattr(grad, "shape", ()))
            if gshape != self.shape:
                raise ValueError(
                    f"backward(): grad has shape {gshape} but the tensor has shape {self.shape}"
                )
        if create_graph:
            grad = grad if isinstance(grad, Box) else Tensor(grad)
            leaves, _ = backward_pass([(self, grad)], self._level, True, True)
        else:
            leaves, _ = backward_pass([(self, grad)], self._level, retain_graph, False)
        for leaf, g in leaves.values():
            accumulate_grad(leaf, g)


def accumulate_grad(leaf: Box, g: Any) -> None:
    """Add ``g`` to ``leaf.grad`` (first gradients are stored as fresh, writable arrays)."""
    if leaf.grad is None:
        if isinstance(g, np.ndarray) and (g.base is not None or not g.flags.writeable):
            g = g.copy()
        elif isinstance(g, np.generic):
            g = np.asarray(g).copy()
        leaf.grad = g
    else:
        leaf.grad = add_cotangents(leaf.grad, g)


box_class[0] = Tensor


def _is_numpy(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, float, int, bool))


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a leaf tensor from an array, a nested list or a number.

    Python floats (and lists of them) become float64; a NumPy array is used
    as it is, without a copy; arrays of other array libraries (CuPy, Dask,
    array-api-strict) are kept in their library.

    >>> import chainrule as cr
    >>> cr.tensor([1.0, 2.0]).dtype
    dtype('float64')
    >>> cr.tensor([1, 2], requires_grad=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: only floating-point tensors can require gradients, not dtype int64; ...
    """
    if isinstance(data, Box):
        data = _raw(data)
    if isinstance(data, np.ndarray):
        # Shares memory with the array it is given (like torch.from_numpy): no copy.
        data = data if dtype is None or data.dtype == dtype else data.astype(dtype)
    elif _is_numpy(data) or isinstance(data, (list, tuple)):
        data = np.array(data, dtype=dtype)
    elif dtype is not None:
        from .backend import namespace_of

        xp = namespace_of(data)
        data = xp.astype(data, dtype) if hasattr(xp, "astype") else data.astype(dtype)
    t = Tensor(data, EAGER_LEVEL)
    if requires_grad:
        t.requires_grad_(True)
    _watch_if_taping(t)
    return t


def _watch_if_taping(t: Tensor) -> None:
    from .tape import _active_tapes

    if _active_tapes() and is_differentiable_dtype(t.dtype):
        t.requires_grad = True


def _np():
    from . import numpy as cnp

    return cnp


# --- operators and methods (bound after the op families are loaded) ----------------------

def _install_methods() -> None:
    from . import numpy as cnp
    from .ops import elementwise as E
    from .ops import linalg as linalg_ops
    from .ops.updates import IndexUpdates, setitem_error

    def binop(prim):
        return lambda self, other: prim(self, other)

    def rbinop(prim):
        return lambda self, other: prim(other, self)

    for name, prim in [("add", E.add), ("sub", E.subtract), ("mul", E.multiply),
                       ("truediv", E.divide), ("pow", E.power), ("mod", E.mod),
                       ("matmul", linalg_ops.matmul)]:
        setattr(Tensor, f"__{name}__", binop(prim))
        setattr(Tensor, f"__r{name}__", rbinop(prim))
    for name, prim in [("lt", E.less), ("le", E.less_equal), ("gt", E.greater),
                       ("ge", E.greater_equal), ("eq", E.equal), ("ne", E.not_equal)]:
        setattr(Tensor, f"__{name}__", binop(prim))
    Tensor.__neg__ = lambda self: E.negative(self)
    Tensor.__pos__ = lambda self: self
    Tensor.__abs__ = lambda self: E.absolute(self)
    Tensor.__getitem__ = lambda self, key: cnp.getitem(self, key)
    Tensor.__setitem__ = setitem_error
    Tensor.at = property(IndexUpdates, doc="Functional index updates: ``x.at[i].set(v)``.")

    def reduction(fn):
        def method(self, axis=None, keepdims=False):
            return fn(self, axis=axis, keepdims=keepdims)

        method.__doc__ = f"Same as ``chainrule.numpy.{fn.__name__}(self, axis, keepdims)``."
        return method

    for name in ("sum", "mean", "max", "min", "prod", "var", "std"):
        setattr(Tensor, name, reduction(getattr(cnp, name)))
    for name in ("exp", "log", "sqrt", "tanh", "sin", "cos", "tan", "abs", "sign",
                 "square", "log1p", "expm1", "reciprocal", "arctan", "sinh", "cosh",
                 "cumsum", "cumprod", "argmax", "argmin", "ravel", "squeeze", "expand_dims",
                 "swapaxes", "clip", "dot", "diagonal", "trace", "repeat", "flip", "sort"):
        fn = getattr(cnp, name)
        setattr(Tensor, name, (lambda f: lambda self, *a, **k: f(self, *a, **k))(fn))

    from .ops.nn import relu, sigmoid

    Tensor.sigmoid = lambda self: sigmoid(self)
    Tensor.relu = lambda self: relu(self)

    def reshape(self, *shape):
        """``x.reshape(2, 3)`` or ``x.reshape((2, 3))``."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return cnp.reshape(self, shape)

    def transpose(self, *axes):
        """``x.transpose()`` reverses the axes; ``x.transpose(1, 0, 2)`` permutes them."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return cnp.transpose(self, axes or None)

    Tensor.reshape = reshape
    Tensor.view = reshape
    Tensor.transpose = transpose
    Tensor.flatten = lambda self: cnp.reshape(self, (-1,))
