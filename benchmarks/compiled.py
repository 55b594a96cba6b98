"""Compiled variants (``cr.compile``) of W1, W2 and W3 next to the hand-written NumPy baselines.

* W1c: ``cr.compile(cr.value_and_grad(chain))`` for the 2,000-step scalar chain
  ``x = sin(x)*1.0001 + 0.1*x`` from a 0-d float64 array; microseconds per
  elementary op (8,000 ops).  Target: <= 0.8 us/op.
* W2c: one MLP training step (64-256-256-10, ReLU, softmax cross-entropy,
  batch 128, SGD lr 0.1, float64) as one compiled function
  ``step(params, x, onehot) -> (loss, new_params)`` (forward + backward +
  update) with ``donate_argnums=0``, so the new weights are written over the
  old ones, as the baseline (W2's hand-written NumPy step, in-place updates,
  same weights) does.  The one-hot targets are made from the labels inside
  the timed call.  Target: ratio <= 0.95.
* W3c: ``cr.compile(cr.value_and_grad(f))`` for
  ``f(x) = sum(tanh(x)*exp(-x**2) + log1p(x**2))`` on 10^6 float64; baseline:
  W3's NumPy value + closed-form gradient.  Target: ratio <= 0.6.

Tracing and code generation happen in the untimed warm-up call; every
workload first checks its results against the baseline, and that no
re-tracing happened while timing.
"""

from __future__ import annotations

import numpy as np

import chainrule as cr
import chainrule.nn.functional as F
import chainrule.numpy as cnp
import w1_chain
import w2_mlp
import w3_elementwise
from common import compare, row

NAME = "WC"
TITLE = "compiled (cr.compile): W1 chain, W2 MLP step, W3 elementwise"
TARGET_W1_US = 0.8
TARGET_W2 = 0.95
TARGET_W3 = 0.6


# --- W1 -----------------------------------------------------------------------------------

def _chain(x):
    for _ in range(w1_chain.N_STEPS):
        x = cnp.sin(x) * 1.0001 + 0.1 * x
    return x


def _w1(repeats: int) -> tuple[dict, dict]:
    f = cr.compile(cr.value_and_grad(_chain))
    x0 = np.array(0.5)
    y, g = f(x0)
    y_np, g_np = w1_chain.chain_numpy()
    np.testing.assert_allclose(float(y), y_np, rtol=1e-12)
    np.testing.assert_allclose(float(g), float(g_np), rtol=1e-10, atol=0)
    t = compare({"compiled": lambda: f(x0), "numpy": w1_chain.chain_numpy}, repeats)
    assert f.trace_count == 1
    n = w1_chain.N_OPS
    us_c, us_np = t["compiled"]["median"] / n * 1e6, t["numpy"]["median"] / n * 1e6
    eqns = len(f.program(x0).eqns)
    return (row("W1c fwd+bwd per elementary op", us_c, us_np, unit="us/op",
                target=TARGET_W1_US, on="value", note=f"{eqns} equations"), t)


# --- W2 -----------------------------------------------------------------------------------

def _mlp_loss(params, x, t):
    W1, b1, W2, b2, W3, b3 = params
    h = F.relu(F.linear(x, W1, b1))
    h = F.relu(F.linear(h, W2, b2))
    z = F.linear(h, W3, b3)
    return -cnp.sum(t * F.log_softmax(z)) / x.shape[0]


_vg = cr.value_and_grad(_mlp_loss)


def _step(params, x, t):
    loss, grads = _vg(params, x, t)
    return loss, [p - w2_mlp.LR * g for p, g in zip(params, grads)]


