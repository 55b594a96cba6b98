"""The reverse sweep: iterative, summing on fan-out, freeing as it goes.

Nodes are numbered when they are created, and a node's inputs are always
older than the node, so popping nodes from a max-heap of sequence numbers
visits them in a valid reverse topological order with no recursion.
Cotangents live in a local dict and are popped when their node runs; saved
values are dropped as soon as the node's rule has run (unless the graph is
retained).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from heapq import heappop, heappush
from typing import Any

from .primitive import Box, box_class

__all__ = ["backward_pass", "add_cotangents"]

_EMPTY: dict = {}


def add_cotangents(a: Any, b: Any) -> Any:
    """Sum two cotangents; ``None`` is a symbolic zero, tuples add entrywise."""
    if a is None:
        return b
    if b is None:
        return a
    if type(a) is tuple:
        return tuple(add_cotangents(x, y) for x, y in zip(a, b))
    return a + b


def _freed_error(node) -> RuntimeError:
    return RuntimeError(
        f"trying to backward through the graph a second time (at {node.prim.name!r}): its "
        "saved values were freed after the first backward(); pass retain_graph=True to the "
        "first backward() to keep them"
    )


def backward_pass(
    roots: Iterable[tuple[Box, Any]],
    level: int,
    retain_graph: bool = False,
    create_graph: bool = False,
    accept: Callable[[Any], bool] | None = None,
    target_nodes: Iterable[Any] = (),
) -> tuple[dict[int, tuple[Box, Any]], dict[Any, Any]]:
    """Propagate cotangents from ``roots`` back to the leaves at ``level``.

    Returns ``(leaves, targets)``: ``leaves`` maps ``id(leaf)`` to
    ``(leaf, cotangent)`` for every leaf that requires grad and was reached;
    ``targets`` maps each node in ``target_nodes`` that was reached to its
    total cotangent.  ``accept(node)`` may refuse to expand a node (a
    gradient tape only follows the operations it recorded).  With
    ``create_graph`` the rules run on boxes, so the gradient is itself
    recorded and can be differentiated again.
    """
    grads: dict[Any, Any] = {}
    heap: list = []
    leaves: dict[int, tuple[Box, Any]] = {}
    wanted = set(target_nodes)
    found: dict[Any, Any] = {}
    for box, g in roots:
        _send(box, g, level, grads, heap, leaves)
    cls = box_class[0]
    while heap:
        node = heappop(heap)[1]
        g = grads.pop(node)
        if node in wanted:
            found[node] = g
        if accept is not None and not accept(node):
            continue
        args = node.args
        if args is None:
            raise _freed_error(node)
        prim = node.prim
        params = node.params or _EMPTY
        if create_graph:
            vals = args
            out = cls(node.out, level, node, True)
        else:
            vals = tuple([a.data if isinstance(a, Box) and a._level == level else a for a in args])
            out = node.out
        rule = prim.vjp
        if type(rule) is tuple:
            for a, f in zip(args, rule):
                if isinstance(a, Box) and a._level == level and a.requires_grad:
                    if f is None:
                        raise TypeError(f"{prim.name!r} is not differentiable in this argument")
                    _send(a, f(g, out, *vals, **params), level, grads, heap, leaves)
        else:
            cts = rule(g, out, *vals, **params)
            for a, ct in zip(args, cts):
                if isinstance(a, Box) and a._level == level and a.requires_grad:
                    _send(a, ct, level, grads, heap, leaves)
        if not retain_graph:
            node.args = None
            node.out = None
    return leaves, found


def _send(box: Box, ct: Any, level: int, grads: dict, heap: list, leaves: dict) -> None:
    if ct is None:
        return
    node = box._node
    if node is None:
        key = id(box)
        prev = leaves.get(key)
        leaves[key] = (box, ct if prev is None else add_cotangents(prev[1], ct))
    elif node in grads:
        grads[node] = add_cotangents(grads[node], ct)
    else:
        grads[node] = ct
        heappush(heap, (-node.seq, node))
