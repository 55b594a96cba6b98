"""
A Gaussian mixture model
========================

A Gaussian mixture model fitted by maximum likelihood, with ``logsumexp``.

    python examples/mixture_model.py            # writes mixture_model.png
    python examples/mixture_model.py --fast     # fewer iterations (CI)

One-dimensional data from three Gaussians.  The model's log-likelihood of a
point is ``logsumexp_k(log pi_k + norm.logpdf(x, mu_k, sigma_k))``; the
mixing weights come from ``log_softmax`` of free logits and the scales from
log standard deviations, so the parameters are unconstrained.  ``adam``
maximises the mean log-likelihood over a pytree of parameters.  The plot
shows the data's histogram and the fitted density.
"""

from __future__ import annotations

import argparse

import _backends
import numpy as np


def make_data(n: int, seed: int = 1) -> np.ndarray:
    rs = np.random.RandomState(seed)
    which = rs.choice(3, size=n, p=[0.3, 0.5, 0.2])
    return np.array([-3.0, 0.5, 4.0])[which] + np.array([0.6, 1.0, 0.5])[which] * rs.randn(n)


def build(lib, data: np.ndarray):
    np_, special, norm = lib.np, lib.special, lib.stats.norm

    def log_likelihood(params):
        log_w = params["logits"] - special.logsumexp(params["logits"])
        comp = log_w + norm.logpdf(data[:, None], params["means"], np_.exp(params["log_std"]))
        return special.logsumexp(comp, axis=1)

    def objective(params, i):
        return -np_.mean(log_likelihood(params))

    return objective, log_likelihood


def fit(lib, fast: bool = False):
    data = make_data(200 if fast else 1000)
    objective, log_likelihood = build(lib, data)
    params0 = {"logits": np.zeros(3), "means": np.array([-1.0, 0.0, 1.0]),
               "log_std": np.zeros(3)}
    params = lib.adam(lib.grad(objective), params0, step_size=0.1,
                      num_iters=80 if fast else 600)
    return data, params, objective, log_likelihood


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or '').strip().split('\n')[0])
    parser.add_argument("--fast", action="store_true", help="fewer iterations (for CI)")
    parser.add_argument("--output", default="mixture_model.png", help="the PNG to write")
    parser.add_argument("--lib", default="chainrule", choices=["chainrule", "autograd"])
    args = parser.parse_args(argv)
    lib = _backends.get(args.lib)
    data, params, objective, log_likelihood = fit(lib, args.fast)
    print(f"mean log-likelihood {-float(objective(params, 0)):.5f}; means "
          f"{np.round(params['means'], 3)}, stds {np.round(np.exp(params['log_std']), 3)}")
    plt = _backends.plt_module()
    xs = np.linspace(data.min() - 1, data.max() + 1, 300)
    density = np.exp(np.asarray(build(lib, xs)[1](params)))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(data, bins=40, density=True, alpha=0.4, label="data")
    ax.plot(xs, density, "r", label="fitted mixture")
    ax.legend()
    ax.set_title("Gaussian mixture by maximum likelihood (logsumexp)")
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    main()
