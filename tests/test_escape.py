"""No value leaves a trace unnoticed: conversions raise, NumPy dispatches, saved values are
checked, custom backward shapes are checked (issues 16.7, 16.8 and 18.3)."""

from __future__ import annotations

import copy
import math
import operator
import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import graph as G

ONES = np.ones(3)

# --- the six examples of issue 18: each differentiates correctly or raises -----------------


def test_issue_examples_differentiate_or_raise():
    # numpy.fft dispatches to chainrule.numpy.fft: differentiable (|fft(x)|^2 sums to n |x|^2)
    assert_allclose(cr.grad(lambda x: cnp.sum(cnp.abs(np.fft.fft(x)) ** 2))(ONES), [6.0] * 3)
    with pytest.raises(TypeError, match=r"numpy\.interp.*cr\.grad"):
        cr.grad(lambda x: cnp.sum(np.interp(x, [0, 2], [0, 4])))(ONES)
    with pytest.raises(TypeError, match="cr.grad"):
        cr.grad(lambda x: cnp.sum(np.array(x)))(ONES)
    with pytest.raises(TypeError, match="cr.grad"):
        cr.grad(lambda x: cnp.sum(np.asarray(x) * x))(ONES)
    with pytest.raises(TypeError, match=r"\.item\(\).*cr\.grad"):
        cr.grad(lambda x: x.item() * x)(1.5)
    assert_allclose(cr.grad(lambda x: np.clip(x, 0, 5) * x)(1.5), 3.0)


CONVERSIONS = {
    "asarray": np.asarray,
    "array": np.array,
    "__array__": lambda x: x.__array__(),
    "item": lambda x: x.item(),
    "tolist": lambda x: x.tolist(),
    "float64": np.float64,
    "float": float,
    "int": int,
    "complex": complex,
    "index": operator.index,
    "math.sin": math.sin,
}
TRANSFORMS = {
    "grad": lambda f: cr.grad(f)(1.5),
    "value_and_grad": lambda f: cr.value_and_grad(f)(1.5),
    "vjp": lambda f: cr.vjp(f, 1.5),
    "jvp": lambda f: cr.jvp(f, (1.5,), (1.0,)),
    "jacfwd": lambda f: cr.jacfwd(f)(1.5),
    "jacrev": lambda f: cr.jacrev(f)(1.5),
    "jacobian": lambda f: cr.jacobian(f)(1.5),
    "hessian": lambda f: cr.hessian(f)(1.5),
    "hvp": lambda f: cr.hvp(f, (1.5,), (1.0,)),
}


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
@pytest.mark.parametrize("conversion", sorted(CONVERSIONS))
def test_conversions_of_traced_values_raise(transform, conversion):
    convert = CONVERSIONS[conversion]

    def f(x):
        y = x * 2.0
        return y * convert(y)

    with pytest.raises(TypeError, match=r"cr\.\w+.*(chainrule\.numpy|stop_gradient)"):
        TRANSFORMS[transform](f)


def test_nested_transforms_name_the_transform_that_traced_it():
    def f(x):
        return cr.grad(lambda y: y * float(x))(x)

    with pytest.raises(TypeError, match=r"cr\.jvp"):
        cr.jvp(f, (1.0,), (1.0,))


def test_comparisons_bool_and_control_flow_keep_working():
    def f(x):
        if x > 0 and bool(x < 10):
            return x ** 2
        return -x

    assert_allclose(cr.grad(f)(3.0), 6.0)
    assert_allclose(cr.grad(f)(-3.0), -1.0)
    assert_allclose(cr.jvp(f, (3.0,), (1.0,))[1], 6.0)


def test_stop_gradient_is_the_way_to_read_values():
    assert cr.stop_gradient is cnp.stop_gradient
    assert_allclose(cr.grad(lambda x: x * float(cr.stop_gradient(x)))(1.5), 1.5)
    assert_allclose(cr.jvp(lambda x: x * np.asarray(cnp.stop_gradient(x)), (2.0,), (1.0,))[1], 2.0)
    # values that do not depend on the input are plain numbers anyway
    assert_allclose(cr.grad(lambda x: x * float(cnp.sum(cnp.ones(2))))(1.5), 2.0)


def test_reading_inside_no_grad_is_an_explicit_stop():
    def f(x):
        with cr.no_grad():
            c = float(x * 2)
        return x * c

    assert_allclose(cr.grad(f)(1.5), 3.0)


# --- eager tensors ---------------------------------------------------------------------------


