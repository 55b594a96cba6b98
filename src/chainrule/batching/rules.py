"""Batching rules: how each primitive runs on a whole batch at once.

A rule has the signature ``rule(size, vals, dims, /, **params) -> (out, out_dim)``
(see :data:`chainrule.batching.tracer.BatchingRule`): batched inputs arrive
with their batch axis at 0 (``dims[i] == 0``), unbatched ones as they are
(``dims[i] is None``).  Rules call primitives on those values, so they work
on boxes of lower levels too (the batch stays differentiable).

Most of chainrule's primitives address their axes *from the end* (reductions
take negative axes, ``transpose`` permutes the trailing axes, indexing keys
start with an Ellipsis...), the convention that lets derivative rules carry
leading batch axes.  For them a batch axis in front is free: the generic
family rules below only line ranks up or broadcast the unbatched operands.
Primitives whose parameters name absolute shapes, or whose operands are not
interchangeable (``matmul`` on vectors, ``einsum``, ``linear``, ``conv2d``
with a batched weight, fused losses that reduce over the example), have
specific rules.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.primitive import registry
from ..graph.trace import (
    _all_p,
    _and_p,
    _any_p,
    _full_like_p,
    _not_p,
    _np_prim,
    _or_p,
    _xor_p,
    stop_gradient_p,
)
from ..ops._broadcast import broadcast_to, reshape
from ..ops.linalg import _mT, einsum_p, matmul_p
from ..ops.nn import patches_p
from ..ops.reductions import reduce_sum
from ..ops.shape import moveaxis
from ..transforms import _pad as _pad_block
from ..transforms import _take as _take_block
from .tracer import BATCHING_RULES, FAMILY_RULES, _shape_of

__all__ = ["elementwise", "leading", "leading_aligned", "move_to_front", "align"]


# --- helpers ------------------------------------------------------------------------------------

def move_to_front(v: Any, d: int | None, size: int) -> Any:
    """``v`` with a batch axis at 0: unbatched values are broadcast along a new one."""
    if d is not None:
        return v
    shape = _shape_of(v)
    return broadcast_to(reshape(v, shape=(1,) + shape), shape=(size,) + shape)


def align(v: Any, d: int | None, rank: int) -> Any:
    """A batched ``v`` with ones inserted after its batch axis up to per-example ``rank``."""
    if d is None:
        return v
    shape = _shape_of(v)
    pad = rank - (len(shape) - 1)
    if pad <= 0:
        return v
    return reshape(v, shape=shape[:1] + (1,) * pad + shape[1:])


def _example_rank(v: Any, d: int | None) -> int:
    return len(_shape_of(v)) - (0 if d is None else 1)


# --- family rules -------------------------------------------------------------------------------

def elementwise(prim: Any):
    """Rule of an elementwise primitive with NumPy broadcasting (any number of operands)."""

    def rule(size, vals, dims, /, **params):
        rank = max(_example_rank(v, d) for v, d in zip(vals, dims))
        return prim(*[align(v, d, rank) for v, d in zip(vals, dims)], **params), 0

    return rule


def leading(prim: Any):
    """Rule of a primitive that treats extra leading axes as a batch (every operand batched)."""

    def rule(size, vals, dims, /, **params):
        return prim(*[move_to_front(v, d, size) for v, d in zip(vals, dims)], **params), 0

    return rule


def leading_aligned(prim: Any):
    """Like :func:`leading`, with operand ranks lined up first (stacks that broadcast)."""

    def rule(size, vals, dims, /, **params):
        rank = max(_example_rank(v, d) for v, d in zip(vals, dims))
        vals = [align(move_to_front(v, d, size), 0, rank) for v, d in zip(vals, dims)]
        return prim(*vals, **params), 0

    return rule


def _rule(name: str, maker: Any) -> None:
    BATCHING_RULES[name] = maker(registry[name])


# --- shape parameters get the batch size in front ------------------------------------------------

def _reshape_rule(size, vals, dims, /, shape):
    return reshape(vals[0], shape=(size,) + tuple(shape)), 0


def _broadcast_to_rule(size, vals, dims, /, shape):
    v = align(vals[0], dims[0], len(shape))
    return broadcast_to(v, shape=(size,) + tuple(shape)), 0


def _sum_to_rule(size, vals, dims, /, shape):
    return registry["sum_to"](vals[0], shape=(size,) + tuple(shape)), 0


# --- matmul, einsum, linear, conv2d --------------------------------------------------------------

def _matmul_rule(size, vals, dims, /):
    (a, b), (da, db) = vals, dims
    sa, sb = _shape_of(a), _shape_of(b)
    vec_a = da is not None and len(sa) == 2  # one vector per example: a row
    vec_b = db is not None and len(sb) == 2  # one vector per example: a column
    if vec_a:
        a = reshape(a, shape=(sa[0], 1, sa[1]))
    if vec_b:
        b = reshape(b, shape=(sb[0], sb[1], 1))
    ranks = [_example_rank(v, d) for v, d in ((a, da), (b, db)) if _example_rank(v, d) >= 2]
    rank = max(ranks) if ranks else 2
    out = matmul_p(align(a, da, rank), align(b, db, rank))
    if vec_a or vec_b:
        so = list(_shape_of(out))
        if vec_b:
            del so[-1]
        if vec_a:  # the row axis; last when b was an unbatched vector (NumPy dropped its axis)
            del so[-1 if (db is None and len(sb) == 1) or vec_b else -2]
        out = reshape(out, shape=tuple(so))
    return out, 0


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _einsum_rule(size, vals, dims, /, spec):
    ins, out = spec.split("->")
    used = set(spec)
    z = next(c for c in _LETTERS if c not in used)
    terms = [z + t if d is not None else t for t, d in zip(ins.split(","), dims)]
    return einsum_p(*vals, spec=",".join(terms) + "->" + z + out), 0


def _linear_rule(name: str):
    prim = registry[name]

    def rule(size, vals, dims, /):
        if all(d is None for d in dims[1:]):  # only the input is batched: a leading axis
            return prim(*vals), 0
        x, w = vals[0], vals[1]
        out, _ = _matmul_rule(size, [x, _mT(w)], [dims[0], dims[1]])
        if len(vals) == 3:
            out, _ = elementwise(registry["add"])(size, [out, vals[2]], [0, dims[2]])
        return out, 0

    return rule


def _conv_rule(name: str):
    prim = registry[name]

    def rule(size, vals, dims, /, stride, padding):
        if all(d is None for d in dims[1:]):  # a batch of inputs, one kernel: leading axes
            return prim(*vals, stride=stride, padding=padding), 0
        x, w = vals[0], vals[1]
        kh, kw = _shape_of(w)[-2:]
        # A batched kernel: im2col patches contracted with each example's kernel.
        cols = patches_p(x, kernel=(kh, kw), stride=stride, padding=padding, fill=0.0)
        nlead = _example_rank(x, dims[0]) - 3
        lead = "klmnrs"[:nlead]
        xz = "Z" if dims[0] is not None else ""
        wz = "Z" if dims[1] is not None else ""
        spec = f"{xz}{lead}cpqij,{wz}ocpq->Z{lead}oij"
        out = einsum_p(cols, w, spec=spec)
        if len(vals) == 3:
            b = move_to_front(vals[2], dims[2], size)
            nb = _shape_of(b)
            b = reshape(b, shape=nb[:1] + (1,) * nlead + nb[1:] + (1, 1))
            out = registry["add"](out, b)
        return out, 0

    return rule


# --- fused losses that reduce over the example ------------------------------------------------

def _xent_rule(size, vals, dims, /, axis, reduction):
    z = move_to_front(vals[0], dims[0], size)
    labels = move_to_front(vals[1], dims[1], size)
    loss = registry["softmax_cross_entropy"](z, labels, axis=axis, reduction="none")
    if reduction == "none":
        return loss, 0
    shape = _shape_of(loss)
    nl = len(shape) - 1
    total = reduce_sum(loss, axes=tuple(range(-nl, 0)), keepdims=False) if nl else loss
    if reduction == "mean":
        total = total * (1.0 / max(math.prod(shape[1:]), 1))
    return total, 0


# --- NumPy-style helpers staged by the graph namespace (argmax, all, ...) -----------------------

def _shift_axis(axis: Any) -> Any:
    if isinstance(axis, (tuple, list)):
        return tuple(_shift_axis(a) for a in axis)
    a = int(axis)
    return a + 1 if a >= 0 else a


def _np_axis_rule(prim: Any, flatten_none: bool):
    """NumPy's ``axis`` (``None``: all axes, or the flattened array for arg-functions)."""

    def rule(size, vals, dims, /, **params):
        x = move_to_front(vals[0], dims[0], size)
        extra = list(vals[1:])
        if extra:  # the axis given positionally
            params = dict(params, axis=extra.pop(0))
        axis = params.get("axis")
        nd = len(_shape_of(x)) - 1
        if axis is None:
            if flatten_none:
                if nd != 1:
                    x = reshape(x, shape=(size, -1))
                params = dict(params, axis=1)
            else:
                params = dict(params, axis=tuple(range(1, nd + 1)))
        else:
            params = dict(params, axis=_shift_axis(axis))
        return prim(x, *extra, **params), 0

    return rule


