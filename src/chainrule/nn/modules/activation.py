"""Activation layers: thin modules over ``cr.nn.functional``."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .module import Module

__all__ = [
    "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Softplus",
    "Softsign", "Arctan", "SiLU", "LogSigmoid", "Hardtanh", "ReLU6",
]


class ReLU(Module):
    """``max(x, 0)``.

    >>> import chainrule as cr
    >>> cr.nn.ReLU()(cr.numpy.asarray([-1.0, 1.0]))
    array([0., 1.])
    """

    def forward(self, x: Any) -> Any:
        return F.relu(x)


class LeakyReLU(Module):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Any) -> Any:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Any) -> Any:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class GELU(Module):
    """``x * Phi(x)``; ``approximate="tanh"`` for the tanh formula."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Any) -> Any:
        return F.gelu(x, self.approximate)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``."""

    def forward(self, x: Any) -> Any:
        return F.sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent."""

    def forward(self, x: Any) -> Any:
        return F.tanh(x)


class _AxisModule(Module):
    def __init__(self, axis: int = -1, dim: int | None = None) -> None:
        super().__init__()
        self.axis = axis if dim is None else dim

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Softmax(_AxisModule):
    """Softmax along ``axis`` (``dim`` is accepted as PyTorch's name)."""

    def forward(self, x: Any) -> Any:
        return F.softmax(x, self.axis)


class LogSoftmax(_AxisModule):
    """Log-softmax along ``axis`` (``dim`` is accepted as PyTorch's name)."""

    def forward(self, x: Any) -> Any:
        return F.log_softmax(x, self.axis)


class Softplus(Module):
    """``log(1 + exp(beta x)) / beta``."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, x: Any) -> Any:
        return F.softplus(x, self.beta, self.threshold)


class Softsign(Module):
    """``x / (1 + |x|)``."""

    def forward(self, x: Any) -> Any:
        return F.softsign(x)


class Arctan(Module):
    """Inverse tangent."""

    def forward(self, x: Any) -> Any:
        return F.arctan(x)


class SiLU(Module):
    """``x * sigmoid(x)``."""

    def forward(self, x: Any) -> Any:
        return F.silu(x)


class LogSigmoid(Module):
    """``log(sigmoid(x))``."""

    def forward(self, x: Any) -> Any:
        return F.log_sigmoid(x)


class Hardtanh(Module):
    """``x`` clipped to ``[min_val, max_val]``."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        super().__init__()
        self.min_val = min_val
        self.max_val = max_val

    def forward(self, x: Any) -> Any:
        return F.hardtanh(x, self.min_val, self.max_val)


class ReLU6(Module):
    """``min(max(x, 0), 6)``."""

    def forward(self, x: Any) -> Any:
        return F.relu6(x)
