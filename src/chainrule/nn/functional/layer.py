"""Layer functions: linear, dropout, batch norm, embedding, flatten."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.primitive import Box
from ...ops import nn as N
from ...ops._broadcast import reshape
from ...ops.elementwise import sqrt
from ...ops.reductions import mean
from .._random import resolve_rng
from ._util import as_input, raw, shape_of

__all__ = [
    "linear", "dropout", "batch_norm", "embedding", "flatten",
]


def linear(input: Any, weight: Any, bias: Any = None) -> Any:
    """``input @ weight.T + bias`` (weight ``(out, in)``), recorded as one operation.

    >>> import numpy as np
    >>> linear(np.ones((2, 3)), np.ones((4, 3)), np.zeros(4)).shape
    (2, 4)
    """
    return N.linear(input if isinstance(input, Box) else as_input(input), weight, bias)


def dropout(x: Any, p: float = 0.5, training: bool = True, rng: Any = None) -> Any:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    Does nothing when ``training`` is false.  ``rng``: a Generator or a seed
    (default: the generator shared by ``cr.nn``, see ``cr.nn.manual_seed``).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must lie in [0, 1], got {p}")
    x = as_input(x)
    if not training or p == 0.0:
        return x
    a = np.asarray(raw(x))
    if p == 1.0:
        return x * np.zeros_like(a)
    keep = resolve_rng(rng).random(a.shape) >= p
    return x * (keep * (1.0 / (1.0 - p))).astype(a.dtype)


def batch_norm(x: Any, running_mean: Any, running_var: Any, weight: Any = None, bias: Any = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Any:
    """Normalise over every axis but the channel axis 1, as ``torch.nn.functional.batch_norm``.

    In training the batch statistics are used (biased variance) and the
    running statistics, if given, are updated in place with momentum
    (unbiased variance); otherwise the running statistics are used.
    """
    x = as_input(x)
    shp = shape_of(x)
    if len(shp) < 2:
        raise ValueError(f"batch_norm: expected an input (N, C, ...), got shape {shp}")
    C = shp[1]
    axes = (0,) + tuple(range(2, len(shp)))
    bshape = (C,) + (1,) * (len(shp) - 2)
    if training:
        n = int(np.prod([shp[a] for a in axes]))
        if n <= 1:
            raise ValueError(f"batch_norm: need more than one value per channel in training, "
                             f"got input of shape {shp}")
        mu = mean(x, axis=axes, keepdims=True)
        c = x - mu
        var = mean(c * c, axis=axes, keepdims=True)
        out = c / sqrt(var + eps)
        if running_mean is not None:
            rm = raw(running_mean)
            rm *= 1.0 - momentum
            rm += momentum * np.asarray(raw(mu)).reshape(C)
        if running_var is not None:
            rv = raw(running_var)
            rv *= 1.0 - momentum
            rv += momentum * np.asarray(raw(var)).reshape(C) * (n / (n - 1))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation needs running_mean and running_var")
        rm = np.asarray(raw(running_mean)).reshape(bshape)
        rv = np.asarray(raw(running_var)).reshape(bshape)
        dtype = np.asarray(raw(x)).dtype
        out = (x - rm.astype(dtype)) * (1.0 / np.sqrt(rv + eps)).astype(dtype)
    if weight is not None:
        out = out * reshape(weight, shape=bshape)
    if bias is not None:
        out = out + reshape(bias, shape=bshape)
    return out


def embedding(input: Any, weight: Any, padding_idx: int | None = None) -> Any:
    """Rows of ``weight`` ``(num, dim)`` picked by the integer array ``input``.

    Rows at ``padding_idx`` get no gradient.
    """
    from ... import numpy as cnp

    idx = np.asarray(raw(input))
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    num = shape_of(weight)[0]
    if idx.size and (idx.min() < -num or idx.max() >= num):
        raise IndexError(f"embedding: index {int(idx.max() if idx.max() >= num else idx.min())} "
                         f"is out of range for {num} embeddings")
    out = cnp.take(weight, idx, axis=0)
    if padding_idx is not None:
        keep = (idx != (padding_idx % num)).astype(np.asarray(raw(weight)).dtype)
        out = out * keep[..., None]
    return out


def flatten(x: Any, start_dim: int = 1, end_dim: int = -1) -> Any:
    """Merge the axes ``start_dim..end_dim`` into one."""
    x = as_input(x)
    shp = shape_of(x)
    nd = len(shp)
    if nd == 0:
        return reshape(x, shape=(1,))
    s, e = start_dim % nd, end_dim % nd
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for "
                         f"shape {shp}")
    merged = int(np.prod(shp[s:e + 1]))
    return reshape(x, shape=shp[:s] + (merged,) + shp[e + 1:])
