"""The engine and the elementwise, reduction and shape families on array-api-strict arrays.

array-api-strict allows only what the array API standard allows, so passing
here shows the ops use the namespace of their inputs rather than NumPy.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp

xp = pytest.importorskip("array_api_strict")

RNG = np.random.default_rng(7)
POS = RNG.uniform(0.2, 0.9, size=(2, 3))
ANY = RNG.normal(size=(2, 3))
ROW = RNG.normal(size=(3,))

UNARY = [
    ("sin", cnp.sin, ANY), ("cos", cnp.cos, ANY), ("tan", cnp.tan, POS), ("exp", cnp.exp, ANY),
    ("expm1", cnp.expm1, ANY), ("log", cnp.log, POS), ("log1p", cnp.log1p, POS),
    ("log2", cnp.log2, POS), ("log10", cnp.log10, POS), ("sqrt", cnp.sqrt, POS),
    ("tanh", cnp.tanh, ANY), ("sinh", cnp.sinh, ANY), ("cosh", cnp.cosh, ANY),
    ("arcsin", cnp.arcsin, POS), ("arccos", cnp.arccos, POS), ("arctan", cnp.arctan, ANY),
    ("arcsinh", cnp.arcsinh, ANY), ("arctanh", cnp.arctanh, POS), ("square", cnp.square, ANY),
    ("abs", cnp.abs, ANY), ("negative", cnp.negative, ANY), ("reciprocal", cnp.reciprocal, POS),
    ("cbrt", cnp.cbrt, POS), ("sinc", cnp.sinc, ANY), ("exp2", cnp.exp2, ANY),
    ("sum", cnp.sum, ANY), ("sum axis", lambda x: cnp.sum(x, axis=-1), ANY),
    ("mean keepdims", lambda x: cnp.mean(x, axis=0, keepdims=True), ANY),
    ("max", lambda x: cnp.max(x, axis=1), ANY), ("min", cnp.min, ANY),
    ("prod", lambda x: cnp.prod(x, axis=0), POS), ("var", cnp.var, ANY), ("std", cnp.std, ANY),
    ("logsumexp", lambda x: cnp.logsumexp(x, axis=1), ANY),
    ("cumsum", lambda x: cnp.cumsum(x, axis=1), ANY),
    ("reshape", lambda x: cnp.reshape(x, (3, 2)) * 2.0, ANY),
    ("transpose", lambda x: cnp.transpose(x) * 3.0, ANY),
    ("broadcast_to", lambda x: cnp.broadcast_to(x, (4, 2, 3)), ANY),
    ("power", lambda x: x**3, ANY),
    ("clip", lambda x: cnp.clip(x, -0.5, 0.5), ANY),
    ("where", lambda x: cnp.where(x > 0, x, x * 2), ANY),
]

BINARY = [
    ("add", cnp.add), ("subtract", cnp.subtract), ("multiply", cnp.multiply),
    ("divide", cnp.divide), ("maximum", cnp.maximum), ("minimum", cnp.minimum),
    ("arctan2", cnp.arctan2), ("hypot", cnp.hypot), ("logaddexp", cnp.logaddexp),
    ("power", lambda a, b: cnp.power(cnp.abs(a) + 0.5, b)),
]


def _value_and_grad(fn, *arrays):
    xs = [cr.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*xs)
    cnp.sum(y * y).backward()  # a non-trivial cotangent
    return y.data, [x.grad for x in xs]


@pytest.mark.parametrize("name,fn,data", UNARY, ids=[u[0] for u in UNARY])
def test_unary_matches_numpy(name, fn, data):
    ref_val, (ref_grad,) = _value_and_grad(fn, data)
    val, (grad,) = _value_and_grad(fn, xp.asarray(data))
    assert type(val).__module__.startswith("array_api_strict")
    assert type(grad).__module__.startswith("array_api_strict")
    assert_allclose(np.asarray(val), ref_val, rtol=1e-12, atol=1e-12)
    assert_allclose(np.asarray(grad), ref_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
def test_binary_with_broadcasting_matches_numpy(name, fn):
    ref_val, ref_grads = _value_and_grad(fn, ANY, ROW)
    val, grads = _value_and_grad(fn, xp.asarray(ANY), xp.asarray(ROW))
    assert_allclose(np.asarray(val), ref_val, rtol=1e-12)
    for g, r in zip(grads, ref_grads):
        assert type(g).__module__.startswith("array_api_strict")
        assert g.shape == r.shape
        assert_allclose(np.asarray(g), r, rtol=1e-10, atol=1e-12)


def test_float32_stays_float32():
    x = cr.tensor(xp.asarray(ANY, dtype=xp.float32), requires_grad=True)
    y = cnp.sum(cnp.tanh(x) * 2.0 + x**2)
    y.backward()
    assert y.data.dtype == xp.float32
    assert x.grad.dtype == xp.float32


def test_second_order_on_strict_arrays():
    x = cr.tensor(xp.asarray([0.3, 0.7], dtype=xp.float64), requires_grad=True)
    cnp.sum(cnp.sin(x) * x).backward(create_graph=True)
    g = x.grad
    x.grad = None
    cnp.sum(g).backward()
    v = np.array([0.3, 0.7])
    assert_allclose(np.asarray(x.grad), 2 * np.cos(v) - v * np.sin(v), rtol=1e-12)


def test_mixing_libraries_is_a_clear_type_error():
    x = cr.tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    with pytest.raises(TypeError):
        x + np.array([1.0, 2.0])