def _w2(repeats: int) -> tuple[dict, dict]:
    dtype = np.float64
    model = w2_mlp._mlp_model(dtype)
    x, y = w2_mlp._data(dtype, (w2_mlp.SIZES[0],))
    params = [np.array(p.data) for p in model.parameters()]
    eye = np.eye(w2_mlp.SIZES[-1], dtype=dtype)
    step = cr.compile(_step, donate_argnums=0)

    # one step from the same weights agrees with the NumPy baseline (twice: the first call
    # traces, the second replays, writing the new weights into the donated arrays)
    copies = [p.copy() for p in params]
    l_np = w2_mlp._numpy_mlp_step(copies, x, y)()
    step([p.copy() for p in params], x, eye[y])
    l_c, new = step([p.copy() for p in params], x, eye[y])
    np.testing.assert_allclose(float(l_c), l_np, rtol=1e-10)
    for p, q in zip(new, copies):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-12)

    state = {"p": params}

    def compiled():
        loss, state["p"] = step(state["p"], x, eye[y])
        return loss

    baseline = w2_mlp._numpy_mlp_step([p.copy() for p in params], x, y)
    t = compare({"compiled": compiled, "numpy": baseline}, repeats)
    assert step.trace_count == 1
    ms_c, ms_np = t["compiled"]["median"] * 1e3, t["numpy"]["median"] * 1e3
    return (row("W2c MLP step float64", ms_c, ms_np, unit="ms", target=TARGET_W2), t)


def _w2_cnp(repeats: int) -> tuple[dict, dict]:
    """``cr.compile(cr.value_and_grad(loss))`` of W2's chainrule.numpy loss."""
    f_cr, f_np = w2_mlp.cnp_pair(np.float64)
    params = w2_mlp._cnp_params(np.float64)
    x, y = w2_mlp._data(np.float64, (w2_mlp.SIZES[0],))
    f = cr.compile(cr.value_and_grad(w2_mlp.cnp_loss))
    f(params, x, y)
    (l_c, g_c), (l_np, g_np) = f(params, x, y), f_np()
    np.testing.assert_allclose(float(l_c), l_np, rtol=1e-10)
    for a, b in zip(g_c, g_np):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    t = compare({"compiled": lambda: f(params, x, y), "numpy": f_np}, repeats)
    assert f.trace_count == 1
    ms_c, ms_np = t["compiled"]["median"] * 1e3, t["numpy"]["median"] * 1e3
    return (row("W2c cnp loss value_and_grad f64", ms_c, ms_np, unit="ms", target=TARGET_W2),
            t)


# --- W3 -----------------------------------------------------------------------------------

def _w3(repeats: int) -> tuple[dict, dict]:
    a = np.random.default_rng(0).standard_normal(w3_elementwise.N)
    f = cr.compile(cr.value_and_grad(
        lambda x: cnp.sum(cnp.tanh(x) * cnp.exp(-x**2) + cnp.log1p(x**2))))
    v, g = f(a)
    v_np, g_np = w3_elementwise.value_and_grad_numpy(a)
    np.testing.assert_allclose(float(v), v_np, rtol=1e-10)
    np.testing.assert_allclose(g, g_np, rtol=1e-10, atol=1e-10)
    t = compare({"compiled": lambda: f(a),
                 "numpy": lambda: w3_elementwise.value_and_grad_numpy(a)}, repeats)
    assert f.trace_count == 1
    ms_c, ms_np = t["compiled"]["median"] * 1e3, t["numpy"]["median"] * 1e3
    return (row("W3c value + grad (10^6 f64)", ms_c, ms_np, unit="ms", target=TARGET_W3), t)


def run(repeats: int) -> dict:
    rows, timings = [], {}
    for name, fn in (("W1c", _w1), ("W2c", _w2), ("W2c cnp", _w2_cnp), ("W3c", _w3)):
        r, t = fn(repeats)
        rows.append(r)
        timings[name] = t
    return {
        "name": NAME,
        "title": TITLE,
        "rows": rows,
        "notes": [
            "tracing + code generation happen in the untimed first call; results checked "
            "against the NumPy baselines first",
            "W2c: one compiled function = forward + backward + SGD update; the weights are "
            "donated (updated in place), as in the baseline",
        ],
        "details": {"timings_s": timings},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(5)["rows"], indent=2))
