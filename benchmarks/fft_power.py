"""WF: ``value_and_grad`` of ``sum(abs(rfft(x))**2 * w)`` for n = 2^20 (issue 18).

Baseline: the same written by hand in NumPy, its gradient through ``irfft``.
With ``X = rfft(x)`` the loss is ``sum(w |X_k|^2)``; its gradient is

    grad_j = 2 Re(sum_k w_k conj(X_k) e^(-2 pi i jk/n)) over the half spectrum
           = irfft(c, n, norm="forward")   with c = w X, doubled at the zero and
                                            Nyquist bins (irfft counts the others twice)

HIPS autograd and PyTorch figures are measured in the same run when they are installed
(references only).  Target: ratio <= 1.3.
"""

from __future__ import annotations

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp
from common import compare, row

NAME = "WF"
TITLE = "value_and_grad of sum(abs(rfft(x))**2 * w), n = 2^20"
N = 2 ** 20
TARGET_RATIO = 1.3


def make_problem(n: int = N):
    rng = np.random.default_rng(0)
    return rng.standard_normal(n), rng.uniform(0.0, 1.0, n // 2 + 1)


def numpy_value_and_grad(x: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    X = np.fft.rfft(x)
    value = float(np.sum((X.real * X.real + X.imag * X.imag) * w))
    c = w * X
    c[0] *= 2.0
    if x.shape[-1] % 2 == 0:
        c[-1] *= 2.0
    return value, np.fft.irfft(c, x.shape[-1], norm="forward")


def run(repeats: int) -> dict:
    x, w = make_problem()

    def loss(x):
        return cnp.sum(cnp.abs(cnp.fft.rfft(x)) ** 2 * w)

    vg = cr.value_and_grad(loss)
    v_cr, g_cr = vg(x)
    v_np, g_np = numpy_value_and_grad(x, w)
    np.testing.assert_allclose(v_cr, v_np, rtol=1e-10)
    np.testing.assert_allclose(g_cr, g_np, rtol=1e-8, atol=1e-8 * np.abs(g_np).max())

    candidates = {"chainrule": lambda: vg(x), "numpy": lambda: numpy_value_and_grad(x, w)}
    notes = ["value and gradient agree with the hand-written NumPy version (through irfft)"]
    try:
        import autograd
        import autograd.numpy as anp

        a_vg = autograd.value_and_grad(lambda x: anp.sum(anp.abs(anp.fft.rfft(x)) ** 2 * w))
        np.testing.assert_allclose(a_vg(x)[1], g_np, rtol=1e-8, atol=1e-8 * np.abs(g_np).max())
        candidates["autograd"] = lambda: a_vg(x)
    except ImportError:
        notes.append("HIPS autograd not installed")
    try:
        import torch

        xt0 = torch.from_numpy(x)
        wt = torch.from_numpy(w)

        def torch_vg():
            xt = xt0.detach().requires_grad_(True)
            v = (torch.fft.rfft(xt).abs() ** 2 * wt).sum()
            v.backward()
            return v.item(), xt.grad

        np.testing.assert_allclose(torch_vg()[1].numpy(), g_np, rtol=1e-8,
                                   atol=1e-8 * np.abs(g_np).max())
        candidates["torch"] = torch_vg
    except ImportError:
        notes.append("PyTorch not installed")

    t = compare(candidates, repeats)
    ms = {k: v["median"] * 1e3 for k, v in t.items()}
    rows = [row("chainrule value_and_grad", ms["chainrule"], ms["numpy"], unit="ms",
                target=TARGET_RATIO)]
    for ref in ("autograd", "torch"):
        if ref in ms:
            rows.append(row(f"{ref} (reference)", ms[ref], ms["numpy"], unit="ms"))
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes,
            "details": {"timings_s": t, "n": N}}


if __name__ == "__main__":
    import json

    print(json.dumps(run(5), indent=2, default=str))
