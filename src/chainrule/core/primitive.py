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
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import NUMPY_TYPES, namespace_of
from .trace import FORWARD_LEVELS, SPECIAL_LEVELS, STAGING, state

__all__ = ["Primitive", "Box", "record", "registry", "primitive"]

registry: dict[str, Primitive] = {}
_seq = itertools.count()


class Box:
    """A value seen by one trace level (the base of :class:`chainrule.Tensor`).

    A box made by a recorded operation *is* that operation's graph node: it
    keeps the primitive, its inputs and parameters and a sequence number
    (one object per operation keeps the graph small and cheap to build).
    Leaves and unrecorded values have ``_prim = None``.
    """

    __slots__ = ("data", "grad", "requires_grad", "_level", "_tangent", "_prim", "_args",
                 "_params", "_seq", "_vals", "_ct", "__weakref__")

    def __init__(self, data, level=0, node=None, requires_grad=False, tangent=None):
        # ``node`` is accepted for symmetry with ``record`` and must be None here.
        if type(data) in _PY_DATA:  # Tensor([1.0, 2.0]) called directly, like torch.Tensor
            data = np.asarray(data)
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self._level = level
        self._tangent = tangent
        self._prim = None
        self._ct = None

    @property
    def _node(self):
        """The recorded operation that made this box (itself), or ``None`` for leaves."""
        return self if self._prim is not None else None


# (not tuple: multi-output primitives box a tuple of arrays)
_PY_DATA = frozenset({list, float, int, bool, complex})

#: The class that boxes results (``Tensor``, set by ``chainrule.tensor``).
box_class: list[type] = [Box]

#: Turns a (nested) list or tuple holding boxes into one differentiable array
#: (``chainrule.ops.creation`` sets it to its ``asarray``, which stacks them).
sequence_to_array: list[Callable[[Any], Any]] = [np.asarray]


def holds_box(seq: Any) -> bool:
    """True when a (nested) list or tuple holds a box anywhere."""
    for e in seq:
        if isinstance(e, Box) or (type(e) in (list, tuple) and holds_box(e)):
            return True
    return False


def record(cls, out, level, prim, args, params, vals):
    """A box of ``out`` that records ``prim`` applied to ``args`` (the graph node)."""
    box = cls.__new__(cls)
    box.data = out
    box.grad = None
    box.requires_grad = True
    box._level = level
    box._tangent = None
    box._prim = prim
    box._args = args
    box._params = params
    box._vals = vals  # the inputs as this level sees them, for the rules
    box._ct = None  # the cotangent being accumulated while a reverse sweep runs
    box._seq = next(_seq)
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
    """

    __slots__ = ("name", "impl", "np_impl", "box_impl", "vjp", "jvp", "differentiable")
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
    ) -> None:
        self.name = name
        self.impl = impl
        self.np_impl = np_impl if np_impl is not None else _bind_numpy(impl)
        # What runs on the NumPy data of boxes (may skip checks that np_impl needs for
        # arbitrary raw inputs, e.g. Python's operators on NumPy scalars).
        self.box_impl = self.np_impl
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
                # record() inlined: this is the hottest line of the library
                box = cls.__new__(cls)
                box.data = out
                box.grad = None
                box.requires_grad = True
                box._level = lvl
                box._tangent = None
                box._prim = self
                box._args = args
                box._params = params or None
                box._vals = (xd, yd)
                box._ct = None
                box._seq = next(_seq)
                return box
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
                        box = cls.__new__(cls)
                        box.data = out
                        box.grad = None
                        box.requires_grad = True
                        box._level = lvl
                        box._tangent = None
                        box._prim = self
                        box._args = args
                        box._params = params or None
                        box._vals = (xd,)
                        box._ct = None
                        box._seq = next(_seq)
                        return box
                    return cls(out, lvl)
                return self._bind(args, params)
            if type(x) in NUMPY_TYPES:
                return self.np_impl(x, **params)
            return self._raw_other(args, params)
        return self._bind(args, params)

    def _bind(self, args: tuple, params: dict) -> Any:
        """The general bind: any number of inputs, boxes of several levels, forward mode."""
        for a in args:
            if type(a) in (list, tuple) and holds_box(a):  # a list of tensors is an array
                return self(*(sequence_to_array[0](a) if type(a) in (list, tuple) else a
                              for a in args), **params)
        top = -1
        for a in args:
            if isinstance(a, Box) and a._level > top:
                top = a._level
        if top < 0:
            for a in args:
                if type(a) not in NUMPY_TYPES:
                    return self._raw_other(args, params)
            return self.np_impl(*args, **params)
        if top in STAGING:
            return STAGING[top](self, args, params)
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
        if nested:
            out = self(*vals, **params)
        else:
            try:
                out = self.np_impl(*vals, **params)
            except (ValueError, TypeError) as exc:
                raise _explained(self, vals, exc) from exc
        if not self.differentiable:
            return out
        if top in FORWARD_LEVELS:
            return box_class[0](out, top, None, False,
                                _push_tangents(self, args, vals, params, out, top))
        if tracked and top > state.grad_floor:
            return record(box_class[0], out, top, self, args, params or None, tuple(vals))
        return box_class[0](out, top)


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


def _bind_numpy(impl: Callable[..., Any]) -> Callable[..., Any]:
    def np_impl(*args: Any, **params: Any) -> Any:
        return impl(np, *args, **params)

    return np_impl


def _push_tangents(prim, args, vals, params, out, level):
    """The output tangent of ``prim`` at a forward level (``None`` is a zero tangent)."""
    rule = prim.jvp
    tangents = [
        a._tangent if isinstance(a, Box) and a._level == level else None for a in args
    ]
    if all(t is None for t in tangents):
        return None
    if rule is None:
        raise NotImplementedError(
            f"forward-mode differentiation of {prim.name!r} is not implemented (no JVP rule)"
        )
    if callable(rule):
        return rule(tangents, out, *vals, **params)
    total = None
    for t, f in zip(tangents, rule):
        if t is None:
            continue
        if f is None:
            raise NotImplementedError(
                f"{prim.name!r} is not differentiable in this argument (forward mode)"
            )
        term = f(t, out, *vals, **params)
        total = term if total is None else total + term
    return total


def primitive(
    name: str,
    impl: Callable[..., Any],
    np_impl: Callable[..., Any] | None = None,
    vjp: Any = None,
    jvp: Any = None,
    differentiable: bool = True,
) -> Primitive:
    """Declare and register a primitive (see :class:`Primitive`)."""
    return Primitive(name, impl, np_impl, vjp, jvp, differentiable)
