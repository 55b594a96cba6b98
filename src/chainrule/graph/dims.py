"""Symbolic sizes of static graphs: ``None`` in a placeholder's shape becomes a :class:`Dim`.

A :class:`Dim` prints as ``None`` and compares equal to ``None``; arithmetic on it
(``x.shape[0] * 3``) gives new symbolic sizes whose values are read from the actual arrays
when the graph runs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.primitive import Box

__all__ = ["Dim"]


# --- symbolic sizes ------------------------------------------------------------------------------


class Dim:
    """An unknown size: an axis of a node's value, or arithmetic on such sizes.

    Prints as ``None`` and ``== None`` is true.  Comparisons answer "could
    these be the same size": two unknown sizes are equal when they agree in
    both abstract evaluations (sizes that meet in an operation are assumed
    equal), and an unknown size equals any known size except 1 (the size
    that broadcasts, so gradients of broadcast operands are still summed).
    ``int(d)`` raises ``TypeError``: the size is known only when the graph
    runs.
    """

    __slots__ = ("op", "args", "trial")

    def __init__(self, op: str, args: tuple, trial: tuple[int, int]) -> None:
        self.op = op
        self.args = args
        self.trial = trial

    def value(self, size_of: Callable[[Any, Any, int], int]) -> int:
        """The concrete size, given ``size_of(node, path, axis)`` for axis sizes."""
        if self.op == "axis":
            return size_of(*self.args)
        vals = [a.value(size_of) if isinstance(a, Dim) else a for a in self.args]
        return _DIM_OPS[self.op](*vals)

    def nodes(self) -> list:
        """The nodes whose values this size is read from."""
        if self.op == "axis":
            return [self.args[0]]
        out = []
        for a in self.args:
            if isinstance(a, Dim):
                out += a.nodes()
        return out

    # --- arithmetic gives new symbolic sizes ------------------------------------------------
    def _bin(self, op: str, a: Any, b: Any) -> Any:
        if not isinstance(a, (Dim, int)) or not isinstance(b, (Dim, int)) or isinstance(a, bool):
            return NotImplemented
        f = _DIM_OPS[op]
        ta = a.trial if isinstance(a, Dim) else (a, a)
        tb = b.trial if isinstance(b, Dim) else (b, b)
        try:
            trial = (f(ta[0], tb[0]), f(ta[1], tb[1]))
        except ZeroDivisionError:
            return NotImplemented
        if op == "mod" and trial == (0, 0):
            return 0  # divisible in both evaluations: taken as divisible
        if op == "mul" and (a == 1 or b == 1):
            return b if a == 1 else a
        if op in ("add", "sub") and isinstance(b, int) and b == 0:
            return a
        return Dim(op, (a, b), trial)

    def __add__(self, o: Any) -> Any:
        return self._bin("add", self, o)

    def __radd__(self, o: Any) -> Any:
        return self._bin("add", o, self)

    def __sub__(self, o: Any) -> Any:
        return self._bin("sub", self, o)

    def __rsub__(self, o: Any) -> Any:
        return self._bin("sub", o, self)

    def __mul__(self, o: Any) -> Any:
        return self._bin("mul", self, o)

    def __rmul__(self, o: Any) -> Any:
        return self._bin("mul", o, self)

    def __floordiv__(self, o: Any) -> Any:
        return self._bin("floordiv", self, o)

    def __rfloordiv__(self, o: Any) -> Any:
        return self._bin("floordiv", o, self)

    def __mod__(self, o: Any) -> Any:
        return self._bin("mod", self, o)

    def __rmod__(self, o: Any) -> Any:
        return self._bin("mod", o, self)

    def __neg__(self) -> Any:
        return self._bin("sub", 0, self)

    # --- comparisons ------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if other is None:
            return True
        if isinstance(other, Dim):
            return self.trial == other.trial
        if isinstance(other, (int, np.integer)) and not isinstance(other, bool):
            return other != 1  # compatible with any size but 1, the size that broadcasts
        return False

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(("Dim",) + self.trial)

    def __bool__(self) -> bool:
        return True  # sizes are taken as non-zero

    def _unknown(self, *_: Any) -> Any:
        raise TypeError(
            "this size is unknown until the graph runs (None in a placeholder's shape); "
            "use a placeholder with a known size, or ops that do not need the number"
        )

    __int__ = __index__ = __float__ = __lt__ = __le__ = __gt__ = __ge__ = _unknown

    def slice_length(self, s: slice) -> Dim:
        """The (unknown) number of elements that slice ``s`` of this size selects."""
        t = tuple(len(range(*s.indices(n))) for n in self.trial)
        return Dim("slicelen", (self, s.start, s.stop, s.step), t)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return "None"


_DIM_OPS: dict[str, Callable[..., int]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "floordiv": lambda a, b: a // b, "mod": lambda a, b: a % b,
    "slicelen": lambda n, start, stop, step: len(range(*slice(start, stop, step).indices(n))),
}


def _has_dim(obj: Any) -> bool:
    if isinstance(obj, Dim):
        return True
    if type(obj) in (tuple, list):
        return any(_has_dim(x) for x in obj)
    if type(obj) is slice:
        return _has_dim(obj.start) or _has_dim(obj.stop) or _has_dim(obj.step)
    if type(obj) is dict:
        return any(_has_dim(x) for x in obj.values())
    slots = getattr(type(obj), "__slots__", None)
    if slots and not isinstance(obj, (Box, np.ndarray)) and type(obj).__module__.startswith(
            "chainrule"):
        return any(_has_dim(getattr(obj, s, None)) for s in slots if s != "__weakref__")
    return False


def _subst(obj: Any, f: Callable[[Dim], int]) -> Any:
    """``obj`` with every :class:`Dim` inside replaced by ``f(dim)``."""
    if isinstance(obj, Dim):
        return f(obj)
    t = type(obj)
    if t is tuple or t is list:
        return t(_subst(x, f) for x in obj) if _has_dim(obj) else obj
    if t is slice:
        return slice(_subst(obj.start, f), _subst(obj.stop, f), _subst(obj.step, f))
    if t is dict:
        return {k: _subst(v, f) for k, v in obj.items()}
    if _has_dim(obj):  # a parameter object (e.g. an index key) holding sizes
        new = copy.copy(obj)
        for s in type(obj).__slots__:
            if s != "__weakref__" and hasattr(obj, s):
                setattr(new, s, _subst(getattr(obj, s), f))
        return new
    return obj


def _dims_in(obj: Any, out: list) -> list:
    if isinstance(obj, Dim):
        out.append(obj)
    elif type(obj) in (tuple, list):
        for x in obj:
            _dims_in(x, out)
    elif type(obj) is slice:
        for x in (obj.start, obj.stop, obj.step):
            _dims_in(x, out)
    elif type(obj) is dict:
        for x in obj.values():
            _dims_in(x, out)
    elif _has_dim(obj):
        for s in type(obj).__slots__:
            if s != "__weakref__":
                _dims_in(getattr(obj, s, None), out)
    return out
