"""W7: value and gradient through two ResNet basic blocks, chainrule vs hand NumPy vs PyTorch.

Block: ``relu(x + conv(relu(conv(x))))``, 3x3 convolutions with padding 1 and bias,
32 channels, 32x32 images, batch 32; two blocks; loss ``sum(out * c) / N`` for a
fixed random ``c``; the gradient with respect to all eight parameters.
float32 and float64.

* chainrule: ``cr.value_and_grad`` of a function of the parameters through
  ``F.conv2d`` / ``F.relu``.
* hand-written NumPy: channels-last throughout, im2col GEMMs (``sliding_window_view``),
  the im2col matrices kept for the weight gradients, col2im by slice-adds.
* PyTorch (when installed, one thread): ``torch.autograd.grad`` of the same loss.

Values and gradients must agree (1e-9 relative in float64; in float32, where a ReLU
input within rounding of 0 may flip, 1e-3 on the value and 1e-2 on each gradient's norm).
Targets: <= 1.2x hand NumPy and <= 2x PyTorch.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.nn import functional as F
from common import compare, row

NAME = "W7"
TITLE = "two ResNet basic blocks (3x3, 32 ch, 32x32, batch 32): value and grad"
N, C, S = 32, 32, 32
try:
    import torch
except ImportError:  # PyTorch is a reference only
    torch = None


def setup(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, S, S)).astype(dtype)
    c = rng.standard_normal((N, C, S, S)).astype(dtype)
    params = []
    for _ in range(4):
        params.append((rng.standard_normal((C, C, 3, 3)) * (2.0 / (9 * C)) ** 0.5).astype(dtype))
        params.append((0.1 * rng.standard_normal(C)).astype(dtype))
    return x, c, params


def chainrule_fn(x, c):
    def loss(*p):
        h = x
        for i in (0, 4):
            a = F.relu(F.conv2d(h, p[i], p[i + 1], padding=1))
            h = F.relu(h + F.conv2d(a, p[i + 2], p[i + 3], padding=1))
        return cnp.sum(h * c) * (1.0 / N)

    vg = cr.value_and_grad(loss, argnums=tuple(range(8)))
    return lambda params: vg(*params)


# --- hand-written NumPy, channels last ------------------------------------------------------

def _conv(xl, W, b):
    """3x3, padding 1: (N, S, S, C) -> (N, S, S, O) and the im2col matrix."""
    n, s, _, c = xl.shape
    xp = np.zeros((n, s + 2, s + 2, c), dtype=xl.dtype)
    xp[:, 1:-1, 1:-1] = xl
    cols = sliding_window_view(xp, (3, 3), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    cols = cols.reshape(n * s * s, 9 * c)
    return (cols @ W + b).reshape(n, s, s, -1), cols


def _conv_back(dz, cols, W, need_dx=True):
    n, s, _, o = dz.shape
    d2 = dz.reshape(-1, o)
    gW, gb = cols.T @ d2, d2.sum(0)
    if not need_dx:
        return None, gW, gb
    dcols = (d2 @ W.T).reshape(n, s, s, 3, 3, -1)
    dxp = np.zeros((n, s + 2, s + 2, dcols.shape[-1]), dtype=dz.dtype)
    for p in range(3):
        for q in range(3):
            dxp[:, p:p + s, q:q + s] += dcols[:, :, :, p, q]
    return dxp[:, 1:-1, 1:-1], gW, gb


def numpy_fn(x, c):
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    cl = np.ascontiguousarray(c.transpose(0, 2, 3, 1))

    def value_and_grad(p):
        Ws = [p[i].transpose(2, 3, 1, 0).reshape(9 * C, C) for i in (0, 2, 4, 6)]
        bs = [p[i] for i in (1, 3, 5, 7)]
        h, saved = xl, []
        for blk in range(2):
            z1, cols1 = _conv(h, Ws[2 * blk], bs[2 * blk])
            a = np.maximum(z1, 0)
            z2, cols2 = _conv(a, Ws[2 * blk + 1], bs[2 * blk + 1])
            s = h + z2
            saved.append((z1, cols1, cols2, s))
            h = np.maximum(s, 0)
        value = float((h * cl).sum()) / N
        dh = cl * (1.0 / N)
        grads = [None] * 8
        for blk in (1, 0):
            z1, cols1, cols2, s = saved[blk]
            ds = dh * (s > 0)
            da, gW2, gb2 = _conv_back(ds, cols2, Ws[2 * blk + 1])
            dz1 = da * (z1 > 0)
            dx, gW1, gb1 = _conv_back(dz1, cols1, Ws[2 * blk], need_dx=blk > 0)
            if blk > 0:
                dh = ds + dx
            grads[4 * blk:4 * blk + 4] = [gW1, gb1, gW2, gb2]
        for i in (0, 2):  # back to (O, C, 3, 3)
            for j in (0, 4):
                grads[i + j] = grads[i + j].reshape(3, 3, C, C).transpose(3, 2, 0, 1)
        return value, grads

    return value_and_grad


def torch_fn(x, c):
    xt, ct = torch.from_numpy(x), torch.from_numpy(c)
    conv = torch.nn.functional.conv2d

    def value_and_grad(p):
        tp = [torch.from_numpy(a).requires_grad_() for a in p]
        h = xt
        for i in (0, 4):
            a = torch.relu(conv(h, tp[i], tp[i + 1], padding=1))
            h = torch.relu(h + conv(a, tp[i + 2], tp[i + 3], padding=1))
        loss = (h * ct).sum() / N
        return float(loss), [g.numpy() for g in torch.autograd.grad(loss, tp)]

    return value_and_grad


def candidates(dtype, check=True):
    x, c, params = setup(dtype)
    fns = {"chainrule": chainrule_fn(x, c), "numpy": numpy_fn(x, c)}
    if torch is not None:
        torch.set_num_threads(1)
        fns["torch"] = torch_fn(x, c)
    if check:
        rtol = 1e-9 if dtype == np.float64 else 1e-3
        v0, g0 = fns["numpy"](params)
        for k in fns:
            v, g = fns[k](params)
            np.testing.assert_allclose(float(v), v0, rtol=rtol, err_msg=k)
            for a, b in zip(g, g0):
                if dtype == np.float64:
                    np.testing.assert_allclose(np.asarray(a), b, rtol=rtol, atol=rtol * 1e-1,
                                               err_msg=k)
                else:  # float32: a few ReLU inputs within rounding of 0 may flip; compare norms
                    err = np.linalg.norm(np.asarray(a, dtype=np.float64) - b)
                    assert err <= 1e-2 * np.linalg.norm(b), (k, err)
    return {k: (lambda f=f: f(params)) for k, f in fns.items()}


def run(repeats: int) -> dict:
    rows, details = [], {}
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        t = compare(candidates(dtype), repeats)
        details[name] = t
        ms = {k: v["median"] * 1e3 for k, v in t.items()}
        rows.append(row(f"value+grad {name} vs hand NumPy", ms["chainrule"], ms["numpy"],
                        unit="ms", target=1.2))
        if "torch" in ms:
            rows.append(row(f"value+grad {name} vs PyTorch", ms["chainrule"], ms["torch"],
                            unit="ms", target=2.0))
    notes = ["values and all eight gradients agree across all sides (1e-9 rel. in f64)"]
    if torch is None:
        notes.append("PyTorch not installed: no PyTorch column")
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes,
            "details": {"timings_s": details}}


if __name__ == "__main__":
    import json

    print(json.dumps(run(5)["rows"], indent=2))
