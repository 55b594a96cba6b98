"""Neural-network primitives that need their own rules for stability or speed.

Activations (sigmoid, relu, softplus, log_sigmoid, erf), the softmax family
(one primitive each, so the backward pass is the full Jacobian-vector
product ``(g - sum(g * s)) * s`` in one step), an elementwise binary
cross-entropy with PyTorch's clamping, and the image operations behind
convolution and pooling:

* ``patches`` (im2col): ``(..., H, W) -> (..., kh, kw, Ho, Wo)`` through a
  strided view (``sliding_window_view``), no loop over pixels;
* ``col2im``: its transpose, summing the windows back (a loop over the
  ``kh * kw`` kernel offsets only);
* ``conv2d``: the 2-D case of :mod:`chainrule.ops.conv` (one GEMM on the
  im2col matrix; rules that are each other, differentiable to any order).

Rules address axes from the end, so cotangents and tangents may carry
leading batch axes.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..core.primitive import Box, Primitive, constant_value, primitive, registry
from ._broadcast import align, reshape, unbroadcast
from .conv import conv
from .elementwise import exp, log, log1p, maximum, negative, select_grad
from .reductions import reduce_sum

__all__ = [
    "sigmoid", "relu", "softplus", "log_sigmoid", "erf", "softmax", "log_softmax",
    "binary_cross_entropy", "patches", "col2im", "conv2d", "linear", "max_pool2d", "avg_pool2d",
    "softmax_cross_entropy",
]


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


# --- activations --------------------------------------------------------------------------

def _sigmoid_impl(xp, x):
    # exp(-|x|) never overflows; pick the branch that keeps the ratio finite.
    z = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def _sigmoid_np(x):
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z)).astype(z.dtype, copy=False)


sigmoid = primitive(
    "sigmoid", _sigmoid_impl, _sigmoid_np,
    vjp=(lambda g, out, x: g * (out * (1.0 - out)),),
    jvp=(lambda t, out, x: t * (out * (1.0 - out)),),
    saves="output",
)


def _relu_impl(xp, x):
    return xp.where(x > 0, x, xp.zeros_like(x))


def _relu_rule(g, out, x):
    if type(out) is np.ndarray and type(g) is np.ndarray:  # a plain mask: one pass
        return g * (out > 0)
    # (one select_grad: a recorded backward pass masks in one call; nothing at x == 0)
    return select_grad(g, constant_value(out), 0.0, op="maximum", first=True, tie=0.0)


# out > 0 exactly where x > 0: the rules read the output, so the input can be freed.
relu = primitive(
    "relu", _relu_impl, lambda x: np.maximum(x, 0),
    vjp=(_relu_rule,),
    jvp=(_relu_rule,),
    saves="output",
)
# a cotangent the sweep owns is masked where it lies (g may carry leading batch axes)
relu.vjp_inplace = (lambda g, out, x: np.multiply(g, out > 0, out=g),)


def _softplus_impl(xp, x):
    return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))


def _softplus_np(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


# softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); its derivative is sigmoid(x).
softplus = primitive(
    "softplus", _softplus_impl, _softplus_np,
    vjp=(lambda g, out, x: g * sigmoid(x),),
    jvp=(lambda t, out, x: t * sigmoid(x),),
)

# log(sigmoid(x)) = -softplus(-x); its derivative is sigmoid(-x).
log_sigmoid = primitive(
    "log_sigmoid",
    lambda xp, x: -_softplus_impl(xp, -x),
    lambda x: -_softplus_np(-x),
    vjp=(lambda g, out, x: g * sigmoid(negative(x)),),
    jvp=(lambda t, out, x: t * sigmoid(negative(x)),),
)


def _erf_np_fallback(x):
    return np.vectorize(math.erf, otypes=[np.result_type(x, np.float32)])(x)


try:  # SciPy's erf is exact and vectorised; math.erf element by element otherwise.
    from scipy.special import erf as _erf_np
except ImportError:  # pragma: no cover - depends on the environment
    _erf_np = _erf_np_fallback


def _erf_impl(xp, x):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7) for array libraries without erf.
    s = xp.sign(x)
    a = xp.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                     + t * 1.061405429))))
    return s * (1.0 - poly * xp.exp(-a * a))


def _erf_deriv(x):
    return exp(negative(x * x)) * (2.0 / math.sqrt(math.pi))


erf = registry.get("erf") or primitive(
    "erf", _erf_impl,
    lambda x: np.asarray(_erf_np(x)).astype(np.result_type(x, np.float32), copy=False),
    vjp=(lambda g, out, x: g * _erf_deriv(x),),
    jvp=(lambda t, out, x: t * _erf_deriv(x),),
)

# --- softmax family -----------------------------------------------------------------------

def _softmax_impl(xp, x, axis):
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    e = xp.exp(x - m)
    return e / xp.sum(e, axis=axis, keepdims=True)


def _softmax_np(x, axis):
    m = x.max(axis=axis, keepdims=True)
    if not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _softmax_rule(g, out, x, axis):
    # The full Jacobian-vector product (g - <g, s>) * s, never the Jacobian itself.
    return out * (g - reduce_sum(g * out, axes=(axis,), keepdims=True))


softmax_p = primitive("softmax", _softmax_impl, _softmax_np,
                      vjp=(_softmax_rule,), jvp=(_softmax_rule,), saves="output")


def _log_softmax_impl(xp, x, axis):
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    z = x - m
    return z - xp.log(xp.sum(xp.exp(z), axis=axis, keepdims=True))


def _log_softmax_np(x, axis):
    m = x.max(axis=axis, keepdims=True)
    if not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0)
    z = x - m
    z -= np.log(np.exp(z).sum(axis=axis, keepdims=True))
    return z


log_softmax_p = primitive(
    "log_softmax", _log_softmax_impl, _log_softmax_np,
    vjp=(lambda g, out, x, axis: g - exp(out) * reduce_sum(g, axes=(axis,), keepdims=True),),
    jvp=(lambda t, out, x, axis: t - reduce_sum(t * exp(out), axes=(axis,), keepdims=True),),
    saves="output",
)


def _axis(x: Any, axis: int, op: str) -> int:
    nd = len(getattr(x, "shape", ()))
    if nd == 0:
        raise ValueError(f"{op}: needs an array with at least one dimension, got a scalar")
    if not -nd <= axis < nd:
        raise ValueError(f"{op}: axis {axis} is out of bounds for an array of dimension {nd}")
    return axis - nd if axis >= 0 else axis


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted by the maximum (no overflow).

    >>> import numpy as np
    >>> softmax(np.array([1000.0, 1000.0]))
    array([0.5, 0.5])
    """
    return softmax_p(x, axis=_axis(x, int(axis), "softmax"))


