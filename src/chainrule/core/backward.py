"""The reverse sweep: iterative, summing on fan-out, freeing as it goes.

Recorded boxes are numbered when they are made, and a box's inputs are
always older than the box, so popping boxes from a max-heap of sequence
numbers visits them in a valid reverse topological order with no
recursion.  Cotangents live in a local dict and are popped when their box's
rule runs; saved inputs are dropped as soon as the rule has run (unless the
graph is retained).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from heapq import heappop, heappush
from typing import Any

import numpy as np

from ..backend import REFUSING_TYPES
from .hooks import call_hook
from .primitive import Box, Node, box_class, lift_refusing, node_of
from .version import check_saved, modified, newest

__all__ = ["backward_pass", "add_cotangents", "tensor_hooks"]

#: ``Tensor.register_hook`` functions by ``id`` of the leaf box or of the recorded node
#: (empty, and never looked at, when unused).
tensor_hooks: dict[int, list] = {}


def _hooked(box: Any, g: Any) -> Any:
    """``g`` after the hooks of ``box`` (a hook returning non-None replaces it)."""
    for fn in tuple(tensor_hooks.get(id(box), ())):
        r = call_hook(fn, "tensor hook", g)
        if r is not None:
            g = r
    return g


def add_cotangents(a: Any, b: Any) -> Any:
    """Sum two cotangents; ``None`` is a symbolic zero, tuples add entrywise."""
    if a is None:
        return b
    if b is None:
        return a
    if type(a) is tuple:
        return tuple(add_cotangents(x, y) for x, y in zip(a, b))
    if type(a) in REFUSING_TYPES and isinstance(b, Box):
        return b + a  # (its operators refuse a Tensor on the right)
    return a + b


def _freed_error(box: Box) -> RuntimeError:
    return RuntimeError(
        f"trying to backward through the graph a second time (at {box._prim.name!r}): its "
        "saved values were freed after the first backward(); pass retain_graph=True to the "
        "first backward() to keep them"
    )


def backward_pass(
    roots: Iterable[tuple[Box, Any]],
    level: int,
    retain_graph: bool = False,
    create_graph: bool = False,
    accept: Callable[[Box], bool] | None = None,
    target_nodes: Iterable[Box] = (),
) -> tuple[dict[int, tuple[Box, Any]], dict[Box, Any]]:
    """Propagate cotangents from ``roots`` back to the leaves at ``level``.

    Returns ``(leaves, targets)``: ``leaves`` maps ``id(leaf)`` to
    ``(leaf, cotangent)`` for every leaf that requires grad and was reached;
    ``targets`` maps each recorded box in ``target_nodes`` that was reached
    to its total cotangent.  ``accept(box)`` may refuse to expand a box (a
    gradient tape only follows the operations it recorded).  With
    ``create_graph`` the rules run on boxes, so the gradient is itself
    recorded and can be differentiated again.
    """
    heap: list = []
    leaves: dict[int, tuple[Box, Any]] = {}
    wanted = set(target_nodes)
    found: dict[Box, Any] = {}
    # Cotangent arrays that this sweep made and nobody else sees: ids of leaves' sums, and
    # ``node._owned`` for pending ones.  Without create_graph they are updated in place.
    own: set[int] = set()
    lean = not create_graph
    hooks = tensor_hooks
    changed = modified
    # While the sweep runs, a recorded node keeps its pending cotangent in ``_ct``
    # (cheaper than a dict); ``_ct is not None`` means "already on the heap".
    try:
        for box, g in roots:
            node = node_of(box) if isinstance(box, Box) else box
            _send(box if node is None else node, g, heap, leaves)
        while heap:
            node = heappop(heap)[1]
            g = node._ct
            node._ct = None
            if hooks and id(node) in hooks:
                g = _hooked(node, g)
                node._owned = False  # the hook may keep g: never written into
            if wanted and node in wanted:
                found[node] = g
                node._owned = False  # handed to the caller: never written into
            if accept is not None and not accept(node):
                continue
            args = node._args
            if args is None:
                raise _freed_error(node)
            if changed and node._seq < newest[0]:
                check_saved(node)
            params = node._params
            if lean and type(node) is Node:  # (the common case first)
                vals = node._vals
                out = node._out
            elif type(node) is not Node:  # a box that is its own node (static graphs)
                vals = args if create_graph else node._vals
                out = node if create_graph else node.data
            else:
                vals = tuple(_as_box(a, v, level) for a, v in zip(args, node._vals))
                out = box_of(node, node._out)
            prim = node._prim
            rule = prim.vjp
            if REFUSING_TYPES:
                g, out, *vals = lift_refusing((g, out, *vals))
            if type(rule) is tuple:
                inplace = prim.vjp_inplace if lean and node._owned else None
                if inplace is not None:
                    if len(args) == 1 and type(out) is np.ndarray \
                            and not isinstance(vals[0], Box):  # (one input: no search)
                        inplace = inplace[0]
                    else:
                        inplace = _only_input(args, inplace, level, vals, out)
                for a, f in zip(args, rule):
                    if type(a) is Node:
                        if a._level != level:
                            continue
                    elif not (isinstance(a, Box) and a.requires_grad and a._level == level):
                        continue
                    if f is None:
                        raise TypeError(
                            f"{prim.name!r} is not differentiable in this argument")
                    if inplace is not None:  # g is ours and goes to this input alone
                        f = inplace
                    ct = f(g, out, *vals, **params) if params else f(g, out, *vals)
                    if ct is None:
                        continue
                    fresh = lean and type(ct) is np.ndarray and (
                        ct is g if inplace is not None else ct is not g and ct.base is None)
                    # _send() inlined: this loop runs once per edge of the graph
                    if a._prim is None:
                        key = id(a)
                        if key not in leaves:  # (the first cotangent of this leaf)
                            leaves[key] = (a, ct)
                            if fresh:
                                own.add(key)
                        else:
                            _send_leaf(a, ct, leaves, own if lean else None, fresh)
                    elif a._ct is None:
                        a._ct = ct
                        if type(a) is Node:
                            a._owned = fresh
                        heappush(heap, (-a._seq, a))
                    elif lean and type(a) is Node and a._owned and (
                            type(ct) is np.ndarray and ct.shape == a._ct.shape
                            and ct.dtype == a._ct.dtype or _fits(a._ct, ct)):
                        np.add(a._ct, ct, out=a._ct)
                    else:
                        a._ct = add_cotangents(a._ct, ct)
                        if type(a) is Node:
                            a._owned = lean and type(a._ct) is np.ndarray
            else:
                cts = rule(g, out, *vals, **params) if params else rule(g, out, *vals)
                for a, ct in zip(args, cts):
                    if (type(a) is Node or isinstance(a, Box) and a.requires_grad) \
                            and a._level == level:
                        _send(a, ct, heap, leaves)
            if not retain_graph:
                node._args = node._vals = None
                if type(node) is Node:
                    node._out = None
    finally:
        for _, node in heap:  # an error stopped the sweep: leave no pending cotangents behind
            node._ct = None
    handed: set[int] = set()  # (one cotangent reaching two leaves: each gets its own array)
    for key, (leaf, ct) in leaves.items():
        if type(ct) is np.ndarray:
            if id(ct) in handed:
                ct = ct.copy()
                leaves[key] = (leaf, ct)
            handed.add(id(ct))
            if ct.dtype.kind != "c":
                continue
        if _is_complex(ct) and not _is_complex(leaf.data):
            leaves[key] = (leaf, ct.real)
    for box, ct in found.items():
        value = box.data if isinstance(box, Box) else box._out  # (None once freed: unknown)
        if _is_complex(ct) and value is not None and not _is_complex(value):
            found[box] = ct.real
    if hooks:  # a leaf's hooks see its total gradient before it is accumulated
        for key, (leaf, g) in leaves.items():
            if key in hooks:
                leaves[key] = (leaf, _hooked(leaf, g))
    return leaves, found


def _is_complex(x: Any) -> bool:
    """Complex data (a real input that meets a complex cotangent keeps its real part:
    the cotangent is the transpose of a real-linear map, whose imaginary part would
    point out of the real input's space)."""
    while isinstance(x, Box):
        x = x.data
    dtype = getattr(x, "dtype", None)
    return dtype is not None and getattr(dtype, "kind", "") == "c"


def _only_input(args: tuple, inplace: tuple, level: int, vals: tuple, out: Any) -> Any:
    """The in-place rule of the one input that needs a cotangent, or ``None`` (also when a
    value is a box of an enclosing transform: in-place rules take plain NumPy values)."""
    if isinstance(out, Box):
        return None
    for v in vals:
        if isinstance(v, Box):
            return None
    found = None
    for a, f in zip(args, inplace):
        if (type(a) is Node or isinstance(a, Box) and a.requires_grad) and a._level == level:
            if found is not None or f is None:
                return None
            found = f
    return found


def _fits(acc: Any, ct: Any) -> bool:
    """``acc += ct`` in place gives what ``acc + ct`` would (same shape and dtype)."""
    return (type(ct) is np.ndarray or isinstance(ct, np.generic)) and type(acc) is np.ndarray \
        and acc.shape == np.shape(ct) and acc.dtype == ct.dtype


def box_of(node: Node, value: Any) -> Box:
    """A box of ``value`` that stands for the result of ``node`` (gradients flow into it)."""
    return box_class[0](value, node._level, node)


def _as_box(a: Any, v: Any, level: int) -> Any:
    """The input of a rule when the gradient graph is built: boxes at ``level``."""
    if type(a) is Node:
        return box_of(a, v)
    return a


def _send_leaf(box: Box, ct: Any, leaves: dict, own: set | None = None,
               fresh: bool = False) -> None:
    key = id(box)
    prev = leaves.get(key)
    if prev is None:
        leaves[key] = (box, ct)
        if fresh:
            assert own is not None  # (fresh only when own is given)
            own.add(key)
    elif own is not None and key in own and _fits(prev[1], ct):
        np.add(prev[1], ct, out=prev[1])
    else:
        total = add_cotangents(prev[1], ct)
        leaves[key] = (box, total)
        if own is not None and type(total) is np.ndarray:
            own.add(key)


def _send(box: Box | Node, ct: Any, heap: list, leaves: dict) -> None:
    if ct is None:
        return
    if box._prim is None:
        _send_leaf(box, ct, leaves)
    elif box._ct is None:
        box._ct = ct
        heappush(heap, (-box._seq, box))
    else:
        box._ct = add_cotangents(box._ct, ct)
