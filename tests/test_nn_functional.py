"""cr.nn.functional: activation values and derivatives, stability, losses, layer functions.

Values are compared with NumPy formulas (or PyTorch's published definitions),
derivatives with closed forms and with ``cr.check_grads`` (forward and reverse
mode, first and second order, central differences).  Batched cotangents and
tangents are exercised through ``jacrev`` / ``jacfwd``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.nn.functional as F

X3 = np.array([1.0, -1.2, 0.0])
RNG = np.random.default_rng(1234)


def value_and_grad(f, x):
    """f(x) and d sum(f(x)) / dx through an eager backward pass."""
    t = cr.tensor(np.array(x, dtype=float), requires_grad=True)
    y = f(t)
    y.sum().backward()
    return np.asarray(y.data), t.grad


def jvp_of(f, x, v):
    return cr.jvp(f, (x,), (v,))[1]


# --- the numbers the issue asks to be shown -------------------------------------------------

@pytest.mark.parametrize("name, fn, value, grad", [
    ("sigmoid", F.sigmoid, 1 / (1 + np.exp(-X3)), [0.19661193, 0.17789444, 0.25]),
    ("tanh", F.tanh, np.tanh(X3), [0.41997434, 0.30502, 1.0]),
    ("arctan", F.arctan, np.arctan(X3), [0.5, 0.40983607, 1.0]),
    ("softplus", F.softplus, [1.31326169, 0.26328247, 0.69314718], 1 / (1 + np.exp(-X3))),
    ("softsign", F.softsign, [0.5, -0.54545455, 0.0], [0.25, 0.20661157, 1.0]),
    ("relu", F.relu, [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]),
])
def test_activation_values_and_gradients_at_the_issue_points(name, fn, value, grad):
    y, g = value_and_grad(fn, X3)
    assert_allclose(y, value, rtol=1e-6, atol=1e-8)
    assert_allclose(g, grad, rtol=1e-5, atol=1e-8)
    # forward mode gives the same derivative (elementwise: JVP with ones = the derivative)
    assert_allclose(jvp_of(fn, X3, np.ones(3)), grad, rtol=1e-5, atol=1e-8)


def test_softmax_input_gradient_is_the_full_jvp():
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    s = F.softmax(x)
    s.backward(np.array([1.0, 0.0, 0.0]))
    assert_allclose(x.grad, [0.0819, -0.0220, -0.0599], atol=5e-5)
    sv = s.numpy()
    g = np.array([1.0, 0.0, 0.0])
    assert_allclose(x.grad, (g - np.dot(g, sv)) * sv, rtol=1e-12)


# --- activations ----------------------------------------------------------------------------

def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


ACTIVATIONS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    "elu": (lambda x: F.elu(x, 1.5), lambda x: np.where(x > 0, x, 1.5 * np.expm1(x))),
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                   * (x + 0.044715 * x ** 3)))),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (F.tanh, np.tanh),
    "softplus": (F.softplus, lambda x: np.log1p(np.exp(x))),
    "softplus_beta": (lambda x: F.softplus(x, beta=2.0), lambda x: np.log1p(np.exp(2 * x)) / 2),
    "softsign": (F.softsign, lambda x: x / (1 + np.abs(x))),
    "arctan": (F.arctan, np.arctan),
    "silu": (F.silu, lambda x: x / (1 + np.exp(-x))),
    "log_sigmoid": (F.log_sigmoid, lambda x: -np.log1p(np.exp(-x))),
    "softmax": (F.softmax, lambda x: _np_softmax(x, -1)),
    "log_softmax": (F.log_softmax, lambda x: np.log(_np_softmax(x, -1))),
    "softmax_axis0": (lambda x: F.softmax(x, axis=0), lambda x: _np_softmax(x, 0)),
    "log_softmax_dim0": (lambda x: F.log_softmax(x, dim=0), lambda x: np.log(_np_softmax(x, 0))),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_values_match_numpy(name):
    fn, ref = ACTIVATIONS[name]
    x = RNG.standard_normal((3, 4)) * 2
    assert_allclose(np.asarray(fn(x)), ref(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivatives_both_modes_second_order(name):
    fn, _ = ACTIVATIONS[name]
    x = RNG.standard_normal((3, 4)) * 2
    x = np.where(np.abs(x) < 0.1, 0.5, x)  # keep away from the kinks of relu and friends
    cr.check_grads(fn, (x,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_keep_float32(name):
    fn, ref = ACTIVATIONS[name]
    x = RNG.standard_normal((2, 5)).astype(np.float32)
    t = cr.tensor(x, requires_grad=True)
    y = fn(t)
    assert y.dtype == np.float32
    y.sum().backward()
    assert t.grad.dtype == np.float32
    assert_allclose(y.numpy(), ref(x.astype(np.float64)), rtol=1e-4, atol=1e-5)


STABLE = {
    "sigmoid": F.sigmoid, "softplus": F.softplus, "gelu": F.gelu, "elu": F.elu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "log_sigmoid": F.log_sigmoid,
    "softmax": F.softmax, "log_softmax": F.log_softmax, "silu": F.silu, "tanh": F.tanh,
    "softsign": F.softsign,
}


@pytest.mark.parametrize("name", sorted(STABLE))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stable_at_large_inputs(name, dtype):
    x = np.array([1000.0, -1000.0, 0.5], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow either
        y, g = value_and_grad(STABLE[name], x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g)), (y, g)


def test_large_input_values_are_right():
    big = np.array([1000.0, -1000.0])
    assert_allclose(value_and_grad(F.sigmoid, big), [[1.0, 0.0], [0.0, 0.0]], atol=0)
    assert_allclose(value_and_grad(F.softplus, big), [[1000.0, 0.0], [1.0, 0.0]], atol=0)
    assert_allclose(value_and_grad(F.gelu, big), [[1000.0, 0.0], [1.0, 0.0]], atol=0)
    assert_allclose(value_and_grad(F.elu, big), [[1000.0, -1.0], [1.0, 0.0]], atol=1e-300)
    assert_allclose(value_and_grad(F.log_sigmoid, big), [[0.0, -1000.0], [0.0, 1.0]], atol=0)
    assert_allclose(np.asarray(F.log_softmax(np.array([1000.0, 0.0]))), [0.0, -1000.0])
    assert_allclose(np.asarray(F.softmax(np.array([1000.0, 0.0, -1000.0]))), [1.0, 0.0, 0.0])


def test_softmax_family_jacobians_use_batched_rules():
    x = RNG.standard_normal((2, 4))
    s = _np_softmax(x, -1)
    expected = np.zeros((2, 4, 2, 4))
    for i in range(2):
        expected[i, :, i, :] = np.diag(s[i]) - np.outer(s[i], s[i])
    assert_allclose(cr.jacrev(F.softmax)(x), expected, atol=1e-12)
    assert_allclose(cr.jacfwd(F.softmax)(x), expected, atol=1e-12)
    jl = np.zeros((2, 4, 2, 4))
    for i in range(2):
        jl[i, :, i, :] = np.eye(4) - s[i][None, :]
    assert_allclose(cr.jacrev(F.log_softmax)(x), jl, atol=1e-12)
    assert_allclose(cr.jacfwd(F.log_softmax)(x), jl, atol=1e-12)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(np.ones(2), approximate="fast")


# --- losses ---------------------------------------------------------------------------------

def _ref_reduce(l, reduction):
    return {"mean": l.mean(), "sum": l.sum(), "none": l}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_and_l1_values_and_gradient_scaling(reduction):
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    assert_allclose(np.asarray(F.mse_loss(a, b, reduction)), _ref_reduce((a - b) ** 2, reduction))
    assert_allclose(np.asarray(F.l1_loss(a, b, reduction)), _ref_reduce(np.abs(a - b), reduction))
    t = cr.tensor(a, requires_grad=True)
    F.mse_loss(t, b, reduction).sum().backward()
    scale = 1 / a.size if reduction == "mean" else 1.0
    assert_allclose(t.grad, 2 * (a - b) * scale)


def _ref_ce(z, y, weight=None, ignore=-100, reduction="mean", ls=0.0):
    """PyTorch's cross-entropy, written out (class axis 1)."""
    z = np.moveaxis(z, 1, -1) if z.ndim > 1 else z[None]
    y = np.asarray(y).reshape(z.shape[:-1])
    c = z.shape[-1]
    logp = z - z.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    w = np.ones(c) if weight is None else np.asarray(weight, float)
    keep = y != ignore
    ys = np.where(keep, y, 0)
    wt = np.where(keep, w[ys], 0.0)
    nll = -np.take_along_axis(logp, ys[..., None], -1)[..., 0] * wt
    smooth = -(logp * w).sum(-1) * keep
    if reduction == "mean":
        nll_r, smooth_r = nll.sum() / wt.sum(), smooth.sum() / (wt.sum() if weight is not None
                                                                else keep.sum())
    elif reduction == "sum":
        nll_r, smooth_r = nll.sum(), smooth.sum()
    else:
        nll_r, smooth_r = nll, smooth
    return (1 - ls) * nll_r + ls / c * smooth_r


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4, 2)])
def test_cross_entropy_matches_the_definition(reduction, shape):
    z = RNG.standard_normal(shape) * 3
    y = RNG.integers(0, shape[1], (shape[0],) + shape[2:])
    got = np.asarray(F.cross_entropy(z, y, reduction=reduction))
    assert_allclose(got.reshape(np.shape(_ref_ce(z, y, reduction=reduction))),
                    _ref_ce(z, y, reduction=reduction), rtol=1e-12)
    cr.check_grads(lambda z: F.cross_entropy(z, y, reduction=reduction), (z,), order=2,
                   modes=("fwd", "rev"))


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    z = RNG.standard_normal((4, 3))
    y = np.array([0, 2, 1, 2])
    t = cr.tensor(z, requires_grad=True)
    F.cross_entropy(t, y).backward()
    assert_allclose(t.grad, (_np_softmax(z, -1) - np.eye(3)[y]) / 4, rtol=1e-12)
    t.grad = None
    F.cross_entropy(t, y, reduction="sum").backward()
    assert_allclose(t.grad, _np_softmax(z, -1) - np.eye(3)[y], rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_weights_ignore_index_and_label_smoothing(reduction):
    z = RNG.standard_normal((6, 4))
    y = np.array([0, 3, -100, 1, 2, 3])
    w = np.array([1.0, 2.0, 0.5, 3.0])
    for kwargs in ({"weight": w}, {"label_smoothing": 0.2}, {"weight": w, "label_smoothing": 0.1},
                   {}):
        got = F.cross_entropy(z, y, reduction=reduction, **kwargs)
        ref = _ref_ce(z, y, kwargs.get("weight"), reduction=reduction,
                      ls=kwargs.get("label_smoothing", 0.0))
        assert_allclose(np.asarray(got), ref, rtol=1e-12, err_msg=str(kwargs))
        cr.check_grads(lambda z, kw=kwargs: F.cross_entropy(z, y, reduction=reduction, **kw), (z,),
                       order=1, modes=("fwd", "rev"))


def test_cross_entropy_with_class_probabilities():
    z = RNG.standard_normal((3, 5))
    p = _np_softmax(RNG.standard_normal((3, 5)), -1)
    logp = np.log(_np_softmax(z, -1))
    assert_allclose(np.asarray(F.cross_entropy(z, p)), -(p * logp).sum(-1).mean())
    cr.check_grads(lambda z: F.cross_entropy(z, p), (z,), order=2)


def test_cross_entropy_is_stable_for_huge_logits():
    z = cr.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]], requires_grad=True)
    loss = F.cross_entropy(z, np.array([1, 1]))
    assert_allclose(float(loss), 1000.0)
    loss.backward()
    assert np.all(np.isfinite(z.grad))
    assert_allclose(z.grad, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-12)


