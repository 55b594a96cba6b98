"""``cr.linearize`` and ``cr.checkpoint`` / ``cr.remat``."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp

rng = np.random.default_rng(5)


# --- linearize ---------------------------------------------------------------------------------

def test_linearize_matches_jvp_and_does_not_rerun_f():
    calls = []

    def f(x, p):
        calls.append(1)
        return {"a": cnp.sin(x) * p["s"], "b": cnp.sum(cnp.exp(x) @ p["m"])}

    x = rng.standard_normal(3)
    p = {"s": rng.standard_normal(3), "m": rng.standard_normal((3, 2))}
    out, f_jvp = cr.linearize(f, x, p)
    assert len(calls) == 1
    for _ in range(3):
        tx = rng.standard_normal(3)
        tp = {"s": rng.standard_normal(3), "m": rng.standard_normal((3, 2))}
        got = f_jvp(tx, tp)
        _, want = cr.jvp(f, (x, p), (tx, tp))
        assert_allclose(got["a"], want["a"], rtol=1e-12)
        assert_allclose(got["b"], want["b"], rtol=1e-12)
    assert len(calls) == 4  # once for linearize, once per jvp reference; none for f_jvp
    assert_allclose(out["a"], np.sin(x) * p["s"])


def test_linearize_batched_tangents_and_errors():
    A = rng.standard_normal((4, 3))
    f = lambda x: cnp.tanh(A @ x)  # noqa: E731
    x = rng.standard_normal(3)
    _, f_jvp = cr.linearize(f, x)
    jac = cr.vmap(f_jvp, out_axes=1)(np.eye(3))
    assert_allclose(jac, cr.jacfwd(f)(x), rtol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        f_jvp(np.ones(2))
    # the linear map is differentiable again (a transform outside sees its tangents)
    g = cr.grad(lambda t: cnp.sum(f_jvp(t) ** 2))(np.ones(3))
    J = cr.jacfwd(f)(x)
    assert_allclose(g, 2 * J.T @ (J @ np.ones(3)), rtol=1e-12)


# --- checkpoint --------------------------------------------------------------------------------

WIDTH, BATCH, DEPTH = 64, 256, 24


def _block(h, w, b):
    return h + 0.5 * cnp.tanh(h @ w + b) * cnp.cos(h)


def _model(block):
    def loss(params, x):
        h = x
        for w, b in params:
            h = block(h, w, b)
        return cnp.mean(h ** 2)

    return loss


def _params(width=WIDTH, depth=DEPTH):
    return [(rng.standard_normal((width, width)) / np.sqrt(width), 0.1 * np.ones(width))
            for _ in range(depth)]


def _peak(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak


def test_checkpointed_blocks_halve_peak_memory_with_equal_gradients():
    params = _params()
    x = rng.standard_normal((BATCH, WIDTH))
    plain = cr.grad(_model(_block))
    remat = cr.grad(_model(cr.checkpoint(_block)))
    g_plain, peak_plain = _peak(lambda: plain(params, x))
    g_remat, peak_remat = _peak(lambda: remat(params, x))
    assert peak_remat <= 0.5 * peak_plain, (peak_remat, peak_plain)
    for (a, b), (c, d) in zip(g_plain, g_remat):
        assert_allclose(c, a, rtol=1e-10, atol=1e-12)
        assert_allclose(d, b, rtol=1e-10, atol=1e-12)


def test_checkpoint_every_order_and_mode():
    params = _params(width=3, depth=3)
    x = rng.standard_normal((2, 3))
    w0 = params[0][0]

    def make(block):
        return lambda w: _model(block)([(w, params[0][1])] + params[1:], x)

    plain, remat = make(_block), make(cr.remat(_block))
    assert_allclose(remat(w0), plain(w0), rtol=1e-14)
    assert_allclose(cr.hessian(remat)(w0), cr.hessian(plain)(w0), rtol=1e-10, atol=1e-12)
    assert_allclose(cr.jacfwd(remat)(w0), cr.jacfwd(plain)(w0), rtol=1e-10, atol=1e-12)
    t = rng.standard_normal(w0.shape)
    assert_allclose(cr.jvp(remat, (w0,), (t,))[1], cr.jvp(plain, (w0,), (t,))[1], rtol=1e-10)
    cr.check_grads(remat, (w0,), order=2, modes=("fwd", "rev"))
    # eager create_graph: the gradient is differentiable again
    w = cr.tensor(w0, requires_grad=True)
    remat(w).backward(create_graph=True)
    gsum = w.grad.sum()
    w.grad = None
    gsum.backward()
    want = cr.grad(lambda v: cnp.sum(cr.grad(plain)(v)))(w0)
    assert_allclose(w.grad, want, rtol=1e-10, atol=1e-12)
    # under vmap: per-example gradients through the checkpointed block
    ws = np.stack([w0, 2 * w0])
    assert_allclose(cr.vmap(cr.grad(remat))(ws), np.stack([cr.grad(plain)(v) for v in ws]),
                    rtol=1e-10)


def test_checkpoint_pytrees_static_args_and_closures():
    def block(h, p, scale):
        return {"out": cnp.sin(h @ p["w"]) * scale, "aux": cnp.sum(h)}

    p = {"w": rng.standard_normal((3, 3))}
    h = rng.standard_normal(3)
    ck = cr.checkpoint(block, static_argnums=(2,))
    got = cr.grad(lambda q: cnp.sum(ck(h, q, 2.0)["out"]) + ck(h, q, 2.0)["aux"])(p)
    want = cr.grad(lambda q: cnp.sum(block(h, q, 2.0)["out"]))(p)
    assert_allclose(got["w"], want["w"], rtol=1e-12)
    w = cr.tensor(p["w"], requires_grad=True)
    with pytest.raises(TypeError, match="pass such tensors as arguments"):
        cr.checkpoint(lambda v: cnp.sin(v @ w))(h)
