"""Fusion of elementwise arithmetic into one compiled loop (optional: needs numba).

Cheap elementwise equations (``+ - * /``, negation, squaring, comparisons,
``where``, ``maximum``/``minimum``) over arrays of one shape and dtype are
gathered into groups; each group becomes a single loop (a numba kernel): one
pass over memory, no temporaries, every value kept in a register between the
operations that read it.  Operands may be full arrays, rows broadcast along
the leading axes (a bias), single values or numbers.  A group may have
several results (each value read outside it is stored, into a buffer the
executor plans like any other), column sums over the leading axes (a bias
gradient: ``sum_to`` or ``reduce_sum``, added row by row as NumPy does) and
one full ``sum``, accumulated in NumPy's own pairwise order, so the total is
bit-for-bit the one ``np.sum`` gives.  Transcendental functions (``exp``,
``tanh``...) stay NumPy calls: NumPy's SIMD loops beat numba's scalar
``libm`` calls on them, so fusing them would be slower (measured on W3).

Only exact rewrites are made: every fused operation is the same IEEE
operation in the same dtype as the NumPy call it replaces (literals, and
constant arrays holding one repeated value, are cast to the arrays' dtype,
as NumPy does with Python scalars; division by zero gives ``inf``/``nan`` as
in NumPy).  Without numba, :func:`fuse` returns the program unchanged and
the executor's ``out=`` buffers do the work.

How groups form (one scan in program order): a fusible equation joins the
open group of its shape and dtype; a group is *sealed* as soon as an
equation outside it reads one of its values, and the next fusible equation
of that kind opens a new group.  A group runs where its last elementwise
member was, so everything it reads is computed before it and everything that
reads it comes after; a sum of one of its values joins it even when it is
sealed (the loop computes the sum early, which its readers cannot tell).

>>> import numpy as np, chainrule.numpy as cnp
>>> from chainrule.graph.trace import trace
>>> prog, _, _ = trace(lambda x: (x * 2.0 + 1.0) * x, np.ones(10_000))
>>> [e.prim.name.split("#")[0] for e in fuse(prog).eqns] if available() else ["fused"]
['fused']
"""

from __future__ import annotations

import itertools
import re
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
          "where": "({1} if {0} else {2})",
          # NumPy's: the first operand when it wins or is NaN, else the second (ties too)
          "maximum": "({0} if ({0} > {1} or {0} != {0}) else {1})",
          "minimum": "({0} if ({0} < {1} or {0} != {0}) else {1})"}
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


def _trailing(a_shape: tuple, shape: tuple) -> int | None:
    """How many trailing axes of ``shape`` an operand of ``a_shape`` spans (it is the same
    for every leading index: a *row* broadcast along the leading axes), else ``None``."""
    s = list(a_shape)
    while s and s[0] == 1:
        s.pop(0)
    k = len(s)
    if k > len(shape) or (k and tuple(s) != tuple(shape[len(shape) - k:])):
        return None
    return k


def _operand(a: Any, shape: tuple, dtype: Any) -> Any:
    """How operand ``a`` enters a loop over ``shape``: ``"lit"`` (a number), ``"scalar"``
    (one value), ``"full"`` (one value per element), ``("row", cols)``, or ``None``."""
    if isinstance(a, Lit):
        if a.pytype in (int, float, bool):
            return "lit" if np.isfinite(a.value) else None
        return "lit" if _uniform(a, shape, dtype) else None
    if (a.shape is None or a.pytype is not None or a.dtype is None
            or np.dtype(a.dtype) not in (dtype, np.dtype(bool))):
        return None
    if tuple(a.shape) == shape:
        return "full"
    k = _trailing(tuple(a.shape), shape)
    if k is None:
        return None
    if k == len(shape):
        return "full"
    if k == 0:
        return "scalar"
    return ("row", int(np.prod(shape[len(shape) - k:], dtype=np.int64)))


