"""Shared pieces of the control-flow operations: carry and branch types, what kind of
value an operand is (staged, batched), and the entries of a multi-output result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import numpy as cnp
from ..batching import BatchTracer
from ..core.primitive import Box
from ..core.trace import STAGING
from ..graph.subprogram import stageable_level
from ..graph.trace import Trace
from ..ops.linalg import tuple_get
from ..pytree import tree_flatten

# --- types of carries and branch outputs ----------------------------------------------------------

def _spec(x: Any) -> tuple:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return tuple(x.shape), x.dtype  # (any array library's dtype)
    return tuple(np.shape(x)), np.result_type(x)


def _describe(tdef: Any, specs: list) -> str:
    types = ", ".join(f"{dt}{list(s)}" for s, dt in specs)
    return f"{tdef} with leaves [{types}]"


def _check_same(op: str, what_a: str, tree_a: Any, specs_a: list, what_b: str, tree_b: Any,
                specs_b: list) -> None:
    if tree_a != tree_b or specs_a != specs_b:
        raise TypeError(
            f"{op}: {what_b} must have the same structure, shapes and dtypes as {what_a}; "
            f"{what_a} is {_describe(tree_a, specs_a)} but {what_b} is "
            f"{_describe(tree_b, specs_b)}")


def _carry_checker(op: str, init: Any, what: str = "the body's output carry") -> Callable:
    leaves, tdef = tree_flatten(init)
    specs = [_spec(x) for x in leaves]

    def check(new: Any) -> list:
        n_leaves, n_def = tree_flatten(new)
        if n_def != tdef or len(n_leaves) != len(specs) or any(
                _spec(x) != s for x, s in zip(n_leaves, specs)):
            _check_same(op, "the input carry", tdef, specs, what, n_def,
                        [_spec(x) for x in n_leaves])
        return n_leaves

    return check


# --- what kind of value: staged, batched --------------------------------------------------------

def _compile_active() -> bool:
    return any(isinstance(getattr(h, "__self__", None), Trace) for h in list(STAGING.values()))


def _chain_staged(x: Any) -> bool:
    while isinstance(x, Box):
        if stageable_level(x._level):
            return True
        x = x._bval if isinstance(x, BatchTracer) else x.data
    return False


def _staged(*trees: Any) -> bool:
    """Stage when a compiled trace or a graph node is involved."""
    for t in trees:
        for leaf in tree_flatten(t)[0]:
            if _chain_staged(leaf):
                return True
    return _compile_active()


def _batched(p: Any) -> bool:
    while isinstance(p, Box):
        if isinstance(p, BatchTracer):
            return True
        p = p.data
    return False


def _any_example(p: Any) -> bool:
    """Whether the predicate holds for any example of a batched predicate (all levels)."""
    while isinstance(p, Box):
        p = p._bval if isinstance(p, BatchTracer) else p.data
    return bool(np.any(np.asarray(p)))


def _select(p: Any, a: Any, b: Any) -> Any:
    return cnp.where(p, a, b)


def _check_pred(op: str, pred: Any) -> None:
    shape = tuple(pred.shape) if hasattr(pred, "shape") else np.shape(pred)
    if shape != ():
        raise TypeError(f"{op}: the predicate must be a scalar (shape ()), got shape {shape}; "
                        "reduce it first (cnp.all / cnp.any)")



def _entries(res: Any, n: int) -> list:
    if isinstance(res, Box):
        return [tuple_get(res, index=i) for i in range(n)]
    return list(res)


def _leaf_specs(values: list) -> list:
    return [_spec(v) for v in values]
