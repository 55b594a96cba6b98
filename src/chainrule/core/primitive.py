"""Primitives, boxes and graph nodes: the one door every operation goes through.

A :class:`Primitive` holds, side by side, its forward implementation, its
reverse rule (VJP) and its forward rule (JVP).  Calling a primitive *binds*
it: on plain arrays it runs the implementation at NumPy speed; on boxes it
unwraps the highest trace level, recurses on the unwrapped values (which may
still be boxes of lower levels) and boxes the result with a graph node
(reverse levels) or a tangent (forward levels).

Rules receive the cotangent ``g`` (or tangent ``t``), the primal output
``out``, then the unwrapped inputs and the static parameters.  Cotangents and
tangents may carry extra *leading* batch axes (Jacobians push many basis
vectors through at once), so rules address axes of the inputs from the end.
A rule is either a tuple with one function per input (only those whose
input needs a derivative are called) or one joint function returning a tuple.

What a recorded operation keeps
-------------------------------
Each primitive declares in ``saves`` what its reverse rule reads:

==========  =====================================================================
``saves``   kept by the recorded operation until the reverse sweep
==========  =====================================================================
"both"      the inputs and the output (the default: always safe)
"inputs"    the input values; the output only as its shape and dtype
"output"    the output value; the inputs only as their shapes and dtypes
"nothing"   shapes and dtypes only (``add``, ``reshape``, ``reduce_sum``, ...)
==========  =====================================================================

A recorded operation is a :class:`Node`, separate from the box that holds
its result, so an intermediate result that no rule needs is freed as soon as
the user lets go of it.  A value that is not kept reaches the rule as a
:class:`ShapeOf` stand-in (``shape``, ``dtype``, ``ndim``, ``size`` only):
a rule that reads a value it did not declare fails loudly instead of keeping
memory alive silently.  NumPy arrays smaller than :data:`KEEP_BELOW` bytes
are always kept (a stand-in would cost more than it frees).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import NUMPY_TYPES, REFUSING_TYPES, namespace_of
from .trace import FORWARD_LEVELS, SPECIAL_LEVELS, STAGING, state

__all__ = ["Primitive", "Box", "Node", "ShapeOf", "record", "registry", "primitive", "SAVES"]

registry: dict[str, Primitive] = {}
_seq = itertools.count()

#: The values of ``Primitive.saves`` (see the module docstring).
SAVES = ("both", "inputs", "output", "nothing")
#: NumPy arrays of fewer bytes are kept even when the rule does not read them.
KEEP_BELOW = 4096


class Box:
    """A value seen by one trace level (the base of :class:`chainrule.Tensor`).

    A box made by a recorded operation points to that operation's graph
    node in ``_rec`` (a :class:`Node`); leaves and unrecorded values have
    ``_prim = None`` and ``_rec = None``.
    """

    __slots__ = ("data", "grad", "requires_grad", "_level", "_tangent", "_prim", "_rec",
                 "__weakref__")
    data: Any
    grad: Any
    requires_grad: bool
    _level: int
    _tangent: Any
    _prim: Any  # the Primitive that made it, or None
    _rec: Node | None
    # Slots of the box classes that are their own graph nodes (static graphs); a plain box
    # has none of them (the reverse sweep reads them only where ``node_of(box) is box``).
    _args: Any
    _params: Any
    _seq: int
    _vals: Any
    _ct: Any

    def __init__(self, data, level=0, node=None, requires_grad=False, tangent=None):
        if type(data) in _PY_DATA:  # Tensor([1.0, 2.0]) called directly, like torch.Tensor
            data = np.asarray(data)
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad or node is not None
        self._level = level
        self._tangent = tangent
        self._rec = node
        self._prim = None if node is None else node._prim

    @property
    def weak_type(self) -> type | None:
        """The Python number type this box stands for when NumPy's weak promotion applies
        to it (a recorded program's Python-float input); ``None`` for arrays."""
        return None

    @property
    def _node(self):
        """The recorded operation that made this box, or ``None`` for leaves."""
        return node_of(self)


def node_of(box: Box) -> Any:
    """The graph node of ``box``: its :class:`Node`, the box itself when it is its own node
    (static graphs), or ``None`` for a leaf."""
    try:
        node = box._rec
    except AttributeError:  # box classes that are their own graph nodes
        node = None
    if node is None and box._prim is not None:
        return box
    return node


class Node:
    """One recorded operation of a reverse level: what the reverse sweep needs, no more.

    ``_args`` are the inputs as the graph sees them (the :class:`Node` of a
    recorded input, a leaf box, or a raw value); ``_vals`` and ``_out`` the
    values the rule reads (see ``Primitive.saves``); ``_ct`` the cotangent
    being accumulated while a sweep runs.
    """

    __slots__ = ("_prim", "_args", "_params", "_seq", "_vals", "_out", "_ct", "_level",
                 "_owned", "__weakref__")
    _prim: Primitive
    _args: Any  # a tuple, None once the sweep freed it
    _params: Any
    _seq: int
    _vals: Any
    _out: Any
    _ct: Any
    _level: int
    _owned: bool
    requires_grad = True


class ShapeOf:
    """Stand-in for a value that a rule declared it does not read (shape and dtype only)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, a: Any) -> None:
        self.shape = a.shape
        self.dtype = a.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __repr__(self) -> str:
        return f"ShapeOf(shape={self.shape}, dtype={self.dtype})"


def _keep(v: Any) -> Any:
    """``v`` itself when it is small or not a NumPy array, else its :class:`ShapeOf`."""
    if type(v) is np.ndarray and v.nbytes >= KEEP_BELOW:
        return ShapeOf(v)
    return v


def _node_args(args: tuple, level: int) -> tuple:
    """The inputs as the graph keeps them: nodes instead of the boxes of recorded inputs."""
    out = []
    for a in args:
        if isinstance(a, Box) and a._level == level:
            n = node_of(a)
            if n is not None:
                a = n
        out.append(a)
    return tuple(out)


# (not tuple: multi-output primitives box a tuple of arrays)
_PY_DATA = frozenset({list, float, int, bool, complex})

#: The class that boxes results (``Tensor``, set by ``chainrule.tensor``).
box_class: list[type] = [Box]

#: Turns a (nested) list or tuple holding boxes into one differentiable array
#: (``chainrule.ops.creation`` sets it to its ``asarray``, which stacks them).
sequence_to_array: list[Callable[[Any], Any]] = [np.asarray]


def constant_value(x: Any) -> Any:
    """``x`` without its differentiation levels, for rules whose result must not be
    differentiated in ``x``; a staged value (a program's variable) stays, so programs read it."""
    while isinstance(x, Box) and x._level not in STAGING:
        x = x.data
    return x


def holds_box(seq: Any) -> bool:
    """True when a (nested) list or tuple holds a box anywhere."""
    for e in seq:
        if isinstance(e, Box) or (type(e) in (list, tuple) and holds_box(e)):
            return True
    return False


def record(cls, out, level, prim, args, params, vals, node_args=None):
    """A box of ``out`` whose node records ``prim`` applied to ``args`` (``node_args``:
    the inputs as the graph keeps them, when the caller has them already)."""
    node = Node()
    node._prim = prim
    node._args = _node_args(args, level) if node_args is None else node_args
    node._params = params
    saves = prim.saves
    if saves == "both":
        node._vals = vals
        node._out = out
    elif saves == "inputs":
        node._vals = vals
        node._out = out if type(out) is not np.ndarray else _keep(out)
    else:
        for v in vals:
            if type(v) is np.ndarray:  # (numbers and NumPy scalars are kept as they are)
                vals = (_keep(v),) if len(vals) == 1 else tuple([_keep(v) for v in vals])
                break
        node._vals = vals
        node._out = out if saves == "output" or type(out) is not np.ndarray else _keep(out)
    node._ct = None
    node._owned = False
    node._level = level
    node._seq = next(_seq)
    box = cls.__new__(cls)
    box.data = out
    box.grad = None
    box.requires_grad = True
    box._level = level
    box._tangent = None
    box._prim = prim
    box._rec = node
    return box


class Primitive:
    """An operation with an implementation and its derivative rules.

    Parameters
    ----------
    name: unique name (the registry key, used in error messages).
    impl: ``impl(xp, *args, **params)`` -- works for any array namespace ``xp``.
    np_impl: optional fast NumPy implementation ``np_impl(*args, **params)``.
    vjp, jvp: reverse and forward rules (see the module docstring);
        ``None`` for an input means "not differentiable in that input".
    differentiable: ``False`` for operations such as comparisons or argmax,
        whose results are plain arrays that carry no derivative.
    saves: what the reverse rule reads -- ``"both"`` (default), ``"inputs"``,
        ``"output"`` or ``"nothing"`` (see the module docstring).

    Attributes
    ----------
    vjp_inplace: ``None`` or a tuple like ``vjp`` of rules on plain NumPy values that
        may overwrite the cotangent ``g`` (one pass, no temporary).  The reverse sweep
        calls one only when it owns ``g`` (made it, told nobody), that input alone
        needs a cotangent and no graph of the gradient is being built; ``vjp`` stays
        the definition (``create_graph=True`` and the tests use it).
    """

    __slots__ = ("name", "impl", "np_impl", "box_impl", "vjp", "jvp", "differentiable",
                 "saves", "vjp_inplace", "np_out_impl")
    is_primitive = True  # lets lower layers (backend) recognise a primitive without importing it

    def __init__(
        self,
        name: str,
        impl: Callable[..., Any],
        np_impl: Callable[..., Any] | None = None,
        vjp: Any = None,
        jvp: Any = None,
        differentiable: bool = True,
        register: bool = True,
        saves: str = "both",
    ) -> None:
        if saves not in SAVES:
            raise ValueError(f"primitive {name!r}: saves must be one of {SAVES}, got {saves!r}")
        self.name = name
        self.saves = saves
        # Optional reverse rules on NumPy values that may overwrite the cotangent ``g``
        # (a tuple like ``vjp``): the sweep uses one when it owns ``g`` and only that input
        # needs a derivative, and never while it builds a graph of the gradient.
        self.vjp_inplace: tuple | None = None
        self.impl = impl
        self.np_impl = np_impl if np_impl is not None else _bind_numpy(impl)
        # What runs on the NumPy data of boxes (may skip checks that np_impl needs for
        # arbitrary raw inputs, e.g. Python's operators on NumPy scalars).
        self.box_impl = self.np_impl
        # Optional ``np_out_impl(*args, out=buf, **params)``: np_impl computed into ``buf``
        # (the result's shape and dtype; returns it or a view of it); cr.compile uses it.
        self.np_out_impl: Callable[..., Any] | None = None
        self.vjp = vjp
        self.jvp = jvp
        self.differentiable = differentiable
        if register:
            if name in registry:
                raise ValueError(f"a primitive named {name!r} is already registered")
            registry[name] = self

    def __repr__(self) -> str:
        return f"<chainrule primitive {self.name}>"

    def defvjp(self, *rules: Any) -> Primitive:
        self.vjp = rules if len(rules) != 1 or not callable(rules[0]) else rules[0]
        return self

    def __call__(self, *args: Any, **params: Any) -> Any:
        # Fast paths for one and two inputs at one level over NumPy data (the common case);
        # everything else (several levels, other libraries, forward mode) goes to _bind.
        n = len(args)
        if n == 2:
            x, y = args
            if isinstance(x, Box):
                lvl = x._level
                xd = x.data
                if isinstance(y, Box):
                    if y._level != lvl:
                        return self._bind(args, params)
                    yd = y.data
                    tracked = x.requires_grad or y.requires_grad
                else:
                    yd = y
                    tracked = x.requires_grad
            elif isinstance(y, Box):
                lvl = y._level
                xd = x
                yd = y.data
                tracked = y.requires_grad
            else:
                if type(x) in NUMPY_TYPES and type(y) in NUMPY_TYPES:
                    return self.np_impl(x, y, **params)
                return self._raw_other(args, params)
            if (type(xd) not in NUMPY_TYPES or type(yd) not in NUMPY_TYPES
                    or lvl in SPECIAL_LEVELS or not self.differentiable):
                return self._bind(args, params)
            try:
                out = self.box_impl(xd, yd, **params)
            except (ValueError, TypeError) as exc:  # zero cost unless raised
                raise _explained(self, (xd, yd), exc) from exc
            cls = box_class[0]
            if tracked and lvl > state.grad_floor:
                # the graph keeps the inputs' nodes, not their boxes (fast paths never see
                # boxes that are their own nodes: those live at special levels)
                if isinstance(x, Box) and x._rec is not None:
                    x = x._rec
                if isinstance(y, Box) and y._rec is not None:
                    y = y._rec
                return record(cls, out, lvl, self, args, params or None, (xd, yd), (x, y))
            return cls(out, lvl)
        if n == 1:
            x = args[0]
            if isinstance(x, Box):
                xd = x.data
                lvl = x._level
                if type(xd) in NUMPY_TYPES and lvl not in SPECIAL_LEVELS and self.differentiable:
                    try:
                        out = self.np_impl(xd, **params)
                    except (ValueError, TypeError) as exc:
                        raise _explained(self, (xd,), exc) from exc
                    cls = box_class[0]
                    if x.requires_grad and lvl > state.grad_floor:
                        return record(cls, out, lvl, self, args, params or None, (xd,),
                                      (x if x._rec is None else x._rec,))
                    return cls(out, lvl)
                return self._bind(args, params)
            if type(x) in NUMPY_TYPES:
                return self.np_impl(x, **params)
            return self._raw_other(args, params)
        if n > 2:
            return self._call_many(args, params)
        return self._bind(args, params)

    def _call_many(self, args: tuple, params: dict) -> Any:
        """The fast path for three or more inputs: boxes of one level over NumPy data."""
        lvl = -1
        tracked = False
        vals = []
        nodes = []  # the inputs as the graph keeps them
        for a in args:
            if isinstance(a, Box):
                if a._level != lvl:
                    # (boxes that are their own graph nodes live at special levels)
                    if lvl >= 0 or a._level in SPECIAL_LEVELS:
                        return self._bind(args, params)
                    lvl = a._level
                if a.requires_grad:
                    tracked = True
                nodes.append(a if a._rec is None else a._rec)
                a = a.data
            else:
                nodes.append(a)
            if type(a) not in NUMPY_TYPES:
                return self._bind(args, params)
            vals.append(a)
        if lvl < 0 or not self.differentiable:
            return self._bind(args, params)
        try:
            out = self.box_impl(*vals, **params) if params else self.box_impl(*vals)
        except (ValueError, TypeError) as exc:  # zero cost unless raised
            raise _explained(self, vals, exc) from exc
        cls = box_class[0]
        if tracked and lvl > state.grad_floor:
            return record(cls, out, lvl, self, args, params or None, tuple(vals), tuple(nodes))
        return cls(out, lvl)

    def _bind(self, args: tuple, params: dict) -> Any:
        """The general bind: any number of inputs, boxes of several levels, forward mode."""
        top = -1
        for a in args:
            if isinstance(a, Box):
                if a._level > top:
                    top = a._level
            elif type(a) in (list, tuple) and holds_box(a):  # a list of tensors is an array
                return self(*(sequence_to_array[0](a) if type(a) in (list, tuple) else a
                              for a in args), **params)
        if top < 0:
            for a in args:
                if type(a) not in NUMPY_TYPES:
                    return self._raw_other(args, params)
            return self.np_impl(*args, **params)
        if top in STAGING:
            return STAGING[top](self, args, params)
        if top in FORWARD_LEVELS:
            return self._bind_forward(args, params, top)
        # Unwrap the top level; note whether lower-level boxes remain (nested transforms).
        vals = []
        tracked = False
        nested = False
        for a in args:
            if isinstance(a, Box) and a._level == top:
                if a.requires_grad:
                    tracked = True
                a = a.data
            if not nested and type(a) not in NUMPY_TYPES:
                nested = True
            vals.append(a)
        out = self._apply_below(vals, nested, params)
        if not self.differentiable:
            return out
        if tracked and top > state.grad_floor:
            return record(box_class[0], out, top, self, args, params or None, tuple(vals))
        return box_class[0](out, top)

    def _apply_below(self, vals: list, nested: bool, params: dict) -> Any:
        """The result on the unwrapped inputs: bound again when boxes of lower levels remain
        (nested transforms record it there), else computed on the NumPy values."""
        if nested:
            return self(*vals, **params)
        try:
            return self.np_impl(*vals, **params)
        except (ValueError, TypeError) as exc:
            raise _explained(self, vals, exc) from exc

    def _bind_forward(self, args: tuple, params: dict, top: int) -> Any:
        """Bind at the forward level ``top``: the output and its tangent (one pass over the
        inputs; values of lower levels go down to be recorded there, nested transforms)."""
        vals = []
        tangents = []
        pushed = False
        nested = False
        for a in args:
            t = None
            if isinstance(a, Box) and a._level == top:
                t = a._tangent
                a = a.data
                if t is not None:
                    pushed = True
            if not nested and type(a) not in NUMPY_TYPES:
                nested = True
            vals.append(a)
            tangents.append(t)
        out = self._apply_below(vals, nested, params)
        if not self.differentiable:
            return out
        tangent = _jvp_pushed(self, tangents, out, vals, params, None) if pushed else None
        return box_class[0](out, top, None, False, tangent)

    def _raw_other(self, args: tuple, params: dict) -> Any:
        """Raw inputs that are not all NumPy: nested lists, or another array library."""
        if any(type(a) in (list, tuple) and holds_box(a) for a in args):
            return self._bind(args, params)
        xp = namespace_of(*args)
        if xp is not np:
            return self.impl(xp, *args, **params)
        args = tuple(np.asarray(a) if isinstance(a, (list, tuple)) else a for a in args)
        return self.np_impl(*args, **params)


def _explained(prim: Primitive, values: Any, exc: Exception) -> Exception:
    """The same kind of error, naming the operation and its inputs' shapes and dtypes."""
    if str(exc).startswith(prim.name + ":"):
        return exc
    described = ", ".join(
        f"shape {tuple(v.shape)} {v.dtype}" if hasattr(v, "shape") else repr(v) for v in values
    )
    try:
        return type(exc)(f"{prim.name}: {exc} (inputs: {described})")
    except Exception:  # an exception type with a special constructor: keep it as it is
        return exc


def lift_refusing(values: Any) -> Any:
    """``values`` (a rule's cotangent or tangents, output and inputs) with the raw arrays of a
    library that refuses foreign operands made inert Tensors, when boxes are among them.

    Rules use Python operators in any order (``x * t``); array-api-strict's operators raise
    ``TypeError`` for a Tensor operand instead of deferring to it, which nested transforms
    meet when raw values and an enclosing level's boxes reach one rule.  The engine calls
    this only once such a library has been seen (``REFUSING_TYPES`` is not empty).
    """
    if not any(isinstance(v, Box) for v in values):
        return values
    cls = box_class[0]
    return type(values)(cls(v) if type(v) in REFUSING_TYPES else v for v in values)


def _bind_numpy(impl: Callable[..., Any]) -> Callable[..., Any]:
    def np_impl(*args: Any, **params: Any) -> Any:
        return impl(np, *args, **params)

    return np_impl


def apply_jvp(prim: Primitive, tangents: list, out: Any, vals: Any, params: dict,
              who: str | None = None) -> Any:
    """The output tangent of ``prim`` from its inputs' ``tangents`` (``None``: a zero tangent),
    by its JVP rule; ``who`` names the transform in errors (default: forward mode)."""
    for t in tangents:
        if t is not None:
            return _jvp_pushed(prim, tangents, out, vals, params, who)
    return None


def _jvp_pushed(prim: Primitive, tangents: list, out: Any, vals: Any, params: dict,
                who: str | None) -> Any:
    """:func:`apply_jvp` once some tangent is known not to be ``None``."""
    rule = prim.jvp
    if rule is None:
        raise NotImplementedError(
            f"{who}: {prim.name!r} has no forward-mode (JVP) rule" if who else
            f"forward-mode differentiation of {prim.name!r} is not implemented (no JVP rule)"
        )
    if REFUSING_TYPES:  # (array-api-strict: see lift_refusing)
        n = len(tangents)
        lifted = lift_refusing((*tangents, out, *vals))
        tangents, out, vals = list(lifted[:n]), lifted[n], lifted[n + 1:]
    if callable(rule):
        return rule(tangents, out, *vals, **params)
    total = None
    for t, f in zip(tangents, rule):
        if t is None:
            continue
        if f is None:
            raise NotImplementedError(
                f"{who}: {prim.name!r} is not differentiable in this input" if who else
                f"{prim.name!r} is not differentiable in this argument (forward mode)"
            )
        term = f(t, out, *vals, **params) if params else f(t, out, *vals)
        total = term if total is None else total + term
    return total


def primitive(
    name: str,
    impl: Callable[..., Any],
    np_impl: Callable[..., Any] | None = None,
    vjp: Any = None,
    jvp: Any = None,
    differentiable: bool = True,
    saves: str = "both",
) -> Primitive:
    """Declare and register a primitive (see :class:`Primitive`)."""
    return Primitive(name, impl, np_impl, vjp, jvp, differentiable, saves=saves)
