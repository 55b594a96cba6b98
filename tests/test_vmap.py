"""``cr.vmap``: axes and pytrees, composition with every transform, errors."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.batching import BatchedValueError, register_batching_rule
from chainrule.ops.nn import softmax_cross_entropy

rng = np.random.default_rng(3)


def f(w, x):
    return cnp.sum(cnp.tanh(x @ w) ** 2) + cnp.sum(w ** 3) * cnp.sum(x)


def stack(fn, *xs):
    return np.stack([np.asarray(fn(*a)) for a in zip(*xs)])


W = rng.standard_normal((3, 2))
XS = rng.standard_normal((5, 4, 3))


def test_in_axes_pytrees_and_out_axes():
    params = {"w": W, "b": np.ones(2)}
    xs = rng.standard_normal((5, 3))

    def g(p, x):
        return {"y": x @ p["w"] + p["b"], "s": cnp.sum(x)}

    out = cr.vmap(g, in_axes=({"w": None, "b": None}, 0), out_axes={"y": 1, "s": 0})(params, xs)
    assert_allclose(out["y"], (xs @ W + 1).T)
    assert_allclose(out["s"], xs.sum(1))
    # one axis for a whole tree, negative axes, keyword arguments mapped over axis 0
    both = cr.vmap(lambda t: t[0] * t[1], in_axes=(-1,))((xs.T, xs.T))
    assert_allclose(both, xs ** 2)
    kw = cr.vmap(lambda a, *, b: a + b, in_axes=(None,))(1.0, b=np.arange(3.0))
    assert_allclose(kw, np.arange(3.0) + 1)
    # unbatched outputs are broadcast; out_axes=None keeps them as they are
    c = cr.vmap(lambda x: (x, 2.0), out_axes=(0, None))(np.arange(3.0))
    assert_allclose(c[1], 2.0)
    d = cr.vmap(lambda x: 2.0)(np.arange(3.0))
    assert_allclose(d, [2.0, 2.0, 2.0])


def test_mismatched_sizes_name_both():
    with pytest.raises(ValueError, match="size 3.*size 4"):
        cr.vmap(lambda a, b: a + b)(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="in_axes"):
        cr.vmap(lambda a: a, in_axes=(0, 0))(np.ones(3))
    with pytest.raises(ValueError, match="out of bounds"):
        cr.vmap(lambda a: a, in_axes=2)(np.ones((3, 2)))
    with pytest.raises(ValueError, match="out_axes is None"):
        cr.vmap(lambda a: a, out_axes=None)(np.ones(3))


def test_python_branch_on_batched_value_suggests_cond():
    def branchy(x):
        if cnp.sum(x) > 0:
            return x
        return -x

    with pytest.raises(BatchedValueError, match="greater.*cr.cond"):
        cr.vmap(branchy)(np.ones((3, 2)))
    with pytest.raises(TypeError, match="cr.cond"):
        cr.vmap(lambda x: float(x))(np.ones(3))
    # shapes stay static: Python may branch on them
    assert_allclose(cr.vmap(lambda x: x * x.shape[0])(np.ones((2, 3))), 3 * np.ones((2, 3)))


def test_per_example_gradients_and_transforms():
    g = cr.grad(f)
    want = stack(lambda x: g(W, x), XS)
    assert_allclose(cr.vmap(g, in_axes=(None, 0))(W, XS), want, rtol=1e-12)
    # grad of vmap (through a sum)
    total = lambda w: cnp.sum(cr.vmap(f, in_axes=(None, 0))(w, XS))  # noqa: E731
    assert_allclose(cr.grad(total)(W), sum(g(W, x) for x in XS), rtol=1e-12)
    # jacobians of a vmapped function
    h = lambda x: cnp.sin(x) * cnp.sum(x)  # noqa: E731
    xs = rng.standard_normal((4, 3))
    jf = cr.jacfwd(cr.vmap(h))(xs)
    jr = cr.jacrev(cr.vmap(h))(xs)
    ref = np.zeros((4, 3, 4, 3))
    for i in range(4):
        ref[i, :, i, :] = cr.jacobian(h)(xs[i])
    assert_allclose(jf, ref, rtol=1e-12, atol=1e-14)
    assert_allclose(jr, ref, rtol=1e-12, atol=1e-14)
    # vmap of hessian, of jvp, of vmap
    hs = cr.vmap(cr.hessian(lambda x: cnp.sum(cnp.sin(x) ** 3)))(xs)
    assert_allclose(hs, stack(cr.hessian(lambda x: cnp.sum(cnp.sin(x) ** 3)), xs), rtol=1e-12)
    ts = rng.standard_normal((4, 3))
    out, tan = cr.vmap(lambda x, t: cr.jvp(h, (x,), (t,)))(xs, ts)
    assert_allclose(tan, stack(lambda x, t: cr.jvp(h, (x,), (t,))[1], xs, ts), rtol=1e-12)
    inner = cr.vmap(lambda a, b: cnp.dot(a, b), in_axes=(0, None))
    vv = cr.vmap(inner, in_axes=(0, None))(XS, W[:, 0])
    assert_allclose(vv, XS @ W[:, 0], rtol=1e-12)
    # vmap over the second axis of an inner vmap, with out_axes
    vv2 = cr.vmap(cr.vmap(h, out_axes=1), in_axes=1)(rng.standard_normal((2, 3, 3)))
    assert vv2.shape == (3, 3, 2)


def test_second_order_through_vmap():
    xs = rng.standard_normal((4, 3))
    fn = lambda w: cnp.sum(cr.vmap(lambda x: cnp.sum(cnp.tanh(w * x)) ** 2)(xs))  # noqa: E731
    w = rng.standard_normal(3)
    cr.check_grads(fn, (w,), order=2, modes=("fwd", "rev"))


def test_eager_tensors_requiring_grad_inside():
    w = cr.tensor(W, requires_grad=True)
    y = cr.vmap(lambda x: cnp.sum(cnp.tanh(x @ w)))(XS)
    assert isinstance(y, cr.Tensor) and y.shape == (5,)
    y.sum().backward()
    want = cr.grad(lambda w_: sum(cnp.sum(cnp.tanh(x @ w_)) for x in XS))(W)
    assert_allclose(w.grad, want, rtol=1e-12)
    xs = cr.tensor(XS, requires_grad=True)
    out = cr.vmap(lambda x: cnp.sum(x ** 2), in_axes=1)(xs)
    out.sum().backward()
    assert_allclose(xs.grad, 2 * XS)


def test_compile_of_vmap():
    fn = cr.compile(cr.vmap(cr.grad(f), in_axes=(None, 0)))
    assert_allclose(fn(W, XS), cr.vmap(cr.grad(f), in_axes=(None, 0))(W, XS), rtol=1e-12)


def test_cross_entropy_per_example_gradients_with_batched_labels():
    z = rng.standard_normal((6, 4))
    labels = np.array([0, 3, 1, 1, 2, 0])
    # the fused primitive (nn.functional.cross_entropy validates labels by reading them)
    loss = lambda w, x, y: softmax_cross_entropy((x @ w)[None], y[None])  # noqa: E731
    w = rng.standard_normal((4, 4))
    got = cr.vmap(cr.grad(loss), in_axes=(None, 0, 0))(w, z, labels)
    want = np.stack([cr.grad(loss)(w, z[i], labels[i]) for i in range(6)])
    assert_allclose(got, want, rtol=1e-12)


def test_custom_function_needs_a_rule():
    class Cube(cr.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x ** 2 * g

    xs = np.array([1.0, 2.0, 3.0])
    with pytest.raises(NotImplementedError, match="Cube.*register_batching_rule"):
        cr.vmap(Cube.apply)(xs)
    register_batching_rule(Cube, "elementwise")
    assert_allclose(cr.vmap(Cube.apply)(xs), xs ** 3)
    assert_allclose(cr.vmap(cr.grad(Cube.apply))(xs), 3 * xs ** 2)


def test_gradient_tape_inside_vmap():
    f = lambda x, w: cnp.sum(cnp.tanh(x @ w) ** 2)  # noqa: E731
    shared = cr.tensor(W)

    def per_example(x):
        with cr.GradientTape() as tape:
            tape.watch(x)
            tape.watch(shared)
            y = f(x, shared)
        return tape.gradient(y, [x, shared])

    xs = XS[:, 0, :]
    gx, gw = cr.vmap(per_example)(xs)
    assert_allclose(gx, stack(lambda x: cr.grad(f)(x, W), xs), rtol=1e-12)
    assert_allclose(gw, stack(lambda x: cr.grad(f, 1)(x, W), xs), rtol=1e-12)
    # a source the target does not depend on
    def unrelated(x):
        with cr.GradientTape() as tape:
            tape.watch(x)
            z = cr.tensor(np.ones(2))
            tape.watch(z)
            y = cnp.sum(x ** 2)
        return tape.gradient(y, z, unconnected="zero")

    assert_allclose(cr.vmap(unrelated)(xs), np.zeros((5, 2)))


def test_indexing_a_batched_value_with_batched_integers():
    z = rng.standard_normal((5, 4, 3))
    y = np.array([0, 3, 1, 1, 2])
    got = cr.vmap(lambda a, i: a[i, 1:])(z, y)
    assert_allclose(got, np.stack([z[k][y[k], 1:] for k in range(5)]))
    idx = rng.integers(0, 4, (5, 2))
    assert_allclose(cr.vmap(lambda a, i: a[i])(z, idx), np.stack([z[k][idx[k]] for k in range(5)]))
    g = cr.grad(lambda a: cnp.sum(cr.vmap(lambda r, i: r[i] ** 2)(a, y)))(z[:, :, 0])
    want = np.zeros((5, 4))
    want[np.arange(5), y] = 2 * z[np.arange(5), y, 0]
    assert_allclose(g, want)
    with pytest.raises(IndexError, match="come first"):
        cr.vmap(lambda a, i: a[:, i])(z, y)
    with pytest.raises(BatchedValueError, match="reading the value"):
        cr.vmap(lambda a, i: cnp.take_along_axis(a, i[None], axis=0))(z[:, :, 0], y)


def test_more_compositions():
    xs, ts = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    h = lambda x: cnp.sin(x) * cnp.sum(x)  # noqa: E731
    _, t = cr.jvp(cr.vmap(h), (xs,), (ts,))
    assert_allclose(t, stack(lambda x, v: cr.jvp(h, (x,), (v,))[1], xs, ts), rtol=1e-12)
    assert_allclose(cr.vmap(cr.jacrev(h))(xs), stack(cr.jacrev(h), xs), rtol=1e-12)
    pulled = cr.vmap(lambda x, v: cr.vjp(h, x)[1](v)[0])(xs, ts)
    assert_allclose(pulled, stack(lambda x, v: cr.vjp(h, x)[1](v)[0], xs, ts), rtol=1e-12)
    assert_allclose(cr.vmap(cr.compile(h))(xs), stack(h, xs), rtol=1e-12)
    # reverse over vmap over reverse, checked numerically to second order in both modes
    f2 = lambda x: cnp.sum(cr.vmap(cr.grad(lambda r: cnp.sum(cnp.sin(r) ** 2)))(x) ** 2)  # noqa: E731
    cr.check_grads(f2, (xs,), order=2, modes=("fwd", "rev"))


def test_modules_under_vmap():
    from chainrule import nn

    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(0),
                      nn.Linear(2 * 4 * 4, 3))
    xs = rng.standard_normal((5, 1, 8, 8))
    out = cr.vmap(m)(xs)
    ref = np.stack([m(cr.tensor(x)).data for x in xs])
    assert_allclose(out.data, ref, rtol=1e-12, atol=1e-14)
    out.sum().backward()
    g_vmap = m[0].weight.grad.copy()
    m.zero_grad()
    for x in xs:
        m(cr.tensor(x)).sum().backward()
    assert_allclose(g_vmap, m[0].weight.grad, rtol=1e-12)
