"""``RMSprop`` and ``Adagrad`` (PyTorch's formulas)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .optimizer import Optimizer

__all__ = ["RMSprop", "Adagrad"]


class RMSprop(Optimizer):
    """RMSprop: ``v = alpha v + (1 - alpha) g^2``, ``p -= lr * g / (sqrt(v) + eps)``.

    ``centered`` subtracts the squared running mean of ``g`` from ``v``;
    ``momentum`` keeps a buffer ``b = momentum b + g / (sqrt(v) + eps)``.

    >>> import chainrule as cr, numpy as np
    >>> p = cr.nn.Parameter([1.0]); p.grad = np.array([0.5])
    >>> _ = cr.optim.RMSprop([p], lr=0.01).step(); np.round(p.data, 4)
    array([0.9])
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, maximize: bool = False) -> None:
        if alpha < 0 or eps < 0 or momentum < 0:
            raise ValueError(f"RMSprop: invalid alpha {alpha}, eps {eps} or momentum {momentum}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _update(self, p, g, state, group):
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p.data)
            if group["momentum"] > 0:
                state["momentum_buffer"] = np.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(p.data)
        state["step"] += 1
        v = state["square_avg"]
        v *= alpha
        v += (1.0 - alpha) * (g * g)
        if group["centered"]:
            ga = state["grad_avg"]
            ga *= alpha
            ga += (1.0 - alpha) * g
            avg = np.sqrt(v - ga * ga) + eps
        else:
            avg = np.sqrt(v) + eps
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += g / avg
            self._apply(p, -lr * buf)
        else:
            self._apply(p, -lr * (g / avg))


class Adagrad(Optimizer):
    """Adagrad: ``s += g^2``, ``p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)``.

    >>> import chainrule as cr, numpy as np
    >>> p = cr.nn.Parameter([1.0]); p.grad = np.array([0.5])
    >>> _ = cr.optim.Adagrad([p], lr=0.1).step(); np.round(p.data, 6)
    array([0.9])
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, maximize: bool = False) -> None:
        if lr_decay < 0 or initial_accumulator_value < 0 or eps < 0:
            raise ValueError("Adagrad: lr_decay, initial_accumulator_value and eps must be >= 0")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    def _update(self, p, g, state, group):
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(p.data, group["initial_accumulator_value"])
        state["step"] += 1
        clr = group["lr"] / (1.0 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]
        s += g * g
        self._apply(p, -clr * (g / (np.sqrt(s) + group["eps"])))
