"""Symbolic graph nodes: define the computation first, run it later (TensorFlow-1 style).

``placeholder``, ``variable`` and ``constant`` make leaf nodes; every
operation on nodes (operators, ``.T``, indexing, ``chainrule.numpy``,
``chainrule.nn.functional``) makes a new node instead of computing.  Nodes
are boxes of one *staging level* owned by this module (created at import):
the engine hands every primitive bound on a node to :func:`_handle`, which
builds the node and works out its shape and dtype by *abstract evaluation*
-- it runs the primitive's NumPy implementation on small example arrays.

Unknown sizes (``None`` in a placeholder's shape) are :class:`Dim` objects.
They print as ``None`` and compare equal to ``None``; arithmetic on them
(``x.shape[0] * 3``) gives new symbolic sizes, so composites that compute
with shapes (``mean`` divides by the number of elements, ``reshape(-1)``
infers a size) keep working; their values are read from the actual arrays
when the graph runs.  Two unknown sizes that meet in one operation are
assumed to be equal (as TensorFlow does).  Each operation is run on
examples with every unknown size 1 and again with every unknown size 7:
when both runs fail, the shapes conflict whatever is fed, and building the
node raises ``ValueError`` naming the operation and the shapes.

:func:`gradients` returns gradient *nodes*, built by running chainrule's
reverse sweep over the nodes with the same VJP rules as eager mode -- so
they can be differentiated again.  Running a graph (``node.forward``,
``node.backward``, :func:`compile`) is the job of :mod:`chainrule.graph.run`;
symbolic sizes live in :mod:`chainrule.graph.dims`.

A node has no value until the graph runs: helpers that need concrete
values of a placeholder or a variable (``np.asarray(node)``, ``bool(node)``,
or a chainrule function that looks at the data, e.g. the class labels of
``cross_entropy``) raise ``TypeError``; feed such values as constants.
"""

from __future__ import annotations

import itertools
import warnings
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..core.backward import backward_pass
from ..core.primitive import Box, Primitive, _seq
from ..core.trace import new_staging_level
from ..tensor import Tensor
from .dims import Dim, _dims_in, _subst
from .trace import (
    EXTRA_BOX_SLOTS,
    RawView,
    StagedOps,
    _tensor_methods,
    register_staged_type,
    stop_gradient_p,
)

__all__ = [
    "Node", "Dim", "placeholder", "variable", "constant", "gradients", "shape", "stop_gradient",
    "GRAPH_LEVEL",
]

_names = itertools.count()
#: Trial values of unknown sizes in the two abstract evaluations.
_TRIALS = (1, 7)


# --- what a node's .data holds -------------------------------------------------------------------


class _Abstract(RawView):
    """The ``.data`` of a node without a value: static facts and staged operations only."""

    __slots__ = ("_node",)

    def __init__(self, node: Node) -> None:
        self._node = node

    def _box(self) -> Any:
        return self._node

    def _read(self) -> Any:
        raise TypeError(_no_value_message(self._node))

    def __len__(self) -> int:
        if self._node._dtype is None:  # a tuple of results
            return len(self._node._shape)
        return len(self._node)

    def __getattr__(self, name: str) -> Any:
        if name in _tensor_methods():
            return getattr(self._as_box(), name)
        raise AttributeError(f"{name} (graph node {self._node.name!r} has no value until it "
                             "runs)")

    def __repr__(self) -> str:
        return f"<no value: graph node {self._node.name!r}>"


def _no_value_message(node: Node) -> str:
    return (f"graph node {node.name!r} ({node.op}, shape {node.shape}) has no value until the "
            "graph runs: evaluate it with node.forward(feed_dict), or, where a function needs "
            "concrete values (for example class labels), pass them as a constant or a plain "
            "array instead of a placeholder")


# --- nodes ---------------------------------------------------------------------------------------


