"""Replaying ``value_and_grad`` / ``grad`` from a recording while nothing ``f`` reads has changed.

A gradient computed eagerly pays Python's price for every operation, on the
way forward and back again.  Called again and again with arguments of the
same signature (a training loop, an optimiser), the same work is done each
time: :class:`GradientReplay` records it once as a program (the forward and
the backward pass, from the same rules, see :func:`chainrule.graph.trace.record`),
optimises it (:mod:`chainrule.graph.passes`) and replays it as straight-line
code that reuses its work buffers (:mod:`chainrule.graph.executor`).

A replay gives exactly what calling ``f`` would, or it does not happen:

* ``f``'s :class:`~chainrule.graph.environment.Environment` -- its code,
  closure cells, defaults, the globals it names (recursively through the
  Python functions it calls), closed-over arrays by content -- is checked
  before every replay; on a change the call runs eagerly and ``f`` is
  recorded again later.  A function that reads what cannot be watched
  (object attributes, modules' hidden state, random generators, I/O, more
  than :data:`MAX_WATCHED_BYTES` of arrays besides its arguments) is never
  replayed, nor one that changes what it reads while it runs.
  Values that ``f`` reads as Python numbers or index arrays are guarded:
  a replay whose guard fails runs eagerly instead.
* Only plain arguments are replayed: NumPy arrays and scalars, Python
  numbers, strings and ``None`` in tuples, lists and dicts.  Tensors, other
  array libraries, calls inside another transform or a ``GradientTape``
  and anything under ``cr.detect_anomaly()`` run eagerly.
* Results are fresh arrays (never an argument, a constant or a buffer of
  the program); every other result leaf (NumPy scalars, the numbers and
  strings of ``has_aux``'s extra output) comes back as an array, as eagerly.

Like a compiled function, a replayed one keeps its work buffers between
calls (one set per thread), so memory that an eager call would give back
stays with it while it lives; ``replay=False`` gives it back.

Recording costs a few eager calls' time, so it happens on the third call
with one signature; a function called with ever new signatures (a Python
``int`` argument that changes every call) stops being considered after
:data:`MAX_SIGNATURES`.  ``cr.value_and_grad(f, replay=False)`` turns all of
this off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..anomaly import is_anomaly_enabled
from ..core.trace import EAGER_LEVEL, state
from ..pytree import sorted_keys, tree_unflatten
from .environment import Environment
from .executor import Executable, generate
from .ir import GuardFailed, Lit, Program, Var
from .passes import optimize
from .trace import record

__all__ = ["GradientReplay", "MAX_SIGNATURES", "MAX_RECORDINGS", "MAX_EQUATIONS",
           "MAX_WATCHED_BYTES"]

#: Signatures one function may have before it is no longer considered for replay.
MAX_SIGNATURES = 8
#: Recordings one signature may make (each change of what ``f`` reads costs one).
MAX_RECORDINGS = 3
#: Calls of one signature that run eagerly before it is recorded.
EAGER_CALLS = 1
#: Functions that read more array data than this besides their arguments are not replayed:
#: every replay compares it with its recording, a cost that grows with the data while the
#: Python overhead that replays save does not.
MAX_WATCHED_BYTES = 2**20
#: Recordings with more equations than this are not kept (code generation would cost more
#: than the replays save).
MAX_EQUATIONS = 20_000

_NOT_REPLAYED = object()
_STATIC = (int, bool, str, type(None))


class _NotReplayable(Exception):
    """An argument that is not a plain NumPy/Python value."""


def _signature(tree: Any, dyn: list) -> Any:
    """A hashable description of ``tree`` (structure, shapes, dtypes, static values); its
    program inputs are appended to ``dyn`` in the order of ``tree_flatten``."""
    t = type(tree)
    if t is np.ndarray:
        if tree.dtype.kind not in "biufc":
            raise _NotReplayable
        dyn.append(tree)
        return (tree.shape, tree.dtype)
    if t is list or t is tuple:
        return (t,) + tuple([_signature(c, dyn) for c in tree])
    if t is float or t is complex:
        dyn.append(tree)
        return t
    if t in _STATIC:
        return (t, tree)
    if isinstance(tree, np.generic):
        if tree.dtype.kind not in "biufc":
            raise _NotReplayable
        dyn.append(tree)
        return (t, ())
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a namedtuple
        return (t,) + tuple([_signature(c, dyn) for c in tree])
    if isinstance(tree, dict):
        keys = sorted_keys(tree)
        return (dict, keys) + tuple([_signature(tree[k], dyn) for k in keys])
    raise _NotReplayable


class _Signature:
    """One argument signature: calls seen, the program once recorded."""

    __slots__ = ("calls", "recordings", "exe", "env", "out_tree", "fresh", "constants", "dead")

    def __init__(self) -> None:
        self.calls = 0
        self.recordings = 0
        self.exe: Executable | None = None
        self.env: Environment | None = None
        self.out_tree: Any = None
        #: per output: True when the program computes it anew each call (else it is copied)
        self.fresh: list[bool] = []
        #: the memory of the program's constant arrays (a result viewing it is copied)
        self.constants: set[int] = set()
        self.dead = False


def _root(a: np.ndarray) -> Any:
    """The object that owns ``a``'s memory."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


