"""Replaying a recorded compressed pass, only while calling ``f`` could not compute otherwise.

A sparse Jacobian's compressed pass (one batched JVP, VJP or HVP) costs most
of its time in Python dispatch, and computes primal values that only the
output needs (``u ** 3``, whose tangent needs ``u ** 2`` alone).  Recorded
once as a program (:func:`chainrule.graph.trace.record`), optimised
(dead code removed) and turned into straight-line code, it runs several
times faster -- but a recording holds what ``f`` read besides ``x`` as
constants: :class:`Replay` replays only while ``f``'s
:class:`~chainrule.graph.environment.Environment` holds (else it calls
``f``, eagerly, as before).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..anomaly import is_anomaly_enabled
from ..graph.environment import Environment
from ..graph.executor import generate
from ..graph.ir import GuardFailed
from ..graph.passes import optimize
from ..graph.trace import record
from ..pytree import tree_unflatten

__all__ = ["Replay"]


class Replay:
    """``product(x, seed)``, replayed from a recording while ``f``'s environment holds.

    ``env`` is the snapshot taken when the pattern was found (``None``: never
    replay).  The first call runs ``product`` eagerly; the next, if the
    snapshot still holds, records ``product`` (the recording computes that
    call's result too), keeping the program only when the snapshot held
    throughout; later calls replay it after checking the snapshot.  On any
    change ``on_change(x)`` runs (it may raise: the sparsity pattern is
    checked there), then the call runs eagerly under a new snapshot and the
    cycle restarts.  Never replayed: functions reading what cannot be
    watched or changing it themselves, programs that read values (guards),
    and anything under ``cr.detect_anomaly()``.
    """

    def __init__(self, f: Callable, product: Callable, env: Environment | None,
                 on_change: Callable[[np.ndarray], None] | None = None) -> None:
        self.f = f
        self.product = product
        self.on_change = on_change
        self.enabled = env is not None
        self._env = env
        self._exe: Any = None
        self._tree: Any = None
        self._warm = False
        #: how many calls were replayed (the rest ran eagerly or recorded)
        self.replays = 0

    def _eager(self, x: np.ndarray, seed: np.ndarray) -> Any:
        """Run ``product`` under a new snapshot (kept only if ``f`` left it intact)."""
        self._exe = None
        if not self.enabled:
            return self.product(x, seed)
        env = Environment.of(self.f)
        out = self.product(x, seed)
        if env is None or not env.unchanged():
            self.enabled = False
            self._env = None
        else:
            self._env = env
        return out

    def __call__(self, x: np.ndarray, seed: np.ndarray) -> Any:
        env, exe, tree = self._env, self._exe, self._tree  # (one consistent state)
        if env is None or is_anomaly_enabled():
            return self._eager(x, seed)
        if not env.unchanged():
            if self.on_change is not None:
                self.on_change(x)
            return self._eager(x, seed)
        if exe is not None:
            try:
                out = exe(x, seed)
            except GuardFailed:
                return self._eager(x, seed)
            self.replays += 1
            return tree_unflatten(tree, out)
        if not self._warm:  # a first call (often the only one) is not recorded
            self._warm = True
            return self._eager(x, seed)
        try:
            program, tree, values = record(self.product, (x, seed), {})
        except Exception:  # something the recorder cannot follow: f's own run decides
            self.enabled = False
            return self._eager(x, seed)
        if any(e.out is None for e in program.eqns):  # it read values: never replayed
            self.enabled = False
            self._env = None
        elif env.unchanged():  # (else f changed what it reads while it ran)
            self._tree = tree
            self._exe = generate(optimize(program))
        else:
            self.enabled = False
            self._env = None
        return tree_unflatten(tree, values)
