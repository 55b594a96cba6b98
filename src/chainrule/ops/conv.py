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

NumPy path: channels-last internally, the result handed back as a
channels-first *view* of channels-last memory, so the next layer finds its
channels contiguous (no transposes between layers).  Stride 1 with one group
and enough channels (3x3 "same" layers): shifted GEMMs on the padded grid,
one per kernel offset, accumulated in place (SciPy's BLAS ``gemm`` with
``beta=1`` when SciPy is installed), and the weight gradient likewise, from
the padded input a recorded convolution keeps -- no im2col copy at all.
Otherwise the input windows are gathered once into an im2col matrix (a
strided view, one copy) and multiplied with one GEMM; a recorded
convolution keeps that matrix for its weight gradient.  ``conv_input_grad``
sums the windows back by slice-adds, one per kernel offset, or, with stride 1
when that is cheaper (3x3 "same"), correlates ``g`` with the flipped kernel.
Scratch buffers are recycled across calls, and ``cr.compile`` writes the
results into its own reused buffers (``np_out_impl``).  Measured on W7's 3x3
layer (32 channels, 32x32, batch 32, one thread, float32): im2col + GEMM
12-15 ms, shifted GEMMs 7.8 ms (NumPy matmul + add: 9.3 ms), Winograd
F(2x2, 3x3) 12.6 ms (its GEMMs take 3.9 ms, its tile transforms in NumPy
7 ms).  Other array libraries: shifted GEMMs, one per kernel offset.
"""

from __future__ import annotations

import functools
import importlib
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
# step).  At most three per shape and 256 MiB in all are kept.
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
    if len(free) < 3:
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


# --- shifted GEMMs on the padded grid (stride 1) -----------------------------------------------
#
# With stride 1 the padded input, flattened channels-last to ``(Nf * prod(Sp), C)``, already
# holds every kernel offset's input matrix as a contiguous row range: the output at grid row r
# reads row r + offset.  So a convolution is one GEMM of K = C per kernel offset, summed into
# one output on the padded grid (whose rows past the valid outputs are cropped away), with no
# im2col copy; the weight gradient is one GEMM per offset on the same rows.  Measured on a
# 3x3 "same" layer (32 channels, 32x32, batch 32, one thread) this beats im2col + one GEMM by
# 1.3-1.7x; it wastes the border rows of the grid, so it is used only where those are few.
_GRID_WASTE_AT_MOST = 1.35
_GRID_MIN_CHANNELS = 16  # GEMMs with K below this run slowly: im2col's K is prod(kernel) * C
_GEMMS: dict = {}


def _blas_gemm(dtype):
    """SciPy's BLAS ``gemm`` for ``dtype`` (it accumulates, ``beta=1``), or None without SciPy."""
    if dtype not in _GEMMS:
        gemm = None
        if dtype.char in "fdFD":
            try:  # imported on first use: scipy.linalg costs a fifth of a second to import
                blas = importlib.import_module("scipy.linalg.blas")
                gemm = blas.get_blas_funcs("gemm", dtype=dtype)
            except ImportError:  # pragma: no cover - depends on the environment
                gemm = None
        _GEMMS[dtype] = gemm
    return _GEMMS[dtype]


def _grid_fits(x_shape, kernel, stride, padding, dilation, groups, ns, w_ndim) -> bool:
    """Whether the shifted-GEMM path takes this convolution."""
    d = len(stride)
    if groups != 1 or any(s != 1 for s in stride) or w_ndim != d + 2:
        return False
    if len(x_shape) != ns + 1 + d:  # extra (tangent) axes: im2col handles those
        return False
    padded = [s + lo + hi for s, (lo, hi) in zip(x_shape[-d:], padding)]
    valid = [p - dl * (k - 1) for p, dl, k in zip(padded, dilation, kernel)]
    if min(valid) <= 0:
        return False
    if _prod(kernel) > 1 and x_shape[-d - 1] < _GRID_MIN_CHANNELS:
        return False
    return _prod(padded) <= _GRID_WASTE_AT_MOST * _prod(valid)


def _grid(x, d, padding, ns):
    """``x (samp.., C, *S)`` -> padded channels-last ``(Nf, *Sp, C)``, C-contiguous, and
    whether it is a scratch buffer (else it is ``x``'s own memory)."""
    xl, _, _ = _split_x(x, d, ns)
    xp = _pad_last(xl, d, padding)
    if xp is not xl:
        return xp, True
    if xl.flags.c_contiguous:
        return xl, False
    buf = _take(xl.shape, xl.dtype)
    np.copyto(buf, xl)
    return buf, True


