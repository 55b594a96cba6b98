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
from .trace import FORWARD_LEVELS, state

__all__ = ["Primitive", "Box", "Node", "registry", "primitive"]

registry: dict[str, Primitive] = {}
_seq = itertools.count()


class Box:
    """A value seen by one trace level (the base of :class:`chainrule.Tensor`)."""

    __slots__ = ("data", "grad", "requires_grad", "_node", "_level", "_tangent", "__weakref__")

    def __init__(self, data, level=0, node=None, requires_grad=False, tangent=None):
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self._node = node
        self._level = level
        self._tangent = tangent


#: The class that boxes results (``Tensor``, set by ``chainrule.tensor``).
box_class: list[type] = [Box]


class Node:
    """One recorded application of a primitive: what its rules need, nothing more."""

    __slots__ = ("prim", "args", "params", "out", "seq")

    def __init__(self, prim, args, params, out):
        self.prim = prim
        self.args = args
        self.params = params
        self.out = out
        self.seq = next(_seq)

    def __repr__(self) -> str:
        return f"<Node {self.prim.name} #{self.seq}>"


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

    __slots__ = ("name", "impl", "np_impl", "vjp", "jvp", "differentiable")

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
        top = -1
        for a in args:
            if isinstance(a, Box) and a._level > top:
                top = a._level
        if top < 0:
            for a in args:
                if type(a) not in NUMPY_TYPES:
                    xp = namespace_of(*args)
                    if xp is not np:
                        return self.impl(xp, *args, **params)
                    break
            return self.np_impl(*args, **params)
        return _bind_boxed(self, args, params, top)


def _bind_numpy(impl: Callable[..., Any]) -> Callable[..., Any]:
    def np_impl(*args: Any, **params: Any) -> Any:
        return impl(np, *args, **params)

    return np_impl


def _bind_boxed(prim: Primitive, args: tuple, params: dict, top: int) -> Any:
    vals = tuple([a.data if isinstance(a, Box) and a._level == top else a for a in args])
    out = prim(*vals, **params)
    if not prim.differentiable:
        return out
    cls = box_class[0]
    if top in FORWARD_LEVELS:
        return cls(out, top, None, False, _push_tangents(prim, args, vals, params, out, top))
    if top > state.grad_floor:
        for a in args:
            if isinstance(a, Box) and a._level == top and a.requires_grad:
                return cls(out, top, Node(prim, args, params or None, out), True)
    return cls(out, top)


def _push_tangents(prim, args, vals, params, out, level):
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
