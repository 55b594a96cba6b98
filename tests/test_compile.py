"""cr.compile: record once per signature, replay; equality with eager; guards; composition."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.nn.functional as F
import chainrule.numpy as cnp

RNG = np.random.default_rng(2)


def w3(x):
    return cnp.sum(cnp.tanh(x) * cnp.exp(-x**2) + cnp.log1p(x**2))


def chain(x, n=50):
    for _ in range(n):
        x = cnp.sin(x) * 1.0001 + 0.1 * x
    return x


def mlp_loss(params, x, t):
    W1, b1, W2, b2 = params
    h = F.relu(F.linear(x, W1, b1))
    z = F.linear(h, W2, b2)
    return -cnp.sum(t * F.log_softmax(z)) / x.shape[0]


def _mlp_args(n=16):
    params = [RNG.standard_normal((8, 4)) * 0.5, RNG.standard_normal(8) * 0.1,
              RNG.standard_normal((3, 8)) * 0.5, RNG.standard_normal(3) * 0.1]
    x = RNG.standard_normal((n, 4))
    t = np.eye(3)[RNG.integers(0, 3, n)]
    return params, x, t


@pytest.mark.parametrize("fun, args", [
    (cr.value_and_grad(w3), (RNG.standard_normal(1000),)),
    (cr.value_and_grad(chain), (np.array(0.5),)),
    (cr.value_and_grad(mlp_loss), _mlp_args()),
    (cr.grad(cr.grad(lambda x: cnp.sum(cnp.sin(x) ** 3))), (np.array(0.7),)),
    (cr.hessian(lambda x: cnp.sum(cnp.exp(x) * x[::-1])), (RNG.standard_normal(4),)),
    (lambda x: cr.jvp(w3, (x,), (cnp.ones_like(x),)), (RNG.standard_normal(10),)),
    (cr.jacrev(lambda x: cnp.tanh(x @ x.T)), (RNG.standard_normal((3, 2)),)),
])
def test_compiled_equals_eager(fun, args):
    f = cr.compile(fun)
    first = f(*args)      # the tracing call
    again = f(*args)      # a replay
    eager = fun(*args)
    for a, b, c in zip(cr.pytree.tree_leaves(first), cr.pytree.tree_leaves(again),
                       cr.pytree.tree_leaves(eager)):
        assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-12, atol=1e-12)
        assert_allclose(np.asarray(b), np.asarray(c), rtol=1e-12, atol=1e-12)
    assert f.trace_count == 1
    # new values, same signature: replayed, still equal to eager
    new = cr.pytree.tree_map(lambda a: np.asarray(a * 0.9 + 0.01) if isinstance(a, np.ndarray) and
                             a.dtype.kind == "f" else a, args)
    for a, c in zip(cr.pytree.tree_leaves(f(*new)), cr.pytree.tree_leaves(fun(*new))):
        assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-12, atol=1e-12)
    assert f.trace_count == 1


def test_retraced_only_for_a_new_signature():
    calls = []

    def f(x, y):
        calls.append(1)
        return cnp.sum(x * y)

    g = cr.compile(f)
    a, b = np.ones(3), np.arange(3.0)
    for _ in range(4):
        assert float(g(a, b)) == 3.0
    assert g.trace_count == 1 and len(calls) == 1
    g(np.ones(4), np.ones(4))                      # a new shape
    assert g.trace_count == 2
    g(np.ones(3, dtype=np.float32), b)             # a new dtype
    assert g.trace_count == 3
    g(a, b)
    g(np.ones(4) * 2, np.ones(4))
    assert g.trace_count == 3
    g.clear_cache()
    g(a, b)
    assert g.trace_count == 4


def test_pytrees_static_arguments_and_python_floats():
    @cr.compile
    def f(p, scale, power=2):
        return {"out": (p["w"] * scale) ** power, "n": power}

    w = np.array([1.0, 2.0])
    r = f({"w": w}, 3.0)
    assert_allclose(r["out"], (w * 3.0) ** 2)
    assert r["n"] == 2
    assert_allclose(f({"w": w}, 0.5)["out"], (w * 0.5) ** 2)  # a float is an input
    assert f.trace_count == 1
    assert_allclose(f({"w": w}, 0.5, power=3)["out"], (w * 0.5) ** 3)  # an int is static
    assert f.trace_count == 2


def test_closed_over_values_are_constants_until_cleared():
    w = np.array([1.0, 2.0])
    f = cr.compile(lambda x: cnp.sum(x * w))
    assert float(f(np.ones(2))) == 3.0
    w = np.array([10.0, 20.0])  # rebinding the name does not reach the compiled program  # noqa: F841
    assert float(f(np.ones(2))) == 3.0
    t = cr.tensor([1.0, 1.0], requires_grad=True)
    g = cr.compile(lambda x: cnp.sum(x * t))
    assert float(g(np.array([2.0, 3.0]))) == 5.0


def test_control_flow_on_values_is_guarded():
    def f(x):
        if cnp.sum(x) > 0:
            return x * 2.0
        return x - 1.0

    g = cr.compile(f)
    pos, neg = np.array([1.0, 2.0]), np.array([-1.0, -2.0])
    assert_allclose(g(pos), pos * 2.0)
    assert_allclose(g(neg), neg - 1.0)        # the guard fails: traced again
    assert g.trace_count == 2
    assert_allclose(g(pos * 3), pos * 6.0)    # both variants are kept
    assert_allclose(g(neg * 3), neg * 3 - 1.0)
    assert g.trace_count == 2
    assert "graph.guard" in str(g.program(pos))


def test_values_read_by_helpers_are_guarded_not_baked():
    # an explicit read of a cut value specialises the program on that value (guarded)
    def f(x, idx):
        return cnp.sum(x[np.asarray(cr.stop_gradient(idx))])

    g = cr.compile(f)
    x = np.arange(5.0)
    assert float(g(x, np.array([0, 1]))) == 1.0
    assert float(g(x, np.array([3, 4]))) == 7.0
    assert g.trace_count == 2


def test_warns_when_every_call_retraces():
    g = cr.compile(lambda x: x * float(cr.stop_gradient(x[0])))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for i in range(12):
            assert_allclose(g(np.array([float(i), 1.0])), [i * i, i])
    assert any("traced" in str(m.message) for m in w)


def test_logsumexp_and_max_are_staged_not_guarded():
    f = cr.compile(cr.value_and_grad(lambda x: cnp.logsumexp(x) + cnp.max(x)))
    for scale in (1.0, 100.0, 1000.0):
        x = RNG.standard_normal(6) * scale
        v, g = f(x)
        ve, ge = cr.value_and_grad(lambda x: cnp.logsumexp(x) + cnp.max(x))(x)
        assert_allclose(v, ve, rtol=1e-12)
        assert_allclose(g, ge, rtol=1e-12)
    assert f.trace_count == 1


def test_transforms_of_compiled_functions_run_the_function():
    f = cr.compile(lambda x: cnp.sum(cnp.sin(x) ** 2))
    x = RNG.standard_normal(3)
    assert_allclose(cr.grad(f)(x), np.sin(2 * x), rtol=1e-12)
    t = cr.tensor(x, requires_grad=True)
    f(t).backward()
    assert_allclose(t.grad, np.sin(2 * x), rtol=1e-12)
    assert_allclose(f(cr.tensor(x)), np.sum(np.sin(x) ** 2))  # a plain tensor is compiled


def test_float32_is_kept():
    f = cr.compile(cr.value_and_grad(lambda x: cnp.sum(cnp.tanh(x) * 2.0)))
    v, g = f(np.ones(5, dtype=np.float32))
    assert v.dtype == np.float32 and g.dtype == np.float32


def test_training_loop_with_a_compiled_step():
    params, x, t = _mlp_args(32)
    vg = cr.value_and_grad(mlp_loss)

    @cr.compile
    def step(params, x, t):
        loss, g = vg(params, x, t)
        return loss, [p - 0.5 * gp for p, gp in zip(params, g)]

    eager = [p.copy() for p in params]
    losses = []
    for _ in range(20):
        loss, params = step(params, x, t)
        le, ge = vg(eager, x, t)
        eager = [p - 0.5 * gp for p, gp in zip(eager, ge)]
        assert_allclose(loss, le, rtol=1e-12)
        losses.append(float(loss))
    for p, q in zip(params, eager):
        assert_allclose(p, q, rtol=1e-10, atol=1e-12)
    assert losses[-1] < losses[0]
    assert step.trace_count == 1
    prog = step.program(params, x, t)
    assert "linear" in str(prog) and "log_softmax" in str(prog)


def test_w1_program_size_and_source():
    f = cr.compile(cr.value_and_grad(lambda x: chain(x, 100)))
    prog = f.program(np.array(0.5))
    # 4 forward + 5 backward operations per step after optimisation
    assert len(prog.eqns) <= 9 * 100
    assert "for " not in f.source(np.array(0.5))


def test_decorator_options_and_repr():
    @cr.compile(optimize=False, buffers=False)
    def f(x):
        return x * 1.0 + 0.0

    x = np.ones(3)
    assert_allclose(f(x), x)
    assert len(f.program(x).eqns) == 2
    g = cr.compile(lambda x: x * 1.0 + 0.0)
    assert len(g.program(x).eqns) == 0
    assert "compiled function" in repr(g)
    with pytest.raises(TypeError):
        cr.compile(3)


def test_donated_arguments_receive_the_results():
    step = cr.compile(lambda p, g: [a - 0.1 * b for a, b in zip(p, g)], donate_argnums=0)
    g = [np.arange(5000.0), np.ones(3)]
    first = step([np.ones(5000), np.ones(3)], g)         # traced: nothing is overwritten
    assert_allclose(first[0], 1 - 0.1 * np.arange(5000.0))
    p = [np.ones(5000), np.ones(3)]
    out = step(p, g)
    assert out[0] is p[0] and out[1] is p[1]              # written in place
    assert_allclose(out[0], 1 - 0.1 * np.arange(5000.0))
    assert_allclose(out[1], [0.9, 0.9, 0.9])
    ro = np.ones(5000)
    ro.flags.writeable = False
    out = step([ro, np.ones(3)], g)                       # read-only: copied, not written
    assert out[0] is not ro and np.all(ro == 1.0)
    assert_allclose(out[0], 1 - 0.1 * np.arange(5000.0))
    plain = cr.compile(lambda p, g: [a - 0.1 * b for a, b in zip(p, g)])
    p = [np.ones(5000), np.ones(3)]
    plain(p, g)
    out = plain(p, g)
    assert out[0] is not p[0] and np.all(p[0] == 1.0)     # without donation inputs are kept
