"""Every primitive's rules, checked numerically: a registry walk and a table of cases.

1. Registry walk: every registered differentiable primitive (custom ``cr.Function`` ops,
   whose names contain ``#``, excepted) has both a VJP and a JVP rule.
2. The table: ``check_grads(order=2, modes=("fwd", "rev"))`` -- forward and reverse, first
   and second order, against central differences -- on every differentiable primitive of
   ops/elementwise.py, ops/nn.py, ops/reductions.py, ops/_broadcast.py and ``astype``, with
   inputs drawn inside each function's domain, over shapes with broadcasting pairs, scalars
   and size-1 axes (reductions: several axis/keepdims combinations).  A coverage test fails
   when a primitive of those modules has no case.

TO ADD A PRIMITIVE: append ``Case(...)`` entries to ``CASES`` (or use the helpers
``unary_cases`` / ``binary_cases``): ``prims`` names the registry entries the case
exercises, ``fn`` is a function of arrays, ``args`` the point to check at.

3. The numbers that issue 3 asks to be shown (values and derivatives in both modes).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core.primitive import registry
from chainrule.ops import _broadcast as B
from chainrule.ops import creation as C
from chainrule.ops import elementwise as E
from chainrule.ops import nn as N
from chainrule.ops import reductions as R
from chainrule.ops import updates as U

CF = importlib.import_module("chainrule.control_flow")
P = importlib.import_module("chainrule.core.primitive")  # the module (a function shares its name)

TABLE_MODULES = {
    "chainrule.ops.elementwise", "chainrule.ops.nn", "chainrule.ops.reductions",
    "chainrule.ops._broadcast", "chainrule.ops.creation",
}


# --- 1. registry walk ------------------------------------------------------------------------


def test_every_differentiable_primitive_has_both_rules():
    missing = []
    for name, prim in registry.items():
        if "#" in name or not prim.differentiable:
            continue
        if prim.vjp is None:
            missing.append(f"{name}: no vjp")
        if prim.jvp is None:
            missing.append(f"{name}: no jvp")
    assert not missing, "primitives without rules: " + ", ".join(missing)


def test_every_primitive_declares_what_its_reverse_rule_saves():
    bad = [f"{n}: {p.saves!r}" for n, p in registry.items() if p.saves not in P.SAVES]
    assert not bad, "primitives with an unknown saves column: " + ", ".join(bad)


@pytest.fixture(autouse=True)
def _rules_see_only_what_they_declare(monkeypatch):
    # Every value a rule did not declare reaches it as a ShapeOf stand-in, however small:
    # a rule that reads one fails here, so each case below also checks the saves column.
    monkeypatch.setattr(P, "KEEP_BELOW", 0)


def test_non_differentiable_primitives_return_plain_arrays():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    for name, prim in registry.items():
        if "#" not in name and not prim.differentiable and name in ("less", "equal", "isnan"):
            out = prim(x, x) if name != "isnan" else prim(x)
            assert not isinstance(out, cr.Tensor)


# --- 2. the table ------------------------------------------------------------------------------

_rng = np.random.default_rng(20240611)


@dataclass
class Case:
    prims: tuple[str, ...]          # registry names exercised (for the coverage test)
    fn: Callable[..., Any]          # a function of arrays
    args: tuple                     # where to check
    id: str
    order: int = 2
    tol: dict = field(default_factory=dict)   # eps / rtol / atol overrides


# Samplers: each returns a float64 array of the given shape inside a domain.
def uniform(lo, hi):
    return lambda shape: _rng.uniform(lo, hi, size=shape)


def away_from_zero(lo=0.4, hi=2.0):
    return lambda shape: _rng.uniform(lo, hi, size=shape) * _rng.choice([-1.0, 1.0], size=shape)


def off_integers(frac_lo=0.15, frac_hi=0.35):
    """Values whose fractional part keeps clear of integers and half-integers."""
    return lambda shape: (_rng.integers(-3, 3, size=shape)
                          + _rng.uniform(frac_lo, frac_hi, size=shape)).astype(np.float64)


ANY = uniform(-2.0, 2.0)
POS = uniform(0.5, 3.0)
UNIT = uniform(-0.9, 0.9)

UNARY_SHAPES = [(), (3,), (2, 1, 3)]
BINARY_SHAPES = [((3,), (3,)), ((3,), (2, 3)), ((2, 1), (1, 3)), ((), (2, 3)), ((2, 3), ()),
                 ((1,), (4,)), ((), ())]


def _shape_id(*shapes):
    return "x".join("(" + ",".join(map(str, s)) + ")" for s in shapes)


def unary_cases(name, fn, sample, shapes=UNARY_SHAPES, prims=None, **kw):
    return [Case(prims or (name,), fn, (sample(s),), f"{name}-{_shape_id(s)}", **kw)
            for s in shapes]


def binary_cases(name, fn, sample_x, sample_y=None, shapes=BINARY_SHAPES, prims=None, **kw):
    sample_y = sample_y or sample_x
    return [Case(prims or (name,), fn, (sample_x(sx), sample_y(sy)),
                 f"{name}-{_shape_id(sx, sy)}", **kw) for sx, sy in shapes]


def _clip_args(shape_x, shape_lo, shape_hi):
    x = ANY(shape_x)
    lo = -0.5 + 0.05 * _rng.standard_normal(shape_lo)
    hi = 0.5 + 0.05 * _rng.standard_normal(shape_hi)
    lo_b, hi_b = np.broadcast_to(lo, np.broadcast_shapes(shape_x, shape_lo, shape_hi)), \
        np.broadcast_to(hi, np.broadcast_shapes(shape_x, shape_lo, shape_hi))
    xb = np.broadcast_to(x, lo_b.shape)
    # keep x clear of the bounds (the derivative jumps there)
    near = (np.abs(xb - lo_b) < 0.15) | (np.abs(xb - hi_b) < 0.15)
    if np.any(near):
        x = np.where(np.abs(x) < 0.3, 0.0, np.sign(x) * 1.2) if x.shape == xb.shape else x * 0 + 1.2
    return x, lo, hi


def _mod_args(shape_x, shape_y):
    y = uniform(0.7, 1.5)(shape_y)
    k = _rng.integers(-2, 3, size=np.broadcast_shapes(shape_x, shape_y))
    u = _rng.uniform(0.2, 0.8, size=k.shape)
    x = y * (k + u)                       # x / y keeps clear of integers: mod is smooth there
    if x.shape != shape_x:               # x must have its own (smaller) shape: use y's max
        x = uniform(0.2, 0.6)(shape_x)
        y = uniform(1.0, 1.5)(shape_y)
    return x, y


COND23 = np.array([[True, False, True], [False, False, True]])


CASES: list[Case] = []

# --- elementwise: arithmetic
CASES += binary_cases("add", E.add, ANY)
CASES += binary_cases("subtract", E.subtract, ANY)
CASES += binary_cases("multiply", E.multiply, ANY)
CASES += binary_cases("divide", E.divide, ANY, away_from_zero())
CASES += binary_cases("power", E.power, POS, uniform(-1.5, 1.5))
CASES += unary_cases("power", lambda x: E.power(x, 3.0), ANY, [(3,)], prims=("power",))
CASES += unary_cases("power", lambda x: E.power(x, 2), ANY, [(2, 1)], prims=("power",))
CASES += unary_cases("power", lambda x: E.power(x, 1), ANY, [(3,)], prims=("power",))
CASES += unary_cases("power", lambda x: E.power(2.0, x), ANY, [(3,)], prims=("power",))
CASES += unary_cases("negative", E.negative, ANY)
CASES += unary_cases("positive", E.positive, ANY)
CASES += unary_cases("square", E.square, ANY)
CASES += unary_cases("sqrt", E.sqrt, POS)
CASES += unary_cases("cbrt", E.cbrt, away_from_zero())
CASES += unary_cases("reciprocal", E.reciprocal, away_from_zero())
CASES += unary_cases("absolute", E.absolute, away_from_zero())
CASES += unary_cases("sign", E.sign, away_from_zero())
CASES += unary_cases("floor", E.floor, off_integers())
CASES += unary_cases("ceil", E.ceil, off_integers())
CASES += unary_cases("round", E.round_, off_integers())
CASES += unary_cases("real", E.real, ANY)  # complex inputs: tests/test_complex_table.py
CASES += unary_cases("imag", E.imag, ANY)
CASES += unary_cases("conj", E.conj, ANY)
CASES += unary_cases("angle", E.angle, away_from_zero())
# --- exponentials and logarithms
CASES += unary_cases("exp", E.exp, ANY)
CASES += unary_cases("exp2", E.exp2, ANY)
CASES += unary_cases("expm1", E.expm1, ANY)
CASES += unary_cases("log", E.log, POS)
CASES += unary_cases("log2", E.log2, POS)
CASES += unary_cases("log10", E.log10, POS)
CASES += unary_cases("log1p", E.log1p, uniform(-0.5, 2.0))
CASES += binary_cases("logaddexp", E.logaddexp, ANY)
CASES += binary_cases("logaddexp2", E.logaddexp2, ANY)
# --- trigonometric and hyperbolic
CASES += unary_cases("sin", E.sin, ANY)
CASES += unary_cases("cos", E.cos, ANY)
CASES += unary_cases("tan", E.tan, uniform(-1.2, 1.2))
CASES += unary_cases("arcsin", E.arcsin, UNIT)
CASES += unary_cases("arccos", E.arccos, UNIT)
CASES += unary_cases("arctan", E.arctan, ANY)
CASES += unary_cases("sinh", E.sinh, ANY)
CASES += unary_cases("cosh", E.cosh, ANY)
CASES += unary_cases("tanh", E.tanh, ANY)
CASES += unary_cases("arcsinh", E.arcsinh, ANY)
CASES += unary_cases("arccosh", E.arccosh, uniform(1.1, 3.0))
CASES += unary_cases("arctanh", E.arctanh, UNIT)
CASES += binary_cases("arctan2", E.arctan2, away_from_zero(), away_from_zero())
CASES += binary_cases("hypot", E.hypot, away_from_zero(), away_from_zero())
CASES += unary_cases("sinc", E.sinc, away_from_zero(0.2, 2.0))
# --- selection
CASES += [
    Case(("where",), lambda x, y: E.where(COND23, x, y), (ANY((2, 3)), ANY((2, 3))), "where-same"),
    Case(("where",), lambda x, y: E.where(COND23, x, y), (ANY((3,)), ANY(())), "where-bcast"),
    Case(("where",), lambda x, y: E.where(COND23[:1], x, y), (ANY((2, 1)), ANY((1, 3))),
         "where-size1"),
    Case(("where",), lambda x: E.where(COND23, x, 0.0), (ANY((2, 3)),), "where-const"),
]
CASES += binary_cases("maximum", E.maximum, ANY)
CASES += binary_cases("minimum", E.minimum, ANY)
CASES += binary_cases("fmax", E.fmax, ANY)
CASES += binary_cases("fmin", E.fmin, ANY)
CASES += [
    Case(("clip",), E.clip, _clip_args((2, 3), (2, 3), (2, 3)), "clip-arrays"),
    Case(("clip",), E.clip, _clip_args((2, 3), (3,), ()), "clip-bcast"),
    Case(("clip",), E.clip, _clip_args((), (), ()), "clip-scalars"),
    Case(("clip",), lambda x: E.clip(x, -0.5, 0.5),
         (np.array([-1.5, -0.2, 0.3, 1.4, 0.1]),), "clip-const"),
    Case(("clip",), lambda x: cnp.clip(x, None, 0.5), (np.array([-1.5, 0.3, 1.4]),),
         "clip-none"),
]
CASES += [Case(("mod",), E.mod, _mod_args(sx, sy), f"mod-{_shape_id(sx, sy)}")
          for sx, sy in [((3,), (3,)), ((2, 3), (3,)), ((), ()), ((2, 1), (1, 3))]]

# --- nn activations and friends
CASES += unary_cases("sigmoid", N.sigmoid, ANY)
CASES += unary_cases("relu", N.relu, away_from_zero())
CASES += unary_cases("softplus", N.softplus, uniform(-4.0, 4.0))
CASES += unary_cases("log_sigmoid", N.log_sigmoid, uniform(-4.0, 4.0))
CASES += unary_cases("erf", N.erf, ANY)
for _name, _fn in (("softmax", N.softmax), ("log_softmax", N.log_softmax)):
    CASES += [
        Case((_name,), lambda x, f=_fn: f(x), (ANY((4,)),), f"{_name}-(4,)"),
        Case((_name,), lambda x, f=_fn: f(x, axis=0), (ANY((2, 3)),), f"{_name}-(2,3)-axis0"),
        Case((_name,), lambda x, f=_fn: f(x, axis=-1), (ANY((2, 3)),), f"{_name}-(2,3)-axis-1"),
        Case((_name,), lambda x, f=_fn: f(x, axis=1), (ANY((2, 1, 3)),), f"{_name}-size1-axis"),
    ]
CASES += binary_cases("binary_cross_entropy", N.binary_cross_entropy, uniform(0.1, 0.9),
                      uniform(0.0, 1.0), shapes=[((3,), (3,)), ((2, 3), (3,)), ((), ())])
CASES += [
    Case(("im2col",), lambda x: N.patches(x, 2), (ANY((1, 3, 3)),), "patches-k2"),
    Case(("im2col",), lambda x: N.patches(x, (2, 1), stride=2, padding=1), (ANY((2, 4, 3)),),
         "patches-stride-pad"),
    Case(("col2im",), lambda c: N.col2im(c, (3, 3), 2), (ANY((1, 2, 2, 2, 2)),), "col2im-k2"),
    Case(("col2im",), lambda c: N.col2im(c, (4, 3), (2, 1), stride=2, padding=1),
         (ANY((2, 2, 1, 3, 3)),), "col2im-stride-pad"),
    Case(("conv2d",), N.conv2d, (ANY((1, 2, 4, 4)), ANY((3, 2, 2, 2))), "conv2d"),
    Case(("conv2d",), lambda x, w: N.conv2d(x, w, stride=2, padding=1),
         (ANY((2, 1, 3, 3)), ANY((2, 1, 3, 3))), "conv2d-stride-pad"),
    Case(("linear",), N.linear, (ANY((2, 3)), ANY((4, 3)), ANY((4,))), "linear"),
    Case(("linear",), N.linear, (ANY((3,)), ANY((2, 3)), ANY((2,))), "linear-vector"),
    Case(("linear_nobias",), N.linear, (ANY((2, 1, 3)), ANY((4, 3))), "linear-nobias"),
]

# --- reductions: several axis / keepdims combinations (and the composites built on them)
_AXES = [((2, 1, 3), None, False), ((2, 1, 3), 0, False), ((2, 1, 3), -1, True),
         ((2, 1, 3), (0, 2), False), ((2, 1, 3), 1, True), ((3,), 0, True), ((), None, False)]
for _name, _fn, _prims in [("sum", R.sum, ("reduce_sum",)), ("max", R.max, ("reduce_max",)),
                           ("min", R.min, ("reduce_min",)), ("prod", R.prod, ("reduce_prod",)),
                           ("mean", R.mean, ("reduce_sum",)), ("var", R.var, ("reduce_sum",)),
                           ("std", R.std, ("reduce_sum",)),
                           ("logsumexp", R.logsumexp, ("reduce_logsumexp",))]:
    for _shape, _axis, _keep in _AXES:
        if _name in ("var", "std") and _shape == ():
            continue
        if _name == "std" and _axis == 1:  # std over a size-1 axis is sqrt(0): no derivative
            continue
        CASES.append(Case(_prims, lambda x, f=_fn, a=_axis, k=_keep: f(x, axis=a, keepdims=k),
                          (ANY(_shape),), f"{_name}-{_shape_id(_shape)}-axis{_axis}-keep{_keep}"))
for _name, _fn, _prim in [("cumsum", R.cumsum, "cumsum"), ("cumprod", R.cumprod, "cumprod")]:
    CASES += [
        Case((_prim,), lambda x, f=_fn: f(x), (ANY((2, 3)),), f"{_name}-flat"),
        Case((_prim,), lambda x, f=_fn: f(x, axis=0), (ANY((2, 1, 3)),), f"{_name}-axis0"),
        Case((_prim,), lambda x, f=_fn: f(x, axis=-1), (ANY((2, 3)),), f"{_name}-axis-1"),
        Case((_prim,), lambda x, f=_fn: f(x, axis=1), (ANY((2, 1, 3)),), f"{_name}-size1"),
    ]
CASES += [  # products with a zero take the exact (division-free) path
    Case(("reduce_prod",), lambda x: R.prod(x, axis=-1), (np.array([[1.5, 0.0, -2.0],
                                                                    [0.5, 1.2, 0.7]]),),
         "prod-with-zero"),
    # (order 2 differentiates the VJP at x +- eps v, where the zero became +-1e-6 and the
    # division path loses ~1e-10 relative: a larger step keeps the differences accurate)
    Case(("cumprod",), lambda x: R.cumprod(x, axis=0), (np.array([0.8, 0.0, -1.3, 2.0]),),
         "cumprod-with-zero", tol={"eps": 1e-4}),
]

# --- broadcasting primitives and astype
CASES += [
    Case(("broadcast_to",), lambda x: B.broadcast_to(x, shape=(2, 3)), (ANY((3,)),), "bcast-(3,)"),
    Case(("broadcast_to",), lambda x: B.broadcast_to(x, shape=(2, 3)), (ANY((2, 1)),),
         "bcast-(2,1)"),
    Case(("broadcast_to",), lambda x: B.broadcast_to(x, shape=(2,)), (ANY(()),), "bcast-()"),
    Case(("sum_to",), lambda x: B.sum_to(x, shape=(1, 3)), (ANY((2, 3)),), "sum_to-(1,3)"),
    Case(("sum_to",), lambda x: B.sum_to(x, shape=(2, 1)), (ANY((2, 3)),), "sum_to-(2,1)"),
    Case(("reshape",), lambda x: B.reshape(x, shape=(3, 2)), (ANY((2, 3)),), "reshape-(3,2)"),
    Case(("reshape",), lambda x: B.reshape(x, shape=(2, 1, 3)), (ANY((6,)),), "reshape-size1"),
    Case(("reshape",), lambda x: B.reshape(x, shape=(1,)), (ANY(()),), "reshape-scalar"),
    Case(("transpose",), lambda x: B.transpose_p(x, axes=(1, 0)), (ANY((2, 3)),), "transpose-2d"),
    Case(("transpose",), lambda x: B.transpose_p(x, axes=(2, 0, 1)), (ANY((2, 1, 3)),),
         "transpose-3d"),
    Case(("astype",), lambda x: C.astype(x, np.float32), (ANY((3,)),), "astype-f64-to-f32"),
    Case(("astype",), lambda x: C.astype(x, np.float64), (ANY((2, 3)).astype(np.float32),),
         "astype-f32-to-f64"),
]
# float32 inputs keep float32 through the rules (checked against float64 differences)
def _distinct(shape):  # no ties inside pooling windows
    n = int(np.prod(shape))
    return _rng.permutation(n).reshape(shape) / n * 4.0 - 2.0


def _max_pool_grad(k, s, p, x):
    """``max_pool2d``'s reverse rule at ``x`` as a function of the cotangent (linear in it;
    x and the pooled values are constants of the rule)."""
    return lambda g: N.max_pool2d_grad_p(g, x, N.max_pool2d(x, k, stride=s, padding=p),
                                         kernel=(k, k), stride=(s, s), padding=(p, p))


def _select_grad(op, first, x, y):
    """A select op's rule at ``(x, y)`` as a function of the cotangent (linear in it; x and y
    only choose, ties included: the shared half)."""
    return lambda g: E.select_grad(g, x, y, op=op, first=first)


_SEL_X = np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -2.0]])  # 0.0 ties with y below
_SEL_Y = np.array([0.0, 1.0, -2.5])
CASES += [  # the select ops' rule (recorded backward passes bind it)
    Case(("select_grad",), _select_grad("maximum", True, _SEL_X, _SEL_Y), (ANY((2, 3)),),
         "select_grad-maximum-x-ties"),
    Case(("select_grad",), _select_grad("minimum", False, _SEL_X, _SEL_Y), (ANY((2, 3)),),
         "select_grad-minimum-y"),
    Case(("select_grad",), _select_grad("maximum", False, _SEL_X, _SEL_Y[None, :1]),
         (ANY((2, 3)),), "select_grad-broadcast"),
    Case(("select_grad",), lambda g: E.select_grad(g, _SEL_X, 0.0, op="maximum", first=True,
                                                   tie=0.0), (ANY((2, 3)),), "select_grad-relu"),
]


CASES += [  # layer primitives of ops/nn.py
    Case(("max_pool2d",), lambda x: N.max_pool2d(x, 2), (_distinct((1, 2, 4, 4)),),
         "max_pool2d-k2"),
    Case(("max_pool2d_grad",), _max_pool_grad(2, 2, 0, _distinct((1, 2, 4, 4))),
         (ANY((1, 2, 2, 2)),), "max_pool2d_grad-k2"),
    Case(("max_pool2d_grad",), _max_pool_grad(3, 2, 1, _distinct((2, 5, 5))),
         (ANY((2, 3, 3)),), "max_pool2d_grad-overlap-pad"),
    Case(("max_pool2d",), lambda x: N.max_pool2d(x, 3, stride=2, padding=1),
         (_distinct((2, 5, 5)),), "max_pool2d-stride-pad"),
    Case(("avg_pool2d",), lambda x: N.avg_pool2d(x, 2), (ANY((1, 2, 4, 4)),), "avg_pool2d-k2"),
    Case(("avg_pool2d",), lambda x: N.avg_pool2d(x, 3, stride=2, padding=1,
                                                 count_include_pad=False),
         (ANY((2, 5, 5)),), "avg_pool2d-pad-exclude"),
    Case(("conv2d_bias",), lambda x, w, b: N.conv2d(x, w, stride=2, padding=1, bias=b),
         (ANY((2, 1, 3, 3)), ANY((2, 1, 3, 3)), ANY((2,))), "conv2d-bias"),
    Case(("softmax_cross_entropy",), lambda z: N.softmax_cross_entropy(z, np.array([0, 2, 1])),
         (ANY((3, 4)),), "xent-mean"),
    Case(("softmax_cross_entropy",),
         lambda z: N.softmax_cross_entropy(z, np.array([[0, 1], [2, 2]]), axis=1,
                                           reduction="none"),
         (ANY((2, 3, 2)),), "xent-none-axis1"),
]

CASES += [Case(c.prims, c.fn, tuple(a.astype(np.float32) for a in c.args), c.id + "-f32")
          for c in CASES if c.id.endswith("-(3,)") and c.prims[0] in
          ("exp", "log", "tanh", "sigmoid", "softplus", "arcsin", "sqrt", "sin")]


# --- issue 16: NumPy names HIPS users' code calls, differentiable creation, index updates ---
_SEL = [np.array([True, False, True]), np.array([False, True, True])]
CASES += [
    Case(("trunc",), E.trunc, (off_integers()((2, 3)),), "trunc-(2,3)"),
    Case(("floor_divide",), E.floor_divide, (off_integers()((2, 3)), uniform(2.5, 2.9)((3,))),
         "floor_divide-bcast"),
    *[Case(("fmod",), E.fmod, _mod_args(sx, sy), f"fmod-{_shape_id(sx, sy)}")
      for sx, sy in [((3,), (3,)), ((2, 3), (3,)), ((), ()), ((2, 1), (1, 3))]],
    Case(("fmod",), lambda x, y: E.fmod(-x, y), _mod_args((3,), (3,)), "fmod-negative"),
    Case(("mod",), lambda x: E.mod(x, np.array([1.7, 2.3, 2.9])), (uniform(0.2, 0.6)(()),),
         "mod-scalar-x-bcast"),
    Case(("power",), lambda x: E.power(x, 0.0) * x, (np.array([0.0, 1.5]),), "power-zero-exp"),
    Case(("power",), lambda x: E.power(x, np.array([0.0, 2.0])), (np.array([0.0, 1.5]),),
         "power-zero-exp-array"),
    Case(("where",), lambda c, x: E.where(c, x, 0.0), (np.array([1.0, -2.0, 0.5]), ANY((3,))),
         "where-float-condition"),
    Case(("concatenate",), lambda a, b: cnp.append(a, b), (ANY((2, 2)), ANY((3,))),
         "append-flat"),
    Case(("concatenate",), lambda a, b: cnp.append(a, b, axis=1), (ANY((2, 2)), ANY((2, 1))),
         "append-axis1"),
    Case(("getitem",), lambda a: cnp.diff(a, n=2, axis=0), (ANY((4, 3)),), "diff-n2"),
    Case(("getitem",), lambda a, p: cnp.diff(a, prepend=p, append=1.0), (ANY((2, 3)), ANY(())),
         "diff-prepend"),
    Case(("getitem",), lambda f: cnp.gradient(f, 0.5), (ANY((5,)),), "gradient-1d"),
    Case(("getitem",), lambda f: cnp.stack(cnp.gradient(f, 1.0, [0.0, 0.5, 1.5, 1.75],
                                                        edge_order=2)),
         (ANY((3, 4)),), "gradient-2d-coords"),
    Case(("multiply",), cnp.cross, (ANY((3,)), ANY((2, 3))), "cross-bcast"),
    Case(("multiply",), lambda a, b: cnp.cross(a, b, axisa=0, axisb=0), (ANY((3, 2)),
                                                                         ANY((2, 2))),
         "cross-3x2-axes"),
    Case(("multiply",), cnp.cross, (ANY((4, 2)), ANY((2,))), "cross-2d"),
    *[Case(("flip",), lambda m, k=k: cnp.rot90(m, k, axes=(0, 2)), (ANY((2, 3, 4)),),
           f"rot90-k{k}") for k in (1, 2, 3)],
    Case(("transpose",), lambda a: cnp.rollaxis(a, 2, 1), (ANY((2, 3, 4)),), "rollaxis"),
    Case(("concatenate",), lambda a, b: cnp.row_stack([a, b]), (ANY((3,)), ANY((2, 3))),
         "row_stack"),
    Case(("concatenate",), lambda a, b: cnp.column_stack([a, b]), (ANY((3,)), ANY((3, 2))),
         "column_stack"),
    Case(("concatenate",), lambda a, b: cnp.dstack([a, b]), (ANY((2,)), ANY((1, 2, 2))),
         "dstack"),
    Case(("getitem",), lambda a: cnp.concatenate(cnp.dsplit(a, [1])[::-1], axis=2),
         (ANY((2, 1, 3)),), "dsplit"),
    Case(("getitem",), lambda a: cnp.stack(cnp.hsplit(a, 2)), (ANY((2, 4)),), "hsplit"),
    Case(("getitem",), lambda a: cnp.concatenate(cnp.vsplit(a, [1]), axis=1), (ANY((2, 3)),),
         "vsplit"),
    Case(("flip",), lambda a: cnp.flipud(cnp.fliplr(a)), (ANY((2, 3)),), "flipud-fliplr"),
    Case(("getitem",), lambda a: cnp.partition(a, 2, axis=0)[2, ...],  # (the k-th row is unique)
         (_rng.permutation(12).reshape(4, 3) / 6.0,), "partition"),
    Case(("where",), lambda a, b, d: cnp.select(_SEL, [a, b], d), (ANY((3,)), ANY((2, 3)),
                                                                    ANY(())), "select"),
    Case(("where",), cnp.nan_to_num, (ANY((3,)),), "nan_to_num-finite"),
    Case(("where",), lambda x: cnp.nan_to_num(cnp.concatenate([x, [np.inf, -np.inf, np.nan]]),
                                              posinf=9.0, neginf=-9.0),
         (ANY((2,)),), "nan_to_num-inf-nan"),
    Case(("multiply",), lambda x: cnp.radians(cnp.degrees(x)) * cnp.degrees(x), (ANY((2, 3)),),
         "radians-degrees"),
    Case(("absolute",), cnp.fabs, (away_from_zero()((2, 3)),), "fabs"),
    Case(("floor_divide",), lambda x, y: cnp.floor_divide(x, y) * x, (off_integers()((3,)),
                                                                       uniform(2.5, 2.9)(())),
         "floor_divide-times-x"),
    Case(("fmod",), cnp.fmod, _mod_args((2, 3), (3,)), "cnp.fmod"),
    Case(("mod",), cnp.remainder, _mod_args((2, 3), (3,)), "cnp.remainder"),
    Case(("clip",), lambda x: cnp.clip(x, a_min=-0.5, a_max=0.5) + cnp.clip(x, min=0.1),
         (np.array([-1.5, -0.2, 0.3, 1.4]),), "clip-keywords"),
    Case(("concatenate",), lambda a, b: cnp.r_[a, 0:2, b], (ANY((2,)), ANY((3,))), "r_"),
    Case(("concatenate",), lambda a, b: cnp.c_[a, b], (ANY((3,)), ANY((3, 2))), "c_"),
    Case(("concatenate",), lambda a, b: cnp.r_["0,2", a, b], (ANY((3,)), ANY((1, 3))),
         "r_-ndmin"),
    Case(("concatenate",), lambda a, b: cnp.array([[a, b], [b * a, 2.0]]),
         (ANY(()), ANY(())), "array-nested"),
    Case(("concatenate",), lambda a, b: cnp.asarray([a, b]), (ANY((2,)), ANY((2,))),
         "asarray-list"),
    Case(("broadcast_to",), lambda v: cnp.full((2, 3), v), (ANY(()),), "full-scalar"),
    Case(("broadcast_to",), lambda v: cnp.full((2, 3), v), (ANY((3,)),), "full-bcast"),
    Case(("broadcast_to",), lambda x, v: cnp.full_like(x, v) * x, (ANY((2, 3)), ANY(())),
         "full_like"),
    Case(("multiply",), lambda a, b: cnp.linspace(a, b, 5), (ANY(()), ANY(())), "linspace"),
    Case(("multiply",), lambda a, b: cnp.linspace(a, b, 4, endpoint=False, axis=1),
         (ANY((2,)), ANY(())), "linspace-arrays-axis"),
    Case(("multiply",), lambda a, b: cnp.linspace(a, b, 3, retstep=True)[1], (ANY(()), ANY(())),
         "linspace-retstep"),
    Case(("reduce_sum",), lambda a, b: cnp.mean([a, b], axis=0) + cnp.std([a, b]),
         (ANY((3,)), ANY((3,))), "mean-std-of-list"),
    # x.at[idx].<op>(v) on arrays too (IndexUpdates is what Tensor.at returns)
    *[Case(("scatter_add", "getitem"),
           lambda x, v, op=op, key=key: getattr(U.IndexUpdates(x)[key], op)(v),
           (_distinct(xs), _distinct(vs) + 0.01), f"at-{op}-{kid}")
      for op in ("set", "add", "multiply", "min", "max")
      for kid, key, xs, vs in [("int", 1, (3,), ()), ("repeat", [0, 2, 0], (4,), (3,)),
                               ("bcast", (slice(1, None), [0, 0]), (3, 2), (2,)),
                               ("mask", np.array([True, False, True]), (3, 2), (1, 2))]],
]

# Control flow: the staged forms (one primitive holding its body as a sub-program) are forced
# here, so these rows check the primitives' own rules (eagerly the loops are Python loops).
# A body closing over an eager tensor that requires grad cannot be staged: the public
# functions then run the Python loop, and so do these rows.
def _flat_pair(c, ys):
    return cnp.concatenate([cnp.reshape(c, (-1,)), cnp.reshape(ys, (-1,))])


def _staged(staged, python, *args):
    try:
        return staged(*args)
    except CF.NotStageable:
        return python(*args)


def _scan_case(reverse):
    def fn(c0, xs, w):
        step = lambda c, x: (cnp.tanh(w * c + x), c * x)  # noqa: E731 - closes over w
        return _flat_pair(*_staged(CF._scan_staged, CF.scan, step, c0, xs, None, reverse))
    return fn


def _while_case(x, a):
    body = lambda v: (v[0] + 1, v[1] * cnp.sin(v[1]) + a)  # noqa: E731
    return _staged(CF._while_staged, CF.while_loop, lambda v: v[0] < 3, body,
                   (np.array(0), x))[1]


def _cond_case(pred):
    def fn(x, y):
        t, f = lambda u, v: u * cnp.sin(v), lambda u, v: u ** 2 + y
        return _staged(lambda *a: CF._cond_staged(*a[:3], a[3:]), CF.cond, np.array(pred),
                       t, f, x, y)
    return fn


CASES += [
    Case(("scan", "tuple_get"), _scan_case(False), (ANY((3,)), ANY((4, 3)), UNIT((3,))),
         "scan-(3,)x(4,3)"),
    Case(("scan", "tuple_get"), _scan_case(True), (ANY((2,)), ANY((3, 2)), UNIT(())),
         "scan-reverse-(2,)x(3,2)"),
    Case(("while", "tuple_get"), _while_case, (UNIT((3,)), ANY((3,))), "while-(3,)"),
    Case(("cond", "tuple_get"), _cond_case(True), (ANY((3,)), ANY((3,))), "cond-true-(3,)"),
    Case(("cond", "tuple_get"), _cond_case(False), (ANY((2, 1)), ANY((2, 3))),
         "cond-false-(2,1)x(2,3)"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_primitive_derivatives_match_finite_differences(case):
    cr.check_grads(case.fn, case.args, order=case.order, modes=("fwd", "rev"), **case.tol)
    for a in case.args:   # the point really is where the case says (no NaNs from the domain)
        assert np.all(np.isfinite(a))
    out = case.fn(*case.args)
    for leaf in cr.pytree.tree_leaves(out):
        assert np.all(np.isfinite(np.asarray(leaf)))


def _all_argnums(case):
    return tuple(range(len(case.args)))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_batched_rules_agree_with_unbatched_ones(case):
    """Jacobians push all basis vectors as leading batch axes; Hessians do so twice.

    ``jacfwd``/``jacrev`` (batched tangents / cotangents) contracted with a direction must
    equal ``jvp`` (unbatched, checked against differences above), and the batched Hessian
    of a scalarisation must equal the unbatched forward-over-reverse HVP.
    """
    _check_batched(case)


def _check_batched(case):
    nums = _all_argnums(case)
    args = case.args
    vs = tuple(_rng.standard_normal(np.shape(a)).astype(a.dtype) for a in args)
    out, jv = cr.jvp(case.fn, args, vs)
    low = any(np.asarray(a).dtype == np.float32 for a in args + (out,))
    rtol, atol = (1e-4, 1e-5) if low else (1e-9, 1e-11)
    for jac in (cr.jacfwd, cr.jacrev):
        J = jac(case.fn, argnums=nums)(*args)
        total = sum(np.tensordot(np.asarray(Ji), vi, axes=vi.ndim) for Ji, vi in zip(J, vs))
        assert_allclose(total, jv, rtol=rtol, atol=atol, err_msg=jac.__name__)
    if case.order < 2:
        return
    w = _rng.standard_normal(np.shape(out)).astype(np.asarray(out).dtype)
    scalar = lambda *a: cnp.sum(case.fn(*a) * w)
    hv = cr.hvp(scalar, args, vs)
    hv = hv if isinstance(hv, tuple) else (hv,)
    H = cr.hessian(scalar, argnums=nums)(*args)
    for i in range(len(args)):
        row = sum(np.tensordot(np.asarray(H[i][j]), vs[j], axes=vs[j].ndim)
                  for j in range(len(args)))
        assert_allclose(row, hv[i], rtol=rtol * 10, atol=atol * 10)


def test_sinc_at_zero():
    # sinc's derivative rule has a removable singularity at 0, handled with where(x == 0, ...)
    cr.check_grads(E.sinc, (np.array([0.0, 0.5]),), order=1)
    d2 = cr.grad(cr.grad(E.sinc))(0.0)
    assert_allclose(d2, -np.pi ** 2 / 3, rtol=1e-8)


def test_float32_is_preserved_by_derivatives():
    x = np.array([0.3, -0.7, 1.1], dtype=np.float32)
    for fn in (E.exp, E.tanh, N.sigmoid, E.sin, lambda x: E.power(x, 2.0),
               lambda x: E.maximum(x, 0.0), lambda x: R.sum(x * x, keepdims=True)):
        _, t = cr.jvp(fn, (x,), (np.ones_like(x),))
        assert t.dtype == np.float32
        _, f_vjp = cr.vjp(fn, x)
        out = fn(x)
        (g,) = f_vjp(np.ones_like(np.asarray(out)))
        assert g.dtype == np.float32


def test_every_primitive_of_the_table_modules_has_a_case():
    covered = {p for c in CASES for p in c.prims}
    missing = sorted(
        name for name, prim in registry.items()
        if "#" not in name and prim.differentiable
        and getattr(prim.impl, "__module__", None) in TABLE_MODULES and name not in covered
    )
    assert not missing, f"add Case entries to CASES in {__file__} for: {missing}"


# --- 3. numbers from issue 3, in both modes ---------------------------------------------------


def d_fwd(f):
    """Derivative of a scalar function by forward mode."""
    return lambda x: cr.jvp(f, (x,), (np.ones_like(np.asarray(x, dtype=float)),))[1]


def test_derivative_of_sin_plus_cos_at_pi():
    f = lambda x: cnp.sin(x) + cnp.cos(x)
    assert_allclose(cr.grad(f)(np.pi), -1.0, rtol=1e-12)
    assert_allclose(d_fwd(f)(np.pi), -1.0, rtol=1e-12)


def test_nested_composition_value_and_derivative_at_one():
    f = lambda x: cnp.sin(cnp.cos(x + 3)) + cnp.exp(cnp.sin(x) ** 2)
    value, g = cr.value_and_grad(f)(1.0)
    assert_allclose(value, 1.42199337, atol=5e-9)
    assert_allclose(g, 2.44674864, atol=5e-9)
    out, t = cr.jvp(f, (1.0,), (1.0,))
    assert_allclose(out, 1.42199337, atol=5e-9)
    assert_allclose(t, 2.44674864, atol=5e-9)


def test_two_variable_function_value_and_gradient():
    def f(x, y):
        s = x + y
        return (cnp.exp(-0.1 * (x ** 2 + y ** 2)) * cnp.cos(0.5 * s) + 0.1 * s
                + cnp.exp(0.1 * (3 - s)))

    expected = [-0.3110865, -0.31966736]
    value, (gx, gy) = cr.value_and_grad(f, argnums=(0, 1))(1.0, 2.0)
    assert_allclose(value, 1.34290428, atol=5e-9)
    assert_allclose([gx, gy], expected, atol=5e-9)
    _, tx = cr.jvp(f, (1.0, 2.0), (1.0, 0.0))
    _, ty = cr.jvp(f, (1.0, 2.0), (0.0, 1.0))
    assert_allclose([tx, ty], expected, atol=5e-9)
    v = np.array([1.0, 2.0])
    assert_allclose(cr.jacfwd(lambda v: f(v[0], v[1]))(v), expected, atol=5e-9)
    assert_allclose(cr.jacrev(lambda v: f(v[0], v[1]))(v), expected, atol=5e-9)


def test_several_input_jacobian_shapes_equal_in_both_modes():
    def f(a, b, c):
        return cnp.sum(a * b) * c, b * c[0, 0] + a

    a, b, c = np.array(0.5), np.array([1.0, 2.0, 3.0]), np.ones((2, 2))
    Jf = cr.jacfwd(f, argnums=(0, 1, 2))(a, b, c)
    Jr = cr.jacrev(f, argnums=(0, 1, 2))(a, b, c)
    expected_shapes = [[(2, 2), (2, 2, 3), (2, 2, 2, 2)], [(3,), (3, 3), (3, 2, 2)]]
    for o in range(2):
        for i in range(3):
            assert Jf[o][i].shape == Jr[o][i].shape == expected_shapes[o][i]
            assert_allclose(Jf[o][i], Jr[o][i], rtol=1e-12, atol=1e-14)


def _tanh_closed_form(A, x):
    s = 1 - np.tanh(A @ x) ** 2
    return s[:, None] * A + 2 * np.diag(x)


def test_jacobian_closed_form_without_matmul():
    A, x = _rng.standard_normal((4, 4)), _rng.standard_normal(4)
    f = lambda x: cnp.tanh(cnp.sum(A * x, axis=-1)) + x ** 2
    for jac in (cr.jacfwd, cr.jacrev):
        assert_allclose(jac(f)(x), _tanh_closed_form(A, x), rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not hasattr(cnp, "matmul"), reason="chainrule.numpy has no matmul yet")
def test_jacobian_closed_form_of_tanh_matmul():
    A, x = _rng.standard_normal((4, 4)), _rng.standard_normal(4)
    f = lambda x: cnp.tanh(cnp.matmul(A, x)) + x ** 2
    for jac in (cr.jacfwd, cr.jacrev, cr.jacobian):
        assert_allclose(jac(f)(x), _tanh_closed_form(A, x), rtol=1e-10, atol=1e-12)
    g = lambda x: cnp.tanh(A @ x) + x ** 2  # the operator too
    assert_allclose(cr.jacrev(g)(x), _tanh_closed_form(A, x), rtol=1e-10, atol=1e-12)
