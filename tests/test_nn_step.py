"""The eager ``cr.nn`` training step: its fast paths keep every behaviour of the slow ones."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.nn.functional as F
import chainrule.numpy as cnp
from chainrule.ops import nn as N


def _mlp(dtype=np.float64, seed=0):
    cr.nn.manual_seed(seed)
    return cr.nn.Sequential(cr.nn.Linear(3, 5, dtype=dtype), cr.nn.ReLU(),
                            cr.nn.Linear(5, 4, dtype=dtype))


def _hand_step(params, x, y, lr):
    """The same step written out in NumPy: loss and updated parameters."""
    W1, b1, W2, b2 = (np.array(p, dtype=np.float64) for p in params)
    z1 = x @ W1.T + b1
    h = np.maximum(z1, 0)
    z = h @ W2.T + b2
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e / e.sum(axis=1, keepdims=True)
    n = len(y)
    loss = np.mean(np.log(e.sum(axis=1)) + m[:, 0] - z[np.arange(n), y])
    d = s.copy()
    d[np.arange(n), y] -= 1
    d /= n
    gW2, gb2 = d.T @ h, d.sum(0)
    d1 = (d @ W2) * (z1 > 0)
    gW1, gb1 = d1.T @ x, d1.sum(0)
    new = [p - lr * g for p, g in zip((W1, b1, W2, b2), (gW1, gb1, gW2, gb2))]
    return loss, new


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_training_steps_match_the_hand_written_step(dtype):
    model = _mlp(dtype)
    opt = cr.optim.SGD(model.parameters(), lr=0.5)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3)).astype(dtype)
    y = rng.integers(0, 4, 6)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for _ in range(3):
        ref_loss, ref = _hand_step([p.data for p in model.parameters()], x, y, 0.5)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        assert_allclose(float(loss), ref_loss, rtol=rtol)
        for p, q in zip(model.parameters(), ref):
            assert p.data.dtype == dtype
            assert_allclose(p.data, q, rtol=rtol, atol=rtol)


def test_a_bad_gradient_leaves_every_parameter_unchanged():
    model = _mlp()
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(np.ones((2, 3))), np.array([0, 1])).backward()
    before = [p.data.copy() for p in model.parameters()]
    params = list(model.parameters())
    params[-1].grad = np.ones(7)  # the last one is wrong: the first ones must not move either
    with pytest.raises(ValueError, match=r"shape \(7,\).*shape \(4,\).*no parameter was changed"):
        opt.step()
    for p, b in zip(model.parameters(), before):
        assert_allclose(p.data, b)
    params[-1].grad = np.ones(4)
    opt.step()
    assert not np.allclose(params[0].data, before[0])


def test_saved_softmax_is_only_used_for_its_own_logits():
    rng = np.random.default_rng(0)
    za = cr.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    zb = cr.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    ya, yb = np.array([0, 1, 2, 0]), np.array([2, 2, 1, 0])
    la = F.cross_entropy(za, ya)
    lb = F.cross_entropy(zb, yb)  # replaces la's saved softmax
    la.backward()
    lb.backward()

    def expected(z, y):
        s = np.exp(z - z.max(1, keepdims=True))
        s /= s.sum(1, keepdims=True)
        s[np.arange(4), y] -= 1
        return s / 4

    assert_allclose(za.grad, expected(za.data, ya), rtol=1e-12)
    assert_allclose(zb.grad, expected(zb.data, yb), rtol=1e-12)


def test_retained_cross_entropy_graph_gives_the_same_gradient_twice():
    z = cr.tensor(np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]), requires_grad=True)
    loss = F.cross_entropy(z, np.array([2, 1]), reduction="sum")
    loss.backward(retain_graph=True)
    first = z.grad.copy()
    z.grad = None
    loss.backward()
    assert_allclose(z.grad, first, rtol=1e-15)


def test_cross_entropy_with_infinite_logits_matches_log_softmax():
    z = np.array([[np.inf, 0.0, 1.0], [1.0, 2.0, 3.0], [-np.inf, 0.0, 0.0]])
    y = np.array([1, 2, 1])
    for reduction in ("none", "sum"):
        fused = F.cross_entropy(cr.tensor(z), y, reduction=reduction)
        ref = -np.take_along_axis(np.asarray(N.log_softmax(z, -1)), y[:, None], 1)[:, 0]
        ref = ref if reduction == "none" else ref.sum()
        assert_allclose(np.asarray(fused.data), ref)
    big = cr.tensor(np.array([[1e308, -1e308]]), requires_grad=True)
    loss = F.cross_entropy(big, np.array([1]))
    assert float(loss) == np.inf
    loss.backward()
    assert_allclose(big.grad, [[1.0, -1.0]])


def test_cross_entropy_labels_out_of_range_take_the_checked_path():
    z = cr.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(z, np.array([0, 3]))
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(z, np.array([0, -2], dtype=np.int32))
    # ignore_index: the unfused path, the ignored sample does not count
    loss = F.cross_entropy(z, np.array([1, -100]))
    assert_allclose(float(loss), np.log(3.0))


def test_linear_of_three_inputs_keeps_nested_and_forward_levels():
    rng = np.random.default_rng(1)
    x, W, b = rng.standard_normal((2, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)

    def f(W):
        return cnp.sum(cnp.tanh(F.linear(x, W, b)) ** 2)

    cr.check_grads(f, (W,), order=2, modes=("fwd", "rev"))
    hv = cr.grad(lambda W: cnp.sum(cr.grad(f)(W) * W))(W)
    assert hv.shape == W.shape
    per_example = cr.vmap(lambda xi: F.linear(xi, W, b))(x)
    assert_allclose(per_example, x @ W.T + b)