def _fusible(e: Equation, shape: tuple, dtype: Any) -> Any:
    """For ``e`` computing an array of ``shape`` elementwise from operands that fit a loop
    over ``shape`` (see :func:`_operand`), with result ``dtype`` (bool for a comparison):
    the row length its operands need (0: none); ``None`` when it cannot be fused."""
    out = e.out
    if out is None or e.params or _template(e) is None or out.pytype is not None:
        return None
    if out.shape is None or tuple(out.shape) != shape:
        return None
    want = np.dtype(bool) if e.prim.name in _BOOL_OUT else dtype
    if out.dtype is None or np.dtype(out.dtype) != want:
        return None
    cols = 0
    for a in e.inputs:
        kind = _operand(a, shape, dtype)
        if kind is None:
            return None
        if isinstance(kind, tuple):
            if cols and kind[1] != cols:
                return None
            cols = kind[1]
    if not any(_operand(a, shape, dtype) == "full" for a in e.inputs):
        return None  # (at least one operand runs over every element)
    return cols


def _sum_kind(e: Equation, shape: tuple, dtype: Any) -> Any:
    """For ``e`` summing an array of ``shape`` and ``dtype``: ``"total"`` (over every axis,
    to a scalar), ``("columns", cols)`` (over the leading axes, keeping ``cols`` trailing
    values: ``reduce_sum`` or ``sum_to``), else ``None``."""
    x, out = (e.inputs[0] if e.inputs else None), e.out
    if (not isinstance(x, Var) or x.shape is None or tuple(x.shape) != shape or x.dtype is None
            or np.dtype(x.dtype) != dtype or out is None or out.shape is None
            or out.pytype is not None or out.dtype is None or np.dtype(out.dtype) != dtype):
        return None
    nd = len(shape)
    if registry.get("reduce_sum") is e.prim and set(e.params) == {"axes", "keepdims"} and nd:
        axes = sorted(a % nd for a in e.params["axes"])
        lead = len(axes)
        if axes != list(range(lead)) or not lead:
            return None
        if lead == nd:
            return "total" if not e.params["keepdims"] else None
    elif registry.get("sum_to") is e.prim and set(e.params) == {"shape"} and nd:
        target = tuple(e.params["shape"])
        if len(target) != nd:
            return None
        lead = 0
        while lead < nd and target[lead] == 1 and shape[lead] != 1:
            lead += 1
        if lead == 0 or lead == nd or target[lead:] != shape[lead:]:
            return None
    else:
        return None
    return ("columns", int(np.prod(shape[lead:], dtype=np.int64)))


def _spec(e: Equation, min_size: int) -> tuple | None:
    """``((shape, float dtype), row length)`` of the loop ``e`` can join, or ``None``."""
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
    if dtype.kind != "f":
        return None
    cols = _fusible(e, shape, dtype)
    return None if cols is None else ((shape, dtype), cols)


