"""Small helpers shared by the functional modules."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.primitive import Box

__all__ = ["raw", "as_input", "shape_of", "check_reduction", "reduce"]

_REDUCTIONS = ("mean", "sum", "none")


def raw(x: Any) -> Any:
    """The plain array under any number of boxes."""
    while isinstance(x, Box):
        x = x.data
    return x


def as_input(x: Any) -> Any:
    """Tensors and arrays pass; lists and Python numbers become float64 arrays."""
    if isinstance(x, Box) or hasattr(x, "shape"):
        return x
    a = np.asarray(x)
    return a.astype(np.float64) if a.dtype.kind in "biu" else a


def shape_of(x: Any) -> tuple:
    return tuple(getattr(x, "shape", ()))


def check_reduction(reduction: str, op: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def reduce(loss: Any, reduction: str, op: str) -> Any:
    """Apply ``reduction`` to an elementwise loss."""
    from ...ops.reductions import mean
    from ...ops.reductions import sum as sum_

    check_reduction(reduction, op)
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum_(loss)
    return loss
