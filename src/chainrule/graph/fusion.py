"""Fusion of elementwise arithmetic into one compiled loop (optional: needs numba).

A run of cheap elementwise equations (``+ - * /``, negation, squaring,
comparisons and ``where``) over arrays of one shape becomes a single
equation whose implementation is a numba kernel: one pass over memory and
no temporaries instead of one NumPy call and one array per operation.
Transcendental functions (``exp``, ``tanh``...) stay NumPy calls: NumPy's
SIMD loops beat numba's scalar ``libm`` calls on them, so fusing them would
be slower (measured on W3).

Only exact rewrites are made: every fused operation is the same IEEE
operation in the same dtype as the NumPy call it replaces (literals are cast
to the arrays' dtype, as NumPy does with Python scalars; division by zero
gives ``inf``/``nan`` as in NumPy).  Without numba, :func:`fuse` returns the
program unchanged and the executor's ``out=`` buffers do the work.

>>> import numpy as np, chainrule.numpy as cnp
>>> from chainrule.graph.trace import trace
>>> prog, _, _ = trace(lambda x: (x * 2.0 + 1.0) * x, np.ones(10_000))
>>> [e.prim.name.split("#")[0] for e in fuse(prog).eqns] if available() else ["fused"]
['fused']
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..core.primitive import Primitive, registry
from .ir import Equation, Lit, Program, Var

__all__ = ["available", "fuse", "MIN_FUSE_SIZE"]

try:  # optional: the ``fast`` extra
    import numba
except Exception:  # absent or broken: fusion is off, the program runs as it is
    numba = None  # type: ignore[assignment]  # (fusion is off)

#: Only arrays with at least this many elements are worth a compiled loop.
MIN_FUSE_SIZE = 4096

_ARITH = {"add": "({} + {})", "subtract": "({} - {})", "multiply": "({} * {})",
          "divide": "({} / {})", "negative": "(-{})", "square": "({0} * {0})",
          "greater": "({} > {})", "greater_equal": "({} >= {})", "less": "({} < {})",
          "less_equal": "({} <= {})", "equal": "({} == {})", "not_equal": "({} != {})",
          "where": "({1} if {0} else {2})"}
_BOOL_OUT = frozenset({"greater", "greater_equal", "less", "less_equal", "equal", "not_equal"})
_counter = itertools.count()


def available() -> bool:
    """True when numba is installed (``pip install chainrule[fast]``)."""
    return numba is not None


def _template(e: Equation) -> str | None:
    """The scalar expression template of ``e`` when it can be fused, else ``None``."""
    name = e.prim.name
    if registry.get(name) is not e.prim:
        return None
    if name == "power":
        y = e.inputs[1]
        if isinstance(y, Lit) and y.pytype in (int, float) and y.value == 2:
            return "({0} * {0})"
        return None
    return _ARITH.get(name)


def _fusible(e: Equation, shape: tuple, dtype: Any) -> bool:
    """``e`` computes an array of ``shape`` from arrays of that shape (``dtype`` or bool)
    and Python numbers, and its result has ``dtype`` (or bool for a comparison)."""
    out = e.out
    if out is None or e.params or _template(e) is None or out.pytype is not None:
        return False
    if out.shape is None or tuple(out.shape) != shape:
        return False
    want = np.dtype(bool) if e.prim.name in _BOOL_OUT else dtype
    if out.dtype is None or np.dtype(out.dtype) != want:
        return False
    for a in e.inputs:
        if isinstance(a, Lit):
            if a.pytype not in (int, float, bool) or not np.isfinite(a.value):
                return False
        elif (a.shape is None or tuple(a.shape) != shape or a.pytype is not None
              or a.dtype is None or np.dtype(a.dtype) not in (dtype, np.dtype(bool))):
            return False
    return True


def fuse(program: Program, min_size: int = MIN_FUSE_SIZE) -> Program:
    """``program`` with each tree of fusible equations replaced by one fused equation."""
    if numba is None:
        return program
    eqns = program.eqns
    uses: dict[int, int] = {}
    for e in eqns:
        for a in e.inputs:
            if isinstance(a, Var):
                uses[a.id] = uses.get(a.id, 0) + 1
    for o in program.outputs:
        if isinstance(o, Var):
            uses[o.id] = uses.get(o.id, 0) + 2  # returned: must be materialised
    defined = {e.out.id: i for i, e in enumerate(eqns) if e.out is not None}
    kind: dict[int, tuple] = {}
    for i, e in enumerate(eqns):
        out: Any = e.out  # (then the new equation list)
        if out is None or out.shape is None or out.dtype is None:
            continue
        shape = tuple(out.shape)
        dtype = np.dtype(out.dtype)
        if dtype.kind == "b":  # a comparison: fused into the float computation that reads it
            for a in e.inputs:
                if isinstance(a, Var) and a.dtype is not None and np.dtype(a.dtype).kind == "f":
                    dtype = np.dtype(a.dtype)
                    break
        if dtype.kind == "f" and (out.size or 0) >= min_size and _fusible(e, shape, dtype):
            kind[i] = (shape, dtype)
    absorbed: set[int] = set()
    replace: dict[int, Equation] = {}
    for i in range(len(eqns) - 1, -1, -1):
        if i not in kind or i in absorbed or np.dtype(eqns[i].out.dtype) == bool:  # type: ignore[union-attr]  # (kind: equations with an output)
            continue
        members = _tree(i, eqns, kind, uses, defined, absorbed)
        if len(members) < 2:
            continue
        absorbed.update(members)
        replace[i] = _fused_equation(sorted(members), eqns, kind[i])
    if not replace:
        return program
    out = []
    for i, e in enumerate(eqns):
        if i in replace:
            out.append(replace[i])
        elif i not in absorbed:
            out.append(e)
    return Program(program.inputs, out, program.outputs)


def _tree(root: int, eqns: list, kind: dict, uses: dict, defined: dict,
          absorbed: set) -> set[int]:
    """The equations that only feed ``root`` (each read once) and can join its loop."""
    members = {root}
    stack = [root]
    while stack:
        e = eqns[stack.pop()]
        for a in e.inputs:
            if not isinstance(a, Var):
                continue
            j = defined.get(a.id)
            if (j is None or j in members or j in absorbed or kind.get(j) != kind[root]
                    or uses.get(a.id, 0) != 1):
                continue
            members.add(j)
            stack.append(j)
    return members


def _fused_equation(members: list[int], eqns: list, spec: tuple) -> Equation:
    shape, dtype = spec
    inside = {eqns[i].out.id for i in members}
    ext: list[Var] = []
    pos: dict[int, int] = {}
    exprs: dict[int, str] = {}
    scalar = "_T"
    for i in members:
        e = eqns[i]
        args = []
        for a in e.inputs:
            if isinstance(a, Lit):
                args.append(f"{scalar}({float(a.value)!r})" if a.pytype is not bool
                            else repr(bool(a.value)))
            elif a.id in inside:
                args.append(exprs[a.id])
            else:
                if a.id not in pos:
                    pos[a.id] = len(ext)
                    ext.append(a)
                args.append(f"a{pos[a.id]}[i]")
        exprs[e.out.id] = _template(e).format(*args)  # type: ignore[union-attr]  # fusible: has one
    root = eqns[members[-1]]
    params = ", ".join(f"a{k}" for k in range(len(ext)))
    source = (f"def kernel({params}{', ' if ext else ''}out):\n"
              f"    for i in range(out.size):\n"
              f"        out[i] = {exprs[root.out.id]}\n")
    ns: dict[str, Any] = {scalar: dtype.type}
    exec(compile(source, "<chainrule fused loop>", "exec"), ns)  # noqa: S102 (generated here)
    kernel = numba.njit(error_model="numpy", cache=False)(ns["kernel"])

    def run(*arrays: Any, out: Any = None) -> np.ndarray:
        # ``out`` (a reused buffer or a donated input) is written directly when the loop
        # may: C-contiguous, and no input overlaps it except itself (same index, read first)
        if out is not None and out.flags.c_contiguous and not any(
                a is not out and np.may_share_memory(a, out) for a in arrays):
            kernel(*[np.ravel(a) for a in arrays], out.reshape(-1))
            return out
        res = np.empty(shape, dtype)
        kernel(*[np.ravel(a) for a in arrays], res.reshape(-1))
        if out is None:
            return res
        out[...] = res
        return out

    run.__name__ = run.__qualname__ = "fused"
    run.source = source  # type: ignore[attr-defined]  # (for reading the generated loop)
    prim = Primitive(f"fused#{next(_counter)}", lambda xp, *a: run(*a), np_impl=run,
                     register=False)
    return Equation(prim, list(ext), {}, root.out)