def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - logsumexp(x)`` along ``axis``, computed without overflow."""
    return log_softmax_p(x, axis=_axis(x, int(axis), "log_softmax"))


# --- binary cross-entropy on probabilities ------------------------------------------------------

_LOG_FLOOR = -100.0  # PyTorch clamps log(p) and log(1 - p) at -100


def _bce_impl(xp, p, t):
    lo = xp.maximum(xp.log(p), xp.asarray(_LOG_FLOOR, dtype=p.dtype))
    l1 = xp.maximum(xp.log1p(-p), xp.asarray(_LOG_FLOOR, dtype=p.dtype))
    return -(t * lo + (1 - t) * l1)


def _bce_np(p, t):
    with np.errstate(divide="ignore"):
        lo = np.maximum(np.log(p), _LOG_FLOOR)
        l1 = np.maximum(np.log1p(-p), _LOG_FLOOR)
    return -(t * lo + (1 - t) * l1)


def _bce_dp(p, t):
    # (p - t) / (p (1 - p)), with the denominator kept away from 0 as PyTorch does.
    return (p - t) / maximum(p * (1.0 - p), 1e-12)


def _bce_dt(p, t):
    return maximum(log1p(negative(p)), _LOG_FLOOR) - maximum(log(p), _LOG_FLOOR)


binary_cross_entropy = primitive(
    "binary_cross_entropy", _bce_impl, _bce_np,
    vjp=(lambda g, out, p, t: unbroadcast(g * _bce_dp(p, t), p, out),
         lambda g, out, p, t: unbroadcast(g * _bce_dt(p, t), t, out)),
    jvp=(lambda t_, out, p, t: align(t_, p, out) * _bce_dp(p, t),
         lambda t_, out, p, t: align(t_, t, out) * _bce_dt(p, t)),
)

# --- im2col / col2im --------------------------------------------------------------------------

def _out_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _patches_generic(xp, x, kernel, stride, padding, fill):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if ph or pw:
        *lead, H, W = x.shape
        fill_arr = xp.full(tuple(lead) + (H + 2 * ph, W + 2 * pw), fill, dtype=x.dtype)
        # Writing into a buffer is not in every array library; build by concatenation instead.
        rows = [fill_arr[..., :ph, :], xp.concat([fill_arr[..., ph:ph + H, :pw], x,
                                                  fill_arr[..., ph:ph + H, pw + W:]], axis=-1),
                fill_arr[..., ph + H:, :]]
        x = xp.concat(rows, axis=-2)
    H, W = x.shape[-2], x.shape[-1]
    ho, wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    cols = [x[..., p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw]
            for p in range(kh) for q in range(kw)]
    out = xp.stack(cols, axis=-3)
    return xp.reshape(out, tuple(out.shape[:-3]) + (kh, kw, ho, wo))


def _pad_np(x, padding, fill):
    ph, pw = padding
    if not (ph or pw):
        return x
    H, W = x.shape[-2:]
    out = np.full(x.shape[:-2] + (H + 2 * ph, W + 2 * pw), fill, dtype=x.dtype)
    out[..., ph:ph + H, pw:pw + W] = x  # much cheaper than np.pad for small images
    return out


def _tiles(shape, kernel, stride, padding):
    """True when the windows tile the image exactly (stride = kernel, no padding)."""
    H, W = shape[-2:]
    return (stride == kernel and padding == (0, 0) and H % kernel[0] == 0
            and W % kernel[1] == 0)


def _windows_np(x, kernel, stride, padding, fill=0.0):
    """The strided view ``(..., Ho, Wo, kh, kw)`` of the (padded) input: no copy."""
    xpad = _pad_np(x, padding, fill)
    v = sliding_window_view(xpad, kernel, axis=(-2, -1))
    sh, sw = stride
    return v[..., ::sh, ::sw, :, :] if (sh, sw) != (1, 1) else v


def _patches_np(x, kernel, stride, padding, fill):
    v = _windows_np(x, kernel, stride, padding, fill)
    return np.ascontiguousarray(np.moveaxis(v, (-2, -1), (-4, -3)))


def _check_cols(c, size, kernel, stride, padding):
    (kh, kw), (ho, wo) = kernel, c.shape[-2:]
    H, W = size
    if tuple(c.shape[-4:-2]) != (kh, kw) or ho != _out_size(H, kh, stride[0], padding[0]) \
            or wo != _out_size(W, kw, stride[1], padding[1]):
        raise ValueError(f"col2im: columns of shape {tuple(c.shape)} do not fit an image of "
                         f"size {size} with kernel {kernel}, stride {stride}, padding {padding}")


def _col2im_np(c, size, kernel, stride, padding):
    _check_cols(c, size, kernel, stride, padding)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    H, W = size
    ho, wo = c.shape[-2:]
    if _tiles(size, kernel, stride, padding):  # windows do not overlap: a transpose
        lead = c.ndim - 4
        axes = tuple(range(lead)) + (lead + 2, lead, lead + 3, lead + 1)
        return c.transpose(axes).reshape(c.shape[:-4] + (H, W))
    out = np.zeros(c.shape[:-4] + (H + 2 * ph, W + 2 * pw), dtype=c.dtype)
    for p in range(kh):  # a loop over kernel offsets, never over pixels
        for q in range(kw):
            out[..., p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw] += c[..., p, q, :, :]
    if ph or pw:
        out = out[..., ph:ph + H, pw:pw + W]
    return out


def _col2im_generic(xp, c, size, kernel, stride, padding):
    _check_cols(c, size, kernel, stride, padding)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    H, W = size
    ho, wo = c.shape[-2:]
    Hp, Wp = H + 2 * ph, W + 2 * pw
    lead = tuple(c.shape[:-4])
    out = xp.zeros(lead + (Hp, Wp), dtype=c.dtype)
    for p in range(kh):
        for q in range(kw):
            # Place the (ho, wo) block on its strided positions with zero-interleaving + padding.
            block = c[..., p, q, :, :]
            if sh > 1:
                z = xp.zeros(lead + (ho, sh - 1, wo), dtype=c.dtype)
                block = xp.reshape(xp.concat([block[..., :, None, :], z], axis=-2),
                                   lead + (ho * sh, wo))[..., :sh * (ho - 1) + 1, :]
            if sw > 1:
                z = xp.zeros(lead + (block.shape[-2], wo, sw - 1), dtype=c.dtype)
                block = xp.reshape(xp.concat([block[..., None], z], axis=-1),
                                   lead + (block.shape[-2], wo * sw))[..., :sw * (wo - 1) + 1]
            bh, bw = block.shape[-2:]
            top = xp.zeros(lead + (p, bw), dtype=c.dtype)
            bottom = xp.zeros(lead + (Hp - p - bh, bw), dtype=c.dtype)
            block = xp.concat([top, block, bottom], axis=-2)
            left = xp.zeros(lead + (Hp, q), dtype=c.dtype)
            right = xp.zeros(lead + (Hp, Wp - q - bw), dtype=c.dtype)
            out = out + xp.concat([left, block, right], axis=-1)
    return out[..., ph:ph + H, pw:pw + W]


patches_p: Primitive = primitive(
    "im2col",
    lambda xp, x, kernel, stride, padding, fill: _patches_generic(
        xp, x, kernel, stride, padding, fill),
    _patches_np,
    vjp=(lambda g, out, x, kernel, stride, padding, fill: col2im_p(
        g, size=tuple(x.shape[-2:]), kernel=kernel, stride=stride, padding=padding),),
    jvp=(lambda t, out, x, kernel, stride, padding, fill: patches_p(
        t, kernel=kernel, stride=stride, padding=padding, fill=0.0),),
)

col2im_p: Primitive = primitive(
    "col2im", _col2im_generic, _col2im_np,
    vjp=(lambda g, out, c, size, kernel, stride, padding: patches_p(
        g, kernel=kernel, stride=stride, padding=padding, fill=0.0),),
    jvp=(lambda t, out, c, size, kernel, stride, padding: col2im_p(
        t, size=size, kernel=kernel, stride=stride, padding=padding),),
)


def _fresh_target(out, *args) -> bool:
    """Whether a kernel may write ``out`` while it reads ``args`` (NumPy arrays, no overlap)."""
    return type(out) is np.ndarray and all(
        type(a) is np.ndarray and not np.may_share_memory(a, out) for a in args)


def _col2im_into(c, *, out, size, kernel, stride, padding):
    """``col2im``'s np_impl into ``out`` (cr.compile's reused buffers)."""
    if padding != (0, 0) or not _fresh_target(out, c):
        np.copyto(out, _col2im_np(c, size, kernel, stride, padding))
        return out
    _check_cols(c, size, kernel, stride, padding)
    (kh, kw), (sh, sw) = kernel, stride
    ho, wo = c.shape[-2:]
    if _tiles(size, kernel, stride, padding) and out.flags.c_contiguous:  # written once
        lead = c.ndim - 4
        tiles = out.reshape(out.shape[:-2] + (ho, kh, wo, kw))
        np.copyto(tiles, c.transpose(tuple(range(lead)) + (lead + 2, lead, lead + 3, lead + 1)))
        return out
    out[...] = 0
    for p in range(kh):
        for q in range(kw):
            out[..., p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw] += c[..., p, q, :, :]
    return out


col2im_p.np_out_impl = _col2im_into


def pair(v: Any, name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; a pair is checked and returned as a tuple of ints."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def patches(x: Any, kernel_size: Any, stride: Any = 1, padding: Any = 0,
            fill: float = 0.0) -> Any:
    """im2col: the ``(kh, kw)`` windows of the last two axes, ``(..., kh, kw, Ho, Wo)``.

    The input is padded with ``fill`` (``padding`` on each side).  Differentiable;
    its derivative is :func:`col2im`.
    """
    kernel, stride, padding = pair(kernel_size, "kernel_size"), pair(stride, "stride"), \
        pair(padding, "padding")
    _check_window(tuple(x.shape), kernel, stride, padding, "patches")
    return patches_p(x, kernel=kernel, stride=stride, padding=padding, fill=float(fill))


def col2im(c: Any, size: Any, kernel_size: Any, stride: Any = 1, padding: Any = 0) -> Any:
    """Sum windows ``(..., kh, kw, Ho, Wo)`` back into an image ``(..., H, W)`` (im2col^T)."""
    return col2im_p(c, size=pair(size, "size"), kernel=pair(kernel_size, "kernel_size"),
                    stride=pair(stride, "stride"), padding=pair(padding, "padding"))


def _check_window(shape, kernel, stride, padding, op):
    if len(shape) < 2:
        raise ValueError(f"{op}: needs an input with at least 2 (spatial) axes, got shape {shape}")
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"{op}: kernel {kernel} and stride {stride} must be positive and "
                         f"padding {padding} non-negative")
    H, W = shape[-2:]
    if H + 2 * padding[0] < kernel[0] or W + 2 * padding[1] < kernel[1]:
        raise ValueError(f"{op}: kernel {kernel} is larger than the padded input "
                         f"{(H + 2 * padding[0], W + 2 * padding[1])} (input shape {shape}, "
                         f"padding {padding})")


# --- convolution ---------------------------------------------------------------------------------

def _is_plain_numpy(*vals: Any) -> bool:
    for v in vals:
        if not isinstance(v, np.ndarray):
            return False
    return True


def _contract(spec: str, a: Any, b: Any, np_fn) -> Any:
    """``einsum(spec, a, b)``: a direct NumPy path on raw arrays, chainrule's einsum otherwise."""
    if _is_plain_numpy(a, b):
        return np_fn(a, b)
    from .. import numpy as cnp

    return cnp.einsum(spec, a, b)