def _stop_rule(size, vals, dims, /):
    return stop_gradient_p(vals[0]), 0


# --- convolutions: extra axes in front of the sample axes broadcast, right-aligned ----------------

def _conv_family_rule(name: str, cores: Any):
    """Rule of ``conv`` / ``conv_input_grad`` / ``conv_weight_grad``: the batch axis becomes one
    more *extra* axis.  ``cores(params)`` gives the per-operand core ranks (the axes after the
    extra ones); batched operands get ones after their batch axis so that both operands' extra
    axes line up, an unbatched operand broadcasts along the batch."""
    prim = registry[name]

    def rule(size, vals, dims, /, **params):
        core = cores(params)
        extra = max(_example_rank(v, d) - c for v, d, c in zip(vals, dims, core))
        vals = [align(v, d, extra + c) for v, d, c in zip(vals, dims, core)]
        return prim(*vals, **params), 0

    return rule


def _image_core(params: dict) -> int:
    return params["ns"] + 1 + len(params["stride"])


def _kernel_core(params: dict) -> int:
    return len(params["stride"]) + 2


# --- operations with a permutation or a mask read from an operand -------------------------------

def _sort_like_rule(name: str):
    """``sort_like(t, x)`` / ``unsort(t, x)``: the permutation comes from ``x`` (``axis`` is
    negative).  ``t`` may carry axes in front of x's; with a batched ``x`` the batch axis
    of ``t`` must sit right before x's axes, so it moves there and back."""
    prim = registry[name]

    def rule(size, vals, dims, /, axis):
        (t, x), (dt, dx) = vals, dims
        if dx is None:
            return prim(t, x, axis=axis), 0
        t = move_to_front(t, dt, size)
        extra = len(_shape_of(t)) - len(_shape_of(x))  # t's own leading axes, per example
        if extra <= 0:
            return prim(t, x, axis=axis), 0
        t = moveaxis(t, 0, extra)
        return moveaxis(prim(t, x, axis=axis), extra, 0), 0

    return rule


