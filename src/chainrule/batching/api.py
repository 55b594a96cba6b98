"""``cr.vmap``: map a function over an axis of its arguments, one batched call per primitive."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.primitive import Box
from ..ops.shape import moveaxis
from ..pytree import PyTreeDef, tree_flatten, tree_unflatten
from ..transforms import _as_value, _finish
from .rules import move_to_front
from .tracer import BatchTrace, BatchTracer, _shape_of

__all__ = ["vmap"]


def _axes_for(spec: Any, td: PyTreeDef, what: str, where: str = "") -> list:
    """One axis (int or None) per leaf of ``td``: ``spec`` is a prefix of the tree."""
    if spec is None or (isinstance(spec, (int, np.integer)) and not isinstance(spec, bool)):
        return [None if spec is None else int(spec)] * td.num_leaves
    if td.kind == "leaf":
        raise ValueError(f"vmap: {what}{where} must be an int or None for an array, got {spec!r}")
    if td.kind == "none":
        return []
    if td.kind is dict:
        if not isinstance(spec, dict) or set(spec) != set(td.meta):
            raise ValueError(
                f"vmap: {what}{where} is {spec!r} but the value is a dict with keys "
                f"{list(td.meta)}; give an int, None, or a dict with the same keys")
        return [a for k, c in zip(td.meta, td.children)
                for a in _axes_for(spec[k], c, what, f"{where}[{k!r}]")]
    if not isinstance(spec, (tuple, list)) or len(spec) != len(td.children):
        n = len(td.children)
        raise ValueError(
            f"vmap: {what}{where} is {spec!r} but the value has {n} entries ({td}); give an "
            f"int, None, or a tuple/list of {n} entries")
    return [a for i, (s, c) in enumerate(zip(spec, td.children))
            for a in _axes_for(s, c, what, f"{where}[{i}]")]


def _normal_axis(axis: int, ndim: int, what: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"vmap: {what} is out of bounds for a value with {ndim} dimension(s) (mapped axes "
            "must lie within the value's axes)")
    return axis % ndim


def _move(x: Any, src: int, dst: int) -> Any:
    if src == dst:
        return x
    if isinstance(x, Box):
        return moveaxis(x, src, dst)
    return np.moveaxis(x, src, dst)


def vmap(f: Callable, in_axes: Any = 0, out_axes: Any = 0) -> Callable:
    """Vectorise ``f`` over an axis of its arguments (JAX's ``vmap``).

    ``in_axes`` says which axis of each argument is mapped: an int (every
    argument), ``None`` (not mapped: the same value for every example) or a
    tuple with one entry per positional argument, each itself an int, ``None``
    or a pytree matching that argument.  Negative axes count from the end.
    Keyword arguments are mapped over axis 0.  ``out_axes`` places the mapped
    axis in the results the same way (``None``: the result must not depend on
    the mapped axis).  Mapped arguments must agree on the size of that axis,
    else ``ValueError`` names both sizes.

    Every primitive runs once on the whole batch through its batching rule
    (no loop over examples), so ``vmap`` composes with every transform in
    both orders: ``vmap(grad(f))`` gives per-example gradients,
    ``jacfwd(vmap(f))``, ``vmap(hessian(f))``, ``vmap(vmap(f))``...  Branching
    in Python on a batched value raises
    :class:`~chainrule.batching.BatchedValueError` (use ``cr.cond`` or
    ``cnp.where``).

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> cr.vmap(lambda x, y: cnp.dot(x, y), in_axes=(0, None))(np.eye(2), np.array([3.0, 4.0]))
    array([3., 4.])
    >>> cr.vmap(cr.grad(lambda w, x: cnp.sum(w * x) ** 2), in_axes=(None, 0))(
    ...     np.ones(2), np.array([[1.0, 0.0], [1.0, 2.0]]))
    array([[ 2.,  0.],
           [ 6., 12.]])
    """

    @functools.wraps(f)
    def vmapped(*args: Any, **kwargs: Any) -> Any:
        leaves, td = tree_flatten(args)
        spec = tuple(in_axes) if isinstance(in_axes, list) else in_axes
        axes = _axes_for(spec, td, "in_axes")
        kw_leaves, kw_td = tree_flatten(kwargs)
        leaves = leaves + kw_leaves
        axes = axes + [0] * len(kw_leaves)
        size = None
        first = None
        moved = []
        for i, (x, ax) in enumerate(zip(leaves, axes)):
            if ax is None:
                moved.append(x)
                continue
            x = _as_value(x)
            shape = _shape_of(x)
            ax = _normal_axis(ax, len(shape), f"in_axes={ax} for argument leaf {i} "
                                              f"(shape {shape})")
            n = shape[ax]
            if size is None:
                size, first = n, i
            elif n != size:
                raise ValueError(
                    f"vmap got inconsistent sizes for the mapped axis: argument leaf {first} "
                    f"has size {size} but argument leaf {i} has size {n} (in_axes="
                    f"{in_axes!r}); mapped arguments must have the same size")
            moved.append((_move(x, ax, 0),))
        if size is None:
            raise ValueError("vmap: no argument is mapped (in_axes is None everywhere); map at "
                             "least one argument")
        trace = BatchTrace(size)
        try:
            boxed = [trace.box(m[0], "an argument of vmap") if type(m) is tuple else m
                     for m in moved]
            n_pos = td.num_leaves
            a = tree_unflatten(td, boxed[:n_pos])
            k = tree_unflatten(kw_td, boxed[n_pos:])
            out = f(*a, **k)
            out_leaves, out_td = tree_flatten(out)
            spec = tuple(out_axes) if isinstance(out_axes, list) and out_td.kind is not list \
                else out_axes
            oaxes = _axes_for(spec, out_td, "out_axes")
            results = [_output(trace, x, ax, i) for i, (x, ax) in
                       enumerate(zip(out_leaves, oaxes))]
        finally:
            trace.close()
        return tree_unflatten(out_td, results)

    return vmapped


def _output(trace: BatchTrace, x: Any, ax: int | None, i: int) -> Any:
    batched = isinstance(x, BatchTracer) and x._level == trace.level
    if ax is None:
        if batched:
            raise ValueError(
                f"vmap: output leaf {i} depends on the mapped axis but out_axes is None for "
                "it; give it an axis")
        return _finish(_as_value(x))
    v = x._bval if batched else move_to_front(_as_value(x), None, trace.size)
    nd = len(_shape_of(v))
    dst = _normal_axis(ax, nd, f"out_axes={ax} for output leaf {i}")
    return _finish(_move(v, 0, dst))
