"""Fusion of elementwise arithmetic into one compiled loop (optional: needs numba).

Cheap elementwise equations (``+ - * /``, negation, squaring, comparisons
and ``where``) over arrays of one shape and dtype are gathered into groups;
each group becomes a single loop (a numba kernel): one pass over memory, no
temporaries, every value kept in a register between the operations that
read it.  A group may have several results (each value read outside it is
stored, into a buffer the executor plans like any other) and may end in a
full ``sum``, accumulated in the same pass in NumPy's own pairwise order, so
the total is bit-for-bit the one ``np.sum`` gives.  Transcendental functions
(``exp``, ``tanh``...) stay NumPy calls: NumPy's SIMD loops beat numba's
scalar ``libm`` calls on them, so fusing them would be slower (measured on W3).

Only exact rewrites are made: every fused operation is the same IEEE
operation in the same dtype as the NumPy call it replaces (literals, and
constant arrays holding one repeated value, are cast to the arrays' dtype,
as NumPy does with Python scalars; division by zero gives ``inf``/``nan`` as
in NumPy).  Without numba, :func:`fuse` returns the program unchanged and
the executor's ``out=`` buffers do the work.

How groups form (one scan in program order): a fusible equation joins the
open group of its shape and dtype; a group is *sealed* as soon as an
equation outside it reads one of its values, and the next fusible equation
of that kind opens a new group.  A group runs where its last member was, so
everything it reads is computed before it and everything that reads it
comes after.

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
# NumPy's pairwise summation (the float ``add.reduce`` loop): blocks of at most this many
# elements are summed with 8 accumulators; longer runs are halved (at multiples of 8).
_PW_BLOCK = 128
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


def _uniform(a: Lit, shape: tuple, dtype: Any) -> bool:
    """``a`` is a constant array of ``shape`` holding one value in ``dtype`` (or bool): as an
    operand it acts exactly like that value as a scalar of the same dtype."""
    v = a.value
    return (type(v) is np.ndarray and v.shape == shape and v.size > 0
            and all(s == 0 for s in v.strides)
            and v.dtype in (dtype, np.dtype(bool)) and bool(np.isfinite(v.flat[0])))


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
            if a.pytype in (int, float, bool):
                if not np.isfinite(a.value):
                    return False
            elif not _uniform(a, shape, dtype):
                return False
        elif (a.shape is None or tuple(a.shape) != shape or a.pytype is not None
              or a.dtype is None or np.dtype(a.dtype) not in (dtype, np.dtype(bool))):
            return False
    return True


def _full_sum(e: Equation, shape: tuple, dtype: Any) -> bool:
    """``e`` sums an array of ``shape`` and ``dtype`` over every axis to a scalar."""
    if registry.get("reduce_sum") is not e.prim or set(e.params) != {"axes", "keepdims"}:
        return False
    x, out = e.inputs[0], e.out
    if (not isinstance(x, Var) or x.shape is None or tuple(x.shape) != shape or x.dtype is None
            or np.dtype(x.dtype) != dtype or out is None or out.shape != ()
            or out.pytype is not None or out.dtype is None or np.dtype(out.dtype) != dtype):
        return False
    nd = len(shape)
    return (not e.params["keepdims"]
            and sorted(a % nd for a in e.params["axes"]) == list(range(nd)) if nd else False)


def _spec(e: Equation, min_size: int) -> tuple | None:
    """The (shape, float dtype) of the loop ``e`` can join, or ``None``."""
    out = e.out
    if out is None or out.shape is None or out.dtype is None or (out.size or 0) < min_size:
        return None
    shape = tuple(out.shape)
    dtype = np.dtype(out.dtype)
    if dtype.kind == "b":  # a comparison: fused into the float computation that reads it
        for a in e.inputs:
            if isinstance(a, Var) and a.dtype is not None and np.dtype(a.dtype).kind == "f":
                dtype = np.dtype(a.dtype)
                break
    if dtype.kind == "f" and _fusible(e, shape, dtype):
        return (shape, dtype)
    return None


class _Group:
    __slots__ = ("spec", "members", "sealed", "total")  # (sealed: read from outside)

    def __init__(self, spec: tuple) -> None:
        self.spec = spec
        self.members: list[int] = []
        self.sealed = False
        self.total: int | None = None  # the index of a full sum that ends the group


def fuse(program: Program, min_size: int = MIN_FUSE_SIZE) -> Program:
    """``program`` with each group of fusible equations replaced by one fused loop."""
    if numba is None:
        return program
    eqns = program.eqns
    group_of: dict[int, _Group] = {}  # var id -> the group computing it
    open_: dict[tuple, _Group] = {}
    groups: list[_Group] = []
    for i, e in enumerate(eqns):
        own = None
        spec = _spec(e, min_size)
        if spec is not None:
            own = open_.get(spec)
            if own is None:
                own = open_[spec] = _Group(spec)
                groups.append(own)
        elif e.inputs and isinstance(e.inputs[0], Var) and e.inputs[0].id in group_of:
            g = group_of[e.inputs[0].id]
            if open_.get(g.spec) is g and g.total is None and _full_sum(e, *g.spec):
                own = g
                g.total = i
        if own is not None:
            own.members.append(i)
            group_of[e.out.id] = own  # type: ignore[union-attr]  # (members have an output)
        for a in e.inputs:  # read from outside: that group must be complete by now
            if isinstance(a, Var) and a.id in group_of and group_of[a.id] is not own:
                g = group_of[a.id]
                g.sealed = True
                if open_.get(g.spec) is g:
                    del open_[g.spec]
    read_outside: set[int] = {o.id for o in program.outputs if isinstance(o, Var)}
    for e in eqns:
        for a in e.inputs:
            if isinstance(a, Var) and a.id in group_of and group_of[a.id] is not group_of.get(
                    e.out.id if e.out is not None else -1):
                read_outside.add(a.id)
    replace: dict[int, list[Equation]] = {}
    absorbed: set[int] = set()
    for g in groups:
        if len(g.members) < 2:
            continue
        absorbed.update(g.members)
        replace[g.members[-1]] = _fused_equations(g, eqns, read_outside)
    if not replace:
        return program
    out: list[Equation] = []
    for i, e in enumerate(eqns):
        if i in replace:
            out += replace[i]
        elif i not in absorbed:
            out.append(e)
    return Program(program.inputs, out, program.outputs)


def _alloc_np(shape: tuple, dtype: Any) -> np.ndarray:
    return np.empty(shape, dtype)


_alloc_np.__name__ = "fused_alloc"  # (the executor hands such arrays a reusable buffer)
_alloc_p = Primitive("graph.fused_alloc", lambda xp, shape, dtype: xp.empty(shape, dtype=dtype),
                     _alloc_np, differentiable=False, register=False)


def _fused_equations(g: _Group, eqns: list, read_outside: set) -> list[Equation]:
    """The fused loop of group ``g``: arrays for its extra results, then the loop itself."""
    shape, dtype = g.spec
    inside = {eqns[i].out.id for i in g.members}
    ext: list[Any] = []
    pos: dict[int, int] = {}
    body: list[str] = []
    local: dict[int, str] = {}
    scalar = "_T"
    for k, i in enumerate(g.members):
        e = eqns[i]
        if i == g.total:
            continue
        args = []
        for a in e.inputs:
            if isinstance(a, Lit):
                if a.pytype is bool:
                    args.append(repr(bool(a.value)))
                else:
                    v = a.value.flat[0] if isinstance(a.value, np.ndarray) else a.value
                    args.append(repr(bool(v)) if isinstance(v, (bool, np.bool_))
                                else f"{scalar}({float(v)!r})")
            elif a.id in inside:
                args.append(local[a.id])
            else:
                if a.id not in pos:
                    pos[a.id] = len(ext)
                    ext.append(a)
                    body.insert(0, f"x{pos[a.id]} = a{pos[a.id]}[i]")
                args.append(f"x{pos[a.id]}")
        local[e.out.id] = f"t{k}"
        body.append(f"t{k} = {_template(e).format(*args)}")  # type: ignore[union-attr]  # fusible
    # results: every value read outside the loop (the sum's operand only when it is)
    results = [eqns[i].out for i in g.members if i != g.total and eqns[i].out.id in read_outside]
    total = eqns[g.total] if g.total is not None else None
    primary = total.out if total is not None else results.pop()
    stores = [f"o{k}[i] = {local[v.id]}" for k, v in enumerate(results)]
    if total is None:
        stores.append(f"out[i] = {local[primary.id]}")
    ins = [f"a{k}" for k in range(len(ext))] + [f"o{k}" for k in range(len(results))]
    if total is None:
        ins.append("out")
        source = (f"def kernel({', '.join(ins)}):\n"
                  f"    for i in range(out.size):\n"
                  + "".join(f"        {ln}\n" for ln in body + stores))
        ns = _namespace(dtype)
        exec(compile(source, "<chainrule fused loop>", "exec"), ns)  # noqa: S102 (generated here)
        kernel = numba.njit(error_model="numpy", cache=False)(ns["kernel"])
    else:
        kernel, source = _summing_kernel(ins, body + stores, local[total.inputs[0].id], dtype)
    run = _runner(kernel, shape, np.dtype(primary.dtype), len(ext), total is not None)
    run.source = source  # type: ignore[attr-defined]  # (for reading the generated loop)
    prim = Primitive(f"fused#{next(_counter)}", lambda xp, *a: run(*a), np_impl=run,
                     register=False)
    allocs = [Equation(_alloc_p, [], {"shape": tuple(v.shape), "dtype": np.dtype(v.dtype)}, v)
              for v in results]
    return allocs + [Equation(prim, list(ext) + list(results), {}, primary)]


def _namespace(dtype: Any) -> dict[str, Any]:
    return {"_T": dtype.type}


def _summing_kernel(ins: list[str], body: list[str], summand: str, dtype: Any) -> tuple:
    """A loop that also returns the sum of ``summand`` in NumPy's pairwise order: blocks of
    at most 128 with 8 accumulators, halved at multiples of 8 above that; ``0.0 + total``
    as ``np.add.reduce`` starts from its identity."""
    params = ", ".join(ins)
    elem = ("def elem(" + params + ", i):\n" + "".join(f"    {ln}\n" for ln in body)
            + f"    return {summand}\n")
    call = "elem(" + params + ", {})"
    acc = "\n".join(f"        r{j} = {call.format(f'start + {j}')}" for j in range(8))
    step = "\n".join(f"            r{j} += {call.format(f'i + {j}')}" for j in range(8))
    pw = (f"def pw({params}, start, n):\n"
          f"    if n < 8:\n"
          f"        res = _T(0.0)\n"
          f"        for i in range(start, start + n):\n"
          f"            res += {call.format('i')}\n"
          f"        return res\n"
          f"    if n <= {_PW_BLOCK}:\n"
          f"{acc}\n"
          f"        end = start + n - n % 8\n"
          f"        i = start + 8\n"
          f"        while i < end:\n"
          f"{step}\n"
          f"            i += 8\n"
          f"        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))\n"
          f"        for i in range(end, start + n):\n"
          f"            res += {call.format('i')}\n"
          f"        return res\n"
          f"    n2 = n // 2\n"
          f"    n2 -= n2 % 8\n"
          f"    return pw({params}, start, n2) + pw({params}, start + n2, n - n2)\n")
    kernel = (f"def kernel({params}, n):\n"
              f"    return _T(0.0) + pw({params}, 0, n)\n")
    source = elem + pw + kernel
    ns = _namespace(dtype)
    exec(compile(source, "<chainrule fused loop>", "exec"), ns)  # noqa: S102 (generated here)
    jit = numba.njit(error_model="numpy", cache=False)
    for name in ("elem", "pw", "kernel"):
        ns[name] = jit(ns[name])
    return ns["kernel"], source


def _runner(kernel: Any, shape: tuple, dtype: Any, n_in: int, summing: bool) -> Any:
    """The fused equation's implementation: ``run(*inputs, *results, out=None)``, returning
    the sum (a ``dtype`` scalar) or the last result (``out``, or a new ``dtype`` array)."""
    size = int(np.prod(shape, dtype=np.int64))

    def loop(arrays: tuple, last: Any) -> Any:
        ins = [np.ravel(a) for a in arrays[:n_in]]
        results = arrays[n_in:]
        # results are fresh arrays or buffers (C-contiguous); anything else gets a copy back
        flat = [r.reshape(-1) if r.flags.c_contiguous else np.empty(size, r.dtype)
                for r in results]
        value = kernel(*ins, *flat, last)
        for r, f in zip(results, flat):
            if not r.flags.c_contiguous:
                r[...] = f.reshape(shape)
        return value

    if summing:
        def run(*arrays: Any, out: Any = None) -> Any:
            return dtype.type(loop(arrays, size))
    else:
        def run(*arrays: Any, out: Any = None) -> Any:
            # ``out`` (a reused buffer or a donated input) is written directly when the loop
            # may: C-contiguous, and no input overlaps it except itself (same index, read first)
            if out is not None and out.flags.c_contiguous and not any(
                    a is not out and np.may_share_memory(a, out) for a in arrays[:n_in]):
                loop(arrays, out.reshape(-1))
                return out
            res = np.empty(shape, dtype)
            loop(arrays, res.reshape(-1))
            if out is None:
                return res
            out[...] = res
            return out

    run.__name__ = run.__qualname__ = "fused"
    return run
