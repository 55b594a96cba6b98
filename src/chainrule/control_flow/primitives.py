"""The staged control-flow primitives ``scan``, ``while`` and ``cond``: implementations on raw
arrays, derivative rules (reverse, forward) and batching rules, side by side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import numpy as cnp
from ..batching import register_batching_rule, vmap
from ..core.primitive import Box, Primitive
from ..graph.nodes import GRAPH_LEVEL
from ..graph.subprogram import SubProgram, concrete, replay
from ..ops.linalg import tuple_get
from ..remat import _over_batch, python_jvp, substituted
from ..sparse import loops as _sparsity_rules  # noqa: F401  (dependency rules of the loops)
from ..tensor import is_differentiable_dtype
from ..transforms import _raw
from ..transforms import jvp as _jvp
from ..transforms import vjp as _vjp
from .carries import _chain_staged, _entries, _spec
from .python_forms import _cond_python, _scan_python, _while_python

# --- the primitives: implementations on raw arrays ----------------------------------------------

#: The public ``scan`` and ``cond`` (set by ``control_flow.api``, which sits above this module):
#: the reverse of a scan is a scan and the derivative of a branch is a branch, staged or Python
#: as the values involved decide.
public: dict[str, Callable] = {}


def _scan_impl(xp: Any, *args: Any, body: SubProgram, n_carry: int, n_xs: int, length: Any,
               reverse: bool, y_specs: tuple, keep_carries: bool, needs: tuple) -> tuple:
    carry = list(args[:n_carry])
    xs = args[n_carry:n_carry + n_xs]
    caps = list(args[n_carry + n_xs:])
    n = length if n_xs == 0 else int(np.shape(xs[0])[0])
    specs = list(y_specs) + ([(np.shape(c), np.result_type(c)) for c in carry]
                             if keep_carries else [])
    ys = []
    step = body.stepper()
    for t in (range(n - 1, -1, -1) if reverse else range(n)):
        out = step(*carry, *[x[t] for x in xs], *caps)
        ys.append(out[n_carry:] + carry if keep_carries else out[n_carry:])
        carry = out[:n_carry]
    if reverse:
        ys.reverse()
    if n == 0:
        stacked = [np.zeros((0,) + tuple(s), d) for s, d in specs]
    else:
        stacked = [np.stack([y[k] for y in ys]) for k in range(len(specs))]
    return tuple(carry) + tuple(stacked)


def _while_impl(xp: Any, *args: Any, cond: SubProgram, body: SubProgram, n_carry: int,
                n_cond: int) -> tuple:
    carry = list(args[:n_carry])
    c_caps = list(args[n_carry:n_carry + n_cond])
    b_caps = list(args[n_carry + n_cond:])
    test, step = cond.stepper(), body.stepper()
    while bool(test(*carry, *c_caps)[0]):
        carry = step(*carry, *b_caps)
    return tuple(carry)


def _cond_impl(xp: Any, pred: Any, *args: Any, true_branch: SubProgram,
               false_branch: SubProgram, n_ops: int, n_true: int) -> tuple:
    ops = list(args[:n_ops])
    if bool(pred):
        return tuple(true_branch(*ops, *args[n_ops:n_ops + n_true]))
    return tuple(false_branch(*ops, *args[n_ops + n_true:]))


# --- the primitives as Python loops over replayed bodies (for their derivative rules) ----------

def _scan_py(params: dict) -> Callable:
    body, n_c, n_x = params["body"], params["n_carry"], params["n_xs"]
    prog = body.program

    def run(*args: Any) -> tuple:
        caps = list(args[n_c + n_x:])
        xs = args[n_c:n_c + n_x]

        def step(c: Any, x: Any) -> tuple:
            out = replay(prog, list(c) + list(x) + caps)
            kept = tuple(c) if params["keep_carries"] else ()
            return tuple(out[:n_c]), tuple(out[n_c:]) + kept

        xs_t = tuple(xs)
        carry, ys = _scan_python(step, tuple(args[:n_c]), xs_t if n_x else None,
                                 params["length"], params["reverse"])
        return tuple(carry) + tuple(ys)

    return run


def _while_py(params: dict) -> Callable:
    c_prog, b_prog = params["cond"].program, params["body"].program
    n_c, n_cond = params["n_carry"], params["n_cond"]

    def run(*args: Any) -> tuple:
        c_caps = list(args[n_c:n_c + n_cond])
        b_caps = list(args[n_c + n_cond:])
        out = _while_python(lambda v: replay(c_prog, list(v) + c_caps)[0],
                            lambda v: tuple(replay(b_prog, list(v) + b_caps)),
                            tuple(args[:n_c]))
        return tuple(out)

    return run


def _cond_py(params: dict) -> Callable:
    t_prog, f_prog = params["true_branch"].program, params["false_branch"].program
    n_ops, n_true = params["n_ops"], params["n_true"]

    def run(pred: Any, *args: Any) -> tuple:
        ops = list(args[:n_ops])
        t_caps, f_caps = list(args[n_ops:n_ops + n_true]), list(args[n_ops + n_true:])
        out = _cond_python(pred, lambda *o: tuple(replay(t_prog, list(o) + t_caps)),
                           lambda *o: tuple(replay(f_prog, list(o) + f_caps)), tuple(ops))
        return tuple(out)

    return run


def _out_values(out: Any) -> list:
    """The raw entries of a tuple-valued result (shapes and dtypes of each)."""
    raw = concrete(out)
    return [(tuple(np.shape(e)), np.result_type(e)) for e in raw]


def _cotangents(g: Any, specs: list) -> tuple[list, int, tuple]:
    """Cotangents with zeros for the missing ones, and their leading batch axes."""
    present = [(gi, si) for gi, si in zip(g, specs) if gi is not None]
    g0, (s0, _) = present[0]
    nb = len(tuple(g0.shape)) - len(s0)
    leading = tuple(g0.shape[:nb])
    cts = []
    for gi, (si, di) in zip(g, specs):
        if gi is None:
            gi = np.zeros(leading + si, dtype=di if is_differentiable_dtype(di)
                          else _raw(g0).dtype)
        cts.append(gi)
    return cts, nb, leading


def _py_vjp(make_py: Callable) -> Callable:
    """A reverse rule: the pullback of the primitive's Python form (iterations kept)."""

    def rule(g: Any, out: Any, *vals: Any, **params: Any) -> tuple:
        diff = [i for i, v in enumerate(vals) if is_differentiable_dtype(_spec(v)[1])]
        specs = _out_values(out)
        if all(gi is None for gi in g) or not diff:
            return (None,) * len(vals)
        cts, nb, leading = _cotangents(g, specs)
        run = make_py(params)

        def pull(*cts: Any) -> tuple:
            def f_diff(*xs: Any) -> tuple:
                return run(*substituted(vals, diff, xs))

            _, pull_fn = _vjp(f_diff, *[vals[i] for i in diff])
            return tuple(pull_fn(tuple(cts)))

        grads = _over_batch(pull, nb, leading)(*cts)
        result: list = [None] * len(vals)
        for i, gr in zip(diff, grads):
            result[i] = gr
        return tuple(result)

    return rule


