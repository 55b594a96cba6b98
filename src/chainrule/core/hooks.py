"""Handles for registered hooks, and errors that name the hook that raised.

``Tensor.register_hook`` and ``Module.register_forward_hook`` (and
``register_forward_pre_hook``) return a :class:`RemovableHandle`; calling
its ``remove()`` unregisters the hook (a second call does nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["RemovableHandle", "call_hook"]


class RemovableHandle:
    """Unregisters one hook with :meth:`remove` (also a context manager).

    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> handle = x.register_hook(lambda g: g * 10)
    >>> (x * x).sum().backward()
    >>> x.grad
    array([20., 40.])
    >>> handle.remove()
    """

    __slots__ = ("_hooks", "_fn", "_on_empty")

    def __init__(self, hooks: list, fn: Callable, on_empty: Callable[[], None] | None = None
                 ) -> None:
        self._hooks: list | None = hooks
        self._fn = fn
        self._on_empty = on_empty

    def remove(self) -> None:
        """Unregister the hook (idempotent)."""
        hooks, self._hooks = self._hooks, None
        if hooks is None:
            return
        for i, f in enumerate(hooks):
            if f is self._fn:
                del hooks[i]
                break
        if not hooks and self._on_empty is not None:
            self._on_empty()

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def hook_name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def call_hook(fn: Callable, where: str, *args: Any) -> Any:
    """``fn(*args)``; an exception it raises propagates with the hook named."""
    try:
        return fn(*args)
    except Exception as exc:
        message = f"in {where} {hook_name(fn)!r}: {exc}"
        try:
            err = type(exc)(message)
        except Exception:  # an exception type with a special constructor: keep it, noted
            if hasattr(exc, "add_note"):  # (Python 3.11+, PEP 678)
                exc.add_note(message)
            else:
                exc.args = (message,) + exc.args[1:]
            raise
        raise err from exc
