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

from ..core.primitive import Primitive, ShapeOf, constant_value, primitive
from ._broadcast import align, unbroadcast


def _xp_fn(name: str) -> Callable[..., Any]:
    def impl(xp, *args):
        return getattr(xp, name)(*args)

    impl.__name__ = name
    return impl


def unary(name: str, np_fn: Any, scale: Callable[[Any, Any, Any], Any] | None,
          xp_name: str | None = None, saves: str = "inputs") -> Primitive:
    """Declare an elementwise unary primitive.

    ``scale(g, out, x)`` multiplies a cotangent or tangent by the derivative
    ``f'(x)``: for an elementwise function the reverse and the forward rule
    are the same product, so one function serves as both.  ``saves`` says
    whether ``scale`` reads ``x`` ("inputs"), ``out`` ("output"), both or neither.
    """
    if scale is None:  # piecewise constant: derivative zero everywhere it exists
        scale, saves = _zero_scale, "nothing"
    return primitive(name, _xp_fn(xp_name or name), np_fn, vjp=(scale,), jvp=(scale,),
                     saves=saves)


def _zero_scale(g, out, x):
    return g * 0.0


def binary(name: str, np_fn: Any, dx: Callable[..., Any] | None,
           dy: Callable[..., Any] | None, xp_name: str | None = None,
           saves: str = "both") -> Primitive:
    """Declare an elementwise binary primitive with partials ``dx(x, y, out)``, ``dy(...)``."""
    vjp_x = None if dx is None else (lambda g, out, x, y: unbroadcast(g * dx(x, y, out), x, out))
    vjp_y = None if dy is None else (lambda g, out, x, y: unbroadcast(g * dy(x, y, out), y, out))
    jvp_x = None if dx is None else (lambda t, out, x, y: align(t, x, out) * dx(x, y, out))
    jvp_y = None if dy is None else (lambda t, out, x, y: align(t, y, out) * dy(x, y, out))
    return primitive(name, _xp_fn(xp_name or name), np_fn,
                     vjp=(vjp_x, vjp_y), jvp=(jvp_x, jvp_y), saves=saves)


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
    saves="nothing",
)
subtract = primitive(
    "subtract", _xp_fn("subtract"), _fast(operator.sub, np.subtract),
    vjp=(lambda g, out, x, y: unbroadcast(g, x, out), lambda g, out, x, y: _sub_y_vjp(g, y, out)),
    jvp=(lambda t, out, x, y: _bcast_tangent(t, x, out),
         lambda t, out, x, y: -_bcast_tangent(t, y, out)),
    saves="nothing",
)
multiply = primitive(
    "multiply", _xp_fn("multiply"), _fast(operator.mul, np.multiply),
    vjp=(lambda g, out, x, y: _same_shape(g * y, x, out),
         lambda g, out, x, y: _same_shape(g * x, y, out)),
    jvp=(lambda t, out, x, y: align(t, x, out) * y, lambda t, out, x, y: x * align(t, y, out)),
    saves="inputs",
)
divide = primitive(
    "divide", _xp_fn("divide"), _fast(operator.truediv, np.divide),
    vjp=(lambda g, out, x, y: unbroadcast(g / y, x, out),
         lambda g, out, x, y: unbroadcast(-g * out / y, y, out)),
    jvp=(lambda t, out, x, y: align(t, x, out) / y,
         lambda t, out, x, y: -align(t, y, out) * out / y),
)
negative = primitive("negative", _xp_fn("negative"), operator.neg,
                     vjp=(lambda g, out, x: -g,), jvp=(lambda t, out, x: -t,), saves="nothing")
positive = primitive("positive", _xp_fn("positive"), np.positive,
                     vjp=(lambda g, out, x: g,), jvp=(lambda t, out, x: t,), saves="nothing")


def _sub_y_vjp(g, y, out):
    if type(g) is np.ndarray and g.shape != np.shape(y):
        return np.negative(unbroadcast(g, y, out))  # negate the (smaller) sum, not g
    return unbroadcast(-g, y, out)


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
    raw = out
    while hasattr(raw, "_level"):
        raw = raw.data
    if type(raw) is ShapeOf:  # power keeps its inputs only (x ** c, the usual case, needs no
        out = power(x, y)     # output): a differentiable exponent recomputes it
    if type(x) in _PY_SCALARS:  # a constant base: log(x) is a number (no NumPy scalar made)
        if x == 0:
            return out * 0.0
        if type(x) is complex:
            return out * cmath.log(x)
        return out * (math.log(x) if x > 0 else math.nan)
    safe = where(x == 0, 1.0, x)
    return where(x == 0, 0.0, out * log(safe))


