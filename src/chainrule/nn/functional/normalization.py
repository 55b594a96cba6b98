"""``layer_norm`` and ``group_norm``: PyTorch's signatures, biased variance, eps in the root."""

from __future__ import annotations

from typing import Any

from ...ops._broadcast import reshape
from ...ops.elementwise import sqrt
from ...ops.reductions import mean
from ._util import as_input, shape_of

__all__ = ["layer_norm", "group_norm"]


def _normalise(x: Any, axes: tuple, eps: float) -> Any:
    c = x - mean(x, axis=axes, keepdims=True)
    return c / sqrt(mean(c * c, axis=axes, keepdims=True) + eps)


def layer_norm(input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Any:
    """Normalise over the trailing ``normalized_shape`` axes, then scale and shift.

    >>> import numpy as np
    >>> y = layer_norm(np.array([[1.0, 2.0, 3.0]]), 3)
    >>> bool(abs(float(y[0, 0]) + 1.2247) < 1e-3)
    True
    """
    x = as_input(input)
    shape = (int(normalized_shape),) if not isinstance(normalized_shape, (tuple, list)) \
        else tuple(int(v) for v in normalized_shape)
    xs = shape_of(x)
    if not shape or xs[len(xs) - len(shape):] != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the trailing "
                         f"axes of the input of shape {xs}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and shape_of(p) != shape:
            raise ValueError(f"layer_norm: {name} must have shape {shape}, got {shape_of(p)}")
    out = _normalise(x, tuple(range(-len(shape), 0)), eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def group_norm(input: Any, num_groups: int, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Any:
    """Normalise ``(N, C, *)`` over groups of ``C / num_groups`` channels; per-channel affine.

    >>> import numpy as np
    >>> group_norm(np.random.default_rng(0).normal(size=(2, 4, 3)), 2).shape
    (2, 4, 3)
    """
    x = as_input(input)
    xs = shape_of(x)
    G = int(num_groups)
    if len(xs) < 2:
        raise ValueError(f"group_norm: expected an input (N, C, *), got shape {xs}")
    C = xs[1]
    if G < 1 or C % G:
        raise ValueError(f"group_norm: num_groups={G} must divide the number of channels {C}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and shape_of(p) != (C,):
            raise ValueError(f"group_norm: {name} must have shape ({C},), got {shape_of(p)}")
    grouped = reshape(x, shape=(xs[0], G, (C // G) * _rest(xs)))
    out = reshape(_normalise(grouped, (-1,), eps), shape=xs)
    bshape = (C,) + (1,) * (len(xs) - 2)
    if weight is not None:
        out = out * reshape(weight, shape=bshape)
    if bias is not None:
        out = out + reshape(bias, shape=bshape)
    return out


def _rest(xs: tuple) -> int:
    n = 1
    for s in xs[2:]:
        n *= s
    return n
