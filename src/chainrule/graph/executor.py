"""The executor: a program becomes one straight-line Python function, ``exec``'d once.

Each equation becomes one line that calls the primitive's ``np_impl`` on raw
arrays (no Tensor objects, no tape, no dispatch).  A few primitives are
written inline where that is exactly what their ``np_impl`` does
(``a + b``, ``a * b``, ``-a``...: NumPy scalars' operators are several
times faster than ufunc calls) and ufuncs are called directly.

A few primitives whose np_impl wraps one NumPy call in Python layers are
called directly (same operations, same results): float ``sum``/``max``/``min``
reductions as ``ufunc.reduce``, ``sum_to`` as ``np.add.reduce``, and ``getitem``
by integer arrays on every axis as ``take`` of flat positions.

Buffer reuse: the result of an elementwise ufunc (and of a 2-D ``matmul``)
with at least ``min_buffer_size`` elements is written with ``out=`` into a
buffer that is kept between calls (one set per thread), and a buffer whose
value is dead is handed to a later operation of the same shape and dtype,
possibly the one that reads it (ufuncs handle overlapping memory).  Values
that may be returned to the caller, and everything that may be a view of
them, never live in a buffer.  The first call runs the program without
buffers and notes each candidate result's memory layout (a convolution's
channels-last memory, say); buffers then get the layout of the values they
hold, so an elementwise op after a convolution does not transpose its data
into channels-first memory that the next convolution transposes back.
Large dead temporaries are ``del``'d as soon as their last use has run, so
peak memory stays low.

>>> import numpy as np, chainrule.numpy as cnp
>>> from chainrule.graph.trace import trace
>>> prog, _, _ = trace(lambda x: cnp.sin(x) * 2.0 + 1.0, np.ones(3))
>>> run = generate(prog)
>>> print(run.source.strip())
def run(v0):
    v1 = _sin(v0)
    v2 = v1 * 2.0
    v3 = v2 + 1.0
    return [v3]
"""

from __future__ import annotations

import math
import operator
import threading
from typing import Any

import numpy as np

from ..core.primitive import Primitive, registry
from .ir import GuardFailed, Lit, Program, Var
from .trace import watched_value

__all__ = ["generate", "plan_buffers", "plan_donations", "Executable", "DEFAULT_MIN_BUFFER_SIZE"]

#: Results with at least this many elements are computed into reused buffers.
DEFAULT_MIN_BUFFER_SIZE = 4096
#: Dead temporaries with at least this many elements are deleted right after their last use.
_MIN_DEL_SIZE = 4096

# Primitives whose np_impl is Python's operator on NumPy values (``_fast``), and the
# ufunc that computes the same thing into an ``out=`` buffer.
_BINARY_OPS = {
    "add": ("+", np.add, operator.add), "subtract": ("-", np.subtract, operator.sub),
    "multiply": ("*", np.multiply, operator.mul), "divide": ("/", np.divide, operator.truediv),
    "power": ("**", np.power, operator.pow),
}
_UNARY_OPS = {"negative": ("-", np.negative, operator.neg)}
_OPS = {**_BINARY_OPS, **_UNARY_OPS}
# ndarray ** scalar takes shortcuts for these exponents (square, sqrt, reciprocal...):
# only 2 is rewritten (to np.square, which is what the shortcut calls).
_POW_SHORTCUTS = (-1, 0, 0.5, 1)
# (one object each: ``bind`` names functions by identity, and ``np.add.reduce`` is new each time)
_ADD_REDUCE = np.add.reduce
# Float reductions whose np_impl is ``np.sum``/``np.max``/``np.min(x, axis, keepdims)``: on an
# array that is this ufunc's ``reduce`` (without the Python layers around it).
_REDUCERS = {"reduce_sum": ("add_reduce", _ADD_REDUCE),
             "reduce_max": ("maximum_reduce", np.maximum.reduce),
             "reduce_min": ("minimum_reduce", np.minimum.reduce)}
# Primitives whose np_impl always returns a new array (never a view of an input).
_FRESH = frozenset({
    "reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "matmul", "linear",
    "linear_nobias", "softmax", "log_softmax", "sigmoid", "relu", "softplus", "log_sigmoid",
    "erf", "concatenate", "cumsum", "cumprod", "where", "clip", "astype", "scatter_add",
    "conv", "conv_input_grad", "conv_weight_grad", "max_pool2d", "max_pool2d_grad",
    "select_grad",
})


