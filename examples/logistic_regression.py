"""
Logistic regression by gradient descent
=======================================

Two classes of points in the plane, a linear classifier with a bias, the mean logistic
loss written with ``chainrule.numpy``, and ``cr.value_and_grad`` for plain gradient
descent. The plot shows the data, the decision boundary and the loss per step.

    python examples/logistic_regression.py [--fast] [--out logistic_regression.png]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp


def loss(params: dict, X: np.ndarray, y: np.ndarray):
    """Mean negative log-likelihood (``logaddexp(0, -m)`` is ``-log sigmoid(m)``, no overflow)."""
    z = X @ params["w"] + params["b"]
    return cnp.mean(cnp.logaddexp(0.0, -(2.0 * y - 1.0) * z))


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(float)
    centres = np.where(y[:, None] > 0, [1.5, 1.0], [-1.0, -1.2])
    return centres + rng.normal(size=(n, 2)), y


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="logistic regression by gradient descent")
    p.add_argument("--fast", action="store_true", help="fewer points and steps")
    p.add_argument("--out", default="logistic_regression.png")
    args = p.parse_args(argv)
    n, steps = (200, 60) if args.fast else (2000, 300)
    X, y = make_data(n)
    params = {"w": np.zeros(2), "b": np.zeros(())}
    step = cr.value_and_grad(loss)
    history = []
    for _ in range(steps):
        value, g = step(params, X, y)
        params = {k: params[k] - 0.5 * g[k] for k in params}
        history.append(float(value))
    accuracy = float(np.mean(((X @ params["w"] + params["b"]) > 0) == (y > 0)))
    print(f"loss {history[-1]:.4f}, training accuracy {accuracy:.3f}")

    import matplotlib

    matplotlib.use("Agg")  # files only: the examples need no screen
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", s=8)
    xs = np.linspace(X[:, 0].min(), X[:, 0].max(), 2)
    w, b = params["w"], float(params["b"])
    left.plot(xs, -(w[0] * xs + b) / w[1], "k-", label="decision boundary")
    left.set_ylim(X[:, 1].min(), X[:, 1].max())
    left.legend()
    left.set_title("data and fitted boundary")
    right.plot(history)
    right.set_xlabel("gradient step")
    right.set_ylabel("mean logistic loss")
    right.set_title("training loss")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return {"loss": history, "accuracy": accuracy}


if __name__ == "__main__":
    main(sys.argv[1:])
