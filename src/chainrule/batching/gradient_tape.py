"""``GradientTape.gradient`` on batched values inside ``vmap``: per-example gradients.

A tape records at the eager level; inside ``vmap`` a watched batched value
records its whole batch there (see ``BatchTracer.requires_grad``).  The
gradient of a batched target is then taken per example:

* with respect to a batched source, by ONE reverse pass seeded with the
  batch of output cotangents (example ``k`` of the target depends only on
  example ``k`` of the source, so the rows do not mix);
* with respect to an unbatched source (a tensor shared by every example),
  by ONE reverse pass whose cotangent carries a leading axis of size ``B``
  that holds example ``k``'s cotangent in row ``k`` only -- row ``k`` of the
  result is example ``k``'s gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.backward import backward_pass
from ..core.primitive import Box
from ..tape import GRADIENT_HOOKS, _active_tapes, _flatten
from ..tensor import Tensor
from .tracer import BatchTrace, BatchTracer, _shape_of

__all__: list[str] = []


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _diag_seed(g: Any, size: int) -> Any:
    """``(B, B, ...)`` with ``g[k]`` at ``[k, k]`` and zeros elsewhere (plain arrays)."""
    g = np.asarray(_raw(g))
    out = np.zeros((size,) + g.shape, dtype=g.dtype)
    idx = np.arange(size)
    out[idx, idx] = g
    return out


def _pull(tape: Any, roots: list, wanted: list, create: bool) -> tuple[dict, dict]:
    roots = [(t, Tensor(g) if create and not isinstance(g, Box) else g) for t, g in roots]
    return backward_pass(roots, roots[0][0]._level, True, create, accept=tape._records,
                         target_nodes=wanted)


def _lookup(v: Any, leaves: dict, found: dict) -> Any:
    if not isinstance(v, Box):
        return None
    if v._node is not None:
        return found.get(v._node)
    hit = leaves.get(id(v))
    return hit[1] if hit is not None else None


def batched_gradient(tape: Any, target: Any, sources: Any, output_gradients: Any,
                     unconnected: str) -> Any:
    targets, _ = _flatten(target)
    srcs, many = _flatten(sources)
    tracers = [v for v in targets + srcs if isinstance(v, BatchTracer)]
    if not tracers:
        return NotImplemented
    trace: BatchTrace = tracers[0]._trace
    size = trace.size

    def mine(v: Any) -> bool:
        return isinstance(v, BatchTracer) and v._trace is trace

    outs = _flatten(output_gradients)[0] if output_gradients is not None else None
    create = bool(_active_tapes())
    plain, diag = [], []  # roots for batched sources / for shared (unbatched) sources
    for i, t in enumerate(targets):
        tv = t._bval if mine(t) else t
        if not (isinstance(tv, Box) and tv.requires_grad):
            continue
        if outs is not None and outs[i] is not None:
            g = outs[i]
            gv = g._bval if mine(g) else _raw(g)
            if mine(t) and not mine(g):
                gv = np.broadcast_to(np.asarray(gv), _shape_of(tv))
        else:
            gv = np.ones(_shape_of(tv), dtype=_raw(tv).dtype)
        if mine(t):
            plain.append((tv, gv))
            diag.append((tv, _diag_seed(gv, size)))
        else:  # an unbatched target: the same cotangent, hence gradient, for every example
            gv = np.asarray(_raw(gv))
            diag.append((tv, np.broadcast_to(gv, (size,) + gv.shape)))
    results: list[Any] = [None] * len(srcs)
    batched = [i for i, s in enumerate(srcs) if mine(s)]
    shared = [i for i, s in enumerate(srcs) if not mine(s) and isinstance(s, Box)]
    for group, roots in ((batched, plain), (shared, diag)):
        if not group or not roots:
            continue
        vals = [srcs[i]._bval if mine(srcs[i]) else srcs[i] for i in group]
        wanted = [v._node for v in vals if isinstance(v, Box) and v._node is not None]
        leaves, found = _pull(tape, roots, wanted, create)
        for i, v in zip(group, vals):
            r = _lookup(v, leaves, found)
            if r is not None:
                results[i] = trace.box(r, "GradientTape.gradient")
    if unconnected == "zero":
        results = [trace.box(np.zeros((size,) + tuple(s.shape), dtype=s.dtype),
                             "GradientTape.gradient") if r is None else r
                   for r, s in zip(results, srcs)]
    return results if many else results[0]


GRADIENT_HOOKS.append(batched_gradient)