def _is_operator_impl(prim: Primitive) -> bool:
    """True when ``prim``'s np_impl is Python's operator on NumPy values (``_fast``)."""
    name = prim.name
    if registry.get(name) is not prim:
        return False
    if name in _UNARY_OPS:
        return prim.np_impl is _UNARY_OPS[name][2]
    if name not in _BINARY_OPS:
        return False
    cells = getattr(prim.np_impl, "__closure__", None) or ()
    contents = {id(c.cell_contents) for c in cells}
    return id(_BINARY_OPS[name][1]) in contents and id(_BINARY_OPS[name][2]) in contents


def _ufunc_of(prim: Primitive) -> Any:
    """The ufunc that ``prim``'s np_impl is (``None`` when it is something else)."""
    if registry.get(prim.name) is not prim:
        return None
    if prim.name in _BINARY_OPS or prim.name in _UNARY_OPS:
        return _OPS[prim.name][1] if _is_operator_impl(prim) else None
    impl = prim.np_impl
    return impl if isinstance(impl, np.ufunc) else None


def _is_array_var(x: Any) -> bool:
    return isinstance(x, Var) and x.shape is not None and x.pytype is None


def _linear_into(x: Any, w: Any, b: Any, out: Any) -> Any:
    """``linear``'s np_impl (``x @ w.T``, then ``+= b``) into ``out``."""
    np.matmul(x, w.T, out=out)
    if b is not None:
        out += b
    return out


def _buffer_op(e: Any, keep: bool = False) -> Any:
    """How to compute equation ``e`` into a buffer: ``emit(args, buf, bind) -> source``,
    or ``None`` when it cannot be (the result is then left to NumPy to allocate).
    ``keep``: a convolution keeps its im2col matrix for a weight gradient (see
    :func:`_kept_convolutions`)."""
    out = e.out
    if out is None or not _is_array_var(out) or out.dtype is None or out.dtype == object:
        return None
    for a in e.inputs:
        if a.shape is None:
            return None
    name = e.prim.name
    own = registry.get(name) is e.prim
    if own and name == "matmul":
        if all(len(a.shape) == 2 for a in e.inputs):
            return lambda args, buf, bind: (f"{bind(np.matmul, 'matmul')}({args[0]}, "
                                            f"{args[1]}, out={buf})")
        return None
    if own and name in ("linear", "linear_nobias") and e.inputs[0].pytype is None:
        x, w = e.inputs[0], e.inputs[1]
        b = e.inputs[2] if len(e.inputs) > 2 else None
        if len(x.shape) == 2 and len(w.shape) == 2 and (b is None or len(b.shape) <= 1):
            def emit_linear(args, buf, bind):
                bias = args[2] if len(args) > 2 else "None"
                return f"{bind(_linear_into, 'linear_into')}({args[0]}, {args[1]}, {bias}, {buf})"
            return emit_linear
        return None
    if own and name == "relu" and out.dtype.kind in "f":
        return lambda args, buf, bind: f"{bind(np.maximum, 'maximum')}({args[0]}, 0, out={buf})"
    if getattr(e.prim.np_impl, "__name__", "") == "fused_alloc":  # a fused loop's result
        return lambda args, buf, bind: buf
    out_impl = getattr(e.prim, "np_out_impl", None)
    if out_impl is not None and own:  # the primitive's own "compute into out=" kernel
        params = {**e.params, "keep": True} if keep else e.params
        return lambda args, buf, bind: (f"{bind(out_impl, name + '_into')}({', '.join(args)}, "
                                        f"out={buf}, **{bind(params, name + '_params')})")
    if getattr(e.prim.np_impl, "__name__", "") == "fused":  # graph.fusion's loops
        return lambda args, buf, bind: (f"{bind(e.prim.np_impl, 'fused')}({', '.join(args)}, "
                                        f"out={buf})")
    if _einsum_operands(e) is not None:
        def emit_einsum(args, buf, bind):
            left, right = _einsum_operands(e, args)
            return f"{bind(np.matmul, 'matmul')}({left}, {right}, out={buf})"
        return emit_einsum
    uf = _ufunc_of(e.prim)
    if uf is None:
        return None
    if name == "power":
        exp = e.inputs[1]
        if isinstance(exp, Lit) and np.ndim(exp.value) == 0 and out.dtype.kind in "fc":
            if exp.value == 2:
                return lambda args, buf, bind: f"{bind(np.square, 'square')}({args[0]}, out={buf})"
            if exp.value in _POW_SHORTCUTS:
                return None
        elif not (isinstance(exp, Var) and exp.shape):
            return None
    return lambda args, buf, bind: f"{bind(uf, uf.__name__)}({', '.join(args)}, out={buf})"


