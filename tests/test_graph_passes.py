"""Program IR, passes (each on its own) and the executor (generated code, buffer reuse)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core.primitive import registry
from chainrule.graph import (
    Equation,
    Lit,
    Program,
    Var,
    cse,
    dce,
    fold_constants,
    generate,
    optimize,
    plan_buffers,
    simplify,
    trace,
)

P = registry
RNG = np.random.default_rng(1)


def _prog(f, *args):
    return trace(f, *args)[0]


def _run(program, *args, **kw):
    return generate(program, **kw)(*args)


def _names(program):
    return [e.prim.name for e in program.eqns]


def test_trace_records_equations_and_prints():
    prog = _prog(lambda x: cnp.sum(cnp.sin(x) * 2.0), np.ones(3))
    assert _names(prog) == ["sin", "multiply", "reduce_sum"]
    text = str(prog)
    assert text.splitlines()[0] == "program(a:f64[3]) {"
    assert "b:f64[3] = sin a" in text and "multiply b 2.0" in text
    assert "reduce_sum[axes=(-1,), keepdims=False] c" in text
    assert text.rstrip().endswith("return (d,)\n}") or text.rstrip().endswith("}")


def test_dce_removes_unused_equations():
    def f(x):
        unused = cnp.exp(x) * 3.0  # noqa: F841
        return cnp.sin(x)

    prog = _prog(f, np.ones(2))
    assert _names(prog) == ["exp", "multiply", "sin"]
    out = dce(prog)
    assert _names(out) == ["sin"]
    assert _names(prog) == ["exp", "multiply", "sin"]  # the input program is not modified
    x = RNG.standard_normal(2)
    assert_allclose(_run(out, x)[0], np.sin(x))


def test_cse_merges_duplicates():
    prog = _prog(lambda x: cnp.sin(x) * cnp.sin(x) + cnp.sin(x), np.ones(3))
    assert _names(prog).count("sin") == 3
    out = cse(prog)
    assert _names(out).count("sin") == 1
    assert len(out.eqns) == 3
    x = RNG.standard_normal(3)
    assert_allclose(_run(out, x)[0], np.sin(x) ** 2 + np.sin(x), rtol=1e-15)
    # different parameters are not merged
    p2 = cse(_prog(lambda x: cnp.sum(x, axis=0) + cnp.sum(x, axis=1), np.ones((2, 2))))
    assert _names(p2).count("reduce_sum") == 2


def test_constant_folding():
    # Tracing computes what depends on no input right away; programs built by hand (or by
    # other passes) may still hold equations on constants only.
    c = np.array([1.0, 2.0, 3.0])
    x, e, s, y = (Var((3,), np.dtype(np.float64)) for _ in range(4))
    prog = Program([x], [
        Equation(P["exp"], [Lit(c)], {}, e),
        Equation(P["add"], [e, Lit(1.0)], {}, s),
        Equation(P["multiply"], [x, s], {}, y),
    ], [y, s])
    out = fold_constants(prog)
    assert _names(out) == ["multiply"]
    lit = out.eqns[0].inputs[1]
    assert isinstance(lit, Lit)
    assert_allclose(lit.value, np.exp(c) + 1.0)
    assert isinstance(out.outputs[1], Lit)
    a = RNG.standard_normal(3)
    got = _run(out, a)
    assert_allclose(got[0], a * (np.exp(c) + 1.0))
    assert_allclose(got[1], np.exp(c) + 1.0)


def test_simplify_removes_exact_identities():
    def f(x):
        a = x * 1.0
        b = 1.0 * a + 0.0
        c = b - 0.0
        d = c / 1.0
        e = cnp.transpose(cnp.transpose(d))
        return cnp.reshape(e, (2, 3))

    x = RNG.standard_normal((2, 3))
    prog = _prog(f, x)
    assert _names(prog) == ["multiply", "multiply", "add", "subtract", "divide", "transpose",
                            "transpose", "reshape"]
    out = dce(simplify(prog))
    assert out.eqns == []
    assert out.outputs[0] is out.inputs[0]
    assert_allclose(_run(out, x)[0], x)


def test_simplify_keeps_what_changes_the_value():
    x32 = np.ones(3, dtype=np.float32)
    # multiplying by a float64 array of ones promotes: not an identity
    prog = _prog(lambda x: x * np.ones(3), x32)
    assert _names(simplify(prog)) == ["multiply"]
    # broadcasting against ones changes the shape: not an identity
    prog = _prog(lambda x: x + np.zeros((2, 3)), np.ones(3))
    assert _names(simplify(prog)) == ["add"]
    # two transposes that compose to a real permutation become one
    prog = _prog(lambda x: cnp.transpose(cnp.transpose(x, (1, 2, 0)), (1, 0, 2)),
                 np.ones((2, 3, 4)))
    out = dce(simplify(prog))
    assert _names(out) == ["transpose"]
    x = RNG.standard_normal((2, 3, 4))
    assert_allclose(_run(out, x)[0], x.transpose(1, 2, 0).transpose(1, 0, 2))
    # reshape of a reshape is one reshape
    out = dce(simplify(_prog(lambda x: cnp.reshape(cnp.reshape(x, (6,)), (3, 2)),
                             np.ones((2, 3)))))
    assert _names(out) == ["reshape"]
    # -(-x) is x
    assert dce(simplify(_prog(lambda x: cnp.negative(-x), np.ones(2)))).eqns == []


def test_optimize_keeps_values():
    f = cr.value_and_grad(lambda x: cnp.sum(cnp.tanh(x) * cnp.exp(-x**2) + cnp.log1p(x**2)))
    x = RNG.standard_normal(50)
    prog = _prog(f, x)
    out = optimize(prog)
    assert len(out.eqns) < len(prog.eqns)
    for a, b in zip(_run(prog, x), _run(out, x)):
        assert_allclose(a, b, rtol=1e-14)


def test_buffer_reuse_gives_the_same_results():
    def f(x):
        a = cnp.sin(x) * 2.0
        b = cnp.exp(a) + a
        c = cnp.tanh(b) * a
        return cnp.sum(c * c), c + 1.0

    x = RNG.standard_normal(300)
    prog = optimize(_prog(f, x))
    assign, specs = plan_buffers(prog, min_size=0)
    assert specs and len(specs) < len(assign)  # dead buffers were handed on
    plain = generate(prog, buffers=False)
    buffered = generate(prog, min_buffer_size=0)
    assert "out=_b" in buffered.source and "out=" not in plain.source
    for _ in range(2):  # buffers are reused across calls too
        for a, b in zip(plain(x), buffered(x)):
            assert_allclose(a, b, rtol=0, atol=0)
    r1 = buffered(x)[1]
    r2 = buffered(x * 2)[1]
    assert not np.shares_memory(r1, r2)  # outputs never live in buffers
    assert_allclose(r1, plain(x)[1], rtol=0, atol=0)


def test_buffers_respect_views():
    def f(x):
        a = cnp.exp(x)
        t = a.T          # a view of a's buffer
        b = cnp.sin(x)   # must not take a's buffer while t is alive
        return cnp.sum(t * 2.0) + cnp.sum(b)

    x = RNG.standard_normal((20, 20))
    prog = _prog(f, x)
    out = generate(prog, min_buffer_size=0)(x)[0]
    assert_allclose(out, np.sum(np.exp(x).T * 2.0) + np.sum(np.sin(x)), rtol=1e-13)
    # an output that is a view of an intermediate never shares a buffer
    g = cr.compile(lambda x: cnp.reshape(cnp.exp(x) * 2.0, (-1,)), min_buffer_size=0)
    r1 = g(x)
    r2 = g(x + 1.0)
    assert not np.shares_memory(r1, r2)
    assert_allclose(r1, (np.exp(x) * 2.0).ravel())


def test_hand_built_program_and_effects():
    x = Var((3,), np.dtype(np.float64))
    y = Var((3,), np.dtype(np.float64))
    z = Var((3,), np.dtype(np.float64))
    prog = Program([x], [Equation(P["sin"], [x], {}, y), Equation(P["add"], [y, Lit(1.0)], {}, z)],
                   [z, Lit(7)])
    a = RNG.standard_normal(3)
    out = generate(prog)(a)
    assert_allclose(out[0], np.sin(a) + 1.0)
    assert out[1] == 7
    with pytest.raises(TypeError):
        generate(prog)()


def test_generated_code_is_straight_line_python():
    exe = cr.compile(cr.value_and_grad(lambda x: cnp.sum(cnp.sin(x) * 1.0001 + 0.1 * x))).lower(
        np.array(0.5))
    src = exe.source
    assert src.startswith("def run(v0):")
    assert "for " not in src and "Tensor" not in src
    assert "* 1.0001" in src and "_sin(v0)" in src and "_cos(v0)" in src


def _bitwise_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_elementwise_ops_read_the_source_of_a_broadcast_when_that_changes_nothing():
    from chainrule.graph.passes import drop_broadcasts

    a, b = RNG.standard_normal((1, 4)), RNG.standard_normal((3, 4))
    c = RNG.standard_normal((3, 1))
    # needed: both operands broadcast (the result would be (1, 4) without them)
    keep = _prog(lambda a: cnp.broadcast_to(a, (3, 4)) + cnp.broadcast_to(a * 2.0, (3, 4)), a)
    # not needed: the other operand has the full shape; c broadcasts the other way
    drop = _prog(lambda a, b, c: cnp.broadcast_to(a, (3, 4)) * b
                 - cnp.maximum(cnp.broadcast_to(c, (3, 4)), b), a, b, c)
    kept = dce(drop_broadcasts(keep))
    assert _names(kept).count("broadcast_to") == 1
    assert _bitwise_equal(_run(kept, a)[0], _run(keep, a)[0])
    dropped = dce(drop_broadcasts(drop))
    assert "broadcast_to" not in _names(dropped)
    assert _bitwise_equal(_run(dropped, a, b, c)[0], _run(drop, a, b, c)[0])
    assert _run(dropped, a, b, c)[0].shape == (3, 4)


def test_repeated_guards_are_dropped_and_still_guard():
    def f(x, y):
        # y's values are read twice (two fancy indexes): two identical guards
        return cnp.sum(x[np.arange(4), y]) + cnp.sum(x[np.arange(4), y] * 2.0)

    x = RNG.standard_normal((4, 3))
    y = np.array([0, 2, 1, 2])
    g = cr.compile(f)
    assert _bitwise_equal(g(x, y), f(x, y).data)
    assert sum(e.out is None for e in g.program(x, y).eqns) == 1
    y2 = np.array([1, 1, 0, 2])
    assert _bitwise_equal(g(x, y2), f(x, y2).data)  # a different y: re-traced
    assert g.trace_count == 2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_calls_give_the_primitives_results(dtype):
    # reductions as ufunc.reduce, logsumexp by its own lean np_impl, getitem by index arrays
    # as take, sum_to as add.reduce
    x = RNG.standard_normal((6, 5)).astype(dtype)
    x[1] = [np.inf, 1.0, 2.0, -np.inf, 0.0]
    x[2] = -np.inf
    x[3, :2] = np.nan
    rows, cols = np.arange(6), np.array([4, 0, 1, 1, 3, -1])

    def f(x):
        return (cnp.max(x, axis=1, keepdims=True), cnp.min(x, axis=0), cnp.sum(x, axis=(0, 1)),
                cnp.logsumexp(x, axis=1), cnp.logsumexp(x, axis=0, keepdims=True),
                x[rows, cols], x[rows[:, None], cols[None, :3]])

    with np.errstate(all="ignore"):
        program = _prog(f, x)
        src = generate(program).source
        for name in ("maximum_reduce", "minimum_reduce", "add_reduce", "logsumexp", ".take("):
            assert name in src
        for got, want in zip(_run(program, x), f(x)):
            assert _bitwise_equal(got, want.data)
    vg = cr.compile(cr.value_and_grad(lambda x: cnp.sum(cnp.sum(x[:1] + x, axis=0) ** 2)))
    x = np.abs(x) + 1.0
    assert "add_reduce" in vg.source(x)  # sum_to (unbroadcasting x[:1]'s cotangent)
    for got, want in zip(cr.pytree.tree_leaves(vg(x)), cr.pytree.tree_leaves(
            cr.value_and_grad(lambda x: cnp.sum(cnp.sum(x[:1] + x, axis=0) ** 2))(x))):
        assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6 if dtype == np.float32
                        else 1e-14)


def test_memory_order_names_the_layout_of_a_dense_permuted_array():
    from chainrule.graph.executor import memory_order

    a = np.empty((2, 3, 4, 5))
    assert memory_order(a) is None and memory_order(a[:, :, :2]) is None  # C order
    nhwc = np.empty((2, 4, 5, 3)).transpose(0, 3, 1, 2)
    assert memory_order(nhwc) == (0, 2, 3, 1)
    assert memory_order(np.empty((2, 1, 4, 3)).transpose(0, 3, 1, 2)) == (0, 2, 3, 1)
    assert memory_order(np.float64(1.0)) is None


def test_buffers_take_the_layout_of_the_values_they_hold():
    # x is channels last (as a convolution's result): its elementwise results keep that
    # layout in their buffers, first call (no buffers, layouts noted) and later ones alike
    x = np.ascontiguousarray(RNG.standard_normal((4, 8, 8, 16))).transpose(0, 3, 1, 2)

    def f(x):
        a = cnp.maximum(x * 2.0, 0.0)
        return cnp.sum(cnp.exp(a) * a)

    prog = optimize(_prog(f, x))
    assign, specs = plan_buffers(prog, min_size=0)
    _, shaped = plan_buffers(prog, min_size=0, layouts={v: (0, 2, 3, 1) for v in assign})
    assert all(len(s) == 2 for s in specs) and all(s[2] == (0, 2, 3, 1) for s in shaped)
    exe = generate(prog, min_buffer_size=0)
    want = generate(prog, buffers=False)(x)[0]
    for _ in range(3):
        assert_allclose(exe(x)[0], want, rtol=1e-15)
    assert exe._specs and all(len(s) == 3 and s[2] == (0, 2, 3, 1) for s in exe._specs)
