"""Elementwise primitives: each one's implementation and rules side by side.

For a unary op the derivative ``d = f'(x)`` multiplies both the cotangent
(reverse) and the tangent (forward), so one function serves both rules.
Binary ops undo broadcasting with ``unbroadcast`` (reverse) and ``align``
(forward).  Rules are written with chainrule's own ops, so they are
differentiable again.
"""

from __future__ import annotations

import cmath
import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.primitive import Primitive, primitive
from ._broadcast import align, unbroadcast


def _xp_fn(name: str) -> Callable[..., Any]:
    def impl(xp, *args):
        return getattr(xp, name)(*args)

    impl.__name__ = name
    return impl


def unary(name: str, np_fn: Any, scale: Callable[[Any, Any, Any], Any] | None,
          xp_name: str | None = None) -> Primitive:
    """Declare an elementwise unary primitive.

    ``scale(g, out, x)`` multiplies a cotangent or tangent by the derivative
    ``f'(x)``: for an elementwise function the reverse and the forward rule
    are the same product, so one function serves as both.
    """
    if scale is None:  # piecewise constant: derivative zero everywhere it exists
        scale = _zero_scale
    return primitive(name, _xp_fn(xp_name or name), np_fn, vjp=(scale,), jvp=(scale,))


def _zero_scale(g, out, x):
    return g * 0.0


def binary(name: str, np_fn: Any, dx: Callable[..., Any] | None,
           dy: Callable[..., Any] | None, xp_name: str | None = None) -> Primitive:
    """Declare an elementwise binary primitive with partials ``dx(x, y, out)``, ``dy(...)``."""
    vjp_x = None if dx is None else (lambda g, out, x, y: unbroadcast(g * dx(x, y, out), x, out))
    vjp_y = None if dy is None else (lambda g, out, x, y: unbroadcast(g * dy(x, y, out), y, out))
    jvp_x = None if dx is None else (lambda t, out, x, y: align(t, x, out) * dx(x, y, out))
    jvp_y = None if dy is None else (lambda t, out, x, y: align(t, y, out) * dy(x, y, out))
    return primitive(name, _xp_fn(xp_name or name), np_fn,
                     vjp=(vjp_x, vjp_y), jvp=(jvp_x, jvp_y))


# --- arithmetic -----------------------------------------------------------------

_PY_SCALARS = frozenset({float, int, bool, complex})


def _same_shape(g, x, out):
    return g if g.shape == x.shape else unbroadcast(g, x, out)


def _fast(op: Callable[[Any, Any], Any], ufunc: Any) -> Callable[[Any, Any], Any]:
    """Python's operator on NumPy values (NumPy scalars' operators skip the ufunc
    machinery and are ~10x faster); the ufunc when both sides are Python numbers,
    so the result is still NumPy's (``1.0 / 0.0`` gives ``inf``, not an exception)."""
    def impl(x, y):
        if type(x) in _PY_SCALARS and type(y) in _PY_SCALARS:
            return ufunc(x, y)
        return op(x, y)

    impl.__name__ = ufunc.__name__
    return impl


add = primitive(
    "add", _xp_fn("add"), _fast(operator.add, np.add),
    vjp=(lambda g, out, x, y: g if g.shape == x.shape else unbroadcast(g, x, out),
         lambda g, out, x, y: g if g.shape == y.shape else unbroadcast(g, y, out)),
    jvp=(lambda t, out, x, y: _bcast_tangent(t, x, out),
         lambda t, out, x, y: _bcast_tangent(t, y, out)),
)
subtract = primitive(
    "subtract", _xp_fn("subtract"), _fast(operator.sub, np.subtract),
    vjp=(lambda g, out, x, y: unbroadcast(g, x, out), lambda g, out, x, y: unbroadcast(-g, y, out)),
    jvp=(lambda t, out, x, y: _bcast_tangent(t, x, out),
         lambda t, out, x, y: -_bcast_tangent(t, y, out)),
)
multiply = primitive(
    "multiply", _xp_fn("multiply"), _fast(operator.mul, np.multiply),
    vjp=(lambda g, out, x, y: _same_shape(g * y, x, out),
         lambda g, out, x, y: _same_shape(g * x, y, out)),
    jvp=(lambda t, out, x, y: align(t, x, out) * y, lambda t, out, x, y: x * align(t, y, out)),
)
divide = primitive(
    "divide", _xp_fn("divide"), _fast(operator.truediv, np.divide),
    vjp=(lambda g, out, x, y: unbroadcast(g / y, x, out),
         lambda g, out, x, y: unbroadcast(-g * out / y, y, out)),
    jvp=(lambda t, out, x, y: align(t, x, out) / y,
         lambda t, out, x, y: -align(t, y, out) * out / y),
)
negative = primitive("negative", _xp_fn("negative"), operator.neg,
                     vjp=(lambda g, out, x: -g,), jvp=(lambda t, out, x: -t,))