def _offsets(Sp, kernel, dilation):
    """Flat row offset of each kernel offset on the padded grid (kernel offsets in C order)."""
    step = [_prod(Sp[i + 1:]) for i in range(len(Sp))]
    return [sum(k * dl * st for k, dl, st in zip(kk, dilation, step))
            for kk in itertools.product(*(range(k) for k in kernel))]


def _rows(Nf, Sp, valid):
    """Grid rows up to the last valid output: ``out[r]`` for ``r < rows`` is computed."""
    last = sum((v - 1) * _prod(Sp[i + 1:]) for i, v in enumerate(valid))
    return (Nf - 1) * _prod(Sp) + last + 1


def _conv_grid(x, w, *, padding, dilation, ns, keep, dest=None, share=None):
    d = len(padding)
    K = tuple(w.shape[-d:])
    dtype = np.result_type(x, w)
    xp, owned = _grid(x, d, padding, ns)
    if xp.dtype != dtype:
        xp, owned = xp.astype(dtype), True
    Nf, Sp, C = xp.shape[0], xp.shape[1:-1], xp.shape[-1]
    O = w.shape[0]
    So = tuple(p - dl * (k - 1) for p, dl, k in zip(Sp, dilation, K))
    rows = _rows(Nf, Sp, So)
    # (*K, C, O): each offset's (C, O) matrix contiguous, so its transpose is Fortran-ordered
    wk = np.ascontiguousarray(np.moveaxis(w.astype(dtype, copy=False), (0, 1), (-1, -2)))
    wk = wk.reshape(-1, C, O)
    xf = xp.reshape(-1, C)
    grid = (Nf,) + Sp + (O,)
    out = np.empty(grid, dtype) if dest is None else _take(grid, dtype)
    of = out.reshape(-1, O)[:rows]
    offs = _offsets(Sp, K, dilation)
    gemm = _blas_gemm(dtype)
    if gemm is not None:  # out^T (O, rows), Fortran-ordered, accumulated in place: beta = 1
        c = of.T
        for i, o in enumerate(offs):
            r = gemm(1.0, wk[i].T, xf[o:o + rows].T, beta=0.0 if i == 0 else 1.0, c=c,
                     overwrite_c=1)
            if r is not c and not np.shares_memory(r, c):
                c[...] = r
    else:
        np.matmul(xf[offs[0]:offs[0] + rows], wk[0], out=of)
        if len(offs) > 1:
            tmp = _take(of.shape, dtype)
            for i, o in enumerate(offs[1:], 1):
                np.matmul(xf[o:o + rows], wk[i], out=tmp)
                of += tmp
            _give(tmp)
    if keep:
        _keep(x, ("grid", K, padding, dilation, ns), (xp, owned))
    elif share is not None and owned:  # the padded input, for a weight gradient (see gpad)
        _keep(x, share, (xp, owned))
    elif owned:
        _give(xp)
    out = out[(slice(None),) + tuple(slice(0, s) for s in So)]
    if dest is not None:
        np.copyto(dest, out)
        _give(out.base)
        return dest
    samp = x.shape[:ns]
    out = np.moveaxis(out, -1, 1)  # channels first, memory still channels last
    return out.reshape(samp + (O,) + So)


