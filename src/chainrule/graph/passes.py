"""Program passes: dead-code elimination, common sub-expressions, constant folding and
exact algebraic simplifications.

Every pass takes a :class:`~chainrule.graph.ir.Program` and returns a new one
(the input is not modified).  The simplifications only remove work whose
result is *exactly* the input value, with the same shape and dtype:

* ``x * 1``, ``1 * x``, ``x / 1``, ``x + 0``, ``0 + x``, ``x - 0`` (the ones and
  zeros are constants, scalars or arrays; the output must not be broadcast
  or promoted beyond ``x``; ``x + 0`` turns ``-0.0`` into ``+0.0``, which
  compares equal);
* ``transpose(transpose(x))`` (composed, removed when the identity),
  ``reshape`` / ``broadcast_to`` / ``sum_to`` / ``astype`` to ``x``'s own
  shape or dtype, ``reshape(reshape(x))``, ``-(-x)`` and ``+x``;
* an elementwise operation (``+ - * /``, comparisons, ``maximum``,
  ``where``...) reads ``x`` itself instead of ``broadcast_to(x)`` when its own
  broadcasting gives the same result shape (the same elements meet);
* a guard that repeats an earlier one (same value, same check) is dropped.

:func:`optimize` runs them all until nothing changes.  Buffer reuse is
planned by the executor (:func:`chainrule.graph.executor.plan_buffers`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.primitive import registry
from .ir import Equation, Lit, Program, Var, guard_p

__all__ = ["dce", "cse", "fold_constants", "simplify", "dedupe_guards", "optimize"]

# Registered primitives that apply a NumPy ufunc (or ``where``) elementwise, with NumPy's
# broadcasting of their operands.
_ELEMENTWISE = frozenset({
    "add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "where",
    "greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
})


def _subst(x: Any, env: dict[int, Any]) -> Any:
    if isinstance(x, Var):
        return env.get(x.id, x)
    return x


def _rewrite(program: Program, eqns: list[Equation], env: dict[int, Any]) -> Program:
    """A program with ``eqns`` and every use of a replaced variable redirected (``env``)."""
    out = []
    for e in eqns:
        out.append(Equation(e.prim, [_subst(a, env) for a in e.inputs], e.params, e.out))
    return Program(program.inputs, out, [_subst(o, env) for o in program.outputs])


# --- dead-code elimination -----------------------------------------------------------------------

def dce(program: Program) -> Program:
    """Remove equations whose results are not needed by the outputs (guards are kept)."""
    live = {o.id for o in program.outputs if isinstance(o, Var)}
    kept = []
    for e in reversed(program.eqns):
        if e.out is None or e.out.id in live:
            kept.append(e)
            for a in e.inputs:
                if isinstance(a, Var):
                    live.add(a.id)
    kept.reverse()
    return Program(program.inputs, kept, program.outputs)


# --- common sub-expression elimination -----------------------------------------------------------

def _freeze(v: Any) -> Any:
    """A hashable key for a parameter or literal; identity for arrays and other objects."""
    t = type(v)
    if t in (bool, int, float, complex, str) or v is None:
        return (t, v)
    if isinstance(v, np.generic):
        return (t, v.item())
    if t is tuple or t is list:
        return (t, tuple(_freeze(x) for x in v))
    if t is slice:
        return (t, _freeze(v.start), _freeze(v.stop), _freeze(v.step))
    if isinstance(v, np.dtype) or (isinstance(v, type)):
        return ("type", v)
    if isinstance(v, np.ndarray):
        return ("id", id(v))
    try:
        hash(v)
    except TypeError:
        return ("id", id(v))
    return ("obj", t, v)


def _key(e: Equation) -> Any:
    ins = tuple(("v", a.id) if isinstance(a, Var) else ("l", _freeze(a.value)) for a in e.inputs)
    params = tuple(sorted((k, _freeze(v)) for k, v in e.params.items()))
    return (id(e.prim), ins, params)


def cse(program: Program) -> Program:
    """Merge equations that apply the same primitive to the same inputs and parameters."""
    seen: dict[Any, Var] = {}
    env: dict[int, Any] = {}
    kept = []
    for e in program.eqns:
        e = Equation(e.prim, [_subst(a, env) for a in e.inputs], e.params, e.out)
        if e.out is None:
            kept.append(e)
            continue
        try:
            k = _key(e)
            hash(k)
        except TypeError:
            kept.append(e)
            continue
        prev = seen.get(k)
        if prev is not None:
            env[e.out.id] = prev
            continue
        seen[k] = e.out
        kept.append(e)
    return Program(program.inputs, kept, [_subst(o, env) for o in program.outputs])


# --- constant folding ----------------------------------------------------------------------------

def fold_constants(program: Program) -> Program:
    """Evaluate equations whose inputs are all constants; their results become constants."""
    env: dict[int, Any] = {}
    kept = []
    for e in program.eqns:
        ins = [_subst(a, env) for a in e.inputs]
        if ins and all(isinstance(a, Lit) for a in ins):
            value = e.prim(*[a.value for a in ins], **e.params)
            if e.out is not None:
                env[e.out.id] = Lit(value)
            continue  # a guard on a constant held when it was traced
        kept.append(Equation(e.prim, ins, e.params, e.out))
    return Program(program.inputs, kept, [_subst(o, env) for o in program.outputs])


# --- algebraic simplification --------------------------------------------------------------------

def _all_equal(lit: Any, value: float) -> bool:
    if not isinstance(lit, Lit):
        return False
    v = lit.value
    if type(v) in (bool, int, float, complex) or isinstance(v, np.generic):
        return v == value and not isinstance(v, (bool, np.bool_))
    if isinstance(v, np.ndarray) and v.dtype.kind in "iufc":
        if v.size and all(s == 0 for s in v.strides):
            return bool(v.flat[0] == value)
        return bool(np.all(v == value))
    return False


def _same_type(x: Any, out: Var) -> bool:
    """``x`` can stand for ``out``: same shape, dtype and Python-scalar-ness."""
    return (x.shape is not None and tuple(x.shape) == tuple(out.shape)  # type: ignore[arg-type]  # (outputs with a shape)
            and np.dtype(x.dtype) == np.dtype(out.dtype) and x.pytype == out.pytype)


def _identity_operand(e: Equation) -> Any:
    """The input that ``e`` returns unchanged, or ``None``."""
    name = e.prim.name
    ins = e.inputs
    out = e.out
    if out is None or out.shape is None:
        return None
    if name == "multiply" and len(ins) == 2:
        for x, c in ((ins[0], ins[1]), (ins[1], ins[0])):
            if _all_equal(c, 1) and _same_type(x, out):
                return x
    elif name == "add" and len(ins) == 2:
        for x, c in ((ins[0], ins[1]), (ins[1], ins[0])):
            if _all_equal(c, 0) and _same_type(x, out):
                return x
    elif name == "subtract" and len(ins) == 2:
        if _all_equal(ins[1], 0) and _same_type(ins[0], out):
            return ins[0]
    elif name == "divide" and len(ins) == 2:
        if _all_equal(ins[1], 1) and _same_type(ins[0], out):
            return ins[0]
    elif (name in ("reshape", "broadcast_to", "sum_to", "astype", "positive",
                   "graph.stop_gradient") and len(ins) == 1):
        if _same_type(ins[0], out):
            return ins[0]
    return None


def simplify(program: Program) -> Program:
    """Remove operations that return their input exactly (see the module docstring)."""
    env: dict[int, Any] = {}
    producer: dict[int, Equation] = {}
    kept = []
    for e in program.eqns:
        e = Equation(e.prim, [_subst(a, env) for a in e.inputs], e.params, e.out)
        same = _identity_operand(e)
        if same is not None:
            assert e.out is not None  # (an operation with no output returns no input)
            env[e.out.id] = same
            continue
        name = e.prim.name
        src = producer.get(e.inputs[0].id) if e.inputs and isinstance(e.inputs[0], Var) else None
        if src is not None and e.out is not None:
            if (name == "negative" and src.prim.name == "negative"
                    and _same_type(src.inputs[0], e.out)):
                env[e.out.id] = src.inputs[0]
                continue
            if name == "transpose" and src.prim.name == "transpose":
                p1, p2 = tuple(src.params["axes"]), tuple(e.params["axes"])
                if len(p1) == len(p2):
                    composed = tuple(p1[i] for i in p2)
                    if composed == tuple(range(len(composed))) and _same_type(src.inputs[0], e.out):
                        env[e.out.id] = src.inputs[0]
                        continue
                    e = Equation(e.prim, [src.inputs[0]], {"axes": composed}, e.out)
            elif name == "reshape" and src.prim.name == "reshape":
                e = Equation(e.prim, [src.inputs[0]], e.params, e.out)
                assert e.out is not None  # (the same output, checked above)
                if _same_type(src.inputs[0], e.out):
                    env[e.out.id] = src.inputs[0]
                    continue
        if e.out is not None:
            producer[e.out.id] = e
        kept.append(e)
    return Program(program.inputs, kept, [_subst(o, env) for o in program.outputs])


def _unbroadcast_operands(e: Equation, producer: dict[int, Equation]) -> Equation:
    """``e`` reading the sources of its ``broadcast_to`` operands where that changes nothing."""
    out = e.out
    if (out is None or out.shape is None or e.params or e.prim.name not in _ELEMENTWISE
            or registry.get(e.prim.name) is not e.prim):
        return e
    ins = list(e.inputs)
    changed = False
    for k, a in enumerate(ins):
        src = producer.get(a.id) if isinstance(a, Var) else None
        if src is None or src.prim.name != "broadcast_to" or len(src.inputs) != 1:
            continue
        x = src.inputs[0]
        if x.shape is None or x.pytype is not None or np.dtype(x.dtype) != np.dtype(a.dtype):
            continue
        trial = ins[:k] + [x] + ins[k + 1:]
        if any(b.shape is None for b in trial):
            continue
        try:
            shape = np.broadcast_shapes(*(tuple(b.shape) for b in trial))
        except ValueError:
            continue
        if shape == tuple(out.shape):
            ins = trial
            changed = True
    return Equation(e.prim, ins, e.params, out) if changed else e


def drop_broadcasts(program: Program) -> Program:
    """Elementwise operations read ``x`` rather than ``broadcast_to(x)`` where their own
    broadcasting makes the same result (the unused broadcasts are then dead code)."""
    producer: dict[int, Equation] = {}
    kept = []
    for e in program.eqns:
        e = _unbroadcast_operands(e, producer)
        if e.out is not None and registry.get(e.prim.name) is e.prim:
            producer[e.out.id] = e
        kept.append(e)
    return Program(program.inputs, kept, program.outputs)


def _guard_key(e: Equation) -> Any:
    """What a guard checks, as a hashable key (``None`` when it cannot be compared)."""
    x = e.inputs[0] if len(e.inputs) == 1 else None
    if not isinstance(x, Var):
        return None
    kind, expected = e.params.get("kind"), e.params.get("expected")
    if isinstance(expected, np.ndarray):
        return (x.id, kind, "array", expected.shape, expected.dtype.str, expected.tobytes())
    key = (x.id, kind, _freeze(expected))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def dedupe_guards(program: Program) -> Program:
    """Drop a guard that checks the same value against the same expectation as an earlier
    one (it can only pass: the earlier one raised otherwise)."""
    seen: set = set()
    kept = []
    for e in program.eqns:
        if e.out is None and e.prim is guard_p and set(e.params) == {"kind", "expected"}:
            key = _guard_key(e)
            if key is not None and key in seen:
                continue
            if key is not None:
                seen.add(key)
        kept.append(e)
    return Program(program.inputs, kept, program.outputs)


# --- everything ----------------------------------------------------------------------------------

def optimize(program: Program, max_rounds: int = 4) -> Program:
    """Fold constants, simplify, merge common sub-expressions and drop dead code, to a fixpoint
    (then drop repeated guards)."""
    for _ in range(max_rounds):
        before = len(program.eqns)
        program = dce(cse(drop_broadcasts(simplify(fold_constants(program)))))
        if len(program.eqns) == before:
            break
    return dedupe_guards(program)