def _scan_vjp(g: Any, out: Any, *vals: Any, body: SubProgram, n_carry: int, n_xs: int,
              length: Any, reverse: bool, y_specs: tuple, keep_carries: bool,
              needs: tuple) -> tuple:
    """The reverse of a scan: a scan over the saved carries in the other direction.

    The carries entering each step are the forward scan's extra outputs (or
    are recomputed by a forward scan when it did not keep them), then a
    reverse scan pulls the cotangents back step by step through the VJP of
    the body (a replay of its program); both are ``scan`` calls, so inside a
    compiled program or a graph they are again one operation each.
    """
    n_c, n_x = n_carry, n_xs
    if all(gi is None for gi in g):
        return (None,) * len(vals)
    specs = _out_values(out)
    g0, (s0, _) = next((gi, si) for gi, si in zip(g, specs) if gi is not None)
    nb = len(tuple(g0.shape)) - len(s0)
    leading = tuple(g0.shape[:nb])
    prog = body.program
    carry0, xs, caps = list(vals[:n_c]), list(vals[n_c:n_c + n_x]), list(vals[n_c + n_x:])
    # xs and captured values that no level can ask a cotangent for (data, constants) are
    # skipped; the carry's cotangent is always pulled through (later steps may need it)
    is_diff = [is_differentiable_dtype(_spec(v)[1]) and (nd or i < n_c)
               for i, (v, nd) in enumerate(zip(vals, needs))]
    d_c = [i for i in range(n_c) if is_diff[i]]
    d_x = [i for i in range(n_x) if is_diff[n_c + i]]
    d_k = [i for i in range(len(caps)) if is_diff[n_c + n_x + i]]
    # ys whose cotangent is missing (or that carry none) take no part in the reverse scan
    d_yo = [k for k in range(len(y_specs))
            if g[n_c + k] is not None and is_differentiable_dtype(specs[n_c + k][1])]
    if not (d_c or d_x or d_k):
        return (None,) * len(vals)
    cts = []
    for i in range(n_c):
        gi = g[i]
        if gi is None and i in d_c:  # a zero carry cotangent, shaped like the carry
            gi = (cnp.zeros_like(carry0[i]) if nb == 0 else
                  np.zeros(leading + specs[i][0], dtype=specs[i][1]))
        cts.append(gi)
    cts += list(g[n_c:])
    live = [k for k, c in enumerate(cts) if c is not None]

    n_y = len(y_specs)
    if keep_carries:
        cs = tuple(_entries(out, n_c + n_y + n_c)[n_c + n_y:])
    else:
        def step_with_input(c: Any, x: Any) -> tuple:
            o = replay(prog, list(c) + list(x) + caps)
            return tuple(o[:n_c]), tuple(c)

        # the carry entering every step (stacked in the order of xs)
        _, cs = public["scan"](step_with_input, tuple(carry0), tuple(xs), length, reverse)

    def pull(*live_cts: Any) -> tuple:
        cot: list = [None] * len(cts)
        for k, c in zip(live, live_cts):
            cot[k] = c
        g_c = [cot[i] for i in d_c]
        g_y = [cot[n_c + k] for k in d_yo]
        # cotangents of the kept carries (second-order terms): added where each carry enters
        g_cs = tuple(cot[n_c + n_y + i] if n_c + n_y + i < len(cot) else None for i in d_c)

        def back(carry: tuple, inp: tuple) -> tuple:
            ct_c, ct_k = carry
            c_t, x_t, gy_t, gcs_t = inp

            def f(*dv: Any) -> tuple:
                c = list(c_t)
                x = list(x_t)
                k = list(caps)
                it = iter(dv)
                for i in d_c:
                    c[i] = next(it)
                for i in d_x:
                    x[i] = next(it)
                for i in d_k:
                    k[i] = next(it)
                o = replay(prog, c + x + k)
                return tuple(o[i] for i in d_c) + tuple(o[n_c + j] for j in d_yo)

            primals = ([c_t[i] for i in d_c] + [x_t[i] for i in d_x] + [caps[i] for i in d_k])
            _, pull_fn = _vjp(f, *primals)
            grads = pull_fn(tuple(ct_c) + tuple(gy_t))
            nc_, nx_ = len(d_c), len(d_x)
            new_ct_c = tuple(a if b is None else a + b for a, b in zip(grads[:nc_], gcs_t))
            dx = tuple(grads[nc_:nc_ + nx_])
            new_ct_k = tuple(a + b for a, b in zip(ct_k, grads[nc_ + nx_:]))
            return (new_ct_c, new_ct_k), dx

        zeros_k = tuple(cnp.zeros_like(caps[i]) for i in d_k)
        (ct_c0, ct_k), ct_xs = public["scan"](back, (tuple(g_c), zeros_k),
                                    (cs, tuple(xs), tuple(g_y), g_cs), length, not reverse)
        return tuple(ct_c0) + tuple(ct_xs) + tuple(ct_k)

    grads = _over_batch(pull, nb, leading)(*[cts[k] for k in live])
    result: list = [None] * len(vals)
    order = d_c + [n_c + i for i in d_x] + [n_c + n_x + i for i in d_k]
    for i, gr in zip(order, grads):
        result[i] = gr
    return tuple(result)


