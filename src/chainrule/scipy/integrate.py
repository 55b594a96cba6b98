"""``chainrule.scipy.integrate.odeint``: ODE solutions differentiable by the adjoint method.

The forward solve is SciPy's ``odeint``.  Reverse mode solves the adjoint
(augmented) system backwards in time with the same integrator, between each
pair of output times, and the vector-Jacobian products of ``func`` inside
it are chainrule VJPs: no solver step is ever differentiated.  Forward mode
integrates the forward sensitivity equations alongside the state (the
Jacobian-vector products of ``func`` are chainrule JVPs).  Gradients come
with respect to ``y0``, the times ``t`` and every array in ``args``.  Both
augmented systems are solved by this same differentiable operation, so
derivatives of second (and higher) order come out in either mode, as
solutions of the augmented systems to the solver's tolerance.

>>> import numpy as np, chainrule as cr
>>> from chainrule.scipy.integrate import odeint
>>> f = lambda a: odeint(lambda y, t, a: -a * y, np.array([1.0]), np.array([0.0, 1.0]), (a,))
>>> round(float(cr.grad(lambda a: f(a)[1, 0])(0.5)), 6)  # d/da exp(-a) = -exp(-a)
-0.606531
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.integrate as spi

from .. import numpy as cnp
from ..core.primitive import Box, primitive
from ..transforms import jvp as _jvp
from ..transforms import vjp as _vjp
from ._common import numpy_only, raw

__all__ = ["odeint"]


def _solve(rhs: Callable, y0: np.ndarray, t: np.ndarray, rtol: float, atol: float,
           options: tuple = ()) -> np.ndarray:
    return spi.odeint(rhs, y0, t, rtol=rtol, atol=atol, **dict(options))


def _plain(value: Any) -> np.ndarray:
    """``func``'s result on plain inputs; a tracked result means ``func`` captured a value
    being differentiated through a closure, whose derivative would be lost silently."""
    if isinstance(value, Box) and (value.requires_grad or value._tangent is not None):
        raise ValueError(
            "odeint: func returned a value that depends on a variable being differentiated "
            "through a closure; pass every such variable in args (func(y, t, *args)) so its "
            "derivative is computed")
    return _as_float(value)


def _as_float(v: Any) -> np.ndarray:
    return np.asarray(raw(v), dtype=float)


def _odeint_np(y0, t, *args, func, rtol, atol, options):
    shape = np.shape(y0)

    def rhs(y, tt):
        return _plain(func(y.reshape(shape), tt, *args)).ravel()

    ys = _solve(rhs, np.ravel(y0).astype(float), np.asarray(t, dtype=float), rtol, atol,
                options)
    return ys.reshape((len(t),) + shape)


def _size(shape: tuple) -> int:
    return int(np.prod(shape, dtype=int))


# The rules below are written with chainrule operations and solve their augmented systems with
# ``odeint_p`` itself, so they are differentiable again: derivatives of any order, any mode.

def _adjoint_dynamics(func: Callable, shape: tuple) -> Callable:
    """The adjoint system integrated backwards in time, state ``[y, a, t0_bar, args_bar]``:
    ``y' = f``, ``a' = -a^T df/dy``, ``t0_bar' = -a^T df/dt``, ``args_bar' = -a^T df/dargs``."""
    D = _size(shape)

    def dynamics(state: Any, tt: Any, *args: Any) -> Any:
        y, adj = cnp.reshape(state[:D], shape), cnp.reshape(state[D:2 * D], shape)
        f_out, back = _vjp(lambda yy, ts, *aa: func(yy, ts, *aa), y, tt, *args)
        grads = back(-adj)
        parts = [cnp.ravel(f_out), cnp.ravel(grads[0]), cnp.reshape(grads[1], (1,))]
        return cnp.concatenate(parts + [cnp.ravel(g) for g in grads[2:]])

    return dynamics


def _odeint_vjp(g, out, y0, t, *args, func, rtol, atol, options):
    shape = np.shape(y0)
    D, T = _size(shape), len(t)
    sizes = [_size(np.shape(a)) for a in args]
    splits = [int(k) for k in np.cumsum(sizes)[:-1]]
    dynamics = _adjoint_dynamics(func, shape)
    nb = np.ndim(g) - np.ndim(out)
    batch = tuple(np.shape(g)[:nb])
    gs = cnp.reshape(g, (-1, T, D))
    ys = cnp.reshape(out, (T, D))
    y0_bars, t_bars, a_bars = [], [], []
    for k in range(_size(batch)):
        gk = gs[k]
        adj = gk[T - 1]
        t0_bar = cnp.zeros(1)
        args_bar = cnp.zeros(sum(sizes))
        tb = [None] * T
        for i in range(T - 1, 0, -1):
            fi = cnp.ravel(func(cnp.reshape(ys[i], shape), t[i], *args))
            tb[i] = cnp.reshape(cnp.sum(fi * gk[i]), (1,))  # an output time moves along f
            t0_bar = t0_bar - tb[i]
            state = cnp.concatenate([ys[i], adj, t0_bar, args_bar])
            times = cnp.stack([t[i], t[i - 1]])
            nxt = odeint_p(state, times, *args, func=dynamics, rtol=rtol, atol=atol,
                           options=options)[1]
            adj = nxt[D:2 * D] + gk[i - 1]
            t0_bar, args_bar = nxt[2 * D:2 * D + 1], nxt[2 * D + 1:]
        tb[0] = t0_bar
        y0_bars.append(cnp.reshape(adj, shape))
        t_bars.append(cnp.concatenate(tb))
        pieces = cnp.split(args_bar, splits) if args else []
        a_bars.append([cnp.reshape(p, np.shape(a)) for p, a in zip(pieces, args)])
    y0_bar = cnp.reshape(cnp.stack(y0_bars), batch + shape)
    t_bar = cnp.reshape(cnp.stack(t_bars), batch + (T,))
    rest = [cnp.reshape(cnp.stack([ab[j] for ab in a_bars]), batch + np.shape(a))
            for j, a in enumerate(args)]
    return (y0_bar, t_bar, *rest)


def _sensitivity_dynamics(func: Callable, shape: tuple, n_args: int) -> Callable:
    """The state with its forward sensitivity, ``[y, s]``: ``y' = f``,
    ``s' = df/dy s + df/dargs t_args`` (the tangents of ``args`` come last in ``args``)."""
    D = _size(shape)

    def dynamics(state: Any, tt: Any, *args_and_tangents: Any) -> Any:
        args, t_args = args_and_tangents[:n_args], args_and_tangents[n_args:]
        y, s = cnp.reshape(state[:D], shape), cnp.reshape(state[D:], shape)
        f_out, df = _jvp(lambda yy, *aa: func(yy, tt, *aa), (y, *args), (s, *t_args))
        return cnp.concatenate([cnp.ravel(f_out), cnp.ravel(df)])

    return dynamics


