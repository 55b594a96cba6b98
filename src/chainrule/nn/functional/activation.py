"""Activation functions, stable for large ``|x|`` (values and gradients stay finite)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...core.primitive import Box
from ...ops import nn as N
from ...ops.elementwise import absolute, clip, expm1, where
from ...ops.elementwise import arctan as _arctan
from ...ops.elementwise import tanh as _tanh
from ._util import as_input, raw

__all__ = [
    "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax",
    "softplus", "softsign", "arctan", "silu", "log_sigmoid", "relu6", "hardtanh",
]


def relu(x: Any) -> Any:
    """``max(x, 0)``; the derivative at 0 is taken as 0.

    >>> import chainrule as cr
    >>> cr.nn.functional.relu(cr.numpy.asarray([-1.0, 2.0]))
    array([0., 2.])
    """
    return N.relu(x if isinstance(x, Box) else as_input(x))


def _dtype(x: Any) -> Any:
    r = raw(x)
    return r.dtype if hasattr(r, "dtype") else np.asarray(r).dtype


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise."""
    x = as_input(x)
    return where(x > 0, x, x * negative_slope)


def elu(x: Any, alpha: float = 1.0) -> Any:
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise (no overflow for large ``x``)."""
    x = as_input(x)
    pos = x > 0  # a plain mask on tensors; staged on graph nodes and traced values
    # expm1 only sees non-positive values, so neither the value nor its derivative overflows.
    return where(pos, x, expm1(where(pos, 0.0, x)) * alpha)


_SQRT1_2 = 1.0 / math.sqrt(2.0)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)


def gelu(x: Any, approximate: str = "none") -> Any:
    """``x * Phi(x)`` (``approximate="tanh"``: the tanh formula), as in PyTorch."""
    x = as_input(x)
    if approximate == "none":
        return x * (N.erf(x * _SQRT1_2) + 1.0) * 0.5
    if approximate == "tanh":
        return x * (_tanh((x + x * x * x * 0.044715) * _SQRT_2_PI) + 1.0) * 0.5
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` without overflow."""
    return N.sigmoid(as_input(x))


def tanh(x: Any) -> Any:
    """Hyperbolic tangent."""
    return _tanh(as_input(x))


def _pick_axis(axis: int, dim: int | None) -> int:
    return axis if dim is None else dim


def softmax(x: Any, axis: int = -1, dim: int | None = None) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis`` (``dim`` is accepted as PyTorch's name).

    The backward pass is the full Jacobian-vector product ``(g - sum(g * s)) * s``.

    >>> import chainrule as cr
    >>> cr.nn.functional.softmax(cr.numpy.asarray([1000.0, 1000.0]))
    array([0.5, 0.5])
    """
    return N.softmax(as_input(x), _pick_axis(axis, dim))


def log_softmax(x: Any, axis: int = -1, dim: int | None = None) -> Any:
    """``x - logsumexp(x)`` along ``axis``, without overflow."""
    return N.log_softmax(as_input(x), _pick_axis(axis, dim))


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    """``log(1 + exp(beta x)) / beta``, computed stably for every ``x``.

    ``threshold`` is accepted for PyTorch compatibility; the stable formula
    needs no switch to the linear branch.
    """
    x = as_input(x)
    if beta == 1:
        return N.softplus(x)
    return N.softplus(x * beta) * (1.0 / beta)


def softsign(x: Any) -> Any:
    """``x / (1 + |x|)``."""
    x = as_input(x)
    return x / (absolute(x) + 1.0)


def arctan(x: Any) -> Any:
    """Inverse tangent (a bounded activation)."""
    return _arctan(as_input(x))


def silu(x: Any) -> Any:
    """``x * sigmoid(x)`` (also called swish)."""
    x = as_input(x)
    return x * N.sigmoid(x)


def log_sigmoid(x: Any) -> Any:
    """``log(sigmoid(x))`` without overflow."""
    return N.log_sigmoid(as_input(x))


def hardtanh(x: Any, min_val: float = -1.0, max_val: float = 1.0) -> Any:
    """``x`` clipped to ``[min_val, max_val]``."""
    x = as_input(x)
    inside = (x > min_val) & (x < max_val)
    return where(inside, x, clip(x, min_val, max_val))


def relu6(x: Any) -> Any:
    """``min(max(x, 0), 6)``."""
    return hardtanh(x, 0.0, 6.0)

