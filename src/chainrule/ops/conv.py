"""N-dimensional convolution as three bilinear primitives whose rules are each other.

* ``conv(x, w)``: cross-correlation of ``x`` ``(..., C, *S)`` with ``w``
  ``(O, C / groups, *K)`` (stride, per-side padding, dilation, groups);
* ``conv_input_grad(g, w)``: its transpose in ``x`` (the transposed
  convolution), an image ``(..., C, *S)`` from ``g`` ``(..., O, *So)``;
* ``conv_weight_grad(x, g)``: its transpose in ``w``, a kernel ``(O, C / groups, *K)``.

Each is linear in each argument, so every derivative of one is another of the
three, written with chainrule ops and differentiable to any order.

Batch axes: ``ns`` (a static parameter) counts the sample axes just before
the channel axis; any axes in front of them are *extra* axes (tangents and
cotangents carry them) and broadcast against each other, right-aligned, like
NumPy's leading axes in ``matmul``.  The result has the broadcast extra axes
first.

NumPy path: channels-last internally.  The input windows are gathered once
into an im2col matrix (a strided view, one copy), multiplied with one GEMM,
and the result is handed back as a channels-first *view* of channels-last
memory, so the next layer finds its channels contiguous (no transposes
between layers).  A recorded convolution keeps its im2col matrix for its
weight gradient.  ``conv_input_grad`` sums the windows back by slice-adds,
one per kernel offset, or, with stride 1 when that is cheaper (3x3 "same"),
correlates ``g`` with the flipped kernel.  Scratch buffers are recycled
across calls.  Other array libraries: shifted GEMMs, one per kernel offset.
"""

from __future__ import annotations

import functools
import itertools
import weakref
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..core.primitive import primitive
from ._broadcast import reshape, sum_to

__all__ = ["conv", "conv_input_grad", "conv_weight_grad", "out_size", "scratch_bytes"]


def out_size(size: int, k: int, stride: int, pad: tuple[int, int], dil: int) -> int:
    """Output length of one spatial axis."""
    return (size + pad[0] + pad[1] - dil * (k - 1) - 1) // stride + 1


def _prod(t) -> int:
    n = 1
    for v in t:
        n *= int(v)
    return n


# --- NumPy kernels (channels last inside) ----------------------------------------------------

def _split_x(x, d, ns):
    """``x (xe.., samp.., C, *S)`` -> channels-last ``(xe.., Nf, *S, C)``, xe, samp."""
    lead = x.shape[:-d - 1]
    xe, samp = lead[:len(lead) - ns], lead[len(lead) - ns:]
    C = x.shape[-d - 1]
    x = x.reshape(xe + (_prod(samp), C) + x.shape[-d:])
    return np.moveaxis(x, len(xe) + 1, -1), xe, samp


# Scratch buffers (im2col matrices, padded inputs, the columns of a transposed convolution)
# never leave this module, so they are recycled: a training loop then reuses the same pages
# every step instead of paying the kernel for fresh zeroed ones (a fifth of a small CNN's
# step).  At most two per shape and 256 MiB in all are kept.
_SCRATCH: dict[tuple, list] = {}
_SCRATCH_BYTES = [0]
_SCRATCH_LIMIT = 1 << 28


def scratch_bytes() -> int:
    """Bytes held by recycled convolution scratch buffers between calls."""
    return _SCRATCH_BYTES[0]


def _take(shape: tuple, dtype) -> np.ndarray:
    free = _SCRATCH.get((shape, np.dtype(dtype)))
    if free:
        try:
            a = free.pop()
        except IndexError:  # another thread took it
            return np.empty(shape, dtype)
        _SCRATCH_BYTES[0] -= a.nbytes
        return a
    return np.empty(shape, dtype)


def _give(a: np.ndarray) -> None:
    """Hand a scratch buffer back (the caller holds no other reference to it)."""
    if a.base is not None or _SCRATCH_BYTES[0] + a.nbytes > _SCRATCH_LIMIT:
        return
    free = _SCRATCH.setdefault((a.shape, a.dtype), [])
    if len(free) < 2:
        free.append(a)
        _SCRATCH_BYTES[0] += a.nbytes


