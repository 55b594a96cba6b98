"""``cr.detect_anomaly()``: find the operation that first made a NaN or an infinity.

While the mode is on, every primitive call checks its result and every
backward rule checks the cotangents it returns; the first non-finite value
that comes from finite inputs raises ``FloatingPointError`` naming the
primitive, the pass (forward or backward) and the ``file:line`` of the
user's code that called the operation (recorded at forward time).

The mode costs nothing when off: entering it swaps checking versions of
``Primitive.__call__`` and of the registered rules in, leaving it swaps the
originals back -- no flag is tested per operation.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import numpy as np

from .core.primitive import Box, Node, Primitive, node_of, registry

__all__ = ["detect_anomaly", "is_anomaly_enabled"]

F = TypeVar("F", bound=Callable[..., Any])

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_lock = threading.Lock()
_depth = [0]
_original_call = Primitive.__call__
_original_rules: dict[Primitive, Any] = {}
#: id of a recorded result (the box, and its data) -> (weak reference to the box, "file:line")
_sites: dict[int, tuple[Any, str]] = {}
_QUIET: dict[str, Any] = {"divide": "ignore", "invalid": "ignore", "over": "ignore"}


class _InRule(threading.local):
    depth = 0


_in_rule = _InRule()


def is_anomaly_enabled() -> bool:
    """True inside ``cr.detect_anomaly()``."""
    return _depth[0] > 0


class detect_anomaly:
    """Raise ``FloatingPointError`` at the first NaN/inf an operation produces (context
    manager and decorator).

    The error names the primitive, the pass (``forward`` or ``backward``)
    and the ``file:line`` of the code that called the operation.  A value
    that is already NaN/inf in an operation's inputs is not reported again
    downstream.  ``check_nan=False`` switches the mode off (handy to keep
    one code path).  Slow: for debugging only.  The mode is process-wide (it
    swaps implementations), not per thread.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> x = cr.tensor([0.0, 1.0], requires_grad=True)
    >>> with cr.detect_anomaly():
    ...     y = cnp.sum(cnp.sqrt(x))
    ...     y.backward()   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FloatingPointError: detect_anomaly: the backward pass of 'sqrt' ... called at ...
    """

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan

    def __enter__(self) -> detect_anomaly:
        if self.check_nan:
            with _lock:
                if _depth[0] == 0:
                    _switch_on()
                _depth[0] += 1
        return self

    def __exit__(self, *exc: object) -> None:
        if self.check_nan:
            with _lock:
                _depth[0] -= 1
                if _depth[0] == 0:
                    _switch_off()

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with detect_anomaly(self.check_nan):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


# --- switching the checking versions in and out ---------------------------------------------

def _switch_on() -> None:
    Primitive.__call__ = _checked_call  # type: ignore[method-assign]
    for prim in list(registry.values()):
        rule = prim.vjp
        if rule is None:
            continue
        _original_rules[prim] = rule
        if type(rule) is tuple:
            prim.vjp = tuple(None if f is None else _checked_rule(prim, f) for f in rule)
        else:
            prim.vjp = _checked_rule(prim, rule)


def _switch_off() -> None:
    Primitive.__call__ = _original_call  # type: ignore[method-assign]
    for prim, rule in _original_rules.items():
        prim.vjp = rule
    _original_rules.clear()
    _sites.clear()


# --- the checks ----------------------------------------------------------------------------

def _finite(x: Any) -> bool:
    while isinstance(x, Box):
        x = x.data
    if type(x) in (tuple, list):
        return all(_finite(v) for v in x)
    if isinstance(x, (np.ndarray, np.generic)):
        return not np.issubdtype(x.dtype, np.inexact) or bool(np.isfinite(x).all())
    if isinstance(x, (float, complex)):
        return math.isfinite(abs(x)) if isinstance(x, complex) else math.isfinite(x)
    return True  # other array libraries are not read (that could force a computation)


def _user_site() -> str:
    """``file:line`` of the innermost frame outside the chainrule package."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _remember(box: Box, site: str) -> None:
    node = node_of(box)
    ref = weakref.ref(box if node is None else node)
    # a rule receives the node's saved output (the data, or its shape-only stand-in)
    keys = {id(box), id(box.data)} | ({id(node), id(node._out)} if type(node) is Node else set())
    for key in keys:
        _sites[key] = (ref, site)


def _site_of(out: Any) -> str:
    o = out
    while True:
        entry = _sites.get(id(o))
        if entry is not None and entry[0]() is not None:
            return entry[1]
        if not isinstance(o, Box):
            return "<unknown: recorded before detect_anomaly() was entered>"
        o = o.data


def _checked_call(self: Primitive, *args: Any, **params: Any) -> Any:
    with np.errstate(**_QUIET):  # the mode reports non-finite values itself
        out = _original_call(self, *args, **params)
    if _in_rule.depth:  # operations inside a backward rule: the rule's result is checked
        return out
    if not _finite(out) and _finite(args):
        raise FloatingPointError(
            f"detect_anomaly: the forward pass of {self.name!r} produced nan or inf from "
            f"finite inputs; the operation was called at {_user_site()}"
        )
    if isinstance(out, Box) and out._prim is not None:
        _remember(out, _user_site())
    return out


def _checked_rule(prim: Primitive, rule: Callable) -> Callable:
    def checked(g: Any, out: Any, *vals: Any, **params: Any) -> Any:
        _in_rule.depth += 1
        try:
            with np.errstate(**_QUIET):
                ct = rule(g, out, *vals, **params)
        finally:
            _in_rule.depth -= 1
        if not _finite(ct) and _finite(g):
            raise FloatingPointError(
                f"detect_anomaly: the backward pass of {prim.name!r} produced nan or inf "
                f"from a finite gradient; the operation was called at {_site_of(out)}"
            )
        return ct

    return checked
