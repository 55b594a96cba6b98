"""Sub-programs: a Python function traced into a program that another operation replays.

A loop or a branch inside ``cr.compile`` or a static graph is ONE equation
whose parameters hold its body as a :class:`SubProgram`: the body function
is traced once (per input signature) into a :class:`~.ir.Program`, turned
into straight-line code by the executor, and replayed on raw arrays by the
loop's implementation -- so the outer program does not grow with the trip
count.

Closure conversion.  A body may use values it closes over: tracers of the
enclosing ``cr.compile`` trace, graph nodes, constants.  While the body is
traced, the staging levels of those values are routed to the sub-trace
(see :class:`SubTrace`), so every operation on them is recorded in the
sub-program and each such value becomes an extra *captured* input, found by
identity.  The loop primitive takes the captured values as explicit inputs
after its operands, so the enclosing program (and its derivatives) sees
them.  A body that closes over a value of another kind (a tensor being
differentiated, a batched value) raises :class:`NotStageable`, and the
caller runs the Python loop instead.

Replay.  :meth:`SubProgram.__call__` runs the compiled code for the raw
input values; a new input signature, or a guard that fails (the body read
a value concretely), traces the body again with the current values -- the
captured objects are found by identity again, so this also works when the
enclosing trace has finished.  :func:`replay` applies a program's
equations to values of any level (tensors being differentiated, graph
nodes), which makes a traced body differentiable again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.primitive import Box
from ..core.trace import FORWARD_LEVELS, LEVEL_NAMES, SPECIAL_LEVELS, STAGING
from .executor import generate
from .ir import GuardFailed, Lit, Program, Var
from .nodes import GRAPH_LEVEL, Node, _example
from .passes import optimize
from .trace import Trace, Tracer, _make_tracer

__all__ = ["SubProgram", "SubTrace", "NotStageable", "replay", "stageable_level", "concrete"]

#: How many traced variants (input signatures) one sub-program keeps.
MAX_VARIANTS = 8


class NotStageable(Exception):
    """The body uses a value that a sub-program cannot capture (run the Python loop instead)."""


def stageable_level(level: int) -> bool:
    """True for the staging levels whose values a sub-program captures: the static graph level
    and the levels of ``cr.compile`` traces."""
    if level == GRAPH_LEVEL:
        return True
    handler = STAGING.get(level)
    return isinstance(getattr(handler, "__self__", None), Trace)


def concrete(x: Any) -> Any:
    """A raw value standing for ``x``: a tracer's value, a graph node's value or an example of
    its shape, a box's data."""
    while isinstance(x, Box):
        if isinstance(x, Tracer):
            return x._value
        if isinstance(x, Node):
            return x._value if x._known() else _example(x, 0)
        if hasattr(x, "_bval"):  # a batched value: one example of it
            v = concrete(x._bval)
            return tuple(e[0] for e in v) if isinstance(v, tuple) else v[0]
        x = x.data
    return x


def _signature(values: tuple) -> tuple:
    key: list[tuple] = []
    for v in values:
        t = type(v)
        if t is np.ndarray or isinstance(v, np.generic):
            key.append((t, v.shape, v.dtype))
        elif t is tuple:
            key.append((t, len(v)))
        else:
            key.append((t, np.shape(v), np.result_type(v)))
    return tuple(key)


_NUMPY_VALUES = (np.ndarray, np.generic, bool, int, float, complex)


def _check_numpy(v: Any) -> None:
    """Programs run on NumPy values: other array libraries run the Python loop instead."""
    if not isinstance(v, _NUMPY_VALUES):
        raise NotStageable(f"a sub-program runs on NumPy arrays, not {type(v).__name__}")