def _pad_last(xl, d, padding):
    """Zero-pad the spatial axes of a channels-last array ``(..., *S, C)`` (a scratch buffer)."""
    if not any(lo or hi for lo, hi in padding):
        return xl
    S = xl.shape[-d - 1:-1]
    out = _take(xl.shape[:-d - 1] + tuple(s + lo + hi for s, (lo, hi) in zip(S, padding))
                + xl.shape[-1:], xl.dtype)
    nl = xl.ndim - d - 1
    for i, (lo, hi) in enumerate(padding):  # zero the borders only: the rest is overwritten
        ax = nl + i
        if lo:
            out[(slice(None),) * ax + (slice(0, lo),)] = 0
        if hi:
            out[(slice(None),) * ax + (slice(out.shape[ax] - hi, None),)] = 0
    out[(Ellipsis,) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(S, padding))
        + (slice(None),)] = xl
    return out


def _cols(x, K, stride, padding, dilation, groups, ns):
    """im2col: ``(xe.., G, Nf*P, prod(K)*Cg)`` (the kernel offset major, channel minor)."""
    d = len(K)
    xl, xe, samp = _split_x(x, d, ns)
    xp = _pad_last(xl, d, padding)
    span = tuple(dl * (k - 1) + 1 for k, dl in zip(K, dilation))
    v = sliding_window_view(xp, span, axis=tuple(range(-d - 1, -1)))  # (.., Nf, *So, C, *span)
    sl = (Ellipsis,) + tuple(slice(None, None, s) for s in stride) + (slice(None),) \
        + tuple(slice(None, None, dl) for dl in dilation)
    v = v[sl]
    nb = v.ndim - 2 * d - 2  # xe.., Nf
    So = v.shape[nb + 1:nb + 1 + d]
    # (.., Nf, *So, *K, C): the kernel axes before the channel axis
    perm = tuple(range(nb + 1 + d)) + tuple(range(nb + 2 + d, nb + 2 + 2 * d)) + (nb + 1 + d,)
    v = v.transpose(perm)
    C = v.shape[-1]
    Cg = C // groups
    P = _prod(So)
    if groups == 1:  # the im2col copy, into a scratch buffer
        cols = _take(xe + (1, v.shape[nb] * P, _prod(K) * C), v.dtype)
        np.copyto(cols.reshape(v.shape), v)
    else:
        v = v.reshape(v.shape[:-1] + (groups, Cg))
        v = np.moveaxis(v, -2, nb)  # (xe.., G, Nf, *So, *K, Cg)
        cols = v.reshape(xe + (groups, v.shape[nb + 1] * P, _prod(K) * Cg))
    if xp is not xl and not np.may_share_memory(cols, xp):  # (cols is a copy, always so far)
        _give(xp)
    return cols, xe, samp, So


