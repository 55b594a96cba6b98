"""Convolutions: ``conv1d conv2d conv3d conv_transpose2d`` with PyTorch's signatures.

Inputs are channels first, batched ``(N, C, *S)`` or unbatched ``(C, *S)``
(as PyTorch: the result is then unbatched too); further leading axes are
sample axes as well.  The arithmetic lives in
:mod:`chainrule.ops.conv`; this module checks and normalises arguments.
"""

from __future__ import annotations

from typing import Any

from ...ops import conv as CV
from ...ops._broadcast import reshape
from ._util import as_input, shape_of

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose2d", "ntuple"]


def ntuple(v: Any, d: int, name: str, op: str) -> tuple[int, ...]:
    """``3 -> (3, 3)`` for ``d = 2``; a sequence of ``d`` ints is checked and returned."""
    if isinstance(v, (tuple, list)):
        if len(v) != d:
            raise ValueError(f"{op}: {name} must be an int or a sequence of {d} ints, got {v!r}")
        return tuple(int(a) for a in v)
    return (int(v),) * d


def _channels_first(x: Any, d: int, op: str) -> tuple[Any, int]:
    """The input and its number of sample axes (1 batched, 0 unbatched)."""
    x = as_input(x)
    nd = len(shape_of(x))
    if nd < d + 1:  # (more leading axes than one are all sample axes)
        raise ValueError(f"{op}: expected an input of {d + 1} (unbatched) or {d + 2} (batched) "
                         f"dimensions, got an input of shape {shape_of(x)}")
    return x, nd - d - 1


def _padding(padding: Any, d: int, K: tuple, dilation: tuple, stride: tuple,
             op: str) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * d
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride {stride})")
            # as PyTorch: the odd extra pixel goes to the end
            return tuple((dl * (k - 1) // 2, dl * (k - 1) - dl * (k - 1) // 2)
                         for k, dl in zip(K, dilation))
        raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', "
                         f"got {padding!r}")
    p = ntuple(padding, d, "padding", op)
    return tuple((a, a) for a in p)


def _check_common(op, d, xs, ws, stride, dilation, groups, what):
    if len(ws) != d + 2:
        raise ValueError(f"{op}: weight must have {d + 2} dimensions {what}, got shape {ws}")
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{op}: stride {stride} and dilation {dilation} must be positive")
    if groups < 1:
        raise ValueError(f"{op}: groups must be a positive integer, got {groups}")
    C = xs[-d - 1]
    if C % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels {C}")


def _convnd(d: int, op: str, input: Any, weight: Any, bias: Any, stride: Any, padding: Any,
            dilation: Any, groups: int) -> Any:
    x, ns = _channels_first(input, d, op)
    xs, ws = shape_of(x), shape_of(weight)
    stride = ntuple(stride, d, "stride", op)
    dilation = ntuple(dilation, d, "dilation", op)
    groups = int(groups)
    _check_common(op, d, xs, ws, stride, dilation, groups, "(out_channels, "
                  "in_channels / groups, *kernel_size)")
    O, Cg, K = ws[0], ws[1], ws[2:]
    if O % groups:
        raise ValueError(f"{op}: groups={groups} must divide the output channels {O} "
                         f"(weight of shape {ws})")
    if xs[-d - 1] != Cg * groups:
        raise ValueError(f"{op}: input of shape {xs} does not match weight of shape {ws}: "
                         f"expected input with {Cg * groups} channels (groups={groups}), but "
                         f"got {xs[-d - 1]} channels")
    pad = _padding(padding, d, K, dilation, stride, op)
    if min(min(p) for p in pad) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    S = xs[-d:]
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(S, pad))
    span = tuple(dl * (k - 1) + 1 for k, dl in zip(K, dilation))
    if any(p < k for p, k in zip(padded, span)):
        raise ValueError(f"{op}: kernel size {span} (dilated) is larger than the padded input "
                         f"size {padded} (input of shape {xs}, padding {padding!r})")
    if bias is not None and shape_of(bias) != (O,):
        raise ValueError(f"{op}: bias must have shape ({O},), got {shape_of(bias)}")
    out = CV.conv(x, weight, stride=stride, padding=pad, dilation=dilation, groups=groups, ns=ns)
    # (a separate add keeps conv a two-input primitive; it preserves the memory layout)
    return out if bias is None else out + reshape(bias, shape=(O,) + (1,) * d)