class _Group:
    __slots__ = ("spec", "members", "anchor", "sealed", "total", "cols", "columns")

    def __init__(self, spec: tuple) -> None:
        self.spec = spec
        self.members: list[int] = []
        self.anchor = -1  # where the loop runs: its last elementwise member (sums come early)
        self.sealed = False  # read from outside: it takes no more members
        self.total: int | None = None  # a full sum (then the loop is flat: no rows)
        self.cols = 0  # the row length of its row operands and column sums (0: none yet)
        self.columns: list[int] = []  # column sums

    def takes(self, cols: int) -> bool:
        return not cols or ((not self.cols or self.cols == cols) and self.total is None)


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
        found = _spec(e, min_size)
        if found is not None:
            spec, cols = found
            own = open_.get(spec)
            if own is None or not own.takes(cols):
                own = open_[spec] = _Group(spec)
                groups.append(own)
            own.cols = own.cols or cols
        elif e.inputs and isinstance(e.inputs[0], Var) and e.inputs[0].id in group_of:
            g = group_of[e.inputs[0].id]
            kind = _sum_kind(e, *g.spec)  # (sealed or not: the loop computes it early)
            if kind == "total" and g.total is None and not g.cols:
                own, g.total = g, i
            elif isinstance(kind, tuple) and g.takes(kind[1]):
                own, g.cols = g, kind[1]
                g.columns.append(i)
        if own is not None:
            if found is not None:
                own.anchor = i
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
        replace[g.anchor] = _fused_equations(g, eqns, read_outside)
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
    size = int(np.prod(shape, dtype=np.int64))
    inside = {eqns[i].out.id for i in g.members}
    ext: list[Any] = []
    pos: dict[int, int] = {}
    loads: list[str] = []  # per element
    once: list[str] = []  # before the loop (scalar operands)
    body: list[str] = []
    local: dict[int, str] = {}
    for k, i in enumerate(g.members):
        e = eqns[i]
        if i == g.total or i in g.columns:
            continue
        args = []
        for a in e.inputs:
            if isinstance(a, Lit):
                v = a.value.flat[0] if isinstance(a.value, np.ndarray) else a.value
                args.append(repr(bool(v)) if isinstance(v, (bool, np.bool_))
                            else f"_T({float(v)!r})")
            elif a.id in inside:
                args.append(local[a.id])
            else:
                if a.id not in pos:
                    j = pos[a.id] = len(ext)
                    ext.append(a)
                    kind = _operand(a, shape, dtype)
                    if kind == "scalar":
                        once.append(f"x{j} = a{j}[0]")
                    else:
                        loads.append(f"x{j} = a{j}[{'c' if isinstance(kind, tuple) else 'i'}]")
                args.append(f"x{pos[a.id]}")
        local[e.out.id] = f"t{k}"
        body.append(f"t{k} = {_template(e).format(*args)}")  # type: ignore[union-attr]  # fusible
    # results: every value read outside the loop (the sum's operand only when it is) and
    # the column sums; without a total, the last one is the equation's own output (``out=``:
    # an elementwise one when there is one, as it may share memory with what it reads)
    results = [eqns[i].out for i in g.members
               if i != g.total and i not in g.columns and eqns[i].out.id in read_outside]
    columns = [eqns[i] for i in g.columns]
    total = eqns[g.total] if g.total is not None else None
    names = {v.id: f"o{k}" for k, v in enumerate(results)}
    names.update((c.out.id, f"s{k}") for k, c in enumerate(columns))
    stores = [f"o{k}[i] = {local[v.id]}" for k, v in enumerate(results)]
    sums = [f"s{k}[c] += {local[c.inputs[0].id]}" for k, c in enumerate(columns)]
    if results and total is None:
        results = results[:-1] + [c.out for c in columns] + results[-1:]
    else:
        results += [c.out for c in columns]
    params = [f"a{k}" for k in range(len(ext))] + [names[v.id] for v in results]
    if total is not None:
        summand = local[total.inputs[0].id]
        source = _summing_kernel(params, loads + body + stores if stores else [],
                                 _cone(loads + body, summand), summand)
        if once:
            source = source.replace("    sp = 0\n", "    sp = 0\n" + "".join(
                f"    {ln}\n" for ln in once), 1)
    else:
        cols = g.cols or size
        source = (f"def kernel({', '.join(params)}, _):\n"
                  + "".join(f"    {ln}\n" for ln in once)
                  + "".join(f"    s{k}[:] = _T(0.0)\n" for k in range(len(columns)))
                  + f"    for r in range({size // cols}):\n"
                  f"        for c in range({cols}):\n"
                  f"            i = r * {cols} + c\n"
                  + "".join(f"            {ln}\n" for ln in loads + body + stores + sums))
    # a plain elementwise loop (no rows, no sums) may visit its arrays in any common order
    any_order = total is None and not columns and all("[c]" not in ln for ln in loads)
    run = _runner(_jit(source, dtype), len(ext), size, results,
                  None if total is None else np.dtype(total.out.dtype),
                  total is None and tuple(results[-1].shape) == shape, any_order)
    run.source = source  # type: ignore[attr-defined]  # (for reading the generated loop)
    prim = Primitive(f"fused#{next(_counter)}", lambda xp, *a: run(*a), np_impl=run,
                     register=False)
    primary = total.out if total is not None else results.pop()
    allocs = [Equation(_alloc_p, [], {"shape": tuple(v.shape), "dtype": np.dtype(v.dtype)}, v)
              for v in results]
    return allocs + [Equation(prim, list(ext) + list(results), {}, primary)]


_kernels: dict[tuple, Any] = {}  # (source, dtype) -> the compiled kernel (numba is slow)


