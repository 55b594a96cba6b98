"""``Conv1d Conv2d Conv3d ConvTranspose2d``: PyTorch's constructors and initialisation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import functional as F
from .. import init
from ..functional.conv import ntuple
from ..parameter import Parameter
from .module import Module

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d"]


class _ConvNd(Module):
    _d = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 dtype: Any = np.float64, output_padding: Any = 0) -> None:
        super().__init__()
        name, d = type(self).__name__, self._d
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.groups = int(groups)
        if self.groups < 1 or self.in_channels % self.groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels {in_channels}")
        if self.out_channels % self.groups:
            raise ValueError(f"{name}: groups={groups} must divide out_channels {out_channels}")
        self.kernel_size = ntuple(kernel_size, d, "kernel_size", name)
        self.stride = ntuple(stride, d, "stride", name)
        self.dilation = ntuple(dilation, d, "dilation", name)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{name}: padding must be 'valid', 'same', an int or a tuple, "
                                 f"got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions (stride {self.stride})")
            self.padding: Any = padding
        else:
            self.padding = ntuple(padding, d, "padding", name)
        self.output_padding = ntuple(output_padding, d, "output_padding", name)
        if self._transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(self.out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.fans(self.weight)
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding}")
        if any(v != 1 for v in self.dilation):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + f", bias={self.bias is not None}"


class _PlainConv(_ConvNd):
    """Conv1d/2d/3d: PyTorch's constructor (no output_padding) and one forward."""

    _conv: Any

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 dtype: Any = np.float64) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, dtype)

    def forward(self, x: Any) -> Any:
        return self._conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                          self.groups)


class Conv1d(_PlainConv):
    """1-D convolution over ``(N, C_in, L)`` (or ``(C_in, L)``).

    >>> import chainrule as cr
    >>> cr.nn.Conv1d(2, 4, 3, padding="same")(cr.numpy.ones((1, 2, 9))).shape
    (1, 4, 9)
    """

    _d = 1
    _conv = staticmethod(F.conv1d)


class Conv2d(_PlainConv):
    """2-D convolution with PyTorch's constructor and initialisation.

    Input ``(N, C_in, H, W)`` (or ``(C_in, H, W)``); weight
    ``(C_out, C_in / groups, kh, kw)``; output ``(N, C_out, Ho, Wo)``.

    >>> import chainrule as cr
    >>> conv = cr.nn.Conv2d(1, 4, kernel_size=3, padding=1)
    >>> conv(cr.numpy.ones((2, 1, 8, 8))).shape
    (2, 4, 8, 8)
    """

    _d = 2
    _conv = staticmethod(F.conv2d)


class Conv3d(_PlainConv):
    """3-D convolution over ``(N, C_in, D, H, W)`` (or unbatched).

    >>> import chainrule as cr
    >>> cr.nn.Conv3d(1, 2, 3)(cr.numpy.ones((1, 1, 5, 5, 5))).shape
    (1, 2, 3, 3, 3)
    """

    _d = 3
    _conv = staticmethod(F.conv3d)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution; weight ``(C_in, C_out / groups, kh, kw)`` as PyTorch.

    >>> import chainrule as cr
    >>> cr.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)(
    ...     cr.numpy.ones((1, 4, 5, 5))).shape
    (1, 2, 10, 10)
    """

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, dtype: Any = np.float64) -> None:
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be an int or a pair, got "
                             f"{padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, dtype, output_padding)

    def forward(self, x: Any) -> Any:
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)