def _odeint_jvp(tangents, out, y0, t, *args, func, rtol, atol, options):
    shape = np.shape(y0)
    D, T = _size(shape), len(t)
    vals = (y0, t) + tuple(args)
    i0 = next(i for i, tn in enumerate(tangents) if tn is not None)
    batch = tuple(np.shape(tangents[i0])[:np.ndim(tangents[i0]) - np.ndim(vals[i0])])
    nbat = _size(batch)
    tans = [cnp.zeros((nbat,) + np.shape(v)) if tn is None
            else cnp.reshape(tn, (nbat,) + np.shape(v)) for tn, v in zip(tangents, vals)]
    dynamics = _sensitivity_dynamics(func, shape, len(args))
    # y(t_i) moves along f when t_i moves, and t_0 moving shifts the start against f
    f_at = cnp.stack([cnp.ravel(func(cnp.reshape(out[i], shape), t[i], *args))
                      for i in range(T)])
    results = []
    for k in range(nbat):
        s0 = cnp.ravel(tans[0][k]) - f_at[0] * tans[1][k][0]
        state = cnp.concatenate([cnp.ravel(y0), s0])
        sol = odeint_p(state, t, *args, *[ta[k] for ta in tans[2:]], func=dynamics, rtol=rtol,
                       atol=atol, options=options)
        sens = sol[:, D:] + f_at * cnp.reshape(tans[1][k], (T, 1))
        results.append(cnp.reshape(sens, (T,) + shape))
    return cnp.reshape(cnp.stack(results), batch + (T,) + shape)


odeint_p = primitive("scipy.integrate.odeint", numpy_only("odeint", _odeint_np), _odeint_np,
                     vjp=_odeint_vjp, jvp=_odeint_jvp)


_REFUSED = ("full_output", "Dfun", "col_deriv", "tfirst", "printmessg")


def odeint(func: Callable, y0: Any, t: Any, args: tuple = (), rtol: float = 1.4e-8,
           atol: float = 1.4e-8, **options: Any) -> Any:
    """Integrate ``dy/dt = func(y, t, *args)`` from ``y0`` over the times ``t`` (SciPy's
    ``odeint``), differentiable in ``y0``, ``t`` and ``args``.

    ``func`` is written with ``chainrule.numpy`` (it is differentiated by
    chainrule inside the adjoint system).  Returns an array of shape
    ``(len(t),) + y0.shape``.  Further keyword arguments (``mxstep``,
    ``hmax``, ...) go to SciPy's ``odeint`` for every solve, the adjoint's
    included; ``full_output``, ``Dfun``, ``col_deriv`` and ``tfirst`` are
    not supported.

    >>> import numpy as np
    >>> ys = odeint(lambda y, t: -y, np.array([1.0]), np.array([0.0, 1.0]))
    >>> round(float(ys[1, 0]), 6)
    0.367879
    """
    if not callable(func):
        raise TypeError(f"odeint: func must be callable, got {type(func).__name__}")
    refused = [k for k in options if k in _REFUSED]
    if refused:
        raise TypeError(f"odeint: {', '.join(refused)} not supported (the result must be "
                        "the solution array, with func(y, t, *args))")
    if not isinstance(args, tuple):
        args = (args,)
    ts = tuple(t.shape) if hasattr(t, "shape") else np.shape(t)  # (a traced t has no values)
    if len(ts) != 1 or ts[0] < 1:
        raise ValueError(f"odeint: t must be a 1-d sequence of times, got shape {ts}")
    if not hasattr(y0, "shape"):
        y0 = np.asarray(y0, dtype=float)
    if not hasattr(t, "shape"):
        t = np.asarray(t, dtype=float)
    args = tuple(a if hasattr(a, "shape") else np.asarray(a, dtype=float) for a in args)
    return odeint_p(y0, t, *args, func=func, rtol=float(rtol), atol=float(atol),
                    options=tuple(sorted(options.items())))
