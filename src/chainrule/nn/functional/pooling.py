"""Pooling and resampling: ``max_pool1d/2d avg_pool1d/2d adaptive_avg_pool2d interpolate``.

1-D pools are the 2-D ones on a ``(..., 1, L)`` view.  Adaptive pooling and
interpolation are linear maps along each spatial axis: they multiply by small
constant matrices (``A_h @ x @ A_w.T``), so their derivatives come from
``matmul``'s rules, to any order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...ops import nn as N
from ...ops._broadcast import reshape
from ...ops.linalg import matmul
from ._util import as_input, raw, shape_of

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool2d",
           "interpolate"]


def _image(x: Any, d: int, op: str) -> Any:
    x = as_input(x)
    if len(shape_of(x)) < d + 1:
        raise ValueError(f"{op}: expected an input of {d + 1} (unbatched) or {d + 2} (batched) "
                         f"dimensions, got an input of shape {shape_of(x)}")
    return x


def _one(v: Any, name: str, op: str) -> int:
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ValueError(f"{op}: {name} must be an int or a 1-tuple, got {v!r}")
        v = v[0]
    return int(v)


def _pool1d(fn, op, x, kernel_size, stride, padding, *extra):
    x = _image(x, 1, op)
    k = _one(kernel_size, "kernel_size", op)
    s = k if stride is None else _one(stride, "stride", op)
    p = _one(padding, "padding", op)
    xs = shape_of(x)
    y = fn(reshape(x, shape=xs[:-1] + (1, xs[-1])), (1, k), (1, s), (0, p), *extra)
    ys = shape_of(y)
    return reshape(y, shape=ys[:-2] + ys[-1:])


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
    """Maximum over ``kernel_size`` windows (stride defaults to the kernel size).

    Padding counts as minus infinity; the gradient goes to the first
    maximum of each window, as in PyTorch.

    >>> import numpy as np
    >>> max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    return N.max_pool2d(_image(x, 2, "max_pool2d"), kernel_size, stride, padding)


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               count_include_pad: bool = True) -> Any:
    """Mean over ``kernel_size`` windows (stride defaults to the kernel size).

    >>> import numpy as np
    >>> avg_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    return N.avg_pool2d(_image(x, 2, "avg_pool2d"), kernel_size, stride, padding,
                        count_include_pad)


def max_pool1d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
    """Maximum over windows of the last axis of ``(N, C, L)`` (or ``(C, L)``).

    >>> import numpy as np
    >>> max_pool1d(np.array([[[1.0, 3.0, 2.0, 0.0]]]), 2)
    array([[[3., 2.]]])
    """
    return _pool1d(lambda y, k, s, p: N.max_pool2d(y, k, s, p), "max_pool1d", x, kernel_size,
                   stride, padding)


def avg_pool1d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               count_include_pad: bool = True) -> Any:
    """Mean over windows of the last axis of ``(N, C, L)`` (or ``(C, L)``).

    >>> import numpy as np
    >>> avg_pool1d(np.array([[[1.0, 3.0, 2.0, 0.0]]]), 2)
    array([[[2., 1.]]])
    """
    return _pool1d(lambda y, k, s, p, c: N.avg_pool2d(y, k, s, p, c), "avg_pool1d", x,
                   kernel_size, stride, padding, bool(count_include_pad))


def _sizes(output_size: Any, in_size: tuple, op: str) -> tuple[int, ...]:
    d = len(in_size)
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != d:
            raise ValueError(f"{op}: output_size must be an int or {d} values, got "
                             f"{output_size!r}")
        out = tuple(s if o is None else int(o) for o, s in zip(output_size, in_size))
    else:
        out = (int(output_size),) * d
    if min(out) < 1:
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    return out


def _adaptive_matrix(n_in: int, n_out: int, dtype) -> np.ndarray:
    """Row ``i`` averages ``[floor(i n_in / n_out), ceil((i + 1) n_in / n_out))`` (PyTorch)."""
    A = np.zeros((n_out, n_in), dtype=dtype)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        A[i, lo:hi] = 1.0 / (hi - lo)
    return A


def _dtype(x: Any):
    d = np.asarray(raw(x)).dtype if not hasattr(raw(x), "dtype") else raw(x).dtype
    return d if np.dtype(d).kind == "f" else np.float64


def _separable(x: Any, Ah: np.ndarray, Aw: np.ndarray) -> Any:
    """``Ah @ x @ Aw.T`` over the last two axes."""
    return matmul(matmul(Ah, x), np.ascontiguousarray(Aw.T))


def adaptive_avg_pool2d(x: Any, output_size: Any) -> Any:
    """Average pooling to a fixed ``output_size`` (an int, a pair; ``None`` keeps an axis).

    >>> import numpy as np
    >>> adaptive_avg_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 1)[0, 0]
    array([[7.5]])
    """
    x = _image(x, 2, "adaptive_avg_pool2d")
    H, W = shape_of(x)[-2:]
    oh, ow = _sizes(output_size, (H, W), "adaptive_avg_pool2d")
    if H % oh == 0 and W % ow == 0:  # the windows tile: a plain average pool
        return N.avg_pool2d(x, (H // oh, W // ow))
    dt = _dtype(x)
    return _separable(x, _adaptive_matrix(H, oh, dt), _adaptive_matrix(W, ow, dt))


def _nearest_matrix(n_in: int, n_out: int, scale: float | None, dtype) -> np.ndarray:
    s = n_in / n_out if scale is None else 1.0 / scale
    src = np.minimum(np.floor(np.arange(n_out) * s).astype(int), n_in - 1)
    A = np.zeros((n_out, n_in), dtype=dtype)
    A[np.arange(n_out), src] = 1.0
    return A


def _linear_matrix(n_in: int, n_out: int, scale: float | None, align_corners: bool,
                   dtype) -> np.ndarray:
    i = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        s = n_in / n_out if scale is None else 1.0 / scale
        src = np.maximum((i + 0.5) * s - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    A = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(A, (np.arange(n_out), i0), 1.0 - lam)
    np.add.at(A, (np.arange(n_out), i1), lam)
    return A.astype(dtype)


_MODES = {"nearest": 0, "linear": 1, "bilinear": 2}


def interpolate(input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: bool | None = None) -> Any:
    """Resize ``(N, C, L)`` or ``(N, C, H, W)`` by ``size`` or ``scale_factor`` (PyTorch's rules).

    ``mode``: ``"nearest"`` (any rank), ``"linear"`` (3-D input) or
    ``"bilinear"`` (4-D input), with ``align_corners`` as in PyTorch.

    >>> import numpy as np
    >>> interpolate(np.array([[[1.0, 2.0]]]), scale_factor=2)
    array([[[1., 1., 2., 2.]]])
    """
    op = "interpolate"
    if mode not in _MODES:
        raise ValueError(f"{op}: mode must be 'nearest', 'linear' or 'bilinear', got {mode!r}")
    x = as_input(input)
    xs = shape_of(x)
    if len(xs) not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got shape "
                         f"{xs}")
    d = len(xs) - 2
    if mode != "nearest" and _MODES[mode] != d:
        raise ValueError(f"{op}: mode {mode!r} needs a {_MODES[mode] + 2}-D input, got shape "
                         f"{xs}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{op}: align_corners only applies to the linear modes, not 'nearest'")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor")
    S = xs[2:]
    if size is not None:
        out = tuple(int(v) for v in size) if isinstance(size, (tuple, list)) else (int(size),) * d
        scales: tuple = (None,) * d
    else:
        sf = tuple(float(v) for v in scale_factor) if isinstance(scale_factor, (tuple, list)) \
            else (float(scale_factor),) * d
        out = tuple(int(math.floor(s * f)) for s, f in zip(S, sf))
        scales = sf
    if len(out) != d or min(out) < 1:
        raise ValueError(f"{op}: the output size {out} must have {d} positive entries")
    dt = _dtype(x)
    mats = [_nearest_matrix(n, m, sc, dt) if mode == "nearest"
            else _linear_matrix(n, m, sc, bool(align_corners), dt)
            for n, m, sc in zip(S, out, scales)]
    if d == 1:
        return matmul(x, np.ascontiguousarray(mats[0].T))
    return _separable(x, mats[0], mats[1])
