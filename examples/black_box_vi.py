"""
Black-box variational inference
===============================

Black-box variational inference with the reparameterisation trick.

    python examples/black_box_vi.py            # writes black_box_vi.png
    python examples/black_box_vi.py --fast     # fewer iterations (CI)

The target is an unnormalised two-dimensional density (a curved "banana"
built from ``stats.norm.logpdf``).  A diagonal Gaussian ``q`` with mean
``m`` and log standard deviations ``s`` is fitted by maximising the evidence
lower bound ``E_q[log p(z)] + H[q]``; the expectation is estimated with
samples ``z = m + exp(s) * eps`` (fixed seed per iteration), so its gradient
flows through the samples.  chainrule's ``adam`` does the optimisation on a
pytree of parameters.  The plot shows the target's contours and ``q``'s.
"""

from __future__ import annotations

import argparse

import _backends
import numpy as np


def build(lib, num_samples: int = 50):
    np_, norm = lib.np, lib.stats.norm

    def log_density(z):
        x, y = z[:, 0], z[:, 1]
        return norm.logpdf(y, 0.0, 1.35) + norm.logpdf(x, 0.5 * y ** 2 - 1.0, 0.4)

    def neg_elbo(params, i):
        mean, log_std = params["mean"], params["log_std"]
        eps = np.random.RandomState(i).randn(num_samples, 2)
        z = mean + np_.exp(log_std) * eps
        entropy = np_.sum(log_std) + 0.5 * 2 * (1.0 + np.log(2 * np.pi))
        return -(np_.mean(log_density(z)) + entropy)

    return neg_elbo, log_density


def fit(lib, fast: bool = False):
    neg_elbo, log_density = build(lib)
    params0 = {"mean": np.array([-1.0, 1.0]), "log_std": np.array([-1.0, -1.0])}
    trace = []
    params = lib.adam(lib.grad(neg_elbo), params0, step_size=0.05,
                      num_iters=60 if fast else 500,
                      callback=lambda p, i, g: trace.append(float(neg_elbo(p, i))))
    return params, trace, log_density


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or '').strip().split('\n')[0])
    parser.add_argument("--fast", action="store_true", help="fewer iterations (for CI)")
    parser.add_argument("--output", default="black_box_vi.png", help="the PNG to write")
    parser.add_argument("--lib", default="chainrule", choices=["chainrule", "autograd"])
    args = parser.parse_args(argv)
    lib = _backends.get(args.lib)
    params, trace, log_density = fit(lib, args.fast)
    print(f"negative ELBO {trace[0]:.4f} -> {trace[-1]:.4f}; mean {np.round(params['mean'], 4)},"
          f" std {np.round(np.exp(params['log_std']), 4)}")
    plt = _backends.plt_module()
    g = np.linspace(-4, 4, 120)
    X, Y = np.meshgrid(g, g)
    pts = np.stack([X.ravel(), Y.ravel()], axis=1)
    target = np.exp(np.asarray(log_density(pts))).reshape(X.shape)
    q = np.exp(np.sum(-0.5 * ((pts - params["mean"]) / np.exp(params["log_std"])) ** 2, axis=1))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    ax.contour(X, Y, target, colors="k", levels=6)
    ax.contour(X, Y, q.reshape(X.shape), colors="r", levels=6)
    ax.set_title("target (black) and q (red)")
    ax2.plot(trace)
    ax2.set_title("negative ELBO")
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    main()
