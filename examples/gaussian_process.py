"""
Gaussian-process hyperparameters
================================

Gaussian-process regression fitted by maximising its marginal likelihood.

    python examples/gaussian_process.py            # writes gaussian_process.png
    python examples/gaussian_process.py --fast     # fewer points (CI)

Noisy samples of a smooth function are modelled with a zero-mean Gaussian
process with a squared-exponential kernel.  Its hyper-parameters (mean,
log amplitude, log length scale, log noise) maximise the log marginal
likelihood ``multivariate_normal.logpdf(y, mean, K + noise I)``, whose
gradient chainrule computes (through the Cholesky factorisation inside
``chainrule.scipy.stats.multivariate_normal``); SciPy's L-BFGS-B does the
optimisation.  The plot shows the data and the posterior mean with a
two-standard-deviation band.
"""

from __future__ import annotations

import argparse

import _backends
import numpy as np
import scipy.optimize


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rs = np.random.RandomState(seed)
    x = np.sort(rs.uniform(-4.0, 4.0, n))
    y = np.sin(x) * 1.5 + 0.3 * x + rs.randn(n) * 0.2
    return x, y


def build(lib, x: np.ndarray, y: np.ndarray):
    """The negative log marginal likelihood of the hyper-parameters, and a predictor."""
    np_ = lib.np

    def kernel(params, a, b):
        amp, length = np_.exp(params[1]), np_.exp(params[2])
        d = np_.expand_dims(a, 1) - np_.expand_dims(b, 0)
        return amp * np_.exp(-0.5 * (d / length) ** 2)

    def neg_log_marginal(params):
        cov = kernel(params, x, x) + (np_.exp(params[3]) + 1e-6) * np.eye(len(x))
        mean = params[0] * np.ones(len(x))
        return -lib.stats.multivariate_normal.logpdf(y, mean, cov)

    def predict(params, xs):
        cov = kernel(params, x, x) + (np.exp(params[3]) + 1e-6) * np.eye(len(x))
        ks = kernel(params, xs, x)
        mean = params[0] + ks @ np.linalg.solve(cov, y - params[0])
        var = np.exp(params[1]) - np.sum(ks * np.linalg.solve(cov, ks.T).T, axis=1)
        return mean, np.sqrt(np.maximum(var, 0.0))

    return neg_log_marginal, predict


def fit(lib, fast: bool = False):
    x, y = make_data(20 if fast else 60)
    objective, predict = build(lib, x, y)
    grad = lib.grad(objective)
    params0 = np.array([0.0, 0.0, 0.0, -1.0])
    res = scipy.optimize.minimize(lambda p: float(objective(p)), params0,
                                  jac=lambda p: np.asarray(grad(p)), method="L-BFGS-B",
                                  options={"maxiter": 30 if fast else 200})
    return x, y, res, predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or '').strip().split('\n')[0])
    parser.add_argument("--fast", action="store_true", help="a small problem (for CI)")
    parser.add_argument("--output", default="gaussian_process.png", help="the PNG to write")
    parser.add_argument("--lib", default="chainrule", choices=["chainrule", "autograd"])
    args = parser.parse_args(argv)
    x, y, res, predict = fit(_backends.get(args.lib), args.fast)
    print(f"negative log marginal likelihood {res.fun:.6f} after {res.nit} iterations; "
          f"hyper-parameters {np.round(res.x, 4)}")
    plt = _backends.plt_module()
    xs = np.linspace(-5, 5, 200)
    mean, std = predict(res.x, xs)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(xs, mean - 2 * std, mean + 2 * std, alpha=0.3, label="posterior +- 2 sd")
    ax.plot(xs, mean, label="posterior mean")
    ax.plot(x, y, "kx", label="data")
    ax.set_title("Gaussian process, hyper-parameters by maximum marginal likelihood")
    ax.legend()
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    main()
