"""cr.sparse: compressed Jacobians and Hessians against dense ones, colourings, bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")

import chainrule as cr  # noqa: E402
import chainrule.numpy as cnp  # noqa: E402
from chainrule.sparse import coloring as cl  # noqa: E402

_rng = np.random.default_rng(3)


def bratu(x):
    """A 1-D boundary-value residual: tridiagonal Jacobian."""
    inner = x[2:] - 2.0 * x[1:-1] + x[:-2] + 0.1 * cnp.exp(x[1:-1])
    return cnp.concatenate([x[:1], inner, x[-1:] ** 2])


def stencil(n):
    def residual(x):
        u = x.reshape(n, n)
        up = cnp.pad(u, 1)
        lap = up[:-2, 1:-1] + up[2:, 1:-1] + up[1:-1, :-2] + up[1:-1, 2:] - 4.0 * u
        return (lap + u ** 3).reshape(-1)
    return residual


def energy(x):
    return cnp.sum((x[1:] - x[:-1]) ** 2) + cnp.sum(cnp.cosh(x)) + cnp.sum(x[0:-2:3] * x[1:-1:3])


# --- values against dense derivatives -------------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "fwd", "rev"])
def test_jacobian_matches_dense(mode):
    x = _rng.standard_normal(30)
    J = cr.sparse.jacobian(bratu, x, mode=mode)
    assert isinstance(J, sp.csr_array) and J.shape == (30, 30)
    np.testing.assert_allclose(J.toarray(), cr.jacfwd(bratu)(x), rtol=1e-12, atol=1e-12)


def test_jacobian_of_a_stencil_and_wide_and_tall_shapes():
    x = _rng.standard_normal(36)
    np.testing.assert_allclose(cr.sparse.jacobian(stencil(6), x).toarray(),
                               cr.jacfwd(stencil(6))(x), atol=1e-12)

    def wide(v):  # 3 outputs of 12 inputs: rows share no input, reverse mode wins
        return cnp.sum(v.reshape(3, 4) ** 2, axis=1)

    v = _rng.standard_normal(12)
    J = cr.sparse.jacobian_fn(wide, v)
    assert J.mode == "rev" and J.colors == 1
    np.testing.assert_allclose(J(v).toarray(), cr.jacfwd(wide)(v), atol=1e-12)


def test_jacobian_of_an_array_input_and_output_shape():
    x = _rng.standard_normal((4, 5))
    f = lambda a: cnp.sin(a[:, 1:] * a[:, :-1])  # noqa: E731
    J = cr.sparse.jacobian(f, x)
    assert J.shape == (16, 20)
    np.testing.assert_allclose(J.toarray(), np.asarray(cr.jacfwd(f)(x)).reshape(16, 20))


def test_hessian_matches_dense():
    x = _rng.standard_normal(31)
    H = cr.sparse.hessian(energy, x)
    assert isinstance(H, sp.csr_array)
    dense = cr.hessian(energy)(x)
    np.testing.assert_allclose(H.toarray(), dense, rtol=1e-12, atol=1e-12)
    assert abs(H - H.T).max() == 0


def test_fn_reuses_pattern_and_colouring_at_new_points():
    x = _rng.standard_normal(40)
    J = cr.sparse.jacobian_fn(bratu, x)
    assert J.mode in ("fwd", "rev") and J.colors == 3
    assert J.sparsity.dtype == bool and J.sparsity.nnz == 3 * 38 + 2
    for _ in range(2):
        y = _rng.standard_normal(40)
        np.testing.assert_allclose(J(y).toarray(), cr.jacfwd(bratu)(y), atol=1e-12)
    H = cr.sparse.hessian_fn(energy, x)
    assert H.mode == "fwd" and H.colors <= 4
    y = _rng.standard_normal(40)
    np.testing.assert_allclose(H(y).toarray(), cr.hessian(energy)(y), atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        J(np.zeros(41))


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_compiled_passes_match(mode):
    x = _rng.standard_normal(30)
    J = cr.sparse.jacobian_fn(bratu, x, mode=mode, compile=True)
    for _ in range(2):
        y = _rng.standard_normal(30)
        np.testing.assert_allclose(J(y).toarray(), cr.jacfwd(bratu)(y), atol=1e-12)
    H = cr.sparse.hessian_fn(energy, x, compile=True)
    for _ in range(2):
        y = _rng.standard_normal(30)
        np.testing.assert_allclose(H(y).toarray(), cr.hessian(energy)(y), atol=1e-12)


def test_structural_zero_at_the_evaluation_point_is_kept():
    J = cr.sparse.jacobian(lambda x: x ** 2, np.zeros(3))
    assert J.nnz == 3 and (J.toarray() == 0).all()


def test_constant_and_unconnected_outputs():
    J = cr.sparse.jacobian(lambda x: cnp.zeros(3) + 1.0, np.ones(2))
    assert J.shape == (3, 2) and J.nnz == 0
    H = cr.sparse.hessian(lambda x: cnp.sum(2.0 * x), np.ones(3))
    assert H.nnz == 0 and H.shape == (3, 3)


# --- replay of the recorded pass: never stale ---------------------------------------------------

SCALE = 1.5  # read by scaled() below: rebinding it must reach J(x)


def scaled(x):
    return SCALE * cnp.sin(x[1:] * x[:-1])


def _calls(J, f, n=3, dense=None):
    """``n`` calls at new points, each checked against a dense Jacobian of ``f`` now."""
    dense = dense or cr.jacfwd(f)
    for _ in range(n):
        y = _rng.standard_normal(J.sparsity.shape[1])
        np.testing.assert_allclose(J(y).toarray(), np.asarray(dense(y)).reshape(J.sparsity.shape),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_replayed_calls_match_dense(mode):
    J = cr.sparse.jacobian_fn(stencil(5), np.zeros(25), mode=mode)
    _calls(J, stencil(5), n=4)
    assert J.replay.enabled and J.replay.replays >= 2  # 1 eager + 1 recording + replays
    H = cr.sparse.hessian_fn(energy, np.zeros(31))
    _calls(H, energy, n=4, dense=cr.hessian(energy))
    assert H.replay.replays >= 2
    before = H.replay.replays
    with cr.detect_anomaly():  # its checks run on f's own operations: no replay
        _calls(H, energy, n=1, dense=cr.hessian(energy))
    assert H.replay.replays == before


def test_replay_sees_a_closed_over_array_mutated_or_rebound():
    c = np.full(9, 2.0)
    box = [c]  # (a cell rebound below through nonlocal)

    def make():
        k = 3.0

        def f(x):
            return k * box[0] * cnp.exp(x)

        def set_k(v):
            nonlocal k
            k = v
        return f, set_k

    f, set_k = make()
    J = cr.sparse.jacobian_fn(f, np.zeros(9))
    _calls(J, f)
    before = J.replay.replays
    c[4] = -7.0  # mutated in place
    _calls(J, f)
    box[0] = np.full(9, 0.5)  # the list's item rebound
    _calls(J, f)
    set_k(-1.0)  # the closure cell rebound
    _calls(J, f)
    assert J.replay.replays > before  # it went back to replaying after each change


def test_replayed_hessian_sees_a_mutated_weight():
    w = np.linspace(1.0, 2.0, 7)
    e = lambda x: cnp.sum(w * cnp.cosh(x)) + cnp.sum(x[1:] * x[:-1])  # noqa: E731
    H = cr.sparse.hessian_fn(e, np.zeros(7))
    _calls(H, e, dense=cr.hessian(e))
    w *= -3.0
    _calls(H, e, dense=cr.hessian(e))
    assert H.replay.replays >= 2


def test_replay_sees_globals_defaults_and_module_attributes():
    global SCALE
    J = cr.sparse.jacobian_fn(scaled, np.zeros(6))
    _calls(J, scaled)
    try:
        SCALE = -4.0
        _calls(J, scaled)
    finally:
        SCALE = 1.5

    def g(x, p=2.0):
        return p * x ** 3

    J = cr.sparse.jacobian_fn(g, np.zeros(4))
    _calls(J, g)
    g.__defaults__ = (5.0,)
    _calls(J, g)

    import types

    cfg = types.ModuleType("cfg")
    cfg.k = 2.0
    h = lambda x: cfg.k * cnp.tanh(x)  # noqa: E731
    J = cr.sparse.jacobian_fn(h, np.zeros(4))
    _calls(J, h)
    cfg.k = 9.0
    _calls(J, h)
    w = cr.tensor(np.ones(4))
    t = lambda x: w * x ** 2  # noqa: E731
    J = cr.sparse.jacobian_fn(t, np.zeros(4))
    _calls(J, t)
    w.data[1] = 4.0
    _calls(J, t)


def test_functions_whose_reads_cannot_be_watched_are_never_replayed():
    class Model:
        k = 2.0

        def residual(self, x):
            return self.k * cnp.sin(x)

    m = Model()
    J = cr.sparse.jacobian_fn(m.residual, np.zeros(5))
    _calls(J, m.residual)
    assert not J.replay.enabled and J.replay.replays == 0
    m.k = -3.0
    _calls(J, m.residual)
    rng = np.random.default_rng(0)
    noise = lambda x: x * rng.uniform(1.0, 2.0, 5)  # noqa: E731
    J = cr.sparse.jacobian_fn(noise, np.zeros(5))
    results = [J(np.ones(5)).toarray() for _ in range(3)]
    assert J.replay.replays == 0 and not np.allclose(results[1], results[2])
    J = cr.sparse.jacobian_fn(lambda x: x * np.random.rand(5), np.zeros(5))
    for _ in range(3):
        J(np.ones(5))
    assert J.replay.replays == 0


def test_a_function_changing_what_it_reads_is_never_replayed():
    calls = [0.0]

    def f(x):
        calls[0] += 1.0
        return calls[0] * x

    J = cr.sparse.jacobian_fn(f, np.zeros(3))  # (detection called f once: calls = 1)
    for k in range(2, 6):
        np.testing.assert_array_equal(J(np.ones(3)).toarray(), k * np.eye(3))
    assert J.replay.replays == 0


def test_a_change_that_adds_nonzeros_is_an_error_and_one_that_removes_them_is_not():
    coupled = [True]

    def f(x):
        if coupled[0]:
            return x ** 2 + cnp.concatenate([x[:1] * 0.0, x[1:] * x[:-1]])
        return x ** 2

    for build in (cr.sparse.jacobian_fn, lambda f, x: cr.sparse.hessian_fn(
            lambda v: cnp.sum(f(v)), x)):
        coupled[0] = True
        J = build(f, np.zeros(6))
        for _ in range(3):
            J(np.ones(6))
        coupled[0] = False  # a diagonal within the bidiagonal pattern: zeros elsewhere
        y = _rng.standard_normal(6)
        dense = (cr.jacfwd(f)(y) if isinstance(J, cr.sparse.SparseJacobian)
                 else cr.hessian(lambda v: cnp.sum(f(v)))(y))
        np.testing.assert_allclose(J(y).toarray(), dense, atol=1e-12)
    J = cr.sparse.jacobian_fn(f, np.zeros(6))  # built on the diagonal pattern
    J(np.ones(6))
    coupled[0] = True
    with pytest.raises(ValueError, match="outside the sparsity pattern"):
        J(np.ones(6))
    A = np.diag(np.arange(1.0, 6.0))  # a constant matrix: its zeros are structural
    g = lambda x: A @ cnp.sin(x)  # noqa: E731
    J = cr.sparse.jacobian_fn(g, np.zeros(5))
    assert J.sparsity.nnz == 5
    for _ in range(3):
        J(np.ones(5))
    A[0, 4] = 2.0  # filled in place: the old pattern would silently drop it
    with pytest.raises(ValueError, match="outside the sparsity pattern"):
        J(np.ones(5))


def test_results_do_not_alias_between_calls():
    J = cr.sparse.jacobian_fn(bratu, np.zeros(8))
    first = [J(np.ones(8)) for _ in range(4)]
    keep = first[-1].toarray()
    first[2].data[:] = 0.0
    first[2].indices[:] = 0
    np.testing.assert_array_equal(J(np.ones(8)).toarray(), keep)
    np.testing.assert_array_equal(first[3].toarray(), keep)


# --- colourings ------------------------------------------------------------------------------

def test_colouring_quality():
    bidiag = cr.sparse.jacobian_sparsity(lambda x: x[1:] - x[:-1] ** 2, np.zeros(500))
    assert cl.n_colors(cl.column_coloring(bidiag)) <= 3
    assert cl.n_colors(cl.row_coloring(bidiag)) <= 3
    for n in (7, 10, 13):
        P = cr.sparse.jacobian_sparsity(stencil(n), np.zeros(n * n))
        assert cl.n_colors(cl.column_coloring(P)) <= 8
    H = cr.sparse.hessian_sparsity(lambda x: cnp.sum((x[1:] - x[:-1]) ** 2)
                                   + cnp.sum(cnp.exp(x)), np.zeros(300))
    assert cl.n_colors(cl.symmetric_coloring(H)) <= 3
    arrow = cr.sparse.hessian_sparsity(lambda x: cnp.sum(x[0] * x[1:]) + cnp.sum(x ** 4),
                                       np.zeros(40))
    colors = cl.symmetric_coloring(arrow)
    assert cl.n_colors(colors) <= 3 and cl.is_symmetric_recoverable(arrow, colors)


def test_hub_colouring_of_an_arrow_hessian():
    # a dense row and column: distance-2 colouring needs n colours, symmetry needs 4
    def f(x):
        return cnp.sum(x[0] * x[1:]) + cnp.sum(cnp.exp(x)) + cnp.sum((x[1:] - x[:-1]) ** 2)

    H = cr.sparse.hessian_fn(f, np.zeros(800))
    assert H.colors <= 5
    x = _rng.standard_normal(800)
    np.testing.assert_allclose(H(x).toarray(), cr.hessian(f)(x), atol=1e-12)


def test_colourings_are_valid_on_random_patterns():
    for seed in range(3):
        P = sp.random_array((60, 50), density=0.06, random_state=seed, format="csr") != 0
        cols = cl.column_coloring(P)
        D = P.toarray()
        for k in range(cl.n_colors(cols)):  # columns of one colour never share a row
            assert D[:, cols == k].sum(axis=1).max() <= 1
        rows = cl.row_coloring(P)
        for k in range(cl.n_colors(rows)):
            assert D[rows == k].sum(axis=0).max() <= 1
        S = (P.T @ P).astype(bool)
        assert cl.is_symmetric_recoverable(S, cl.symmetric_coloring(S))


def test_mode_auto_picks_fewer_colours():
    def tall(v):  # every output reads all 3 inputs: forward needs 3 passes, reverse 20
        return cnp.concatenate([v * k for k in range(1, 8)]) + cnp.sum(v)

    J = cr.sparse.jacobian_fn(tall, np.ones(3))
    assert J.mode == "fwd" and J.colors == 3


# --- bad input -------------------------------------------------------------------------------

def test_branching_on_values_is_refused():
    def f(x):
        if x[0] > 0:
            return x * 2.0
        return -x

    for fn in (cr.sparse.jacobian_sparsity, cr.sparse.jacobian):
        with pytest.raises(ValueError, match="cannot depend on values"):
            fn(f, np.ones(3))
    with pytest.raises(ValueError, match="cannot depend on values"):
        cr.sparse.hessian_sparsity(lambda x: cnp.sum(x) * float(x[1]), np.ones(3))


def test_several_arrays_are_refused_with_a_hint():
    with pytest.raises(TypeError, match="pack"):
        cr.sparse.jacobian(lambda xy: xy[0] * xy[1], (np.ones(2), np.ones(2)))
    with pytest.raises(TypeError, match="pack"):
        cr.sparse.jacobian_sparsity(lambda x, y: x * y, np.ones(2))
    with pytest.raises(TypeError, match="one array"):
        cr.sparse.jacobian_sparsity(lambda x: (x, x), np.ones(2))
    with pytest.raises(ValueError, match="scalar"):
        cr.sparse.hessian_sparsity(lambda x: x, np.ones(2))
    with pytest.raises(ValueError, match="mode"):
        cr.sparse.jacobian_fn(lambda x: x, np.ones(2), mode="sideways")


def test_missing_scipy_names_the_extra(monkeypatch):
    from chainrule.sparse import _scipy

    monkeypatch.setattr(_scipy, "sp", None)
    with pytest.raises(ImportError, match=r"chainrule\[optimize\]"):
        cr.sparse.jacobian(lambda x: x, np.ones(2))


def test_chainrule_imports_without_scipy():
    code = ("import sys; sys.modules['scipy'] = None\n"
            "import numpy as np, chainrule as cr\n"
            "try:\n    cr.sparse.jacobian_sparsity(lambda x: x, np.ones(2))\n"
            "except ImportError as e:\n    print('ok', 'optimize' in str(e))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.stdout.strip() == "ok True", out.stderr


# --- sparse Newton -------------------------------------------------------------------------

def test_sparse_newton_converges_on_a_large_convex_energy():
    n = 20_000
    b = np.linspace(0.5, 1.5, n)

    def f(x):
        return cnp.sum((x[1:] - x[:-1]) ** 2) + cnp.sum(cnp.exp(x) - b * x)

    res = cr.optimize.minimize(f, np.zeros(n), method="newton", sparse=True, tol=1e-9,
                               max_iter=40)
    assert res.success and res.nit <= 30
    assert np.abs(res.jac).max() < 1e-7
    with pytest.raises(ValueError, match="newton"):
        cr.optimize.minimize(f, np.zeros(3), method="lbfgs", sparse=True)
    with pytest.raises(ValueError, match="jac=None"):
        cr.optimize.minimize(f, np.zeros(3), method="newton", sparse=True, jac=True)


def test_sparse_newton_on_a_nonconvex_start():
    # Rosenbrock chain: indefinite Hessians on the way, shifted until they point downhill
    def f(x):
        return cnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    res = cr.optimize.minimize(f, np.full(50, -1.0), method="newton", sparse=True,
                               max_iter=200)
    assert res.success and np.abs(res.x - 1.0).max() < 1e-6


# --- the example -------------------------------------------------------------------------------

def test_pde_example_runs_and_draws_the_pattern(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    pytest.importorskip("matplotlib")
    path = Path(__file__).resolve().parent.parent / "examples" / "sparse_pde_jacobian.py"
    spec = importlib.util.spec_from_file_location("sparse_pde_jacobian", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "pattern.png"
    assert module.main(["--fast", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5 colours" in text and "max |F(u)| = " in text
    last = [line for line in text.splitlines() if "max |F(u)|" in line][-1]
    assert float(last.split("=")[-1]) < 1e-9
    assert out.stat().st_size > 1000