def test_eager_tensors_that_require_grad_refuse_asarray_but_give_python_numbers():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    loss = cnp.sum(x * x)
    for t in (x, loss):
        with pytest.raises(TypeError, match=r"detach"):
            np.asarray(t)
        with pytest.raises(TypeError, match=r"detach"):
            np.array(t)
        with pytest.raises(TypeError, match=r"detach"):
            t.__array__()
    assert loss.item() == 5.0 and float(loss) == 5.0
    assert x.tolist() == [1.0, 2.0]
    assert_allclose(np.asarray(x.detach()), [1.0, 2.0])
    assert_allclose(np.asarray(cr.tensor([1.0, 2.0])), [1.0, 2.0])
    with cr.no_grad():
        assert_allclose(np.asarray(x), [1.0, 2.0])
    assert "requires_grad=True" in repr(x) and "5." in str(loss)


def test_tensors_a_tape_watches_refuse_asarray():
    w = cr.tensor([1.0, 2.0])
    with cr.GradientTape() as tape:
        tape.watch(w)
        with pytest.raises(TypeError, match=r"detach"):
            np.asarray(w)
        y = cnp.sum(w * w)
    assert_allclose(tape.gradient(y, w), [2.0, 4.0])


def test_chainrule_code_paths_do_not_trip():
    rng = np.random.default_rng(0)
    model = cr.nn.Sequential(cr.nn.Linear(4, 8), cr.nn.ReLU(), cr.nn.Linear(8, 3))
    opt = cr.optim.Adam(model.parameters(), lr=0.01)
    x, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    for xb, yb in cr.data.DataLoader(x, y, batch_size=8):
        opt.zero_grad()
        loss = cr.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
    state = model.state_dict()
    model.load_state_dict(state)
    assert np.isfinite(loss.item())
    cr.check_grads(lambda a: cnp.sum(cnp.tanh(a)), (rng.standard_normal(3),), order=2)
    res = cr.optimize.minimize(lambda p: cnp.sum((p - 1.0) ** 2), np.zeros(2))
    assert_allclose(res.x, 1.0, atol=1e-5)
    xg = G.placeholder(shape=(None, 3), name="x")
    wg = G.variable(np.ones((3, 1)), name="w")
    loss_g = cnp.mean(np.tanh(xg @ wg) ** 2)  # np.tanh dispatches on graph nodes too
    run = G.compile([loss_g], inputs=[xg])
    assert_allclose(run(np.ones((4, 3)))[0], np.tanh(3.0) ** 2)
    loss_g.forward({xg: np.ones((4, 3))})
    loss_g.backward()
    assert wg.grad.shape == (3, 1)
    with pytest.raises(TypeError, match="no value until the graph runs"):
        np.asarray(wg)
    step = cr.compile(cr.value_and_grad(lambda v: cnp.sum(np.sin(v))))
    assert_allclose(step(np.zeros(2))[1], 1.0)
    with pytest.raises(TypeError, match=r"cr\.grad"):
        cr.compile(cr.grad(lambda v: float(cnp.sum(v)) * cnp.sum(v)))(np.ones(2))


# --- NumPy dispatch ---------------------------------------------------------------------------


def test_numpy_functions_dispatch_and_stay_differentiable():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(3)
    A = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    assert_allclose(cr.grad(lambda v: cnp.sum(np.sin(v)))(x), np.cos(x))
    assert_allclose(cr.grad(lambda v: cnp.sum(np.sum(v, axis=0, out=None) ** 2))(x[None]),
                    2 * x[None])
    assert_allclose(cr.grad(lambda v: cnp.sum(np.concatenate([v, v]) ** 2))(x), 4 * x)
    assert_allclose(cr.grad(lambda v: cnp.sum(np.linalg.solve(A, v)))(x),
                    np.linalg.solve(A.T, np.ones(3)))
    assert_allclose(cr.grad(lambda v: cnp.sum(np.clip(v, 0, 5) * v))(np.array([-1.0, 2.0, 9.0])),
                    [-1.0 * 0 + 0, 4.0, 5.0])
    assert_allclose(cr.jvp(lambda v: np.exp(v), (x,), (np.ones(3),))[1], np.exp(x))


def test_ndarray_operators_and_ufunc_methods_dispatch():
    a = np.array([2.0, 3.0])
    x = cr.tensor([1.0, 4.0], requires_grad=True)
    y = a * x + a - x / a
    assert isinstance(y, cr.Tensor)
    cnp.sum(y).backward()
    assert_allclose(x.grad, a - 1 / a)
    x.grad = None
    np.add.reduce(x * x).backward()
    assert_allclose(x.grad, [2.0, 8.0])
    assert_allclose(np.multiply.accumulate(cr.tensor([1.0, 2.0, 3.0])), [1.0, 2.0, 6.0])
    assert isinstance(a < x, np.ndarray)


