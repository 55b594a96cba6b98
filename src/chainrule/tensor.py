"""``Tensor``: the user-facing box of eager, define-by-run differentiation.

A tensor wraps an array (``.data``).  Operations on tensors that require
grad are recorded as graph nodes; ``backward()`` walks them back
iteratively, sums gradients on fan-out and accumulates into the ``.grad``
of leaf tensors, as in PyTorch.
"""

from __future__ import annotations

import math
import operator
import weakref
from typing import Any

import numpy as np

from .core.backward import add_cotangents, backward_pass, tensor_hooks
from .core.hooks import RemovableHandle
from .core.primitive import Box, box_class, node_of
from .core.trace import EAGER_LEVEL, FORWARD_LEVELS, LEVEL_NAMES, STAGING, state

__all__ = ["Tensor", "tensor", "from_numpy", "is_differentiable_dtype"]


def is_differentiable_dtype(dtype: Any) -> bool:
    """True for real and complex floating dtypes (the ones that carry gradients)."""
    if isinstance(dtype, np.dtype) and dtype.kind in "fciub":  # NumPy's own kinds: cheaply
        return dtype.kind in "fc"
    try:
        return np.issubdtype(np.dtype(dtype), np.inexact)
    except TypeError:
        name = str(dtype)
        return "float" in name or "complex" in name


def _is_complex_dtype(dtype: Any) -> bool:
    """True for complex dtypes (of any array library)."""
    kind = getattr(dtype, "kind", None)
    return kind == "c" if kind is not None else "complex" in str(dtype)


def _complex_seed_message(what: str, x: Any, option: str) -> str:
    return (
        f"{what} of a complex output (shape {x.shape}, dtype {x.dtype}) needs an explicit "
        f"output gradient ({option}): seeding it with 1 would silently pick one of its real "
        "and imaginary parts; differentiate a real value instead (e.g. cnp.abs(y) ** 2 or "
        "cnp.real(y)), or pass the gradient"
    )


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


