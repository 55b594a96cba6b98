"""``chainrule.scipy.integrate.odeint``: ODE solutions differentiable by the adjoint method.

The forward solve is SciPy's ``odeint``.  Reverse mode solves the adjoint
(augmented) system backwards in time with the same integrator, between each
pair of output times, and the vector-Jacobian products of ``func`` inside
it are chainrule VJPs: no solver step is ever differentiated.  Forward mode
integrates the forward sensitivity equations alongside the state (the
Jacobian-vector products of ``func`` are chainrule JVPs).  Gradients come
with respect to ``y0``, the times ``t`` and every array in ``args``;
derivatives of second order raise ``NotImplementedError``.

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


def _first_order_only(*values: Any) -> None:
    if any(isinstance(v, Box) for v in values):
        raise NotImplementedError(
            "odeint: derivatives of second order are not implemented (the adjoint and the "
            "sensitivity equations are solved numerically); take first derivatives only")


def _odeint_vjp(g, out, y0, t, *args, func, rtol, atol, options):
    _first_order_only(g, out, y0, t, *args)
    shape = np.shape(y0)
    D = int(np.prod(shape, dtype=int))
    T = len(t)
    sizes = [int(np.size(a)) for a in args]
    splits = np.cumsum(sizes)[:-1]

    def unflat(flat):
        return [np.reshape(p, np.shape(a)) for p, a in zip(np.split(flat, splits), args)]

    def dynamics(state, tt):
        y, adj = state[:D], state[D:2 * D]
        f_out, back = _vjp(lambda yy, ts, *aa: func(yy, ts, *aa),
                           y.reshape(shape), np.asarray(tt, dtype=float), *args)
        grads = back(-adj.reshape(shape))
        gy, gt, ga = grads[0], grads[1], grads[2:]
        parts = [_as_float(f_out).ravel(), _as_float(gy).ravel(), np.reshape(_as_float(gt), 1)]
        parts += [_as_float(a).ravel() for a in ga]
        return np.concatenate(parts)

    ys = np.reshape(out, (T, D))
    tt = np.asarray(t, dtype=float)
    nb = np.ndim(g) - np.ndim(out)
    batch = np.shape(g)[:nb]
    gs = np.reshape(g, (-1, T, D))
    results = []
    for gk in gs:
        adj = gk[-1].copy()
        t0_bar = 0.0
        t_bars = np.zeros(T)
        args_bar = np.zeros(int(sum(sizes)))
        for i in range(T - 1, 0, -1):
            fi = _plain(func(ys[i].reshape(shape), tt[i], *args)).ravel()
            t_bars[i] = fi @ gk[i]  # moving an output time moves its value along f
            t0_bar -= t_bars[i]
            state = np.concatenate([ys[i], adj, [t0_bar], args_bar])
            nxt = _solve(dynamics, state, np.array([tt[i], tt[i - 1]]), rtol, atol, options)[1]
            adj, t0_bar, args_bar = nxt[D:2 * D], nxt[2 * D], nxt[2 * D + 1:]
            adj = adj + gk[i - 1]
        t_bars[0] = t0_bar
        results.append((adj.reshape(shape), t_bars, unflat(args_bar)))
    y0_bar = np.stack([r[0] for r in results]).reshape(batch + shape)
    t_bar = np.stack([r[1] for r in results]).reshape(batch + (T,))
    a_bars = [np.stack([r[2][j] for r in results]).reshape(batch + np.shape(a))
              for j, a in enumerate(args)]
    return (y0_bar, t_bar, *a_bars)


def _odeint_jvp(tangents, out, y0, t, *args, func, rtol, atol, options):
    _first_order_only(out, y0, t, *args, *tangents)
    shape = np.shape(y0)
    D = int(np.prod(shape, dtype=int))
    T = len(t)
    vals = (y0, t) + tuple(args)
    first = next(tn for tn in tangents if tn is not None)
    i0 = next(i for i, tn in enumerate(tangents) if tn is not None)
    batch = np.shape(first)[:np.ndim(first) - np.ndim(vals[i0])]
    nbat = int(np.prod(batch, dtype=int))
    tans = [np.zeros((nbat,) + np.shape(v)) if tn is None
            else np.reshape(_as_float(tn), (nbat,) + np.shape(v)) for tn, v in zip(tangents, vals)]
    tt = np.asarray(t, dtype=float)
    ys = np.reshape(out, (T, D))
    results = []
    for k in range(nbat):
        t_args = [ta[k] for ta in tans[2:]]

        def dynamics(state, ts, t_args=t_args):
            y, s = state[:D].reshape(shape), state[D:].reshape(shape)
            f_out, df = _jvp(lambda yy, *aa: func(yy, ts, *aa), (y, *args), (s, *t_args))
            return np.concatenate([_as_float(f_out).ravel(), _as_float(df).ravel()])

        f0 = _as_float(func(np.reshape(y0, shape), tt[0], *args)).ravel()
        s0 = tans[0][k].ravel() - f0 * tans[1][k][0]   # moving t0 shifts the whole solution
        sol = _solve(dynamics, np.concatenate([np.ravel(y0).astype(float), s0]), tt, rtol, atol,
                     options)
        sens = sol[:, D:]
        for i in range(T):  # an output time moved moves its value along f
            fi = _as_float(func(ys[i].reshape(shape), tt[i], *args)).ravel()
            sens[i] = sens[i] + fi * tans[1][k][i]
        results.append(sens.reshape((T,) + shape))
    return np.stack(results).reshape(batch + (T,) + shape)


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
