"""Activation primitives that need their own rules for numerical stability."""

from __future__ import annotations

import numpy as np

from ..core.primitive import primitive
from .elementwise import absolute, exp, log1p, maximum, where

__all__ = ["sigmoid", "relu", "softplus", "log_sigmoid"]


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
)


def _relu_impl(xp, x):
    return xp.where(x > 0, x, xp.zeros_like(x))


relu = primitive(
    "relu", _relu_impl, lambda x: np.maximum(x, 0),
    vjp=(lambda g, out, x: g * (x > 0),),
    jvp=(lambda t, out, x: t * (x > 0),),
)


def softplus(x):
    """log(1 + exp(x)) computed without overflow: max(x, 0) + log1p(exp(-|x|))."""
    return maximum(x, 0.0) + log1p(exp(-absolute(x)))


def log_sigmoid(x):
    """log(sigmoid(x)) without overflow: -softplus(-x)."""
    return where(x >= 0, 0.0, x) - log1p(exp(-absolute(x)))
