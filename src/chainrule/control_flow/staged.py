"""The staged forms of the control-flow operations: each traces its bodies once into
sub-programs and becomes one primitive of a ``cr.compile`` trace or a static graph."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..batching import BatchTracer
from ..core.primitive import Box
from ..graph.nodes import GRAPH_LEVEL
from ..graph.subprogram import NotStageable, SubProgram, concrete
from ..pytree import tree_flatten, tree_unflatten
from .carries import _carry_checker, _check_pred, _check_same, _entries, _leaf_specs
from .primitives import cond_p, scan_p, while_p
from .python_forms import _scan_length, _split_output

# --- staged forms: one primitive each ------------------------------------------------------------

def _scan_staged(f: Callable, init: Any, xs: Any, length: Any, reverse: bool) -> tuple:
    c_leaves, c_def = tree_flatten(init)
    x_leaves, x_def = tree_flatten(xs)
    n_c, n_x = len(c_leaves), len(x_leaves)
    y_defs: list = []

    def flat_body(*args: Any) -> list:
        c = tree_unflatten(c_def, list(args[:n_c]))
        x = tree_unflatten(x_def, list(args[n_c:]))
        new_c, y = _split_output(f(c, x))
        # (checked against this trace's inputs: graph nodes may have unknown sizes)
        new_leaves = _carry_checker("scan", c)(new_c)
        y_leaves, y_def = tree_flatten(y)
        if not y_defs:
            y_defs.append(y_def)
        return list(new_leaves) + y_leaves

    n = _scan_length(x_leaves, length) if n_x == 0 else None
    body = SubProgram(flat_body, "scan")
    examples = [concrete(c) for c in c_leaves] + [_first(concrete(x)) for x in x_leaves]
    prog = body.first_trace(examples)
    y_specs = tuple((tuple(v.shape), v.dtype) for v in prog.outputs[n_c:])
    # Being differentiated in reverse: the carries entering each step are kept as extra
    # outputs for the reverse scan (otherwise they are recomputed when needed).
    operands = c_leaves + x_leaves + body.captured
    needs = tuple(_may_need_cotangent(v) for v in operands)
    keep = any(isinstance(v, Box) and v.requires_grad for v in operands)
    res = scan_p(*operands, body=body, n_carry=n_c, n_xs=n_x, length=n, reverse=bool(reverse),
                 y_specs=y_specs, keep_carries=keep, needs=needs)
    outs = _entries(res, n_c + len(y_specs))
    return tree_unflatten(c_def, outs[:n_c]), tree_unflatten(y_defs[0], outs[n_c:])


def _may_need_cotangent(x: Any) -> bool:
    """Whether some level may ask for this input's cotangent: a box that requires grad at any
    level of its chain, or a graph node (constants and program inputs never do)."""
    while isinstance(x, Box):
        if x._level == GRAPH_LEVEL or x.requires_grad:
            return True
        x = x._bval if isinstance(x, BatchTracer) else x.data
    return False


def _first(x: Any) -> Any:
    if not isinstance(x, np.ndarray):  # other array libraries run the Python loop
        raise NotStageable(f"a sub-program runs on NumPy arrays, not {type(x).__name__}")
    if x.shape[0] == 0:
        return np.zeros(x.shape[1:], x.dtype)
    return x[0]


def _while_staged(cond_fun: Callable, body_fun: Callable, init: Any) -> Any:
    leaves, tdef = tree_flatten(init)
    n_c = len(leaves)

    def flat_cond(*args: Any) -> list:
        p = cond_fun(tree_unflatten(tdef, list(args)))
        _check_pred("while_loop", p)
        return [p]

    def flat_body(*args: Any) -> list:
        val = tree_unflatten(tdef, list(args))
        return list(_carry_checker("while_loop", val)(body_fun(val)))

    examples = [concrete(x) for x in leaves]
    c_sub = SubProgram(flat_cond, "while_loop cond")
    c_sub.first_trace(examples)
    b_sub = SubProgram(flat_body, "while_loop body")
    b_sub.first_trace(examples)
    res = while_p(*leaves, *c_sub.captured, *b_sub.captured, cond=c_sub, body=b_sub,
                  n_carry=n_c, n_cond=len(c_sub.captured))
    return tree_unflatten(tdef, _entries(res, n_c))


def _cond_staged(pred: Any, true_fun: Callable, false_fun: Callable, operands: tuple) -> Any:
    leaves, tdef = tree_flatten(operands)
    out_defs: list = []

    def branch(fun: Callable) -> Callable:
        def flat(*args: Any) -> list:
            o_leaves, o_def = tree_flatten(fun(*tree_unflatten(tdef, list(args))))
            out_defs.append((o_def, _leaf_specs(o_leaves)))
            return o_leaves

        return flat

    examples = [concrete(x) for x in leaves]
    t_sub = SubProgram(branch(true_fun), "cond true branch")
    t_sub.first_trace(examples)
    f_sub = SubProgram(branch(false_fun), "cond false branch")
    f_sub.first_trace(examples)
    (t_def, t_specs), (f_def, f_specs) = out_defs[0], out_defs[1]
    _check_same("cond", "true_fun's output", t_def, t_specs, "false_fun's output", f_def, f_specs)
    res = cond_p(pred, *leaves, *t_sub.captured, *f_sub.captured, true_branch=t_sub,
                 false_branch=f_sub, n_ops=len(leaves), n_true=len(t_sub.captured))
    return tree_unflatten(t_def, _entries(res, len(t_specs)))