def _jit(source: str, dtype: Any) -> Any:
    """The numba kernel ``kernel`` defined by ``source`` (``_T``: the loop's scalar type)."""
    key = (source, np.dtype(dtype).str)
    kernel = _kernels.get(key)
    if kernel is None:
        ns: dict[str, Any] = {"_T": np.dtype(dtype).type, "np": np}
        exec(compile(source, "<chainrule fused loop>", "exec"), ns)  # noqa: S102 (generated)
        kernel = _kernels[key] = numba.njit(error_model="numpy", cache=False)(ns["kernel"])
        if len(_kernels) > 512:  # (a bound: forget the oldest)
            del _kernels[next(iter(_kernels))]
    return kernel


def _pairwise_plan(n: int) -> np.ndarray:
    """NumPy's pairwise summation of ``n`` values as a post-order program: rows
    ``(start, length)`` sum a block, ``(0, -1)`` adds the last two partial sums.  Runs of
    more than 128 are halved at a multiple of 8; a block is summed with 8 accumulators
    (element ``j`` into accumulator ``j % 8``), combined as ``((r0+r1)+(r2+r3))+((r4+r5)+
    (r6+r7))``, and its last ``length % 8`` elements are added one by one."""
    plan: list[tuple[int, int]] = []
    todo: list[Any] = [(0, n)]
    while todo:
        item = todo.pop()
        if item is None:
            plan.append((0, -1))
            continue
        start, m = item
        if m <= _PW_BLOCK:
            plan.append((start, m))
            continue
        half = m // 2
        half -= half % 8
        todo += [None, (start + half, m - half), (start, half)]
    return np.array(plan, dtype=np.int64).reshape(-1, 2)


def _cone(lines: list[str], name: str) -> list[str]:
    """The lines (``name = expression``) that ``name`` depends on, in order."""
    need = {name}
    kept = []
    for ln in reversed(lines):
        target, expr = ln.split(" = ", 1)
        if target in need:
            need.update(re.findall(r"\b[tx]\d+\b", expr))
            kept.append(ln)
    return kept[::-1]


def _summing_kernel(params: list[str], body: list[str], summand_body: list[str],
                    summand: str) -> str:
    """A loop that also returns the sum of ``summand`` in NumPy's pairwise order (see
    :func:`_pairwise_plan`), plus ``0.0`` as ``np.add.reduce`` starts from its identity.

    Each block runs ``body`` (which stores the results), then ``summand_body`` again into a
    scratch row in L1 cache (plain loops the compiler vectorises: one loop writing both
    would need more run-time overlap checks than it makes), then sums the row in order.
    Accumulators start at ``0.0`` rather than at their first value: that changes at most
    the sign of a zero partial sum, which the final ``0.0 +`` makes ``+0.0`` either way."""
    def loop(lines: list[str], last: str = "") -> str:
        if not lines and not last:
            return ""
        return ("        for q in range(m):\n"
                "            i = start + q\n"
                + "".join(f"            {ln}\n" for ln in lines)
                + (f"            {last}\n" if last else ""))
    acc = "".join(f"            r{j} += tmp[q + {j}]\n" for j in range(8))
    return (f"def kernel({', '.join(params)}, plan):\n"
            f"    stack = np.empty(64, _T)\n"
            f"    tmp = np.empty({_PW_BLOCK}, _T)\n"
            f"    sp = 0\n"
            f"    for k in range(plan.shape[0]):\n"
            f"        if plan[k, 1] < 0:\n"
            f"            sp -= 1\n"
            f"            stack[sp - 1] = stack[sp - 1] + stack[sp]\n"
            f"            continue\n"
            # (unsigned indices: no negative-index wrap-around in the loops, which vectorise)
            f"        start = np.uint64(plan[k, 0])\n"
            f"        m = np.uint64(plan[k, 1])\n"
            + loop(body)
            + loop(summand_body, f"tmp[q] = {summand}")
            + f"        r0 = r1 = r2 = r3 = r4 = r5 = r6 = r7 = _T(0.0)\n"
            f"        m8 = m - m % np.uint64(8)\n"
            f"        for q in range(0, m8, 8):\n"
            f"{acc}"
            f"        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))\n"
            f"        for q in range(m8, m):\n"
            f"            res += tmp[q]\n"
            f"        stack[sp] = res\n"
            f"        sp += 1\n"
            f"    return _T(0.0) + stack[0]\n")