def _result(x: Any, copy: bool, avoid: set) -> Any:
    """An output as eager ``value_and_grad`` hands it back: a fresh array of its own."""
    if type(x) is np.ndarray:
        if copy or (x.base is not None and id(_root(x)) in avoid):
            return x.copy()
        return x
    return np.asarray(x)


def _constant_memory(program: Program) -> set[int]:
    """``id`` of the owner of every constant array's memory in ``program``."""
    out = set()
    for e in program.eqns:
        for a in list(e.inputs) + list(e.params.values()):
            v = a.value if isinstance(a, Lit) else a
            if type(v) is np.ndarray:
                out.add(id(_root(v)))
    return out


class GradientReplay:
    """The replays of one ``value_and_grad(f)`` (see the module text).

    ``eager(*args, **kwargs)`` computes the result eagerly; calling this
    object returns the same result, replayed when it may be.  ``replays``
    counts the calls that were replayed, ``recordings`` the programs made.
    """

    def __init__(self, f: Callable, eager: Callable) -> None:
        self.f = f
        self.eager = eager
        self.enabled = True
        self._calls = 0
        self._signatures: dict[Any, _Signature] = {}
        self.replays = 0
        self.recordings = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.enabled:
            return self.eager(*args, **kwargs)
        self._calls += 1
        if self._calls == 1:  # (a gradient asked for once costs nothing more)
            return self.eager(*args, **kwargs)
        out = self._replayed(args, kwargs)
        return self.eager(*args, **kwargs) if out is _NOT_REPLAYED else out

    def _stop(self) -> None:
        self.enabled = False
        self._signatures.clear()

    def _replayed(self, args: tuple, kwargs: dict) -> Any:
        if state.top_level != EAGER_LEVEL or state.tapes or is_anomaly_enabled():
            return _NOT_REPLAYED
        dyn: list = []
        try:
            key = (_signature(args, dyn), _signature(kwargs, dyn) if kwargs else None)
        except _NotReplayable:
            return _NOT_REPLAYED
        try:
            sig = self._signatures.get(key)
        except TypeError:  # (an unhashable static leaf)
            return _NOT_REPLAYED
        if sig is None:
            if len(self._signatures) >= MAX_SIGNATURES:
                self._stop()
                return _NOT_REPLAYED
            sig = self._signatures[key] = _Signature()
        if sig.dead:
            return _NOT_REPLAYED
        if sig.exe is not None:
            env = sig.env
            if env is not None and env.unchanged():
                return self._replay(sig, dyn)
            sig.exe = sig.env = None  # what f reads changed: eager now, recorded again later
            sig.calls = 0
        sig.calls += 1
        if sig.calls <= EAGER_CALLS:
            return _NOT_REPLAYED
        return self._record(sig, args, kwargs)

    def _replay(self, sig: _Signature, dyn: list) -> Any:
        assert sig.exe is not None
        try:
            out = sig.exe(*dyn)
        except GuardFailed:  # f reads values (control flow, index arrays) that differ now
            sig.exe = sig.env = None
            sig.calls = 0
            return _NOT_REPLAYED
        self.replays += 1
        results = []
        avoid = None
        handed: set[int] = set()  # (one array computed for two results is handed out twice)
        for o, fresh in zip(out, sig.fresh):
            if fresh and type(o) is np.ndarray and o.base is None and id(o) not in handed:
                handed.add(id(o))  # (the usual case)
                results.append(o)
                continue
            if avoid is None:
                avoid = sig.constants | {id(x) if x.base is None else id(_root(x))
                                         for x in dyn if type(x) is np.ndarray}
            r = _result(o, not fresh or id(o) in handed, avoid)
            handed.add(id(r))
            results.append(r)
        return tree_unflatten(sig.out_tree, results)

    def _record(self, sig: _Signature, args: tuple, kwargs: dict) -> Any:
        sig.recordings += 1
        if sig.recordings > MAX_RECORDINGS:
            sig.dead = True
            return _NOT_REPLAYED
        env = Environment.of(self.f, MAX_WATCHED_BYTES)
        if env is None:  # f reads what cannot be watched: never replayed
            self._stop()
            return _NOT_REPLAYED
        try:
            program, out_tree, values = record(self.eager, args, kwargs)
        except Exception:  # the recorder cannot follow f: f's own eager run decides
            sig.dead = True
            return _NOT_REPLAYED
        self.recordings += 1
        # (the recording computed this call's result: it is returned whatever is kept, copied,
        # as the program may hold the very same arrays as constants)
        result = tree_unflatten(out_tree, [_result(v, True, set()) for v in values])
        if len(program.eqns) > MAX_EQUATIONS:
            sig.dead = True
        elif env.unchanged():  # (else f changed what it reads while it ran)
            program = optimize(program)
            inputs = {v.id for v in program.inputs}
            sig.fresh = [isinstance(o, Var) and o.id not in inputs for o in program.outputs]
            sig.constants = _constant_memory(program)
            sig.out_tree = out_tree
            sig.exe = generate(program)
            sig.env = env
        else:
            sig.dead = True
        return result