class Node(StagedOps, Tensor):
    """A node of a static graph: a placeholder, a variable, a constant or an operation.

    Supports what a Tensor does (operators, ``.T``, indexing, methods,
    every ``chainrule.numpy`` and ``chainrule.nn.functional`` function),
    building new nodes.  ``.shape`` has ``None`` (a :class:`Dim`) for sizes
    known only at run time.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> from chainrule import graph as G
    >>> x = G.placeholder(shape=(None, 2), name="x")
    >>> W = G.variable(np.array([[1.0], [2.0]]), name="W")
    >>> y = cnp.sum(cnp.dot(x, W))
    >>> float(y.forward({x: [[1.0, 2.0], [3.0, 4.0]]}))
    16.0
    >>> y.backward(); W.grad
    array([[4.],
           [6.]])
    """

    __slots__ = ("_shape", "_dtype", "_name", "_kind", "_value", "_cache",
                 "_args", "_params", "_seq", "_vals", "_ct")  # a static node is its own graph node
    _shape: tuple
    _dtype: Any
    _name: Any
    _kind: str
    _value: Any
    _cache: Any

    # --- static facts --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        if self._dtype is None:
            raise TypeError(f"graph node {self.name!r} holds a tuple of values, not one array")
        return self._shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> Any:
        n: Any = 1
        for s in self.shape:
            n = n * s
        return n

    @property
    def dtype(self) -> Any:
        return self._dtype

    @property
    def name(self) -> str:
        return self._name

    @property
    def op(self) -> str:
        """The primitive's name, or ``placeholder`` / ``variable`` / ``constant``."""
        return self._prim.name if self._prim is not None else self._kind

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def inputs(self) -> list:
        """The nodes this one is computed from."""
        if self._prim is None:
            return []
        return [a for a in self._args if isinstance(a, Node)]

    def _known(self) -> bool:
        """True when the value is fixed at build time (constants and ops on constants)."""
        return self._kind != "variable" and self._kind != "placeholder" and self._value is not None

    def __repr__(self) -> str:
        if self._dtype is None:
            return f"<graph node {self._name!r}: {self.op}, a tuple>"
        return f"<graph node {self._name!r}: {self.op}, shape={self._shape}, dtype={self._dtype}>"

    # --- values ------------------------------------------------------------------------------
    @property
    def value(self) -> Any:
        """A variable's current array (or a constant's value)."""
        if self._kind == "variable" or self._known():
            return self._value
        raise TypeError(_no_value_message(self))

    def assign(self, value: Any) -> Node:
        """Replace a variable's array (same shape; cast to the variable's dtype)."""
        if self._kind != "variable":
            raise TypeError(f"assign: graph node {self.name!r} is a {self.op}, not a variable")
        a = np.asarray(value._value if isinstance(value, Node) and value._known() else value)
        if a.shape != self._shape:
            raise ValueError(f"assign: variable {self.name!r} has shape {self._shape}, got an "
                             f"array of shape {a.shape}")
        self._value = np.array(a, dtype=self._dtype, copy=True)
        return self

    def _concrete(self) -> Any:
        if self._known():
            return self._value
        raise TypeError(_no_value_message(self))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = np.asarray(self._concrete())
        return a if dtype is None else a.astype(dtype)

    def numpy(self) -> np.ndarray:
        return np.asarray(self._concrete())

    def item(self) -> Any:
        return np.asarray(self._concrete()).item()

    def __bool__(self) -> bool:
        return bool(self._concrete())

    def __float__(self) -> float:
        return float(self._concrete())

    def __int__(self) -> int:
        return int(self._concrete())

    def __index__(self) -> int:
        return int(self._concrete())

    def __len__(self) -> int:
        n = self.shape[0] if self.shape else None
        if not isinstance(n, int):
            raise TypeError(f"len() of graph node {self.name!r} of shape {self.shape}")
        return n

    def detach(self) -> Node:
        """The same value with no gradient through it (a ``stop_gradient`` node)."""
        return stop_gradient(self)

    def _state(self) -> dict:
        if self._cache is None:
            self._cache = {}
        return self._cache


register_staged_type(Node)
register_staged_type(_Abstract)


def _new_node(kind: str, shape: Any, dtype: Any, name: str | None, value: Any = None,
              prim: Primitive | None = None, args: tuple = (), params: dict | None = None,
              requires_grad: bool = False) -> Node:
    n = Node.__new__(Node)
    for s in EXTRA_BOX_SLOTS:
        setattr(n, s, None)
    n.grad = None
    n.requires_grad = requires_grad
    n._level = GRAPH_LEVEL
    n._tangent = None
    n._prim = prim
    n._args = tuple(args) if prim is not None else None
    n._vals = n._args
    n._params = params or None
    n._seq = next(_seq)
    n._ct = None
    n._shape = shape
    n._dtype = dtype
    n._kind = kind
    n._name = name if name is not None else f"{prim.name if prim else kind}_{next(_names)}"
    n._value = value
    n._cache = None
    n.data = value if value is not None and kind in ("constant", "op") else _Abstract(n)
    return n


