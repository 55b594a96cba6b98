"""Dependency rule of ``checkpoint``: the pattern of the checkpointed block, traced inside.

A checkpointed block is one primitive holding a function.  Its dependency
pattern is that function's own: the block is traced once more on inputs of
the same shapes (the constants it receives as themselves) and the inner
program's pattern is chained with the patterns of the block's inputs.  The
result is a :class:`TuplePattern` (the block returns a tuple), read entry by
entry by ``tuple_get``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ops._broadcast import reshape
from ..ops.shape import concatenate
from . import _patterns as pt
from . import rules as rl
from .detect import propagate, trace_program

__all__ = ["TuplePattern"]


class TuplePattern(pt.PerBatch):
    """The pattern of a tuple-valued block: ``parts[i]`` for entry ``i``.  ``P`` stacks
    every part's rows (one per output element: what the second-order rules couple); read
    as a whole (``expand``) every element depends on everything any entry depends on, the
    safe view for consumers other than ``tuple_get``."""

    __slots__ = ("parts",)

    def __init__(self, parts: list) -> None:
        super().__init__(pt.sp.vstack(parts, format="csr"), ())
        self.parts = parts

    def expand(self, out_shape: tuple) -> Any:
        row = pt.apply(pt.labels_matrix(np.zeros(self.P.shape[0], np.int64), 1), self.P)
        return pt.gather(row, np.zeros(pt.size_of(tuple(out_shape)), dtype=np.int64))


def _checkpoint(args: list, out_shape: Any, params: dict, prim: Any) -> Any:
    fun = params["fun"]
    dep = [i for i, a in enumerate(args) if a.pattern is not None]
    shapes = [tuple(args[i].shape) for i in dep]
    sizes = [pt.size_of(s) for s in shapes]
    offsets = np.cumsum([0] + sizes)
    if any(a.value is None for i, a in enumerate(args) if i not in dep):
        return rl.conservative(args, out_shape, params, prim)
    lengths: list = []

    def packed(z: Any) -> Any:
        full = [a.value for a in args]
        for k, i in enumerate(dep):
            full[i] = reshape(z[offsets[k]:offsets[k + 1]], shape=shapes[k])
        outs = fun(*full)
        lengths[:] = [pt.size_of(tuple(o.shape)) for o in outs]
        return concatenate([reshape(o, shape=(-1,)) for o in outs], axis=0)

    z = np.zeros(int(offsets[-1]), dtype=np.float64)
    program, out = trace_program("checkpoint", packed, z)
    inner, _ = propagate("checkpoint", program, out, z.size)
    stacked = pt.sp.vstack([args[i].pattern if not isinstance(args[i].pattern, pt.PerBatch)
                            else args[i].pattern.expand(tuple(args[i].shape)) for i in dep],
                           format="csr")
    total = pt.apply(inner.tocsr(), stacked)
    starts = np.cumsum([0] + lengths)
    return TuplePattern([total[starts[k]:starts[k + 1]] for k in range(len(lengths))])


def _tuple_get(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    p = args[0].pattern
    if isinstance(p, TuplePattern):
        return p.parts[params["index"]]
    return _PLAIN_TUPLE_GET(args, out_shape, params, prim)


_PLAIN_TUPLE_GET = rl.DEPENDENCY_RULES["tuple_get"]
rl.DEPENDENCY_RULES["checkpoint"] = _checkpoint
rl.HESSIAN_RULES["checkpoint"] = "nonlinear"
rl.DEPENDENCY_RULES["tuple_get"] = _tuple_get
