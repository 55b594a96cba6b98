"""Trace levels and per-thread differentiation state.

Every differentiation (an eager ``backward``, a ``GradientTape``, each
``grad``/``vjp``/``jvp`` call) works at its own *level*.  Level 0 is the eager
level of user-made tensors; every transform takes a fresh level from a
counter that never repeats, so boxes from different transforms can never be
confused (no perturbation confusion).  A primitive applied to boxes of
several levels unwraps the highest level first and recurses on the rest.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

EAGER_LEVEL = 0

_level_counter = itertools.count(1)
#: Levels whose boxes carry tangents (forward mode) instead of graph nodes.
FORWARD_LEVELS: set[int] = set()
#: Staging levels (program tracing, symbolic graphs): level -> handler
#: ``handler(prim, args, params)`` that returns the result of binding ``prim``.
STAGING: dict[int, Any] = {}
#: Every level that the fast paths must leave to the general bind.
SPECIAL_LEVELS: set[int] = set()
#: The transform (``"grad"``, ``"jvp"``...) running at each active level, for error messages.
LEVEL_NAMES: dict[int, str] = {}


class _State(threading.local):
    def __init__(self) -> None:
        # Recording happens only at levels strictly above ``grad_floor``.
        self.grad_floor = -1
        # The highest level handed out to a transform that is still running.
        self.top_level = EAGER_LEVEL
        # Gradient tapes recording now, innermost last (tensors made inside are watched).
        self.tapes: list[Any] = []


state = _State()


def new_level(forward: bool = False) -> int:
    """A fresh, never reused trace level above every active one."""
    level = next(_level_counter)
    if forward:
        FORWARD_LEVELS.add(level)
        SPECIAL_LEVELS.add(level)
    return level


def new_staging_level(handler: Any) -> int:
    """A fresh level whose bindings are handed to ``handler(prim, args, params)``.

    Used by program tracing (``cr.compile``) and symbolic graphs: the handler
    records the equation and returns the box that stands for its result.
    Release it with :func:`release_level`.
    """
    level = next(_level_counter)
    STAGING[level] = handler
    SPECIAL_LEVELS.add(level)
    return level


def release_level(level: int) -> None:
    """Forget a level's special handling once its trace is over."""
    FORWARD_LEVELS.discard(level)
    STAGING.pop(level, None)
    SPECIAL_LEVELS.discard(level)


class level_scope:
    """Context manager: make ``level`` the top active level for its duration."""

    __slots__ = ("level", "saved")

    def __init__(self, forward: bool = False, name: str = "transform") -> None:
        self.level = new_level(forward)
        LEVEL_NAMES[self.level] = name

    def __enter__(self) -> int:
        self.saved = state.top_level
        state.top_level = self.level
        return self.level

    def __exit__(self, *exc: object) -> None:
        state.top_level = self.saved
        FORWARD_LEVELS.discard(self.level)
        SPECIAL_LEVELS.discard(self.level)
        LEVEL_NAMES.pop(self.level, None)


def is_recording(level: int) -> bool:
    return level > state.grad_floor


class _GradMode:
    """Shared machinery of ``no_grad`` and ``enable_grad`` (context + decorator)."""

    enabled: bool

    def __enter__(self) -> None:
        self._saved = state.grad_floor
        state.grad_floor = -1 if self.enabled else state.top_level

    def __exit__(self, *exc: object) -> None:
        state.grad_floor = self._saved

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """Stop recording operations for differentiation (context manager or decorator).

    Transforms started *inside* the block still differentiate (they open new
    levels); only the levels already active are switched off.

    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> with cr.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    enabled = False


class enable_grad(_GradMode):
    """Switch recording back on inside a ``no_grad`` block (context manager or decorator).

    >>> import chainrule as cr
    >>> x = cr.tensor(1.0, requires_grad=True)
    >>> with cr.no_grad():
    ...     with cr.enable_grad():
    ...         y = x * 2
    >>> y.requires_grad
    True
    """

    enabled = True


def is_grad_enabled() -> bool:
    """True when operations on eager tensors are being recorded."""
    return state.grad_floor < EAGER_LEVEL