def _candidates(program: Program, min_size: int) -> dict[int, int]:
    """``{equation index: result var id}`` of the results that may go into buffers."""
    cand: dict[int, int] = {}
    for i, e in enumerate(program.eqns):
        if e.out is not None and _is_array_var(e.out) and (e.out.size or 0) >= min_size:
            if _buffer_op(e) is not None:
                cand[i] = e.out.id
    return cand


def memory_order(a: Any) -> tuple | None:
    """The axes of ``a`` from the slowest-varying in memory to the fastest (``None``: C order).

    Length-1 axes sit just before the axis that follows them (where they cost nothing).
    """
    if type(a) is not np.ndarray or a.ndim < 2 or a.flags.c_contiguous:
        return None
    eff: list = [0] * a.ndim
    nxt = 0
    for i in range(a.ndim - 1, -1, -1):
        nxt = eff[i] = abs(a.strides[i]) if a.shape[i] > 1 else nxt
    order = tuple(sorted(range(a.ndim), key=lambda i: (-eff[i], i)))
    return None if order == tuple(range(a.ndim)) else order


def _allocate(spec: tuple) -> np.ndarray:
    """An uninitialised buffer for ``(shape, dtype[, memory order])``."""
    shape, dtype = spec[0], spec[1]
    order = spec[2] if len(spec) > 2 else None
    if order is None:
        return np.empty(shape, dtype)
    return np.empty(tuple(shape[k] for k in order), dtype).transpose(np.argsort(order))


def _kept_convolutions(program: Program) -> set:
    """Equations (indices) of convolutions whose input a later ``conv_weight_grad`` of the
    same parameters reads: they keep their im2col matrix for it, as recorded eager
    convolutions do (the entry is used once, checked against the input and parameters)."""
    conv, grad = registry.get("conv"), registry.get("conv_weight_grad")
    if conv is None or grad is None:
        return set()
    wanted: set = set()
    for e in program.eqns:
        if e.prim is grad and isinstance(e.inputs[0], Var):
            p = dict(e.params)
            kernel = p.pop("kernel", None)
            wanted.add((e.inputs[0].id, kernel, tuple(sorted(p.items()))))
    found = set()
    for i, e in enumerate(program.eqns):
        if e.prim is not conv or len(e.inputs) != 2:
            continue
        x, w = e.inputs
        if isinstance(x, Var) and isinstance(w, Var) and w.shape is not None:
            d = len(e.params.get("stride", ()))
            key = (x.id, tuple(w.shape[len(w.shape) - d:]), tuple(sorted(e.params.items())))
            if key in wanted:
                found.add(i)
    return found


