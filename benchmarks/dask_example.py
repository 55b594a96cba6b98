"""DASK: one gradient step of examples/dask_logistic_regression.py, on 1 and 2 workers.

The example's loss (mean logistic loss with a stable log-sigmoid) on a
persisted chunked data set of ``ROWS`` x 20 float64 (``CHAINRULE_DASK_ROWS``,
default 2,000,000; 20 chunks), on a ``distributed.LocalCluster`` of 1, then 2
worker processes with one thread each.  A step is ``cr.value_and_grad`` (a
lazy Dask graph) plus one ``dask.compute`` of the loss and the gradient; the
baseline is the same step written by hand in Dask with the closed-form
gradient ``X^T (sigmoid(z) - y) / n``.  No target: the figures show what the
lazy graph built by chainrule costs next to the hand-written one, and how the
step scales from one worker to two.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from common import compare, row, skipped

NAME = "DASK"
TITLE = "Dask logistic regression: value + grad step on a LocalCluster, 1 and 2 workers"
ROWS = int(os.environ.get("CHAINRULE_DASK_ROWS", "2000000"))
FEATURES = 20
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask_logistic_regression.py"


def _example():
    spec = importlib.util.spec_from_file_location("dask_logistic_regression", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _measure(example, workers: int, repeats: int) -> tuple[dict, dict]:
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import chainrule as cr

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)  # the default client while it lives (persist, wait)
    try:
        X, y, _, _ = example.make_data(ROWS, FEATURES, -(-ROWS // 20), 0, "float64")
        X, y = dask.persist(X, y, scheduler=client)
        wait([X, y])
        rng = np.random.default_rng(1)
        params = {"w": rng.normal(size=FEATURES) * 0.1, "b": np.array(0.2)}
        value_and_grad = cr.value_and_grad(example.logistic_loss)

        def step_chainrule():
            loss, grads = value_and_grad(params, X, y)
            return dask.compute(loss, grads, scheduler=client)

        def step_dask():
            z = X @ params["w"] + params["b"]
            r = 1.0 / (1.0 + da.exp(-z)) - y           # sigmoid(z) - y
            loss = da.mean(da.logaddexp(0.0, -z) + z * (1.0 - y))
            return dask.compute(loss, {"w": (r @ X) / ROWS, "b": da.mean(r)}, scheduler=client)

        (l1, g1), (l2, g2) = step_chainrule(), step_dask()
        np.testing.assert_allclose(l1, l2, rtol=1e-10)
        for k in g1:
            np.testing.assert_allclose(g1[k], g2[k], rtol=1e-9, atol=1e-12)
        t = compare({"chainrule": step_chainrule, "dask": step_dask}, repeats)
        return t, {"workers": len(client.scheduler_info()["workers"])}
    finally:
        client.close()
        cluster.close()


def run(repeats: int) -> dict:
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        return skipped(NAME, TITLE, f"needs dask[array,distributed]: {exc}")
    example = _example()
    repeats = max(3, repeats // 2)   # every step is a round trip through the cluster
    rows, details = [], {"rows": ROWS, "features": FEATURES}
    per_step = {}
    for workers in (1, 2):
        t, info = _measure(example, workers, repeats)
        ms_cr = t["chainrule"]["median"] * 1e3
        ms_dask = t["dask"]["median"] * 1e3
        per_step[workers] = ms_cr
        rows.append(row(f"{workers} worker{'s' if workers > 1 else ''}: value + grad step",
                        ms_cr, ms_dask, unit="ms"))
        details[f"workers_{workers}"] = {"timings_s": t, **info}
    notes = [f"{ROWS:,} x {FEATURES} float64 in 20 chunks; baseline: the same step by hand in "
             "Dask (closed-form gradient); loss and gradients agree (1e-9)",
             f"2 workers vs 1: {per_step[1] / per_step[2]:.2f}x faster per step"]
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "details": details}


if __name__ == "__main__":
    import json

    out = run(5)
    print(json.dumps(out["rows"], indent=2))
    print("\n".join(out["notes"]))
