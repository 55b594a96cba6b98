"""W2: one training step of a small network, chainrule vs hand-written NumPy.

* MLP 64 -> 256 -> 256 -> 10 (ReLU), softmax cross-entropy, batch 128, plain
  SGD (lr 0.1), in float64 and in float32.  chainrule side: ``cr.nn``
  modules, ``F.cross_entropy``, ``loss.backward()``, ``cr.optim.SGD.step()``
  (``zero_grad`` included).  Baseline: the same step in NumPy with the
  gradients written out by hand and in-place updates.
* A small CNN on digits-sized input (batch 128 of 1x8x8): conv 3x3 (8
  channels, padding 1) -> ReLU -> 2x2 max pool -> linear 128 -> 10, same
  loss and optimiser; the baseline uses im2col (``sliding_window_view``) and
  hand-written backward passes.

Each side first takes one step from the same weights, and the losses and
updated weights must agree (1e-10 relative in float64, 1e-4 in float32), so
a fast wrong answer cannot pass.  Target (informational): ratio <= 1.05 in
float64, <= 1.10 in float32.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import chainrule as cr
import chainrule.nn.functional as F
import chainrule.numpy as cnp
import peers
from common import compare, row

NAME = "W2"
TITLE = "training step: MLP 64-256-256-10 (batch 128) and a small CNN, SGD"
BATCH = 128
LR = 0.1
SIZES = (64, 256, 256, 10)
TARGETS = {np.float64: 1.05, np.float32: 1.10}


# --- MLP ----------------------------------------------------------------------------------

def _mlp_model(dtype, seed=0):
    cr.nn.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(cr.nn.Linear(a, b, dtype=dtype))
        if i < len(SIZES) - 2:
            layers.append(cr.nn.ReLU())
    return cr.nn.Sequential(*layers)


def _data(dtype, shape, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH,) + shape).astype(dtype)
    y = rng.integers(0, 10, BATCH)
    return x, y


def _chainrule_step(model, opt, x, y):
    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _softmax_xent_grad(z, y):
    """Mean cross-entropy of logits ``z`` at labels ``y`` and its gradient."""
    n = z.shape[0]
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - z[rows, y]))
    d = e / s
    d[rows, y] -= 1
    d /= n
    return loss, d


def _numpy_mlp_step(params, x, y):
    W1, b1, W2, b2, W3, b3 = params

    def step():
        z1 = x @ W1.T + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W2.T + b2
        h2 = np.maximum(z2, 0)
        z3 = h2 @ W3.T + b3
        loss, d3 = _softmax_xent_grad(z3, y)
        gW3, gb3 = d3.T @ h2, d3.sum(axis=0)
        d2 = (d3 @ W3) * (z2 > 0)
        gW2, gb2 = d2.T @ h1, d2.sum(axis=0)
        d1 = (d2 @ W2) * (z1 > 0)
        gW1, gb1 = d1.T @ x, d1.sum(axis=0)
        for p, g in ((W1, gW1), (b1, gb1), (W2, gW2), (b2, gb2), (W3, gW3), (b3, gb3)):
            p -= LR * g
        return loss

    return step


# --- MLP loss written with chainrule.numpy, value_and_grad ------------------------------------

def _cnp_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for a, b in zip(SIZES[:-1], SIZES[1:]):
        out += [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype), np.zeros(b, dtype)]
    return out


def cnp_loss(params, x, y):
    """The MLP's mean cross-entropy as a user writes it with ``chainrule.numpy``."""
    W1, b1, W2, b2, W3, b3 = params
    h = cnp.maximum(x @ W1 + b1, 0.0)
    h = cnp.maximum(h @ W2 + b2, 0.0)
    z = h @ W3 + b3
    z = z - cnp.max(z, axis=1, keepdims=True)
    return cnp.mean(cnp.logsumexp(z, axis=1) - z[np.arange(z.shape[0]), y])


def _numpy_value_and_grad(params, x, y):
    W1, b1, W2, b2, W3, b3 = params

    def value_and_grad():
        z1 = x @ W1 + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W2 + b2
        h2 = np.maximum(z2, 0)
        z3 = h2 @ W3 + b3
        loss, d3 = _softmax_xent_grad(z3, y)
        gW3, gb3 = h2.T @ d3, d3.sum(axis=0)
        d2 = (d3 @ W3.T) * (z2 > 0)
        gW2, gb2 = h1.T @ d2, d2.sum(axis=0)
        d1 = (d2 @ W2.T) * (z1 > 0)
        gW1, gb1 = x.T @ d1, d1.sum(axis=0)
        return loss, [gW1, gb1, gW2, gb2, gW3, gb3]

    return value_and_grad


def cnp_pair(dtype, with_peers=False):
    """(chainrule value_and_grad, NumPy value_and_grad[, peers]), all without arguments."""
    params = _cnp_params(dtype)
    x, y = _data(dtype, (SIZES[0],))
    vg = cr.value_and_grad(cnp_loss)
    pair = (lambda: vg(params, x, y)), _numpy_value_and_grad(params, x, y)
    return pair + (peers.w2(params, x, y),) if with_peers else pair