def plan_buffers(program: Program, min_size: int = DEFAULT_MIN_BUFFER_SIZE,
                 layouts: dict | None = None) -> tuple[dict[int, int], list[tuple]]:
    """Assign reusable buffers: ``({var id: buffer index}, [(shape, dtype) per buffer])``.

    Candidates are ufunc results with at least ``min_size`` elements.  Any
    other operation may return a view of its inputs, so its result keeps
    their buffers alive; buffers that may reach an output are not used.
    ``layouts`` (``{var id: memory order}``, see :func:`memory_order`) gives
    results their memory layout: a buffer then only holds values of one
    layout, and its spec is ``(shape, dtype, order)`` where the order is not C's.
    """
    eqns = program.eqns
    cand = _candidates(program, min_size)
    roots: dict[int, frozenset] = {}
    empty: frozenset = frozenset()
    for i, e in enumerate(eqns):
        if e.out is None:
            continue
        if i in cand:
            roots[e.out.id] = frozenset((e.out.id,))
        elif _is_fresh(e):
            roots[e.out.id] = empty  # a fresh array
        else:
            r: Any = empty  # (the roots of e.out here; one root in the loops below)
            for a in e.inputs:
                if isinstance(a, Var):
                    r = r | roots.get(a.id, empty)
            roots[e.out.id] = r
    escaping: set = set()
    for o in program.outputs:
        if isinstance(o, Var):
            escaping |= roots.get(o.id, empty)
    cand = {i: v for i, v in cand.items() if v not in escaping}
    last: dict[int, int] = {}
    for i, e in enumerate(eqns):
        for a in e.inputs:
            if isinstance(a, Var):
                for r in roots.get(a.id, empty):
                    last[r] = i
    release: dict[int, list[int]] = {}
    for r, i in last.items():
        release.setdefault(i, []).append(r)
    free: dict[tuple, list[int]] = {}
    specs: list[tuple[tuple, Any]] = []
    assign: dict[int, int] = {}
    for i, e in enumerate(eqns):
        # buffers whose value is read for the last time here may hold this result
        for r in release.get(i, ()):
            b = assign.get(r)
            if b is not None:
                free.setdefault(specs[b], []).append(b)
        vid = cand.get(i)
        if vid is None:
            continue
        assert e.out is not None and e.out.shape is not None  # (candidates: array outputs)
        key: tuple = (tuple(e.out.shape), np.dtype(e.out.dtype))
        order = layouts.get(vid) if layouts else None
        if order is not None:
            key += (order,)
        pool = free.get(key)
        if pool:
            b = pool.pop()
        else:
            b = len(specs)
            specs.append(key)
        assign[vid] = b
        if vid not in last:  # never read: free again at once
            free.setdefault(key, []).append(b)
    return assign, specs


def _sum_to_axes(e: Any) -> tuple | None:
    """The axes a ``sum_to`` equation sums over (its np_impl: ``np.sum(x, axes,
    keepdims=True)``), or ``None`` when it sums none (it then returns ``x`` itself)."""
    if registry.get("sum_to") is not e.prim or len(e.inputs) != 1 or set(e.params) != {"shape"}:
        return None
    x = e.inputs[0]
    if x.shape is None or x.pytype is not None or len(x.shape) != len(e.params["shape"]):
        return None
    axes = tuple(i for i, (a, b) in enumerate(zip(x.shape, e.params["shape"]))
                 if b == 1 and a != 1)
    return axes or None


def _is_fresh(e: Any) -> bool:
    """True when ``e``'s result is always a new array (never a view of an input)."""
    return (_ufunc_of(e.prim) is not None or _einsum_operands(e) is not None
            or _sum_to_axes(e) is not None
            or (e.prim.name in _FRESH and registry.get(e.prim.name) is e.prim)
            or getattr(e.prim.np_impl, "__name__", "") in ("fused", "fused_alloc"))  # fusion


def plan_donations(program: Program, donated: Any, min_size: int = 0) -> dict[int, int]:
    """Outputs computed straight into donated inputs: ``{output var id: input index}``.

    A donated input (the caller gives its memory away, like ``jax.jit``'s
    ``donate_argnums``) can receive an output of the same shape and dtype
    once nothing reads the input (or a view of it) any more.
    """
    donated_ids = {program.inputs[k].id: k for k in donated}
    if not donated_ids:
        return {}
    empty: frozenset = frozenset()
    roots: dict[int, frozenset] = {vid: frozenset((vid,)) for vid in donated_ids}
    last: dict[int, int] = {}
    for i, e in enumerate(program.eqns):
        r: frozenset = empty
        for a in e.inputs:
            if isinstance(a, Var):
                for x in roots.get(a.id, empty):
                    last[x] = i
                r = r | roots.get(a.id, empty)
        if e.out is not None:
            roots[e.out.id] = empty if _is_fresh(e) else r
    returned: set = set()
    out_ids = set()
    for o in program.outputs:
        if isinstance(o, Var):
            returned |= roots.get(o.id, empty)
            out_ids.add(o.id)
    plan: dict[int, int] = {}
    used: set = set()
    for i, e in enumerate(program.eqns):
        out = e.out
        if out is None or out.id not in out_ids or out.id in plan or _buffer_op(e) is None:
            continue
        if not _is_array_var(out) or (out.size or 0) < min_size:
            continue
        for vid, k in donated_ids.items():
            v = program.inputs[k]
            if (vid in used or vid in returned or not _is_array_var(v)
                    or tuple(v.shape) != tuple(out.shape)  # type: ignore[arg-type]  # array vars
                    or np.dtype(v.dtype) != np.dtype(out.dtype) or last.get(vid, -1) > i):
                continue
            plan[out.id] = k
            used.add(vid)
            break
    return plan


