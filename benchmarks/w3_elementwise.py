"""W3: large elementwise expression, value and gradient.

``sum(tanh(x) * exp(-x**2) + log1p(x**2))`` on 10^6 float64 values (normal,
seed 0) with eager tensors, next to hand-written NumPy value + gradient.
Target: ratio <= 1.15.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp
import peers
from common import compare, row

NAME = "W3"
TITLE = "sum(tanh(x)*exp(-x**2) + log1p(x**2)), 10^6 float64, value + grad"
N = 1_000_000
TARGET_RATIO = 1.15
TARGET_PEAK = 1.25


def peak_bytes(fn) -> int:
    """Peak bytes traced by tracemalloc while ``fn()`` runs (results dropped after)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def value_and_grad_chainrule(a: np.ndarray):
    x = cr.from_numpy(a).requires_grad_()  # shares the array, as a NumPy version would
    y = cnp.sum(cnp.tanh(x) * cnp.exp(-x**2) + cnp.log1p(x**2))
    y.backward()
    return y.item(), x.grad


def value_and_grad_numpy(x: np.ndarray):
    """Straightforward hand-written NumPy: shared sub-expressions, closed-form gradient."""
    t = np.tanh(x)
    x2 = x * x
    e = np.exp(-x2)
    value = np.sum(t * e + np.log1p(x2))
    grad = (1 - t * t) * e + t * e * (-2 * x) + 2 * x / (1 + x2)
    return float(value), grad


def run(repeats: int) -> dict:
    a = np.random.default_rng(0).standard_normal(N)
    v_cr, g_cr = value_and_grad_chainrule(a)
    v_np, g_np = value_and_grad_numpy(a)
    np.testing.assert_allclose(v_cr, v_np, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(g_cr), g_np, rtol=1e-10, atol=1e-10)

    others = peers.w3(a)
    for name, fn in others.items():
        v_p, g_p = fn()
        np.testing.assert_allclose(float(v_p), v_np, rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(np.asarray(g_p), g_np, rtol=1e-10, atol=1e-10, err_msg=name)
    t = compare(
        {
            "chainrule": lambda: value_and_grad_chainrule(a),
            "numpy": lambda: value_and_grad_numpy(a),
            **others,
        },
        repeats,
    )
    ms_cr = t["chainrule"]["median"] * 1e3
    ms_np = t["numpy"]["median"] * 1e3
    peak = {name: peak_bytes(fn) / 1e6 for name, fn in (
        ("chainrule", lambda: value_and_grad_chainrule(a)),
        ("numpy", lambda: value_and_grad_numpy(a)),
        *((k, f) for k, f in others.items() if k != "torch"))}
    return {
        "name": NAME,
        "title": TITLE,
        "rows": [
            row("value + grad", ms_cr, ms_np, unit="ms", target=TARGET_RATIO,
                peers={k: t[k]["median"] * 1e3 for k in others}),
            row("peak memory (tracemalloc)", peak["chainrule"], peak["numpy"], unit="MB",
                target=TARGET_PEAK, peers={k: peak[k] for k in others if k in peak}),
        ],
        "notes": ["values and gradients agree (1e-10)",
                  "peak memory: tracemalloc peak during one value + grad (PyTorch's "
                  "allocations are invisible to tracemalloc, so it has no peak figure)",
                  peers.note()],
        "details": {"timings_s": t, "n": N},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(5)["rows"], indent=2))
