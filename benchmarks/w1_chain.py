"""W1: eager overhead on a long scalar chain (forward + backward).

``x = sin(x) * 1.0001 + 0.1 * x`` repeated 2,000 times from x = 0.5 (0-d
float64), i.e. 8,000 elementary operations (sin, mul, mul, add), then
``y.backward()``.  Reported as microseconds per elementary op, next to a
hand-written NumPy forward (storing the values the derivative needs) plus
reverse loop on 0-d arrays, also per elementary op.  Target: <= 2.5 us/op.
"""

from __future__ import annotations

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp
import peers
from common import compare, row

NAME = "W1"
TITLE = "scalar chain, 2,000 steps, forward + backward"
N_STEPS = 2000
OPS_PER_STEP = 4  # sin, mul, mul, add
N_OPS = N_STEPS * OPS_PER_STEP
TARGET_US_PER_OP = 2.5


def chain_chainrule(n: int = N_STEPS):
    """chainrule: build the chain on a tensor and back-propagate; returns (y, dy/dx)."""
    x = cr.tensor(0.5, requires_grad=True)
    y = x
    for _ in range(n):
        y = cnp.sin(y) * 1.0001 + 0.1 * y
    y.backward()
    return y.item(), x.grad


def chain_numpy(n: int = N_STEPS):
    """Hand-written NumPy: forward storing each step's input, then the reverse loop."""
    x = np.array(0.5)
    xs = []
    for _ in range(n):
        xs.append(x)
        x = np.sin(x) * 1.0001 + 0.1 * x
    g = np.array(1.0)
    for xi in reversed(xs):
        g = g * (np.cos(xi) * 1.0001 + 0.1)
    return float(x), g


def run(repeats: int) -> dict:
    y_cr, g_cr = chain_chainrule()
    y_np, g_np = chain_numpy()
    np.testing.assert_allclose(y_cr, y_np, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g_cr), g_np, rtol=1e-10, atol=0)

    others = peers.w1(N_STEPS)
    for name, fn in others.items():
        y_p, g_p = fn()
        np.testing.assert_allclose(float(g_p), g_np, rtol=1e-10, err_msg=name)
    t = compare({"chainrule": chain_chainrule, "numpy": chain_numpy, **others}, repeats)
    us_cr = t["chainrule"]["median"] / N_OPS * 1e6
    us_np = t["numpy"]["median"] / N_OPS * 1e6
    us_peers = {k: t[k]["median"] / N_OPS * 1e6 for k in others}
    return {
        "name": NAME,
        "title": TITLE,
        "rows": [
            row("fwd+bwd per elementary op", us_cr, us_np, unit="us/op",
                target=TARGET_US_PER_OP, on="value", peers=us_peers),
        ] + ([row("per op, chainrule / PyTorch", us_cr, us_peers["torch"], unit="us/op",
                  target=0.5)] if "torch" in us_peers else []),
        "notes": [f"{N_OPS:,} elementary ops per run; gradients agree (rtol 1e-10)",
                  peers.note()],
        "details": {"timings_s": t, "grad": float(np.asarray(g_cr)), "n_ops": N_OPS},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(5)["rows"], indent=2))
