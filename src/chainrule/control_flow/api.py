"""``cond``, ``while_loop``, ``fori_loop`` and ``scan``: the public functions, which run a
Python loop or stage one primitive per call (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.primitive import Box
from ..graph.subprogram import NotStageable
from .carries import _carry_checker, _check_pred, _staged
from .primitives import public
from .python_forms import _cond_python, _scan_python, _while_python
from .staged import _cond_staged, _scan_staged, _while_staged

# --- cond ---------------------------------------------------------------------------------------


def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any) -> Any:
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)`` (JAX's ``lax.cond``).

    Both branches must return the same structure of arrays with the same
    shapes and dtypes (``TypeError`` otherwise, naming both).  Under
    ``vmap`` with a batched ``pred`` both branches run and each example
    takes its own; inside ``cr.compile`` and static graphs the branch is one
    operation, decided when the program runs.

    >>> import numpy as np, chainrule as cr
    >>> float(cr.cond(np.array(2.0) > 1, lambda x: x * 2, lambda x: x - 1, np.array(3.0)))
    6.0
    """
    _check_pred("cond", pred)
    if _staged(pred, operands):
        try:
            return _cond_staged(pred, true_fun, false_fun, operands)
        except NotStageable:
            pass
    return _cond_python(pred, true_fun, false_fun, operands)


# --- while_loop ---------------------------------------------------------------------------------


def while_loop(cond_fun: Callable, body_fun: Callable, init_val: Any) -> Any:
    """Repeat ``val = body_fun(val)`` while ``cond_fun(val)``; return ``val`` (``lax.while_loop``).

    ``body_fun`` must return the same structure, shapes and dtypes as
    ``init_val`` (``TypeError`` otherwise, naming both).  Unlike JAX, reverse
    mode works: the iterations are kept for the reverse pass.  Under
    ``vmap`` with a batched predicate the loop runs until every example is
    done, freezing finished examples.  Inside ``cr.compile`` the loop is one
    operation whose trip count is decided at run time.

    >>> import numpy as np, chainrule as cr
    >>> float(cr.while_loop(lambda x: x < 10, lambda x: x * 2, np.array(1.0)))
    16.0
    """
    if _staged(init_val):
        try:
            return _while_staged(cond_fun, body_fun, init_val)
        except NotStageable:
            pass
    return _while_python(cond_fun, body_fun, init_val)


# --- fori_loop ----------------------------------------------------------------------------------

def _static_int(x: Any) -> int | None:
    if isinstance(x, (bool, np.bool_)):
        return None
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, np.ndarray) and x.shape == () and x.dtype.kind in "iu":
        return int(x)
    return None


def fori_loop(lower: Any, upper: Any, body_fun: Callable, init_val: Any) -> Any:
    """``val = body_fun(i, val)`` for ``i`` in ``range(lower, upper)`` (``lax.fori_loop``).

    With static integer bounds it is a ``scan`` (reverse mode replays the
    saved carries backwards); bounds that are traced values (compiled
    arguments, placeholders, batched values) make it a ``while_loop``.

    >>> import numpy as np, chainrule as cr
    >>> float(cr.fori_loop(0, 4, lambda i, x: x + i, np.array(0.0)))
    6.0
    """
    lo, hi = _static_int(lower), _static_int(upper)
    if lo is not None and hi is not None:
        if _staged(init_val):
            def step(c: Any, i: Any) -> tuple:
                return body_fun(i, c), None

            try:
                return _scan_staged(step, init_val, np.arange(lo, hi), None, False)[0]
            except NotStageable:
                pass
        check = _carry_checker("fori_loop", init_val)
        val = init_val
        for i in range(lo, hi):
            val = body_fun(i, val)
            check(val)
        return val

    def loop_cond(c: Any) -> Any:
        return c[0] < c[1]

    def loop_body(c: Any) -> Any:
        i, n, val = c
        return i + 1, n, body_fun(i, val)

    lower = lower if isinstance(lower, Box) else np.asarray(lower)
    upper = upper if isinstance(upper, Box) else np.asarray(upper)
    return while_loop(loop_cond, loop_body, (lower, upper, init_val))[2]


# --- scan ---------------------------------------------------------------------------------------


def scan(f: Callable, init: Any, xs: Any = None, length: int | None = None,
         reverse: bool = False) -> tuple:
    """Loop ``carry, y = f(carry, x)`` over the leading axis of ``xs``; return ``(carry, ys)``.

    JAX's ``lax.scan``: ``xs`` is a pytree of arrays sliced along axis 0
    (``None`` with ``length`` steps), ``ys`` stacks the per-step ``y`` along
    a new axis 0, ``reverse=True`` walks the steps backwards (``ys`` stays in
    the order of ``xs``).  The output carry must match ``init`` in
    structure, shape and dtype (``TypeError`` otherwise, naming both).
    Inside ``cr.compile`` and static graphs the loop is one operation, and
    its derivative a reverse scan over the saved carries.

    >>> import numpy as np, chainrule as cr
    >>> carry, ys = cr.scan(lambda c, x: (c + x, c * x), np.array(0.0), np.arange(1.0, 4.0))
    >>> float(carry), ys
    (6.0, array([0., 2., 9.]))
    """
    if _staged(init, xs):
        try:
            return _scan_staged(f, init, xs, length, reverse)
        except NotStageable:
            pass
    return _scan_python(f, init, xs, length, reverse)


public.update(scan=scan, cond=cond)