class Executable:
    """A program compiled to Python: call it with the input values, get the output list.

    ``source`` is the generated code; ``program`` the program it came from.
    Buffers are allocated on the first call in each thread and reused.  With
    buffers, the very first call runs ``probe`` instead (the program without
    buffers, noting its results' memory layouts), then the buffered code is
    generated again for those layouts (``relayout``).
    """

    def __init__(self, program: Program, fn: Any, source: str, specs: list,
                 probe: Any = None, relayout: Any = None) -> None:
        self.program = program
        self.source = source
        self._fn = fn
        self._specs = specs
        self._local = threading.local()
        self._probe = probe if specs else None
        self._relayout = relayout
        self._lock = threading.RLock()

    @property
    def n_buffers(self) -> int:
        return len(self._specs)

    def _first_call(self, args: tuple) -> list:
        with self._lock:
            probe = self._probe
            if probe is None:  # another thread got here first
                return self(*args)
            layouts: dict = {}
            result = probe(*args, layouts)
            if any(v is not None for v in layouts.values()):
                self._fn, self.source, self._specs = self._relayout(layouts)
            self._probe = None
            return result

    def __call__(self, *args: Any) -> list:
        if not self._specs:
            return self._fn(*args)
        if self._probe is not None:
            return self._first_call(args)
        try:
            bufs = self._local.bufs
        except AttributeError:
            bufs = self._local.bufs = [_allocate(s) for s in self._specs]
        return self._fn(*args, bufs)


def _literal(v: Any) -> str | None:
    """Python source for a value that can be written inline, else ``None``."""
    t = type(v)
    if v is None or t is bool or t is str:
        return repr(v)
    if t is int:
        return repr(v)
    if t is float and math.isfinite(v):
        return repr(v)
    if t is tuple:
        parts = [_literal(x) for x in v]
        if any(p is None for p in parts):
            return None
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"  # type: ignore[arg-type]  # (no None)
    return None