power = binary("power", _fast(operator.pow, np.power), _pow_dx, _pow_dy, xp_name="pow",
               saves="inputs")
square = unary("square", np.square, lambda g, o, x: g * (2.0 * x))
sqrt = unary("sqrt", np.sqrt, lambda g, o, x: g * 0.5 / o, saves="output")
cbrt = unary("cbrt", np.cbrt, lambda g, o, x: g / (3.0 * o * o), saves="output")
cbrt.impl = lambda xp, x: xp.sign(x) * xp.abs(x) ** (1.0 / 3.0)
reciprocal = unary("reciprocal", np.reciprocal, lambda g, o, x: -g * o * o, saves="output")
reciprocal.impl = lambda xp, x: 1.0 / x
absolute = unary("absolute", np.absolute, lambda g, o, x: g * sign(x), xp_name="abs")
sign: Primitive = unary("sign", np.sign, None)
# (complex inputs: the complex section below adds their rules for complex data)
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

exp = unary("exp", np.exp, lambda g, o, x: g * o, saves="output")
exp2 = unary("exp2", np.exp2, lambda g, o, x: g * o * _LN2, saves="output")
exp2.impl = lambda xp, x: xp.pow(2.0, x) if not hasattr(xp, "exp2") else xp.exp2(x)
expm1 = unary("expm1", np.expm1, lambda g, o, x: g * (o + 1.0), saves="output")
log = primitive("log", _xp_fn("log"), np.log,
                vjp=(lambda g, out, x: g / x,), jvp=(lambda t, out, x: t / x,), saves="inputs")
log2 = unary("log2", np.log2, lambda g, o, x: g / (x * _LN2))
log10 = unary("log10", np.log10, lambda g, o, x: g / (x * _LN10))
log1p = primitive("log1p", _xp_fn("log1p"), np.log1p,
                  vjp=(lambda g, out, x: _fresh_times(g, x + 1.0, None, np.divide)
                       if _is_plain(g) and type(x) is np.ndarray else g / (x + 1.0),),
                  jvp=(lambda t, out, x: t / (x + 1.0),),
                  saves="inputs")
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
cos: Primitive = unary("cos", np.cos, lambda g, o, x: -g * sin(x))
tan = unary("tan", np.tan, lambda g, o, x: g * (1.0 + o * o), saves="output")
arcsin = unary("arcsin", np.arcsin, lambda g, o, x: g / sqrt(1.0 - x * x), xp_name="asin")
arccos = unary("arccos", np.arccos, lambda g, o, x: -g / sqrt(1.0 - x * x), xp_name="acos")
arctan = unary("arctan", np.arctan, lambda g, o, x: g / (1.0 + x * x), xp_name="atan")
sinh = unary("sinh", np.sinh, lambda g, o, x: g * cosh(x))
cosh: Primitive = unary("cosh", np.cosh, lambda g, o, x: g * sinh(x))
tanh = unary("tanh", np.tanh, lambda g, o, x: _fresh_times(g, o * o, _one_minus) if _is_plain(g)
              and type(o) is np.ndarray else g * (1.0 - o * o), saves="output")
arcsinh = unary("arcsinh", np.arcsinh, lambda g, o, x: g / sqrt(x * x + 1.0), xp_name="asinh")
arccosh = unary("arccosh", np.arccosh, lambda g, o, x: g / sqrt(x * x - 1.0), xp_name="acosh")
arctanh = unary("arctanh", np.arctanh, lambda g, o, x: g / (1.0 - x * x), xp_name="atanh")
arctan2 = binary("arctan2", np.arctan2,
                 lambda y, x, o: x / (x * x + y * y), lambda y, x, o: -y / (x * x + y * y),
                 xp_name="atan2", saves="inputs")
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
                       _where_jvp(1), _where_jvp(2)), saves="inputs")


#: The test ``x_wins(a, b)`` of each select op ("a is chosen over b"), by op name.
_WINS: dict[str, Callable[[Any, Any], Any]] = {}


