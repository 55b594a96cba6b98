"""W6: one SGD step of the classic MNIST CNN, chainrule vs hand-written NumPy vs PyTorch.

Conv 20@5x5 -> ReLU -> MaxPool 2 -> Conv 50@5x5 -> ReLU -> MaxPool 2 -> 800 -> 500 (ReLU)
-> 10, softmax cross-entropy, batch 64 of 1x28x28, plain SGD (lr 0.01), float32 and float64.

* chainrule: ``cr.nn`` modules, ``F.cross_entropy``, ``backward()``, ``cr.optim.SGD``.
* hand-written NumPy: channels-last (NHWC) throughout, im2col GEMMs through
  ``sliding_window_view``, max pooling by reshape, col2im by slice-adds, the
  im2col matrices kept from the forward pass for the weight gradients.
* PyTorch (when installed, one thread): the same model and step.
* chainrule compiled: the same step written with ``nn.functional``, its loss and
  gradients from ``cr.compile(cr.value_and_grad(...))`` (one program, reused
  buffers), then the same SGD update in place.

All three take one step from the same weights first; the losses and updated
weights must agree (1e-9 relative in float64, 1e-3 in float32).  Peak
memory of one step (``tracemalloc``, which sees NumPy's buffers; for chainrule
plus the convolution scratch buffers it keeps between steps) is compared with
the hand-written step's.  Targets: time <= 1.0x PyTorch and <= 1.10x
hand NumPy; peak memory <= 1.3x hand NumPy.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import chainrule as cr
import chainrule.nn.functional as F
import chainrule.numpy as cnp
from chainrule.ops.conv import scratch_bytes
from common import compare, row

NAME = "W6"
TITLE = "CNN training step (conv 20@5, pool, conv 50@5, pool, 800-500-10), batch 64"
BATCH, LR = 64, 0.01
try:
    import torch
except ImportError:  # PyTorch is a reference only
    torch = None


def model(dtype, seed=0):
    cr.nn.manual_seed(seed)
    nn = cr.nn
    return nn.Sequential(
        nn.Conv2d(1, 20, 5, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500, dtype=dtype), nn.ReLU(), nn.Linear(500, 10, dtype=dtype))


def data(dtype, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((BATCH, 1, 28, 28)).astype(dtype), rng.integers(0, 10, BATCH)


def chainrule_step(dtype):
    net = model(dtype)
    params = list(net.parameters())
    opt = cr.optim.SGD(params, lr=LR)
    x, y = data(dtype)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return float(loss)

    return step, params


def compiled_step(dtype):
    """The same step as :func:`chainrule_step`, its loss and gradients from ``cr.compile``."""
    params = [np.array(p.data) for p in model(dtype).parameters()]
    x, y = data(dtype)

    def loss(W1, b1, W2, b2, V1, c1, V2, c2, x, y):
        h = F.max_pool2d(F.relu(F.conv2d(x, W1, b1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, W2, b2)), 2)
        h = F.relu(F.linear(cnp.reshape(h, (x.shape[0], -1)), V1, c1))
        return F.cross_entropy(F.linear(h, V2, c2), y)

    value_and_grad = cr.compile(cr.value_and_grad(loss, argnums=tuple(range(8))))

    def step():
        value, grads = value_and_grad(*params, x, y)
        for p, g in zip(params, grads):
            p -= LR * g
        return float(value)

    return step, params


# --- hand-written NumPy, channels last ------------------------------------------------------

def _im2col(x, k):
    """``(N, H, W, C)`` -> ``(N*Ho*Wo, k*k*C)`` (kernel offset major, channel minor)."""
    n, h, w, c = x.shape
    v = sliding_window_view(x, (k, k), axis=(1, 2))          # (N, Ho, Wo, C, k, k)
    ho, wo = h - k + 1, w - k + 1
    return v.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, k * k * c), (n, ho, wo)


def _col2im(dcols, shape, k, c):
    n, ho, wo = shape
    d = dcols.reshape(n, ho, wo, k, k, c)
    out = np.zeros((n, ho + k - 1, wo + k - 1, c), dtype=dcols.dtype)
    for p in range(k):
        for q in range(k):
            out[:, p:p + ho, q:q + wo, :] += d[:, :, :, p, q, :]
    return out


def _pool(a):
    n, h, w, c = a.shape
    t = a.reshape(n, h // 2, 2, w // 2, 2, c)
    m = t.max(axis=(2, 4))
    return m, t


def _unpool(d, t, m):
    n, h, w, c = d.shape
    return ((t == m[:, :, None, :, None, :]) * d[:, :, None, :, None, :]).reshape(
        n, 2 * h, 2 * w, c)


def _xent(z, y):
    n = z.shape[0]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    s = e.sum(axis=1, keepdims=True)
    p = e / s
    loss = float(np.mean(-np.log(p[np.arange(n), y])))
    p[np.arange(n), y] -= 1
    return loss, p / n


def numpy_params(params):
    """chainrule's (NCHW / NCHW-flatten) weights in the hand-written layout."""
    W1, b1, W2, b2, V1, c1, V2, c2 = (np.array(p.data) for p in params)
    return [W1.transpose(2, 3, 1, 0).reshape(25, 20), b1,
            W2.transpose(2, 3, 1, 0).reshape(500, 50), b2,
            V1.reshape(500, 50, 4, 4).transpose(0, 2, 3, 1).reshape(500, 800), c1, V2, c2]


