"""The Python forms of the control-flow operations: plain loops and branches over chainrule
operations, which every eager transform sees step by step."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import numpy as cnp
from ..core.trace import no_grad
from ..pytree import tree_flatten, tree_unflatten
from ..transforms import _raw
from .carries import (
    _any_example,
    _batched,
    _carry_checker,
    _check_pred,
    _check_same,
    _select,
    _spec,
)


def _quiet_call(fun: Callable, operands: tuple) -> Any:
    """Run the branch that was not taken only to check its output type (nothing recorded)."""
    try:
        with no_grad(), np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fun(*operands), True
    except TypeError:
        raise
    except Exception:  # noqa: BLE001 - it may fail on values it would never see
        return None, False


def _cond_python(pred: Any, true_fun: Callable, false_fun: Callable, operands: tuple) -> Any:
    if _batched(pred):
        t_out = true_fun(*operands)
        f_out = false_fun(*operands)
        t_leaves, t_def = tree_flatten(t_out)
        f_leaves, f_def = tree_flatten(f_out)
        _check_same("cond", "true_fun's output", t_def, [_spec(x) for x in t_leaves],
                    "false_fun's output", f_def, [_spec(x) for x in f_leaves])
        return tree_unflatten(t_def, [_select(pred, a, b) for a, b in zip(t_leaves, f_leaves)])
    taken = bool(pred)
    out = (true_fun if taken else false_fun)(*operands)
    other, ok = _quiet_call(false_fun if taken else true_fun, operands)
    if ok:
        names = ("true_fun's output", "false_fun's output")
        a, b = (out, other) if taken else (other, out)
        a_l, a_d = tree_flatten(a)
        b_l, b_d = tree_flatten(b)
        _check_same("cond", names[0], a_d, [_spec(x) for x in a_l], names[1], b_d,
                    [_spec(x) for x in b_l])
    return out


def _while_python(cond_fun: Callable, body_fun: Callable, init: Any) -> Any:
    check = _carry_checker("while_loop", init)
    val = init
    while True:
        p = cond_fun(val)
        _check_pred("while_loop", p)
        if _batched(p):
            break
        if not bool(p):
            return val
        val = body_fun(val)
        check(val)
    # A batched predicate: run until every example is done; finished ones keep their values.
    while _any_example(p):
        new = body_fun(val)
        new_leaves = check(new)
        old_leaves, tdef = tree_flatten(val)
        val = tree_unflatten(tdef, [_select(p, n, o) for n, o in zip(new_leaves, old_leaves)])
        p = cond_fun(val)
    return val


def _scan_length(xs_leaves: list, length: Any) -> int:
    lengths = [x.shape[0] if hasattr(x, "shape") else np.shape(x)[0] for x in xs_leaves]
    if lengths and any(n != lengths[0] for n in lengths):
        raise ValueError(f"scan: every leaf of xs must have the same leading axis length, got "
                         f"{', '.join(str(n) for n in lengths)}")
    if not lengths:
        if length is None:
            raise ValueError("scan: with no xs, give length (the number of steps)")
        return int(length)
    if length is not None and int(length) != lengths[0]:
        raise ValueError(f"scan: length={length} differs from the leading axis length "
                         f"{lengths[0]} of xs")
    return lengths[0]


def _split_output(out: Any) -> tuple:
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"scan: the body must return a pair (carry, y), got {type(out).__name__}")
    return out[0], out[1]


def _stack(parts: list) -> Any:
    if all(isinstance(p, (np.ndarray, np.generic)) for p in parts):
        return np.stack(parts)
    return cnp.stack(parts)


def _scan_python(f: Callable, init: Any, xs: Any, length: Any, reverse: bool) -> tuple:
    x_leaves, x_def = tree_flatten(xs)
    n = _scan_length(x_leaves, length)
    check = _carry_checker("scan", init)
    carry = init
    ys: list = []
    steps = range(n - 1, -1, -1) if reverse else range(n)
    # (the array API indexes the leading axis as x[t, ...]; NumPy's x[t] is the fast form)
    plain = [type(_raw(a)) is np.ndarray for a in x_leaves]
    for t in steps:
        x = tree_unflatten(x_def, [a[t] if p else a[t, ...] for a, p in zip(x_leaves, plain)])
        carry, y = _split_output(f(carry, x))
        check(carry)
        ys.append(tree_flatten(y))
    if n == 0:  # the output type of one step, from a step on zeros
        x0 = tree_unflatten(x_def, [np.zeros(tuple(a.shape[1:]), np.dtype(a.dtype))
                                    for a in x_leaves])
        with no_grad():
            _, y0 = _split_output(f(init, x0))
        y_leaves, y_def = tree_flatten(y0)
        return carry, tree_unflatten(y_def, [np.zeros((0,) + _spec(y)[0], _spec(y)[1])
                                             for y in y_leaves])
    if reverse:
        ys.reverse()
    y_def = ys[0][1]
    stacked = [_stack([leaves[k] for leaves, _ in ys]) for k in range(len(ys[0][0]))]
    return carry, tree_unflatten(y_def, stacked)
