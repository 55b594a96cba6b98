"""cr.cond, cr.while_loop, cr.fori_loop, cr.scan: eager, under transforms, compiled, in graphs.

Values and derivatives are checked against the same program written as a Python loop and
against closed forms (Newton's iteration for sqrt, power iteration, an RNN).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import graph as G
from chainrule.batching import BatchedValueError

rng = np.random.default_rng(11)


# --- closed forms -------------------------------------------------------------------------------

def newton_sqrt(a):
    return cr.while_loop(lambda x: cnp.abs(x * x - a) > 1e-13 * a,
                         lambda x: 0.5 * (x + a / x), a)


def power_iteration(A, steps=60):
    v0 = np.ones(A.shape[-1]) / np.sqrt(A.shape[-1])

    def body(i, v):
        w = A @ v
        return w / cnp.sqrt(cnp.sum(w * w))

    v = cr.fori_loop(0, steps, body, v0)
    return v @ (A @ v), v


def rnn_scan(W, U, xs, h0):
    def step(h, x):
        h = cnp.tanh(W @ h + U @ x)
        return h, cnp.sum(h * h)

    return cr.scan(step, h0, xs)


def rnn_python(W, U, xs, h0):
    h, ys = h0, []
    for t in range(xs.shape[0]):
        h = cnp.tanh(W @ h + U @ xs[t])
        ys.append(cnp.sum(h * h))
    return h, cnp.stack(ys)


def rnn_loss(f):
    return lambda W, U, xs, h0: (lambda h, ys: cnp.sum(h) + cnp.sum(ys * ys))(*f(W, U, xs, h0))


def rnn_args(T=6, n=3, m=2):
    return (rng.normal(size=(n, n)) * 0.5, rng.normal(size=(n, m)) * 0.5,
            rng.normal(size=(T, m)), rng.normal(size=n) * 0.1)


def test_newton_sqrt_value_and_derivatives_closed_form():
    for a in (2.0, 9.0, 1e4):
        assert_allclose(newton_sqrt(np.array(a)), np.sqrt(a), rtol=1e-14)
        assert_allclose(cr.grad(newton_sqrt)(np.array(a)), 0.5 / np.sqrt(a), rtol=1e-10)
        assert_allclose(cr.jacfwd(newton_sqrt)(np.array(a)), 0.5 / np.sqrt(a), rtol=1e-10)
        assert_allclose(cr.hessian(newton_sqrt)(np.array(a)), -0.25 * a ** -1.5, rtol=1e-7)


def test_power_iteration_eigenvalue_and_its_gradient():
    B = rng.normal(size=(4, 4))
    A = B @ B.T + np.diag([8.0, 1.0, 0.5, 0.1])
    lam, v = power_iteration(A)
    w, V = np.linalg.eigh(A)
    assert_allclose(lam, w[-1], rtol=1e-10)
    # d lambda / d A = u u^T for the (simple) top eigenvector u of a symmetric matrix
    g = cr.grad(lambda A: power_iteration(A)[0])(A)
    u = V[:, -1]
    assert_allclose(g, np.outer(u, u), atol=1e-8)


def test_rnn_scan_matches_python_loop_values_and_gradients():
    args = rnn_args()
    h1, ys1 = rnn_scan(*args)
    h2, ys2 = rnn_python(*args)
    assert_allclose(h1, h2, rtol=1e-14)
    assert_allclose(ys1, ys2, rtol=1e-14)
    g1 = cr.grad(rnn_loss(rnn_scan), argnums=(0, 1, 2, 3))(*args)
    g2 = cr.grad(rnn_loss(rnn_python), argnums=(0, 1, 2, 3))(*args)
    for a, b in zip(g1, g2):
        assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    cr.check_grads(rnn_loss(rnn_scan), args, order=2, modes=("fwd", "rev"))


# --- eager semantics ----------------------------------------------------------------------------

def test_scan_pytrees_reverse_and_length():
    xs = {"a": np.arange(4.0), "b": np.arange(8.0).reshape(4, 2)}
    init = (np.array(0.0), np.zeros(2))

    def f(c, x):
        s, v = c
        return (s + x["a"], v + x["b"]), {"s": s, "v": v * x["a"]}

    (s, v), ys = cr.scan(f, init, xs)
    assert_allclose(s, 6.0)
    assert_allclose(v, xs["b"].sum(0))
    assert_allclose(ys["s"], [0.0, 0.0, 1.0, 3.0])
    # reverse: steps run from the last x, ys stay in the order of xs
    c, ys = cr.scan(lambda c, x: (c + x, c), np.array(0.0), np.arange(1.0, 4.0), reverse=True)
    assert_allclose(c, 6.0)
    assert_allclose(ys, [5.0, 3.0, 0.0])
    c, ys = cr.scan(lambda c, _: (c * 2, None), np.array(1.0), length=5)
    assert_allclose(c, 32.0)
    assert ys is None
    c, ys = cr.scan(lambda c, x: (c + x, c * x), np.array(1.0), np.zeros((0,)))
    assert ys.shape == (0,)


def test_fori_and_while_values_match_python():
    assert_allclose(cr.fori_loop(2, 7, lambda i, x: x * 2 + i, np.array(1.0)),
                    _py_fori(2, 7, lambda i, x: x * 2 + i, 1.0))
    assert_allclose(cr.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 1.5),
                                  (0, np.array(1.0)))[1], 1.5 ** 5)
    # fori over zero steps returns the initial value
    assert_allclose(cr.fori_loop(3, 3, lambda i, x: x + 1, np.array(4.0)), 4.0)


def _py_fori(lo, hi, body, x):
    for i in range(lo, hi):
        x = body(i, x)
    return x


def test_cond_eager_takes_one_branch_and_differentiates():
    f = lambda x: cr.cond(cnp.sum(x) > 0, lambda u: cnp.sin(u) * u, lambda u: u ** 3, x)  # noqa
    for x in (np.array([0.3, 0.9]), np.array([-0.3, -0.9])):
        cr.check_grads(f, (x,), order=2, modes=("fwd", "rev"))
    assert_allclose(f(np.array([0.5])), np.sin(0.5) * 0.5)
    assert_allclose(f(np.array([-0.5])), -0.125)


def test_reverse_mode_through_while_loop_keeps_iterations():
    def f(x):
        return cr.while_loop(lambda c: c[0] < 4, lambda c: (c[0] + 1, cnp.sin(c[1]) * x),
                             (0, x))[1]

    def f_py(x):
        y = x
        for _ in range(4):
            y = cnp.sin(y) * x
        return y

    x = np.array([0.4, 1.2])
    assert_allclose(cr.jacrev(f)(x), cr.jacrev(f_py)(x), rtol=1e-13)
    assert_allclose(cr.hessian(lambda x: cnp.sum(f(x)))(x),
                    cr.hessian(lambda x: cnp.sum(f_py(x)))(x), rtol=1e-12)
    cr.check_grads(f, (x,), order=2, modes=("fwd", "rev"))


def test_tensors_and_tape():
    x = cr.tensor(2.0, requires_grad=True)
    y = cr.fori_loop(0, 3, lambda i, v: v * x, x)
    y.backward()
    assert_allclose(x.grad, 4 * 2.0 ** 3)


# --- vmap ---------------------------------------------------------------------------------------

def test_vmap_cond_batched_predicate_selects_per_example():
    f = lambda x: cr.cond(x > 0, lambda y: y ** 2, lambda y: -y, x)  # noqa: E731
    x = np.array([-1.5, 2.0, 0.5])
    assert_allclose(cr.vmap(f)(x), [1.5, 4.0, 0.25])
    assert_allclose(cr.vmap(cr.grad(f))(x), [-1.0, 4.0, 1.0])
    assert_allclose(cr.jacfwd(cr.vmap(f))(x), np.diag([-1.0, 4.0, 1.0]))


def test_vmap_while_batched_predicate_freezes_finished_examples():
    a = np.array([2.0, 9.0, 1e4, 0.01])
    assert_allclose(cr.vmap(newton_sqrt)(a), np.sqrt(a), rtol=1e-13)
    assert_allclose(cr.vmap(cr.grad(newton_sqrt))(a), 0.5 / np.sqrt(a), rtol=1e-9)
    assert_allclose(cr.jacrev(cr.vmap(newton_sqrt))(a), np.diag(0.5 / np.sqrt(a)), rtol=1e-9)
    # per-example trip counts: counting steps until a threshold
    count = lambda x: cr.while_loop(lambda c: c[1] < 10.0,  # noqa: E731
                                    lambda c: (c[0] + 1, c[1] * 2.0), (np.array(0), x))[0]
    assert_allclose(cr.vmap(count)(np.array([1.0, 3.0, 20.0])), [4, 2, 0])


def test_vmap_scan_and_fori():
    args = rnn_args()
    W, U, xs, h0 = args
    xb = np.stack([xs, xs * 0.5, -xs])
    out = cr.vmap(lambda x: rnn_scan(W, U, x, h0)[0])(xb)
    ref = np.stack([np.asarray(rnn_python(W, U, x, h0)[0]) for x in xb])
    assert_allclose(out, ref, rtol=1e-13)
    n = np.array([1, 3, 5])  # batched trip counts: a while loop underneath
    assert_allclose(cr.vmap(lambda k: cr.fori_loop(0, k, lambda i, v: v * 2.0, 1.0))(n),
                    [2.0, 8.0, 32.0])


def test_python_branch_on_batched_value_suggests_cond():
    with pytest.raises(BatchedValueError, match=r"cr\.cond") as info:
        cr.vmap(lambda x: x if x > 0 else -x)(np.array([1.0, -2.0]))
    assert "greater" in str(info.value)


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: cr.scan(lambda c, x: (c.astype(np.float32), x), np.array(0.0), np.ones(3)),
    lambda: cr.scan(lambda c, x: (cnp.stack([c, c]), x), np.array(0.0), np.ones(3)),
    lambda: cr.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1,), (0, 1.0)),
    lambda: cr.fori_loop(0, 3, lambda i, c: {"a": c}, np.array(1.0)),
    lambda: cr.cond(True, lambda x: x, lambda x: (x, x), np.ones(2)),
    lambda: cr.cond(False, lambda x: x, lambda x: x[:1], np.ones(2)),
], ids=["scan-dtype", "scan-shape", "while-structure", "fori-structure", "cond-structure",
        "cond-shape"])
def test_mismatched_carries_and_branches_raise_type_error_naming_both(call):
    with pytest.raises(TypeError) as info:
        call()
    msg = str(info.value)
    assert msg.count("PyTreeDef") == 2


def test_mismatch_raises_in_compiled_and_vmapped_forms_too():
    f = cr.compile(lambda x: cr.scan(lambda c, t: (c.astype(np.float32), t), x, np.ones(2)))
    with pytest.raises(TypeError, match="float32"):
        f(np.array(1.0))
    with pytest.raises(TypeError, match="false_fun"):
        cr.vmap(lambda x: cr.cond(x > 0, lambda y: y, lambda y: cnp.stack([y, y]), x))(
            np.ones(2))


def test_scan_length_errors():
    with pytest.raises(ValueError, match="3, 4"):
        cr.scan(lambda c, x: (c, None), 0.0, (np.ones(3), np.ones(4)))
    with pytest.raises(ValueError, match="length"):
        cr.scan(lambda c, x: (c, None), 0.0)


# --- cr.compile: one operation, data-dependent trip counts --------------------------------------

def test_compiled_loops_are_one_operation_whatever_the_trip_count():
    W, U, xs, h0 = rnn_args(T=5)
    f = cr.compile(rnn_loss(rnn_scan))
    long_xs = rng.normal(size=(40, xs.shape[1]))
    for x in (xs, long_xs):
        assert_allclose(f(W, U, x, h0), rnn_loss(rnn_python)(W, U, x, h0), rtol=1e-13)
    p5, p40 = f.program(W, U, xs, h0), f.program(W, U, long_xs, h0)
    assert p5.count("scan") == 1 and len(p5) == len(p40)


def test_compiled_value_and_grad_of_rnn_is_a_reverse_scan():
    args = rnn_args(T=7)
    vg = cr.compile(cr.value_and_grad(rnn_loss(rnn_scan), argnums=(0, 1, 3)))
    v, g = vg(*args)
    v_ref, g_ref = cr.value_and_grad(rnn_loss(rnn_python), argnums=(0, 1, 3))(*args)
    assert_allclose(v, v_ref, rtol=1e-13)
    for a, b in zip(g, g_ref):
        assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    prog = vg.program(*args)
    assert prog.count("scan") <= 3  # forward, carries for the reverse pass, reverse
    longer = rnn_args(T=30)
    assert len(vg.program(*longer)) == len(prog)


def test_compiled_data_dependent_trip_count_replays_correctly():
    f = cr.compile(newton_sqrt)
    vg = cr.compile(cr.value_and_grad(newton_sqrt))
    for a in (2.0, 16.0, 1e6, 0.25):
        assert_allclose(f(np.array(a)), np.sqrt(a), rtol=1e-13)
        v, g = vg(np.array(a))
        assert_allclose(g, 0.5 / np.sqrt(a), rtol=1e-9)
    assert f.trace_count == 1 and vg.trace_count == 1
    assert f.program(np.array(2.0)).count("while") == 1
    # the reverse pass is one operation too, keeping the iterations it runs
    assert vg.program(np.array(2.0)).count("while_grad") == 1
    h = cr.compile(lambda n, x: cr.fori_loop(0, n, lambda i, v: v * 2.0 + i, x))
    for n in (0, 3, 11):
        assert_allclose(h(np.array(n), np.array(1.0)), _py_fori(0, n, lambda i, v: v * 2 + i, 1.0))
    assert h.trace_count == 1


def test_compiled_cond_decides_at_run_time():
    f = cr.compile(cr.value_and_grad(
        lambda x: cr.cond(cnp.sum(x) > 0, lambda u: cnp.sum(u ** 3), lambda u: cnp.sum(cnp.sin(u)),
                          x)))
    for x in (np.array([1.0, 2.0]), np.array([-1.0, -2.0])):
        v, g = f(x)
        ref = 3 * x ** 2 if x.sum() > 0 else np.cos(x)
        assert_allclose(g, ref, rtol=1e-14)
    assert f.trace_count == 1


def test_compiled_loop_body_closing_over_arguments():
    def f(W, x):  # the bodies close over W: captured as an input of the loop
        return cr.fori_loop(0, 4, lambda i, h: cnp.tanh(W @ h), x)

    W, x = rng.normal(size=(3, 3)), rng.normal(size=3)
    c = cr.compile(cr.grad(lambda W, x: cnp.sum(f(W, x))))
    assert_allclose(c(W, x), cr.grad(lambda W, x: cnp.sum(f(W, x)))(W, x), rtol=1e-12)
    assert_allclose(c(2 * W, x), cr.grad(lambda W, x: cnp.sum(f(W, x)))(2 * W, x), rtol=1e-12)


def test_compiled_jvp_and_vmap_of_loops():
    args = rnn_args(T=4)
    W, U, xs, h0 = args
    jf = cr.compile(lambda W: cr.jacfwd(lambda W: rnn_scan(W, U, xs, h0)[0])(W))
    assert_allclose(jf(W), cr.jacfwd(lambda W: rnn_python(W, U, xs, h0)[0])(W), rtol=1e-12)
    vf = cr.compile(cr.vmap(newton_sqrt))
    a = np.array([2.0, 5.0, 7.0])
    assert_allclose(vf(a), np.sqrt(a), rtol=1e-13)


# --- static graphs ------------------------------------------------------------------------------

def test_graph_loop_with_placeholder_trip_count_and_state():
    n = G.placeholder(shape=(), name="n_steps")
    x = G.placeholder(shape=(None,), name="x0")
    y = cr.fori_loop(0, n, lambda i, v: v * 0.5 + 1.0, x)
    run = G.compile(y, inputs=[n, x])
    for k in (0, 2, 9):
        assert_allclose(run(np.array(k), np.ones(3)), _py_fori(0, k, lambda i, v: v * 0.5 + 1,
                                                               np.ones(3)))
    gx, = G.gradients(cnp.sum(y), [x])
    assert_allclose(gx.forward({n: np.array(3), x: np.ones(2)}), [0.125, 0.125])


def test_graph_scan_rnn_gradients_and_unknown_length():
    W = G.variable(rng.normal(size=(3, 3)) * 0.5, name="W_rnn")
    U = G.variable(rng.normal(size=(3, 2)) * 0.5, name="U_rnn")
    xs = G.placeholder(shape=(None, 2), name="xs_rnn")
    h0 = np.zeros(3)
    loss = rnn_loss(rnn_scan)(W, U, xs, h0)
    gW, gU = G.gradients(loss, [W, U])
    for T in (3, 8):
        data = rng.normal(size=(T, 2))
        assert_allclose(loss.forward({xs: data}),
                        rnn_loss(rnn_python)(W.value, U.value, data, h0), rtol=1e-13)
        ref = cr.grad(rnn_loss(rnn_python), argnums=(0, 1))(W.value, U.value, data, h0)
        assert_allclose(gW.forward({xs: data}), ref[0], rtol=1e-11)
        assert_allclose(gU.forward({xs: data}), ref[1], rtol=1e-11)


def test_graph_while_and_cond_gradients():
    a = G.placeholder(shape=(), name="a_sqrt")
    root = newton_sqrt(a)
    g, = G.gradients(root, [a])
    z = cr.cond(a > 1, lambda v: v ** 3, lambda v: cnp.sin(v), a)
    gz, = G.gradients(z, [a])
    for v in (0.5, 2.0, 50.0):
        assert_allclose(root.forward({a: np.array(v)}), np.sqrt(v), rtol=1e-13)
        assert_allclose(g.forward({a: np.array(v)}), 0.5 / np.sqrt(v), rtol=1e-9)
        ref = 3 * v ** 2 if v > 1 else np.cos(v)
        assert_allclose(gz.forward({a: np.array(v)}), ref, rtol=1e-14)


# --- sparsity patterns through loops and branches -----------------------------------------------

def test_sparsity_patterns_follow_loop_bodies():
    pytest.importorskip("scipy")
    x = np.arange(1.0, 6.0)

    def f(x):  # a chain: y_t depends on x_0 .. x_(t+1)
        c, ys = cr.scan(lambda c, xt: (c * 0.5 + xt, c * xt), x[0], x[1:])
        return cnp.concatenate([ys, c[None]])

    P = cr.sparse.jacobian_sparsity(f, x).toarray()
    assert_allclose(P, np.tril(np.ones((5, 5)), 1))
    dense = cr.jacfwd(f)(x) != 0
    assert not np.any(dense & ~P)  # never misses a structural nonzero

    def g(x):  # a banded update repeated 3 times: bandwidth 3 below the diagonal
        return cr.fori_loop(0, 3, lambda i, v: cnp.concatenate([v[:1], v[1:] * v[:-1]]), x)

    P = cr.sparse.jacobian_sparsity(g, x).toarray()
    assert_allclose(P, np.tril(np.ones((5, 5))) - np.tril(np.ones((5, 5)), -4))
    assert_allclose(cr.sparse.jacobian(g, x).toarray(), cr.jacfwd(g)(x), rtol=1e-13)

    def h(x):  # a while loop: the union over every trip count (a fixed point)
        body = lambda c: (c[0] + 1, cnp.concatenate([c[1][:1], c[1][1:] + c[1][:-1]]))  # noqa
        return cr.while_loop(lambda c: c[0] < 3, body, (0, x))[1]

    P = cr.sparse.jacobian_sparsity(h, x).toarray()
    assert_allclose(P, np.tril(np.ones((5, 5))))
    assert not np.any((cr.jacfwd(h)(x) != 0) & ~P)

    def k(x):  # a branch on x: both branches count
        return cr.cond(x[0] > 0, lambda v: v * v[0], lambda v: v[::-1] * 2, x)

    P = cr.sparse.jacobian_sparsity(k, x).toarray()
    expected = np.eye(5) + np.eye(5)[::-1]
    expected[:, 0] = 1
    assert_allclose(P, expected > 0)
    H = cr.sparse.hessian(lambda x: cnp.sum(f(x) ** 2), x).toarray()
    assert_allclose(H, cr.hessian(lambda x: cnp.sum(f(x) ** 2))(x), rtol=1e-12)


def test_compiled_while_loop_reverse_is_differentiable_again():
    # the staged reverse of a while loop is one operation; its own derivatives come from the
    # loop's Python form, re-traced when the data-dependent trip count changes
    fwd_rev = cr.compile(cr.jacfwd(cr.grad(newton_sqrt)))
    rev_rev = cr.compile(cr.grad(cr.grad(newton_sqrt)))
    for v in (0.5, 2.0, 50.0, 2.0):
        want = -0.25 * v ** -1.5
        assert_allclose(fwd_rev(np.array(v)), want, rtol=1e-9)
        assert_allclose(rev_rev(np.array(v)), want, rtol=1e-9)
    x = np.array([0.3, 0.7])

    def f(x):
        body = lambda c: (c[0] + 1, cnp.sin(c[1]) * 1.5)  # noqa: E731
        return cnp.sum(cr.while_loop(lambda c: c[0] < 3, body, (0, x))[1] ** 2)

    assert_allclose(cr.compile(cr.jacfwd(cr.grad(f)))(x), cr.hessian(f)(x), rtol=1e-12)


def test_graph_while_loop_second_order_is_refused_clearly():
    a = G.placeholder(shape=(), name="a_sqrt_2nd")
    g, = G.gradients(newton_sqrt(a), [a])
    with pytest.raises(NotImplementedError, match="differentiable once"):
        G.gradients(g, [a])
