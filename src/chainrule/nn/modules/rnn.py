"""Recurrent layers ``RNN``, ``LSTM`` and ``GRU`` with PyTorch's equations and gate order.

Parameters per layer ``k``: ``weight_ih_l{k}`` ``(G*H, in)``, ``weight_hh_l{k}``
``(G*H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` ``(G*H,)`` with ``G`` = 1 (RNN),
4 (LSTM: input, forget, cell, output gates ``i, f, g, o``) or 3 (GRU:
reset, update, new ``r, z, n``); all drawn from ``U(-1/sqrt(H), 1/sqrt(H))``.
The input projection of a whole sequence is one matrix product; only the
hidden-to-hidden product runs once per time step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import numpy as cnp
from ...ops import nn as N
from .. import functional as F
from .. import init
from ..functional._util import raw
from ..parameter import Parameter
from .module import Module

__all__ = ["RNN", "LSTM", "GRU"]


def _raw_dtype(x: Any) -> Any:
    return np.asarray(raw(x)).dtype


class _RNNBase(Module):
    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 dtype: Any = np.float64) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"{type(self).__name__}: num_layers must be at least 1, "
                             f"got {num_layers}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must lie in [0, 1], got {dropout}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        G, H = self._gates, self.hidden_size
        for k in range(self.num_layers):
            n_in = self.input_size if k == 0 else H
            setattr(self, f"weight_ih_l{k}", Parameter(np.empty((G * H, n_in), dtype=dtype)))
            setattr(self, f"weight_hh_l{k}", Parameter(np.empty((G * H, H), dtype=dtype)))
            if bias:
                setattr(self, f"bias_ih_l{k}", Parameter(np.empty(G * H, dtype=dtype)))
                setattr(self, f"bias_hh_l{k}", Parameter(np.empty(G * H, dtype=dtype)))
            else:
                self.register_parameter(f"bias_ih_l{k}", None)
                self.register_parameter(f"bias_hh_l{k}", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _layer(self, k: int) -> tuple:
        return (getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}"),
                getattr(self, f"bias_ih_l{k}"), getattr(self, f"bias_hh_l{k}"))

    def _prepare(self, x: Any) -> tuple[Any, bool]:
        """Time-major ``(L, N, in)`` input and whether the call was unbatched."""
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) not in (2, 3) or shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: expected an input (L, N, {self.input_size})"
                             f"{' with batch_first (N, L, ...)' if self.batch_first else ''} or "
                             f"(L, {self.input_size}), got shape {shape}")
        if len(shape) == 2:
            return cnp.reshape(x, (shape[0], 1, shape[1])), True
        if self.batch_first:
            x = cnp.swapaxes(x, 0, 1)
        return x, False

    def _initial(self, h0: Any, batch: int, unbatched: bool, dtype: Any, what: str) -> list:
        H, L = self.hidden_size, self.num_layers
        if h0 is None:
            z = np.zeros((batch, H), dtype=dtype)
            return [z] * L
        expected = (L, H) if unbatched else (L, batch, H)
        shape = tuple(getattr(h0, "shape", ()))
        if shape != expected:
            raise ValueError(f"{type(self).__name__}: {what} must have shape {expected}, "
                             f"got {shape}")
        if unbatched:
            h0 = cnp.reshape(h0, (L, 1, H))
        return [h0[k] for k in range(L)]

    def _finish(self, out: Any, finals: list, unbatched: bool) -> tuple[Any, Any]:
        hn = cnp.stack(finals, axis=0)  # (layers, N, H)
        if unbatched:
            out = cnp.reshape(out, (out.shape[0], self.hidden_size))
            hn = cnp.reshape(hn, (self.num_layers, self.hidden_size))
        elif self.batch_first:
            out = cnp.swapaxes(out, 0, 1)
        return out, hn

    def _dropout(self, x: Any, k: int) -> Any:
        if self.dropout and self.training and k < self.num_layers - 1:
            return F.dropout(x, self.dropout, True)
        return x

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        return s


class RNN(_RNNBase):
    """Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``.

    Returns ``(output, h_n)``: ``output`` ``(L, N, H)`` (``(N, L, H)`` with
    ``batch_first``), ``h_n`` ``(num_layers, N, H)``.

    >>> import chainrule as cr
    >>> rnn = cr.nn.RNN(3, 5, num_layers=2)
    >>> out, h = rnn(cr.numpy.ones((7, 2, 3)))
    >>> out.shape, h.shape
    ((7, 2, 5), (2, 2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, dtype: Any = np.float64) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.__dict__["nonlinearity"] = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, dtype)

    nonlinearity: str

    def forward(self, x: Any, hx: Any = None) -> tuple[Any, Any]:
        x, unbatched = self._prepare(x)
        act = cnp.tanh if self.nonlinearity == "tanh" else N.relu
        hs = self._initial(hx, x.shape[1], unbatched, _raw_dtype(x), "h0")
        finals = []
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._layer(k)
            proj = F.linear(x, w_ih, b_ih)
            h, outs = hs[k], []
            for t in range(x.shape[0]):
                h = act(proj[t] + F.linear(h, w_hh, b_hh))
                outs.append(h)
            finals.append(h)
            x = self._dropout(cnp.stack(outs, axis=0), k)
        return self._finish(x, finals, unbatched)


