"""Loss functions with PyTorch's signatures and ``reduction="mean" | "sum" | "none"``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.concrete import concrete_value, is_staged
from ...ops import nn as N
from ...ops.elementwise import absolute
from ...ops.reductions import reduce_sum
from ._util import as_input, check_reduction, raw, reduce, shape_of

__all__ = [
    "mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "one_hot",
]


def _dtype(x: Any) -> np.dtype:
    """The dtype of ``x`` without reading its values (a traced value's is static)."""
    dtype = getattr(x, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.asarray(x).dtype


def _labels_of(x: Any) -> np.ndarray:
    """Integer labels as a NumPy array: an explicit read (guarded under ``cr.compile``)."""
    return np.asarray(concrete_value(x))


def _check_same_shape(input: Any, target: Any, op: str) -> None:
    a, b = shape_of(input), shape_of(target)
    if a != b:
        raise ValueError(f"{op}: input of shape {a} and target of shape {b} must have the same "
                         "shape")


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean squared error ``(input - target) ** 2``, reduced.

    >>> import chainrule as cr
    >>> float(cr.nn.functional.mse_loss(cr.numpy.asarray([1.0, 2.0]), cr.numpy.asarray([0.0, 0.0])))
    2.5
    """
    input, target = as_input(input), as_input(target)
    _check_same_shape(input, target, "mse_loss")
    d = input - target
    return reduce(d * d, reduction, "mse_loss")


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean absolute error ``|input - target|``, reduced."""
    input, target = as_input(input), as_input(target)
    _check_same_shape(input, target, "l1_loss")
    return reduce(absolute(input - target), reduction, "l1_loss")


def one_hot(labels: Any, num_classes: int = -1) -> np.ndarray:
    """Integer labels ``(...)`` to a 0/1 array ``(..., num_classes)`` (int64)."""
    lab = _labels_of(labels)
    if lab.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, got dtype {lab.dtype}")
    n = int(lab.max()) + 1 if num_classes < 0 else int(num_classes)
    if lab.size and (lab.min() < 0 or lab.max() >= n):
        raise ValueError(f"one_hot: labels must lie in [0, {n}), got values in "
                         f"[{lab.min()}, {lab.max()}]")
    return (lab[..., None] == np.arange(n)).astype(np.int64)


_FUSED = ("mean", "sum", "none")

#: Signed integer dtypes and their unsigned twins: seen as unsigned, negative labels are
#: huge, so one maximum checks ``0 <= label < n``.
_UNSIGNED = {np.dtype(t): np.dtype(t.replace("int", "uint"))
             for t in ("int8", "int16", "int32", "int64")}


def _all_below(t: np.ndarray, n: int) -> bool:
    """Whether every integer label lies in ``[0, n)`` (one pass over the labels)."""
    u = _UNSIGNED.get(t.dtype)
    if u is not None:
        return bool(t.view(u).max() < n)
    return bool(t.min() >= 0 and t.max() < n)


def _class_axis(input: Any) -> int:
    nd = len(shape_of(input))
    return -nd + 1 if nd >= 2 else -1  # (N, C, d1, ...) -> axis 1; (C,) -> axis 0


def _sample_shape(input: Any) -> tuple:
    ishape = shape_of(input)
    return ishape[:1] + ishape[2:] if len(ishape) >= 2 else ()


def _labels(input: Any, target: Any, ignore_index: int, op: str) -> tuple[np.ndarray, int]:
    """Validated integer labels and the class axis (negative)."""
    ishape = shape_of(input)
    t = _labels_of(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class labels, got dtype {t.dtype} "
                        "(for class probabilities use a float target of the input's shape)")
    if len(ishape) == 0:
        raise ValueError(f"{op}: input must have a class axis, got a scalar")
    ax = _class_axis(input)
    expected = _sample_shape(input)
    if t.shape != expected:
        raise ValueError(f"{op}: input of shape {ishape} needs a target of shape {expected} "
                         f"(one label per sample), got {t.shape}")
    n_cls = ishape[ax]
    bad = (t != ignore_index) & ((t < 0) | (t >= n_cls))
    if bad.any():
        raise IndexError(f"{op}: target label {int(t[bad].flat[0])} is out of bounds for "
                         f"{n_cls} classes")
    return t, ax


def _onehot_mask(t: np.ndarray, n_cls: int, ax: int, ignore: np.ndarray) -> np.ndarray:
    """Boolean ``(N, C, ...)`` mask selecting each sample's class (none where ignored)."""
    mask = (t[..., None] == np.arange(n_cls)) & ~ignore[..., None]
    return np.moveaxis(mask, -1, ax) if ax != -1 else mask


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Any:
    """Negative log-likelihood of log-probabilities ``input`` ``(N, C, ...)`` at labels ``target``.

    ``mean`` divides by the total weight of the non-ignored samples, as PyTorch does.
    """
    check_reduction(reduction, "nll_loss")
    input = as_input(input)
    t, ax = _labels(input, target, ignore_index, "nll_loss")
    n_cls = shape_of(input)[ax]
    ignore = t == ignore_index
    mask = _onehot_mask(t, n_cls, ax, ignore)
    dtype = _dtype(input)
    if weight is None:
        sel = mask.astype(dtype)
        w_t = (~ignore).astype(dtype)
    else:
        w = np.asarray(concrete_value(weight), dtype=dtype)
        if w.shape != (n_cls,):
            raise ValueError(f"nll_loss: weight must have shape ({n_cls},), got {w.shape}")
        w_t = np.where(ignore, 0, w[np.where(ignore, 0, t)]).astype(dtype)
        sel = mask * np.expand_dims(w_t, ax)
    picked = -reduce_sum(input * sel, axes=(ax,), keepdims=False)  # -w[t] * input[n, t]
    if reduction == "none":
        return picked
    total = reduce_sum(picked, axes=tuple(range(-len(shape_of(picked)), 0)), keepdims=False)
    if reduction == "sum":
        return total
    return total / w_t.sum()


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    """Softmax cross-entropy of logits ``input`` ``(N, C, ...)`` against ``target``.

    ``target`` holds integer class labels ``(N, ...)`` or class probabilities
    of the input's shape.  Stable for logits of any size (log-softmax).

    >>> import chainrule as cr
    >>> logits = cr.tensor([[1000.0, 0.0]], requires_grad=True)
    >>> loss = cr.nn.functional.cross_entropy(logits, cr.numpy.asarray([1]))
    >>> float(loss)
    1000.0
    >>> loss.backward()
    >>> logits.grad
    array([[ 1., -1.]])
    """
    if weight is None and not label_smoothing and type(target) is np.ndarray \
            and target.dtype.kind in "iu" and target.size and reduction in _FUSED:
        shp = getattr(input, "shape", None)  # (a list takes the general path below)
        if shp:  # the common call: integer labels as a NumPy array, checked in one pass
            nd = len(shp)
            ax = 1 - nd if nd >= 2 else -1
            if target.shape == ((shp[0],) + tuple(shp[2:]) if nd >= 2 else ()) \
                    and _all_below(target, shp[ax]):
                return N.softmax_cross_entropy_p(input, target, axis=ax, reduction=reduction)
    check_reduction(reduction, "cross_entropy")
    input = as_input(input)
    ax = _class_axis(input)
    ls = float(label_smoothing)
    if not 0.0 <= ls <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got {ls}")
    # only integer labels are read; class probabilities are computed with, never read
    tkind = _dtype(target).kind
    traw = _labels_of(target) if tkind in "iu" else None
    if weight is None and ls == 0 and traw is not None and traw.size \
            and traw.shape == _sample_shape(input) and _all_below(traw, shape_of(input)[ax]):
        return N.softmax_cross_entropy(input, traw, ax, reduction)  # the fused fast path
    logp = N.log_softmax(input, ax)
    if tkind == "f":  # class probabilities
        _check_same_shape(input, target, "cross_entropy")
        n_cls = shape_of(input)[ax]
        probs = target if ls == 0 else target * (1 - ls) + ls / n_cls
        terms = logp * probs
        if weight is not None:
            w = np.asarray(concrete_value(weight), dtype=_dtype(input))
            terms = terms * w.reshape((n_cls,) + (1,) * (-ax - 1))
        loss = -reduce_sum(terms, axes=(ax,), keepdims=False)
        return reduce(loss, reduction, "cross_entropy")
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if ls == 0:
        return nll
    t, _ = _labels(input, target, ignore_index, "cross_entropy")
    ignore = t == ignore_index
    dtype = _dtype(input)
    n_cls = shape_of(input)[ax]
    if weight is None:
        smooth = -reduce_sum(logp, axes=(ax,), keepdims=False) * (~ignore).astype(dtype)
        denom = float((~ignore).sum())
    else:
        w = np.asarray(concrete_value(weight), dtype=dtype)
        wb = w.reshape((n_cls,) + (1,) * (-ax - 1))
        smooth = -reduce_sum(logp * wb, axes=(ax,), keepdims=False) * (~ignore).astype(dtype)
        denom = float(np.where(ignore, 0, w[np.where(ignore, 0, t)]).sum())
    if reduction == "none":
        smooth_r = smooth
    else:
        smooth_r = reduce_sum(smooth, axes=tuple(range(-len(shape_of(smooth)), 0)),
                              keepdims=False)
        if reduction == "mean":
            smooth_r = smooth_r / denom
    return nll * (1 - ls) + smooth_r * (ls / n_cls)


def binary_cross_entropy(input: Any, target: Any, weight: Any = None,
                         reduction: str = "mean") -> Any:
    """``-(t log p + (1 - t) log(1 - p))`` for probabilities ``p`` (logs clamped at -100)."""
    input, target = as_input(input), as_input(target)
    _check_same_shape(input, target, "binary_cross_entropy")
    p = None if is_staged(input) else np.asarray(raw(input))  # checked eagerly only
    if p is not None and p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
        raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1]; "
                         "for logits use binary_cross_entropy_with_logits")
    loss = N.binary_cross_entropy(input, target)
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None) -> Any:
    """Sigmoid + binary cross-entropy in one stable formula: ``softplus(x) - t x``.

    >>> import chainrule as cr
    >>> f = cr.nn.functional.binary_cross_entropy_with_logits
    >>> float(f(cr.numpy.asarray([-1000.0]), cr.numpy.asarray([1.0])))
    1000.0
    """
    input, target = as_input(input), as_input(target)
    _check_same_shape(input, target, "binary_cross_entropy_with_logits")
    if pos_weight is None:
        loss = N.softplus(input) - input * target
    else:  # (1 - t) x + (1 + (pw - 1) t) softplus(-x)
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * N.softplus(-input)
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction, "binary_cross_entropy_with_logits")