def _py_jvp(make_py: Callable) -> Callable:
    """A forward rule: the tangent of the primitive's Python form."""

    def rule(tangents: list, out: Any, *vals: Any, **params: Any) -> tuple:
        return python_jvp(make_py(params), tangents, vals, lambda v: tuple(_spec(v)[0]))

    return rule


def _py_batching(make_py: Callable) -> Callable:
    def rule(size: int, vals: list, dims: list, /, **params: Any) -> tuple:
        out = vmap(make_py(params), in_axes=tuple(dims))(*vals)
        return tuple(out), 0

    return rule


def _zeros_like(x: Any, leading: tuple) -> Any:
    if not leading:
        return cnp.zeros_like(x)
    spec = _spec(x)
    return np.zeros(leading + spec[0], dtype=spec[1])


def _cond_vjp(g: Any, out: Any, pred: Any, *vals: Any, true_branch: SubProgram,
              false_branch: SubProgram, n_ops: int, n_true: int) -> tuple:
    """The reverse of a branch is a branch: ``cond(pred, vjp(true_fun), vjp(false_fun))``."""
    if all(gi is None for gi in g):
        return (None,) * (1 + len(vals))
    specs = _out_values(out)
    g0, (s0, _) = next((gi, si) for gi, si in zip(g, specs) if gi is not None)
    nb = len(tuple(g0.shape)) - len(s0)
    leading = tuple(g0.shape[:nb])
    caps = (list(vals[n_ops:n_ops + n_true]), list(vals[n_ops + n_true:]))
    diff = [i for i, v in enumerate(vals) if is_differentiable_dtype(_spec(v)[1])]
    d_out = [k for k, (_, d) in enumerate(specs) if is_differentiable_dtype(d)]
    if not diff or not d_out:
        return (None,) * (1 + len(vals))
    cts = []
    for k in d_out:
        gk = g[k]
        if gk is None:
            gk = _zeros_like(tuple_get(out, index=k) if isinstance(out, Box) else out[k], leading)
        cts.append(gk)

    def branch_pull(which: int, prog: Any) -> Callable:
        lo = n_ops + (0 if which == 0 else n_true)
        hi = lo + len(caps[which])

        def pull(*ct: Any) -> tuple:
            mine = [i for i in diff if i < n_ops or lo <= i < hi]

            def f(*dv: Any) -> tuple:
                full = list(vals)
                for i, v in zip(mine, dv):
                    full[i] = v
                o = replay(prog, full[:n_ops] + full[lo:hi])
                return tuple(o[k] for k in d_out)

            _, pull_fn = _vjp(f, *[vals[i] for i in mine])
            got = dict(zip(mine, pull_fn(tuple(ct))))
            return tuple(got[i] if i in got else _zeros_like(vals[i], ()) for i in diff)

        return pull

    def pull_both(*ct: Any) -> tuple:
        return public["cond"](pred, branch_pull(0, true_branch.program),
                    branch_pull(1, false_branch.program), *ct)

    grads = _over_batch(pull_both, nb, leading)(*cts)
    result: list = [None] * (1 + len(vals))
    for i, gr in zip(diff, grads):
        result[1 + i] = gr
    return tuple(result)