class SubTrace(Trace):
    """A trace whose values of other staging levels become captured inputs (by identity).

    ``captured`` lists the objects captured so far; with ``values`` given (a
    replay with new values) the list is fixed and each captured object
    stands for the matching value; otherwise (the first trace) newly met
    objects are appended.
    """

    def __init__(self, captured: list, values: list | None) -> None:
        super().__init__()
        self.hijacked: set = set()
        self.captured = captured
        self.fixed = values is not None
        self.cap: dict[int, tuple[Var, Any]] = {}
        self.cap_vars: list[Var] = []
        for k, obj in enumerate(captured):
            v = values[k] if values is not None else concrete(obj)
            self._add(obj, v)

    def _add(self, obj: Any, value: Any) -> tuple[Var, Any]:
        _check_numpy(value)
        var = Var.like(value)
        self.cap[id(obj)] = (var, value)
        self.cap_vars.append(var)
        return var, value

    def ref(self, a: Any) -> tuple[Any, Any]:
        if isinstance(a, Box) and a._level != self.level:
            hit = self.cap.get(id(a))
            if hit is not None:
                return hit
            if stageable_level(a._level) or a._level in self.hijacked:
                if self.fixed:
                    raise NotStageable(
                        "the body of a loop or branch uses a value it did not use when it was "
                        "first traced; pass that value as an operand (part of the carry)")
                self.captured.append(a)
                return self._add(a, concrete(a))
            if a.requires_grad:
                raise NotStageable("the body closes over a value of another transform")
        return super().ref(a)

    def run(self, fun: Callable, values: list) -> Program:
        """Trace ``fun`` on ``values`` (raw arrays) with the captured levels routed here."""
        # every active level: operations on values the body closes over are recorded here
        levels = set(STAGING) | set(LEVEL_NAMES) | set(FORWARD_LEVELS)
        levels |= {o._level for o in self.captured}
        levels.discard(self.level)
        self.hijacked = levels
        saved = {lvl: (STAGING.get(lvl), lvl in SPECIAL_LEVELS) for lvl in levels}
        for lvl in levels:
            STAGING[lvl] = self.handle
            SPECIAL_LEVELS.add(lvl)
        try:
            ins = []
            for v in values:
                _check_numpy(v)
                var = Var.like(v)
                self.inputs.append(var)
                ins.append(_make_tracer(v, self.level, var, self))
            outs = fun(*ins)
            outputs = [self.output_of(o) for o in outs]
        finally:
            for lvl, (handler, special) in saved.items():
                if handler is None:
                    STAGING.pop(lvl, None)
                else:
                    STAGING[lvl] = handler
                if not special:
                    SPECIAL_LEVELS.discard(lvl)
            self.close()
        return Program(self.inputs + self.cap_vars, self.eqns, outputs)

    def output_of(self, x: Any) -> Any:
        if isinstance(x, Box) and x._level != self.level:
            var, _ = self.ref(x)  # a captured value returned as it is
            return var
        return self.output(x)


class SubProgram:
    """A body function traced into a program and replayed on raw arrays.

    ``fun`` takes and returns flat lists of values; the program's inputs
    are ``fun``'s arguments followed by the :attr:`captured` values.
    """

    def __init__(self, fun: Callable, name: str) -> None:
        self.fun = fun
        self.name = name
        self.captured: list = []
        self._variants: dict[tuple, Any] = {}
        self.program: Program | None = None

    def __repr__(self) -> str:
        return f"<{self.name} body: {len(self.program.eqns) if self.program else '?'} ops>"

    def first_trace(self, values: list) -> Program:
        """Trace with example values and collect the captured objects."""
        tr = SubTrace(self.captured, None)
        prog = tr.run(self.fun, values)
        self._store(prog, values + [tr.cap[id(o)][1] for o in self.captured])
        return prog

    def _store(self, prog: Program, values: list) -> Any:
        exe = generate(optimize(prog), buffers=False)
        if len(self._variants) >= MAX_VARIANTS:
            self._variants.pop(next(iter(self._variants)))
        self._variants[_signature(tuple(values))] = exe
        self.program = prog
        return exe

    def retrace(self, values: list) -> Any:
        n = len(values) - len(self.captured)
        tr = SubTrace(self.captured, values[n:])
        prog = tr.run(self.fun, values[:n])
        return self._store(prog, values)

    def stepper(self) -> Callable:
        """A caller for the steps of one loop.  Once two consecutive steps had the same input
        types, every later step has them too (same code, same types in), so the signature is
        no longer computed."""
        state: list = [None, None]  # the last signature and its code

        def step(*values: Any) -> list:
            exe = state[1]
            if state[0] is not True:
                sig = _signature(values)
                if sig == state[0]:
                    state[0] = True
                else:
                    state[0] = sig
                    exe = state[1] = self._variants.get(sig) or self.retrace(list(values))
            try:
                return exe(*values)
            except GuardFailed:
                state[0] = None
                return self.retrace(list(values))(*values)

        return step

    def __call__(self, *values: Any) -> list:
        exe = self._variants.get(_signature(values))
        if exe is None:
            exe = self.retrace(list(values))
        try:
            return exe(*values)
        except GuardFailed:
            return self.retrace(list(values))(*values)


def replay(program: Program | None, values: list) -> list:
    """Apply ``program``'s equations to ``values`` of any level (differentiable again)."""
    assert program is not None, "replay: the body was not traced into a sub-program"
    env: dict[int, Any] = {}
    for var, v in zip(program.inputs, values):
        env[var.id] = v
    for e in program.eqns:
        args = [env[a.id] if isinstance(a, Var) else a.value for a in e.inputs]
        if e.out is None:
            continue  # guards: the values are the ones the body saw when traced
        env[e.out.id] = e.prim(*args, **e.params)
    return [env[o.id] if isinstance(o, Var) else o.value for o in program.outputs]


_ = Lit  # (re-exported type of program constants)