def test_nll_loss_picks_log_probabilities():
    logp = np.log(_np_softmax(RNG.standard_normal((4, 3)), -1))
    y = np.array([2, 0, 1, 1])
    assert_allclose(np.asarray(F.nll_loss(logp, y)), -logp[np.arange(4), y].mean())
    assert_allclose(np.asarray(F.nll_loss(logp, y, reduction="none")), -logp[np.arange(4), y])
    w = np.array([0.2, 1.0, 3.0])
    assert_allclose(np.asarray(F.nll_loss(logp, y, weight=w)),
                    (-logp[np.arange(4), y] * w[y]).sum() / w[y].sum())


def test_loss_input_errors():
    z = np.zeros((3, 4))
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="shape"):
        F.cross_entropy(z, np.array([0, 1]))
    with pytest.raises(TypeError, match="integer"):
        F.nll_loss(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(z, z, reduction="avg")
    with pytest.raises(ValueError, match="same shape"):
        F.mse_loss(z, np.zeros(4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.binary_cross_entropy(np.array([1.5]), np.array([1.0]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_values_clamp_and_gradients(reduction):
    p = RNG.uniform(0.05, 0.95, (3, 4))
    t = RNG.uniform(0, 1, (3, 4))
    ref = -(t * np.log(p) + (1 - t) * np.log1p(-p))
    assert_allclose(np.asarray(F.binary_cross_entropy(p, t, reduction=reduction)),
                    _ref_reduce(ref, reduction), rtol=1e-12)
    cr.check_grads(lambda p, t: F.binary_cross_entropy(p, t, reduction=reduction), (p, t),
                   order=2, modes=("fwd", "rev"))
    # PyTorch clamps the logs at -100: p = 0 with target 1 costs exactly 100, finitely
    edge = F.binary_cross_entropy(np.array([0.0, 1.0]), np.array([1.0, 0.0]), reduction="none")
    assert_allclose(np.asarray(edge), [100.0, 100.0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_equals_bce_of_sigmoid_and_is_stable(reduction):
    x = RNG.standard_normal((3, 4)) * 3
    t = RNG.uniform(0, 1, (3, 4))
    s = 1 / (1 + np.exp(-x))
    ref = -(t * np.log(s) + (1 - t) * np.log1p(-s))
    assert_allclose(np.asarray(F.binary_cross_entropy_with_logits(x, t, reduction=reduction)),
                    _ref_reduce(ref, reduction), rtol=1e-10)
    cr.check_grads(lambda x: F.binary_cross_entropy_with_logits(x, t, reduction=reduction),
                   (x,), order=2, modes=("fwd", "rev"))
    big = cr.tensor([1000.0, -1000.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(big, np.array([0.0, 1.0]), reduction="sum")
    assert_allclose(float(loss), 2000.0)
    loss.backward()
    assert_allclose(big.grad, [1.0, -1.0])


def test_bce_with_logits_pos_weight_and_weight():
    x = RNG.standard_normal((2, 3))
    t = RNG.integers(0, 2, (2, 3)).astype(float)
    pw, w = np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 2.0])
    s = 1 / (1 + np.exp(-x))
    ref = -w * (pw * t * np.log(s) + (1 - t) * np.log1p(-s))
    got = F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction="none")
    assert_allclose(np.asarray(got), ref, rtol=1e-10)


def test_one_hot():
    assert_allclose(F.one_hot(np.array([0, 2]), 3), [[1, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError):
        F.one_hot(np.array([3]), 3)


# --- layer functions ------------------------------------------------------------------------

def _naive_conv(x, w, stride, padding):
    sh, sw = stride
    ph, pw = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c, H, W = xp.shape
    o, _, kh, kw = w.shape
    ho, wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = np.einsum("ncpq,ocpq->no", patch, w)
    return out


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), ((2, 1), (0, 2)), (3, 1)])
def test_conv2d_matches_a_naive_loop_and_differentiates(stride, padding):
    x = RNG.standard_normal((2, 3, 7, 6))
    w = RNG.standard_normal((4, 3, 3, 2))
    b = RNG.standard_normal(4)
    s = (stride, stride) if isinstance(stride, int) else stride
    p = (padding, padding) if isinstance(padding, int) else padding
    out = F.conv2d(x, w, b, stride=stride, padding=padding)
    assert_allclose(np.asarray(out), _naive_conv(x, w, s, p) + b[:, None, None], rtol=1e-10)
    cr.check_grads(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding), (x, w, b),
                   order=2, modes=("fwd", "rev"))


def test_conv2d_unbatched_float32_and_errors():
    x = RNG.standard_normal((3, 5, 5)).astype(np.float32)
    w = RNG.standard_normal((2, 3, 3, 3)).astype(np.float32)
    out = F.conv2d(cr.tensor(x, requires_grad=True), w, padding=1)
    assert out.shape == (2, 5, 5) and out.dtype == np.float32
    assert_allclose(out.numpy(), _naive_conv(x[None], w, (1, 1), (1, 1))[0], rtol=1e-4,
                    atol=1e-5)
    with pytest.raises(ValueError, match="does not match weight"):
        F.conv2d(np.zeros((1, 2, 5, 5)), w)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(np.zeros((1, 3, 2, 2)), w)


def test_conv2d_jacobians_with_batched_cotangents_and_tangents():
    x = RNG.standard_normal((1, 2, 4, 4))
    w = RNG.standard_normal((2, 2, 2, 2))
    jr = cr.jacrev(lambda x, w: F.conv2d(x, w, stride=2, padding=1), argnums=(0, 1))(x, w)
    jf = cr.jacfwd(lambda x, w: F.conv2d(x, w, stride=2, padding=1), argnums=(0, 1))(x, w)
    for a, b in zip(jr, jf):
        assert_allclose(a, b, atol=1e-12)
    # the Jacobian with respect to w is the im2col matrix: compare one entry by hand
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert_allclose(jr[1][0, 1, 2, 1, 1], xp[0, :, 4:6, 2:4], atol=1e-12)
    assert_allclose(jr[1][0, 1, 2, 1, 0], 0.0, atol=0)


def _naive_pool(x, k, s, p, op, fill):
    xp = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)], constant_values=fill)
    H, W = xp.shape[-2:]
    ho, wo = (H - k) // s + 1, (W - k) // s + 1
    out = np.zeros(x.shape[:-2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[..., i, j] = op(xp[..., i * s:i * s + k, j * s:j * s + k], axis=(-2, -1))
    return out


@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 0), (3, 3, 0)])
def test_pools_match_naive_loops_and_differentiate(k, s, p):
    x = RNG.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7).astype(float) / 10  # no ties
    assert_allclose(np.asarray(F.max_pool2d(x, k, s, p)),
                    _naive_pool(x, k, s, p, np.max, -np.inf))
    assert_allclose(np.asarray(F.avg_pool2d(x, k, s, p)), _naive_pool(x, k, s, p, np.mean, 0.0))
    cr.check_grads(lambda x: F.max_pool2d(x, k, s, p), (x,), order=2, modes=("fwd", "rev"))
    cr.check_grads(lambda x: F.avg_pool2d(x, k, s, p), (x,), order=2, modes=("fwd", "rev"))
    if p:
        ones = np.ones_like(x)
        counts = _naive_pool(ones, k, s, p, np.sum, 0.0)
        assert_allclose(np.asarray(F.avg_pool2d(x, k, s, p, count_include_pad=False)),
                        _naive_pool(x, k, s, p, np.sum, 0.0) / counts)
        cr.check_grads(lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=False), (x,),
                       order=1)