def _cond_jvp(tangents: list, out: Any, pred: Any, *vals: Any, true_branch: SubProgram,
              false_branch: SubProgram, n_ops: int, n_true: int) -> tuple:
    """The tangent of a branch is a branch of the branches' tangents."""
    live = [i for i, t in enumerate(tangents[1:]) if t is not None]
    t0 = tangents[1 + live[0]]
    nb = len(tuple(t0.shape)) - len(_spec(vals[live[0]])[0])
    leading = tuple(t0.shape[:nb])

    def branch_push(which: int, prog: Any) -> Callable:
        lo = n_ops + (0 if which == 0 else n_true)
        hi = lo + (n_true if which == 0 else len(vals) - n_ops - n_true)

        def push(*ts: Any) -> tuple:
            mine = [(i, t) for i, t in zip(live, ts) if i < n_ops or lo <= i < hi]

            def f(*dv: Any) -> tuple:
                full = list(vals)
                for (i, _), v in zip(mine, dv):
                    full[i] = v
                return tuple(replay(prog, full[:n_ops] + full[lo:hi]))

            if not mine:
                o = f()
                return tuple(_zeros_like(x, ()) for x in o)
            return tuple(_jvp(f, tuple(vals[i] for i, _ in mine), tuple(t for _, t in mine))[1])

        return push

    def push_both(*ts: Any) -> tuple:
        return public["cond"](pred, branch_push(0, true_branch.program),
                    branch_push(1, false_branch.program), *ts)

    return _over_batch(push_both, nb, leading)(*[tangents[1 + i] for i in live])