def _axis_order(a: np.ndarray) -> tuple | None:
    """``a``'s axes longer than 1, from the largest stride to the smallest (``None`` when
    strides are not all positive and distinct: no single memory order to follow)."""
    st = [(a.strides[k], k) for k in range(a.ndim) if a.shape[k] > 1]
    st.sort(key=lambda t: -t[0])
    if any(s <= 0 for s, _ in st) or any(x[0] == y[0] for x, y in zip(st, st[1:])):
        return None
    return tuple(k for _, k in st)


def _common_layout(ins: tuple, extra: tuple, size: int) -> np.ndarray | None:
    """A full-size input whose memory order every full-size input and extra result shares,
    when that order is not C's (then the loop runs in memory order: ``ravel('K')``)."""
    template = None
    order = None
    for a in (*ins, *extra):
        if a.size != size:
            if a.size == 1:
                continue
            return None
        if a.flags.c_contiguous:  # (the common case: C order, or mixed layouts)
            return None
        o = _axis_order(a)
        if o is None or (order is not None and o != order):
            return None
        order = o
        if template is None and a.ndim > 1:
            template = a
    if template is None or order is None or order == tuple(sorted(order)):
        return None
    return template


def _runner(kernel: Any, n_in: int, size: int, results: list, total: Any,
            same_index: bool, any_order: bool = False) -> Any:
    """The fused equation's implementation, ``run(*inputs, *results, out=None)``: it returns
    the total (a ``total`` dtype scalar) when there is one, else the last result (written
    into ``out``, a reused buffer or a donated input, when the loop may).  With
    ``any_order`` (an elementwise loop) over arrays laid out alike but not in C order
    (a convolution's channels-last data, say), the loop follows their memory order and
    the result gets their layout."""

    def loop(ins: tuple, outs: list, n: Any) -> Any:
        # results are fresh arrays or buffers (C-contiguous); anything else gets a copy back
        flat = [r.reshape(-1) if r.flags.c_contiguous else np.empty(r.size, r.dtype)
                for r in outs]
        value = kernel(*[np.ravel(a) for a in ins], *flat, n)
        for r, f in zip(outs, flat):
            if not r.flags.c_contiguous:
                r[...] = f.reshape(r.shape)
        return value

    if total is not None:
        plan = _pairwise_plan(size)

        def run(*arrays: Any, out: Any = None) -> Any:
            return total.type(loop(arrays[:n_in], list(arrays[n_in:]), plan))
    else:
        shape, dtype = tuple(results[-1].shape), np.dtype(results[-1].dtype)

        def run(*arrays: Any, out: Any = None) -> Any:
            ins = arrays[:n_in]
            template = _common_layout(ins, arrays[n_in:], size) if any_order else None
            if template is not None:
                done = _in_memory_order(ins, arrays[n_in:], template, out)
                if done is not None:
                    return done
            # ``out`` is written directly when the loop may: C-contiguous, and no input
            # overlaps it except itself (elementwise results only: same index, read first)
            if out is None or not out.flags.c_contiguous or any(
                    (a is not out or not same_index) and np.may_share_memory(a, out)
                    for a in ins):
                res = np.empty(shape, dtype)
            else:
                res = out
            loop(ins, list(arrays[n_in:]) + [res], 0)
            if out is None or res is out:
                return res
            out[...] = res
            return out

    def _in_memory_order(ins: tuple, extra: tuple, template: np.ndarray, out: Any) -> Any:
        """The loop in memory order; ``None`` when an extra result is not dense (then the
        C-order loop runs, which copies it back)."""
        flats = [r.ravel(order="K") for r in extra]
        if any(not np.may_share_memory(f, r) for f, r in zip(flats, extra)):
            return None
        order = _axis_order(template)
        if out is None or _axis_order(out) != order or any(
                (a is not out or not same_index) and np.may_share_memory(a, out) for a in ins):
            res = np.empty_like(template, dtype=dtype)
        else:
            res = out
        flat = res.ravel(order="K")
        if not np.may_share_memory(flat, res):  # (out not dense in its order: a new one)
            res = np.empty_like(template, dtype=dtype)
            flat = res.ravel(order="K")
        kernel(*[a.ravel(order="K") for a in ins], *flats, flat, 0)
        if out is None or res is out:
            return res
        out[...] = res
        return out

    run.__name__ = run.__qualname__ = "fused"
    return run
