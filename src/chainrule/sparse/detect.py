"""Structural sparsity detection: trace ``f`` once, then push patterns through its program.

``f`` is recorded by the program tracer that ``cr.compile`` uses
(:func:`chainrule.graph.trace.trace`); each equation's output pattern comes
from its primitive's dependency rule (:mod:`.rules`).  The result holds for
every input of ``x``'s shape and dtype: it is *structural* (``x ** 2`` at
``x = 0`` keeps its diagonal).  A program that reads values of ``x``
(Python ``if`` on them, ``float(x)``...) recorded one branch only, so it is
refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.primitive import Box, registry
from ..graph.ir import Lit, Program, Var
from ..graph.trace import trace
from . import _patterns as pt
from . import rules as rl
from ._scipy import require_scipy

__all__ = ["jacobian_sparsity", "hessian_sparsity", "check_input", "trace_program"]

rl.install(registry)

_VALUE_ERROR = (
    "{fname}: f reads the values of x (Python branching such as `if x[0] > 0:`, or float(), "
    "bool(), int(), np.asarray() on something computed from x), but a sparsity pattern is "
    "structural and cannot depend on values. Write value-dependent choices with "
    "chainrule.numpy.where(cond, a, b) (both branches count), or use a dense Jacobian "
    "(cr.jacfwd / cr.jacrev)"
)


def check_input(fname: str, x: Any) -> np.ndarray:
    """``x`` as one NumPy array, or a TypeError when it is several arrays."""
    if isinstance(x, (tuple, list, dict)):
        leaves = list(x.values()) if isinstance(x, dict) else list(x)
        if any(isinstance(v, (np.ndarray, Box, tuple, list, dict)) for v in leaves):
            raise TypeError(
                f"{fname}: f must be a function of ONE array; pack several arrays into one "
                "(e.g. z = np.concatenate([x.ravel(), y.ravel()]) and unpack them inside f "
                "with slicing and reshape)"
            )
    while isinstance(x, Box):
        x = x.data
    x = np.asarray(x)
    return x


def trace_program(fname: str, f: Callable, x: np.ndarray) -> tuple[Program, Any]:
    """Record ``f(x)``: its program and its one output (a :class:`Var` or :class:`Lit`)."""
    try:
        program, _, values = trace(f, x)
    except TypeError as exc:
        if "positional argument" in str(exc):
            raise TypeError(
                f"{fname}: f must be a function of ONE array ({exc}); pack several arrays "
                "into one and unpack them inside f with slicing and reshape"
            ) from exc
        raise
    if len(program.outputs) != 1:
        raise TypeError(
            f"{fname}: f must return one array (it returned {len(program.outputs)} values); "
            "concatenate the results into one array"
        )
    return program, program.outputs[0]


def _shape(v: Any) -> tuple:
    s = v.shape
    return () if s is None else tuple(s)


def _pattern_of(p: Any) -> Any:
    return p.P if isinstance(p, pt.PerBatch) else p


def _interactions(kind: str, args: list, out: Any, out_shape: Any) -> list:
    """Second-order couplings (pattern pairs ``A, B``: ``A.T @ B``) of one equation."""
    if kind == "linear" or out is None:
        return []
    if kind == "nonlinear":
        p = _pattern_of(out)
        return [(p, p)]
    if kind == "matmul":
        if args[0].pattern is None or args[1].pattern is None:
            return []
        exact = rl.matmul_couplings(args)
        return exact if exact is not None else [(_pattern_of(out),) * 2]
    if kind == "bilinear":
        return [(_pattern_of(out),) * 2] if sum(a.pattern is not None for a in args[:2]) > 1 \
            else []
    gathered = [rl._broadcast_gather(a, tuple(out_shape)) for a in args[:2]]
    a, b = gathered
    if kind == "multiply":
        return [(a, b)] if a is not None and b is not None else []
    if kind == "divide":
        terms = []
        if b is not None:
            terms.append((b, b))
            if a is not None:
                terms.append((a, b))
        return terms
    raise AssertionError(f"unknown second-order kind {kind!r}")


def _needed(program: Program, out: Any) -> set:
    """Ids of the variables that the output is computed from."""
    need = {out.id} if isinstance(out, Var) else set()
    for eq in reversed(program.eqns):
        if eq.out is not None and eq.out.id in need:
            need.update(i.id for i in eq.inputs if isinstance(i, Var))
    return need


def propagate(fname: str, program: Program, out: Any, n: int, hessian: bool = False
              ) -> tuple[Any, Any]:
    """The output's pattern ``(m, n)`` and, with ``hessian``, the coupling pairs' union."""
    in_var = program.inputs[0]
    pats: dict[int, Any] = {in_var.id: pt.identity(n)}
    deps = {in_var.id}
    consts: dict[int, Any] = {}
    need = _needed(program, out) if hessian else None
    last_use: dict[int, int] = {}
    for k, eq in enumerate(program.eqns):
        for i in eq.inputs:
            if isinstance(i, Var):
                last_use[i.id] = k
    keep = out.id if isinstance(out, Var) else None
    couplings = []
    for k, eq in enumerate(program.eqns):
        args = []
        anydep = False
        for i in eq.inputs:
            if isinstance(i, Lit):
                args.append(rl.Arg(None, _shape(i), i.value, False))
            else:
                d = i.id in deps
                anydep = anydep or d
                args.append(rl.Arg(pats.get(i.id), _shape(i), consts.get(i.id), d, i.dtype))
        if eq.out is None:  # a guard: the traced program read a value
            if anydep:
                raise ValueError(_VALUE_ERROR.format(fname=fname))
            continue
        if not anydep:  # computed from constants only: keep its value for the rules
            rl.fold_constant(eq, args, consts)
            continue
        deps.add(eq.out.id)
        result = rl.pattern_of(eq, args)
        if result is not None:
            pats[eq.out.id] = result
            if need is not None and eq.out.id in need:  # (need exists iff hessian)
                kind = rl.HESSIAN_RULES.get(eq.prim.name, "nonlinear")
                for a, b in _interactions(kind, args, result, eq.out.shape):
                    couplings.append(pt.outer_union(a, b))
        for i in eq.inputs:  # forget patterns nobody reads any more
            if isinstance(i, Var) and last_use.get(i.id) == k and i.id != keep:
                pats.pop(i.id, None)
    if isinstance(out, Var):
        result = pats.get(out.id)
    else:
        result = None
    m = pt.size_of(_shape(out))
    if isinstance(result, pt.PerBatch):
        result = result.expand(_shape(out))
    if result is None:
        result = pt.empty(m, n)
    hess = None
    if hessian:
        total = pt.union(*couplings)
        total = pt.empty(n, n) if total is None else pt.union(total, total.T.tocsr())
        hess = total
    return result, hess


def _as_array(P: Any) -> Any:
    sp = require_scipy("cr.sparse")
    P = P.tocsr()
    P.sort_indices()
    return sp.csr_array(P, dtype=bool)


def jacobian_sparsity(f: Callable, x: Any) -> Any:
    """The structural sparsity pattern of the Jacobian of ``f`` at inputs shaped like ``x``.

    Parameters
    ----------
    f : callable taking one array (any shape, flattened in C order) and returning one array.
    x : an example input (its shape and dtype matter, not its values).

    Returns
    -------
    A boolean ``scipy.sparse.csr_array`` of shape ``(out.size, x.size)``.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> P = cr.sparse.jacobian_sparsity(lambda x: x[1:] * x[:-1], np.ones(4))
    >>> P.toarray().astype(int)
    array([[1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    """
    require_scipy("cr.sparse.jacobian_sparsity")
    x = check_input("jacobian_sparsity", x)
    program, out = trace_program("jacobian_sparsity", f, x)
    P, _ = propagate("jacobian_sparsity", program, out, x.size)
    return _as_array(P)


def hessian_sparsity(f: Callable, x: Any) -> Any:
    """The structural sparsity pattern of the Hessian of scalar ``f`` (symmetric CSR).

    Second-order structure is propagated with the first: each primitive says
    which of its inputs' elements interact nonlinearly (``x * y`` couples
    ``x`` and ``y``, ``sin(x)`` couples ``x`` with itself, ``+`` couples
    nothing).

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> f = lambda x: cnp.sum(x[1:] * x[:-1]) + cnp.sum(cnp.sin(x))
    >>> cr.sparse.hessian_sparsity(f, np.ones(3)).toarray().astype(int)
    array([[1, 1, 0],
           [1, 1, 1],
           [0, 1, 1]])
    """
    require_scipy("cr.sparse.hessian_sparsity")
    x = check_input("hessian_sparsity", x)
    program, out = trace_program("hessian_sparsity", f, x)
    if pt.size_of(_shape(out)) != 1:
        raise ValueError(
            f"hessian_sparsity: f must return a scalar (got shape {_shape(out)}); for "
            "vector-valued f use jacobian_sparsity"
        )
    _, H = propagate("hessian_sparsity", program, out, x.size, hessian=True)
    return _as_array(H)