def _is_float(dtype: Any) -> bool:
    return dtype is not None and np.dtype(dtype).kind in "fc"


_placeholders: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def placeholder(shape: Iterable[int | None] = (), name: str | None = None,
                dtype: Any = np.float64) -> Node:
    """A node whose value is fed when the graph runs; ``None`` in ``shape`` = any size.

    >>> from chainrule import graph as G
    >>> x = G.placeholder(shape=(None, 3), name="x")
    >>> x.shape
    (None, 3)
    """
    if shape is None:
        raise ValueError("placeholder: give a shape (use None inside it for unknown sizes, "
                         "e.g. shape=(None, 3))")
    shape = tuple(shape)
    for s in shape:
        if s is not None and (not isinstance(s, (int, np.integer)) or s < 0):
            raise ValueError(f"placeholder: sizes must be non-negative ints or None, got {shape}")
    dtype = np.dtype(dtype)
    n = _new_node("placeholder", (), dtype, name, requires_grad=_is_float(dtype))
    n._shape = tuple(Dim("axis", (n, None, j), _TRIALS) if s is None else int(s)
                     for j, s in enumerate(shape))
    _placeholders[n._name] = n
    return n


def variable(value: Any, shape: Iterable[int] | None = None, name: str | None = None,
             dtype: Any = None, trainable: bool = True) -> Node:
    """A node holding a mutable array: ``variable(array)`` or ``variable(init_fn, shape)``.

    ``init_fn(shape)`` returns the initial array.  ``.value`` is the current
    array, ``.assign(array)`` replaces it (same shape), ``.grad`` is filled
    by ``node.backward()``.  Float variables are differentiated (unless
    ``trainable=False``).

    >>> import numpy as np
    >>> from chainrule import graph as G
    >>> w = G.variable(lambda s: np.ones(s), shape=(2, 1), name="w")
    >>> w.value
    array([[1.],
           [1.]])
    """
    if callable(value):
        if shape is None:
            raise ValueError("variable: an initializer function needs shape=")
        shape = tuple(int(s) for s in shape)
        value = value(shape)
    a = np.array(value._concrete() if isinstance(value, Node) else value,
                 dtype=dtype, copy=True)
    if a.dtype.kind in "iub" and dtype is None and not isinstance(value, np.ndarray):
        a = a.astype(np.float64)  # Python numbers and lists: float64, as in cr.tensor
    if shape is not None and tuple(shape) != a.shape:
        raise ValueError(f"variable: the initial value has shape {a.shape}, but shape="
                         f"{tuple(shape)} was given")
    return _new_node("variable", a.shape, a.dtype, name, value=a,
                     requires_grad=trainable and _is_float(a.dtype))


def constant(value: Any, name: str | None = None, dtype: Any = None) -> Node:
    """A node with a fixed value (an array, a list or a number).

    >>> from chainrule import graph as G
    >>> G.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).T.forward()
    array([[1., 4.],
           [2., 5.],
           [3., 6.]])
    """
    a = np.asarray(value._concrete() if isinstance(value, Node) else value, dtype=dtype)
    return _new_node("constant", a.shape, a.dtype, name, value=a)


# --- building nodes: the staging handler ---------------------------------------------------------


def _example_array(shape: tuple, dtype: Any) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        a = np.full(shape, 0.5, dtype=dtype)
        if len(shape) >= 2 and shape[-1] == shape[-2] and shape[-1] > 0:
            a = a + np.eye(shape[-1], dtype=dtype)  # invertible, positive definite
        return a
    if dtype.kind == "b":
        return np.ones(shape, dtype=dtype)
    return np.zeros(shape, dtype=dtype)


def _example(a: Any, k: int) -> Any:
    if isinstance(a, Node):
        if a._known():
            return a._value
        if a._dtype is None:  # a tuple of values
            return tuple(_example_array(_subst(s, lambda d: d.trial[k]), dt) for s, dt in a._shape)
        return _example_array(_subst(a._shape, lambda d: d.trial[k]), a._dtype)
    if isinstance(a, Dim):
        return a.trial[k]
    return a


def _spec(out: Any) -> Any:
    """``(shape, dtype)`` of an array result, or a list of them for tuples."""
    if isinstance(out, tuple):
        return [_spec(o) for o in out]
    if type(out) in (bool, int, float, complex):
        return ((), np.result_type(out))
    return (tuple(np.shape(out)), np.result_type(out))