def conv2d(x: Any, w: Any, stride: Any = 1, padding: Any = 0, bias: Any = None) -> Any:
    """2-D cross-correlation of ``x`` ``(..., C, H, W)`` with ``w`` ``(O, C, kh, kw)``.

    Returns ``(..., O, Ho, Wo)`` with ``Ho = (H + 2 ph - kh) // sh + 1``; an
    optional ``bias`` ``(O,)`` is added.  The arithmetic is :mod:`chainrule.ops.conv`'s
    (``nn.functional.conv2d`` adds dilation, groups and ``"same"`` padding).

    >>> import numpy as np
    >>> conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))[0, 0]
    array([[4., 4.],
           [4., 4.]])
    """
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    xs, ws = tuple(x.shape), tuple(w.shape)
    if len(ws) != 4:
        raise ValueError(f"conv2d: weight must have shape (out, in, kh, kw), got {ws}")
    if len(xs) < 3 or xs[-3] != ws[1]:
        raise ValueError(f"conv2d: input of shape {xs} does not match weight of shape {ws}: "
                         f"expected (N, {ws[1]}, H, W) (channels first)")
    _check_window(xs, ws[-2:], stride, padding, "conv2d")
    if bias is not None and tuple(getattr(bias, "shape", ())) != ws[:1]:
        raise ValueError(f"conv2d: bias must have shape ({ws[0]},), got "
                         f"{tuple(getattr(bias, 'shape', ()))}")
    out = conv(x, w, stride=stride, padding=tuple((p, p) for p in padding), dilation=(1, 1),
               groups=1, ns=len(xs) - 3)
    return out if bias is None else out + reshape(bias, shape=(ws[0], 1, 1))