def select(name: str, np_fn: Any, x_wins: Callable[[Any, Any], Any]) -> Primitive:
    """A binary op that returns one of its operands (max/min and kin).

    The derivative goes to the chosen operand; at a tie (``x == y``) it is
    shared equally, so ties are handled deterministically and symmetrically.
    Both rules are one :data:`select_grad` (so a recorded backward pass is
    one mask multiply, not a chain of ``where``); on plain NumPy values the
    reverse rule calls its kernel directly.
    """
    _WINS[name] = x_wins

    def vjp(first):
        def rule(g, out, x, y):
            a = x if first else y
            if _is_plain(g) and _is_plain(x) and _is_plain(y):
                b = y if first else x
                return unbroadcast(_share_np(g, x, y, x_wins(a, b)), a, out)
            return unbroadcast(select_grad(g, constant_value(x), constant_value(y), op=name,
                                           first=first), a, out)

        return rule

    def jvp(first):
        def rule(t, out, x, y):
            t = align(t, x if first else y, out)
            return select_grad(t, constant_value(x), constant_value(y), op=name, first=first)

        return rule

    return primitive(name, _xp_fn(name), np_fn, vjp=(vjp(True), vjp(False)),
                     jvp=(jvp(True), jvp(False)), saves="inputs")


def _is_plain(v: Any) -> bool:
    """A NumPy array or a Python/NumPy number (not a box, not another array library)."""
    return type(v) is np.ndarray or type(v) in _PY_SCALARS or isinstance(v, np.generic)


def _ties(x, y, tie):
    """Where ``x == y`` when ties get a share (``tie``) and there are any, else ``None``."""
    if not tie:
        return None
    ties = x == y
    return ties if ties is True or (ties is not False and ties.any()) else None


def _with_ties(g, wins, ties, tie):
    """``g`` where ``wins``, ``tie * g`` where ``ties``, zero elsewhere."""
    w = np.asarray(wins, dtype=np.result_type(g, np.float32))
    w[np.broadcast_to(ties, w.shape)] = tie
    return g * w


def _share_np(g, x, y, wins, tie=0.5):
    """``g`` where ``wins``, ``tie * g`` at ties (``x == y``), zero elsewhere: NumPy values."""
    ties = _ties(x, y, tie)
    return g * wins if ties is None else _with_ties(g, wins, ties, tie)  # (bools keep g's dtype)


def _wins(x, y, op, first):
    return _WINS[op](x, y) if first else _WINS[op](y, x)


def _select_grad_impl(xp, g, x, y, op, first, tie=0.5):
    share = xp.asarray(tie, dtype=g.dtype)
    zero = xp.asarray(0.0, dtype=g.dtype)
    return xp.where(_wins(x, y, op, first), g, xp.where(x == y, g * share, g * zero))


def _select_grad_np(g, x, y, op, first, tie=0.5):
    return _share_np(g, x, y, _wins(x, y, op, first), tie)


def _select_grad_into(g, x, y, *, out, op, first, tie=0.5):
    """``select_grad`` into ``out`` (element by element, so ``out`` may be one of the inputs)."""
    wins = _wins(x, y, op, first)
    ties = _ties(x, y, tie)
    if ties is None:
        np.multiply(g, wins, out=out)
    else:
        np.copyto(out, _with_ties(g, wins, ties, tie))
    return out


# The reverse and forward rule of every select op: ``g`` where the operand (``x`` if
# ``first``, else ``y``) is chosen, ``tie * g`` at ties (half: the select ops share it; relu
# gives none), zero elsewhere.  Linear in ``g``; ``x`` and ``y`` only choose, a
# piecewise-constant choice that gets no derivative.
select_grad: Primitive = primitive(
    "select_grad", _select_grad_impl, _select_grad_np,
    vjp=(lambda c, out, g, x, y, op, first, tie=0.5: unbroadcast(
        select_grad(c, x, y, op=op, first=first, tie=tie), g, out), None, None),
    jvp=(lambda t, out, g, x, y, op, first, tie=0.5: select_grad(
        align(t, g, out), x, y, op=op, first=first, tie=tie), None, None),
    saves="inputs",
)
select_grad.np_out_impl = _select_grad_into


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
    saves="inputs",
)