def _weight_grad_grid(x, g, *, kernel, padding, dilation, ns):
    d = len(padding)
    K = tuple(kernel)
    entry = _kept(x, ("grid", K, padding, dilation, ns))
    xp, owned = entry if entry is not None else _grid(x, d, padding, ns)
    dtype = np.result_type(xp, g)
    if xp.dtype != dtype:
        xp = xp.astype(dtype)
    Nf, Sp, C = xp.shape[0], xp.shape[1:-1], xp.shape[-1]
    gl, _, _ = _split_x(g, d, ns)               # (Nf, *So, O)
    So, O = gl.shape[1:-1], gl.shape[-1]
    rows = _rows(Nf, Sp, So)
    # g on the padded grid, zero past the valid outputs: the transposed convolution's padded
    # g read at an offset when it left one (see _gpad_key), else a zero-padded copy
    pad = tuple((dl * (k - 1) - lo, dl * (k - 1) - hi)
                for (lo, hi), dl, k in zip(padding, dilation, K))
    shared = _kept(g, _gpad_key(So, pad)) if min(min(p) for p in pad) >= 0 else None
    if shared is not None and shared[0].shape == (Nf,) + Sp + (O,) and shared[0].dtype == dtype:
        gg, gowned = shared
        shift = sum(lo * _prod(Sp[i + 1:]) for i, (lo, _) in enumerate(pad))
    else:
        if shared is not None:
            _give(shared[0])
        gg = _pad_last(gl.astype(dtype, copy=False), d,
                       tuple((0, p - s) for p, s in zip(Sp, So)))
        gowned, shift = gg is not gl, 0
        if not gg.flags.c_contiguous:
            gg, gowned = np.ascontiguousarray(gg), False
    gf = gg.reshape(-1, O)[shift:shift + rows]
    xf = xp.reshape(-1, C)
    dw = np.empty((len(_offsets(Sp, K, dilation)), C, O), dtype)
    for i, o in enumerate(_offsets(Sp, K, dilation)):
        np.matmul(xf[o:o + rows].T, gf, out=dw[i])
    if owned:
        _give(xp)
    if gowned:
        _give(gg)
    return np.moveaxis(dw.reshape(K + (C, O)), (-1, -2), (0, 1))  # (O, C, *K)


def _conv_np(x, w, *, stride, padding, dilation, groups, ns, keep=False, dest=None,
             share=None):
    # dest: None, or where to write the result, channels last ``(Nf, *So, O)`` (see _into);
    # share: a key under which the shifted-GEMM path keeps its padded input (see gpad)
    d = len(stride)
    K = w.shape[-d:]
    if _grid_fits(x.shape, K, stride, padding, dilation, groups, ns, w.ndim):
        return _conv_grid(x, w, padding=padding, dilation=dilation, ns=ns, keep=keep, dest=dest,
                          share=share)
    cols, xe, samp, So = _cols(x, K, stride, padding, dilation, groups, ns)
    kept = keep and cols.ndim == 3 and w.ndim == d + 2
    if kept:
        _keep(x, (tuple(K), stride, padding, dilation, groups, ns), cols)
    wm = _wmat(w, d, groups)
    if dest is not None and cols.ndim == 3 and w.ndim == d + 2 and groups == 1:
        np.matmul(cols, np.swapaxes(wm, -1, -2), out=dest.reshape((1, -1, dest.shape[-1])))
        if not kept:
            _give(cols)
        return dest
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
    if dest is not None:
        np.copyto(dest, out)
        return dest
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


def _conv_input_grad_by_gather(g, w, *, size, stride, padding, dilation, groups, ns, dest=None):
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
    return _conv_np(g, wt, stride=stride, padding=pad, dilation=dilation, groups=groups, ns=ns,
                    dest=dest, share=_gpad_key(g.shape[-d:], pad))


def _gpad_key(So, pad):
    """The key of ``g`` zero-padded by ``pad`` (kept by the transposed convolution above).

    With "same" padding that array has the padded input's grid, and ``g`` sits at a fixed
    flat offset in it with zeros around: exactly what the weight gradient on the grid reads,
    shifted by that offset -- so it pads ``g`` once for both products."""
    return ("gpad", tuple(s + lo + hi for s, (lo, hi) in zip(So, pad)), tuple(lo for lo, _ in pad))


def _conv_input_grad_by_offsets(g, w, *, size, stride, padding, dilation, ns):
    # One GEMM per kernel offset, each result contiguous, so that every slice-add runs over
    # whole rows of channels-last pixels (W6's 5x5 layer: 8 ms against 14 ms for one GEMM
    # whose columns are then added back 20 channels at a time).
    d = len(stride)
    K = tuple(w.shape[-d:])
    gl, _, samp = _split_x(g, d, ns)            # (Nf, *So, O)
    Nf, So, O = gl.shape[0], gl.shape[1:-1], gl.shape[-1]
    C = w.shape[1]
    dtype = np.result_type(g, w)
    wk = np.ascontiguousarray(np.moveaxis(w, (0, 1), (-2, -1))).reshape(-1, O, C)
    dc = np.matmul(gl.reshape(-1, O), wk, out=_take((wk.shape[0], gl[..., 0].size, C), dtype))
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(size, padding))
    out = np.zeros((Nf,) + padded + (C,), dtype=dtype)
    for i, kk in enumerate(itertools.product(*(range(k) for k in K))):
        dst = (slice(None),) + tuple(
            slice(k * dl, k * dl + s * (o - 1) + 1, s)
            for k, dl, s, o in zip(kk, dilation, stride, So)) + (slice(None),)
        out[dst] += dc[i].reshape((Nf,) + So + (C,))
    _give(dc)
    out = out[(slice(None),) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(size, padding))]
    return np.moveaxis(out, -1, 1).reshape(samp + (C,) + tuple(size))


