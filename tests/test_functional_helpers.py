"""HIPS autograd's helpers: ravel_pytree, elementwise_grad, the functional optimisers on pytrees
(compared with autograd's when installed) and fixed_point differentiated implicitly."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.optimize import adam, fixed_point, rmsprop, sgd
from chainrule.pytree import ravel_pytree

# --- ravel_pytree --------------------------------------------------------------------------------


def test_ravel_pytree_round_trip_keeps_structure_shapes_and_order():
    tree = {"b": (np.arange(6.0).reshape(2, 3), 2.0), "a": [np.array([7.0, 8.0])], "n": None}
    flat, unravel = ravel_pytree(tree)
    assert_allclose(flat, [7.0, 8.0, 0, 1, 2, 3, 4, 5, 2.0])
    back = unravel(flat)
    assert back["n"] is None and isinstance(back["b"], tuple) and isinstance(back["a"], list)
    assert back["b"][0].shape == (2, 3) and np.shape(back["b"][1]) == ()
    assert_allclose(back["b"][0], tree["b"][0])
    with pytest.raises(ValueError, match="9 entries"):
        unravel(np.zeros(4))
    empty, unravel_empty = ravel_pytree(())
    assert empty.shape == (0,) and unravel_empty(empty) == ()


def test_ravel_pytree_is_differentiable_both_ways():
    def f(w, b):
        flat, unravel = ravel_pytree({"w": w, "b": b})
        again = unravel(flat * 2.0)
        return cnp.sum(flat ** 2) + cnp.sum(again["w"] * again["b"])

    w, b = np.array([[1.0, 2.0]]), np.array(3.0)
    gw, gb = cr.grad(f, argnums=(0, 1))(w, b)
    assert_allclose(gw, 2 * w + 4 * b)
    assert_allclose(gb, 2 * b + 4 * w.sum())
    cr.check_grads(f, (w, b), order=2)


# --- elementwise_grad ---------------------------------------------------------------------------


def test_elementwise_grad_is_the_derivative_at_every_entry():
    x = np.linspace(-2, 2, 7)
    assert_allclose(cr.elementwise_grad(cnp.tanh)(x), 1 - np.tanh(x) ** 2, rtol=1e-12)
    d2 = cr.elementwise_grad(cr.elementwise_grad(cnp.sin))(x)
    assert_allclose(d2, -np.sin(x), rtol=1e-12)
    gx, gy = cr.elementwise_grad(lambda x, y: x * cnp.exp(y), argnums=(0, 1))(x, x)
    assert_allclose(gx, np.exp(x))
    assert_allclose(gy, x * np.exp(x))


# --- functional optimisers ------------------------------------------------------------------------

_TARGET = {"w": np.array([[1.0, -2.0], [0.5, 3.0]]), "b": (np.array(-1.5),)}


def _objective(p, i):
    return (cnp.sum((p["w"] - _TARGET["w"]) ** 2) + (p["b"][0] - _TARGET["b"][0]) ** 2
            + 0.01 * i * 0)


def _start():
    return {"w": np.zeros((2, 2)), "b": (np.array(0.0),)}


@pytest.mark.parametrize("opt, kw", [(adam, {"step_size": 0.1, "num_iters": 300}),
                                     (sgd, {"step_size": 0.5, "num_iters": 300}),
                                     (rmsprop, {"step_size": 0.05, "num_iters": 300})])
def test_optimisers_minimise_on_pytrees_and_call_back(opt, kw):
    seen = []
    grad = cr.grad(_objective)
    out = opt(grad, _start(), callback=lambda x, i, g: seen.append((i, x, g)), **kw)
    assert cr.pytree.tree_structure(out) == cr.pytree.tree_structure(_start())
    assert_allclose(out["w"], _TARGET["w"], atol=2e-2)
    assert_allclose(out["b"][0], _TARGET["b"][0], atol=2e-2)
    assert [i for i, _, _ in seen] == list(range(kw["num_iters"]))
    _, x0, g0 = seen[0]
    assert cr.pytree.tree_structure(g0) == cr.pytree.tree_structure(_start())
    assert_allclose(g0["w"], -2 * _TARGET["w"])


def test_optimisers_match_hips_autograd_step_for_step():
    ag = pytest.importorskip("autograd")
    from autograd.misc import optimizers as ago

    anp = ag.numpy
    target = np.array([1.0, -2.0, 0.5])

    def make(npm):
        return lambda p, i: npm.sum((p["x"] - target) ** 2 * (1.0 + 0.1 * i)) \
            + npm.sum(p["y"][0] ** 4)

    ours_grad, theirs_grad = cr.grad(make(cnp)), ag.grad(make(anp))
    for name, kw in (("adam", {"step_size": 0.05}), ("sgd", {"step_size": 0.01, "mass": 0.8}),
                     ("rmsprop", {"step_size": 0.02, "gamma": 0.8})):
        x0 = {"x": np.zeros(3), "y": (np.array([0.5, -1.0]),)}
        ours = getattr(cr.optimize, name)(ours_grad, x0, num_iters=40, **kw)
        theirs = getattr(ago, name)(theirs_grad, x0, num_iters=40, **kw)
        assert_allclose(ours["x"], theirs["x"], rtol=1e-12, err_msg=name)
        assert_allclose(ours["y"][0], theirs["y"][0], rtol=1e-12, err_msg=name)


# --- fixed_point --------------------------------------------------------------------------------


def _newton_sqrt(a, x):
    return 0.5 * (x + a / x)


def _dist(x, y):
    return float(np.max(np.abs(np.asarray(x) - np.asarray(y))))


def _sqrt_fp(a):
    return fixed_point(_newton_sqrt, a, np.ones(np.shape(a)), _dist, 1e-13)


def test_fixed_point_of_newtons_iteration_for_sqrt_in_both_modes():
    a = np.array([2.0, 4.0, 9.0])
    assert_allclose(_sqrt_fp(a), np.sqrt(a), rtol=1e-12)
    want = np.diag(0.5 / np.sqrt(a))
    assert_allclose(cr.jacrev(_sqrt_fp)(a), want, rtol=1e-10)
    assert_allclose(cr.jacfwd(_sqrt_fp)(a), want, rtol=1e-10)
    assert_allclose(cr.grad(lambda a: _sqrt_fp(a))(4.0), 0.25, rtol=1e-12)
    assert_allclose(cr.jvp(_sqrt_fp, (4.0,), (1.0,))[1], 0.25, rtol=1e-12)
    d2 = cr.grad(cr.grad(_sqrt_fp))(4.0)
    assert_allclose(d2, -0.25 * 4.0 ** -1.5, rtol=1e-8)
    cr.check_grads(_sqrt_fp, (a,), order=2, modes=("fwd", "rev"))


def test_fixed_point_derivative_is_implicit_not_unrolled():
    calls = []

    def f(a, x):
        calls.append(isinstance(a, cr.Tensor) or isinstance(x, cr.Tensor))
        return _newton_sqrt(a, x)

    fp = lambda a: fixed_point(f, a, 1.0, _dist, 1e-13)
    calls.clear()
    g = cr.grad(fp)(9.0)
    assert_allclose(g, 1.0 / 6.0, rtol=1e-12)
    assert sum(calls) == 1   # f traced once, at the fixed point; the iterations never are
    # a derivative that ignores the start: x0 does not matter
    assert cr.grad(lambda x0: fixed_point(_newton_sqrt, 9.0, x0, _dist, 1e-13))(2.0) == 0.0


def test_fixed_point_of_a_vector_contraction_matches_a_linear_solve():
    rng = np.random.default_rng(0)
    M = rng.standard_normal((3, 3)) * 0.2

    def f(a, x):   # x* = (I - M)^-1 a
        return cnp.matmul(M, x) + a

    a = rng.standard_normal(3)
    fp = lambda a: fixed_point(f, a, np.zeros(3), _dist, 1e-14)
    want = np.linalg.inv(np.eye(3) - M)
    assert_allclose(fp(a), want @ a, rtol=1e-10)
    assert_allclose(cr.jacrev(fp)(a), want, rtol=1e-10)
    assert_allclose(cr.jacfwd(fp)(a), want, rtol=1e-10)


def test_fixed_point_of_a_pytree_parameter():
    def f(p, x):
        return 0.5 * (x + p["a"] / x) * p["scale"][0]

    fp = lambda p: fixed_point(f, p, 1.0, _dist, 1e-13)
    p = {"a": np.array(4.0), "scale": (np.array(1.0),)}
    assert_allclose(fp(p), 2.0, rtol=1e-12)
    g = cr.grad(fp)(p)
    assert_allclose(g["a"], 0.25, rtol=1e-10)
    # x = s (x + a/x) / 2 has the fixed point x = sqrt(s a / (2 - s)): d/ds = 2 at s = 1, a = 4
    assert_allclose(g["scale"][0], 2.0, rtol=1e-9)


def test_fixed_point_refuses_a_closure_over_a_traced_value():
    def fp(a):
        return fixed_point(lambda _, x: 0.5 * (x + a / x), 0.0, 1.0, _dist, 1e-12)

    with pytest.raises(ValueError, match="closure"):
        cr.grad(fp)(4.0)


def test_fixed_point_start_has_zero_derivative_in_both_modes():
    fp = lambda x0: fixed_point(_newton_sqrt, np.array([4.0, 9.0]), x0, _dist, 1e-13)
    assert_allclose(cr.jacrev(fp)(np.array([1.0, 2.0])), np.zeros((2, 2)))
    assert_allclose(cr.jacfwd(fp)(np.array([1.0, 2.0])), np.zeros((2, 2)))
    scalar_start = lambda x0: fixed_point(_newton_sqrt, np.array([4.0, 9.0]), x0, _dist, 1e-13)
    assert_allclose(cr.jacrev(scalar_start)(1.0), np.zeros(2))
