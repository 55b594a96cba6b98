"""
Fitting a complex-valued signal
===============================

A signal made of two damped complex exponentials, ``sum_k a_k exp(s_k t)`` with complex
amplitudes ``a_k`` and complex rates ``s_k = -d_k + i w_k``, observed with noise. The
parameters are complex arrays, the loss ``sum |model - data|^2`` is real, and
``cr.grad`` gives ``df/dx - i df/dy`` for each complex parameter (the convention of HIPS
autograd and JAX), so plain gradient steps along its conjugate, or ``cr.optim.Adam`` on
complex parameters, descend. The plot shows the data, the fit and the loss.

    python examples/complex_fit.py [--fast] [--out complex_fit.png]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp


def model(a, s, t):
    return cnp.sum(a[:, None] * cnp.exp(s[:, None] * t[None, :]), axis=0)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="fit a complex-valued signal")
    p.add_argument("--fast", action="store_true", help="fewer steps")
    p.add_argument("--out", default="complex_fit.png")
    args = p.parse_args(argv)
    steps = 150 if args.fast else 600

    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 4.0, 200)
    a_true = np.array([1.0 + 0.5j, -0.3 + 0.8j])
    s_true = np.array([-0.4 + 3.0j, -0.1 - 1.5j])
    data = model(a_true, s_true, t)
    data = data + 0.05 * (rng.normal(size=t.shape) + 1j * rng.normal(size=t.shape))

    a = cr.nn.Parameter(np.array([0.5 + 0.0j, 0.5 + 0.0j]))
    s = cr.nn.Parameter(np.array([-0.2 + 2.5j, -0.2 - 1.2j]))
    opt = cr.optim.Adam([a, s], lr=0.02)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss = cnp.sum(cnp.abs(model(a, s, t) - data) ** 2)
        loss.backward()
        opt.step()
        history.append(loss.item())
    print(f"loss {history[0]:.3f} -> {history[-1]:.4f}")
    print("rates   fitted", np.round(s.detach().numpy(), 3), " true", s_true)
    print("amplit. fitted", np.round(a.detach().numpy(), 3), " true", a_true)

    import matplotlib

    matplotlib.use("Agg")  # files only: the examples need no screen
    import matplotlib.pyplot as plt

    fit = model(a.detach().numpy(), s.detach().numpy(), t)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(t, data.real, ".", ms=3, color="C0", alpha=0.5, label="data (real part)")
    left.plot(t, data.imag, ".", ms=3, color="C1", alpha=0.5, label="data (imaginary part)")
    left.plot(t, fit.real, color="C0", label="fit (real part)")
    left.plot(t, fit.imag, color="C1", label="fit (imaginary part)")
    left.set_xlabel("t")
    left.legend(fontsize=8)
    right.semilogy(history)
    right.set_xlabel("Adam step on complex parameters")
    right.set_ylabel("sum |model - data|^2")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return {"loss": history, "a": a.detach().numpy(), "s": s.detach().numpy()}


if __name__ == "__main__":
    main(sys.argv[1:])
