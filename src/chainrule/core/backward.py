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

from .hooks import call_hook
from .primitive import Box
from .version import check_saved, modified

__all__ = ["backward_pass", "add_cotangents", "tensor_hooks"]

#: ``Tensor.register_hook`` functions by ``id(box)`` (empty, and never looked at, when unused).
tensor_hooks: dict[int, list] = {}


def _hooked(box: Box, g: Any) -> Any:
    """``g`` after the box's hooks (a hook returning non-None replaces it)."""
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
    hooks = tensor_hooks
    changed = modified
    found: dict[Box, Any] = {}
    # While the sweep runs, a recorded box keeps its pending cotangent in ``_ct``
    # (cheaper than a dict); ``_ct is not None`` means "already on the heap".
    try:
        for box, g in roots:
            _send(box, g, heap, leaves)
        while heap:
            box = heappop(heap)[1]
            g = box._ct
            box._ct = None
            if hooks and id(box) in hooks:
                g = _hooked(box, g)
            if wanted and box in wanted:
                found[box] = g
            if accept is not None and not accept(box):
                continue
            args = box._args
            if args is None:
                raise _freed_error(box)
            if changed:
                check_saved(box)
            params = box._params
            if create_graph:
                vals = args
                out = box
            else:
                vals = box._vals
                out = box.data
            rule = box._prim.vjp
            if type(rule) is tuple:
                for a, f in zip(args, rule):
                    if isinstance(a, Box) and a.requires_grad and a._level == level:
                        if f is None:
                            raise TypeError(
                                f"{box._prim.name!r} is not differentiable in this argument")
                        ct = f(g, out, *vals, **params) if params else f(g, out, *vals)
                        if ct is None:
                            continue
                        # _send() inlined: this loop runs once per edge of the graph
                        if a._prim is None:
                            _send_leaf(a, ct, leaves)
                        elif a._ct is None:
                            a._ct = ct
                            heappush(heap, (-a._seq, a))
                        else:
                            a._ct = add_cotangents(a._ct, ct)
            else:
                cts = rule(g, out, *vals, **params) if params else rule(g, out, *vals)
                for a, ct in zip(args, cts):
                    if isinstance(a, Box) and a.requires_grad and a._level == level:
                        _send(a, ct, heap, leaves)
            if not retain_graph:
                box._args = box._vals = None
    finally:
        for _, box in heap:  # an error stopped the sweep: leave no pending cotangents behind
            box._ct = None
    for key, (leaf, ct) in leaves.items():
        if _is_complex(ct) and not _is_complex(leaf.data):
            leaves[key] = (leaf, ct.real)
    for box, ct in found.items():
        if _is_complex(ct) and not _is_complex(box.data):
            found[box] = ct.real
    if tensor_hooks:  # a leaf's hooks see its total gradient before it is accumulated
        for key, (leaf, g) in leaves.items():
            if key in tensor_hooks:
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


def _send_leaf(box: Box, ct: Any, leaves: dict) -> None:
    key = id(box)
    prev = leaves.get(key)
    leaves[key] = (box, ct if prev is None else add_cotangents(prev[1], ct))


def _send(box: Box, ct: Any, heap: list, leaves: dict) -> None:
    if ct is None:
        return
    if box._prim is None:
        _send_leaf(box, ct, leaves)
    elif box._ct is None:
        box._ct = ct
        heappush(heap, (-box._seq, box))
    else:
        box._ct = add_cotangents(box._ct, ct)
