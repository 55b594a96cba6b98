"""Dependency rules of the control-flow primitives: patterns pushed through their bodies.

A staged loop or branch (``scan``, ``while``, ``cond``) holds its body as a
program; its output patterns come from running the other primitives' rules
over that program:

* ``scan``: step by step (the trip count is the static length of ``xs``),
  the carries' patterns flowing from one step to the next, ``ys`` stacked;
* ``while``: the trip count is not structural, so the carries' patterns are
  iterated to a fixed point (the union over every possible trip count);
* ``cond``: the branch a constant predicate picks, else the union of both.

The result of a tuple-valued primitive is a :class:`MemberPatterns` (one
pattern per tuple entry, read by ``tuple_get``).  Its second-order structure
stays the safe over-estimate ("nonlinear": every dependency of the loop
couples with every other).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..graph.ir import Program, Var
from . import _patterns as pt
from . import rules as rl

__all__ = ["MemberPatterns", "run_program", "scan_rule", "while_rule", "cond_rule"]

#: Fixed-point iterations of a while loop's carries before giving up (conservative then).
MAX_FIXED_POINT = 200


class MemberPatterns(pt.PerBatch):
    """Patterns of a tuple-valued result, one per entry (``None``: depends on nothing).

    As a :class:`~._patterns.PerBatch` it is the union row of every entry (what rules that
    know nothing of the entries, and second-order couplings, see)."""

    __slots__ = ("members",)

    def __init__(self, members: list, n: int) -> None:
        rows = [_collapse(p) for p in members if p is not None]
        super().__init__(pt.union(*rows) if rows else pt.empty(1, n), ())
        self.members = list(members)


def _collapse(p: Any) -> Any:
    """One row: every dependency of ``p``."""
    return pt.labels_matrix(np.zeros(p.shape[0], np.int64), 1) @ p if p.shape[0] else \
        pt.empty(1, p.shape[1])


def _full(a: rl.Arg) -> Any:
    p = a.pattern
    if isinstance(p, pt.PerBatch):
        return p.expand(tuple(a.shape))
    return p


def run_program(program: Program, patterns: list, values: list) -> tuple[list, list]:
    """Output patterns (and values of the outputs that depend on nothing) of ``program``."""
    pats: dict[int, Any] = {}
    consts: dict[int, Any] = {}
    deps: set[int] = set()
    for var, p, v in zip(program.inputs, patterns, values):
        if p is not None:
            pats[var.id] = p
            deps.add(var.id)
        elif v is not None:
            consts[var.id] = v
    for eq in program.eqns:
        args = []
        anydep = False
        for i in eq.inputs:
            if isinstance(i, Var):
                d = i.id in deps
                anydep = anydep or d
                args.append(rl.Arg(pats.get(i.id), _shape(i), consts.get(i.id), d))
            else:
                args.append(rl.Arg(None, _shape(i), i.value, False))
        if eq.out is None:
            if anydep:
                raise ValueError("sparsity: a loop or branch body reads the values of x "
                                 "(Python branching on them); write it with cr.cond or "
                                 "chainrule.numpy.where")
            continue
        if not anydep:
            rl.fold_constant(eq, args, consts)
            continue
        deps.add(eq.out.id)
        result = rl.pattern_of(eq, args)
        if result is not None:
            pats[eq.out.id] = result
    out_p, out_v = [], []
    for o in program.outputs:
        if isinstance(o, Var):
            p = pats.get(o.id)
            if isinstance(p, pt.PerBatch) and o.shape is not None:
                p = p.expand(tuple(o.shape))
            out_p.append(p)
            out_v.append(consts.get(o.id))
        else:
            out_p.append(None)
            out_v.append(o.value)
    return out_p, out_v


def _shape(v: Any) -> Any:
    s = v.shape
    return () if s is None else tuple(s)


def _width(args: list) -> int:
    for a in args:
        p = a.pattern
        if p is not None:
            return (p.P if isinstance(p, pt.PerBatch) else p).shape[1]
    return 0


def _union2(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return pt.union(a, b)


def _stack(parts: list, size: int, n: int) -> Any:
    if all(p is None for p in parts):
        return None
    sp = pt.sp
    return sp.vstack([p if p is not None else pt.empty(size, n) for p in parts], format="csr")


def scan_rule(args: list, out_shape: Any, params: dict, prim: Any) -> Any:
    n_c, n_x = params["n_carry"], params["n_xs"]
    prog = params["body"].program
    n = _width(args)
    carry = [_full(a) for a in args[:n_c]]
    c_vals = [a.value for a in args[:n_c]]
    xs = args[n_c:n_c + n_x]
    caps = args[n_c + n_x:]
    steps = xs[0].shape[0] if n_x else params["length"]
    x_full = [_full(a) for a in xs]
    x_size = [pt.size_of(tuple(a.shape[1:])) for a in xs]
    n_y = len(params["y_specs"])
    ys: list = [[] for _ in range(n_y)]
    kept: list = [[] for _ in range(n_c)]
    order = range(steps - 1, -1, -1) if params["reverse"] else range(steps)
    for t in order:
        x_p = [None if p is None else pt.gather(p, np.arange(t * s, (t + 1) * s))
               for p, s in zip(x_full, x_size)]
        x_v = [None if a.value is None else np.asarray(a.value)[t] for a in xs]
        for k in range(n_c):
            kept[k].append(carry[k])
        outs, vals = run_program(prog, carry + x_p + [_full(a) for a in caps],
                                 c_vals + x_v + [a.value for a in caps])
        carry, c_vals = outs[:n_c], vals[:n_c]
        for k in range(n_y):
            ys[k].append(outs[n_c + k])
    if params["reverse"]:
        for lst in ys + kept:
            lst.reverse()
    members = list(carry)
    members += [_stack(parts, pt.size_of(params["y_specs"][k][0]), n)
                for k, parts in enumerate(ys)]
    if params.get("keep_carries"):
        members += [_stack(parts, pt.size_of(tuple(args[k].shape)), n)
                    for k, parts in enumerate(kept)]
    return MemberPatterns(members, n)


def while_rule(args: list, out_shape: Any, params: dict, prim: Any) -> Any:
    n_c, n_cond = params["n_carry"], params["n_cond"]
    prog = params["body"].program
    n = _width(args)
    carry = [_full(a) for a in args[:n_c]]
    caps = args[n_c + n_cond:]
    for _ in range(MAX_FIXED_POINT):
        outs, _ = run_program(prog, carry + [_full(a) for a in caps],
                              [None] * n_c + [a.value for a in caps])
        new = [_union2(c, o) for c, o in zip(carry, outs)]
        if all((a is None and b is None) or (a is not None and b is not None and a.nnz == b.nnz)
               for a, b in zip(carry, new)):
            return MemberPatterns(new, n)
        carry = new
    return rl.conservative(args, out_shape, params, prim)


def cond_rule(args: list, out_shape: Any, params: dict, prim: Any) -> Any:
    pred, rest = args[0], args[1:]
    n_ops, n_true = params["n_ops"], params["n_true"]
    n = _width(args)
    ops = rest[:n_ops]
    t_caps, f_caps = rest[n_ops:n_ops + n_true], rest[n_ops + n_true:]

    def branch(sub: Any, caps: list) -> list:
        ins = ops + caps
        return run_program(sub.program, [_full(a) for a in ins], [a.value for a in ins])[0]

    if not pred.dep and pred.value is not None:
        taken = params["true_branch"] if bool(pred.value) else params["false_branch"]
        return MemberPatterns(branch(taken, t_caps if bool(pred.value) else f_caps), n)
    t_out = branch(params["true_branch"], t_caps)
    f_out = branch(params["false_branch"], f_caps)
    return MemberPatterns([_union2(a, b) for a, b in zip(t_out, f_out)], n)


for _name, _rule in (("scan", scan_rule), ("while", while_rule), ("cond", cond_rule)):
    rl.DEPENDENCY_RULES[_name] = _rule
    rl.HESSIAN_RULES[_name] = "nonlinear"