def _conv_input_grad_np(g, w, *, size, stride, padding, dilation, groups, ns):
    if _gather_is_cheaper(g, w, size, stride, padding, dilation, groups):
        return _conv_input_grad_by_gather(g, w, size=size, stride=stride, padding=padding,
                                          dilation=dilation, groups=groups, ns=ns)
    d = len(stride)
    if groups == 1 and len(g.shape) == ns + 1 + d and len(w.shape) == d + 2:
        return _conv_input_grad_by_offsets(g, w, size=size, stride=stride, padding=padding,
                                           dilation=dilation, ns=ns)
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
    if _grid_fits(x.shape, kernel, stride, padding, dilation, groups, ns, len(kernel) + 2) \
            and len(g.shape) == len(x.shape):
        return _weight_grad_grid(x, g, kernel=kernel, padding=padding, dilation=dilation, ns=ns)
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


# --- into a given buffer (cr.compile's reused buffers) --------------------------------------------

def _channels_last(out, ns):
    """``out (samp.., O, *So)`` seen channels last ``(samp.., *So, O)`` when that view is
    C-contiguous (a buffer laid out like the kernels' results), else ``None``."""
    cl = np.moveaxis(out, ns, -1)
    return cl if cl.flags.c_contiguous else None


def _out_views(out, ns, d):
    """``out (samp.., O, *So)`` used as channels-last memory: the destination ``(Nf, *So, O)``
    the kernels write, and its channels-first view (the result).  A channels-last ``out`` is
    its own result; a C-contiguous one lends its memory (the result is then a view of it)."""
    samp, O, So = out.shape[:ns], out.shape[ns], out.shape[ns + 1:]
    cl = _channels_last(out, ns)
    if cl is not None:
        return cl.reshape((_prod(samp),) + So + (O,)), out
    dest = out.reshape(-1).reshape((_prod(samp),) + So + (O,))
    return dest, np.moveaxis(dest, -1, 1).reshape(samp + (O,) + So)


def _writable_into(out, ns, d, *args) -> bool:
    """Whether the kernels may write ``out``'s memory directly (else compute, then copy)."""
    return (type(out) is np.ndarray and out.ndim == ns + 1 + d
            and (out.flags.c_contiguous or _channels_last(out, ns) is not None)
            and out.dtype == np.result_type(*args)
            and all(type(a) is np.ndarray and not np.may_share_memory(a, out) for a in args))


def _conv_into(x, w, *, out, stride, padding, dilation, groups, ns, keep=False):
    """``conv_p``'s np_impl into ``out``; the result is ``out``'s memory (channels last).
    ``keep``: keep the im2col matrix for a weight gradient (as a recorded call does)."""
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, ns=ns)
    if not _writable_into(out, ns, len(stride), x, w):
        np.copyto(out, _conv_np(x, w, **params))
        return out
    dest, view = _out_views(out, ns, len(stride))
    _conv_np(x, w, dest=dest, keep=keep, **params)
    return view


def _conv_input_grad_into(g, w, *, out, size, stride, padding, dilation, groups, ns):
    """``conv_input_grad_p``'s np_impl into ``out`` (channels last, like :func:`_conv_into`)."""
    params = dict(size=size, stride=stride, padding=padding, dilation=dilation, groups=groups,
                  ns=ns)
    if not _writable_into(out, ns, len(stride), g, w):
        np.copyto(out, _conv_input_grad_np(g, w, **params))
        return out
    dest, view = _out_views(out, ns, len(stride))
    if _gather_is_cheaper(g, w, size, stride, padding, dilation, groups):
        _conv_input_grad_by_gather(g, w, dest=dest, **params)
    else:
        np.copyto(view, _conv_input_grad_np(g, w, **params))
    return view


def _conv_weight_grad_into(x, g, *, out, **params):
    """``conv_weight_grad_p``'s np_impl into ``out`` (a kernel: small, so one copy)."""
    np.copyto(out, _conv_weight_grad_np(x, g, **params))
    return out


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
conv_p.np_out_impl = _conv_into


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
conv_input_grad_p.np_out_impl = _conv_input_grad_into


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
conv_weight_grad_p.np_out_impl = _conv_weight_grad_into

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