def _describe(a: Any) -> str:
    if isinstance(a, Node):
        return f"{a.name!r} {a._shape if a._dtype is not None else '(tuple)'}"
    if isinstance(a, Dim):
        return "a size"
    s = getattr(a, "shape", None)
    return f"array {tuple(s)}" if s is not None else repr(a)


def _raise_conflict(prim: Primitive, ins: list, exc: BaseException) -> None:
    shapes = ", ".join(_describe(a) for a in ins)
    msg = f"{prim.name}: cannot be applied to {shapes}: {exc}"
    if isinstance(exc, (ValueError, IndexError)):
        raise ValueError(msg) from exc
    try:
        err = type(exc)(msg)
    except Exception:  # noqa: BLE001 - exception types with other signatures
        raise ValueError(msg) from exc
    raise err from exc


def _run_quietly(prim: Primitive, vals: list, params: dict) -> Any:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prim(*vals, **params)


def _handle(prim: Primitive, args: tuple, params: dict) -> Node:
    ins = []
    for a in args:
        if isinstance(a, Box) and not isinstance(a, Node):
            while isinstance(a, Box):  # an eager tensor: its value is a constant
                a = a.data
        if type(a) is _Abstract:  # the raw value of a node: the node, gradient stopped
            a = stop_gradient_p(a._node)
        ins.append(a)
    params = params or {}
    node_ins = [a for a in ins if isinstance(a, Node)]
    dims: list = []
    for a in ins:
        if isinstance(a, Dim):
            dims.append(a)
        elif isinstance(a, Node) and not a._known():
            _dims_in(a._shape, dims)
    param_dims = _dims_in(params, [])
    requires = prim.differentiable and any(a.requires_grad for a in node_ins)

    if all(a._known() for a in node_ins) and not dims and not param_dims:
        vals = [a._value if isinstance(a, Node) else a for a in ins]
        try:
            out = _run_quietly(prim, vals, params)
        except Exception as exc:  # noqa: BLE001
            _raise_conflict(prim, ins, exc)
        return _finish(prim, ins, params, [_spec(out)], [], value=out, requires=False)

    # Boolean-mask selection: the result's size depends on the mask's values.  Two runs with
    # masks holding one True and all True give two sizes, so the size becomes unknown.
    data_sized = prim.name in _DATA_SIZED
    runs = (0, 1) if dims or param_dims or data_sized else (0,)
    specs = []
    errors = []
    for k in runs:
        vals = [_example(a, k) for a in ins]
        if data_sized:
            vals = [_one_true(v) if k == 0 and isinstance(a, Node) and not a._known()
                    and getattr(v, "dtype", None) == np.bool_ else v for a, v in zip(ins, vals)]
        p = _subst(params, lambda d, k=k: d.trial[k]) if param_dims else params  # type: ignore[misc]  # (a lambda with a default)
        try:
            specs.append(_spec(_run_quietly(prim, vals, p)))
        except Exception as exc:  # noqa: BLE001 - any failure: try the other sizes
            errors.append(exc)
            specs.append(None)
    if all(s is None for s in specs):
        _raise_conflict(prim, ins, errors[0])
    ok = [s for s in specs if s is not None]
    # a data-sized result is never one of the sizes already seen (it only shares their trials)
    return _finish(prim, ins, params, ok, [] if data_sized else param_dims + dims,
                   requires=requires)


#: Primitives whose result size depends on the values of a boolean mask.
_DATA_SIZED = frozenset({"mask_select", "mask_scatter"})


def _one_true(mask: np.ndarray) -> np.ndarray:
    out = np.zeros(mask.shape, dtype=bool)
    if out.size:
        out.flat[0] = True
    return out


def _finish(prim: Primitive, ins: list, params: dict, specs: list, candidates: list,
            value: Any = None, requires: bool = False) -> Node:
    node = _new_node("op", None, None, None, value=value, prim=prim, args=tuple(ins),
                     params=params, requires_grad=requires)

    def merge(path: Any, parts: list) -> tuple:
        shape_a, dtype = parts[0]
        if len(parts) == 1:
            return tuple(shape_a), dtype
        shape_b = parts[1][0]
        if len(shape_a) != len(shape_b):
            return tuple(shape_a), dtype  # rank depends on a size: keep the first (rare)
        dims: list[Any] = []
        for j, (a, b) in enumerate(zip(shape_a, shape_b)):
            if a == b:
                dims.append(int(a))
                continue
            match = next((d for d in candidates if d.trial == (a, b)), None)
            dims.append(match if match is not None else Dim("axis", (node, path, j), (a, b)))
        return tuple(dims), dtype

    first = specs[0]
    if isinstance(first, list):  # a tuple of results
        node._shape = [merge(i, [s[i] for s in specs]) for i in range(len(first))]  # type: ignore[assignment]  # one (shape, dtype) per result
        node._dtype = None
    else:
        node._shape, node._dtype = merge(None, specs)
    return node