def _mod_impl(xp, x, y):
    return xp.remainder(x, y)


mod = binary("mod", np.mod, lambda x, y, o: o * 0.0 + 1.0, lambda x, y, o: -floor(x / y))
mod.impl = _mod_impl

trunc = unary("trunc", np.trunc, None)
fmod = binary("fmod", np.fmod, lambda x, y, o: o * 0.0 + 1.0, lambda x, y, o: -trunc(x / y))
floor_divide = binary("floor_divide", np.floor_divide,
                      lambda x, y, o: o * 0.0, lambda x, y, o: o * 0.0)

def _one_minus(d):
    return np.subtract(1.0, d, out=d)


def _fresh_times(g, d, prep=None, ufunc=np.multiply):
    """``ufunc(g, prep(d))`` for NumPy values, reusing the temporary ``d`` as the result."""
    if prep is not None:
        d = prep(d)
    if type(d) is np.ndarray and d.shape == np.shape(g) and np.result_type(g, d) == d.dtype:
        return ufunc(g, d, out=d)
    return ufunc(g, d)


# --- in-place reverse rules (NumPy values, a cotangent the sweep owns: see Primitive) ----------


def _into(g, d, ufunc=np.multiply):
    """``ufunc(g, d)`` written into ``g`` when that keeps its shape and dtype, else a new array."""
    if type(g) is np.ndarray:
        if type(d) is float and g.dtype.kind in "fc":  # a Python float keeps g's dtype
            return ufunc(g, d, out=g)
        if type(d) is np.ndarray and d.dtype == g.dtype and (d.shape == g.shape or not d.ndim):
            return ufunc(g, d, out=g)
        if np.result_type(g, d) == g.dtype \
                and np.broadcast_shapes(np.shape(d), g.shape) == g.shape:
            return ufunc(g, d, out=g)
    return ufunc(g, d)


def _tanh_into(g, o, x):
    d = o * o
    np.subtract(1.0, d, out=d)
    return _into(g, d)


def _pow_into(g, out, x, y):
    if type(y) in _PY_SCALARS and y == 2:  # g * 2x, with no temporary
        g = _into(g, x)
        return unbroadcast(_into(g, 2.0), x, out)
    return unbroadcast(_into(g, _pow_dx(x, y, out)), x, out)


def _log1p_into(g, out, x):
    d = x + 1.0
    return _into(g, d, np.divide)


def _mul_into(which):
    def rule(g, out, x, y):
        return unbroadcast(_into(g, y if which == 0 else x), x if which == 0 else y, out)

    return rule


def _div_x_into(g, out, x, y):
    return unbroadcast(_into(g, y, np.divide), x, out)


def _neg_into(g, out, x):
    return np.negative(g, out=g)


def _scaled_into(scale):
    """In-place form of a unary rule ``g * f'(...)``: the derivative, then one multiply."""
    def rule(g, out, x):
        return _into(g, scale(out, x))

    return rule


def _bool_into(g, mask):
    return np.multiply(g, mask, out=g)


tanh.vjp_inplace = (_tanh_into,)
exp.vjp_inplace = (lambda g, o, x: _into(g, o),)
log.vjp_inplace = (lambda g, o, x: _into(g, x, np.divide),)
log1p.vjp_inplace = (_log1p_into,)
sqrt.vjp_inplace = (lambda g, o, x: _into(_into(g, o, np.divide), 0.5),)
sin.vjp_inplace = (_scaled_into(lambda o, x: np.cos(x)),)
cos.vjp_inplace = (_scaled_into(lambda o, x: -np.sin(x)),)
square.vjp_inplace = (lambda g, o, x: _into(_into(g, x), 2.0),)
negative.vjp_inplace = (_neg_into,)
multiply.vjp_inplace = (_mul_into(0), _mul_into(1))
divide.vjp_inplace = (_div_x_into, None)
power.vjp_inplace = (_pow_into, None)


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


# --- complex numbers -------------------------------------------------------------------
# Convention (API section 11): a cotangent ``c`` acts on a tangent ``t`` as ``Re(sum(c * t))``,
# so the VJP is the transpose of the real-linear JVP with no conjugation.  Holomorphic rules
# (``g * f'(x)``) therefore hold as written; the non-holomorphic ones below need their own.


