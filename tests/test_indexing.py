"""Indexing (getitem, take, take_along_axis): values against NumPy, gradients against
closed forms (np.add.at scatters) and central differences, batched cotangents and tangents,
second order, float32, errors, and the array-API (array-api-strict) backend."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core.backward import backward_pass
from chainrule.core.trace import level_scope
from chainrule.tensor import Tensor

RNG = np.random.default_rng(1234)
X_SHAPE = (4, 5, 3)


def _np(y):
    y = y.data if isinstance(y, Tensor) else y
    if not isinstance(y, (np.ndarray, np.generic, float, int)):
        return np.from_dlpack(y)  # array-api-strict
    return np.asarray(y)


def _source_ids(shape, key):
    """For every element of x[key], the flat index of the element of x it comes from."""
    return np.arange(int(np.prod(shape))).reshape(shape)[key]


def _scatter(shape, key, w):
    """The closed-form gradient of sum(w * x[key]): w added back where it came from."""
    ids = _source_ids(shape, key)
    return np.bincount(ids.ravel(), weights=np.broadcast_to(w, ids.shape).ravel(),
                       minlength=int(np.prod(shape))).reshape(shape)


def _forward(f, x, v):
    """(value, tangent) of f at x along v, with a hand-made forward box."""
    with level_scope(forward=True) as L:
        y = f(Tensor(x, L, None, False, v))
        assert y._tangent is not None
        return _np(y), _np(y._tangent)


def _batched_vjp(f, x, G):
    t = cr.tensor(x, requires_grad=True)
    y = f(t)
    leaves, _ = backward_pass([(y, G)], y._level)
    return _np(leaves[id(t)][1])


KEYS = [
    1,
    -1,
    (1, 2),
    (1, -2, 0),
    slice(1, 3),
    slice(None, None, -1),
    slice(3, 0, -2),
    (slice(None), slice(None, None, 2)),
    (slice(None), slice(4, None, -3), slice(None, 1)),
    (Ellipsis, None),
    (None, Ellipsis, 1),
    (Ellipsis, 0),
    (1, Ellipsis, None),
    (slice(1, 3), None, slice(None), None),
    [0, 0, 2],
    np.array([[0, 1], [3, 3]]),
    ([0, 2], [1, 1]),
    ([0, 2, 0], [1, 1, 1], [2, 2, 2]),
    (slice(1, 3), [0, 0, 4]),
    (Ellipsis, [2, 0, 2]),
    ([0, 1], slice(None), [1, 2]),          # separated: result axes move to the front
    (0, slice(None), [1, 2]),               # an int and an array, separated
    ([1, 1], 2),                            # adjacent int and array
    (slice(None), [0, 3], [2, 2]),
    (None, [0, 0], slice(None), [1, 2]),    # separated, with a new axis
    ([0, 0], None, [1, 2]),                 # a None separates advanced indices too
    ([[0], [1]], [[1, 2, 2]]),              # broadcast index arrays
    (slice(None), np.array([True, False, True, True, False])),
    np.array([True, False, False, True]),
    (1, np.array([[True, False, True]] * 5)),
    (np.array([[True, False, True, False, True]] * 4), 1),
    ([], Ellipsis),
    (Ellipsis, []),
    (slice(None, None, -1), [0, 4], slice(None, None, -2)),
    (slice(1, 1),),
    (),
]


def _key_id(k):
    return repr(k).replace(" ", "").replace("\n", "")[:60]


@pytest.mark.parametrize("key", KEYS, ids=_key_id)
def test_getitem_values_and_gradient(key):
    x = RNG.standard_normal(X_SHAPE)
    want = x[key]
    t = cr.tensor(x, requires_grad=True)
    y = t[key]
    assert y.shape == want.shape
    assert_array_equal(_np(y), want)
    w = RNG.standard_normal(want.shape)
    (y * w).sum().backward()
    assert_allclose(t.grad, _scatter(x.shape, key, w), rtol=1e-12, atol=1e-12)
    # plain arrays stay plain and equal to NumPy
    assert_array_equal(cnp.getitem(x, key), want)


@pytest.mark.parametrize("key", KEYS, ids=_key_id)
def test_getitem_batched_cotangent_and_tangent(key):
    x = RNG.standard_normal(X_SHAPE)
    out_shape = x[key].shape
    k = 3
    G = RNG.standard_normal((k,) + out_shape)
    got = _batched_vjp(lambda a: a[key], x, G)
    assert got.shape == (k,) + x.shape
    for i in range(k):
        assert_allclose(got[i], _scatter(x.shape, key, G[i]), rtol=1e-12, atol=1e-12)
    V = RNG.standard_normal((k,) + x.shape)
    val, tan = _forward(lambda a: a[key], x, V)
    assert_array_equal(val, x[key])
    assert tan.shape == (k,) + out_shape
    for i in range(k):
        assert_allclose(tan[i], V[i][key])


@pytest.mark.parametrize("key", KEYS, ids=_key_id)
def test_getitem_second_order(key):
    # f = sum(w * x[key]**3): grad = scatter(3 x[key]^2 w),
    # Hessian-vector = scatter(6 x[key] u[key] w)
    x = RNG.standard_normal(X_SHAPE)
    w = RNG.standard_normal(x[key].shape)
    u = RNG.standard_normal(x.shape)
    t = cr.tensor(x, requires_grad=True)
    (t[key] ** 3 * w).sum().backward(create_graph=True)
    g = t.grad
    assert_allclose(_np(g), _scatter(x.shape, key, 3 * x[key] ** 2 * w), rtol=1e-10, atol=1e-12)
    t.grad = None
    (g * u).sum().backward()
    assert_allclose(t.grad, _scatter(x.shape, key, 6 * x[key] * u[key] * w), rtol=1e-10,
                    atol=1e-12)


def test_repeated_indices_accumulate():
    x = cr.tensor(np.arange(5.0), requires_grad=True)
    x[[0, 0, 1]].sum().backward()
    assert_array_equal(x.grad, [2.0, 1.0, 0.0, 0.0, 0.0])
    m = cr.tensor(np.ones((3, 2)), requires_grad=True)
    m[[2, 2, 2], [1, 1, 0]].sum().backward()
    assert_array_equal(m.grad, [[0, 0], [0, 0], [1, 2]])


def test_boolean_mask_from_comparison():
    a = RNG.standard_normal((4, 6))
    x = cr.tensor(a, requires_grad=True)
    y = x[x > 0]
    assert_array_equal(_np(y), a[a > 0])
    (y ** 2).sum().backward()
    assert_allclose(x.grad, np.where(a > 0, 2 * a, 0.0))


def test_newaxis_and_strided_slices():
    a = RNG.standard_normal((6, 4))
    x = cr.tensor(a, requires_grad=True)
    y = x[..., None]
    assert y.shape == (6, 4, 1)
    z = x[1:6:2]
    assert_array_equal(_np(z), a[1:6:2])
    (y.sum() + (z * 3).sum()).backward()
    expect = np.ones_like(a)
    expect[1:6:2] += 3
    assert_array_equal(x.grad, expect)
    x.grad = None
    x[::-2, ::3].sum().backward()
    expect = np.zeros_like(a)
    expect[::-2, ::3] = 1
    assert_array_equal(x.grad, expect)


def test_separated_advanced_batched_matches_loop():
    # x[i, :, j] puts the index axes first; a batch axis in front must stay in front.
    x = RNG.standard_normal((3, 4, 5))
    key = ([0, 2, 2], slice(1, 4), [4, 0, 0])
    G = RNG.standard_normal((2,) + x[key].shape)
    got = _batched_vjp(lambda a: a[key], x, G)
    for i in range(2):
        ref = np.zeros_like(x)
        np.add.at(ref, key, G[i])
        assert_allclose(got[i], ref)


def test_float32_kept():
    a = RNG.standard_normal((4, 3)).astype(np.float32)
    x = cr.tensor(a, requires_grad=True)
    y = x[[0, 0, 3], 1:]
    assert y.dtype == np.float32
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    assert_allclose(x.grad, _scatter(a.shape, ([0, 0, 3], slice(1, None)), 2 * a[[0, 0, 3], 1:]),
                    rtol=1e-6)
    assert cnp.take(x, [1, 2], axis=1).dtype == np.float32
    assert cnp.take_along_axis(x, np.argsort(a, axis=0), axis=0).dtype == np.float32


def test_tensor_index_arrays_and_keys():
    a = RNG.standard_normal((5, 3))
    x = cr.tensor(a, requires_grad=True)
    idx = cr.tensor(np.array([4, 0, 4]))
    y = x[idx, cr.tensor(np.array(1))]
    assert_array_equal(_np(y), a[[4, 0, 4], 1])
    y.sum().backward()
    expect = np.zeros_like(a)
    expect[4, 1] = 2
    expect[0, 1] = 1
    assert_array_equal(x.grad, expect)
    assert_array_equal(_np(x[np.int64(2)]), a[2])
    assert_array_equal(_np(x[np.array(-1)]), a[-1])


def test_iteration_and_len():
    a = RNG.standard_normal((3, 2))
    x = cr.tensor(a, requires_grad=True)
    rows = list(x)
    assert len(rows) == 3
    sum(r.sum() * (i + 1) for i, r in enumerate(rows)).backward()
    assert_array_equal(x.grad, [[1, 1], [2, 2], [3, 3]])


@pytest.mark.parametrize("key, exc, text", [
    (5, IndexError, "out of bounds"),
    ((0, 0, 0, 0), IndexError, "too many indices"),
    ((Ellipsis, Ellipsis), IndexError, "single ellipsis"),
    ([0.5], IndexError, "integer"),
    (np.array([True, False]), IndexError, "boolean index did not match"),
    (([0, 1], [0, 1, 2]), IndexError, "could not be broadcast"),
    (slice(None, None, 0), ValueError, "step"),
])
def test_getitem_errors(key, exc, text):
    x = cr.tensor(np.zeros((4, 5, 3)), requires_grad=True)
    with pytest.raises(exc, match=text):
        x[key]


def test_out_of_bounds_array_index_raises():
    x = cr.tensor(np.zeros((4, 3)), requires_grad=True)
    with pytest.raises(IndexError):
        x[[0, 4]]


# --- take and take_along_axis ---------------------------------------------------------------


@pytest.mark.parametrize("shape, indices, axis", [
    ((5,), [0, 4, 4, -1], None),
    ((3, 4), [[0, 1], [11, 11]], None),
    ((3, 4), [2, 2, 0], 1),
    ((3, 4), [2, 2, 0], -1),
    ((3, 4, 2), np.array([[1, 1], [0, 2]]), 0),
    ((3, 4), 1, 1),
    ((3, 4), [], 0),
    ((3, 1), [0, 0, 0], 1),
    ((0, 4), [1, 3], 1),
])
def test_take(shape, indices, axis):
    a = RNG.standard_normal(shape)
    want = np.take(a, indices, axis=axis)
    x = cr.tensor(a, requires_grad=True)
    y = cnp.take(x, indices, axis=axis)
    assert_array_equal(_np(y), want)
    assert_array_equal(cnp.take(a, indices, axis=axis), want)
    w = RNG.standard_normal(want.shape)
    (y * w).sum().backward()
    ref = np.zeros(a.size if axis is None else a.shape)
    if axis is None:
        np.add.at(ref, np.asarray(indices, dtype=np.intp), w)
    else:
        ax = axis % a.ndim
        np.add.at(ref, (slice(None),) * ax + (np.asarray(indices, dtype=np.intp),), w)
    assert_allclose(x.grad, ref.reshape(shape))


def test_take_modes():
    a = np.arange(4.0)
    x = cr.tensor(a, requires_grad=True)
    assert_array_equal(_np(cnp.take(x, [5, -6], mode="wrap")), np.take(a, [5, -6], mode="wrap"))
    y = cnp.take(x, [5, -6, 1], mode="clip")
    assert_array_equal(_np(y), np.take(a, [5, -6, 1], mode="clip"))
    y.sum().backward()
    assert_array_equal(x.grad, [1, 1, 0, 1])


@pytest.mark.parametrize("shape, axis", [((5,), 0), ((4, 3), 0), ((4, 3), -1), ((2, 3, 4), 1),
                                         ((3, 1, 2), 2), ((4, 3), None)])
def test_take_along_axis(shape, axis):
    a = RNG.standard_normal(shape)
    if axis is None:
        idx = RNG.integers(0, a.size, 7)
    else:
        ishape = list(shape)
        ishape[axis] = 6
        idx = RNG.integers(0, shape[axis], ishape)
    want = np.take_along_axis(a, idx, axis=axis)
    x = cr.tensor(a, requires_grad=True)
    y = cnp.take_along_axis(x, idx, axis=axis)
    assert_array_equal(_np(y), want)
    assert_array_equal(cnp.take_along_axis(a, idx, axis=axis), want)
    w = RNG.standard_normal(want.shape)
    (y * w).sum().backward()
    # closed form: d/dx sum(w * take_along_axis(x)) scatters w along the indices
    ids = np.take_along_axis(np.arange(a.size).reshape(shape), idx, axis=axis)
    ref = np.bincount(ids.ravel(), weights=w.ravel(), minlength=a.size).reshape(shape)
    assert_allclose(x.grad, ref)
    # second order through the cube
    x.grad = None
    (cnp.take_along_axis(x, idx, axis=axis) ** 3 * w).sum().backward(create_graph=True)
    g = x.grad
    x.grad = None
    u = RNG.standard_normal(shape)
    (g * u).sum().backward()
    hu = 6 * want * np.take_along_axis(u, idx, axis=axis) * w
    ref = np.bincount(ids.ravel(), weights=hu.ravel(), minlength=a.size).reshape(shape)
    assert_allclose(x.grad, ref, atol=1e-12)


def test_take_along_axis_broadcasts_and_checks_rank():
    a = RNG.standard_normal((3, 4))
    idx = np.array([[0, 3]])
    want = np.take_along_axis(a, idx, axis=1)
    x = cr.tensor(a, requires_grad=True)
    y = cnp.take_along_axis(x, idx, axis=1)
    assert_array_equal(_np(y), want)
    with pytest.raises(ValueError, match="same number of dimensions"):
        cnp.take_along_axis(x, np.array([0, 1]), axis=1)


def test_take_batched():
    a = RNG.standard_normal((3, 4))
    idx = [3, 3, 0]
    G = RNG.standard_normal((2, 3, 3))
    got = _batched_vjp(lambda t: cnp.take(t, idx, axis=1), a, G)
    for i in range(2):
        ref = np.zeros_like(a)
        np.add.at(ref, (slice(None), idx), G[i])
        assert_allclose(got[i], ref)
    V = RNG.standard_normal((2, 3, 4))
    _, tan = _forward(lambda t: cnp.take_along_axis(t, np.array([[1, 0, 0, 1]] * 3), axis=0), a, V)
    for i in range(2):
        assert_allclose(tan[i], np.take_along_axis(V[i], np.array([[1, 0, 0, 1]] * 3), axis=0))


def test_check_grads_table():
    a = RNG.standard_normal((4, 5))
    for f in [lambda t: t[[0, 0, 2], 1:4] ** 2,
              lambda t: t[a > 0] ** 2,
              lambda t: t[[1, 3], None, [4, 4]] ** 3,
              lambda t: cnp.take(t, [4, 4, 1], axis=1) ** 2,
              lambda t: cnp.take_along_axis(t, np.argsort(a, axis=0), axis=0) ** 3]:
        cr.check_grads(f, (a,), order=2)


# --- the array API backend (array-api-strict) -------------------------------------------------

xps = pytest.importorskip("array_api_strict")


def _strict(a):
    return xps.asarray(a)


@pytest.mark.parametrize("key", [
    (slice(1, 3), slice(None, None, -2)),
    (Ellipsis, None),
    (0, slice(None), 1),
    (slice(None), [2, 0]),
    ([0, 2], slice(None), [1, 1]),
    ([3, 0], [4, 4]),
    (slice(None), np.array([True, False, True, False, True])),
])
def test_strict_forward_values(key):
    a = RNG.standard_normal(X_SHAPE)
    got = cnp.getitem(_strict(a), key)
    assert "array_api_strict" in type(got).__module__
    assert_array_equal(_np(got), a[key])


def test_strict_gradients_unique_indices_and_masks():
    a = RNG.standard_normal((4, 5))
    x = cr.tensor(_strict(a), requires_grad=True)
    y = x[1:, ::2]
    (y * y).sum().backward()
    ref = np.zeros_like(a)
    ref[1:, ::2] = 2 * a[1:, ::2]
    assert_allclose(_np(x.grad), ref)
    x.grad = None
    m = x > 0.0
    (x[m] ** 2).sum().backward()
    assert_allclose(_np(x.grad), np.where(a > 0, 2 * a, 0.0))
    x.grad = None
    (x[:, [4, 0, 2]] ** 2).sum().backward()
    ref = np.zeros_like(a)
    ref[:, [4, 0, 2]] = 2 * a[:, [4, 0, 2]]
    assert_allclose(_np(x.grad), ref)
    x.grad = None
    (cnp.sort(x, axis=0) ** 3).sum().backward()
    assert_allclose(_np(x.grad), 3 * a ** 2)


def test_strict_repeated_indices_reverse_raises_forward_works():
    a = RNG.standard_normal((4, 3))
    x = cr.tensor(_strict(a), requires_grad=True)
    with pytest.raises(NotImplementedError, match=r"getitem.*array_api_strict"):
        x[[0, 0, 1]].sum().backward()
    v = RNG.standard_normal((4, 3))
    _, tan = _forward(lambda t: t[[0, 0, 1], 1:], _strict(a), _strict(v))
    assert_allclose(tan, v[[0, 0, 1], 1:])
