"""NumPy's own functions on Tensors: NEP 13 (``__array_ufunc__``) and NEP 18
(``__array_function__``) dispatch onto ``chainrule.numpy``.

``np.sin(t)``, ``np.sum(t, axis=0)``, ``np.linalg.solve(A, t)`` and
``ndarray * t`` run chainrule's primitive of the same name, so they stay
differentiable.  The NumPy function is found by its module path and name
(``numpy.linalg.solve`` -> ``chainrule.numpy.linalg.solve``), so a
sub-namespace added to ``chainrule.numpy`` is picked up without a table.
A NumPy function that chainrule lacks runs on the plain data when no
argument carries a derivative; otherwise it raises ``TypeError`` naming
it -- never a silently detached array.

>>> import numpy as np, chainrule as cr
>>> x = cr.tensor([0.0, 1.0], requires_grad=True)
>>> np.sum(np.sin(x)).backward()
>>> x.grad
array([1.        , 0.54030231])
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from . import numpy as cnp
from .core.primitive import Box
from .tensor import Tensor, _derivative_owner

__all__ = ["chainrule_version_of", "install"]

#: ufunc methods that chainrule.numpy spells as a function of their own.
_UFUNC_METHODS = {
    ("add", "reduce"): "sum", ("multiply", "reduce"): "prod",
    ("maximum", "reduce"): "max", ("minimum", "reduce"): "min",
    ("add", "accumulate"): "cumsum", ("multiply", "accumulate"): "cumprod",
}
#: Functions whose results carry no derivative: shapes and dtypes, and boolean or integer
#: answers (like comparisons, they may read values; Python control flow needs them).
_NO_DERIVATIVE = frozenset({
    "result_type", "shape", "ndim", "size", "iscomplexobj", "isrealobj", "min_scalar_type",
    "can_cast", "broadcast_shapes", "isscalar", "any", "all", "count_nonzero", "nonzero",
    "flatnonzero", "argwhere", "argmax", "argmin", "argsort", "argpartition", "searchsorted",
    "digitize", "isnan", "isinf", "isfinite", "isposinf", "isneginf", "isclose", "allclose",
    "array_equal", "array_equiv", "isreal", "iscomplex", "signbit",
})


class _Running(threading.local):
    def __init__(self) -> None:
        self.funcs: list[Any] = []  # NumPy functions being served (to catch re-entry)


_running = _Running()


def chainrule_version_of(module: str, name: str) -> Any:
    """The ``chainrule.numpy`` function standing for ``<module>.<name>`` of NumPy, or None.

    >>> import numpy as np
    >>> chainrule_version_of("numpy.linalg", "solve").__name__
    'solve'
    """
    parts = module.split(".")
    if parts[0] != "numpy":
        return None
    obj: Any = cnp
    for part in parts[1:]:
        if part.startswith("_"):  # private implementation modules (numpy._core...)
            continue
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    fn = getattr(obj, name, None)
    return fn if callable(fn) and not isinstance(fn, type) else None


def _walk(x: Any):
    if isinstance(x, Box):
        yield x
    elif type(x) in (list, tuple):
        for v in x:
            yield from _walk(v)
    elif type(x) is dict:
        for v in x.values():
            yield from _walk(v)


def _owner(*trees: Any) -> tuple[Any, str] | None:
    for tree in trees:
        for box in _walk(tree):
            owner = _derivative_owner(box)
            if owner is not None:
                return box, owner
    return None


def _plain(x: Any, read: Any = np.asarray) -> Any:
    """``x`` with every Tensor replaced by ``read(tensor)``."""
    if isinstance(x, Box):
        return read(x)
    if type(x) in (list, tuple):
        return type(x)(_plain(v, read) for v in x)
    if type(x) is dict:
        return {k: _plain(v, read) for k, v in x.items()}
    return x


def _data(box: Any) -> Any:
    while isinstance(box, Box):
        box = box.data
    return box


def _refuse(what: str, found: tuple[Any, str], why: str) -> TypeError:
    box, owner = found
    carrier = ("a tensor that requires grad" if owner == "eager"
               else "a value traced by a transform" if owner == "transform"
               else f"a value traced by cr.{owner}")
    if owner == "compile":
        return TypeError(
            f"{what} {why}, and it was given {carrier} (shape {box.shape}, dtype {box.dtype}):"
            " its plain numbers would be baked into the compiled program as constants. Use a "
            "chainrule.numpy function instead, or cut the input on purpose (cr.stop_gradient(x)"
            ", x.detach(): the program is then traced again whenever the value changes)")
    return TypeError(
        f"{what} {why}, and it was given {carrier} (shape {box.shape}, dtype {box.dtype}): "
        "running NumPy on the plain numbers would silently drop the derivative. Use a "
        "chainrule.numpy function instead, or detach the input (x.detach(), "
        "cr.stop_gradient(x)) when no derivative is wanted"
    )


def _without_derivative(func: Any, what: str, why: str, args: tuple, kwargs: dict) -> Any:
    """Run ``func`` on plain data if nothing is lost by it; refuse otherwise."""
    found = _owner(args, kwargs)
    if found is not None:
        raise _refuse(what, found, why)
    return func(*_plain(args), **_plain(kwargs))


def _no_out(kwargs: dict) -> bool:
    """Drop ``out=None``; True when a real ``out=`` was given."""
    if "out" not in kwargs:
        return False
    out = kwargs["out"]
    if out is None or (type(out) is tuple and all(o is None for o in out)):
        del kwargs["out"]
        return False
    return True


def array_function(self: Any, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
    """NEP 18: a NumPy function called with Tensors runs chainrule's version."""
    name = getattr(func, "__name__", repr(func))
    what = f"{getattr(func, '__module__', 'numpy')}.{name}"
    kwargs = dict(kwargs)
    if name in _NO_DERIVATIVE:
        return func(*_plain(args, _data), **_plain(kwargs, _data))
    if _no_out(kwargs):
        return _without_derivative(func, what, "writes into out=", args, kwargs)
    fn = chainrule_version_of(getattr(func, "__module__", "numpy"), name)
    if fn is None or fn is func or func in _running.funcs:
        return _without_derivative(func, what, "has no differentiable chainrule version",
                                   args, kwargs)
    _running.funcs.append(func)
    try:
        return _call(fn, what, args, kwargs)
    finally:
        _running.funcs.pop()