class LSTM(_RNNBase):
    """Long short-term memory, PyTorch's equations (gates ``i, f, g, o``).

    ``c' = f * c + i * g``, ``h' = o * tanh(c')``.  Returns
    ``(output, (h_n, c_n))``; ``hx`` is an optional ``(h_0, c_0)`` pair.

    >>> import chainrule as cr
    >>> lstm = cr.nn.LSTM(3, 4, batch_first=True)
    >>> out, (h, c) = lstm(cr.numpy.ones((2, 6, 3)))
    >>> out.shape, h.shape, c.shape
    ((2, 6, 4), (1, 2, 4), (1, 2, 4))
    """

    _gates = 4

    def forward(self, x: Any, hx: Any = None) -> tuple[Any, tuple[Any, Any]]:
        x, unbatched = self._prepare(x)
        dtype = _raw_dtype(x)
        h0, c0 = (None, None) if hx is None else hx
        hs = self._initial(h0, x.shape[1], unbatched, dtype, "h0")
        cs = self._initial(c0, x.shape[1], unbatched, dtype, "c0")
        H = self.hidden_size
        finals_h, finals_c = [], []
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._layer(k)
            proj = F.linear(x, w_ih, b_ih)
            h, c, outs = hs[k], cs[k], []
            for t in range(x.shape[0]):
                z = proj[t] + F.linear(h, w_hh, b_hh)
                i = N.sigmoid(z[..., :H])
                f = N.sigmoid(z[..., H:2 * H])
                g = cnp.tanh(z[..., 2 * H:3 * H])
                o = N.sigmoid(z[..., 3 * H:])
                c = f * c + i * g
                h = o * cnp.tanh(c)
                outs.append(h)
            finals_h.append(h)
            finals_c.append(c)
            x = self._dropout(cnp.stack(outs, axis=0), k)
        out, hn = self._finish(x, finals_h, unbatched)
        cn = cnp.stack(finals_c, axis=0)
        if unbatched:
            cn = cnp.reshape(cn, (self.num_layers, H))
        return out, (hn, cn)


class GRU(_RNNBase):
    """Gated recurrent unit, PyTorch's equations (gates ``r, z, n``).

    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
    Returns ``(output, h_n)``.

    >>> import chainrule as cr
    >>> gru = cr.nn.GRU(3, 4)
    >>> out, h = gru(cr.numpy.ones((5, 2, 3)))
    >>> out.shape, h.shape
    ((5, 2, 4), (1, 2, 4))
    """

    _gates = 3

    def forward(self, x: Any, hx: Any = None) -> tuple[Any, Any]:
        x, unbatched = self._prepare(x)
        hs = self._initial(hx, x.shape[1], unbatched, _raw_dtype(x), "h0")
        H = self.hidden_size
        finals = []
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._layer(k)
            proj = F.linear(x, w_ih, b_ih)
            h, outs = hs[k], []
            for t in range(x.shape[0]):
                gx = proj[t]
                gh = F.linear(h, w_hh, b_hh)
                r = N.sigmoid(gx[..., :H] + gh[..., :H])
                z = N.sigmoid(gx[..., H:2 * H] + gh[..., H:2 * H])
                n = cnp.tanh(gx[..., 2 * H:] + r * gh[..., 2 * H:])
                h = (1.0 - z) * n + z * h
                outs.append(h)
            finals.append(h)
            x = self._dropout(cnp.stack(outs, axis=0), k)
        return self._finish(x, finals, unbatched)
