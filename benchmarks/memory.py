"""MEM: bytes per elementary op held by a recorded graph, and release after backward.

The W1 chain (``x = sin(x) * 1.0001 + 0.1 * x``) for 200,000 steps, i.e.
800,000 elementary ops.  With ``tracemalloc`` running (it also sees NumPy's
array buffers), the traced memory after building the graph minus the traced
memory before, divided by the op count, is the graph's cost per op; the graph
is alive until ``backward()``.  Target: <= 400 bytes/op.  After
``backward()`` the bytes still held (besides ``x``, ``y`` and ``x.grad``)
should be close to zero.  The baseline column is a hand-written NumPy
"tape" of the same chain: a list of the 0-d values the reverse loop needs.
"""

from __future__ import annotations

import gc
import statistics
import tracemalloc

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp
from common import row

NAME = "MEM"
TITLE = "graph memory, 200,000-step chain (800,000 ops)"
N_STEPS = 200_000
N_OPS = 4 * N_STEPS
TARGET_BYTES_PER_OP = 400.0


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _build(n: int):
    x = cr.tensor(0.5, requires_grad=True)
    y = x
    for _ in range(n):
        y = cnp.sin(y) * 1.0001 + 0.1 * y
    return x, y


def measure_graph(n: int = N_STEPS) -> dict:
    """Bytes held by the graph of ``n`` steps (current and peak while building)."""
    tracemalloc.start()
    try:
        before = _traced()
        tracemalloc.reset_peak()
        x, y = _build(n)
        built = _traced()
        peak_build = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()  # backward untraced: tracemalloc makes it ~10x slower
    y.backward()
    return {"graph_bytes": built - before, "peak_bytes": peak_build - before}


def measure_release(n: int = N_STEPS) -> dict:
    """Bytes still held after ``backward()`` (tracing the whole life of the graph)."""
    tracemalloc.start()
    try:
        before = _traced()
        x, y = _build(n)
        y.backward()
        after_backward = _traced()  # x, y and x.grad are still alive
        del y
        after_del = _traced()
        del x
        after_all = _traced()
    finally:
        tracemalloc.stop()
    return {
        "held_after_backward": after_backward - before,
        "held_after_del_y": after_del - before,
        "held_after_del_all": after_all - before,
    }


def measure_numpy(n: int = N_STEPS) -> dict:
    """The same chain in NumPy, keeping a list of every step's input for the reverse loop."""
    tracemalloc.start()
    try:
        before = _traced()
        x = np.array(0.5)
        xs = []
        for _ in range(n):
            xs.append(x)
            x = np.sin(x) * 1.0001 + 0.1 * x
        built = _traced()
        g = np.array(1.0)
        for xi in reversed(xs):
            g = g * (np.cos(xi) * 1.0001 + 0.1)
        del xs, x, xi
        after = _traced()
    finally:
        tracemalloc.stop()
    return {"graph_bytes": built - before, "held_after_backward": after - before}


def run(repeats: int) -> dict:
    # Memory figures are deterministic up to allocator noise: a few runs suffice.
    # The release check traces backward() too, which tracemalloc slows ~10x: quick
    # runs (repeats < 10) check release on a 10x shorter chain.
    k = 1 if repeats < 10 else 3
    release_steps = N_STEPS if repeats >= 10 else N_STEPS // 10
    graphs = [measure_graph() for _ in range(k)]
    tapes = [measure_numpy() for _ in range(k)]
    release = measure_release(release_steps)
    # (the derivative of 200,000 steps underflows to subnormal noise: W1 checks values)

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    per_op_cr = med(graphs, "graph_bytes") / N_OPS
    per_op_np = med(tapes, "graph_bytes") / N_OPS
    peak_cr = med(graphs, "peak_bytes") / N_OPS
    steps = f"{release_steps:,}-step chain"
    return {
        "name": NAME,
        "title": TITLE,
        "rows": [
            row("graph bytes per op (live)", per_op_cr, per_op_np, unit="B/op",
                target=TARGET_BYTES_PER_OP, on="value"),
            row("peak bytes per op while building", peak_cr, None, unit="B/op"),
            row(f"held after backward ({steps})", release["held_after_backward"],
                med(tapes, "held_after_backward"), unit="B",
                note="x, y and x.grad still alive"),
            row("held after del y", release["held_after_del_y"], None, unit="B"),
        ],
        "notes": [
            f"tracemalloc, {N_OPS:,} ops, median of {k} run(s); baseline = NumPy list of "
            "the 0-d values its reverse loop needs",
        ],
        "details": {"graph": graphs, "release": release, "numpy": tapes,
                    "n_ops": N_OPS, "release_steps": release_steps},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(1)["rows"], indent=2))