def _call(fn: Any, what: str, args: tuple, kwargs: dict) -> Any:
    """``fn(*args, **kwargs)``; a NumPy argument chainrule's version lacks is named."""
    try:
        return fn(*args, **kwargs)
    except TypeError as exc:
        if "argument" not in str(exc) or what in str(exc):
            raise
        raise TypeError(f"{what} on a Tensor runs chainrule.numpy's version, which could not "
                        f"take these arguments: {exc}") from exc


def array_ufunc(self: Any, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    """NEP 13: NumPy ufuncs (and ``ndarray op Tensor`` operators) run chainrule's version."""
    name = ufunc.__name__
    what = f"numpy.{name}" + ("" if method == "__call__" else f".{method}")
    func = getattr(ufunc, method)
    if _no_out(kwargs):
        return _without_derivative(func, what, "writes into out=", inputs, kwargs)
    if method == "__call__" and kwargs:  # where=, dtype=, casting=...: NumPy's own options
        return _without_derivative(func, what, f"with {', '.join(sorted(kwargs))}= has no "
                                   "differentiable chainrule version", inputs, kwargs)
    if method == "__call__":
        fn = getattr(cnp, name, None)
    else:
        alias = _UFUNC_METHODS.get((name, method))
        fn = getattr(cnp, alias) if alias is not None else None
    if fn is None or fn is func:
        if name in _NO_DERIVATIVE and method == "__call__":
            return func(*_plain(inputs, _data), **_plain(kwargs, _data))
        return _without_derivative(func, what, "has no differentiable chainrule version",
                                   inputs, kwargs)
    if method != "__call__" and "axis" not in kwargs:
        kwargs["axis"] = 0  # ufunc.reduce/accumulate's default, where sum's is every axis
    return _call(fn, what, inputs, kwargs)


def install() -> None:
    """Make ``Tensor`` (and its subclasses) answer NumPy's dispatch protocols."""
    Tensor.__array_ufunc__ = array_ufunc  # type: ignore[assignment]
    Tensor.__array_function__ = array_function  # type: ignore[attr-defined]
