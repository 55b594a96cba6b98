"""Structured control flow: ``cond``, ``while_loop``, ``fori_loop`` and ``scan`` (JAX's names).

Two ways to run, chosen per call:

* **Python.**  On plain arrays and under the eager transforms (``grad``,
  ``jvp``, ``jac*``, ``hessian``, ``vmap``, nested) the loop is a Python
  loop over chainrule operations: it runs at Python-loop speed, and every
  transform sees each iteration -- reverse mode through ``while_loop``
  keeps its iterations on the tape (JAX refuses this).  Under ``vmap`` a
  batched predicate cannot choose one path for every example: ``cond``
  evaluates both branches and selects per example, ``while_loop`` runs
  until every example is done and freezes the finished ones.
* **Staged.**  When a value of a ``cr.compile`` trace or a static graph node
  is involved, the loop or branch is ONE primitive (``scan``, ``while``,
  ``cond``) whose parameters hold its body as a
  :class:`~chainrule.graph.subprogram.SubProgram`, replayed by the
  executor: the program does not grow with the trip count, and a trip
  count that depends on the data is recomputed on every call.  Values the
  body closes over become explicit inputs (closure conversion), so the
  derivatives of a compiled or graph program reach them: the reverse of
  ``scan`` (and of ``fori_loop`` with static bounds) is a reverse ``scan``
  over the saved carries; ``while_loop`` and ``cond`` are differentiated
  through their Python form (iterations kept).

Every carry is type-checked: a body whose output carry differs from its
input in structure, shape or dtype, or branches with different outputs,
raise ``TypeError`` naming both.
"""


from __future__ import annotations

from ..graph.subprogram import NotStageable
from .api import cond, fori_loop, scan, while_loop
from .primitives import cond_p, scan_p, while_p
from .staged import _cond_staged, _scan_staged, _while_staged

__all__ = ["cond", "while_loop", "fori_loop", "scan", "NotStageable"]
__all__ += ["cond_p", "scan_p", "while_p", "_cond_staged", "_scan_staged", "_while_staged"]