def _check_cnp(dtype):
    f_cr, f_np, others = cnp_pair(dtype, with_peers=True)
    l_np, g_np = f_np()
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    for name, fn in {"chainrule": f_cr, **others}.items():
        l_x, g_x = fn()
        np.testing.assert_allclose(float(l_x), l_np, rtol=rtol, err_msg=name)
        for a, b in zip(g_x, g_np):
            if name == "chainrule":
                assert np.asarray(a).dtype == dtype
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2, err_msg=name)


# --- CNN ----------------------------------------------------------------------------------

def _cnn_model(dtype, seed=0):
    cr.nn.manual_seed(seed)
    return cr.nn.Sequential(
        cr.nn.Conv2d(1, 8, 3, padding=1, dtype=dtype), cr.nn.ReLU(), cr.nn.MaxPool2d(2),
        cr.nn.Flatten(), cr.nn.Linear(8 * 4 * 4, 10, dtype=dtype))


def _numpy_cnn_step(params, x, y):
    W, b, V, c = params  # conv (8, 1, 3, 3), (8,); linear (10, 128), (10,)
    n = x.shape[0]

    def step():
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        cols = sliding_window_view(xp, (3, 3), axis=(2, 3))            # (n, 1, 8, 8, 3, 3)
        cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * 64, 9)     # im2col
        z = (cols @ W.reshape(8, 9).T + b).reshape(n, 8, 8, 8).transpose(0, 3, 1, 2)
        a = np.maximum(z, 0)
        tiles = a.reshape(n, 8, 4, 2, 4, 2)
        pooled = tiles.max(axis=(3, 5))
        f = pooled.reshape(n, 128)
        loss, d = _softmax_xent_grad(f @ V.T + c, y)
        gV, gc = d.T @ f, d.sum(axis=0)
        dp = (d @ V).reshape(n, 8, 4, 1, 4, 1)
        da = ((tiles == pooled[:, :, :, None, :, None]) * dp).reshape(n, 8, 8, 8)
        dz = da * (z > 0)
        gW = (dz.transpose(0, 2, 3, 1).reshape(n * 64, 8).T @ cols).reshape(W.shape)
        gb = dz.sum(axis=(0, 2, 3))
        for p, g in ((W, gW), (b, gb), (V, gV), (c, gc)):
            p -= LR * g
        return loss

    return step


# --- driver -------------------------------------------------------------------------------

def _pair(kind, dtype):
    """(chainrule step, numpy step, chainrule params, numpy params) from the same weights."""
    if kind == "mlp":
        model = _mlp_model(dtype)
        x, y = _data(dtype, (SIZES[0],))
    else:
        model = _cnn_model(dtype)
        x, y = _data(dtype, (1, 8, 8))
    params = list(model.parameters())
    copies = [np.array(p.data) for p in params]
    opt = cr.optim.SGD(params, lr=LR)
    cr_step = _chainrule_step(model, opt, x, y)
    np_step = (_numpy_mlp_step if kind == "mlp" else _numpy_cnn_step)(copies, x, y)
    return cr_step, np_step, params, copies


def _check(kind, dtype):
    cr_step, np_step, params, copies = _pair(kind, dtype)
    l_cr, l_np = float(cr_step()), np_step()
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(l_cr, l_np, rtol=rtol)
    for p, q in zip(params, copies):
        np.testing.assert_allclose(p.data, q, rtol=rtol, atol=rtol * 1e-2)


def run(repeats: int) -> dict:
    rows, timings = [], {}
    for dtype in (np.float64, np.float32):
        _check_cnp(dtype)
        f_cr, f_np, others = cnp_pair(dtype, with_peers=True)
        t = compare({"chainrule": f_cr, "numpy": f_np, **others}, repeats)
        label = f"MLP cnp loss value_and_grad {np.dtype(dtype).name}"
        timings[label] = t
        rows.append(row(label, t["chainrule"]["median"] * 1e3, t["numpy"]["median"] * 1e3,
                        unit="ms", target=TARGETS[dtype],
                        peers={k: t[k]["median"] * 1e3 for k in others}))
    cases = [("mlp", np.float64), ("mlp", np.float32), ("cnn", np.float64), ("cnn", np.float32)]
    for kind, dtype in cases:
        _check(kind, dtype)
        cr_step, np_step, _, _ = _pair(kind, dtype)
        t = compare({"chainrule": cr_step, "numpy": np_step}, repeats)
        label = f"{kind.upper()} {'cr.nn ' if kind == 'mlp' else ''}step {np.dtype(dtype).name}"
        timings[label] = t
        rows.append(row(label, t["chainrule"]["median"] * 1e3, t["numpy"]["median"] * 1e3,
                        unit="ms", target=TARGETS[dtype] if kind == "mlp" else None))
    return {
        "name": NAME,
        "title": TITLE,
        "rows": rows,
        "notes": [
            "cnp loss: maximum(z, 0.0) ReLU, max-shifted logsumexp cross-entropy, "
            "cr.value_and_grad over the 6 parameters; baseline: hand-written value + gradients",
            "cr.nn step = zero_grad + forward + softmax cross-entropy + backward + SGD update",
            peers.note(),
            "losses and updated weights agree with the NumPy baseline (1e-10 rel. in f64)",
        ],
        "details": {"timings_s": timings},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(5)["rows"], indent=2))