# --- fully connected layer ----------------------------------------------------------------------

def _linear_np(x, w, b=None):
    out = np.matmul(x, w.T)
    if b is not None:
        out += b
    return out


def _linear_generic(xp, x, w, b=None):
    out = xp.matmul(x, xp.matrix_transpose(w) if hasattr(xp, "matrix_transpose") else w.T)
    return out if b is None else out + b


def _matmul(a: Any, b: Any) -> Any:
    if _is_plain_numpy(a, b):
        return np.matmul(a, b)
    from .. import numpy as cnp

    return cnp.matmul(a, b)


def _lin_vjp_x(g, out, x, w, b=None):
    if type(g) is np.ndarray and type(w) is np.ndarray:  # first order: straight to NumPy
        return np.matmul(g, w)
    return _matmul(g, w)  # (B.., lead.., O) @ (O, I)


def _lin_vjp_w_np(g, x):
    """``sum over samples of g^T x``: (B.., lead.., O), (lead.., I) -> (B.., O, I), one GEMM."""
    if g.ndim == 2 and x.ndim == 2:  # (N, O), (N, I): the common case
        return np.matmul(g.T, x)
    L = x.ndim - 1
    xf = x.reshape(-1, x.shape[-1]) if L != 1 else x
    gf = g.reshape(g.shape[:g.ndim - L - 1] + (xf.shape[0], g.shape[-1])) if L != 1 else g
    return np.matmul(np.swapaxes(gf, -1, -2), xf)


def _lin_vjp_w(g, out, x, w, b=None):
    if type(g) is np.ndarray and type(x) is np.ndarray:
        return _lin_vjp_w_np(g, x)
    L = len(x.shape) - 1  # the input's leading (sample) axes are summed over
    letters = "abdefhkl"[:L]
    return _contract(f"...{letters}o,{letters}i->...oi", g, x, _lin_vjp_w_np)