# --- the reverse of a staged while loop: one operation that keeps its iterations ---------------

def _while_grad_impl(xp: Any, *args: Any, cond: SubProgram, body: SubProgram, back: SubProgram,
                     n_carry: int, n_cond: int, d_c: tuple, d_k: tuple) -> tuple:
    n_b = len(args) - n_carry - n_cond - len(d_c)
    carry = list(args[:n_carry])
    c_caps = list(args[n_carry:n_carry + n_cond])
    b_caps = list(args[n_carry + n_cond:n_carry + n_cond + n_b])
    ct_c = list(args[n_carry + n_cond + n_b:])
    kept = []
    test, step, back_step = cond.stepper(), body.stepper(), back.stepper()
    while bool(test(*carry, *c_caps)[0]):
        kept.append(carry)
        carry = step(*carry, *b_caps)
    ct_k = [np.zeros(np.shape(b_caps[i]), np.result_type(b_caps[i])) for i in d_k]
    for c in reversed(kept):
        out = back_step(*c, *b_caps, *ct_c)
        ct_c = out[:len(d_c)]
        ct_k = [a + b for a, b in zip(ct_k, out[len(d_c):])]
    return tuple(ct_c) + tuple(ct_k)


def _while_grad_py(params: dict) -> Callable:
    """The reverse of a while loop as a Python function of ``(*vals, *cotangents)``: the pullback
    of the loop's Python form (iterations kept), so that it is differentiable again."""
    forward = _while_py(params)
    n_c, n_cond, d_c, d_k = params["n_carry"], params["n_cond"], params["d_c"], params["d_k"]

    def run(*args: Any) -> tuple:
        n_vals = len(args) - len(d_c)
        vals, cts = args[:n_vals], args[n_vals:]
        diff = list(d_c) + [n_c + n_cond + k for k in d_k]

        def f_diff(*xs: Any) -> tuple:
            out = forward(*substituted(vals, diff, xs))
            return tuple(out[i] for i in d_c)

        _, pull_fn = _vjp(f_diff, *[vals[i] for i in diff])
        return tuple(pull_fn(tuple(cts)))

    return run


def _in_graph(values: Any) -> bool:
    for v in values:
        while isinstance(v, Box):
            if v._level == GRAPH_LEVEL:
                return True
            v = v.data
    return False


def _not_in_graphs(rule: Callable) -> Callable:
    """``rule``, refusing static-graph nodes: a Python loop cannot run on values that do not
    exist until the graph runs."""

    def checked(first: Any, out: Any, *vals: Any, **params: Any) -> Any:
        if _in_graph(vals):
            raise NotImplementedError(
                "the reverse pass of a while_loop in a static graph is differentiable once; "
                "for higher orders use cr.fori_loop / cr.scan with a static trip count, or "
                "differentiate the function eagerly or under cr.compile")
        return rule(first, out, *vals, **params)

    return checked


