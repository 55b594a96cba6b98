"""Helpers shared by the ``chainrule.scipy`` modules: declaring SciPy-backed primitives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.primitive import Box, Primitive, primitive
from ..ops._broadcast import align, unbroadcast
from ..ops.shape import is_staged


def raw(x: Any) -> Any:
    """The NumPy data under any number of boxes."""
    while isinstance(x, Box):
        x = x.data
    return x


def known(x: Any) -> Any:
    """The NumPy value of ``x``, or ``None`` while ``x`` is traced at a staging level
    (``vmap``, a compiled program, sparsity detection): there are no numbers to check then."""
    if is_staged(x):
        return None
    return np.asarray(raw(x))


def numpy_only(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """An ``impl(xp, ...)`` that runs SciPy on NumPy data and refuses other array libraries."""
    def impl(xp: Any, *args: Any, **params: Any) -> Any:
        if xp is not np:
            raise TypeError(f"{name}: SciPy computes this function on NumPy arrays only; "
                            f"convert the {xp.__name__} arrays with numpy.asarray first")
        return fn(*args, **params)

    return impl


def unary(name: str, fn: Callable[[Any], Any], deriv: Callable[[Any, Any], Any]) -> Primitive:
    """An elementwise primitive ``fn(x)`` whose derivative is ``deriv(x, out)``.

    ``deriv`` is written with chainrule ops, so the rule differentiates again.
    """
    return primitive(
        "scipy." + name, numpy_only(name, fn), fn,
        vjp=(lambda g, out, x: g * deriv(x, out),),
        jvp=(lambda t, out, x: t * deriv(x, out),),
    )


def partials(name: str, fn: Callable[..., Any],
             derivs: tuple[Callable[..., Any] | None, ...]) -> Primitive:
    """An elementwise primitive of several broadcasting inputs.

    ``derivs[i](*inputs, out)`` is the partial derivative in input ``i``, or
    ``None`` where the function is not differentiable in that input (an
    integer order, a parameter SciPy does not differentiate).
    """
    continuous = [i for i, d in enumerate(derivs) if d is not None]

    def keep_dtype(*args: Any) -> Any:
        # an integer order must not turn float32 values into float64 ones
        out = fn(*args)
        want = np.result_type(np.float32, *(np.asarray(args[i]).dtype for i in continuous))
        if getattr(out, "dtype", want) != want and np.issubdtype(out.dtype, np.floating):
            out = out.astype(want)
        return out

    def make_vjp(i: int, d: Callable[..., Any] | None) -> Any:
        if d is None:
            return None
        return lambda g, out, *xs: unbroadcast(g * d(*xs, out), xs[i], out)

    def make_jvp(i: int, d: Callable[..., Any] | None) -> Any:
        if d is None:
            return None
        return lambda t, out, *xs: align(t, xs[i], out) * d(*xs, out)

    return primitive(
        "scipy." + name, numpy_only(name, keep_dtype), keep_dtype,
        vjp=tuple(make_vjp(i, d) for i, d in enumerate(derivs)),
        jvp=tuple(make_jvp(i, d) for i, d in enumerate(derivs)),
    )


def check_positive(value: Any, what: str, where: str) -> None:
    """SciPy's answer for a non-positive scale is NaN; ours is a clear ``ValueError``."""
    data = raw(value)
    if isinstance(data, (np.ndarray, np.generic, float, int)) and np.any(np.asarray(data) <= 0):
        raise ValueError(f"{where}: {what} must be positive, got {np.asarray(data)!r}")
