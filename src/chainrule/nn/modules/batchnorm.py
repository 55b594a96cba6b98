"""``BatchNorm1d`` and ``BatchNorm2d``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..parameter import Parameter
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()
    running_mean: Any
    running_var: Any

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 dtype: Any = np.float64) -> None:
        super().__init__()
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        if affine:
            self.weight = Parameter(np.ones(self.num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(self.num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1

    def forward(self, x: Any) -> Any:
        nd = len(getattr(x, "shape", ()))
        if nd not in self._ndims:
            raise ValueError(f"{type(self).__name__}: expected an input with "
                             f"{' or '.join(map(str, self._ndims))} dimensions, got shape "
                             f"{tuple(getattr(x, 'shape', ()))}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels "
                             f"(axis 1), got shape {tuple(x.shape)}")
        use_batch = self.training or not self.track_running_stats
        return F.batch_norm(x, self.running_mean,
                            self.running_var, self.weight, self.bias, training=use_batch,
                            momentum=self.momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over ``(N, C)`` or ``(N, C, L)`` inputs (per channel ``C``).

    Running statistics start at mean 0 and variance 1 and move with
    ``momentum`` (the variance unbiased), as in PyTorch.

    >>> import chainrule as cr
    >>> bn = cr.nn.BatchNorm1d(3)
    >>> y = bn(cr.numpy.asarray([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))
    >>> bn.running_mean
    array([0.2, 0.2, 0.2])
    """

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over ``(N, C, H, W)`` inputs (per channel ``C``)."""

    _ndims = (4,)
