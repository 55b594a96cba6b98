"""
A neural ODE
============

A neural ODE: a small network's vector field fitted to a spiral through ``odeint``.

    python examples/neural_ode.py            # writes neural_ode.png (about two minutes)
    python examples/neural_ode.py --fast     # fewer iterations (CI)

The training trajectory solves a damped linear spiral.  The model's
dynamics are ``dy/dt = W2 tanh(W1 y + b1) + b2``; its trajectory from the
same start comes from ``chainrule.scipy.integrate.odeint``, and the gradient
of the squared error with respect to the weights from the adjoint method
(an augmented ODE solved backwards -- no solver step is differentiated).
``adam`` trains the weights.  The plot shows both trajectories.
"""

from __future__ import annotations

import argparse

import _backends
import numpy as np

A_TRUE = np.array([[-0.1, 2.0], [-2.0, -0.1]])


def make_data(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import scipy.integrate

    t = np.linspace(0.0, 2.5, n)
    y0 = np.array([2.0, 0.0])
    ys = scipy.integrate.odeint(lambda y, t: A_TRUE @ y, y0, t, rtol=1e-10, atol=1e-10)
    return t, y0, ys


def build(lib, t, y0, ys):
    np_ = lib.np

    def dynamics(y, tt, W1, b1, W2, b2):
        return np_.dot(W2, np_.tanh(np_.dot(W1, y) + b1)) + b2

    def trajectory(params):
        args = lib.args((params["W1"], params["b1"], params["W2"], params["b2"]))
        return lib.odeint(dynamics, y0, t, args, rtol=1e-7, atol=1e-7)

    def loss(params, i):
        return np_.mean((trajectory(params) - ys) ** 2)

    return loss, trajectory


def init_params(hidden: int, seed: int = 0) -> dict:
    rs = np.random.RandomState(seed)
    return {"W1": rs.randn(hidden, 2) * 0.5, "b1": np.zeros(hidden),
            "W2": rs.randn(2, hidden) * 0.5, "b2": np.zeros(2)}


def fit(lib, fast: bool = False):
    t, y0, ys = make_data(8 if fast else 40)
    loss, trajectory = build(lib, t, y0, ys)
    trace = []
    params = lib.adam(lib.grad(loss), init_params(8 if fast else 16), step_size=0.05,
                      num_iters=3 if fast else 300,
                      callback=lambda p, i, g: trace.append(float(loss(p, i))))
    return t, ys, params, trace, trajectory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or '').strip().split('\n')[0])
    parser.add_argument("--fast", action="store_true", help="a few iterations (for CI)")
    parser.add_argument("--output", default="neural_ode.png", help="the PNG to write")
    parser.add_argument("--lib", default="chainrule", choices=["chainrule", "autograd"])
    args = parser.parse_args(argv)
    lib = _backends.get(args.lib)
    t, ys, params, trace, trajectory = fit(lib, args.fast)
    print(f"trajectory error {trace[0]:.5f} -> {trace[-1]:.5f} over {len(trace)} iterations")
    plt = _backends.plt_module()
    model = np.asarray(trajectory(params))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(ys[:, 0], ys[:, 1], "k.-", label="data")
    ax.plot(model[:, 0], model[:, 1], "r-", label="neural ODE")
    ax.legend()
    ax.set_title("neural ODE fitted with odeint's adjoint")
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    main()
