"""Parameter initialisers, in place on a parameter's array (PyTorch's names and formulas).

Every function takes the tensor (or a NumPy array) to fill, fills its
``.data`` in place, keeps its dtype and returns it.  Random ones draw from
the generator shared by ``cr.nn`` (reseed it with :func:`seed`) unless an
explicit ``rng`` (a ``numpy.random.Generator`` or an int seed) is given.

>>> import chainrule as cr
>>> w = cr.nn.Parameter(cr.numpy.zeros((3, 4)))
>>> _ = cr.nn.init.xavier_uniform_(w, rng=0)
>>> bool(abs(w.numpy()).max() <= (6 / 7) ** 0.5)
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.primitive import Box
from ._random import manual_seed, resolve_rng

__all__ = [
    "seed", "calculate_gain", "constant_", "zeros_", "ones_", "eye_", "uniform_", "normal_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
    "trunc_normal_",
]

seed = manual_seed


def _array(t: Any) -> np.ndarray:
    a = t.data if isinstance(t, Box) else t
    if not isinstance(a, np.ndarray):
        raise TypeError(f"init: expected a Parameter/Tensor holding a NumPy array, got {type(a)}")
    return a


def _fill(t: Any, values: Any) -> Any:
    a = _array(t)
    a[...] = values  # in place: the tensor and anything holding it see the new values
    return t


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (as ``torch.nn.init.calculate_gain``)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope * slope))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def fans(t: Any) -> tuple[int, int]:
    """``(fan_in, fan_out)``: for a weight ``(out, in, *kernel)``, ``in * k`` and ``out * k``."""
    shape = _array(t).shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, "
                         f"got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def constant_(t: Any, val: float) -> Any:
    """Fill with ``val``."""
    return _fill(t, val)


def zeros_(t: Any) -> Any:
    """Fill with zeros."""
    return _fill(t, 0)


def ones_(t: Any) -> Any:
    """Fill with ones."""
    return _fill(t, 1)


def eye_(t: Any) -> Any:
    """The identity matrix (2-D tensors)."""
    a = _array(t)
    if a.ndim != 2:
        raise ValueError(f"eye_: needs a 2-D tensor, got shape {a.shape}")
    return _fill(t, np.eye(*a.shape))


def uniform_(t: Any, a: float = 0.0, b: float = 1.0, rng: Any = None) -> Any:
    """Draw from U(a, b)."""
    return _fill(t, resolve_rng(rng).uniform(a, b, _array(t).shape))


def normal_(t: Any, mean: float = 0.0, std: float = 1.0, rng: Any = None) -> Any:
    """Draw from N(mean, std^2)."""
    return _fill(t, resolve_rng(rng).normal(mean, std, _array(t).shape))


def trunc_normal_(t: Any, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  rng: Any = None) -> Any:
    """N(mean, std^2) truncated to [a, b] (redrawing the values that fall outside)."""
    g = resolve_rng(rng)
    shape = _array(t).shape
    out = g.normal(mean, std, shape)
    bad = (out < a) | (out > b)
    while bad.any():
        out[bad] = g.normal(mean, std, int(bad.sum()))
        bad = (out < a) | (out > b)
    return _fill(t, out)


def xavier_uniform_(t: Any, gain: float = 1.0, rng: Any = None) -> Any:
    """Glorot uniform: U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound, rng)


def xavier_normal_(t: Any, gain: float = 1.0, rng: Any = None) -> Any:
    """Glorot normal: N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def _kaiming_std(t: Any, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(t)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(t: Any, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", rng: Any = None) -> Any:
    """He uniform: U(-b, b) with ``b = gain * sqrt(3 / fan)``."""
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound, rng)


def kaiming_normal_(t: Any, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", rng: Any = None) -> Any:
    """He normal: N(0, std^2) with ``std = gain / sqrt(fan)``."""
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity), rng)


def orthogonal_(t: Any, gain: float = 1.0, rng: Any = None) -> Any:
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one."""
    a = _array(t)
    if a.ndim < 2:
        raise ValueError(f"orthogonal_: needs at least 2 dimensions, got shape {a.shape}")
    rows, cols = a.shape[0], int(np.prod(a.shape[1:]))
    flat = resolve_rng(rng).normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(t, gain * q.reshape(a.shape))
