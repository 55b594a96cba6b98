"""Vectorising map: ``cr.vmap`` and the batching rules behind it.

A ``vmap`` call opens a batching trace level (:mod:`.tracer`); every
primitive bound on its boxes runs through its batching rule, looked up by
primitive name in :data:`BATCHING_RULES` (the rules live in :mod:`.rules`).
A new primitive -- a control-flow operation, a ``cr.Function`` -- joins with
:func:`register_batching_rule`.
"""

from . import gradient_tape, rules  # noqa: F401  (gradient_tape registers a tape hook)
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
