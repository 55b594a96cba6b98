"""Fusion of elementwise arithmetic in compiled programs (graph.fusion; numba optional)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.graph import fusion

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