positive = primitive("positive", _xp_fn("positive"), np.positive,
                     vjp=(lambda g, out, x: g,), jvp=(lambda t, out, x: t,))


def _bcast_tangent(t, x, out):
    """A tangent of ``x`` broadcast to the full shape of ``out`` (plus its batch axes)."""
    from ._broadcast import batch_shape, broadcast_to

    b = batch_shape(t, x)  # before align: afterwards t has out's rank and this would be wrong
    t = align(t, x, out)
    shape = tuple(out.shape)
    if t.ndim == len(b) + len(shape) and tuple(t.shape[len(b):]) == shape:
        return t
    return broadcast_to(t, shape=b + shape)


def _pow_dx(x, y, out):
    if type(y) in _PY_SCALARS:  # common constant exponents need no second power
        if y == 2:
            return x * 2.0
        if y == 1:
            return x * 0.0 + 1.0
        if y == 0:  # d/dx x**0 = 0 everywhere, x = 0 included (NumPy's limit)
            return x * 0.0
    elif isinstance(y, np.ndarray | np.generic) and np.any(y == 0):
        # y is a constant here: a safe exponent where y == 0 keeps 0 * inf out of every order
        return y * x ** np.where(y == 0, 1, y - 1)
    return y * x ** (y - 1)


def _pow_dy(x, y, out):
    # d/dy x**y = log(x) x**y; define it as 0 where x == 0 (the limit from x > 0 for y > 0).
    if type(x) in _PY_SCALARS:  # a constant base: log(x) is a number (no NumPy scalar made)
        if x == 0:
            return out * 0.0
        if type(x) is complex:
            return out * cmath.log(x)
        return out * (math.log(x) if x > 0 else math.nan)
    safe = where(x == 0, 1.0, x)
    return where(x == 0, 0.0, out * log(safe))


power = binary("power", _fast(operator.pow, np.power), _pow_dx, _pow_dy, xp_name="pow")
square = unary("square", np.square, lambda g, o, x: g * (2.0 * x))
sqrt = unary("sqrt", np.sqrt, lambda g, o, x: g * 0.5 / o)
cbrt = unary("cbrt", np.cbrt, lambda g, o, x: g / (3.0 * o * o))
cbrt.impl = lambda xp, x: xp.sign(x) * xp.abs(x) ** (1.0 / 3.0)
reciprocal = unary("reciprocal", np.reciprocal, lambda g, o, x: -g * o * o)
reciprocal.impl = lambda xp, x: 1.0 / x
absolute = unary("absolute", np.absolute, lambda g, o, x: g * sign(x), xp_name="abs")
sign = unary("sign", np.sign, None)
floor = unary("floor", np.floor, None)
ceil = unary("ceil", np.ceil, None)
round_ = unary("round", np.round, None)

# Boxes hold NumPy data, so their arithmetic can go straight to Python's operators.
add.box_impl = operator.add
subtract.box_impl = operator.sub
multiply.box_impl = operator.mul
divide.box_impl = operator.truediv

# --- exponentials and logarithms ------------------------------------------------------

_LN2 = float(np.log(2.0))
_LN10 = float(np.log(10.0))

exp = unary("exp", np.exp, lambda g, o, x: g * o)
exp2 = unary("exp2", np.exp2, lambda g, o, x: g * o * _LN2)
exp2.impl = lambda xp, x: xp.pow(2.0, x) if not hasattr(xp, "exp2") else xp.exp2(x)
expm1 = unary("expm1", np.expm1, lambda g, o, x: g * (o + 1.0))
log = primitive("log", _xp_fn("log"), np.log,
                vjp=(lambda g, out, x: g / x,), jvp=(lambda t, out, x: t / x,))
log2 = unary("log2", np.log2, lambda g, o, x: g / (x * _LN2))
log10 = unary("log10", np.log10, lambda g, o, x: g / (x * _LN10))
log1p = primitive("log1p", _xp_fn("log1p"), np.log1p,
                  vjp=(lambda g, out, x: g / (x + 1.0),), jvp=(lambda t, out, x: t / (x + 1.0),))
logaddexp = binary("logaddexp", np.logaddexp,
                   lambda x, y, o: exp(x - o), lambda x, y, o: exp(y - o))
logaddexp2 = binary("logaddexp2", np.logaddexp2,
                    lambda x, y, o: exp2(x - o), lambda x, y, o: exp2(y - o))


def _logaddexp2_impl(xp, x, y):
    fn = getattr(xp, "logaddexp2", None)
    if fn is not None:
        return fn(x, y)
    return xp.logaddexp(x * _LN2, y * _LN2) / _LN2  # not in the array API standard