# One operation when staged; its own derivatives come from its Python form (any order; in a
# compiled program the trip count is read, and a new one re-traces).
while_grad_p = Primitive("while_grad", _while_grad_impl,
                         vjp=_not_in_graphs(_py_vjp(_while_grad_py)),
                         jvp=_not_in_graphs(_py_jvp(_while_grad_py)), register=False)
register_batching_rule(while_grad_p, _py_batching(_while_grad_py))


def _while_vjp(g: Any, out: Any, *vals: Any, cond: SubProgram, body: SubProgram, n_carry: int,
               n_cond: int) -> tuple:
    if not any(_chain_staged(v) for v in vals):
        return _py_vjp(_while_py)(g, out, *vals, cond=cond, body=body, n_carry=n_carry,
                                  n_cond=n_cond)
    if all(gi is None for gi in g):
        return (None,) * len(vals)
    specs = _out_values(out)
    g0, (s0, _) = next((gi, si) for gi, si in zip(g, specs) if gi is not None)
    if len(tuple(g0.shape)) != len(s0):
        return _py_vjp(_while_py)(g, out, *vals, cond=cond, body=body, n_carry=n_carry,
                                  n_cond=n_cond)
    n_c = n_carry
    b_caps = list(vals[n_c + n_cond:])
    d_c = tuple(i for i in range(n_c) if is_differentiable_dtype(specs[i][1]))
    d_k = tuple(i for i in range(len(b_caps)) if is_differentiable_dtype(_spec(b_caps[i])[1]))
    prog = body.program

    def back_fn(*args: Any) -> list:
        c = list(args[:n_c])
        k = list(args[n_c:n_c + len(b_caps)])
        ct = list(args[n_c + len(b_caps):])

        def f(*dv: Any) -> tuple:
            cc, kk = list(c), list(k)
            for i, v in zip(d_c, dv[:len(d_c)]):
                cc[i] = v
            for i, v in zip(d_k, dv[len(d_c):]):
                kk[i] = v
            o = replay(prog, cc + kk)
            return tuple(o[i] for i in d_c)

        _, pull_fn = _vjp(f, *[c[i] for i in d_c], *[k[i] for i in d_k])
        return list(pull_fn(tuple(ct)))

    back = SubProgram(back_fn, "while_loop reverse")
    cts = []
    for i in d_c:
        gi = g[i]
        if gi is None:
            gi = cnp.zeros_like(tuple_get(out, index=i)) if isinstance(out, Box) else \
                np.zeros(specs[i][0], specs[i][1])
        cts.append(gi)
    back.first_trace([concrete(v) for v in vals[:n_c]] + [concrete(v) for v in b_caps]
                     + [concrete(c) for c in cts])
    res = while_grad_p(*vals, *cts, cond=cond, body=body, back=back, n_carry=n_c,
                       n_cond=n_cond, d_c=d_c, d_k=d_k)
    grads = _entries(res, len(d_c) + len(d_k))
    result: list = [None] * len(vals)
    for i, gr in zip(d_c, grads[:len(d_c)]):
        result[i] = gr
    for i, gr in zip(d_k, grads[len(d_c):]):
        result[n_c + n_cond + i] = gr
    return tuple(result)


scan_p = Primitive("scan", _scan_impl, vjp=_scan_vjp, jvp=_py_jvp(_scan_py))
while_p = Primitive("while", _while_impl, vjp=_while_vjp, jvp=_py_jvp(_while_py))
cond_p = Primitive("cond", _cond_impl, vjp=_cond_vjp, jvp=_cond_jvp)
register_batching_rule(scan_p, _py_batching(_scan_py))
register_batching_rule(while_p, _py_batching(_while_py))
register_batching_rule(cond_p, _py_batching(_cond_py))
