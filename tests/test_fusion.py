"""Fusion of elementwise arithmetic in compiled programs (graph.fusion; numba optional)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.graph import fusion
from chainrule.graph.executor import generate
from chainrule.graph.passes import optimize
from chainrule.graph.trace import trace

N = 2 * fusion.MIN_FUSE_SIZE


def w3(x):
    return cnp.sum(cnp.tanh(x) * cnp.exp(-x**2) + cnp.log1p(x**2))


def relu_net(w, x):
    # maximum's reverse rule on a traced program: where(x > y, g, where(x == y, g/2, 0))
    h = cnp.maximum(x * w - 0.5, 0.0)
    return cnp.sum(h * h / (x * x + 1.0))


def _fused(f, *args):
    return [e for e in cr.compile(f).program(*args).eqns if e.prim.name.startswith("fused#")]


def _unfused(f, *args, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(fusion, "numba", None)
        g = cr.compile(f)
        return g(*args), [e.prim.name for e in g.program(*args).eqns]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_programs_give_exactly_the_unfused_results(dtype, monkeypatch):
    pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(N).astype(dtype)
    w = rng.standard_normal(N).astype(dtype)
    x[:10] = 0.5 / w[:10]  # ties of maximum: the derivative is shared there
    cases = [(cr.value_and_grad(w3), (x,)), (cr.value_and_grad(relu_net), (w, x))]
    for f, args in cases:
        assert _fused(f, *args), "nothing was fused"
        fused = cr.compile(f)(*args)
        plain, names = _unfused(f, *args, monkeypatch=monkeypatch)
        assert not any(n.startswith("fused#") for n in names)
        assert np.asarray(fused[0]).dtype == dtype
        np.testing.assert_array_equal(fused[0], plain[0])
        np.testing.assert_array_equal(fused[1], plain[1])
        eager = f(*args)
        np.testing.assert_allclose(fused[1], eager[1], rtol=1e-6 if dtype == np.float32 else 1e-13)


def test_without_numba_the_program_is_left_alone(monkeypatch):
    monkeypatch.setattr(fusion, "numba", None)
    x = np.linspace(-1.0, 1.0, N)
    f = cr.compile(cr.value_and_grad(w3))
    assert not _fused(cr.value_and_grad(w3), x)
    v, g = f(x)
    ref = cr.value_and_grad(w3)(x)
    np.testing.assert_allclose(v, ref[0], rtol=1e-13)
    np.testing.assert_allclose(g, ref[1], rtol=1e-13)
    assert "out=" in f.source(x)  # the NumPy fallback computes into reused buffers


def test_small_arrays_and_transcendentals_are_not_fused():
    pytest.importorskip("numba")
    assert not _fused(cr.value_and_grad(w3), np.linspace(-1.0, 1.0, 100))
    names = {e.prim.name for e in cr.compile(cr.value_and_grad(w3)).program(
        np.linspace(-1.0, 1.0, N)).eqns}
    assert {"tanh", "exp", "log1p"} <= names


def test_fusion_module_imports_without_numba():
    assert importlib.import_module("chainrule.graph.fusion").available() in (True, False)


def test_fused_loops_write_into_donated_inputs_only_when_that_is_safe():
    pytest.importorskip("numba")
    n = 80  # 6,400 elements: fused
    step = cr.compile(lambda p, g: p - 0.1 * g * g, donate_argnums=0)
    g = np.arange(n * n, dtype=float).reshape(n, n) / n
    step(np.ones((n, n)), g)
    p = np.ones((n, n))
    out = step(p, g)
    assert _fused(lambda p, g: p - 0.1 * g * g, p, g)
    assert out is p
    np.testing.assert_array_equal(out, 1.0 - 0.1 * g * g)
    # reading the donated array transposed: the loop must not overwrite what it still reads
    swap = cr.compile(lambda p: p * 2.0 - cnp.transpose(p) * 0.5, donate_argnums=0)
    a = np.arange(n * n, dtype=float).reshape(n, n)
    swap(a.copy())
    q = a.copy()
    np.testing.assert_array_equal(swap(q), a * 2.0 - a.T * 0.5)


# --- groups: several results, row operands, column sums, a total --------------------------------

M, K = 64, 128  # 8,192 elements: fused


def _optimized(f, *args):
    return optimize(trace(f, *args)[0])


def _bitwise(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _layer(x, w, b):
    # a bias row, maximum, a column sum (bias gradient) and a total, all in one loop
    z = x * w + b
    h = cnp.maximum(z, 0.0)
    return cnp.sum(h, axis=0), z * 2.0, cnp.sum(h * x - 1.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fun", [_layer, lambda x, w, b: cnp.sum(cnp.minimum(x, w) * b)])
def test_groups_give_bitwise_the_unfused_results(dtype, fun, monkeypatch):
    pytest.importorskip("numba")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((M, K)) * 10.0 ** rng.uniform(-6, 6, (M, K))).astype(dtype)
    w = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    x[0, :8] = -0.0
    w[1, :8] = x[1, :8]  # ties of minimum
    x[2, :4] = [np.nan, np.inf, -np.inf, 0.0]
    w[3, :2] = np.nan
    assert _fused(fun, x, w, b), "nothing was fused"
    fused = cr.compile(fun)
    fused(x, w, b)
    got = fused(x, w, b)
    plain, _ = _unfused(fun, x, w, b, monkeypatch=monkeypatch)
    eager = fun(x, w, b)
    for a, p, e in zip(cr.pytree.tree_leaves(got), cr.pytree.tree_leaves(plain),
                       cr.pytree.tree_leaves(eager)):
        assert _bitwise(a, p)
        assert _bitwise(a, np.asarray(e.data if hasattr(e, "data") else e))


def test_one_loop_holds_a_layer_its_column_sum_and_total(monkeypatch):
    pytest.importorskip("numba")
    x, w = np.ones((M, K)), np.ones((M, K))
    b = np.ones(K)
    names = [e.prim.name.split("#")[0] for e in cr.compile(_layer).program(x, w, b).eqns]
    # one loop: z (returned), the column sum of h; the total needs a flat loop: a second one
    assert "maximum" not in names and "sum_to" not in names
    assert names.count("fused") <= 2
    _, plain = _unfused(_layer, x, w, b, monkeypatch=monkeypatch)
    assert len(names) < len(plain)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 127, 128, 129, 4096, 4097, 10_007, 65_536 + 3])
def test_a_fused_total_is_numpys_pairwise_sum_bit_for_bit(n):
    pytest.importorskip("numba")
    rng = np.random.default_rng(n)
    for dtype in (np.float64, np.float32):
        x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8, n)).astype(dtype)
        # (loops for any size here: fusion's threshold is lowered)
        got = fusion.fuse(_optimized(lambda x: cnp.sum(x * 3.0 - x * x), x), min_size=1)
        exe = generate(got)
        assert any(e.prim.name.startswith("fused#") for e in got.eqns)
        assert "reduce_sum" not in [e.prim.name for e in got.eqns]
        assert _bitwise(exe(x)[0], np.sum(x * 3.0 - x * x))
    z = -np.zeros(n)  # NumPy starts from +0.0: a sum of -0.0 is +0.0
    got = fusion.fuse(_optimized(lambda x: cnp.sum(x * 2.0 * 0.5), z), min_size=1)
    assert "reduce_sum" not in [e.prim.name for e in got.eqns]
    assert _bitwise(generate(got)(z)[0], np.sum(z * 2.0 * 0.5))


def test_w3_is_three_numpy_calls_and_two_loops():
    pytest.importorskip("numba")
    x = np.linspace(-2.0, 2.0, N)
    names = [e.prim.name.split("#")[0] for e in
             cr.compile(cr.value_and_grad(w3)).program(x).eqns]
    assert sorted(n for n in names if n not in ("fused", "graph.fused_alloc")) == [
        "exp", "log1p", "tanh"]
    assert names.count("fused") == 2


def test_maximum_gradient_at_ties_and_nan_through_fused_loops(monkeypatch):
    pytest.importorskip("numba")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((M, K))
    x[0, :16] = 0.0  # z == 0: maximum shares the derivative (0.5 each)
    x[1, :4] = -0.0
    b = np.zeros(K)

    def f(x, b):
        return cnp.sum(cnp.maximum(x + b, 0.0) * x)

    vg = cr.value_and_grad(f, argnums=(0, 1))
    got = cr.compile(vg)(x, b)
    plain, _ = _unfused(vg, x, b, monkeypatch=monkeypatch)
    eager = vg(x, b)
    assert _bitwise(got[0], plain[0])
    for a, p, e in zip(got[1], plain[1], eager[1]):
        assert _bitwise(a, p)
        np.testing.assert_allclose(a, e, rtol=1e-14, atol=0)
    g = got[1][0]
    np.testing.assert_array_equal(g[0, :16], 0.0 * 0.5 + 0.0)  # maximum(0, 0) = 0
    expect = np.where(x > 0, 2 * x, np.where(x == 0, 0.5 * x, 0.0))
    np.testing.assert_allclose(g, expect, rtol=1e-14)


def test_fused_loops_with_column_sums_and_donated_inputs():
    pytest.importorskip("numba")
    step = cr.compile(lambda p, g: (p * 0.5 - g, cnp.sum(p * g, axis=0)), donate_argnums=0)
    rng = np.random.default_rng(4)
    p0, g = rng.standard_normal((M, K)), rng.standard_normal((M, K))
    step(p0.copy(), g)
    p = p0.copy()
    new, col = step(p, g)
    np.testing.assert_array_equal(new, p0 * 0.5 - g)
    assert _bitwise(col, np.sum(p0 * g, axis=0))


def _channels_last_pair(seed):
    """Two (4, 16, 9, 9) arrays laid out channels last (as convolutions leave them)."""
    if not fusion.available():
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(seed)
    return tuple(np.ascontiguousarray(rng.standard_normal((4, 9, 9, 16))).transpose(0, 3, 1, 2)
                 for _ in range(2))


def test_fused_loop_over_channels_last_arrays_keeps_their_layout():
    x, y = _channels_last_pair(3)
    f = cr.compile(lambda x, y: ((x > 0.0) * y + x * 2.0) * 0.5)
    want = ((x > 0.0) * y + x * 2.0) * 0.5
    assert "fused" in f.source(x, y)
    for _ in range(3):
        got = f(x, y)
        np.testing.assert_allclose(got, want, rtol=0, atol=0)
        assert got.strides == x.strides  # the loop followed memory order: no transposing
    c = np.ascontiguousarray(y)  # mixed layouts: the loop runs in C order, same values
    np.testing.assert_allclose(f(x, c), ((x > 0.0) * c + x * 2.0) * 0.5, rtol=0, atol=0)


def test_fused_loop_with_several_results_over_channels_last_arrays():
    x, y = _channels_last_pair(4)

    def f(x, y):
        a = x * 2.0 - y
        b = cnp.exp(a)  # (not fused: reads a outside the loop)
        return (a * y + x) * b, cnp.sum(a * y * 3.0)

    g = cr.compile(f)
    want = f(x, y)
    for _ in range(3):
        got = g(x, y)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-15)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
