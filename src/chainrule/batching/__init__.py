"""Vectorising map: ``cr.vmap`` and the batching rules behind it.

A ``vmap`` call opens a batching trace level (:mod:`.tracer`); every
primitive bound on its boxes runs through its batching rule, looked up by
primitive name in :data:`BATCHING_RULES` (the rules live in :mod:`.rules`;
those of the primitives of ``chainrule.scipy`` and ``chainrule.optimize``,
registered by name without importing them, in :mod:`.library_rules`).
A new primitive -- a control-flow operation, a ``cr.Function`` -- joins with
:func:`register_batching_rule`.

Writing a rule for an operation that holds functions (``cond``, ``scan``...)::

    def _cond_batching(size, vals, dims, /, true_fun, false_fun):
        pred, *ops = vals
        if dims[0] is None:            # one branch for the whole batch: batch the branches
            tf = vmap(true_fun, in_axes=tuple(dims[1:]))
            ff = vmap(false_fun, in_axes=tuple(dims[1:]))
            return cond_p(pred, *ops, true_fun=tf, false_fun=ff), 0
        ...                            # batched predicate: run both, select with where_p
    register_batching_rule(cond_p, _cond_batching)

Batched values arrive with their batch axis at 0 (``dims[i] == 0``) or
unbatched (``None``); ``rules.move_to_front`` broadcasts an unbatched value
along a new batch axis, and ``vmap(body, in_axes=dims)`` batches a body
(``chainrule.remat``'s ``checkpoint`` rule does exactly this).  Return the
result batched at 0 (every entry of a tuple result).
"""

from . import gradient_tape, library_rules, rules  # noqa: F401  (gradient_tape registers a tape hook)
from .api import vmap
from .tracer import (
    BATCHING_RULES,
    BatchedValueError,
    BatchingRule,
    BatchTrace,
    BatchTracer,
    register_batching_rule,
)

__all__ = ["vmap", "rules", "BATCHING_RULES", "BatchingRule", "BatchedValueError", "BatchTrace",
           "BatchTracer", "register_batching_rule"]