def _mask_rule(name: str):
    """``mask_select`` / ``mask_scatter`` address the leading axes of a value with a mask: a
    batched value is a leading axis; a batched mask would give each example its own size."""
    prim = registry[name]

    def rule(size, vals, dims, /, ndim, skip=0):
        if dims[1] is not None:
            raise IndexError(
                f"vmap: {name} with a batched boolean mask gives a data-dependent shape per "
                "example, which vmap cannot batch; use cnp.where(mask, x, 0) instead")
        return prim(*vals, ndim=ndim, skip=skip), 0  # (leading batch axes count as skipped)

    return rule


# --- the table ----------------------------------------------------------------------------------

ELEMENTWISE = (
    "add subtract multiply divide negative positive power square sqrt cbrt reciprocal absolute "
    "sign floor ceil round exp exp2 expm1 log log2 log10 log1p logaddexp logaddexp2 sin cos tan "
    "arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh arctan2 hypot sinc where maximum "
    "minimum fmax fmin clip mod equal not_equal less less_equal greater greater_equal isnan "
    "isfinite isinf logical_not logical_and logical_or sigmoid relu softplus log_sigmoid erf "
    "binary_cross_entropy trunc fmod floor_divide real imag conj angle select_grad"
).split()

#: Primitives that address their axes from the end: a leading batch axis is free.
LEADING = (
    "astype getitem scatter_add reduce_sum reduce_max reduce_min reduce_prod cumsum cumprod "
    "_linalg_mT tuple_get inv det slogdet cholesky eigh qr svd norm2 transpose concatenate flip "
    "roll pad diagonal diag_embed softmax log_softmax im2col col2im max_pool2d avg_pool2d "
    "reduce_logsumexp fft_c2c fft_conj_weighted rfftn irfftn"
).split()

FAMILY_RULES.update(elementwise=elementwise, leading=leading, leading_aligned=leading_aligned)

for _name in ELEMENTWISE:
    _rule(_name, elementwise)
for _name in LEADING:
    _rule(_name, leading)
_rule("solve", leading_aligned)
_rule("max_pool2d_grad", leading)  # (max_pool2d's reverse rule: g, x and the pooled values)

BATCHING_RULES.update({
    "reshape": _reshape_rule,
    "broadcast_to": _broadcast_to_rule,
    "sum_to": _sum_to_rule,
    "matmul": _matmul_rule,
    "einsum": _einsum_rule,
    "linear": _linear_rule("linear"),
    "linear_nobias": _linear_rule("linear_nobias"),
    "softmax_cross_entropy": _xent_rule,
    "conv": _conv_family_rule("conv", lambda p: (_image_core(p), _kernel_core(p))),
    "conv_input_grad": _conv_family_rule("conv_input_grad",
                                         lambda p: (_image_core(p), _kernel_core(p))),
    "conv_weight_grad": _conv_family_rule("conv_weight_grad",
                                          lambda p: (_image_core(p), _image_core(p))),
    "sort_like": _sort_like_rule("sort_like"),
    "unsort": _sort_like_rule("unsort"),
    "mask_select": _mask_rule("mask_select"),
    "mask_scatter": _mask_rule("mask_scatter"),
    # private primitives of the transforms and of the staged (graph) namespace
    _take_block.name: leading(_take_block),
    _pad_block.name: leading(_pad_block),
    stop_gradient_p.name: _stop_rule,
    _full_like_p.name: leading(_full_like_p),
    _all_p.name: _np_axis_rule(_all_p, False),
    _any_p.name: _np_axis_rule(_any_p, False),
})
for _p in (_and_p, _or_p, _xor_p, _not_p):
    BATCHING_RULES[_p.name] = elementwise(_p)
for _name in ("argmax", "argmin", "argsort"):
    _p = _np_prim(_name)
    BATCHING_RULES[_p.name] = _np_axis_rule(_p, True)