#: Up to this many rows, the bias gradient (a sum over the samples) is one matrix-vector
#: product; beyond, NumPy's pairwise sum keeps float32 sums accurate.
_GEMV_ROWS = 4096
_ones_cache: dict = {}


def _ones(n: int, dtype: Any) -> np.ndarray:
    """A read-only vector of ``n`` ones (kept for the few sizes a model uses)."""
    key = (n, dtype)
    v = _ones_cache.get(key)
    if v is None:
        if len(_ones_cache) > 16:
            _ones_cache.clear()
        v = _ones_cache[key] = np.ones(n, dtype)
        v.flags.writeable = False
    return v


def _lin_vjp_b(g, out, x, w, b):
    L = len(x.shape) - 1
    if not L:
        return g
    if type(g) is np.ndarray:  # first order: straight to NumPy
        if L == 1 and g.ndim == 2:
            if g.shape[0] <= _GEMV_ROWS and g.dtype.kind in "fc":
                return _ones(g.shape[0], g.dtype) @ g  # BLAS: 2-3x faster than sum(axis=0)
            return g.sum(axis=0)
        return g.sum(axis=tuple(range(g.ndim - L - 1, g.ndim - 1)))
    return reduce_sum(g, axes=tuple(range(-L - 1, -1)), keepdims=False)


def _lin_jvp_w(t, out, x, w, b=None):
    L = len(x.shape) - 1
    letters = "abdefhkl"[:L]
    return _contract(f"...oi,{letters}i->...{letters}o", t, x,
                     lambda a, c: np.moveaxis(np.tensordot(a, c, axes=([-1], [-1])),
                                              a.ndim - 2, -1))


def _lin_jvp_b(t, out, x, w, b):
    from ._broadcast import batch_shape, broadcast_to

    bs = batch_shape(t, b)
    L = len(out.shape) - 1
    return broadcast_to(reshape(t, shape=bs + (1,) * L + tuple(b.shape)),
                        shape=bs + tuple(out.shape))


# The rules read the inputs, never the output: a layer's result (say, the input of a ReLU)
# is freed as soon as the next layer has used it.
linear_p = primitive(
    "linear", _linear_generic, _linear_np,
    vjp=(_lin_vjp_x, _lin_vjp_w, _lin_vjp_b),
    jvp=(lambda t, out, x, w, b: linear_nobias_p(t, w), _lin_jvp_w, _lin_jvp_b),
    saves="inputs",
)
linear_nobias_p: Primitive = primitive(
    "linear_nobias", _linear_generic, _linear_np,
    vjp=(_lin_vjp_x, _lin_vjp_w),
    jvp=(lambda t, out, x, w: linear_nobias_p(t, w), _lin_jvp_w),
    saves="inputs",
)


def _shape(v: Any) -> Any:
    """The shape of ``v``, read from the array under a box (no tuple made)."""
    if isinstance(v, Box):
        v = v.data
    return getattr(v, "shape", ())


def linear(x: Any, w: Any, b: Any = None) -> Any:
    """``x @ w.T + b`` for ``x`` ``(..., in)``, ``w`` ``(out, in)``, ``b`` ``(out,)``: one node."""
    xs, ws = _shape(x), _shape(w)
    if len(ws) != 2 or len(xs) < 1 or xs[-1] != ws[1]:
        xs, ws = tuple(xs), tuple(ws)
        raise ValueError(f"linear: input of shape {xs} does not match weight of shape {ws}: "
                         f"expected input (..., {ws[-1] if ws else '?'}) and weight (out, in)")
    if b is None:
        return linear_nobias_p(x, w)
    bs = _shape(b)
    if len(bs) != 1 or bs[0] != ws[0]:
        raise ValueError(f"linear: bias of shape {tuple(bs)} does not match weight of shape "
                         f"{tuple(ws)}: expected ({ws[0]},)")
    return linear_p(x, w, b)


# --- pooling --------------------------------------------------------------------------------------
# Both pools loop over the kh * kw kernel offsets with strided slices (never over pixels).

def _pad_generic(xp, x, padding, fill):
    ph, pw = padding
    if not (ph or pw):
        return x
    if xp is np:
        return _pad_np(x, padding, fill)
    *lead, H, W = x.shape
    full = xp.full(tuple(lead) + (H + 2 * ph, W + 2 * pw), fill, dtype=x.dtype)
    mid = xp.concat([full[..., ph:ph + H, :pw], x, full[..., ph:ph + H, pw + W:]], axis=-1)
    return xp.concat([full[..., :ph, :], mid, full[..., ph + H:, :]], axis=-2)


def _offsets(x, kernel, stride):
    """``(k, slice of x)`` for every kernel offset ``k = p * kw + q`` (x already padded)."""
    (kh, kw), (sh, sw) = kernel, stride
    H, W = x.shape[-2:]
    ho, wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    for p in range(kh):
        for q in range(kw):
            yield p * kw + q, x[..., p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw]


def _lowest(dtype):
    try:
        d = np.dtype(dtype)
    except TypeError:  # another library's dtype object: assume floating point
        return -np.inf
    return -np.inf if d.kind == "f" else np.iinfo(d).min


def _max_pool_impl(xp, x, kernel, stride, padding):
    out = None
    for _, s in _offsets(_pad_generic(xp, x, padding, _lowest(x.dtype)), kernel, stride):
        out = s if out is None else xp.maximum(out, s)
    return out


