"""Tracing Python functions into a :class:`~chainrule.graph.ir.Program` (record and replay).

:func:`trace` opens a *staging level* (``core.trace.new_staging_level``) and
boxes the function's array arguments as :class:`Tracer` objects at that
level.  Every primitive bound on a tracer reaches :meth:`Trace.handle`,
which computes the concrete result (so Python control flow works and is
unrolled) and appends an equation to the program.  Transforms called inside
the function (``cr.value_and_grad(f)``) open higher levels and run their
rules on the unwrapped values, which are tracers: the backward pass is
recorded too, from the same VJP rules that eager mode uses.

Values that the function closes over (arrays, eager tensors) become
constants of the program.

No traced value leaves the program unnoticed.  Turning a tracer into plain
numbers -- ``np.asarray(x)``, ``np.array(x)``, ``x.__array__()``,
``x.item()``, ``x.tolist()``, ``x.numpy()``, ``float(x)``, ``complex(x)``,
``np.float64(x)``, and so any NumPy function that does not dispatch to
chainrule -- raises ``TypeError`` naming ``cr.compile``.  Python control flow
keeps working: ``bool(x)`` (so ``if x.sum() > 0:``), ``int(x)`` and
``operator.index(x)`` (loop counts, indices) read the value concretely.  So
do explicit reads of a value cut from the trace (``cr.stop_gradient(x)``,
``x.detach()``, the raw ``x.data``) and chainrule's own helpers, which call
:func:`chainrule.core.concrete.concrete_value`.  Each such read is recorded
as a *guard* equation; at run time a different value raises
:class:`~chainrule.graph.ir.GuardFailed` so that the caller re-traces.
Results therefore never silently reuse a stale branch or a stale constant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.concrete import concrete_value
from ..core.primitive import Box, Primitive
from ..core.trace import LEVEL_NAMES, new_staging_level, release_level
from ..pytree import tree_flatten, tree_unflatten
from ..tensor import Tensor, _escape_message
from .ir import Equation, Lit, Program, Var, guard_p

__all__ = ["Tracer", "Trace", "trace", "record", "is_dynamic_leaf", "stop_gradient_p", "StagedOps",
           "StagedNamespace"]

_PY_SCALARS = (bool, int, float, complex)


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    if type(x) is _Watched:
        return x._tracer._value
    return x


#: Identity with no derivative: what the raw value of a staged box stands for.
stop_gradient_p = Primitive("graph.stop_gradient", lambda xp, x: x, lambda x: x,
                            vjp=(lambda g, out, x: None,), jvp=(lambda t, out, x: None,),
                            register=False)


def _logical(name: str, ufunc: Any) -> Primitive:
    return Primitive(f"graph.{name}", lambda xp, *a: getattr(xp, name)(*a), ufunc,
                     differentiable=False, register=False)


_and_p = _logical("bitwise_and", np.bitwise_and)
_or_p = _logical("bitwise_or", np.bitwise_or)
_xor_p = _logical("bitwise_xor", np.bitwise_xor)
_not_p = _logical("bitwise_invert", np.invert)


class StagedOps:
    """Operators that staged boxes need beyond Tensor's: ``& | ^ ~`` (on boolean results of
    comparisons, which are staged values here, not plain arrays) and the array namespace."""

    __slots__ = ()

    def __and__(self, other: Any) -> Any:
        return _and_p(self, other)

    def __rand__(self, other: Any) -> Any:
        return _and_p(other, self)

    def __or__(self, other: Any) -> Any:
        return _or_p(self, other)

    def __ror__(self, other: Any) -> Any:
        return _or_p(other, self)

    def __xor__(self, other: Any) -> Any:
        return _xor_p(self, other)

    def __rxor__(self, other: Any) -> Any:
        return _xor_p(other, self)

    def __invert__(self) -> Any:
        return _not_p(self)

    def __array_namespace__(self, api_version: Any = None) -> Any:
        from .. import numpy as cnp

        return cnp


class StagedNamespace:
    """The array namespace of a staged box's *raw* value (``namespace_of(_raw(x))``).

    Helpers that compute on the array under a tensor through its namespace
    (``xp.max(raw)``, ``xp.where(...)``) get ``chainrule.numpy`` functions
    applied to the box itself with its gradient stopped: the computation is
    staged instead of read.  Array creation (``xp.zeros``...) is NumPy's.
    """

    def __getattr__(self, name: str) -> Any:
        from .. import numpy as cnp

        if name in ("zeros_like", "ones_like", "full_like", "empty_like"):
            fill = {"zeros_like": 0, "ones_like": 1, "empty_like": 0}.get(name)

            def like(x: Any, *args: Any, **kw: Any) -> Any:
                x = lift(x)
                if not isinstance(x, Box):
                    return getattr(np, name)(x, *args, **kw)
                value = fill if fill is not None else (args[0] if args else kw["fill_value"])
                return _full_like_p(x, value=value, dtype=kw.get("dtype"))

            return like
        if name == "astype":
            return _staged_astype
        if name in ("all", "any"):
            prim = _all_p if name == "all" else _any_p

            def reduce(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
                return prim(lift(x), axis=axis, keepdims=keepdims)

            return reduce
        fn = getattr(cnp, name)
        if not callable(fn) or isinstance(fn, type):
            return fn
        if getattr(fn, "__qualname__", "").startswith("_like."):
            # chainrule.numpy passes these to the array's own namespace (this one)
            if name in _STAGED_NP:
                prim = _np_prim(name)
                return lambda x, *a, **kw: prim(lift(x), *a, **kw)
            npfn = getattr(np, name)  # data-dependent shapes (nonzero, unique): read values
            return lambda x, *a, **kw: npfn(np.asarray(concrete_value(x)), *a, **kw)

        def staged(*args: Any, **kw: Any) -> Any:
            return fn(*[lift(a) for a in args], **{k: lift(v) for k, v in kw.items()})

        staged.__name__ = name
        return staged


def _full_like_np(x: Any, value: Any, dtype: Any) -> Any:
    return np.full_like(x, value, dtype=dtype)


_full_like_p = Primitive("graph.full_like", lambda xp, x, value, dtype: _full_like_np(x, value,
                                                                                     dtype),
                         _full_like_np, differentiable=False, register=False)
_astype_p = Primitive("graph.astype", lambda xp, x, dtype: x.astype(dtype),
                      lambda x, dtype: np.asarray(x).astype(dtype), differentiable=False,
                      register=False)


def _staged_astype(x: Any, dtype: Any, **kw: Any) -> Any:
    """``astype`` on the raw value of a tracer: a staged cast (a cast to an integer dtype has
    no derivative, and chainrule.numpy's would hand it back to this namespace)."""
    from .. import numpy as cnp

    box = lift(x)
    if isinstance(box, Tracer):
        return _astype_p(box, dtype=np.dtype(dtype))
    return cnp.astype(box, dtype, **kw)


_STAGED_NP = frozenset({"argsort", "argmax", "argmin"})
_np_prims: dict[str, Primitive] = {}


def _np_prim(name: str) -> Primitive:
    """A non-differentiable primitive applying ``numpy.<name>`` (keyword arguments as params)."""
    prim = _np_prims.get(name)
    if prim is None:
        fn = getattr(np, name)
        prim = _np_prims[name] = Primitive(
            f"graph.{name}", lambda xp, x, **kw: getattr(xp, name)(x, **kw),
            lambda x, **kw: fn(x, **kw), differentiable=False, register=False)
    return prim


_all_p = Primitive("graph.all", lambda xp, x, axis, keepdims: xp.all(x, axis=axis,
                                                                      keepdims=keepdims),
                   lambda x, axis, keepdims: np.all(x, axis=axis, keepdims=keepdims),
                   differentiable=False, register=False)
_any_p = Primitive("graph.any", lambda xp, x, axis, keepdims: xp.any(x, axis=axis,
                                                                      keepdims=keepdims),
                   lambda x, axis, keepdims: np.any(x, axis=axis, keepdims=keepdims),
                   differentiable=False, register=False)
staged_namespace = StagedNamespace()


def register_staged_type(t: type) -> None:
    """Make ``backend.namespace_of`` serve values of type ``t`` with the staged namespace."""
    from .. import backend

    register = getattr(backend, "register_namespace", None)
    if register is not None:
        register(t, _STAGED_NS)
    else:  # an engine without the hook: seed its per-type cache
        backend._cache[t] = _STAGED_NS


def _make_staged_ns() -> Any:
    from ..backend import ArrayNamespace

    ns = ArrayNamespace(staged_namespace, "chainrule", True)
    ns.__dict__["_staged"] = True  # values here are symbolic or traced: do not look at them
    return ns


_STAGED_NS = _make_staged_ns()


def lift(x: Any) -> Any:
    """The staged box behind a raw value wrapper (gradient stopped); anything else as is."""
    as_box = getattr(type(x), "_as_box", None)
    if as_box is not None:
        return as_box(x)
    if type(x) in (list, tuple):
        return type(x)(lift(v) for v in x)
    return x


class RawView:
    """Base of the objects that stand in for the array under a staged box (``box.data``).

    Static facts (shape, dtype, ndim, size) are answered; arithmetic, comparisons,
    indexing and Tensor methods are *staged* on the box with its gradient stopped
    (so ``raw != 0`` or ``xp.max(raw)`` records operations rather than reading
    values); only real reads (``bool()``, ``float()``, ``np.asarray()``) go to
    :meth:`_read`.
    """

    __slots__ = ()

    def _box(self) -> Any:  # the staged box this is the raw value of
        raise NotImplementedError

    def _read(self) -> Any:  # the concrete value (or an error when there is none)
        raise NotImplementedError

    def _as_box(self) -> Any:
        return stop_gradient_p(self._box())

    def _concrete(self) -> Any:  # an explicit read (chainrule.core.concrete.concrete_value)
        return self._read()

    @property
    def shape(self) -> tuple:
        return self._box().shape

    @property
    def dtype(self) -> Any:
        return self._box().dtype

    @property
    def ndim(self) -> int:
        return self._box().ndim

    @property
    def size(self) -> Any:
        return self._box().size

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def T(self) -> Any:
        return self._as_box().T

    def __len__(self) -> int:
        return len(self._box())

    def __iter__(self):
        return iter(self._as_box())

    def __getitem__(self, key: Any) -> Any:
        return self._as_box()[key]

    def __array_namespace__(self, api_version: Any = None) -> Any:
        return staged_namespace

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = np.asarray(self._read())
        return a if dtype is None else a.astype(dtype)

    def __getattr__(self, name: str) -> Any:
        if name in _tensor_methods():
            return getattr(self._as_box(), name)
        value = self._read()
        return getattr(value, name)

    def __bool__(self) -> bool:
        return bool(self._read())

    def __float__(self) -> float:
        return float(self._read())

    def __int__(self) -> int:
        return int(self._read())

    def __index__(self) -> int:
        return int(self._read())

    def __complex__(self) -> complex:
        return complex(self._read())

    __hash__ = None  # type: ignore[assignment]


_METHODS: list = []
_NOT_STAGED = {"numpy", "item", "tolist", "backward", "detach", "zero_grad", "requires_grad_",
               "forward", "eval", "assign"}


def _tensor_methods() -> frozenset:
    """Tensor's public methods: on a raw view they are staged on the box (gradient stopped)."""
    if not _METHODS:
        _METHODS.append(frozenset(
            n for n in dir(Tensor) if not n.startswith("_") and n not in _NOT_STAGED
            and callable(getattr(Tensor, n, None)) and not isinstance(getattr(Tensor, n), type)))
    return _METHODS[0]


def _staged_op(name: str):
    def method(self, *args):
        return getattr(self._as_box(), name)(*args)

    method.__name__ = name
    return method


for _name in ("lt", "le", "gt", "ge", "eq", "ne", "add", "radd", "sub", "rsub", "mul", "rmul",
              "truediv", "rtruediv", "pow", "rpow", "mod", "rmod", "neg", "pos", "abs",
              "invert", "and", "rand", "or", "ror", "xor", "rxor", "matmul", "rmatmul"):
    setattr(RawView, f"__{_name}__", _staged_op(f"__{_name}__"))


def watched_value(x: Any) -> Any:
    """The concrete value behind ``x`` when it is a traced value's raw view kept in a
    parameter (an index key: the program guards that value), else ``x`` itself."""
    return x._tracer._value if isinstance(x, _Watched) else x


class _Watched(RawView):
    """What ``tracer.data`` holds: reads of the concrete value are recorded as guards."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def _box(self) -> Any:
        return self._tracer

    def _read(self) -> Any:
        t = self._tracer
        t._guard_value()
        return t._value

    def __getattr__(self, name: str) -> Any:
        if name in _tensor_methods():
            return getattr(self._as_box(), name)
        value = self._tracer._value
        if not hasattr(value, name):
            raise AttributeError(name)
        return getattr(self._read(), name)

    def __len__(self) -> int:
        return len(self._tracer._value)

    def __repr__(self) -> str:
        return f"<traced value of shape {self.shape} and dtype {self.dtype}>"


class Tracer(StagedOps, Tensor):
    """A box at a tracing level: it stands for one variable of the program being recorded.

    Tracers support everything a Tensor does; operations on them are
    recorded.  ``shape``, ``dtype`` and ``ndim`` are static.  ``bool(t)``,
    ``int(t)`` and ``operator.index(t)`` (Python control flow) read the value
    and record a guard; every other conversion to plain numbers
    (``np.asarray(t)``, ``float(t)``, ``t.item()``...) raises ``TypeError``.
    """

    __slots__ = ("_var", "_trace", "_value")
    _var: Any
    _trace: Any
    _value: Any

    @property
    def shape(self) -> tuple:
        return np.shape(self._value)

    @property
    def ndim(self) -> int:
        return np.ndim(self._value)

    @property
    def size(self) -> int:
        return int(np.size(self._value))

    @property
    def dtype(self) -> Any:
        return np.result_type(self._value)

    @property
    def weak_type(self) -> type | None:
        """``float``/``complex``/``int`` when this stands for a Python number (NumPy's weak
        promotion applies), else ``None``."""
        t = type(self._value)
        return t if t is float or t is complex or t is int else None

    def __repr__(self) -> str:
        return f"Tracer(shape={self.shape}, dtype={self.dtype})"

    # --- concrete reads: recorded as guards ------------------------------------------------
    def _guard(self, kind: str, expected: Any) -> None:
        tr = self._trace
        if tr is not None and not tr.closed:
            tr.eqns.append(Equation(guard_p, [self._var], {"kind": kind, "expected": expected},
                                    None))

    def _guard_value(self) -> None:
        v = self._value
        if type(v) in _PY_SCALARS:
            kind = {bool: "bool", int: "int", float: "float", complex: "complex"}[type(v)]
            self._guard(kind, v)
        else:
            self._guard("array", np.array(v, copy=True))

    def __bool__(self) -> bool:
        v = bool(self._value)
        self._guard("bool", v)
        return v

    def __int__(self) -> int:
        v = int(self._value)
        self._guard("int", v)
        return v

    __index__ = __int__

    def _concrete(self) -> Any:  # an explicit read (chainrule.core.concrete.concrete_value)
        self._guard_value()
        return self._value

    def _read(self, what: str) -> Any:
        """The value for a conversion to plain numbers: refused under a named transform
        (``cr.compile``); read with a guard in anonymous traces (sparsity detection, which
        refuses programs with guards)."""
        name = LEVEL_NAMES.get(self._level)
        if name is not None and self._var.id not in self._trace.cut:
            raise TypeError(_escape_message(self, name, what))
        return self._concrete()

    def __float__(self) -> float:
        return float(self._read("float()"))

    def __complex__(self) -> complex:
        return complex(self._read("complex()"))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = np.asarray(self._read("np.asarray() / np.array()"))
        return a if dtype is None else a.astype(dtype)

    def numpy(self) -> np.ndarray:
        return np.asarray(self._read(".numpy()"))

    def item(self) -> Any:
        v = self._read(".item()")
        return v.item() if hasattr(v, "item") else v

    def tolist(self) -> Any:
        return np.asarray(self._read(".tolist()")).tolist()


_KNOWN_SLOTS = {"data", "grad", "requires_grad", "_level", "_tangent", "_prim", "_args",
                "_params", "_seq", "_vals", "__weakref__"}
#: Box slots added to the engine later: set to None in boxes made here.
EXTRA_BOX_SLOTS = tuple(s for s in Box.__slots__ if s not in _KNOWN_SLOTS)


register_staged_type(Tracer)
register_staged_type(_Watched)


def _make_tracer(value: Any, level: int, var: Var, trace: Trace) -> Tracer:
    t = Tracer.__new__(Tracer)
    for s in EXTRA_BOX_SLOTS:
        setattr(t, s, None)
    t._value = value
    t.data = _Watched(t)
    t.grad = None
    t.requires_grad = False
    t._level = level
    t._tangent = None
    t._prim = None
    t._var = var
    t._trace = trace
    return t


class Trace:
    """One recording: a staging level, the equations so far, and the input variables."""

    def __init__(self, transform: str | None = None) -> None:
        self.eqns: list[Equation] = []
        self.inputs: list[Var] = []
        self.closed = False
        #: variables made by ``stop_gradient``: cut from the derivative, so reading their
        #: numbers is an explicit choice (guarded: the program is traced again on a change)
        self.cut: set[int] = set()
        self.level = new_staging_level(self.handle)
        if transform is not None:  # conversions to plain numbers raise, naming it
            LEVEL_NAMES[self.level] = transform

    def new_input(self, value: Any) -> Tracer:
        var = Var.like(value)
        self.inputs.append(var)
        return _make_tracer(value, self.level, var, self)

    def ref(self, a: Any) -> tuple[Any, Any]:
        """``(program input, concrete value)`` for one argument of a primitive."""
        if isinstance(a, Box) and a._level != self.level:
            while isinstance(a, Box):  # a lower level: a closed-over tensor, or a detached tracer
                a = a.data
        if type(a) is _Watched:  # the raw value of a tracer (its gradient was stopped)
            a = a._tracer
        if isinstance(a, Box):
            if a._level == self.level:
                return a._var, a._value  # type: ignore[attr-defined]  # a Tracer of this level
            raw = _raw(a)
            return Lit(raw), raw
        return Lit(a), a

    def handle(self, prim: Any, args: tuple, params: dict) -> Any:
        inputs = []
        vals = []
        for a in args:
            i, v = self.ref(a)
            inputs.append(i)
            vals.append(v)
        if params:
            params = {k: self._static(v) for k, v in params.items()}
        out = prim(*vals, **params)
        var = Var.like(out)
        self.eqns.append(Equation(prim, inputs, params, var))
        if prim is stop_gradient_p:
            self.cut.add(var.id)
        return _make_tracer(out, self.level, var, self)

    def _static(self, v: Any) -> Any:
        """Parameters are static: a traced value found in one is read concretely (guarded)."""
        if isinstance(v, Box):
            if isinstance(v, Tracer) and v._level == self.level:
                v._guard_value()
                return v._value
            return _raw(v)
        if type(v) is tuple:
            return tuple(self._static(x) for x in v)
        return v

    def close(self) -> None:
        self.closed = True
        release_level(self.level)
        LEVEL_NAMES.pop(self.level, None)

    def output(self, x: Any) -> Any:
        """The program output for one leaf that the traced function returned."""
        if isinstance(x, Tracer) and x._level == self.level:
            return x._var
        return Lit(_raw(x))


def is_dynamic_leaf(x: Any) -> bool:
    """Leaves that become program inputs: NumPy arrays and scalars, Python floats/complex.

    Python ``int`` and ``bool`` (loop counts, flags, axes) and every other
    object are static: they are part of the cache key, by value.
    """
    t = type(x)
    return t is np.ndarray or isinstance(x, np.generic) or t is float or t is complex


def trace(fun: Callable, *args: Any, **kwargs: Any) -> tuple[Program, Any, list]:
    """Record ``fun(*args, **kwargs)`` as a program (conversions to plain numbers are read
    with a guard; :func:`record` with a transform name refuses them).

    Returns ``(program, out_tree, out_values)``: the unoptimised program
    (its inputs are the dynamic leaves of ``(args, kwargs)`` in flattening
    order, see :func:`is_dynamic_leaf`), the output structure and the
    concrete output leaves computed while tracing.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> prog, _, _ = trace(lambda x: cnp.sum(cnp.sin(x) * 2.0), np.ones(3))
    >>> [e.prim.name for e in prog.eqns]
    ['sin', 'multiply', 'reduce_sum']
    """
    return record(fun, args, kwargs)


def record(fun: Callable, args: tuple, kwargs: dict,
           transform: str | None = None) -> tuple[Program, Any, list]:
    """:func:`trace` for ``transform`` (e.g. ``"compile"``): turning a traced value into plain
    numbers raises ``TypeError`` naming ``cr.<transform>`` (``bool()``, ``int()`` and explicit
    reads of cut values are guarded)."""
    leaves, tree = tree_flatten((args, kwargs))
    tr = Trace(transform)
    try:
        boxed = [tr.new_input(x) if is_dynamic_leaf(x) else x for x in leaves]
        a, k = tree_unflatten(tree, boxed)
        out = fun(*a, **k)
        out_leaves, out_tree = tree_flatten(out)
        outputs = [tr.output(x) for x in out_leaves]
        values = [x._value if isinstance(x, Tracer) and x._level == tr.level else _raw(x)
                  for x in out_leaves]
    finally:
        tr.close()
    return Program(tr.inputs, tr.eqns, outputs), out_tree, values
