"""``Parameter``: a tensor that a :class:`Module` registers as trainable."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.primitive import Box
from ..core.version import bump_version
from ..tensor import Tensor

__all__ = ["Parameter"]


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


_data_slot = vars(Box)["data"]  # the slot under Parameter.data


class Parameter(Tensor):
    """A leaf tensor with ``requires_grad=True`` that modules pick up as a parameter.

    The data is copied, so the parameter owns its array; optimisers update
    that array in place, so the parameter object stays the same.

    >>> import chainrule as cr
    >>> p = cr.nn.Parameter([1.0, 2.0])
    >>> p.requires_grad, p.shape
    (True, (2,))
    >>> (p * p).sum().backward()
    >>> p.grad
    array([2., 4.])
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        raw = np.empty(0) if data is None else _raw(data)
        if isinstance(raw, (np.ndarray, np.generic, list, tuple, float, int, bool)):
            raw = np.array(raw)
        else:  # another array library: keep it there
            raw = raw.copy() if hasattr(raw, "copy") else raw
        Box.__init__(self, raw)
        self.requires_grad_(bool(requires_grad))

    @property
    def data(self) -> Any:
        return _data_slot.__get__(self, Parameter)

    @data.setter
    def data(self, value: Any) -> None:
        # assigning .data is an in-place change for the graphs that saved the old value
        try:
            _data_slot.__get__(self, Parameter)
        except AttributeError:  # the first assignment, from __init__
            _data_slot.__set__(self, value)
            return
        _data_slot.__set__(self, value)
        bump_version(self)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce__(self):  # copy / pickle support for a class with __slots__ only
        return (type(self), (np.asarray(self.data), self.requires_grad))
