"""``chainrule.scipy.special``: SciPy's special functions, differentiable.

Each function is a primitive whose value SciPy computes and whose rules are
written with chainrule ops (derivatives that need a function of another
order chain to it: ``digamma`` -> ``polygamma(1)``, ``jn`` -> ``jn(n +- 1)``),
or is composed of such primitives.  Integer orders (``polygamma``'s ``n``,
``jn``/``yn``/``iv``/``ive``'s order) and the shape parameters of
``betainc``/``gammainc``/``gammaincc`` are not differentiable, as in HIPS
autograd: asking for those derivatives raises an error.

>>> import chainrule as cr
>>> from chainrule.scipy.special import expit, gammaln
>>> float(cr.grad(expit)(0.0))
0.25
>>> round(float(cr.grad(cr.grad(gammaln))(1.0)), 12)  # polygamma(1, 1) = pi**2 / 6
1.644934066848
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.special as sc

from ..core.primitive import Primitive
from ..ops import creation as C
from ..ops import elementwise as E
from ..ops import nn as N
from ..ops import reductions as R
from ..ops._broadcast import reshape
from ._common import known, partials, raw, unary

__all__ = [
    "gammaln", "digamma", "psi", "polygamma", "gamma", "rgamma", "gammasgn", "beta", "betaln",
    "betainc", "gammainc", "gammaincc", "erf", "erfc", "erfinv", "erfcinv", "expit", "logit",
    "logsumexp", "xlogy", "xlog1py", "entr", "multigammaln", "j0", "j1", "jn", "y0", "y1", "yn",
    "i0", "i1", "iv", "ive", "softmax", "log_softmax", "ndtr", "log_ndtr",
]

_SQRT_PI = math.sqrt(math.pi)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _exp_neg_sq(x: Any) -> Any:
    return E.exp(E.negative(x * x))


# --- gamma family ------------------------------------------------------------------------

polygamma: Primitive = partials("polygamma", sc.polygamma,
                     (None, lambda n, x, out: polygamma(raw(n) + 1, x)))
digamma = unary("digamma", sc.digamma, lambda x, out: polygamma(1, x))
psi = digamma
gammaln = unary("gammaln", sc.gammaln, lambda x, out: digamma(x))
gamma = unary("gamma", sc.gamma, lambda x, out: out * digamma(x))
rgamma = unary("rgamma", sc.rgamma, lambda x, out: E.negative(out) * digamma(x))
gammasgn = unary("gammasgn", sc.gammasgn, lambda x, out: x * 0.0)  # piecewise constant


def _dbeta(which: int):
    def d(a, b, out):
        return out * (digamma(a if which == 0 else b) - digamma(a + b))
    return d


beta = partials("beta", sc.beta, (_dbeta(0), _dbeta(1)))
betaln = partials("betaln", sc.betaln,
                  (lambda a, b, out: digamma(a) - digamma(a + b),
                   lambda a, b, out: digamma(b) - digamma(a + b)))


def _betainc_dx(a, b, x, out):
    # the Beta(a, b) density at x
    return E.exp(xlogy(raw(a) - 1.0, x) + xlog1py(raw(b) - 1.0, E.negative(x)) - betaln(a, b))


def _gammainc_dx(a, x, out):
    # the Gamma(a) density at x
    return E.exp(xlogy(raw(a) - 1.0, x) - x - gammaln(a))


betainc = partials("betainc", sc.betainc, (None, None, _betainc_dx))
gammainc = partials("gammainc", sc.gammainc, (None, _gammainc_dx))
gammaincc = partials("gammaincc", sc.gammaincc,
                     (None, lambda a, x, out: E.negative(_gammainc_dx(a, x, out))))


def multigammaln(a: Any, d: int) -> Any:
    """Log of the multivariate gamma function of dimension ``d`` (SciPy's ``multigammaln``).

    >>> round(float(multigammaln(3.0, 2)), 10)
    1.550194994
    """
    d = int(d)
    ka = known(a)
    if ka is not None and np.any(ka <= 0.5 * (d - 1)):
        raise ValueError(f"multigammaln: condition a ({raw(a)!r}) > 0.5 * (d - 1) "
                         f"({0.5 * (d - 1)}) not met")
    total = 0.25 * d * (d - 1) * math.log(math.pi)
    for j in range(d):
        total = total + gammaln(a - 0.5 * j)
    return total


# --- error function family --------------------------------------------------------------------

erf = N.erf  # SciPy's values (already a primitive of chainrule.numpy)
erfc = unary("erfc", sc.erfc, lambda x, out: _exp_neg_sq(x) * (-2.0 / _SQRT_PI))
erfinv = unary("erfinv", sc.erfinv, lambda x, out: E.exp(out * out) * (_SQRT_PI / 2.0))
erfcinv = unary("erfcinv", sc.erfcinv, lambda x, out: E.exp(out * out) * (-_SQRT_PI / 2.0))
ndtr = unary("ndtr", sc.ndtr,
             lambda x, out: E.exp(x * x * -0.5) * (1.0 / math.sqrt(2.0 * math.pi)))
# exp(log_pdf - log_cdf): finite far into the lower tail (x = -30 and beyond)
log_ndtr = unary("log_ndtr", sc.log_ndtr,
                 lambda x, out: E.exp(x * x * -0.5 - _LOG_SQRT_2PI - out))

# --- logistic, logs, entropy --------------------------------------------------------------------

# expit(x) expit(-x) rather than out (1 - out): no cancellation in the upper tail
expit: Primitive = unary("expit", sc.expit, lambda x, out: out * expit(E.negative(x)))
logit = unary("logit", sc.logit, lambda x, out: 1.0 / (x * (1.0 - x)))


def _ratio(x: Any, y: Any) -> Any:
    """``x / y``, and 0 where both are 0 (``xlogy(0, y)`` is 0 for every ``y``: its
    derivative in ``y`` is 0 at ``x = 0``, also at ``y = 0``)."""
    kx, ky = known(x), known(y)
    if kx is None or ky is None:  # traced values: the guard without looking
        return x / E.where(E.logical_and(E.equal(x, 0.0), E.equal(y, 0.0)), 1.0, y)
    both = (kx == 0) & (ky == 0)
    return x / (E.where(both, 1.0, y) if np.any(both) else y)


xlogy = partials("xlogy", sc.xlogy,
                 (lambda x, y, out: E.log(y), lambda x, y, out: _ratio(x, y)))
xlog1py = partials("xlog1py", sc.xlog1py,
                   (lambda x, y, out: E.log1p(y), lambda x, y, out: _ratio(x, y + 1.0)))
entr = unary("entr", sc.entr, lambda x, out: E.negative(E.log(x) + 1.0))


def logsumexp(a: Any, axis: Any = None, b: Any = None, keepdims: bool = False,
              return_sign: bool = False) -> Any:
    """``log(sum(b * exp(a)))`` over ``axis`` without overflow (SciPy's signature).

    Differentiable in ``a`` and in the weights ``b``; with ``return_sign``
    it returns ``(log|s|, sign(s))`` (the sign is a plain array).

    >>> float(logsumexp([1e4, 1e4]))
    10000.69314718056
    """
    if not hasattr(a, "shape"):
        a = np.asarray(a, dtype=float)
    if b is not None and not hasattr(b, "shape"):
        b = np.asarray(b, dtype=float)
    if b is None and not return_sign:
        return R.logsumexp(a, axis=axis, keepdims=keepdims)
    axes = R.normalize_axes(axis, np.ndim(raw(a)), "logsumexp")
    data = known(a)
    if data is None:  # traced values: the same shift, traced with no derivative through it
        m = C.stop_gradient(R.max(a, axis=axes, keepdims=True))
        m = E.where(E.isfinite(m), m, 0.0)
    else:
        m = np.max(data, axis=axes, keepdims=True) if data.size else np.zeros(())
        m = np.where(np.isfinite(m), m, 0.0)  # a constant shift: no derivative through it
    e = E.exp(a - m)
    if b is not None:
        e = e * b
    s = R.sum(e, axis=axes, keepdims=True)
    ks = known(s)
    sign = C.stop_gradient(E.sign(s)) if ks is None else np.sign(ks)
    out = E.log(E.absolute(s) if return_sign else s) + m
    if not keepdims:
        full = np.shape(raw(out))
        kept = tuple(n for i, n in enumerate(full) if i - len(full) not in axes)
        out = reshape(out, shape=kept)
        sign = reshape(sign, shape=kept)
    return (out, sign) if return_sign else out


def softmax(x: Any, axis: Any = None) -> Any:
    """``exp(x) / sum(exp(x))`` over ``axis`` (all entries when ``None``, as in SciPy).

    >>> softmax([0.0, 0.0])
    array([0.5, 0.5])
    """
    if not hasattr(x, "shape"):
        x = np.asarray(x, dtype=float)
    if isinstance(axis, int) and np.ndim(raw(x)) > 0:
        return N.softmax(x, axis=axis)
    return E.exp(log_softmax(x, axis=axis))


def log_softmax(x: Any, axis: Any = None) -> Any:
    """``x - logsumexp(x)`` over ``axis`` (all entries when ``None``, as in SciPy)."""
    if not hasattr(x, "shape"):
        x = np.asarray(x, dtype=float)
    if isinstance(axis, int) and np.ndim(raw(x)) > 0:
        return N.log_softmax(x, axis=axis)
    return x - R.logsumexp(x, axis=axis, keepdims=True)


# --- Bessel functions -----------------------------------------------------------------------

def _order(v: Any, shift: float) -> Any:
    return raw(v) + shift


jn: Primitive = partials("jn", sc.jv,
              (None, lambda n, x, out: (jn(_order(n, -1), x) - jn(_order(n, 1), x)) * 0.5))
yn: Primitive = partials("yn", sc.yv,
              (None, lambda n, x, out: (yn(_order(n, -1), x) - yn(_order(n, 1), x)) * 0.5))
iv: Primitive = partials("iv", sc.iv,
              (None, lambda v, x, out: (iv(_order(v, -1), x) + iv(_order(v, 1), x)) * 0.5))
ive: Primitive = partials("ive", sc.ive,
               (None, lambda v, x, out: (ive(_order(v, -1), x) + ive(_order(v, 1), x)) * 0.5
                - E.sign(x) * out))
j0 = unary("j0", sc.j0, lambda x, out: E.negative(j1(x)))
j1: Primitive = unary("j1", sc.j1, lambda x, out: (j0(x) - jn(2.0, x)) * 0.5)
y0 = unary("y0", sc.y0, lambda x, out: E.negative(y1(x)))
y1: Primitive = unary("y1", sc.y1, lambda x, out: (y0(x) - yn(2.0, x)) * 0.5)
i0 = unary("i0", sc.i0, lambda x, out: i1(x))
i1: Primitive = unary("i1", sc.i1, lambda x, out: (i0(x) + iv(2.0, x)) * 0.5)