def test_max_pool_gradient_goes_to_the_first_maximum_like_pytorch():
    x = cr.tensor(np.array([[[[1.0, 3.0], [3.0, 2.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    assert_allclose(x.grad[0, 0], [[0.0, 1.0], [0.0, 0.0]])


def test_pool_errors():
    with pytest.raises(ValueError, match="half the kernel"):
        F.max_pool2d(np.zeros((1, 1, 4, 4)), 2, padding=2)
    with pytest.raises(ValueError, match="expected an input"):
        F.avg_pool2d(np.zeros((4, 4)), 2)


def test_dropout():
    x = np.ones((200, 50))
    assert F.dropout(x, 0.5, training=False) is x
    y = np.asarray(F.dropout(x, 0.3, training=True, rng=0))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    assert_allclose(y[kept], 1 / 0.7)
    assert_allclose(np.asarray(F.dropout(x, 0.3, rng=5)), np.asarray(F.dropout(x, 0.3, rng=5)))
    assert np.all(np.asarray(F.dropout(x, 1.0)) == 0)
    t = cr.tensor(x, requires_grad=True)
    out = F.dropout(t, 0.5, rng=1)
    out.sum().backward()
    assert_allclose(t.grad, out.numpy())  # d/dx (x * mask / (1-p)) = mask / (1-p), x = 1
    with pytest.raises(ValueError):
        F.dropout(x, 1.5)


def test_linear_function():
    x, w, b = RNG.standard_normal((5, 3)), RNG.standard_normal((4, 3)), RNG.standard_normal(4)
    assert_allclose(np.asarray(F.linear(x, w, b)), x @ w.T + b)
    assert_allclose(np.asarray(F.linear(x, w)), x @ w.T)
    cr.check_grads(F.linear, (RNG.standard_normal((2, 5, 3)), w, b), order=2)
    with pytest.raises(ValueError, match="does not match weight"):
        F.linear(x, np.zeros((4, 2)))


def test_batch_norm_function_training_and_eval():
    x = RNG.standard_normal((6, 3, 4)) * 2 + 1
    rm, rv = np.zeros(3), np.ones(3)
    w, b = RNG.standard_normal(3), RNG.standard_normal(3)
    out = np.asarray(F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5))
    mu = x.mean(axis=(0, 2))
    var = x.var(axis=(0, 2))
    ref = (x - mu[None, :, None]) / np.sqrt(var[None, :, None] + 1e-5) * w[None, :, None] \
        + b[None, :, None]
    assert_allclose(out, ref, rtol=1e-10)
    assert_allclose(rm, 0.1 * mu)
    assert_allclose(rv, 0.9 + 0.1 * x.var(axis=(0, 2), ddof=1))
    ev = np.asarray(F.batch_norm(x, rm, rv, w, b, training=False))
    assert_allclose(ev, (x - rm[:, None]) / np.sqrt(rv[:, None] + 1e-5) * w[:, None]
                    + b[:, None], rtol=1e-10)
    cr.check_grads(lambda x, w: F.batch_norm(x, None, None, w, b, training=True), (x, w),
                   order=2, modes=("fwd", "rev"))


def test_batch_norm_forward_mode_through_the_bias():
    # The bias is added to a box without a tangent; this exercises add's JVP broadcasting.
    x = RNG.standard_normal((4, 3, 2))
    b = RNG.standard_normal(3)
    cr.check_grads(lambda b: F.batch_norm(x, None, None, None, b, training=True), (b,),
                   order=1, modes=("rev",))
    cr.check_grads(lambda b: F.batch_norm(x, None, None, None, b, training=True), (b,),
                   order=1, modes=("fwd",))


def test_flatten_function():
    x = RNG.standard_normal((2, 3, 4, 5))
    assert F.flatten(x).shape == (2, 60)
    assert F.flatten(x, 0, 1).shape == (6, 4, 5)
    assert F.flatten(x, 2).shape == (2, 3, 20)