def _max_pool_np(x, kernel, stride, padding):
    # A running maximum over the kernel offsets' strided slices, its result in the input's
    # memory layout: 4-40x faster than a reduction over the split window axes, whose
    # innermost axis has kw entries (2x2 tiles: 64x20x24x24 float32, 0.3 ms against 1.4 ms
    # channels last and 14 ms channels first).
    out = None
    for _, s in _offsets(_pad_np(x, padding, _lowest(x.dtype)), kernel, stride):
        if out is None:
            out = s.copy(order="K")
        else:
            np.maximum(out, s, out=out)
    return out


def _max_pool_mask(x, kernel, stride, padding):
    """A 0/1 array ``(..., kh, kw, Ho, Wo)`` marking each window's first maximum (like PyTorch)."""
    from ..backend import namespace_of

    x = _raw(x)
    xp = namespace_of(x)
    kh, kw = kernel
    if xp is np:  # argmax over each window picks its first maximum
        v = _windows_np(x, kernel, stride, padding, _lowest(x.dtype))
        idx = v.reshape(v.shape[:-2] + (kh * kw,)).argmax(axis=-1)
        ks = np.arange(kh * kw).reshape(kh, kw, 1, 1)
        return (idx[..., None, None, :, :] == ks).astype(x.dtype)
    best = idx = None
    for k, s in _offsets(_pad_generic(xp, x, padding, _lowest(x.dtype)), kernel, stride):
        if best is None:
            best, idx = s, xp.zeros(s.shape, dtype=xp.int32)
        else:
            better = s > best
            best = xp.where(better, s, best)
            idx = xp.where(better, xp.full(s.shape, k, dtype=xp.int32), idx)
    ks = xp.reshape(xp.arange(kh * kw, dtype=xp.int32), (kh, kw, 1, 1))
    return xp.astype(idx[..., None, None, :, :] == ks, x.dtype)


def _max_pool_vjp_np(g, out, x, kernel, stride, padding, res=None):
    """First order on NumPy: each window's first maximum takes ``g`` (no argmax, no copy of x).

    The result keeps ``x``'s memory layout, so a channels-last producer gets a
    channels-last gradient back.  ``res``: where to write it (x's shape, no
    padding; the windows tile ``x``), else a new array.
    """
    nb = g.ndim - out.ndim
    if nb == 0 and np.argsort(g.strides).tolist() != np.argsort(out.strides).tolist():
        g_in_layout = np.empty_like(out, dtype=g.dtype)  # one quarter-size copy, then no
        g_in_layout[...] = g                             # strided mixing of layouts below
        g = g_in_layout
    xp_ = _pad_np(x, padding, _lowest(x.dtype))
    shape = g.shape[:nb] + xp_.shape
    if res is None and _tiles(x.shape, kernel, stride, padding):  # each entry written once
        res = np.empty_like(xp_, dtype=g.dtype) if nb == 0 else np.empty(shape, dtype=g.dtype)
    elif res is None:
        res = np.zeros_like(xp_, dtype=g.dtype) if nb == 0 else np.zeros(shape, dtype=g.dtype)
    kw, (sh, sw) = kernel[1], stride
    ho, wo = out.shape[-2:]
    overlap = not _tiles(x.shape, kernel, stride, padding)
    taken = None
    for k, s in _offsets(xp_, kernel, stride):
        hit = s == out
        if taken is None:
            taken = hit
        else:  # only the first maximum of a window counts (as PyTorch): hit and not taken
            np.greater(hit, taken, out=hit)
            taken |= hit
        p, q = divmod(k, kw)
        dst = res[..., p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw]
        if overlap:
            dst += g * hit
        else:
            np.multiply(g, hit, out=dst)
    ph, pw = padding
    if ph or pw:
        res = res[..., ph:ph + x.shape[-2], pw:pw + x.shape[-1]]
    return res


def _max_pool_vjp(g, out, x, kernel, stride, padding):
    if type(g) is np.ndarray and type(x) is np.ndarray and type(out) is np.ndarray:
        return _max_pool_vjp_np(g, out, x, kernel, stride, padding)
    # x and the pooled values only choose the window maxima: no derivative reaches them
    return max_pool2d_grad_p(g, constant_value(x), constant_value(out), kernel=kernel,
                             stride=stride, padding=padding)


def _max_pool_jvp(t, out, x, kernel, stride, padding):
    mask = _max_pool_mask(x, kernel, stride, padding)
    tp = patches_p(t, kernel=kernel, stride=stride, padding=padding, fill=0.0)
    return reduce_sum(tp * mask, axes=(-4, -3), keepdims=False)


max_pool2d_p = primitive("max_pool2d", _max_pool_impl, _max_pool_np,
                         vjp=(_max_pool_vjp,), jvp=(_max_pool_jvp,))


def _max_pool_into(x, *, out, kernel, stride, padding):
    """``max_pool2d``'s np_impl into ``out``: the running maximum written there."""
    if not _fresh_target(out, x):
        np.copyto(out, _max_pool_np(x, kernel, stride, padding))
        return out
    first = True
    for _, s in _offsets(_pad_np(x, padding, _lowest(x.dtype)), kernel, stride):
        if first:
            np.copyto(out, s)
            first = False
        else:
            np.maximum(out, s, out=out)
    return out


max_pool2d_p.np_out_impl = _max_pool_into


# max_pool2d's reverse rule as one primitive (so a traced or compiled backward pass runs the
# NumPy kernel above, not the argmax mask): linear in g.  x and the pooled values only pick
# the window maxima, a piecewise-constant choice: max_pool2d's rule passes them as constants
# (no derivative flows to them), and the primitive is not differentiable in them.

