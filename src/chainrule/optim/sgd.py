"""``SGD`` with momentum, dampening, Nesterov and weight decay (PyTorch's formula)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..core.version import bump_versions
from .optimizer import Optimizer, required

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent.

    With ``g = grad + weight_decay * p``: ``b = momentum * b + (1 - dampening) * g``
    (``b = g`` at the first step), ``g = g + momentum * b`` (Nesterov) or
    ``g = b``, then ``p -= lr * g``.

    >>> import chainrule as cr, numpy as np
    >>> p = cr.nn.Parameter([1.0]); p.grad = np.array([0.5])
    >>> opt = cr.optim.SGD([p], lr=0.1)
    >>> _ = opt.step(); p.data
    array([0.95])
    """

    # Positional order as in chainrule's API: (params, lr, momentum, nesterov, weight_decay).
    def __init__(self, params: Iterable[Any], lr: float = required, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, dampening: float = 0.0,
                 maximize: bool = False) -> None:
        if momentum < 0:
            raise ValueError(f"SGD: invalid momentum {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _update_group(self, group, pairs):
        if group["weight_decay"] or group["momentum"] or group.get("maximize"):
            return super()._update_group(group, pairs)
        lr = group["lr"]
        rest, done = [], []
        for p, g, a in pairs:
            # the plain step on real NumPy arrays, in place: p -= lr * g
            if type(a) is np.ndarray and type(g) is np.ndarray \
                    and a.dtype.kind == "f" == g.dtype.kind and a.flags.writeable:
                a -= g * lr  # (in place, same-kind casting)
                done.append(p)
            else:
                rest.append((p, g, a))
        bump_versions(done)
        if rest:
            super()._update_group(group, rest)

    def _update(self, p, g, state, group):
        wd, mom = group["weight_decay"], group["momentum"]
        if not (wd or mom):
            a = p.data
            if type(a) is np.ndarray and a.flags.writeable:  # the plain step, in place
                np.subtract(a, group["lr"] * g, out=a, casting="same_kind")
                return
        if wd:
            g = g + wd * p.data
        if mom:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= mom
                buf += (1.0 - group["dampening"]) * g
            g = g + mom * buf if group["nesterov"] else buf
        self._apply(p, -group["lr"] * g)