#: The level of every graph node (one for all graphs, created when this module loads).
GRAPH_LEVEL = new_staging_level(_handle)


# --- graph-level helpers: shape, stop_gradient, ones ---------------------------------------------

def _shape_np(x: Any) -> np.ndarray:
    return np.array(np.shape(x), dtype=np.int64)


_shape_p = Primitive("graph.shape", lambda xp, x: _shape_np(x), _shape_np, differentiable=False,
                     register=False)
_stop_p = stop_gradient_p
_ones_p = Primitive("graph.ones_like", lambda xp, x: xp.ones_like(x), np.ones_like,
                    differentiable=False, register=False)


def shape(x: Any) -> Any:
    """The run-time shape of ``x`` as an int64 node (``x.shape`` is the static shape)."""
    return _shape_p(_as_node(x))


def stop_gradient(x: Any) -> Any:
    """``x`` with no derivative flowing through it (works on nodes and tensors)."""
    return _stop_p(x)


def _as_node(x: Any) -> Node:
    if isinstance(x, Node):
        return x
    while isinstance(x, Box):
        x = x.data
    return constant(x)


# --- walking the graph ---------------------------------------------------------------------------


def _deps(n: Node) -> list:
    out = []
    if n._prim is not None:
        for a in n._args:
            if isinstance(a, Node):
                out.append(a)
            elif isinstance(a, Dim):
                out += a.nodes()
        if n._params:
            for d in _dims_in(n._params, []):
                out += d.nodes()
    return out


def _topo(outputs: Iterable[Node]) -> list:
    """Every node that ``outputs`` need, in creation order (a topological order)."""
    seen: dict[int, Node] = {}
    stack = list(outputs)
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen[id(n)] = n
        if n._known():
            continue
        stack.extend(_deps(n))
    return sorted(seen.values(), key=lambda n: n._seq)


# --- gradients -----------------------------------------------------------------------------------


def gradients(ys: Any, xs: Any, grad_ys: Any = None) -> Any:
    """Gradient nodes ``d sum(ys) / d x`` for each ``x`` in ``xs`` (``None`` if unconnected).

    ``ys`` is a node or a list of nodes (their gradients add up);
    ``grad_ys`` optionally gives the upstream gradient of each (default:
    ones).  The gradient nodes are built by running the VJP rules on nodes,
    so they can be evaluated, compiled, or differentiated again.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> from chainrule import graph as G
    >>> w = G.variable(np.array([1.0, 2.0]))
    >>> gw, = G.gradients(cnp.sum(w ** 3), [w])
    >>> ggw, = G.gradients(cnp.sum(gw), [w])      # second derivative: 6 w
    >>> ggw.forward()
    array([ 6., 12.])
    """
    ys = [ys] if not isinstance(ys, (list, tuple)) else list(ys)
    single = not isinstance(xs, (list, tuple))
    xs = [xs] if single else list(xs)
    if grad_ys is None:
        grad_ys = [None] * len(ys)
    elif not isinstance(grad_ys, (list, tuple)):
        grad_ys = [grad_ys]
    roots = []
    for y, gy in zip(ys, grad_ys):
        y = _as_node(y)
        if gy is None:
            if all(isinstance(s, int) for s in y.shape):
                gy = constant(np.ones(y.shape, dtype=y.dtype))
            else:
                gy = _ones_p(y)
        else:
            gy = _as_node(gy)
        roots.append((y, gy))
    targets = [x for x in xs if isinstance(x, Node) and x._prim is not None]
    leaves, found = backward_pass(roots, GRAPH_LEVEL, retain_graph=True, create_graph=True,
                                  target_nodes=targets)
    out = []
    for x in xs:
        if not isinstance(x, Node):
            raise TypeError(f"gradients: xs must be graph nodes, got {type(x).__name__}")
        if x._prim is None:
            hit = leaves.get(id(x))
            ct = hit[1] if hit is not None else None
        else:
            ct = found.get(x)
        out.append(None if ct is None else _as_node(ct))
    return out[0] if single else out
