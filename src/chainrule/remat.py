"""``cr.linearize`` and ``cr.checkpoint`` (alias ``cr.remat``).

``linearize`` runs ``f`` once at a fresh staging level that records every
operation with its inputs and output (all that its tangent rule may read); ``f_jvp`` then pushes
tangents through the recorded operations in order with their JVP rules --
the primal computation is never run again.

``checkpoint`` wraps ``f`` into ONE operation (the ``checkpoint``
primitive): its implementation runs ``f`` on plain values, so nothing inside
``f`` is recorded and only ``f``'s inputs and outputs are kept for the
reverse pass.  When the output cotangent arrives, the rule re-runs ``f``
under :func:`~chainrule.vjp` from the kept inputs and pulls the cotangent
through at once.  The rules are themselves transforms applied to the
level's own values, so derivatives of every order work; cotangents and
tangents with extra leading batch axes (Jacobians) go through ``vmap``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .batching import BatchTracer, register_batching_rule, vmap
from .core.primitive import Box, Primitive, apply_jvp
from .core.trace import LEVEL_NAMES, new_staging_level, release_level
from .graph.trace import EXTRA_BOX_SLOTS
from .ops._broadcast import reshape
from .ops.linalg import tuple_get
from .pytree import tree_flatten, tree_unflatten
from .tensor import Tensor, _escape_message, is_differentiable_dtype
from .transforms import _as_value, _diff_input, _finish, _raw, _unbox, _zeros
from .transforms import jvp as _jvp
from .transforms import vjp as _vjp

__all__ = ["linearize", "checkpoint", "remat"]


# --- linearize ------------------------------------------------------------------------------------

class _LinearizeBox(Tensor):
    """A value traced by ``linearize``: its numbers are real, but reading them would lose the
    tangent, so value reads are refused as under every other transform."""

    __slots__ = ()

    def _refuse(self, what: str) -> TypeError:
        return TypeError(_escape_message(self, "linearize", what))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise self._refuse("np.asarray() / np.array()")

    def __float__(self) -> float:
        raise self._refuse("float()")

    def __int__(self) -> int:
        raise self._refuse("int()")

    def __complex__(self) -> complex:
        raise self._refuse("complex()")

    def __index__(self) -> int:
        raise self._refuse("operator.index()")

    def numpy(self) -> np.ndarray:
        raise self._refuse(".numpy()")

    def item(self) -> Any:
        raise self._refuse(".item()")

    def tolist(self) -> Any:
        raise self._refuse(".tolist()")


class _Recorder:
    """A staging level that runs every primitive at once and keeps ALL it needs for the
    tangent rules: the inputs and the output of each operation, in order.

    (The reverse levels keep only what the reverse rules read -- ``ShapeOf`` stand-ins
    for the rest -- which is not enough to replay the forward rules.)
    """

    def __init__(self) -> None:
        self.ops: list[tuple] = []  # (box, prim, args, params, vals)
        self.level = new_staging_level(self.handle)

    def box(self, value: Any) -> _LinearizeBox:
        b = _LinearizeBox.__new__(_LinearizeBox)
        for s in EXTRA_BOX_SLOTS:
            setattr(b, s, None)
        b.data = value
        b.grad = None
        b.requires_grad = True
        b._level = self.level
        b._tangent = None
        b._prim = None
        b._rec = None
        return b

    def handle(self, prim: Primitive, args: tuple, params: dict) -> Any:
        lvl = self.level
        vals = tuple(a.data if isinstance(a, Box) and a._level == lvl else a for a in args)
        out = prim(*vals, **(params or {}))
        if not prim.differentiable:
            return out
        b = self.box(out)
        self.ops.append((b, prim, args, params or {}, vals))
        return b


def linearize(f: Callable, *primals: Any) -> tuple[Any, Callable]:
    """Evaluate ``f(*primals)`` and return ``(out, f_jvp)`` with ``f_jvp(*t) = J @ t``.

    ``f`` runs once; ``f_jvp`` replays the recorded operations' tangent rules
    (the primal values they need were kept), so each call costs about one
    forward-mode pass without re-running ``f``.  ``f_jvp`` takes one tangent
    per primal (same structures and shapes) and returns the output tangent
    with the structure of ``out``; it may be called many times, and nests
    inside other transforms (``vmap(f_jvp)`` pushes a batch of tangents).

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> out, f_jvp = cr.linearize(cnp.sin, np.array([0.0, np.pi]))
    >>> f_jvp(np.array([1.0, 2.0]))
    array([ 1., -2.])
    """
    p_leaves, p_def = tree_flatten(tuple(primals))
    inputs = [_diff_input(x, "linearize", f"primal leaf {i}") for i, x in enumerate(p_leaves)]
    rec = _Recorder()
    level = rec.level
    LEVEL_NAMES[level] = "linearize"
    try:
        boxes = [rec.box(x) for x in inputs]
        out = f(*tree_unflatten(p_def, boxes))
        out_leaves, out_def = tree_flatten(out)
    finally:
        release_level(level)
        LEVEL_NAMES.pop(level, None)
    values = [_unbox(o, level) for o in out_leaves]
    ops = rec.ops

    def f_jvp(*tangents: Any) -> Any:
        t_leaves, t_def = tree_flatten(tuple(tangents))
        if t_def != p_def:
            raise ValueError(f"f_jvp: tangents have structure {t_def} but the primals have "
                             f"{p_def}")
        tan: dict[int, Any] = {}
        for i, (b, t) in enumerate(zip(boxes, t_leaves)):
            t = _as_value(t)
            if tuple(t.shape) != tuple(b.shape):
                raise ValueError(f"f_jvp: tangent leaf {i} has shape {tuple(t.shape)} but its "
                                 f"primal has shape {tuple(b.shape)}; they must be equal")
            tan[id(b)] = t
        for b, prim, args, params, vals in ops:
            ts = [tan.get(id(a)) if isinstance(a, Box) and a._level == level else None
                  for a in args]
            t = apply_jvp(prim, ts, b.data, vals, params, "linearize")
            if t is not None:
                tan[id(b)] = t
        res = []
        for o, v in zip(out_leaves, values):
            t = tan.get(id(o)) if isinstance(o, Box) and o._level == level else None
            res.append(_finish(t) if t is not None else _zeros(tuple(np.shape(_raw(v))), v))
        return tree_unflatten(out_def, res)

    return tree_unflatten(out_def, [_finish(v) for v in values]), f_jvp


# --- checkpoint -----------------------------------------------------------------------------------

def _ckpt_impl(xp: Any, *args: Any, fun: Callable, n_out: int) -> tuple:
    outs = fun(*args)
    for o in outs:
        if isinstance(o, Box):
            raise TypeError(
                "checkpoint: the function's result depends on a tensor that requires grad "
                "which is not one of its arguments (a closed-over parameter); pass such "
                "tensors as arguments of the checkpointed function")
    return tuple(outs)


def _entry_shapes(out: Any) -> list:
    """The shapes of a tuple-valued result, as this level sees it (boxes hold tuples)."""
    while isinstance(out, Box) and not isinstance(out.data, tuple):
        if isinstance(out, BatchTracer):
            return list(out.shape)
        out = out.data
    if isinstance(out, Box):
        out = out.data
    return [tuple(e.shape) if hasattr(e, "shape") else tuple(np.shape(e)) for e in out]


def _over_batch(fn: Callable, nb: int, leading: tuple) -> Callable:
    """``fn`` of batched arguments (``nb`` leading axes, flattened to one) through ``vmap``."""
    if nb == 0:
        return fn
    size = int(np.prod(leading))

    def batched(*xs: Any) -> Any:
        flat = [reshape(x, shape=(size,) + tuple(x.shape[nb:])) for x in xs]
        outs = vmap(fn)(*flat)
        return tuple(reshape(o, shape=leading + tuple(o.shape[1:])) for o in outs)

    return batched


def _ckpt_vjp(g: Any, out: Any, *vals: Any, fun: Callable, n_out: int) -> tuple:
    diff = [i for i, v in enumerate(vals) if is_differentiable_dtype(v.dtype)]
    shapes = _entry_shapes(out)
    present = [(gi, si) for gi, si in zip(g, shapes) if gi is not None]
    if not present or not diff:
        return (None,) * len(vals)
    g0, s0 = present[0]
    nb = len(tuple(g0.shape)) - len(s0)
    leading = tuple(g0.shape[:nb])

    def pull(*cts: Any) -> tuple:
        def f_diff(*xs: Any) -> tuple:
            full = list(vals)
            for i, x in zip(diff, xs):
                full[i] = x
            return fun(*full)

        _, pull_fn = _vjp(f_diff, *[vals[i] for i in diff])
        return tuple(pull_fn(tuple(cts)))

    cts = []
    for gi, si in zip(g, shapes):
        if gi is None:
            gi = np.zeros(leading + si, dtype=_raw(g0).dtype)
        cts.append(gi)
    grads = _over_batch(pull, nb, leading)(*cts)
    result: list[Any] = [None] * len(vals)
    for i, gr in zip(diff, grads):
        result[i] = gr
    return tuple(result)


def substituted(vals: Any, positions: Any, xs: Any) -> list:
    """``vals`` as a list with ``xs`` at ``positions``."""
    full = list(vals)
    for i, x in zip(positions, xs):
        full[i] = x
    return full


def python_jvp(fun: Callable, tangents: list, vals: tuple, shape_of: Callable) -> tuple:
    """The output tangents of the Python function ``fun(*vals)`` (a tuple of arrays) along
    ``tangents`` (``None``: zero; any leading batch axes), by a JVP through ``fun``."""
    live = [i for i, t in enumerate(tangents) if t is not None]
    nb = len(tuple(tangents[live[0]].shape)) - len(shape_of(vals[live[0]]))
    leading = tuple(tangents[live[0]].shape[:nb])

    def push(*ts: Any) -> tuple:
        def f_live(*xs: Any) -> tuple:
            return fun(*substituted(vals, live, xs))

        return tuple(_jvp(f_live, tuple(vals[i] for i in live), ts)[1])

    return _over_batch(push, nb, leading)(*[tangents[i] for i in live])


def _ckpt_jvp(tangents: list, out: Any, *vals: Any, fun: Callable, n_out: int) -> tuple:
    return python_jvp(fun, tangents, vals, lambda v: tuple(v.shape))


checkpoint_p = Primitive("checkpoint", _ckpt_impl, vjp=_ckpt_vjp, jvp=_ckpt_jvp)


def _ckpt_batching(size: int, vals: list, dims: list, /, fun: Callable, n_out: int) -> tuple:
    # Still one checkpointed operation: its function is the vmapped one.
    batched = vmap(lambda *xs: tuple(fun(*xs)), in_axes=tuple(dims))
    return checkpoint_p(*vals, fun=batched, n_out=n_out), 0


register_batching_rule(checkpoint_p, _ckpt_batching)


def checkpoint(f: Callable, *, prevent_cse: bool = True, static_argnums: Sequence[int] = ()
               ) -> Callable:
    """Return ``f`` whose intermediates are recomputed instead of kept (JAX's ``checkpoint``).

    The result has the same values and derivatives (every order, forward and
    reverse mode) as ``f``, but the reverse pass keeps only ``f``'s inputs and
    outputs: when the cotangent of ``f``'s output arrives, ``f`` runs again
    from its inputs to pull it back.  Memory traded for one more forward
    evaluation of ``f``.  Arguments and results may be pytrees of arrays;
    values that require derivatives must be arguments of ``f`` (not closed
    over).  ``static_argnums`` names arguments passed through as Python
    values; ``prevent_cse`` is accepted for JAX compatibility.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> block = cr.checkpoint(lambda x, w: cnp.tanh(x @ w))
    >>> g = cr.grad(lambda w: cnp.sum(block(np.ones(2), w)))(np.eye(2))
    >>> np.round(g, 4)
    array([[0.42, 0.42],
           [0.42, 0.42]])
    """
    static = tuple(int(i) for i in static_argnums)

    @functools.wraps(f)
    def checkpointed(*args: Any) -> Any:
        dyn = tuple(a for i, a in enumerate(args) if i not in static)
        leaves, in_def = tree_flatten(dyn)
        leaves = [_as_value(x) for x in leaves]
        out_def_box: list = []

        def flat_fun(*xs: Any) -> tuple:
            it = iter(tree_unflatten(in_def, list(xs)))
            full = [a if i in static else next(it) for i, a in enumerate(args)]
            o_leaves, o_def = tree_flatten(f(*full))
            if not out_def_box:
                out_def_box.append(o_def)
            return tuple(o_leaves)

        res = checkpoint_p(*leaves, fun=flat_fun, n_out=None)
        out_def = out_def_box[0]
        n = out_def.num_leaves
        if isinstance(res, Box):
            outs = [tuple_get(res, index=i) for i in range(n)]
        else:
            outs = list(res)
        return tree_unflatten(out_def, [_finish(o) for o in outs])

    return checkpointed


remat = checkpoint