def to_chainrule_layout(p):
    W1, b1, W2, b2, V1, c1, V2, c2 = p
    return [W1.reshape(5, 5, 1, 20).transpose(3, 2, 0, 1), b1,
            W2.reshape(5, 5, 20, 50).transpose(3, 2, 0, 1), b2,
            V1.reshape(500, 4, 4, 50).transpose(0, 3, 1, 2).reshape(500, 800), c1, V2, c2]


def numpy_step(p, x, y):
    W1, b1, W2, b2, V1, c1, V2, c2 = p
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def step():
        cols1, s1 = _im2col(xl, 5)
        z1 = (cols1 @ W1 + b1).reshape(s1 + (20,))
        a1 = np.maximum(z1, 0)
        m1, t1 = _pool(a1)
        cols2, s2 = _im2col(m1, 5)
        z2 = (cols2 @ W2 + b2).reshape(s2 + (50,))
        a2 = np.maximum(z2, 0)
        m2, t2 = _pool(a2)
        f = m2.reshape(BATCH, 800)
        h = f @ V1.T + c1
        r = np.maximum(h, 0)
        loss, dz = _xent(r @ V2.T + c2, y)
        gV2, gc2 = dz.T @ r, dz.sum(0)
        dh = (dz @ V2) * (h > 0)
        gV1, gc1 = dh.T @ f, dh.sum(0)
        dm2 = (dh @ V1).reshape(m2.shape)
        dz2 = (_unpool(dm2, t2, m2) * (z2 > 0)).reshape(-1, 50)
        gW2, gb2 = cols2.T @ dz2, dz2.sum(0)
        dm1 = _col2im(dz2 @ W2.T, s2, 5, 20)
        dz1 = (_unpool(dm1, t1, m1) * (z1 > 0)).reshape(-1, 20)
        gW1, gb1 = cols1.T @ dz1, dz1.sum(0)
        for q, g in zip(p, (gW1, gb1, gW2, gb2, gV1, gc1, gV2, gc2)):
            q -= LR * g
        return loss

    return step


# --- PyTorch --------------------------------------------------------------------------------

def torch_step(params, x, y, dtype):
    tn = torch.nn
    net = tn.Sequential(
        tn.Conv2d(1, 20, 5), tn.ReLU(), tn.MaxPool2d(2), tn.Conv2d(20, 50, 5), tn.ReLU(),
        tn.MaxPool2d(2), tn.Flatten(), tn.Linear(800, 500), tn.ReLU(), tn.Linear(500, 10))
    net = net.to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for tp, p in zip(net.parameters(), params):
            tp.copy_(torch.from_numpy(np.array(p.data)))
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = tn.functional.cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
        return float(loss)

    return step, list(net.parameters())


def _peak(fn, held=lambda: 0):
    """Peak traced bytes of one call, plus ``held()``: memory kept between calls for reuse."""
    fn()
    gc.collect()
    kept = held()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base + kept
    finally:
        tracemalloc.stop()


def candidates(dtype, check=True):
    cr_step, params = chainrule_step(dtype)
    x, y = data(dtype)
    p_np = numpy_params(params)
    np_step = numpy_step(p_np, x, y)
    c_step, c_params = compiled_step(dtype)
    cands = {"chainrule": cr_step, "numpy": np_step, "compiled": c_step}
    t_params = None
    if torch is not None:
        torch.set_num_threads(1)
        cands["torch"], t_params = torch_step(params, x, y, dtype)
    if check:
        losses = {k: f() for k, f in cands.items()}
        rtol = 1e-9 if dtype == np.float64 else 1e-3
        for k in losses:
            np.testing.assert_allclose(losses[k], losses["chainrule"], rtol=rtol, err_msg=k)
        for a, b in zip(params, to_chainrule_layout(p_np)):
            np.testing.assert_allclose(a.data, b, rtol=rtol, atol=rtol * 1e-2)
        for a, b in zip(params, c_params):
            np.testing.assert_allclose(a.data, b, rtol=rtol, atol=rtol * 1e-2)
        if t_params is not None:
            for a, b in zip(params, t_params):
                np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=rtol,
                                           atol=rtol * 1e-2)
    return cands


def run(repeats: int) -> dict:
    rows, details, notes = [], {}, []
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        cands = candidates(dtype)
        t = compare(cands, repeats)
        details[name] = t
        ms = {k: v["median"] * 1e3 for k, v in t.items()}
        rows.append(row(f"step {name} vs hand NumPy", ms["chainrule"], ms["numpy"], unit="ms",
                        target=1.10))
        if "torch" in ms:
            rows.append(row(f"step {name} vs PyTorch", ms["chainrule"], ms["torch"], unit="ms",
                            target=1.0))
        rows.append(row(f"compiled step {name} vs hand NumPy", ms["compiled"], ms["numpy"],
                        unit="ms"))
        rows.append(row(f"compiled step {name} vs eager step", ms["compiled"], ms["chainrule"],
                        unit="ms"))
        if dtype == np.float32:
            fresh = candidates(dtype, check=False)
            mem = {"chainrule": _peak(fresh["chainrule"], scratch_bytes) / 2 ** 20,
                   "numpy": _peak(fresh["numpy"]) / 2 ** 20}
            details["peak_MiB"] = mem
            rows.append(row("peak memory float32 vs hand NumPy", mem["chainrule"], mem["numpy"],
                            unit="MiB", target=1.3))
    if torch is None:
        notes.append("PyTorch not installed: no PyTorch column")
    notes.append("losses and updated weights agree across all sides (1e-9 rel. in f64)")
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes,
            "details": {"timings_s": details}}


if __name__ == "__main__":
    import json

    print(json.dumps(run(5)["rows"], indent=2))
