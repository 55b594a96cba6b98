"""Gradient utilities: clipping and flattening parameters to one vector."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .functional._util import raw

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]


def _with_grads(parameters: Any) -> list:
    if hasattr(parameters, "grad") and not isinstance(parameters, (list, tuple)):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale the gradients in place so that their joint norm is at most ``max_norm``.

    Returns the total norm before clipping (as PyTorch, scale ``max_norm / (norm + 1e-6)``).

    >>> import chainrule as cr, numpy as np
    >>> p = cr.nn.Parameter([0.0, 0.0]); p.grad = np.array([3.0, 4.0])
    >>> cr.nn.utils.clip_grad_norm_([p], 1.0)
    5.0
    >>> np.round(p.grad, 4)
    array([0.6, 0.8])
    """
    params = _with_grads(parameters)
    if not params:
        return 0.0
    grads = [np.asarray(raw(p.grad)) for p in params]
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        total = float(sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads)
                      ** (1.0 / norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total gradient norm is {total}")
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        for p, g in zip(params, grads):
            p.grad = g * np.asarray(coef, dtype=g.dtype)
    return total


def clip_grad_value_(parameters: Any, clip_value: float) -> None:
    """Clip every gradient entry to ``[-clip_value, clip_value]`` in place."""
    for p in _with_grads(parameters):
        g = np.asarray(raw(p.grad))
        p.grad = np.clip(g, -clip_value, clip_value)


def parameters_to_vector(parameters: Iterable[Any]) -> np.ndarray:
    """Every parameter's values, flattened and concatenated into one array."""
    return np.concatenate([np.asarray(raw(p)).ravel() for p in parameters])


def vector_to_parameters(vec: Any, parameters: Iterable[Any]) -> None:
    """Copy consecutive slices of ``vec`` into the parameters, in place."""
    v = np.asarray(raw(vec))
    start = 0
    for p in parameters:
        a = p.data
        n = a.size
        if start + n > v.size:
            raise ValueError(f"vector_to_parameters: the vector has {v.size} entries, "
                             "fewer than the parameters need")
        a[...] = v[start:start + n].reshape(a.shape)
        start += n
    if start != v.size:
        raise ValueError(f"vector_to_parameters: the vector has {v.size} entries but the "
                         f"parameters need {start}")