def test_numpy_functions_chainrule_lacks_raise_when_a_derivative_would_be_lost():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"numpy\.interp.*requires grad"):
        np.interp(x, [0, 2], [0, 4])
    # nothing to lose: they run on the data
    assert_allclose(np.interp(cr.tensor([1.0]), [0, 2], [0, 4]), [2.0])
    assert np.result_type(x) == np.float64 and np.shape(x) == (2,)
    assert np.any(x) and np.signbit(x).tolist() == [False, False]  # no derivative in these
    with pytest.raises(TypeError, match=r"numpy\.sin with where="):
        np.sin(x, where=np.array([True, False]))
    with pytest.raises(TypeError, match=r"numpy\.sum.*where"):
        np.sum(x, where=np.array([True, False]))
    out = np.zeros(2)
    with pytest.raises(TypeError, match="out="):
        np.add(x, 1.0, out=out)
    out += cr.tensor([1.0, 1.0])
    assert_allclose(out, 1.0)


def test_dlpack_and_pickle():
    t = cr.tensor([1.0, 2.0])
    assert_allclose(np.from_dlpack(t), [1.0, 2.0])
    with pytest.raises(TypeError, match="detach"):
        np.from_dlpack(cr.tensor([1.0], requires_grad=True))
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    z = pickle.loads(pickle.dumps(y))
    assert z.is_leaf and not z.requires_grad
    assert_allclose(z.detach().numpy(), [3.0, 6.0])
    x.grad = np.ones(2)
    x2 = copy.deepcopy(x)
    assert x2.requires_grad and x2 is not x
    assert_allclose(x2.grad, 1.0)


# --- tensor() copies, from_numpy() shares ------------------------------------------------------


def test_tensor_copies_and_from_numpy_shares():
    a = np.array([1.0, 2.0])
    x = cr.tensor(a, requires_grad=True)
    y = cnp.sum(x * x)
    a[:] = 10.0
    y.backward()
    assert_allclose(x.grad, [2.0, 4.0])
    b = np.array([1.0, 2.0])
    s = cr.from_numpy(b)
    b[0] = 7.0
    assert_allclose(s.numpy(), [7.0, 2.0])
    assert s.numpy() is b
    with pytest.raises(TypeError, match="ndarray"):
        cr.from_numpy([1.0, 2.0])


# --- values saved for backward, changed in place ----------------------------------------------


def test_in_place_change_of_a_saved_value_raises():
    p = cr.nn.Parameter([1.0, 2.0])
    opt = cr.optim.SGD([p], lr=0.1)
    loss = cnp.sum(p * p)
    p.grad = np.ones(2)
    opt.step()
    with pytest.raises(RuntimeError, match="'multiply'.*modified in place"):
        loss.backward()
    p.grad = None
    loss = cnp.sum(cnp.sin(p))
    p.data = p.data * 2
    with pytest.raises(RuntimeError, match="'sin'"):
        loss.backward()
    old = cnp.sum(p * p)
    p.grad = np.ones(2)
    opt.step()  # (the optimiser's in-place update)
    p.grad = None
    loss = cnp.sum(p * p)  # recorded after the change: fine
    loss.backward()
    assert_allclose(p.grad, 2 * p.data)
    with pytest.raises(RuntimeError, match="'multiply'.*modified in place"):
        old.backward()  # (still refused after a newer graph went back)


# --- cr.Function backward checks --------------------------------------------------------------


def _function(backward_value):
    class Custom(cr.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return backward_value(g)

    return Custom


def test_function_backward_of_the_wrong_shape_raises():
    x = cr.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match=r"Custom.*\(7,\).*input 0.*\(3,\)"):
        _function(lambda g: np.ones(7)).apply(x).sum().backward()
    with pytest.raises(ValueError, match=r"Custom.*dtype kind 'c'"):
        _function(lambda g: 2j * g).apply(x).sum().backward()


def test_function_backward_broadcastable_to_the_input_is_reduced():
    x = cr.tensor(np.ones(3), requires_grad=True)
    _function(lambda g: 2 * g * np.ones((4, 3))).apply(x).sum().backward()
    assert_allclose(x.grad, 8.0)
    # batched cotangents (jacrev) keep their leading axis
    assert_allclose(cr.jacrev(_function(lambda g: 2 * g).apply)(np.ones(3)), 2 * np.eye(3))