def is_complex(x: Any) -> bool:
    """True for complex data (boxes are looked through; any array library)."""
    while hasattr(x, "_level"):
        x = x.data
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return isinstance(x, complex)
    kind = getattr(dtype, "kind", None)
    return kind == "c" if isinstance(kind, str) else "complex" in str(dtype)


def _complex_like(ct: Any, x: Any) -> Any:
    """``ct`` with a complex dtype where the input ``x`` is complex (its cotangent's dtype)."""
    return ct + 0j if is_complex(x) and not is_complex(ct) else ct


# (the array API standard defines real/imag/conj for complex dtypes only)
def _real_impl(xp, x):
    return xp.real(x) if is_complex(x) else x


def _imag_impl(xp, x):
    return xp.imag(x) if is_complex(x) else xp.zeros_like(x)


def _conj_impl(xp, x):
    return xp.conj(x) if is_complex(x) else x


def _angle_impl(xp, x):
    if xp is np:
        return np.angle(x)
    if not is_complex(x):
        return xp.where(x < 0, xp.full_like(x, math.pi), xp.zeros_like(x))
    return xp.atan2(xp.imag(x), xp.real(x))


real: Primitive = primitive(
    "real", _real_impl, np.real,
    vjp=(lambda g, out, x: _complex_like(real(g), x),),
    jvp=(lambda t, out, x: real(t),),
)
imag: Primitive = primitive(
    "imag", _imag_impl, np.imag,
    # d imag(z) = Re(-i dz): the cotangent is -i Re(g); a real input has imag(x) = 0.
    vjp=(lambda g, out, x: real(g) * -1j if is_complex(x) else g * 0.0,),
    jvp=(lambda t, out, x: imag(t),),
)
conj: Primitive = primitive(
    "conj", _conj_impl, np.conj,
    # Re(c * conj(dz)) = Re(conj(c) * dz)
    vjp=(lambda g, out, x: conj(g),),
    jvp=(lambda t, out, x: conj(t),),
)


def _angle_vjp(g, out, x):
    if not is_complex(x):  # 0 or pi: piecewise constant
        return g * 0.0
    # d angle(z) = Im(conj(z) dz) / |z|^2 = Re(-i conj(z) dz) / |z|^2
    return real(g) * -1j * conj(x) / _abs2(x)


def _angle_jvp(t, out, x):
    if not is_complex(x):
        return real(t) * 0.0
    return imag(conj(x) * t) / _abs2(x)


def _abs2(z):
    return real(z) * real(z) + imag(z) * imag(z)


angle = primitive("angle", _angle_impl, np.angle, vjp=(_angle_vjp,), jvp=(_angle_jvp,))


def _abs_vjp(g, out, x):  # d|z| = Re(conj(z) dz) / |z|; 0 at z = 0 (a subgradient, as for reals)
    r = absolute(x)  # (from x: abs saves its input only, so ``out`` may be a shape stand-in)
    return (real(g) / where(r == 0, 1.0, r)) * conj(x)  # the division on reals


def _abs_jvp(t, out, x):
    r = absolute(x)
    return real(conj(x) * t) / where(r == 0, 1.0, r)


def _sign_vjp(g, out, x):  # sign(z) = z / |z| is not constant off the real line
    r = absolute(x)
    r = where(r == 0, 1.0, r)
    return g / r - real(g * x) * conj(x) / (r * r * r)


def _sign_jvp(t, out, x):
    r = absolute(x)
    r = where(r == 0, 1.0, r)
    return t / r - x * real(conj(x) * t) / (r * r * r)


def _or_complex(rules: Any, complex_rule: Callable[..., Any]) -> tuple:
    """A one-input rule that runs ``complex_rule`` for complex inputs, the rule it had else."""
    real_rule = rules[0] if type(rules) is tuple else rules

    def rule(g, out, x):
        return complex_rule(g, out, x) if is_complex(x) else real_rule(g, out, x)

    return (rule,)


absolute.vjp, absolute.jvp = _or_complex(absolute.vjp, _abs_vjp), _or_complex(absolute.jvp,
                                                                              _abs_jvp)
sign.vjp, sign.jvp = _or_complex(sign.vjp, _sign_vjp), _or_complex(sign.jvp, _sign_jvp)
sign.saves = "inputs"  # the complex rule reads z (sign(z) = z / |z| is not constant)