def conv1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Any:
    """1-D convolution (cross-correlation) of ``(N, C, L)`` with weight ``(O, C/groups, k)``.

    >>> import numpy as np
    >>> conv1d(np.ones((1, 2, 5)), np.ones((4, 2, 3)), padding="same").shape
    (1, 4, 5)
    """
    return _convnd(1, "conv1d", input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Any:
    """2-D convolution (cross-correlation), NCHW input, weight ``(out, in/groups, kh, kw)``.

    ``padding``: an int, a pair, ``"valid"`` or ``"same"`` (stride 1).  Vectorised
    with im2col and one GEMM; no Python loop over pixels.

    >>> import numpy as np
    >>> conv2d(np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)), padding=1).shape
    (1, 3, 5, 5)
    """
    return _convnd(2, "conv2d", input, weight, bias, stride, padding, dilation, groups)


def conv3d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Any:
    """3-D convolution of ``(N, C, D, H, W)`` with weight ``(O, C/groups, kd, kh, kw)``.

    >>> import numpy as np
    >>> conv3d(np.ones((1, 1, 4, 4, 4)), np.ones((2, 1, 3, 3, 3))).shape
    (1, 2, 2, 2, 2)
    """
    return _convnd(3, "conv3d", input, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1) -> Any:
    """Transposed 2-D convolution (the gradient of :func:`conv2d` in its input).

    Weight ``(in, out/groups, kh, kw)``; the output size is
    ``(H - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.

    >>> import numpy as np
    >>> conv_transpose2d(np.ones((1, 2, 3, 3)), np.ones((2, 4, 3, 3)), stride=2).shape
    (1, 4, 7, 7)
    """
    op, d = "conv_transpose2d", 2
    x, ns = _channels_first(input, d, op)
    xs, ws = shape_of(x), shape_of(weight)
    stride = ntuple(stride, d, "stride", op)
    dilation = ntuple(dilation, d, "dilation", op)
    pad = ntuple(padding, d, "padding", op)
    opad = ntuple(output_padding, d, "output_padding", op)
    groups = int(groups)
    _check_common(op, d, xs, ws, stride, dilation, groups,
                  "(in_channels, out_channels / groups, *kernel_size)")
    if xs[-d - 1] != ws[0]:
        raise ValueError(f"{op}: input of shape {xs} does not match weight of shape {ws}: "
                         f"expected input with {ws[0]} channels, but got {xs[-d - 1]} channels")
    if min(pad) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    if any(not (0 <= o < s) for o, s in zip(opad, stride)):
        raise ValueError(f"{op}: output_padding {opad} must be non-negative and smaller than "
                         f"the stride {stride}")
    K = ws[2:]
    size = tuple((h - 1) * s - 2 * p + dl * (k - 1) + o + 1
                 for h, s, p, dl, k, o in zip(xs[-d:], stride, pad, dilation, K, opad))
    if min(size) < 1:
        raise ValueError(f"{op}: the output size {size} would be empty (input of shape {xs}, "
                         f"padding {pad})")
    out = CV.conv_input_grad(x, weight, size=size, stride=stride,
                             padding=tuple((p, p) for p in pad), dilation=dilation,
                             groups=groups, ns=ns)
    if bias is not None:
        O = ws[1] * groups
        if shape_of(bias) != (O,):
            raise ValueError(f"{op}: bias must have shape ({O},), got {shape_of(bias)}")
        out = out + reshape(bias, shape=(O,) + (1,) * d)
    return out
