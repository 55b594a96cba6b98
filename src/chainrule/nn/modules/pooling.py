"""Pooling and resampling layers: ``MaxPool1d/2d AvgPool1d/2d AdaptiveAvgPool2d Upsample``."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .module import Module

__all__ = ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d", "Upsample"]


class _Pool(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool):
    """Maximum over windows (stride defaults to ``kernel_size``).

    >>> import chainrule as cr
    >>> cr.nn.MaxPool2d(2)(cr.numpy.ones((1, 3, 8, 8))).shape
    (1, 3, 4, 4)
    """

    def forward(self, x: Any) -> Any:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class MaxPool1d(_Pool):
    """Maximum over windows of the last axis of ``(N, C, L)``.

    >>> import chainrule as cr
    >>> cr.nn.MaxPool1d(2)(cr.numpy.ones((1, 3, 8))).shape
    (1, 3, 4)
    """

    def forward(self, x: Any) -> Any:
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool):
    """Mean over windows (stride defaults to ``kernel_size``)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = count_include_pad

    def forward(self, x: Any) -> Any:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                            self.count_include_pad)


class AvgPool1d(AvgPool2d):
    """Mean over windows of the last axis of ``(N, C, L)``.

    >>> import chainrule as cr
    >>> cr.nn.AvgPool1d(2)(cr.numpy.ones((1, 3, 8))).shape
    (1, 3, 4)
    """

    def forward(self, x: Any) -> Any:
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding,
                            self.count_include_pad)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size.

    >>> import chainrule as cr
    >>> cr.nn.AdaptiveAvgPool2d((2, 3))(cr.numpy.ones((1, 3, 7, 8))).shape
    (1, 3, 2, 3)
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Any) -> Any:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Upsample(Module):
    """Resize by ``size`` or ``scale_factor`` (see :func:`chainrule.nn.functional.interpolate`).

    >>> import chainrule as cr
    >>> cr.nn.Upsample(scale_factor=2, mode="bilinear")(cr.numpy.ones((1, 1, 3, 3))).shape
    (1, 1, 6, 6)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None) -> None:
        super().__init__()
        self.size, self.scale_factor = size, scale_factor
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x: Any) -> Any:
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else \
            f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"