logaddexp2.impl = _logaddexp2_impl

# --- trigonometric and hyperbolic -----------------------------------------------------

sin = unary("sin", np.sin, lambda g, o, x: g * cos(x))
cos = unary("cos", np.cos, lambda g, o, x: -g * sin(x))
tan = unary("tan", np.tan, lambda g, o, x: g * (1.0 + o * o))
arcsin = unary("arcsin", np.arcsin, lambda g, o, x: g / sqrt(1.0 - x * x), xp_name="asin")
arccos = unary("arccos", np.arccos, lambda g, o, x: -g / sqrt(1.0 - x * x), xp_name="acos")
arctan = unary("arctan", np.arctan, lambda g, o, x: g / (1.0 + x * x), xp_name="atan")
sinh = unary("sinh", np.sinh, lambda g, o, x: g * cosh(x))
cosh = unary("cosh", np.cosh, lambda g, o, x: g * sinh(x))
tanh = unary("tanh", np.tanh, lambda g, o, x: g * (1.0 - o * o))
arcsinh = unary("arcsinh", np.arcsinh, lambda g, o, x: g / sqrt(x * x + 1.0), xp_name="asinh")
arccosh = unary("arccosh", np.arccosh, lambda g, o, x: g / sqrt(x * x - 1.0), xp_name="acosh")
arctanh = unary("arctanh", np.arctanh, lambda g, o, x: g / (1.0 - x * x), xp_name="atanh")
arctan2 = binary("arctan2", np.arctan2,
                 lambda y, x, o: x / (x * x + y * y), lambda y, x, o: -y / (x * x + y * y),
                 xp_name="atan2")
hypot = binary("hypot", np.hypot, lambda x, y, o: x / o, lambda x, y, o: y / o)


def _sinc_deriv(x, o):
    # d/dx sin(pi x)/(pi x) = (cos(pi x) - sinc(x)) / x; near 0 that difference cancels, so use
    # the Taylor series x (-pi^2/3 + pi^4 x^2 / 30), whose own derivative is right at 0 too.
    small = abs(x) < 1e-4
    safe = where(small, 1.0, x)
    series = x * (-(np.pi**2) / 3.0 + (np.pi**4 / 30.0) * x * x)
    return where(small, series, (cos(np.pi * x) - o) / safe)


def _sinc_impl(xp, x):
    if xp is np:
        return np.sinc(x)
    px = xp.pi * x
    safe = xp.where(x == 0, xp.ones_like(px), px)
    return xp.where(x == 0, xp.ones_like(px), xp.sin(safe) / safe)


sinc = primitive("sinc", _sinc_impl, np.sinc,
                 vjp=(lambda g, out, x: g * _sinc_deriv(x, out),),
                 jvp=(lambda t, out, x: t * _sinc_deriv(x, out),))

# --- selection ------------------------------------------------------------------------


def _where_impl(xp, cond, x, y):
    if xp is not np and "bool" not in str(cond.dtype):
        cond = cond != 0  # the array API takes boolean conditions only; NumPy any truth value
    return xp.where(cond, x, y)


def _where_vjp(which):
    def rule(g, out, cond, x, y):
        zero = g * 0.0
        picked = where(cond, g, zero) if which == 1 else where(cond, zero, g)
        return unbroadcast(picked, x if which == 1 else y, out)

    return rule


def _where_jvp(which):
    def rule(t, out, cond, x, y):
        t = align(t, x if which == 1 else y, out)
        return where(cond, t, t * 0.0) if which == 1 else where(cond, t * 0.0, t)

    return rule


where = primitive("where", _where_impl, np.where,
                  # a float condition only selects: it gets a zero derivative, not an error
                  vjp=(lambda g, out, c, x, y: unbroadcast(g * 0.0, c, out),
                       _where_vjp(1), _where_vjp(2)),
                  jvp=(lambda t, out, c, x, y: _bcast_tangent(t, c, out) * 0.0,
                       _where_jvp(1), _where_jvp(2)))


def select(name: str, np_fn: Any, x_wins: Callable[[Any, Any], Any]) -> Primitive:
    """A binary op that returns one of its operands (max/min and kin).

    The derivative goes to the chosen operand; at a tie (``x == y``) it is
    shared equally, so ties are handled deterministically and symmetrically.
    """
    def share(g, x, y, wins):
        return where(wins, g, where(x == y, g * 0.5, g * 0.0))

    return primitive(
        name, _xp_fn(name), np_fn,
        vjp=(lambda g, out, x, y: unbroadcast(share(g, x, y, x_wins(x, y)), x, out),
             lambda g, out, x, y: unbroadcast(share(g, x, y, x_wins(y, x)), y, out)),
        jvp=(lambda t, out, x, y: share(align(t, x, out), x, y, x_wins(x, y)),
             lambda t, out, x, y: share(align(t, y, out), x, y, x_wins(y, x))),
    )