class TensorSize(int):
    """A tensor's number of elements (NumPy's ``x.size``) that also answers PyTorch's
    ``x.size()`` (the shape) and ``x.size(dim)`` (one length)."""

    _shape: tuple

    def __new__(cls, n: int, shape: tuple) -> TensorSize:
        self = super().__new__(cls, n)
        self._shape = shape
        return self

    def __call__(self, dim: int | None = None) -> Any:
        if dim is None:
            return self._shape
        return self._shape[dim]


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
        """The number of elements; ``x.size(dim)`` and ``x.size()`` as in PyTorch."""
        shape = tuple(self.shape)
        return TensorSize(math.prod(shape), shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def T(self) -> Tensor:
        return _np().transpose(self)

    @property
    def real(self) -> Tensor:
        """The real part (differentiable), like ``ndarray.real``."""
        return _np().real(self)

    @property
    def imag(self) -> Tensor:
        """The imaginary part (differentiable), like ``ndarray.imag``."""
        return _np().imag(self)

    def conj(self) -> Tensor:
        """The complex conjugate (differentiable), like ``ndarray.conj()``.

        >>> import chainrule as cr
        >>> cr.tensor([1 + 2j]).conj()
        tensor([1.-2.j])
        """
        return _np().conj(self)

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
        owner = _derivative_owner(self)
        if owner is not None:
            raise TypeError(_escape_message(self, owner, "np.asarray() / np.array()"))
        a = np.asarray(_raw(self))
        return a if dtype is None else a.astype(dtype)

    def __dlpack__(self, **kwargs: Any) -> Any:
        """The data, shared through DLPack (refused while it carries a derivative)."""
        owner = _derivative_owner(self)
        if owner is not None:
            raise TypeError(_escape_message(self, owner, "__dlpack__()"))
        return _raw(self).__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        return _raw(self).__dlpack_device__()

    def __reduce__(self):
        """Pickle (and deepcopy) a leaf with its flag and gradient, a recorded result as its
        data (the graph is not saved)."""
        owner = _derivative_owner(self)
        if owner is not None and owner != _EAGER:
            raise TypeError(_escape_message(self, owner, "pickling"))
        leaf = self._prim is None
        return (_rebuild, (_raw(self), self.requires_grad and leaf,
                           _raw(self.grad) if leaf else None))

    def __bool__(self) -> bool:
        return bool(_raw(self))

    def __float__(self) -> float:
        _refuse_traced(self, "float()")
        return float(_raw(self))

    def __int__(self) -> int:
        _refuse_traced(self, "int()")
        return int(_raw(self))

    def __complex__(self) -> complex:
        _refuse_traced(self, "complex()")
        return complex(_raw(self))

    def __index__(self) -> int:
        _refuse_traced(self, "operator.index()")
        return operator.index(_raw(self))

    # --- conversion --------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The value as a NumPy array (copied from the device for GPU arrays).

        An explicit read, like ``.item()``: allowed on eager tensors, refused
        (``TypeError``) on a value traced by a transform.
        """
        _refuse_traced(self, ".numpy()")
        return _to_numpy(_raw(self))

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        _refuse_traced(self, ".item()")
        raw = _raw(self)
        return raw.item() if hasattr(raw, "item") else raw

    def tolist(self) -> Any:
        _refuse_traced(self, ".tolist()")
        return _to_numpy(_raw(self)).tolist()

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

    def register_hook(self, hook: Any) -> RemovableHandle:
        """Call ``hook(grad)`` whenever this tensor's gradient is computed.

        For a leaf the hook sees the total gradient of a backward pass before
        it is accumulated into ``.grad``; a hook that returns a value
        replaces the gradient (e.g. to clip it).  Returns a handle whose
        ``remove()`` unregisters the hook.

        >>> import chainrule as cr
        >>> x = cr.tensor([1.0, -3.0], requires_grad=True)
        >>> y = x * 2
        >>> handle = y.register_hook(lambda g: g.clip(-0.5, 0.5))
        >>> (y * y).sum().backward()
        >>> x.grad                      # 2 * clip(2 y)
        array([ 1., -1.])
        >>> handle.remove()
        """
        if not callable(hook):
            raise TypeError(f"register_hook() needs a callable, got {type(hook).__name__}")
        if not self.requires_grad:
            raise RuntimeError(
                "cannot register a hook on a tensor that does not require grad "
                "(its gradient is never computed)"
            )
        # a recorded result's gradient arrives at its graph node; a leaf's at the tensor
        node = node_of(self)
        target = self if node is None else node
        key = id(target)
        hooks = tensor_hooks.get(key)
        if hooks is None:
            hooks = tensor_hooks[key] = []
            weakref.finalize(target, _forget_hooks, key, hooks)
        hooks.append(hook)
        return RemovableHandle(hooks, hook, lambda: _forget_hooks(key, hooks))

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
        data = self.data
        if grad is None and (type(data) is np.ndarray or isinstance(data, np.generic)) \
                and data.size == 1 and data.dtype.kind != "c":
            grad = np.ones(data.shape, dtype=data.dtype)  # (the usual loss.backward())
        elif grad is None:
            if self.size != 1:
                raise ValueError(
                    f"backward() without a gradient needs a tensor with one element, but this "
                    f"one has shape {self.shape}; pass grad= (an array of that shape) or "
                    "reduce it first, e.g. y.sum().backward()"
                )
            data = _raw(self.data)
            if _is_complex_dtype(self.dtype):
                raise TypeError(_complex_seed_message("backward()", self, "grad="))
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


def _forget_hooks(key: int, hooks: list) -> None:
    if tensor_hooks.get(key) is hooks:  # not a newer tensor that reuses the id
        del tensor_hooks[key]


_EAGER = "eager"


def _derivative_owner(x: Any) -> str | None:
    """Who would lose a derivative if ``x`` were read as plain numbers.

    ``"eager"`` for a tensor that requires grad while operations are recorded, the
    transform's name (``"grad"``, ``"jvp"``...) for a value traced by an active transform
    that depends on its inputs, ``None`` when reading the value loses nothing.
    """
    while isinstance(x, Box):
        level = x._level
        if level == EAGER_LEVEL:
            if x.requires_grad and state.grad_floor < EAGER_LEVEL:
                return _EAGER
        elif level in FORWARD_LEVELS:
            if x._tangent is not None:
                return LEVEL_NAMES.get(level, "transform")
        elif level in STAGING:
            if level in LEVEL_NAMES:  # traced for cr.compile: plain numbers would be constants
                return LEVEL_NAMES[level]
        elif x.requires_grad and level > state.grad_floor:
            return LEVEL_NAMES.get(level, "transform")
        x = x.data
    return None


def _escape_message(x: Any, owner: str, what: str) -> str:
    if owner == _EAGER:
        return (
            f"{what} of a tensor that requires grad (shape {x.shape}, dtype {x.dtype}) would "
            "drop its gradient; use x.detach() first (e.g. np.asarray(x.detach())), or "
            "compute with chainrule.numpy functions, which stay differentiable"
        )
    by = "a transform" if owner == "transform" else f"cr.{owner}"
    if owner == "compile":
        return (
            f"{what} of a value traced by cr.compile (shape {x.shape}, dtype {x.dtype}): "
            "the plain numbers would be baked into the compiled program as constants. "
            "Compute with chainrule.numpy functions (import chainrule.numpy as cnp; NumPy's "
            "own functions dispatch to them too); bool(), int() and comparisons work for "
            "Python control flow; to read a value on purpose (the program is then traced "
            "again whenever it changes), cut it first: cr.stop_gradient(x) or x.detach()"
        )
    return (
        f"{what} of a value traced by {by} (shape {x.shape}, dtype {x.dtype}): the "
        "plain numbers would carry no derivative and the result would be silently wrong. "
        "Compute with chainrule.numpy functions (import chainrule.numpy as cnp; NumPy's own "
        "functions dispatch to them too), and use cr.stop_gradient(x) / cnp.stop_gradient(x) "
        "where no derivative is wanted"
    )


def _refuse_traced(x: Any, what: str) -> None:
    """Python numbers of an eager tensor are an explicit detach (``loss.item()``); of a
    value traced by a transform they would escape the trace."""
    owner = _derivative_owner(x)
    if owner is not None and owner != _EAGER:
        raise TypeError(_escape_message(x, owner, what))


def _to_numpy(raw: Any) -> np.ndarray:
    if isinstance(raw, np.ndarray):
        return raw
    if hasattr(raw, "get") and not isinstance(raw, np.generic):
        return raw.get()  # CuPy
    if hasattr(raw, "compute"):
        return np.asarray(raw.compute())  # Dask
    return np.asarray(raw)


def _rebuild(data: Any, requires_grad: bool, grad: Any) -> Tensor:
    t = Tensor(data)
    t.requires_grad = requires_grad
    t.grad = grad
    return t


def _is_numpy(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, float, int, bool))


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a leaf tensor from an array, a nested list or a number; the data is copied.

    Like ``torch.tensor``, the tensor owns a copy of ``data``, so changing
    the caller's array later cannot change it (use :func:`from_numpy` to
    share a NumPy array's memory instead).  Python floats (and lists of
    them) become float64; arrays of other array libraries (CuPy, Dask,
    array-api-strict) are kept in their library.

    >>> import numpy as np, chainrule as cr
    >>> a = np.array([1.0, 2.0])
    >>> t = cr.tensor(a)
    >>> a[0] = 5.0
    >>> t
    tensor([1., 2.])
    >>> cr.tensor([1, 2], requires_grad=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: only floating-point tensors can require gradients, not dtype int64; ...
    """
    if isinstance(data, Box):
        data = _raw(data)
    if _is_numpy(data) or isinstance(data, (list, tuple)):
        data = np.array(data, dtype=dtype)  # always a fresh array
    else:
        from .backend import namespace_of

        xp = namespace_of(data)
        if dtype is not None:
            data = xp.astype(data, dtype) if hasattr(xp, "astype") else data.astype(dtype)
        else:
            data = _copied(xp, data)
    return _leaf(data, requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor that shares memory with the NumPy ``array`` (no copy), like ``torch.from_numpy``.

    Changes to the array show in the tensor and back.  Changing it in place
    while a graph that saved it waits for ``backward()`` is an error that
    chainrule cannot see: call ``backward()`` first, or use :func:`tensor`.

    >>> import numpy as np, chainrule as cr
    >>> a = np.array([1.0, 2.0])
    >>> t = cr.from_numpy(a)
    >>> a[0] = 5.0
    >>> t
    tensor([5., 2.])
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"from_numpy() expects a numpy.ndarray, got {type(array).__name__}; use "
            "cr.tensor(data) for lists, numbers and other array libraries"
        )
    return _leaf(array, False)


def _copied(xp: Any, data: Any) -> Any:
    """A copy of an array of another library (immutable ones are kept as they are)."""
    if hasattr(data, "copy"):
        return data.copy()
    try:
        return xp.asarray(data, copy=True)
    except (TypeError, ValueError, NotImplementedError):
        return data


def _leaf(data: Any, requires_grad: bool) -> Tensor:
    t = Tensor(data, EAGER_LEVEL)
    if requires_grad:
        t.requires_grad_(True)
    _watch_if_taping(t)
    return t


def _watch_if_taping(t: Tensor) -> None:
    if state.tapes and is_differentiable_dtype(t.dtype):
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
    for name, method in [
            ("__neg__", lambda self: E.negative(self)),
            ("__pos__", lambda self: self),
            ("__abs__", lambda self: E.absolute(self)),
            ("__getitem__", lambda self, key: cnp.getitem(self, key)),
            ("__setitem__", setitem_error),
            ("at", property(IndexUpdates, doc="Functional index updates: ``x.at[i].set(v)``."))]:
        setattr(Tensor, name, method)

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

    for name, method in [("sigmoid", lambda self: sigmoid(self)),
                         ("relu", lambda self: relu(self))]:
        setattr(Tensor, name, method)

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

    for name, method in [("reshape", reshape), ("view", reshape), ("transpose", transpose),
                         ("flatten", lambda self: cnp.reshape(self, (-1,)))]:
        setattr(Tensor, name, method)