def _wmat(w, d, groups):
    """``w (we.., O, Cg, *K)`` -> ``(we.., G, Og, prod(K)*Cg)`` in the im2col order."""
    we = w.shape[:-d - 2]
    O, Cg = w.shape[-d - 2:-d]
    wl = np.moveaxis(w, -d - 1, -1)  # (we.., O, *K, Cg)
    return wl.reshape(we + (groups, O // groups, _prod(w.shape[-d:]) * Cg))


def _gmat(g, d, ns, groups):
    """``g (ge.., samp.., O, *So)`` -> ``(ge.., G, Nf*P, Og)``."""
    gl, ge, _ = _split_x(g, d, ns)  # (ge.., Nf, *So, O)
    O = gl.shape[-1]
    gm = gl.reshape(ge + (-1, groups, O // groups))
    return np.moveaxis(gm, -2, -3)


# The im2col matrix of a recorded convolution, kept for its weight gradient (as a hand-written
# layer keeps it): id(x) -> (weak reference to x, parameters, cols).  An entry is used once, and
# goes away with x; a few at most are kept, so a forward pass without backward leaks nothing.
_KEPT: dict[int, tuple] = {}
_KEEP_AT_MOST = 16


def _keep(x, key, cols):
    if len(_KEPT) >= _KEEP_AT_MOST:
        try:  # the oldest entry goes
            _KEPT.pop(next(iter(_KEPT)), None)
        except (StopIteration, RuntimeError):  # emptied or changed by another thread
            pass
    i = id(x)
    try:
        ref = weakref.ref(x, lambda _, i=i: _KEPT.pop(i, None))
    except TypeError:  # not weak-referenceable: recompute later
        return
    _KEPT[i] = (ref, key, cols)


def _kept(x, key):
    entry = _KEPT.get(id(x))
    if entry is None or entry[0]() is not x or entry[1] != key:
        return None
    return entry[2] if _KEPT.pop(id(x), None) is entry else None


def _conv_np(x, w, *, stride, padding, dilation, groups, ns, keep=False):
    d = len(stride)
    K = w.shape[-d:]
    cols, xe, samp, So = _cols(x, K, stride, padding, dilation, groups, ns)
    kept = keep and cols.ndim == 3 and w.ndim == d + 2
    if kept:
        _keep(x, (tuple(K), stride, padding, dilation, groups, ns), cols)
    wm = _wmat(w, d, groups)
    out = np.matmul(cols, np.swapaxes(wm, -1, -2))  # (E.., G, Nf*P, Og): one GEMM per group
    if not kept:
        _give(cols)
    E = out.shape[:-3]
    if groups == 1:
        out = out.reshape(E + out.shape[-2:])
    else:
        out = np.moveaxis(out, -3, -2).reshape(E + (out.shape[-2], -1))
    O = out.shape[-1]
    out = out.reshape(E + (_prod(samp),) + So + (O,))
    out = np.moveaxis(out, -1, len(E) + 1)  # channels first, memory still channels last
    return out.reshape(E + samp + (O,) + So)


def _gather_is_cheaper(g, w, size, stride, padding, dilation, groups) -> bool:
    """Stride 1 and an im2col of ``g`` no larger than the scattered columns (3x3 "same")."""
    d = len(stride)
    K = w.shape[-d:]
    if any(s != 1 for s in stride):
        return False
    if any(max(pads) > dl * (k - 1) for pads, dl, k in zip(padding, dilation, K)):
        return False
    O, Cg = w.shape[-d - 2], w.shape[-d - 1]
    return _prod(size) * O <= _prod(g.shape[-d:]) * Cg * groups


def _conv_input_grad_by_gather(g, w, *, size, stride, padding, dilation, groups, ns):
    # With stride 1 the transpose is itself a correlation: g, padded by dl * (k - 1) less the
    # forward padding, with the flipped kernel whose in/out channel axes are swapped.  One
    # im2col of g and one GEMM, no slice-adds.
    d = len(stride)
    K = w.shape[-d:]
    we = w.shape[:-d - 2]
    O, Cg = w.shape[-d - 2], w.shape[-d - 1]
    nw = len(we)
    wt = w.reshape(we + (groups, O // groups, Cg) + K)
    wt = wt.transpose(tuple(range(nw)) + (nw, nw + 2, nw + 1) + tuple(range(nw + 3, nw + 3 + d)))
    wt = np.flip(wt.reshape(we + (groups * Cg, O // groups) + K), axis=tuple(range(-d, 0)))
    pad = tuple((dl * (k - 1) - lo, dl * (k - 1) - hi)
                for (lo, hi), dl, k in zip(padding, dilation, K))
    return _conv_np(g, wt, stride=stride, padding=pad, dilation=dilation, groups=groups, ns=ns)


def _conv_input_grad_np(g, w, *, size, stride, padding, dilation, groups, ns):
    if _gather_is_cheaper(g, w, size, stride, padding, dilation, groups):
        return _conv_input_grad_by_gather(g, w, size=size, stride=stride, padding=padding,
                                          dilation=dilation, groups=groups, ns=ns)
    d = len(stride)
    K = w.shape[-d:]
    gm = _gmat(g, d, ns, groups)                 # (ge.., G, Nf*P, Og)
    wm = _wmat(w, d, groups)                     # (we.., G, Og, Kp*Cg)
    scratch = _take(np.broadcast_shapes(gm.shape[:-2], wm.shape[:-2])
                    + (gm.shape[-2], wm.shape[-1]), np.result_type(gm, wm))
    dcols = np.matmul(gm, wm, out=scratch)       # (E.., G, Nf*P, Kp*Cg)
    E = dcols.shape[:-3]
    G, Cg = groups, w.shape[-d - 1]
    lead = g.shape[:-d - 1]
    samp = lead[len(lead) - ns:]
    So = g.shape[-d:]
    Nf = _prod(samp)
    dcols = dcols.reshape(E + (G, Nf) + So + K + (Cg,))
    dcols = np.moveaxis(dcols, len(E), -2)       # (E.., Nf, *So, *K, G, Cg)
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(size, padding))
    out = np.zeros(E + (Nf,) + padded + (G, Cg), dtype=dcols.dtype)
    ne = len(E) + 1
    for kk in itertools.product(*(range(k) for k in K)):  # slice-adds, one per kernel offset
        dst = (Ellipsis,) + tuple(
            slice(k * dl, k * dl + s * (o - 1) + 1, s)
            for k, dl, s, o in zip(kk, dilation, stride, So)) + (slice(None), slice(None))
        src = (slice(None),) * (ne + d) + kk
        out[dst] += dcols[src]
    _give(scratch)
    crop = (Ellipsis,) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(size, padding)) \
        + (slice(None), slice(None))
    out = out[crop].reshape(E + (Nf,) + tuple(size) + (G * Cg,))
    out = np.moveaxis(out, -1, len(E) + 1)
    return out.reshape(E + samp + (G * Cg,) + tuple(size))


def _conv_weight_grad_np(x, g, *, kernel, stride, padding, dilation, groups, ns):
    d = len(stride)
    cols = _kept(x, (tuple(kernel), stride, padding, dilation, groups, ns))
    if cols is None:
        cols, _, _, _ = _cols(x, kernel, stride, padding, dilation, groups, ns)  # (xe.., G, NP, KC)
    gm = _gmat(g, d, ns, groups)                                            # (ge.., G, NP, Og)
    gw = np.matmul(np.swapaxes(gm, -1, -2), cols)                           # (E.., G, Og, KC)
    _give(cols)
    E = gw.shape[:-3]
    Cg = x.shape[-d - 1] // groups
    gw = gw.reshape(E + (gw.shape[-3] * gw.shape[-2],) + tuple(kernel) + (Cg,))
    return np.moveaxis(gw, -1, len(E) + 1)                                  # (E.., O, Cg, *K)


# --- any array library: shifted GEMMs --------------------------------------------------------

def _pad_generic(xp, x, d, padding):
    for ax, (lo, hi) in zip(range(-d, 0), padding):
        if not (lo or hi):
            continue
        shape = list(x.shape)
        parts = []
        if lo:
            shape[ax] = lo
            parts.append(xp.zeros(tuple(shape), dtype=x.dtype))
        parts.append(x)
        if hi:
            shape[ax] = hi
            parts.append(xp.zeros(tuple(shape), dtype=x.dtype))
        x = xp.concat(parts, axis=ax)
    return x


def _shifted(x, kk, dilation, stride, So):
    return x[(Ellipsis,) + tuple(slice(k * dl, k * dl + s * (o - 1) + 1, s)
                                 for k, dl, s, o in zip(kk, dilation, stride, So))]


def _conv_generic(xp, x, w, *, stride, padding, dilation, groups, ns):
    d = len(stride)
    K, S = tuple(w.shape[-d:]), tuple(x.shape[-d:])
    So = tuple(out_size(s, k, st, p, dl) for s, k, st, p, dl in zip(S, K, stride, padding,
                                                                       dilation))
    xpd = _pad_generic(xp, x, d, padding)
    lead = tuple(x.shape[:-d - 1])
    C, O = x.shape[-d - 1], w.shape[-d - 2]
    we = tuple(w.shape[:-d - 2])
    G, Cg, Og = groups, C // groups, O // groups
    out = None
    for kk in itertools.product(*(range(k) for k in K)):
        xs = xp.reshape(_shifted(xpd, kk, dilation, stride, So), lead + (G, Cg, _prod(So)))
        wk = xp.reshape(w[(Ellipsis,) + kk], we + (1,) * ns + (G, Og, Cg))
        term = xp.matmul(wk, xs)
        out = term if out is None else out + term
    return xp.reshape(out, tuple(out.shape[:-3]) + (O,) + So)


def _conv_input_grad_generic(xp, g, w, *, size, stride, padding, dilation, groups, ns):
    # The transpose of a strided convolution: zero-interleave g, pad it fully, correlate with
    # the flipped kernel whose in/out channel axes are swapped, and crop the padding.
    d = len(stride)
    K = tuple(w.shape[-d:])
    for i, s in enumerate(stride):
        if s > 1:
            ax = g.ndim - d + i
            n = g.shape[ax]
            gz = xp.stack([g] + [xp.zeros(g.shape, dtype=g.dtype)] * (s - 1), axis=ax + 1)
            g = xp.reshape(gz, tuple(g.shape[:ax]) + (n * s,) + tuple(g.shape[ax + 1:]))
            g = g[_take_first(ax, (n - 1) * s + 1, g.ndim)]
    pad = tuple((dl * (k - 1), s_in + lo + hi - L)
                for k, dl, (lo, hi), s_in, L in zip(K, dilation, padding, size, g.shape[-d:]))
    we = tuple(w.shape[:-d - 2])
    O, Cg = w.shape[-d - 2], w.shape[-d - 1]
    G, Og = groups, O // groups
    nw = len(we)
    wt = xp.reshape(w, we + (G, Og, Cg) + K)
    wt = xp.permute_dims(wt, tuple(range(nw)) + (nw, nw + 2, nw + 1)
                         + tuple(range(nw + 3, nw + 3 + d)))
    wt = xp.flip(xp.reshape(wt, we + (G * Cg, Og) + K), axis=tuple(range(-d, 0)))
    out = _conv_generic(xp, g, wt, stride=(1,) * d, padding=pad, dilation=dilation,
                        groups=groups, ns=ns)
    return out[(Ellipsis,) + tuple(slice(lo, lo + s) for (lo, _), s in zip(padding, size))]


def _take_first(ax, n, ndim):
    idx = [slice(None)] * ndim
    idx[ax] = slice(0, n)
    return tuple(idx)


def _conv_weight_grad_generic(xp, x, g, *, kernel, stride, padding, dilation, groups, ns):
    d = len(stride)
    So = tuple(g.shape[-d:])
    xpd = _pad_generic(xp, x, d, padding)
    lead = tuple(x.shape[:-d - 1])
    glead = tuple(g.shape[:-d - 1])
    C, O = x.shape[-d - 1], g.shape[-d - 1]
    G, Cg, Og = groups, C // groups, O // groups
    gm = xp.reshape(g, glead + (G, Og, _prod(So)))
    terms = []
    for kk in itertools.product(*(range(k) for k in kernel)):
        xs = xp.reshape(_shifted(xpd, kk, dilation, stride, So), lead + (G, Cg, _prod(So)))
        t = xp.matmul(gm, xp.matrix_transpose(xs))   # (E.., samp.., G, Og, Cg)
        if ns:
            t = xp.sum(t, axis=tuple(range(-3 - ns, -3)))
        terms.append(t)
    gw = xp.stack(terms, axis=-1)
    gw = xp.reshape(gw, tuple(gw.shape[:-4]) + (O, Cg) + tuple(kernel))
    return gw


# --- the three primitives and their rules ----------------------------------------------------

def _n_extra(arg, core: int) -> int:
    return len(arg.shape) - core


def _fit(r, arg, n_extra_total: int, core: int):
    """Sum ``r`` (rb.., E.., *core) down to ``arg``'s extra axes (rb.., argE.., *core)."""
    rs = tuple(r.shape)
    a_extra = tuple(arg.shape[:len(arg.shape) - core])
    nb = len(rs) - n_extra_total - core
    target = rs[:nb] + (1,) * (n_extra_total - len(a_extra)) + a_extra + rs[len(rs) - core:]
    if target != rs:
        r = sum_to(r, shape=target)
    final = rs[:nb] + a_extra + rs[len(rs) - core:]
    if final != target:
        r = reshape(r, shape=final)
    return r


def _lift(t, arg, n_extra_total: int, core: int):
    """Give tangent ``t`` (tb.., argE.., *core) the extra rank ``n_extra_total``."""
    a_extra = len(arg.shape) - core
    pad = n_extra_total - a_extra
    if pad <= 0:
        return t
    ts = tuple(t.shape)
    nb = len(ts) - len(arg.shape)
    return reshape(t, shape=ts[:nb] + (1,) * pad + ts[nb:])


def _x_core(ns, d):
    return ns + 1 + d


def _conv_extra(out, d, ns):
    return len(out.shape) - ns - 1 - d


def _vjp_x(g, out, x, w, *, stride, padding, dilation, groups, ns):
    d = len(stride)
    r = conv_input_grad_p(g, w, size=tuple(x.shape[-d:]), stride=stride, padding=padding,
                          dilation=dilation, groups=groups, ns=ns)
    return _fit(r, x, _conv_extra(out, d, ns), _x_core(ns, d))


def _vjp_w(g, out, x, w, *, stride, padding, dilation, groups, ns):
    d = len(stride)
    r = conv_weight_grad_p(x, g, kernel=tuple(w.shape[-d:]), stride=stride, padding=padding,
                           dilation=dilation, groups=groups, ns=ns)
    return _fit(r, w, _conv_extra(out, d, ns), d + 2)


def _jvp_x(t, out, x, w, *, stride, padding, dilation, groups, ns):
    d = len(stride)
    t = _lift(t, x, _conv_extra(out, d, ns), _x_core(ns, d))
    return conv_p(t, w, stride=stride, padding=padding, dilation=dilation, groups=groups, ns=ns)


def _jvp_w(t, out, x, w, *, stride, padding, dilation, groups, ns):
    d = len(stride)
    t = _lift(t, w, _conv_extra(out, d, ns), d + 2)
    return conv_p(x, t, stride=stride, padding=padding, dilation=dilation, groups=groups, ns=ns)


conv_p = primitive("conv", _conv_generic, _conv_np, vjp=(_vjp_x, _vjp_w),
                   jvp=(_jvp_x, _jvp_w))
# Recorded calls (boxes) keep their im2col matrix for the weight gradient; plain calls do not.
conv_p.box_impl = functools.partial(_conv_np, keep=True)


def _ig_extra(out, d, ns):
    return len(out.shape) - ns - 1 - d


def _ig_vjp_g(c, out, g, w, *, size, stride, padding, dilation, groups, ns):
    d = len(stride)
    r = conv_p(c, w, stride=stride, padding=padding, dilation=dilation, groups=groups, ns=ns)
    return _fit(r, g, _ig_extra(out, d, ns), _x_core(ns, d))


def _ig_vjp_w(c, out, g, w, *, size, stride, padding, dilation, groups, ns):
    d = len(stride)
    r = conv_weight_grad_p(c, g, kernel=tuple(w.shape[-d:]), stride=stride, padding=padding,
                           dilation=dilation, groups=groups, ns=ns)
    return _fit(r, w, _ig_extra(out, d, ns), d + 2)


def _ig_jvp_g(t, out, g, w, *, size, stride, padding, dilation, groups, ns):
    d = len(stride)
    t = _lift(t, g, _ig_extra(out, d, ns), _x_core(ns, d))
    return conv_input_grad_p(t, w, size=size, stride=stride, padding=padding, dilation=dilation,
                             groups=groups, ns=ns)


def _ig_jvp_w(t, out, g, w, *, size, stride, padding, dilation, groups, ns):
    d = len(stride)
    t = _lift(t, w, _ig_extra(out, d, ns), d + 2)
    return conv_input_grad_p(g, t, size=size, stride=stride, padding=padding, dilation=dilation,
                             groups=groups, ns=ns)


conv_input_grad_p = primitive("conv_input_grad", _conv_input_grad_generic, _conv_input_grad_np,
                              vjp=(_ig_vjp_g, _ig_vjp_w), jvp=(_ig_jvp_g, _ig_jvp_w))


def _wg_extra(out, d):
    return len(out.shape) - d - 2


def _wg_vjp_x(c, out, x, g, *, kernel, stride, padding, dilation, groups, ns):
    d = len(stride)
    r = conv_input_grad_p(g, c, size=tuple(x.shape[-d:]), stride=stride, padding=padding,
                          dilation=dilation, groups=groups, ns=ns)
    return _fit(r, x, _wg_extra(out, d), _x_core(ns, d))


def _wg_vjp_g(c, out, x, g, *, kernel, stride, padding, dilation, groups, ns):
    d = len(stride)
    r = conv_p(x, c, stride=stride, padding=padding, dilation=dilation, groups=groups, ns=ns)
    return _fit(r, g, _wg_extra(out, d), _x_core(ns, d))


def _wg_jvp_x(t, out, x, g, *, kernel, stride, padding, dilation, groups, ns):
    d = len(stride)
    t = _lift(t, x, _wg_extra(out, d), _x_core(ns, d))
    return conv_weight_grad_p(t, g, kernel=kernel, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, ns=ns)


def _wg_jvp_g(t, out, x, g, *, kernel, stride, padding, dilation, groups, ns):
    d = len(stride)
    t = _lift(t, g, _wg_extra(out, d), _x_core(ns, d))
    return conv_weight_grad_p(x, t, kernel=kernel, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, ns=ns)


conv_weight_grad_p = primitive("conv_weight_grad", _conv_weight_grad_generic,
                               _conv_weight_grad_np, vjp=(_wg_vjp_x, _wg_vjp_g),
                               jvp=(_wg_jvp_x, _wg_jvp_g))

# --- public entry points ------------------------------------------------------------------------

def conv(x: Any, w: Any, *, stride: tuple, padding: tuple, dilation: tuple, groups: int,
         ns: int) -> Any:
    """``conv_p`` with already checked, normalised parameters (see ``nn.functional``).

    >>> import numpy as np
    >>> conv(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), stride=(1, 1),
    ...      padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1, ns=1)[0, 0]
    array([[4., 4.],
           [4., 4.]])
    """
    params = dict(stride=tuple(stride), padding=tuple(tuple(p) for p in padding),
                  dilation=tuple(dilation), groups=int(groups), ns=int(ns))
    return conv_p(x, w, **params)


def conv_input_grad(g: Any, w: Any, *, size: tuple, stride: tuple, padding: tuple,
                    dilation: tuple, groups: int, ns: int) -> Any:
    """The transpose of :func:`conv` in its input: the transposed convolution."""
    return conv_input_grad_p(g, w, size=tuple(size), stride=tuple(stride),
                             padding=tuple(tuple(p) for p in padding), dilation=tuple(dilation),
                             groups=int(groups), ns=int(ns))


def conv_weight_grad(x: Any, g: Any, *, kernel: tuple, stride: tuple, padding: tuple,
                     dilation: tuple, groups: int, ns: int) -> Any:
    """The transpose of :func:`conv` in its kernel."""
    return conv_weight_grad_p(x, g, kernel=tuple(kernel), stride=tuple(stride),
                              padding=tuple(tuple(p) for p in padding),
                              dilation=tuple(dilation), groups=int(groups), ns=int(ns))