def generate(program: Program, buffers: bool = True,
             min_buffer_size: int = DEFAULT_MIN_BUFFER_SIZE, donate: Any = ()) -> Executable:
    """Compile ``program`` to a Python function (see the module docstring).

    ``donate`` lists input positions whose arrays the caller gives away: outputs
    of the same shape and dtype may be written into them (see :func:`plan_donations`).
    """
    ns: dict[str, Any] = {"GuardFailed": GuardFailed, "_guard_np": None}
    names: dict[int, str] = {}
    consts: dict[int, str] = {}

    def const(value: Any) -> str:
        lit = _literal(value)
        if lit is not None:
            return lit
        key = id(value)
        name = consts.get(key)
        if name is None:
            name = f"_c{len(consts)}"
            consts[key] = name
            ns[name] = value
        return name

    def ref(x: Any) -> str:
        return names[x.id] if isinstance(x, Var) else const(x.value)

    fn_names: dict[int, str] = {}

    def bind(obj: Any, hint: str) -> str:
        name = fn_names.get(id(obj))
        if name is None:
            base = "_" + "".join(ch if ch.isalnum() else "_" for ch in hint)
            name = base
            k = 1
            while name in ns:
                name = f"{base}{k}"
                k += 1
            ns[name] = obj
            fn_names[id(obj)] = name
        return name

    donations = plan_donations(program, donate) if donate else {}
    out_ids = {o.id for o in program.outputs if isinstance(o, Var)}
    in_ids = {v.id for v in program.inputs}
    last_use: dict[int, int] = {}
    for i, e in enumerate(program.eqns):
        for a in e.inputs:
            if isinstance(a, Var):
                last_use[a.id] = i

    keeps = _kept_convolutions(program)

    def emit(assign: dict, specs: list, record: dict | None = None) -> tuple[Any, str, list]:
        """The function and its source: results in buffers per ``assign``; with ``record``
        (``{equation index: var id}``), no buffers and those results' layouts noted."""
        for i, v in enumerate(program.inputs):
            names[v.id] = f"v{i}"
        counter = len(program.inputs)
        dels: dict[int, list[str]] = {}
        lines: list[str] = []
        for i, e in enumerate(program.eqns):
            args = [ref(a) for a in e.inputs]
            if e.out is None:  # a guard
                ns["_guard_np"] = e.prim.np_impl
                lines.append(f"_guard_np({args[0]}, {const(e.params['kind'])}, "
                             f"{const(e.params['expected'])})")
                continue
            target = f"v{counter}"
            counter += 1
            names[e.out.id] = target
            b = assign.get(e.out.id)
            if b is not None:
                expr = _buffer_op(e, i in keeps)(args, f"_b{b}", bind)
            elif e.out.id in donations:
                expr = _buffer_op(e)(args, f"v{donations[e.out.id]}", bind)
            else:
                expr = _expression(e, args, bind, const)
            lines.append(f"{target} = {expr}")
            if record is not None and i in record:
                lines.append(f"_L[{e.out.id}] = {bind(memory_order, 'memory_order')}({target})")
            # large dead temporaries: release them now (buffers stay with their owner)
            for a in e.inputs:
                if (isinstance(a, Var) and last_use.get(a.id) == i and a.id not in out_ids
                        and a.id not in in_ids and a.id not in assign
                        and _is_array_var(a) and (a.size or 0) >= _MIN_DEL_SIZE):
                    dels.setdefault(i, []).append(names[a.id])
            if i in dels:
                lines.append("del " + ", ".join(dict.fromkeys(dels[i])))
        outs = ", ".join(ref(o) for o in program.outputs)
        params = [names[v.id] for v in program.inputs]
        if specs:
            params.append("_B")
        elif record is not None:
            params.append("_L")
        body = []
        if specs:
            body.append(", ".join(f"_b{k}" for k in range(len(specs)))
                        + (", = _B" if len(specs) == 1 else " = _B"))
        body += lines
        body.append(f"return [{outs}]")
        source = f"def run({', '.join(params)}):\n" + "".join(f"    {ln}\n" for ln in body)
        code = compile(source, "<chainrule compiled program>", "exec")
        exec(code, ns)  # noqa: S102  (our own generated code)
        return ns["run"], source, specs

    if not buffers:
        return Executable(program, *emit({}, []))
    assign, specs = plan_buffers(program, min_buffer_size)
    probe = emit({}, [], _candidates(program, min_buffer_size))[0] if specs else None

    def relayout(layouts: dict) -> tuple[Any, str, list]:
        return emit(*plan_buffers(program, min_buffer_size, layouts))

    return Executable(program, *emit(assign, specs), probe=probe, relayout=relayout)


def _einsum_operands(e: Any, args: list[str] | None = None) -> Any:
    """For an ``einsum`` of two matrices that is one matrix product: the two ``matmul``
    operands as source (``a``, ``b.T``...; ``True`` when ``args`` is not given), else
    ``None``.  One BLAS call on (transposed) views, without einsum's path search."""
    if registry.get("einsum") is not e.prim or len(e.inputs) != 2:
        return None
    spec = e.params.get("spec", "")
    if "->" not in spec or "." in spec:
        return None
    lhs, out = spec.split("->")
    terms = lhs.split(",")
    if len(terms) != 2 or len(out) != 2 or any(len(t) != 2 for t in terms):
        return None
    ta, tb = terms
    if any(x.shape is None or len(x.shape) != 2 for x in e.inputs) or len(set(ta)) != 2 \
            or len(set(tb)) != 2:
        return None
    shared = set(ta) & set(tb)
    if len(shared) != 1 or (shared & set(out)):
        return None
    k = shared.pop()
    i, j = ta.replace(k, ""), tb.replace(k, "")
    if i == j or set(out) != {i, j}:
        return None
    if args is None:
        return True
    a, b = args
    if out == i + j:
        return (a if ta == i + k else f"{a}.T"), (b if tb == k + j else f"{b}.T")
    # (A B)^T = B^T A^T: compute the transposed product directly (a contiguous result)
    return (b if tb == j + k else f"{b}.T"), (a if ta == k + i else f"{a}.T")


