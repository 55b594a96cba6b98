"""Shape ops: values against NumPy, gradients against central differences (reverse and
forward, batched cotangents and tangents, second order), float32, errors, Tensor methods
and the array-API (array-api-strict) backend."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core.backward import backward_pass
from chainrule.core.trace import level_scope
from chainrule.tensor import Tensor

RNG = np.random.default_rng(7)
EPS = 1e-6


def _np(y):
    y = y.data if isinstance(y, Tensor) else y
    if not isinstance(y, (np.ndarray, np.generic, float, int)):
        return np.from_dlpack(y)  # array-api-strict
    return np.asarray(y)


def _outs(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def _vals(f, xs):
    return [_np(y) for y in _outs(f(cnp, *xs))]


def _rev(f, xs, ws, create_graph=False):
    """Reverse-mode gradients of sum_i <w_i, f(xs)_i> for every input (zeros if unused)."""
    ts = [cr.tensor(x, requires_grad=True) for x in xs]
    ys = _outs(f(cnp, *ts))
    terms = [(y * w).sum() for y, w in zip(ys, ws) if isinstance(y, Tensor) and y.requires_grad]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    total.backward(create_graph=create_graph)
    return ts, [t.grad if t.grad is not None else np.zeros_like(x) for t, x in zip(ts, xs)]


def _fd_grads(f, xs, ws):
    def phi(*a):
        return sum(float(np.sum(y * w)) for y, w in zip(_vals(f, a), ws))

    out = []
    for i, x in enumerate(xs):
        g = np.zeros_like(x)
        for j in np.ndindex(x.shape):
            plus = [a.copy() for a in xs]
            minus = [a.copy() for a in xs]
            plus[i][j] += EPS
            minus[i][j] -= EPS
            g[j] = (phi(*plus) - phi(*minus)) / (2 * EPS)
        out.append(g)
    return out


def _fwd(f, xs, vs):
    """(values, tangents) of f at xs along vs with hand-made forward boxes."""
    with level_scope(forward=True) as L:
        ys = _outs(f(cnp, *[Tensor(x, L, None, False, v) for x, v in zip(xs, vs)]))
        return [_np(y) for y in ys], [None if y._tangent is None else _np(y._tangent) for y in ys]


def _cube(f):
    return lambda m, *a: [y ** 3 for y in _outs(f(m, *a))]


def check_derivatives(f, xs, order=2, k=3):
    """First order (rev, fwd), batched (rev, fwd) and second order (rev over rev) of f."""
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    ys = _vals(f, xs)
    ws = [RNG.standard_normal(y.shape) for y in ys]
    # reverse, first order
    _, got = _rev(f, xs, ws)
    for g, fd in zip(got, _fd_grads(f, xs, ws)):
        assert_allclose(_np(g), fd, rtol=1e-6, atol=1e-7)
    # forward, first order: directional derivative against central differences
    vs = [RNG.standard_normal(x.shape) for x in xs]
    vals, tans = _fwd(f, xs, vs)
    plus = _vals(f, [x + EPS * v for x, v in zip(xs, vs)])
    minus = _vals(f, [x - EPS * v for x, v in zip(xs, vs)])
    for y, v, t, p, m in zip(ys, vals, tans, plus, minus):
        assert_array_equal(v, y)
        assert_allclose(np.zeros_like(y) if t is None else t, (p - m) / (2 * EPS),
                        rtol=1e-6, atol=1e-7)
    # batched cotangents: one reverse pass for k cotangents
    Gs = [RNG.standard_normal((k,) + y.shape) for y in ys]
    ts = [cr.tensor(x, requires_grad=True) for x in xs]
    outs = _outs(f(cnp, *ts))
    roots = [(y, G) for y, G in zip(outs, Gs) if isinstance(y, Tensor) and y.requires_grad]
    leaves, _ = backward_pass(roots, 0)
    for j in range(k):
        _, single = _rev(f, xs, [G[j] for G in Gs])
        for t, s in zip(ts, single):
            if id(t) in leaves:
                batched = _np(leaves[id(t)][1])
                assert batched.shape == (k,) + t.shape
                assert_allclose(batched[j], _np(s), rtol=1e-12, atol=1e-12)
    # batched tangents: one forward pass for k tangents
    Vs = [RNG.standard_normal((k,) + x.shape) for x in xs]
    _, btans = _fwd(f, xs, Vs)
    for j in range(k):
        _, single = _fwd(f, xs, [V[j] for V in Vs])
        for bt, st, y in zip(btans, single, ys):
            if bt is not None:
                assert bt.shape == (k,) + y.shape
                assert_allclose(bt[j], st, rtol=1e-12, atol=1e-12)
    if order < 2:
        return
    # second order through the cube: Hessian-vector products against differences of gradients
    h = _cube(f)
    hws = [RNG.standard_normal(y.shape) for y in ys]
    us = [RNG.standard_normal(x.shape) for x in xs]
    ts, gs = _rev(h, xs, hws, create_graph=True)
    total = None
    for g, u in zip(gs, us):
        if isinstance(g, Tensor):
            term = (g * u).sum()
            total = term if total is None else total + term
    for t in ts:
        t.grad = None
    if total is None:
        return
    total.backward()
    _, gp = _rev(h, [x + EPS * u for x, u in zip(xs, us)], hws)
    _, gm = _rev(h, [x - EPS * u for x, u in zip(xs, us)], hws)
    for t, a, b in zip(ts, gp, gm):
        hv = np.zeros(t.shape) if t.grad is None else _np(t.grad)
        assert_allclose(hv, (_np(a) - _np(b)) / (2 * EPS), rtol=1e-5, atol=1e-6)


# id, function of (module, *inputs) written once for NumPy and chainrule.numpy, input shapes
CASES = [
    ("reshape", lambda m, a: m.reshape(a, (3, -1)), [(2, 3)]),
    ("reshape-size0", lambda m, a: m.reshape(a, (3, 0)), [(0, 3)]),
    ("reshape-up", lambda m, a: m.reshape(a, (1, 2, 3)), [(6,)]),
    ("reshape-0d", lambda m, a: m.reshape(a, ()), [(1, 1)]),
    ("reshape-F", lambda m, a: m.reshape(a, (3, 2), order="F"), [(2, 3)]),
    ("ravel", lambda m, a: m.ravel(a), [(2, 3, 1)]),
    ("transpose", lambda m, a: m.transpose(a), [(2, 3, 4)]),
    ("transpose-axes", lambda m, a: m.transpose(a, (1, 0, 2)), [(2, 3, 4)]),
    ("transpose-neg", lambda m, a: m.transpose(a, (-1, 0, 1)), [(2, 3, 4)]),
    ("transpose-1d", lambda m, a: m.transpose(a), [(3,)]),
    ("swapaxes", lambda m, a: m.swapaxes(a, 0, -1), [(2, 3, 4)]),
    ("moveaxis", lambda m, a: m.moveaxis(a, 0, -1), [(2, 3, 4)]),
    ("moveaxis-many", lambda m, a: m.moveaxis(a, [0, 1], [-1, -3]), [(2, 3, 4)]),
    ("expand_dims", lambda m, a: m.expand_dims(a, 0), [(2, 3)]),
    ("expand_dims-neg", lambda m, a: m.expand_dims(a, -1), [(2, 3)]),
    ("expand_dims-tuple", lambda m, a: m.expand_dims(a, (0, 3)), [(2, 3)]),
    ("squeeze", lambda m, a: m.squeeze(a), [(2, 1, 3, 1)]),
    ("squeeze-axis", lambda m, a: m.squeeze(a, axis=-1), [(2, 1, 3, 1)]),
    ("squeeze-0d", lambda m, a: m.squeeze(a), [(1,)]),
    ("broadcast_to", lambda m, a: m.broadcast_to(a, (2, 3, 4)), [(3, 1)]),
    ("broadcast_to-0d", lambda m, a: m.broadcast_to(a, (2,)), [()]),
    ("broadcast_to-size0", lambda m, a: m.broadcast_to(a, (0, 2)), [(1, 2)]),
    ("broadcast_arrays", lambda m, a, b: m.broadcast_arrays(a, b), [(3, 1), (1, 4)]),
    ("atleast_1d", lambda m, a: m.atleast_1d(a), [()]),
    ("atleast_1d-many", lambda m, a, b: m.atleast_1d(a, b), [(), (2, 3)]),
    ("atleast_2d-0d", lambda m, a: m.atleast_2d(a), [()]),
    ("atleast_2d-1d", lambda m, a: m.atleast_2d(a), [(3,)]),
    ("atleast_2d-3d", lambda m, a: m.atleast_2d(a), [(1, 2, 3)]),
    ("atleast_3d-0d", lambda m, a: m.atleast_3d(a), [()]),
    ("atleast_3d-1d", lambda m, a: m.atleast_3d(a), [(3,)]),
    ("atleast_3d-2d", lambda m, a: m.atleast_3d(a), [(2, 3)]),
    ("atleast_3d-3d", lambda m, a: m.atleast_3d(a), [(2, 3, 1)]),
    ("concatenate", lambda m, a, b: m.concatenate([a, b]), [(2, 3), (4, 3)]),
    ("concatenate-neg", lambda m, a, b: m.concatenate([a, b], axis=-1), [(2, 3), (2, 1)]),
    ("concatenate-none", lambda m, a, b: m.concatenate([a, b], axis=None), [(2, 3), (4,)]),
    ("concatenate-size0", lambda m, a, b: m.concatenate((a, b)), [(0, 3), (2, 3)]),
    ("concatenate-three", lambda m, a, b, c: m.concatenate([a, b, c], axis=1),
     [(2, 1, 2), (2, 3, 2), (2, 2, 2)]),
    ("concatenate-const",
     lambda m, a: m.concatenate([a, np.ones((1, 3), a.dtype), a], axis=0), [(2, 3)]),
    ("stack", lambda m, a, b: m.stack([a, b]), [(2, 3), (2, 3)]),
    ("stack-neg", lambda m, a, b: m.stack([a, b], axis=-1), [(2, 3), (2, 3)]),
    ("stack-mid", lambda m, a, b, c: m.stack([a, b, c], axis=1), [(2,), (2,), (2,)]),
    ("hstack-1d", lambda m, a, b: m.hstack([a, b]), [(2,), (3,)]),
    ("hstack-2d", lambda m, a, b: m.hstack([a, b]), [(2, 3), (2, 1)]),
    ("vstack-1d", lambda m, a, b: m.vstack([a, b]), [(3,), (3,)]),
    ("vstack-2d", lambda m, a, b: m.vstack((a, b)), [(2, 3), (1, 3)]),
    ("dstack", lambda m, a, b: m.dstack([a, b]), [(2, 3), (2, 3)]),
    ("column_stack", lambda m, a, b: m.column_stack([a, b]), [(3,), (3, 2)]),
    ("split", lambda m, a: m.split(a, 3), [(6, 2)]),
    ("split-indices", lambda m, a: m.split(a, [1, 4]), [(6, 2)]),
    ("array_split", lambda m, a: m.array_split(a, 3), [(7,)]),
    ("array_split-neg", lambda m, a: m.array_split(a, [2, 2, 9], axis=-1), [(3, 5)]),
    ("hsplit", lambda m, a: m.hsplit(a, 2), [(3, 4)]),
    ("vsplit", lambda m, a: m.vsplit(a, [1]), [(3, 4)]),
    ("flip", lambda m, a: m.flip(a), [(2, 3, 4)]),
    ("flip-0", lambda m, a: m.flip(a, 0), [(3, 4)]),
    ("flip-neg", lambda m, a: m.flip(a, (-1, -2)), [(2, 3, 4)]),
    ("flip-0d", lambda m, a: m.flip(a), [()]),
    ("fliplr", lambda m, a: m.fliplr(a), [(3, 4)]),
    ("flipud", lambda m, a: m.flipud(a), [(3, 4)]),
    ("roll", lambda m, a: m.roll(a, 2), [(5,)]),
    ("roll-axes", lambda m, a: m.roll(a, (1, -2), axis=(0, 1)), [(3, 4)]),
    ("roll-flat", lambda m, a: m.roll(a, 5), [(2, 3)]),
    ("roll-same-axis", lambda m, a: m.roll(a, (1, 2), axis=(-1, -1)), [(2, 4)]),
    ("roll-size0", lambda m, a: m.roll(a, 1, axis=0), [(0, 3)]),
    ("tile", lambda m, a: m.tile(a, 2), [(3,)]),
    ("tile-promote", lambda m, a: m.tile(a, (2, 1, 2)), [(2, 3)]),
    ("tile-0d", lambda m, a: m.tile(a, (3,)), [()]),
    ("tile-short-reps", lambda m, a: m.tile(a, 2), [(2, 1)]),
    ("tile-zero", lambda m, a: m.tile(a, (1, 0)), [(2, 3)]),
    ("repeat", lambda m, a: m.repeat(a, 2), [(2, 3)]),
    ("repeat-counts", lambda m, a: m.repeat(a, [1, 0, 2], axis=0), [(3, 2)]),
    ("repeat-neg-axis", lambda m, a: m.repeat(a, 3, axis=-1), [(2, 2)]),
    ("repeat-size0", lambda m, a: m.repeat(a, 2, axis=0), [(0, 3)]),
    ("pad", lambda m, a: m.pad(a, ((1, 2), (0, 1)), constant_values=3.0), [(2, 3)]),
    ("pad-int", lambda m, a: m.pad(a, 2), [(3,)]),
    ("pad-values", lambda m, a: m.pad(a, 1, constant_values=((1.0, 2.0), (3.0, 4.0))), [(2, 2)]),
    ("pad-edge", lambda m, a: m.pad(a, ((2, 3), (1, 0)), mode="edge"), [(2, 3)]),
    ("pad-reflect", lambda m, a: m.pad(a, ((2, 3), (1, 0)), mode="reflect"), [(3, 3)]),
    ("pad-symmetric", lambda m, a: m.pad(a, ((2, 3), (1, 0)), mode="symmetric"), [(2, 3)]),
    ("pad-wrap", lambda m, a: m.pad(a, ((2, 3), (1, 0)), mode="wrap"), [(2, 3)]),
    ("diag-1d", lambda m, a: m.diag(a), [(3,)]),
    ("diag-1d-k", lambda m, a: m.diag(a, 1), [(3,)]),
    ("diag-1d-negk", lambda m, a: m.diag(a, -2), [(3,)]),
    ("diag-2d", lambda m, a: m.diag(a, 1), [(3, 4)]),
    ("diag-2d-negk", lambda m, a: m.diag(a, -1), [(3, 4)]),
    ("diag-2d-empty", lambda m, a: m.diag(a, 5), [(3, 4)]),
    ("diagonal", lambda m, a: m.diagonal(a), [(3, 4)]),
    ("diagonal-neg-offset", lambda m, a: m.diagonal(a, -2), [(4, 3)]),
    ("diagonal-3d", lambda m, a: m.diagonal(a, 1, 0, 2), [(3, 2, 4)]),
    ("diagonal-3d-swapped", lambda m, a: m.diagonal(a, 1, 2, 0), [(3, 2, 4)]),
    ("diagonal-neg-axes", lambda m, a: m.diagonal(a, -1, -1, -2), [(2, 3, 4)]),
    ("trace", lambda m, a: m.trace(a), [(3, 4)]),
    ("trace-3d", lambda m, a: m.trace(a, 1, 1, 2), [(2, 3, 4)]),
    ("triu", lambda m, a: m.triu(a), [(4, 5)]),
    ("triu-k", lambda m, a: m.triu(a, 1), [(2, 3, 3)]),
    ("triu-1d", lambda m, a: m.triu(a, -1), [(4,)]),
    ("tril", lambda m, a: m.tril(a), [(4, 5)]),
    ("tril-negk", lambda m, a: m.tril(a, -1), [(2, 4, 3)]),
    ("sort", lambda m, a: m.sort(a), [(5,)]),
    ("sort-axis0", lambda m, a: m.sort(a, axis=0), [(3, 4)]),
    ("sort-none", lambda m, a: m.sort(a, axis=None), [(3, 4)]),
    ("sort-3d", lambda m, a: m.sort(a, axis=1), [(2, 3, 4)]),
]


def _inputs(shapes, dtype=np.float64):
    return [RNG.standard_normal(s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("name, f, shapes", CASES, ids=[c[0] for c in CASES])
def test_values_match_numpy(name, f, shapes):
    xs = _inputs(shapes)
    want = [np.asarray(y) for y in _outs(f(np, *xs))]
    got_plain = _outs(f(cnp, *xs))
    got_tensor = _outs(f(cnp, *[cr.tensor(x, requires_grad=True) for x in xs]))
    assert len(got_plain) == len(got_tensor) == len(want)
    for w, p, t in zip(want, got_plain, got_tensor):
        assert not isinstance(p, Tensor)
        assert_array_equal(_np(p), w)
        assert t.shape == w.shape
        assert_array_equal(_np(t), w)


@pytest.mark.parametrize("name, f, shapes", CASES, ids=[c[0] for c in CASES])
def test_float32_kept(name, f, shapes):
    xs = _inputs(shapes, np.float32)
    ts = [cr.tensor(x, requires_grad=True) for x in xs]
    ys = _outs(f(cnp, *ts))
    for y in ys:
        assert y.dtype == np.float32
    total = ys[0].sum()
    for y in ys[1:]:
        total = total + y.sum()
    total.backward()
    for t in ts:
        if t.grad is not None:
            assert t.grad.dtype == np.float32


@pytest.mark.parametrize("name, f, shapes", CASES, ids=[c[0] for c in CASES])
def test_derivatives(name, f, shapes):
    check_derivatives(f, _inputs(shapes))


def test_sort_gradient_follows_permutation():
    a = np.array([[3.0, -1.0, 2.0], [0.5, 4.0, -2.0]])
    x = cr.tensor(a, requires_grad=True)
    w = np.array([[1.0, 10.0, 100.0], [1.0, 10.0, 100.0]])
    (cnp.sort(x) * w).sum().backward()
    assert_array_equal(x.grad, [[100.0, 1.0, 10.0], [10.0, 100.0, 1.0]])


def test_sort_cube_second_order_closed_form():
    a = RNG.standard_normal(6)
    x = cr.tensor(a, requires_grad=True)
    (cnp.sort(x) ** 3).sum().backward(create_graph=True)
    g = x.grad
    assert_allclose(_np(g), 3 * a ** 2)
    x.grad = None
    g.sum().backward()
    assert_allclose(x.grad, 6 * a)


def test_repeat_and_tile_gradients_sum_copies():
    x = cr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    (cnp.repeat(x, [2, 0, 3]) * np.arange(5.0)).sum().backward()
    assert_array_equal(x.grad, [0 + 1, 0, 2 + 3 + 4])
    x.grad = None
    cnp.tile(x, (2, 2)).sum().backward()
    assert_array_equal(x.grad, [4.0, 4.0, 4.0])


def test_pad_reflect_gradient_accumulates():
    x = cr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = cnp.pad(x, 2, mode="reflect")  # [3 2 1 2 3 2 1]
    assert_array_equal(_np(y), [3, 2, 1, 2, 3, 2, 1])
    y.sum().backward()
    assert_array_equal(x.grad, [2.0, 3.0, 2.0])


def test_diag_embeds_and_extracts():
    v = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    m = cnp.diag(v, -1)
    assert_array_equal(_np(m), np.diag([1.0, 2.0], -1))
    (m * np.arange(9.0).reshape(3, 3)).sum().backward()
    assert_array_equal(v.grad, [3.0, 7.0])


def test_concatenate_mixed_dtypes_and_constants():
    a = cr.tensor(np.ones(2, np.float32), requires_grad=True)
    y = cnp.concatenate([a, np.zeros(3, np.float32)])
    assert y.dtype == np.float32 and y.shape == (5,)
    (y * np.arange(5.0, dtype=np.float32)).sum().backward()
    assert_array_equal(a.grad, [0.0, 1.0])


def test_concatenate_forward_with_one_constant_input():
    a = RNG.standard_normal((2, 3))
    v = RNG.standard_normal((4, 2, 3))
    with level_scope(forward=True) as L:
        y = cnp.concatenate([Tensor(a, L, None, False, v), np.ones((1, 3))], axis=0)
        t = _np(y._tangent)
    assert t.shape == (4, 3, 3)
    assert_array_equal(t[:, :2], v)
    assert_array_equal(t[:, 2:], 0.0)


def test_tensor_methods():
    a = RNG.standard_normal((2, 3))
    x = cr.tensor(a, requires_grad=True)
    assert_array_equal(_np(x.reshape(3, 2)), a.reshape(3, 2))
    assert_array_equal(_np(x.reshape((6,))), a.reshape(6))
    assert_array_equal(_np(x.T), a.T)
    assert_array_equal(_np(x.transpose(1, 0)), a.T)
    assert_array_equal(_np(x.flatten()), a.ravel())
    assert_array_equal(_np(x.ravel()), a.ravel())
    assert_array_equal(_np(x[None].squeeze()), a)
    assert_array_equal(_np(x.expand_dims(0)), a[None])
    assert_array_equal(_np(x.swapaxes(0, 1)), a.T)
    assert_array_equal(_np(x.sort()), np.sort(a))
    assert_array_equal(_np(x.diagonal()), a.diagonal())
    assert_allclose(_np(x.trace()), a.trace())
    assert_array_equal(_np(x.repeat(2)), a.repeat(2))
    assert_array_equal(_np(x.flip()), np.flip(a))


@pytest.mark.parametrize("call, exc, text", [
    (lambda x: cnp.reshape(x, (4, -1)), ValueError, "cannot reshape array of size 6"),
    (lambda x: cnp.reshape(x, (-1, -1)), ValueError, "one unknown dimension"),
    (lambda x: cnp.concatenate([x, x.T]), ValueError, "must match exactly"),
    (lambda x: cnp.concatenate([x, x[0]]), ValueError, "same number of dimensions"),
    (lambda x: cnp.concatenate([x[0, 0], x[0, 0]]), ValueError, "zero-dimensional"),
    (lambda x: cnp.concatenate([]), ValueError, "at least one array"),
    (lambda x: cnp.stack([x, x.T]), ValueError, "same shape"),
    (lambda x: cnp.squeeze(x, 0), ValueError, "size not equal to one"),
    (lambda x: cnp.broadcast_to(x, (3, 3)), ValueError, "cannot broadcast"),
    (lambda x: cnp.transpose(x, (0, 0)), ValueError, "permutation"),
    (lambda x: cnp.transpose(x, (0, 2)), ValueError, "out of bounds"),
    (lambda x: cnp.split(x, 4, axis=1), ValueError, "equal division"),
    (lambda x: cnp.diagonal(x, 0, 1, -1), ValueError, "cannot be the same"),
    (lambda x: cnp.diagonal(x[0]), ValueError, "at least 2"),
    (lambda x: cnp.diag(x[None]), ValueError, "1-d or 2-d"),
    (lambda x: cnp.pad(x, -1), ValueError, "negative"),
    (lambda x: cnp.pad(x, 1, mode="median"), NotImplementedError, "median"),
    (lambda x: cnp.moveaxis(x, [0, 1], [0]), ValueError, "same number"),
    (lambda x: cnp.expand_dims(x, 3), ValueError, "out of bounds"),
    (lambda x: cnp.flip(x, 2), ValueError, "out of bounds"),
    (lambda x: cnp.repeat(x, [1, 2], axis=1), ValueError, "do not match"),
    (lambda x: cnp.tile(x, -1), ValueError, "negative"),
])
def test_errors(call, exc, text):
    x = cr.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(exc, match=text):
        call(x)


def test_check_grads_table():
    a = RNG.standard_normal((3, 4))
    for f in [lambda t: cnp.transpose(t) ** 2,
              lambda t: cnp.concatenate([t, t ** 2], axis=-1) ** 2,
              lambda t: cnp.pad(t, ((1, 0), (2, 1)), mode="reflect") ** 2,
              lambda t: cnp.diagonal(t, 1) ** 3,
              lambda t: cnp.sort(t, axis=0) ** 3,
              lambda t: cnp.roll(t, (1, 2), (0, 1)) ** 2]:
        cr.check_grads(f, (a,), order=2)


# --- the array API backend (array-api-strict) -------------------------------------------------

xps = pytest.importorskip("array_api_strict")

STRICT_CASES = [c for c in CASES if c[0] in {
    "reshape", "transpose-axes", "moveaxis-many", "squeeze", "expand_dims-tuple", "broadcast_to",
    "concatenate-neg", "stack-neg", "split-indices", "flip-neg", "roll-axes", "tile-promote",
    "repeat", "pad", "pad-values", "diag-1d-negk", "diag-2d", "diagonal-3d-swapped",
    "trace-3d", "triu-k", "tril-negk", "sort-3d", "atleast_3d-1d", "hstack-2d",
}]


@pytest.mark.parametrize("name, f, shapes", STRICT_CASES, ids=[c[0] for c in STRICT_CASES])
def test_strict_values_and_gradients(name, f, shapes):
    xs = _inputs(shapes)
    want = [np.asarray(y) for y in _outs(f(np, *xs))]
    got = _outs(f(cnp, *[xps.asarray(x) for x in xs]))
    for w, g in zip(want, got):
        assert "array_api_strict" in type(g).__module__
        assert_allclose(_np(g), w, rtol=1e-12)
    ws = [RNG.standard_normal(w.shape) for w in want]
    ts = [cr.tensor(xps.asarray(x), requires_grad=True) for x in xs]
    ys = _outs(f(cnp, *ts))
    total = (ys[0] * xps.asarray(ws[0])).sum()
    for y, w in zip(ys[1:], ws[1:]):
        total = total + (y * xps.asarray(w)).sum()
    total.backward()
    _, ref = _rev(f, xs, ws)
    for t, r in zip(ts, ref):
        assert "array_api_strict" in type(t.grad).__module__
        assert_allclose(_np(t.grad), _np(r), rtol=1e-12, atol=1e-12)
