"""W3: large elementwise expression, value and gradient.

``sum(tanh(x) * exp(-x**2) + log1p(x**2))`` on 10^6 float64 values (normal,
seed 0) with eager tensors, next to hand-written NumPy value + gradient.
Target: ratio <= 1.15.
"""

from __future__ import annotations

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp
from common import compare, row

NAME = "W3"
TITLE = "sum(tanh(x)*exp(-x**2) + log1p(x**2)), 10^6 float64, value + grad"
N = 1_000_000
TARGET_RATIO = 1.15


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

    t = compare(
        {
            "chainrule": lambda: value_and_grad_chainrule(a),
            "numpy": lambda: value_and_grad_numpy(a),
        },
        repeats,
    )
    ms_cr = t["chainrule"]["median"] * 1e3
    ms_np = t["numpy"]["median"] * 1e3
    return {
        "name": NAME,
        "title": TITLE,
        "rows": [row("value + grad", ms_cr, ms_np, unit="ms", target=TARGET_RATIO)],
        "notes": ["values and gradients agree (1e-10)"],
        "details": {"timings_s": t, "n": N},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(5)["rows"], indent=2))