def _float_array(x: Any) -> bool:
    return (isinstance(x, Var) and x.shape is not None and len(x.shape) > 0
            and x.pytype is None and x.dtype is not None and np.dtype(x.dtype).kind in "fc")


def _flat_index(e: Any) -> Any:
    """For ``getitem`` by integer arrays on every axis of an array of the key's shape: the
    flat (C order) positions it reads, so ``x.take(flat)`` is the same result; else ``None``."""
    key = e.params.get("key")
    x = e.inputs[0]
    if (len(e.params) != 1 or key is None or getattr(key, "take", None) is not None
            or not isinstance(x, Var) or x.shape is None or x.pytype is not None
            or tuple(x.shape) != tuple(getattr(key, "in_shape", ())) or not x.shape):
        return None
    idx = tuple(watched_value(i) for i in key.idx)  # (index arrays: guarded constants)
    if (len(idx) != len(x.shape) + 1 or idx[0] is not Ellipsis
            or not all(isinstance(i, np.ndarray) and i.dtype.kind in "iu" for i in idx[1:])):
        return None
    try:
        parts = [np.where(i < 0, i + n, i) for i, n in zip(idx[1:], x.shape)]
        flat = np.ravel_multi_index(tuple(np.broadcast_arrays(*parts)), tuple(x.shape))
    except (ValueError, TypeError):
        return None
    return flat if e.out is not None and flat.shape == tuple(e.out.shape or ()) else None


def _fast_call(e: Any, args: list[str], bind: Any, const: Any) -> str | None:
    """Source for a few primitives whose np_impl has Python layers around one NumPy call:
    float reductions, ``getitem`` by integer arrays and ``reshape`` (same results).
    (``logsumexp``'s np_impl is already one lean NumPy function.)"""
    name = e.prim.name
    if registry.get(name) is not e.prim or not e.inputs or not _float_array(e.inputs[0]):
        return None
    if name in _REDUCERS and set(e.params) == {"axes", "keepdims"}:
        hint, fn = _REDUCERS[name]
        return (f"{bind(fn, hint)}({args[0]}, axis={tuple(e.params['axes'])!r}, "
                f"keepdims={bool(e.params['keepdims'])!r})")
    if name == "getitem":
        flat = _flat_index(e)
        if flat is not None:
            return f"{args[0]}.take({const(flat)})"
    if name == "reshape" and set(e.params) == {"shape"}:
        return f"{args[0]}.reshape({tuple(int(n) for n in e.params['shape'])!r})"
    return None


def _expression(e: Any, args: list[str], bind: Any, const: Any) -> str:
    """The right-hand side for one equation without a buffer."""
    ops = _einsum_operands(e, args)
    if ops is not None:
        return f"{bind(np.matmul, 'matmul')}({ops[0]}, {ops[1]})"
    axes = _sum_to_axes(e)
    if axes is not None:  # sum_to's np_impl without its Python layers
        return f"{bind(_ADD_REDUCE, 'add_reduce')}({args[0]}, axis={axes!r}, keepdims=True)"
    fast = _fast_call(e, args, bind, const)
    if fast is not None:
        return fast
    name = e.prim.name
    own = _is_operator_impl(e.prim)
    if own and name in _BINARY_OPS and len(args) == 2:
        # ``_fast``: Python's operator unless both sides are Python numbers.
        if not all(getattr(a, "pytype", None) is not None for a in e.inputs):
            a, b = (f"({x})" if x.startswith("-") else x for x in args)
            return f"{a} {_BINARY_OPS[name][0]} {b}"
    if own and name in _UNARY_OPS and len(args) == 1:
        a = f"({args[0]})" if args[0].startswith("-") else args[0]
        return f"{_UNARY_OPS[name][0]}{a}"
    uf = _ufunc_of(e.prim)
    if uf is not None and not e.params:
        return f"{bind(uf, uf.__name__)}({', '.join(args)})"
    fn = bind(e.prim.np_impl, name)
    kw = [f"{k}={const(v)}" for k, v in e.params.items()]
    return f"{fn}({', '.join(args + kw)})"

