"""
Logistic regression on a Dask cluster
=====================================

Logistic regression by gradient descent on a chunked Dask data set, with chainrule.

    python examples/dask_logistic_regression.py                  # 10 million rows x 20 features
    python examples/dask_logistic_regression.py --rows 100000    # a few seconds
    python examples/dask_logistic_regression.py --scheduler tcp://10.0.0.5:8786
    python examples/dask_logistic_regression.py --fast           # 100,000 rows, 10 steps

It writes the loss per step to ``dask_logistic_regression.png`` (``--out`` to change).

The data set (``X``: rows x features, ``y``: 0/1 labels drawn from a known
logistic model) is generated lazily with ``dask.array.random``, chunk by chunk
on the workers, and kept in their memory (``persist``): 10 million x 20
float64 is 1.6 GB, spread over the workers -- no process ever holds it whole.
The parameters are a small NumPy array and a bias.  Each step,
``cr.value_and_grad`` of the mean logistic loss returns a LAZY Dask loss and
gradient (NumPy weights with Dask data give Dask results, as in Dask itself);
one ``dask.compute`` evaluates both on the cluster, and the NumPy parameters
take a gradient step.  The loss uses a numerically stable log-sigmoid
(``log s(z) = -logaddexp(0, -z)``), so large logits neither overflow nor
give ``log(0)``.

Without ``--scheduler`` a ``distributed.LocalCluster`` of ``--workers`` worker
processes (one thread each) is started and stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp


def log_sigmoid(z: Any) -> Any:
    """``log(1 / (1 + exp(-z)))`` without overflow for any ``z`` (via ``logaddexp``)."""
    return -cnp.logaddexp(0.0, -z)


def logistic_loss(params: dict, X: Any, y: Any) -> Any:
    """Mean negative log-likelihood: ``-mean(y log s(z) + (1 - y) log s(-z))``, ``z = Xw + b``.

    ``log s(-z) = log s(z) - z``, so one log-sigmoid serves both terms.
    """
    z = cnp.matmul(X, params["w"]) + params["b"]
    return -cnp.mean(log_sigmoid(z) - z * (1.0 - y))


def make_data(rows: int, features: int, chunk_rows: int, seed: int, dtype: str):
    """Lazy ``X``, ``y`` from a logistic model with known weights (returned too)."""
    import dask.array as da

    truth = np.random.default_rng(seed)
    w_true = truth.normal(size=features) * (2.0 / np.sqrt(features))
    b_true = 0.5
    if hasattr(da.random, "default_rng"):
        rng = da.random.default_rng(seed)
        uniform = rng.random
    else:  # older Dask
        rng = da.random.RandomState(seed)
        uniform = rng.random_sample
    X = rng.standard_normal((rows, features), chunks=(chunk_rows, features)).astype(dtype)
    p = 1.0 / (1.0 + da.exp(-(X @ w_true.astype(dtype) + b_true)))
    y = (uniform(rows, chunks=chunk_rows) < p).astype(dtype)
    return X, y, w_true, b_true


def fit(X: Any, y: Any, steps: int, lr: float, log=print) -> dict:
    """Gradient descent with ``cr.value_and_grad``; returns losses, times and parameters."""
    import dask

    dtype = np.dtype(X.dtype)
    params = {"w": np.zeros(X.shape[1], dtype=dtype), "b": np.zeros((), dtype=dtype)}
    value_and_grad = cr.value_and_grad(logistic_loss)
    losses, times = [], []
    for step in range(steps):
        t0 = time.perf_counter()
        loss, grads = value_and_grad(params, X, y)       # lazy Dask loss and gradients
        loss, grads = dask.compute(loss, grads)          # evaluated together on the cluster
        params = {k: params[k] - lr * np.asarray(grads[k], dtype=dtype) for k in params}
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
        gnorm = float(np.sqrt(sum(np.sum(np.square(g)) for g in grads.values())))
        log(f"step {step + 1:3d}  loss {losses[-1]:.6f}  |grad| {gnorm:.2e}  "
            f"{times[-1]:.2f} s")
    return {"losses": losses, "step_times": times, "params": params}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or '').strip().split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000, help="rows of X (default 10^7)")
    p.add_argument("--features", type=int, default=20, help="columns of X (default 20)")
    p.add_argument("--chunk-rows", type=int, default=None,
                   help="rows per chunk (default: rows / 20, at least 50,000)")
    p.add_argument("--steps", type=int, default=20, help="gradient steps (default 20)")
    p.add_argument("--lr", type=float, default=2.0, help="learning rate (default 2.0)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes of the LocalCluster (default 2)")
    p.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler (default: start a LocalCluster)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true", help="100,000 rows and 10 steps")
    p.add_argument("--out", default="dask_logistic_regression.png", help="plot file")
    args = p.parse_args(argv)
    if args.fast:
        args.rows, args.steps = min(args.rows, 100_000), min(args.steps, 10)
    return args


def plot(losses: list[float], path: str) -> None:
    """The loss per gradient step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(losses) + 1), losses, marker="o")
    ax.set_xlabel("gradient step")
    ax.set_ylabel("mean logistic loss")
    ax.set_title("Logistic regression on a Dask cluster")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None, log=print) -> dict:
    args = parse_args(argv)
    import dask
    from distributed import Client, LocalCluster, wait

    chunk = args.chunk_rows or max(50_000, -(-args.rows // 20))
    cluster = None
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        import logging

        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        n_workers = len(client.scheduler_info()["workers"])
        gb = args.rows * args.features * np.dtype(args.dtype).itemsize / 1e9
        log(f"{args.rows:,} rows x {args.features} features ({gb:.2f} GB of {args.dtype}) in "
            f"chunks of {chunk:,} rows on {n_workers} worker(s) at {client.scheduler.address}")
        t0 = time.perf_counter()
        X, y, w_true, b_true = make_data(args.rows, args.features, chunk, args.seed, args.dtype)
        X, y = dask.persist(X, y)
        wait([X, y])
        log(f"data generated on the workers in {time.perf_counter() - t0:.1f} s")
        result = fit(X, y, args.steps, args.lr, log=log)
        w, b = result["params"]["w"], result["params"]["b"]
        corr = float(np.corrcoef(w, w_true)[0, 1]) if args.features > 1 else float("nan")
        per_step = float(np.median(result["step_times"][1:] or result["step_times"]))
        log(f"median time per step {per_step:.3f} s; correlation of the fitted weights with "
            f"the true ones {corr:.4f}; bias {float(b):.3f} (true {b_true})")
        result.update(time_per_step=per_step, workers=n_workers, weight_correlation=corr)
        plot(result["losses"], args.out)
        log(f"wrote {args.out}")
        return result
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main(sys.argv[1:])