def _isnan(v):
    return v != v


maximum = select("maximum", np.maximum, lambda a, b: a > b)
minimum = select("minimum", np.minimum, lambda a, b: a < b)
# fmax/fmin ignore NaNs: the derivative goes to whichever operand was chosen.
fmax = select("fmax", np.fmax, lambda a, b: ~_isnan(a) & ((a > b) | _isnan(b)))
fmin = select("fmin", np.fmin, lambda a, b: ~_isnan(a) & ((a < b) | _isnan(b)))


def _nan_ignoring(name: str, pick: str):
    """fmax/fmin for array libraries without them (not in the array API standard)."""
    def impl(xp, x, y):
        fn = getattr(xp, name, None)
        if fn is not None:
            return fn(x, y)
        return xp.where(y != y, x, xp.where(x != x, y, getattr(xp, pick)(x, y)))

    return impl


fmax.impl = _nan_ignoring("fmax", "maximum")
fmin.impl = _nan_ignoring("fmin", "minimum")


def _clip_impl(xp, x, lo, hi):
    if xp is np:
        return np.clip(x, lo, hi)
    out = x
    if lo is not None:
        out = xp.maximum(out, xp.asarray(lo, dtype=x.dtype))
    if hi is not None:
        out = xp.minimum(out, xp.asarray(hi, dtype=x.dtype))
    return out


def masked(g, mask):
    """``g`` where ``mask`` holds, zero elsewhere (keeps g's dtype, any array library)."""
    raw = mask
    while hasattr(raw, "_level"):
        raw = raw.data
    if isinstance(raw, (np.ndarray, np.generic, bool)):
        return g * mask  # one pass: multiplying by booleans keeps g's dtype
    return where(mask, g, g * 0.0)


def _clip_mask(x, lo, hi):
    inside = True
    if lo is not None:
        inside = (x >= lo) & inside
    if hi is not None:
        inside = (x <= hi) & inside
    return inside


def _clip_bound_vjp(is_lo):
    def rule(g, out, x, lo, hi):
        hit = (x < lo) if is_lo else (x > hi)
        return unbroadcast(masked(g, hit), lo if is_lo else hi, out)

    return rule


def _clip_bound_jvp(is_lo):
    def rule(t, out, x, lo, hi):
        hit = (x < lo) if is_lo else (x > hi)
        return masked(align(t, lo if is_lo else hi, out), hit)

    return rule


clip = primitive(
    "clip", _clip_impl, lambda x, lo, hi: np.clip(x, lo, hi),
    vjp=(lambda g, out, x, lo, hi: unbroadcast(masked(g, _clip_mask(x, lo, hi)), x, out),
         _clip_bound_vjp(True), _clip_bound_vjp(False)),
    jvp=(lambda t, out, x, lo, hi: masked(align(t, x, out), _clip_mask(x, lo, hi)),
         _clip_bound_jvp(True), _clip_bound_jvp(False)),
)


def _mod_impl(xp, x, y):
    return xp.remainder(x, y)


mod = binary("mod", np.mod, lambda x, y, o: o * 0.0 + 1.0, lambda x, y, o: -floor(x / y))
mod.impl = _mod_impl

trunc = unary("trunc", np.trunc, None)
fmod = binary("fmod", np.fmod, lambda x, y, o: o * 0.0 + 1.0, lambda x, y, o: -trunc(x / y))
floor_divide = binary("floor_divide", np.floor_divide,
                      lambda x, y, o: o * 0.0, lambda x, y, o: o * 0.0)

# --- comparisons and predicates (not differentiable: plain boolean arrays) ---------------------


def _nondiff(name: str, np_fn: Any, xp_name: str | None = None) -> Primitive:
    return primitive(name, _xp_fn(xp_name or name), np_fn, differentiable=False)


equal = _nondiff("equal", np.equal)
not_equal = _nondiff("not_equal", np.not_equal)
less = _nondiff("less", np.less)
less_equal = _nondiff("less_equal", np.less_equal)
greater = _nondiff("greater", np.greater)
greater_equal = _nondiff("greater_equal", np.greater_equal)
isnan = _nondiff("isnan", np.isnan)
isfinite = _nondiff("isfinite", np.isfinite)
isinf = _nondiff("isinf", np.isinf)
logical_not = _nondiff("logical_not", np.logical_not)
logical_and = _nondiff("logical_and", np.logical_and)
logical_or = _nondiff("logical_or", np.logical_or)
