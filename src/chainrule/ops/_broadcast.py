"""Broadcasting, undone in one place.

``broadcast_to``, ``sum_to`` and ``reshape`` are primitives whose rules are
each other; every other rule reaches them through :func:`unbroadcast` (for
cotangents) and :func:`align` (for tangents).  Cotangents and tangents may
carry extra leading batch axes: the number of them is always
``g.ndim - out.ndim``.
"""

from __future__ import annotations

from typing import Any

import numpy as _np

from ..core.primitive import Primitive, primitive


def _shape_of(x: Any) -> tuple:
    s = getattr(x, "shape", None)
    return () if s is None else tuple(s)


def unbroadcast(g: Any, x: Any, out: Any) -> Any:
    """Reduce cotangent ``g`` of ``out`` to the shape of input ``x`` (keeping batch axes)."""
    gs = g.shape
    xs = x.shape if hasattr(x, "shape") else ()
    if gs == xs:
        return g
    xs = tuple(xs)
    out_ndim = len(_shape_of(out))
    nb = len(gs) - out_ndim
    target = gs[:nb] + (1,) * (out_ndim - len(xs)) + xs
    final = gs[:nb] + xs
    if type(g) is _np.ndarray:  # no graph to record: the same sum without dispatch
        axes = tuple(i for i, (a, b) in enumerate(zip(gs, target)) if b == 1 and a != 1)
        if axes:
            g = _np.add.reduce(g, axis=axes, keepdims=True)
        return g.reshape(final) if final != target else g
    if target != gs:
        g = sum_to(g, shape=target)
    if final != target:
        g = reshape(g, shape=final)
    return g


def align(t: Any, x: Any, out: Any) -> Any:
    """Give tangent ``t`` of input ``x`` the rank of ``out`` so it broadcasts like ``x``."""
    xs = _shape_of(x)
    ts = t.shape
    nb = len(ts) - len(xs)
    pad = len(_shape_of(out)) - len(xs)
    if nb == 0 or pad <= 0:
        return t
    return reshape(t, shape=ts[:nb] + (1,) * pad + xs)


def batch_shape(g: Any, out: Any) -> tuple:
    """The leading batch axes that ``g`` carries beyond ``out``'s shape."""
    return g.shape[: g.ndim - len(_shape_of(out))]


def _sum_to_impl(xp, x, shape):
    axes = tuple(i for i, (a, b) in enumerate(zip(x.shape, shape)) if b == 1 and a != 1)
    if not axes:
        return x
    return xp.sum(x, axis=axes, keepdims=True)


def _broadcast_to_impl(xp, x, shape):
    return xp.broadcast_to(x, shape)


def _reshape_impl(xp, x, shape):
    return xp.reshape(x, shape)


# sum_to: same rank in and out; sums the axes where ``shape`` has 1.
sum_to: Primitive = primitive(
    "sum_to",
    _sum_to_impl,
    vjp=(lambda g, out, x, shape: broadcast_to(g, shape=batch_shape(g, out) + tuple(x.shape)),),
    jvp=(lambda t, out, x, shape: sum_to(t, shape=batch_shape(t, x) + tuple(shape)),),
    saves="nothing",
)

broadcast_to: Primitive = primitive(
    "broadcast_to",
    _broadcast_to_impl,
    vjp=(lambda g, out, x, shape: unbroadcast(g, x, out),),
    jvp=(lambda t, out, x, shape: broadcast_to(align(t, x, out), shape=batch_shape(t, x) + shape),),
    saves="nothing",
)

reshape: Primitive = primitive(
    "reshape",
    _reshape_impl,
    vjp=(lambda g, out, x, shape: reshape(g, shape=batch_shape(g, out) + tuple(_shape_of(x))),),
    jvp=(lambda t, out, x, shape: reshape(t, shape=batch_shape(t, x) + tuple(out.shape)),),
    saves="nothing",
)


# --- axis permutation (batch axes stay in front) ----------------------------------------------

def _full_perm(ndim: int, axes: tuple) -> tuple:
    nb = ndim - len(axes)
    return tuple(range(nb)) + tuple(nb + a for a in axes)


def _transpose_impl(xp, x, axes):
    fn = getattr(xp, "permute_dims", None) or xp.transpose
    return fn(x, _full_perm(x.ndim, axes))


def _transpose_np(x, axes):
    return _np.transpose(x, _full_perm(_np.ndim(x), axes))


def _inverse(axes: tuple) -> tuple:
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return tuple(inv)


# ``axes`` permutes the trailing len(axes) axes; leading (batch) axes stay in front.
transpose_p: Primitive = primitive(
    "transpose", _transpose_impl, _transpose_np,
    vjp=(lambda g, out, x, axes: transpose_p(g, axes=_inverse(axes)),),
    jvp=(lambda t, out, x, axes: transpose_p(t, axes=axes),),
)