def _max_pool_grad_generic(xp, g, x, out, kernel, stride, padding):
    mask = _max_pool_mask(x, kernel, stride, padding)
    gs = tuple(g.shape)
    ge = xp.reshape(g, gs[:-2] + (1, 1) + gs[-2:])
    return _col2im_generic(xp, ge * mask, tuple(x.shape[-2:]), kernel, stride, padding)


def _max_pool_grad_np(g, x, out, kernel, stride, padding):
    return _max_pool_vjp_np(g, out, x, kernel, stride, padding)


def _max_pool_grad_into(g, x, o, *, out, kernel, stride, padding):
    """``max_pool2d_grad``'s np_impl into ``out`` (windows that tile x: each entry written once)."""
    if (not _tiles(x.shape, kernel, stride, padding) or g.ndim != o.ndim
            or out.shape != x.shape or not _fresh_target(out, g, x, o)):
        np.copyto(out, _max_pool_vjp_np(g, o, x, kernel, stride, padding))
        return out
    return _max_pool_vjp_np(g, o, x, kernel, stride, padding, res=out)


max_pool2d_grad_p: Primitive = primitive(
    "max_pool2d_grad", _max_pool_grad_generic, _max_pool_grad_np,
    vjp=(lambda c, out, g, x, o, kernel, stride, padding: _max_pool_jvp(
        c, o, x, kernel, stride, padding), None, None),
    jvp=(lambda t, out, g, x, o, kernel, stride, padding: max_pool2d_grad_p(
        t, x, o, kernel=kernel, stride=stride, padding=padding), None, None),
    saves="inputs",
)
max_pool2d_grad_p.np_out_impl = _max_pool_grad_into


def _window_counts(xp, shape, kernel, stride, padding, include_pad, dtype):
    """How many entries each window averages over."""
    kh, kw = kernel
    if include_pad or padding == (0, 0):
        return kh * kw
    ones = xp.ones(tuple(shape[-2:]), dtype=dtype)
    total = None
    for _, s in _offsets(_pad_generic(xp, ones, padding, 0.0), kernel, stride):
        total = s if total is None else total + s
    return total


def _avg_pool_impl(xp, x, kernel, stride, padding, include_pad):
    total = None
    for _, s in _offsets(_pad_generic(xp, x, padding, 0.0), kernel, stride):
        total = s if total is None else total + s
    return total / _window_counts(xp, x.shape, kernel, stride, padding, include_pad, x.dtype)


def _avg_pool_vjp(g, out, x, kernel, stride, padding, include_pad):
    from ..backend import namespace_of
    from ._broadcast import broadcast_to

    counts = _window_counts(namespace_of(_raw(x)), x.shape, kernel, stride, padding, include_pad,
                            _raw(x).dtype)
    gs = tuple(g.shape)
    ge = reshape(g / counts, shape=gs[:-2] + (1, 1) + gs[-2:])
    ge = broadcast_to(ge, shape=gs[:-2] + tuple(kernel) + gs[-2:])
    return col2im_p(ge, size=tuple(x.shape[-2:]), kernel=kernel, stride=stride, padding=padding)


avg_pool2d_p: Primitive = primitive(
    "avg_pool2d", _avg_pool_impl,
    vjp=(_avg_pool_vjp,),
    jvp=(lambda t, out, x, kernel, stride, padding, include_pad: avg_pool2d_p(
        t, kernel=kernel, stride=stride, padding=padding, include_pad=include_pad),),
)


def _avg_pool_into(x, *, out, kernel, stride, padding, include_pad):
    """``avg_pool2d``'s np_impl into ``out``: the window sums there, then the division."""
    if not _fresh_target(out, x):
        np.copyto(out, avg_pool2d_p.np_impl(x, kernel=kernel, stride=stride, padding=padding,
                                            include_pad=include_pad))
        return out
    first = True
    for _, s in _offsets(_pad_np(x, padding, 0.0), kernel, stride):
        if first:
            np.copyto(out, s)
            first = False
        else:
            out += s
    out /= _window_counts(np, x.shape, kernel, stride, padding, include_pad, x.dtype)
    return out


avg_pool2d_p.np_out_impl = _avg_pool_into


def _pool_params(x, kernel_size, stride, padding, op):
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    p = pair(padding, "padding")
    _check_window(tuple(x.shape), k, s, p, op)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: padding {p} must be at most half the kernel size {k}")
    return k, s, p


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
    """Maximum over windows of the last two axes; the gradient goes to each window's first maximum.

    >>> import numpy as np
    >>> max_pool2d(np.arange(16.0).reshape(4, 4), 2)
    array([[ 5.,  7.],
           [13., 15.]])
    """
    k, s, p = _pool_params(x, kernel_size, stride, padding, "max_pool2d")
    return max_pool2d_p(x, kernel=k, stride=s, padding=p)


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               count_include_pad: bool = True) -> Any:
    """Mean over windows of the last two axes (zero padding counted unless told otherwise)."""
    k, s, p = _pool_params(x, kernel_size, stride, padding, "avg_pool2d")
    return avg_pool2d_p(x, kernel=k, stride=s, padding=p, include_pad=bool(count_include_pad))


# --- fused softmax cross-entropy against integer labels -----------------------------------------

#: ``(weak reference to the logits, axis, softmax)`` of the latest forward pass on NumPy:
#: its first-order reverse rule takes that softmax instead of computing it again.
_last_softmax: list = [None]


