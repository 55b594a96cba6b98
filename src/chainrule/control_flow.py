"""Structured control flow: ``cond``, ``while_loop``, ``fori_loop`` and ``scan`` (JAX's names).

Two ways to run, chosen per call:

* **Python.**  On plain arrays and under the eager transforms (``grad``,
  ``jvp``, ``jac*``, ``hessian``, ``vmap``, nested) the loop is a Python
  loop over chainrule operations: it runs at Python-loop speed, and every
  transform sees each iteration -- reverse mode through ``while_loop``
  keeps its iterations on the tape (JAX refuses this).  Under ``vmap`` a
  batched predicate cannot choose one path for every example: ``cond``
  evaluates both branches and selects per example, ``while_loop`` runs
  until every example is done and freezes the finished ones.
* **Staged.**  When a value of a ``cr.compile`` trace or a static graph node
  is involved, the loop or branch is ONE primitive (``scan``, ``while``,
  ``cond``) whose parameters hold its body as a
  :class:`~chainrule.graph.subprogram.SubProgram`, replayed by the
  executor: the program does not grow with the trip count, and a trip
  count that depends on the data is recomputed on every call.  Values the
  body closes over become explicit inputs (closure conversion), so the
  derivatives of a compiled or graph program reach them: the reverse of
  ``scan`` (and of ``fori_loop`` with static bounds) is a reverse ``scan``
  over the saved carries; ``while_loop`` and ``cond`` are differentiated
  through their Python form (iterations kept).

Every carry is type-checked: a body whose output carry differs from its
input in structure, shape or dtype, or branches with different outputs,
raise ``TypeError`` naming both.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import numpy as cnp
from .batching import BatchTracer, register_batching_rule, vmap
from .core.primitive import Box, Primitive
from .core.trace import STAGING, no_grad
from .graph.nodes import GRAPH_LEVEL
from .graph.subprogram import NotStageable, SubProgram, concrete, replay, stageable_level
from .graph.trace import Trace
from .ops.linalg import tuple_get
from .pytree import tree_flatten, tree_unflatten
from .remat import _over_batch
from .sparse import loops as _sparsity_rules  # noqa: F401  (dependency rules of the loops)
from .tensor import is_differentiable_dtype
from .transforms import _raw
from .transforms import jvp as _jvp
from .transforms import vjp as _vjp

__all__ = ["cond", "while_loop", "fori_loop", "scan", "NotStageable"]


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


# --- cond ---------------------------------------------------------------------------------------

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


# --- staged forms: one primitive each ------------------------------------------------------------

def _entries(res: Any, n: int) -> list:
    if isinstance(res, Box):
        return [tuple_get(res, index=i) for i in range(n)]
    return list(res)


def _leaf_specs(values: list) -> list:
    return [_spec(v) for v in values]


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


# --- the primitives: implementations on raw arrays ----------------------------------------------

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
                full = list(vals)
                for i, x in zip(diff, xs):
                    full[i] = x
                return run(*full)

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
        _, cs = scan(step_with_input, tuple(carry0), tuple(xs), length, reverse)

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
        (ct_c0, ct_k), ct_xs = scan(back, (tuple(g_c), zeros_k),
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
        live = [i for i, t in enumerate(tangents) if t is not None]
        nb = len(tuple(tangents[live[0]].shape)) - len(tuple(_spec(vals[live[0]])[0]))
        leading = tuple(tangents[live[0]].shape[:nb])
        run = make_py(params)

        def push(*ts: Any) -> tuple:
            def f_live(*xs: Any) -> tuple:
                full = list(vals)
                for i, x in zip(live, xs):
                    full[i] = x
                return run(*full)

            return tuple(_jvp(f_live, tuple(vals[i] for i in live), ts)[1])

        return _over_batch(push, nb, leading)(*[tangents[i] for i in live])

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
        return cond(pred, branch_pull(0, true_branch.program),
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
        return cond(pred, branch_push(0, true_branch.program),
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


def _no_second_order(*args: Any, **params: Any) -> Any:
    raise NotImplementedError(
        "the reverse pass of a while_loop inside a compiled program or a static graph is "
        "differentiable once; for higher orders differentiate the Python form (call the "
        "function eagerly, or use cr.fori_loop / cr.scan with a static trip count)")


while_grad_p = Primitive("while_grad", _while_grad_impl, vjp=_no_second_order,
                         jvp=_no_second_order, register=False)


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