def _forget_softmax(ref: Any) -> None:
    entry = _last_softmax[0]
    if entry is not None and entry[0] is ref:
        _last_softmax[0] = None


def _xent_np(z, labels, axis, reduction, guard=False):
    m = z.max(axis=axis, keepdims=True)
    if guard:  # an infinite or nan maximum: shift that row by 0 instead
        m = np.where(np.isfinite(m), m, 0)
    e = z - m
    e = np.exp(e, out=e) if e.dtype.kind in "fc" else np.exp(e)
    s = e.sum(axis=axis, keepdims=True)
    lse = np.log(s)
    lse += m
    if z.ndim == 2 and axis == -1:  # the common (N, C) case: plain fancy indexing
        loss = lse[:, 0] - z[np.arange(z.shape[0]), labels]
    else:
        picked = np.take_along_axis(z, np.expand_dims(labels, axis), axis)
        loss = np.squeeze(lse - picked, axis=axis)
    if type(z) is np.ndarray:
        e /= s  # the softmax, kept for the reverse rule (one slot, freed with the logits)
        _last_softmax[0] = (weakref.ref(z, _forget_softmax), axis, e)
    if reduction == "none":
        if not guard and not np.isfinite(lse).all():
            return _xent_np(z, labels, axis, reduction, True)
        return loss
    total = loss.sum()
    # a finite total had finite row maxima (complex logits: always the guarded pass)
    if not guard and (total.dtype.kind == "c" or not math.isfinite(total)):
        return _xent_np(z, labels, axis, reduction, True)
    return total / loss.size if reduction == "mean" else total


def _saved_softmax(z: Any, axis: int) -> Any:
    """The softmax of ``z`` saved by its forward pass, taken (once), or ``None``."""
    entry = _last_softmax[0]  # (one read: another thread may replace the slot)
    if entry is not None and entry[0]() is z and entry[1] == axis:
        _last_softmax[0] = None
        return entry[2]
    return None


def _xent_generic(xp, z, labels, axis, reduction):
    logp = _log_softmax_impl(xp, z, axis)
    n = z.shape[axis]
    onehot = xp.astype(xp.expand_dims(labels, axis=axis) == xp.reshape(
        xp.arange(n), (n,) + (1,) * (-axis - 1)), z.dtype)
    loss = -xp.sum(logp * onehot, axis=axis)
    if reduction == "none":
        return loss
    total = xp.sum(loss)
    return total / loss.size if reduction == "mean" else total


def _xent_dz(z, labels, axis):
    """``softmax(z) - onehot(labels)`` along ``axis``, the derivative of each sample's loss."""
    if type(labels) is not np.ndarray:
        labels = _raw(labels)
    if isinstance(z, np.ndarray):
        s = _saved_softmax(z, axis)
        if s is None:
            s = _softmax_np(z, axis)
        if z.ndim == 2 and axis == -1:
            s[np.arange(z.shape[0]), labels] -= 1
        else:
            idx = np.expand_dims(labels, axis)
            np.put_along_axis(s, idx, np.take_along_axis(s, idx, axis) - 1, axis)
        return s
    n = z.shape[axis]
    onehot = np.expand_dims(labels, axis) == np.arange(n).reshape((n,) + (1,) * (-axis - 1))
    return softmax_p(z, axis=axis) - onehot.astype(_raw(z).dtype)


def _xent_scale(g, out, z, axis, reduction):
    """The cotangent of the loss spread over ``z``'s rank (batch axes kept)."""
    b = tuple(g.shape[: len(g.shape) - len(out.shape)])
    if reduction == "none":
        pos = len(z.shape) + axis
        os_ = tuple(out.shape)
        return reshape(g, shape=b + os_[:pos] + (1,) + os_[pos:])
    ge = reshape(g, shape=b + (1,) * len(z.shape))
    if reduction == "mean":
        ge = ge * (1.0 / (_size(z.shape) // z.shape[axis]))
    return ge


def _size(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _xent_vjp(g, out, z, labels, axis, reduction):
    if reduction != "none" and isinstance(g, (np.ndarray, np.generic)) and g.ndim == 0 \
            and isinstance(z, np.ndarray):  # first order on NumPy: scale in place
        dz = _xent_dz(z, labels, axis)
        dz *= g * (1.0 / (z.size // z.shape[axis])) if reduction == "mean" else g
        return dz
    return _xent_scale(g, out, z, axis, reduction) * _xent_dz(z, labels, axis)


def _xent_jvp(t, out, z, labels, axis, reduction):
    d = reduce_sum(t * _xent_dz(z, labels, axis), axes=(axis,), keepdims=False)
    if reduction == "none":
        return d
    nl = len(z.shape) - 1
    total = reduce_sum(d, axes=tuple(range(-nl, 0)), keepdims=False) if nl else d
    return total * (1.0 / (_size(z.shape) // z.shape[axis])) if reduction == "mean" else total


softmax_cross_entropy_p = primitive(
    "softmax_cross_entropy", _xent_generic, _xent_np,
    vjp=(_xent_vjp, None), jvp=(_xent_jvp, None),
)


def softmax_cross_entropy(z: Any, labels: Any, axis: int = -1, reduction: str = "mean") -> Any:
    """Cross-entropy of logits ``z`` at integer ``labels`` (``z`` without the class axis), fused.

    One node forward; the backward pass is ``(softmax(z) - onehot) * g``.
    Labels must be valid class indices (no ignore index, see ``nn.functional``).
    """
    return softmax_cross_entropy_p(z, labels, axis=_axis(z, int(axis), "cross_entropy"),
                                   reduction=reduction)
