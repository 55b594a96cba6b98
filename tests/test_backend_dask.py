"""Dask: the transforms on ``dask.array`` inputs give LAZY Dask results that equal NumPy's.

A ``distributed.LocalCluster`` of two worker processes (one thread each) is
started for this module.  Every result is built while a scheduler that refuses
to compute is active (so nothing is computed behind the user's back), then
computed on the cluster while its task stream is recorded: the tasks ran on
the workers, whose process ids differ from this one.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
pytest.importorskip("array_api_compat")

import dask  # noqa: E402

import chainrule as cr  # noqa: E402
import chainrule.numpy as cnp  # noqa: E402
from chainrule.backend import ArrayNamespace, library_name, namespace_of  # noqa: E402
from chainrule.core.primitive import Primitive  # noqa: E402
from chainrule.pytree import tree_leaves  # noqa: E402
from test_backend_conformance import (  # noqa: E402
    FUNCTIONS,
    RTOL,
    TRANSFORMS,
    VALUE_ATOL,
    assert_agree,
    compare,
    derivatives,
    results,
    tols,
)
from test_primitive_table import CASES  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask_logistic_regression.py"


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    c = distributed.Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _refuse(*args, **kwargs):
    raise AssertionError("a Dask computation ran while the derivatives were being built")


def lazily():
    """Build results under a scheduler that refuses to compute anything."""
    return dask.config.set(scheduler=_refuse)


def on_cluster(client, tree):
    """Compute ``tree`` on the cluster; check that the tasks ran in the worker processes."""
    with distributed.get_task_stream(client) as stream:
        (computed,) = dask.compute(tree, scheduler=client)
    pids = client.run(os.getpid)  # {worker address: process id}
    ran_on = {rec["worker"] for rec in stream.data}
    assert stream.data, "no task ran on the cluster"
    assert ran_on <= set(pids), f"tasks ran outside the workers: {ran_on - set(pids)}"
    assert os.getpid() not in {pids[w] for w in ran_on}
    return computed, {pids[w] for w in ran_on}


def chunked(a: np.ndarray):
    """Two chunks along the first axis."""
    a = np.asarray(a)
    return da.from_array(a, chunks=tuple(max(1, -(-s // 2)) if i == 0 else s
                                         for i, s in enumerate(a.shape)))


# --- dispatch ------------------------------------------------------------------------------------

def test_dask_namespace_and_mixing_with_numpy():
    x = chunked(np.ones((4, 3)))
    xp = namespace_of(x)
    assert isinstance(xp, ArrayNamespace) and library_name(xp) == "dask"
    # NumPy operands mix with Dask arrays, as in Dask itself (either order)
    assert namespace_of(np.ones(3), x) is xp and namespace_of(x, np.ones(3), 2.0) is xp
    assert isinstance(cnp.multiply(np.ones(3), x), da.Array)


def test_dask_does_not_mix_with_another_non_numpy_library():
    strict = pytest.importorskip("array_api_strict")
    with pytest.raises(TypeError, match="cannot mix dask arrays and array_api_strict arrays"):
        namespace_of(chunked(np.ones(2)), strict.asarray([1.0, 2.0]))


def test_what_dask_cannot_do_names_the_primitive_and_dask():
    prim = Primitive("test_dask_missing_fn", lambda xp, x: xp.linalg.no_such_function(x),
                     register=False)
    with pytest.raises(NotImplementedError,
                       match="'test_dask_missing_fn'.*dask.*linalg.no_such_function"):
        prim(chunked(np.eye(3)))


# --- the transforms ------------------------------------------------------------------------------

def test_grad_of_a_dask_array_is_a_lazy_dask_array(client):
    a = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    f = lambda x: cnp.sum(cnp.tanh(x) * x ** 2)
    with lazily():
        g = cr.grad(f)(chunked(a))
    assert isinstance(g, da.Array) and g.shape == a.shape and g.dtype == np.float64
    got, _ = on_cluster(client, g)
    assert_allclose(got, cr.grad(f)(a), rtol=RTOL)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=[f.id for f in FUNCTIONS])
def test_functions_agree_between_numpy_and_dask_on_the_cluster(fn, client):
    """grad, value_and_grad, vjp, jvp and hvp: lazy on Dask, equal to NumPy to 1e-10."""
    want = results(fn, fn.args)
    with lazily():
        got = results(fn, tuple(chunked(a) for a in fn.args))
    for key, value in got.items():
        for leaf in tree_leaves(value):
            assert isinstance(leaf, da.Array), f"{key}: {type(leaf)} is not a Dask array"
    computed, pids = on_cluster(client, got)
    assert_agree(computed, want, "numpy")


def test_the_work_is_shared_by_both_worker_processes(client):
    fn = next(f for f in FUNCTIONS if f.id == "logistic")
    X = np.random.default_rng(5).normal(size=(4000, 5))
    y = (X[:, 0] > 0).astype(np.float64)
    w = np.full(5, 0.1)
    Xd, yd = da.from_array(X, chunks=(250, 5)), da.from_array(y, chunks=250)
    with lazily():
        value, (gw, gX) = cr.value_and_grad(fn.f, argnums=(0, 1))(w, Xd, yd)
    assert all(isinstance(r, da.Array) for r in (value, gw, gX))
    (v, gw_, gX_), pids = on_cluster(client, (value, gw, gX))
    assert len(pids) == 2, f"expected both workers to run tasks, got {pids}"
    ref_v, (ref_w, ref_X) = cr.value_and_grad(fn.f, argnums=(0, 1))(w, X, y)
    assert_allclose(v, ref_v, rtol=RTOL)
    assert_allclose(gw_, ref_w, rtol=RTOL)
    assert_allclose(gX_, ref_X, rtol=RTOL, atol=1e-15)


def test_numpy_weights_with_dask_data(client):
    """The gradient with respect to NumPy weights is a lazy Dask array (Dask's own rule)."""
    rng = np.random.default_rng(3)
    X, y, w = rng.normal(size=(60, 4)), rng.normal(size=60), rng.normal(size=4)
    loss = lambda w, X, y: cnp.mean((cnp.matmul(X, w) - y) ** 2)
    with lazily():
        value, g = cr.value_and_grad(loss)(w, chunked(X), chunked(y))
        out, pullback = cr.vjp(lambda w: cnp.matmul(chunked(X), w), w)
        (ct,) = pullback(np.ones(60))                      # a NumPy cotangent is fine too
        _, t = cr.jvp(lambda w: loss(w, chunked(X), chunked(y)), (w,), (np.ones(4),))
    assert all(isinstance(r, da.Array) for r in (value, g, out, ct, t))
    (value, g, ct, t), _ = on_cluster(client, (value, g, ct, t))
    assert_allclose(g, 2 * X.T @ (X @ w - y) / 60, rtol=RTOL)
    assert_allclose(value, np.mean((X @ w - y) ** 2), rtol=RTOL)
    assert_allclose(ct, X.sum(axis=0), rtol=RTOL)
    assert_allclose(t, np.sum(2 * X.T @ (X @ w - y) / 60), rtol=RTOL)


def test_float32_stays_float32_on_dask(client):
    a = np.linspace(0.1, 1.0, 8, dtype=np.float32).reshape(2, 4)
    f = lambda x: cnp.sum(cnp.exp(x) * x + cnp.sqrt(x))
    with lazily():
        v, g = cr.value_and_grad(f)(chunked(a))
        _, t = cr.jvp(f, (chunked(a),), (chunked(np.ones_like(a)),))
    assert v.dtype == g.dtype == t.dtype == np.float32
    (v, g, t), _ = on_cluster(client, (v, g, t))
    ref_v, ref_g = cr.value_and_grad(f)(a)
    assert g.dtype == np.float32
    assert_allclose(g, ref_g, rtol=1e-6)
    assert_allclose(v, ref_v, rtol=1e-6)


def test_second_order_with_create_graph_on_dask(client):
    x = cr.tensor(chunked(np.array([0.3, 0.7, 1.1])), requires_grad=True)
    with lazily():
        cnp.sum(cnp.sin(x) * x).backward(create_graph=True)
        g = x.grad
        x.grad = None
        cnp.sum(g).backward()
    assert isinstance(x.grad, da.Array)
    got, _ = on_cluster(client, x.grad)
    v = np.array([0.3, 0.7, 1.1])
    assert_allclose(got, 2 * np.cos(v) - v * np.sin(v), rtol=RTOL)


@pytest.mark.parametrize("x", [np.array([0.8, 0.0, -1.3, 2.0, 0.0, 1.5, 0.7]),
                               np.array([[1.5, 0.0, -2.0], [0.5, 1.2, 0.7], [0.0, 0.0, 1.0]])],
                         ids=["zeros-1d", "zeros-2d"])
def test_products_with_zeros_stay_lazy_and_exact(x):
    """cumprod/prod rules cannot ask whether x has zeros (that would compute it): on Dask
    they take the exact path, a linear recurrence solved by doubling, to any order."""
    rng = np.random.default_rng(9)
    v = rng.normal(size=x.shape)
    fns = [lambda x: cnp.cumprod(x, axis=0), lambda x: cnp.cumprod(x, axis=-1),
           lambda x: cnp.prod(x, axis=0) * 2.0]
    for f in fns:
        s = lambda x, f=f: cnp.sum(f(x) * cnp.sum(f(x)))
        want = (cr.vjp(f, x)[1](f(x) * 0 + 1.0), cr.jvp(f, (x,), (v,))[1],
                cr.hvp(s, (x,), (v,)), cr.jacrev(f)(x))
        with lazily():
            xd = chunked(x)
            got = (cr.vjp(f, xd)[1](f(x) * 0 + 1.0), cr.jvp(f, (xd,), (chunked(v),))[1],
                   cr.hvp(s, (xd,), (chunked(v),)), cr.jacrev(f)(xd))
        (computed,) = dask.compute(got, scheduler="sync")  # many tiny tasks: computed here
        for g, w in zip(tree_leaves(computed), tree_leaves(want)):
            assert_allclose(g, w, rtol=RTOL, atol=1e-13)


#: Dask's reshape only merges or splits existing axes evenly ((2, 3) -> (3, 2) it refuses).
DASK_RESHAPE = {"reshape-(3,2)"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_primitive_table_on_dask(case):
    """Every case of the primitive table: lazy, and equal to NumPy (first and second order)."""
    # (NumPy constants in the case's function are fine: Dask accepts NumPy operands)
    args = tuple(chunked(a) for a in case.args)
    if case.id in DASK_RESHAPE:
        with pytest.raises(NotImplementedError, match="reshape"):
            case.fn(*args)
        return
    want = derivatives(case.fn, case.args, np.asarray, case.order, seed=0)
    with lazily():
        got = derivatives(case.fn, args, da.from_array, case.order, seed=0)
    (got,) = dask.compute(got, scheduler="sync")  # many tiny graphs: computed here
    rtol, atol = tols(case.args)
    for key in want:
        a = VALUE_ATOL.get(case.prims[0], atol) if key == "value" else atol
        compare(got[key], want[key], f"{case.id}: {key}", rtol, a, library="numpy")


# --- every transform, nested in any order -------------------------------------------------------

def test_every_transform_on_dask_is_lazy_and_equals_numpy(client):
    """grad ... hvp, vmap and their nestings (the strict suite's list): lazy Dask results
    from the input's chunks, computed on the cluster, equal to NumPy's."""
    x = np.linspace(-0.9, 1.1, 4)
    v = np.linspace(0.5, -0.3, 4)
    want = {name: t(x, v) for name, t in TRANSFORMS}
    with lazily():
        got = {name: t(chunked(x), chunked(v)) for name, t in TRANSFORMS}
    for name, tree in got.items():
        for leaf in tree_leaves(tree):
            assert isinstance(leaf, da.Array), f"{name}: {type(leaf)} is not a Dask array"
    computed, _ = on_cluster(client, got)
    for name in want:
        compare(computed[name], want[name], name, RTOL, 1e-12, library="numpy")


def test_jacobians_are_built_from_the_input_chunks():
    x = da.from_array(np.linspace(0.1, 1.0, 6), chunks=2)
    with lazily():
        jac = cr.jacfwd(lambda x: cnp.sin(x) * x)(x)
        hess = cr.hessian(lambda x: cnp.sum(cnp.sin(x) * x))(x)
    assert isinstance(jac, da.Array) and isinstance(hess, da.Array)
    assert jac.numblocks[0] > 1 or jac.numblocks[1] > 1  # not one NumPy block wrapped up
    assert_allclose(jac.compute(scheduler="sync"), cr.jacfwd(lambda x: cnp.sin(x) * x)(
        np.linspace(0.1, 1.0, 6)), rtol=RTOL)


# --- linalg: det, slogdet (through LU), eigh -----------------------------------------------------

_LA_RNG = np.random.default_rng(21)
_A = _LA_RNG.normal(size=(6, 6)) + 3 * np.eye(6)
_S = _A + _A.T
_T = _LA_RNG.normal(size=(6, 6))

LINALG = [
    ("det", lambda a: cnp.linalg.det(a), _A),
    ("slogdet", lambda a: cnp.linalg.slogdet(a)[1] * cnp.linalg.slogdet(a)[0], _A),
    ("eigh-w", lambda a: cnp.linalg.eigh(a)[0], _S),
    ("eigh-v", lambda a: cnp.abs(cnp.linalg.eigh(a)[1]), _S),  # (signs are arbitrary)
    ("det-stack", lambda a: cnp.linalg.det(a), np.stack([_A, _S, _A.T])),
    ("eigh-stack", lambda a: cnp.linalg.eigh(a)[0], np.stack([_S, _S + _S @ _S])),
]


@pytest.mark.parametrize("chunks", [(2, 2), (3, 6), (4, 4)], ids=["2x2", "3x6", "4x4"])
def test_det_slogdet_eigh_on_dask_with_derivatives(chunks, client):
    """Values, VJP, JVP and Hessian-vector products: lazy, computed on the cluster, equal to
    NumPy's (which test_linalg.py checks against finite differences)."""
    want, got = {}, {}
    for name, f, a in LINALG:
        u = np.ones(np.shape(f(a)))
        t = np.broadcast_to(_T, a.shape)
        w = np.arange(1.0, 1.0 + u.size).reshape(u.shape)
        s = lambda x, f=f, w=w: cnp.sum(f(x) * w)
        fns = lambda x, f=f, s=s, u=u, t=t: (  # noqa: E731
            f(x), cr.vjp(f, x)[1](u), cr.jvp(f, (x,), (t,))[1], cr.hvp(s, (x,), (t,)))
        want[name] = fns(a)
        ch = (1,) * (a.ndim - 2) + chunks
        with lazily():
            got[name] = fns(da.from_array(a, chunks=ch))
        for leaf in tree_leaves(got[name]):
            assert isinstance(leaf, da.Array), name
    computed, _ = on_cluster(client, got)
    for name in want:
        compare(computed[name], want[name], name, 1e-9, 1e-10, library="numpy")


def test_dask_slogdet_of_a_singular_matrix_and_a_negative_determinant():
    a = np.array([[0.0, 2.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])  # a row swap: det < 0
    sign, logabs = cnp.linalg.slogdet(da.from_array(a, chunks=1))
    assert float(sign.compute()) == -1.0
    assert_allclose(logabs.compute(), np.log(6.0), rtol=RTOL)
    sign, logabs = cnp.linalg.slogdet(da.from_array(np.ones((3, 3)), chunks=3))
    assert float(sign.compute()) == 0.0 and logabs.compute() == -np.inf
    # a tiny leading pivot in its own chunk: pivoting must cross Dask's blocks
    a = np.array([[1e-15, 1.0, 2.0], [1.0, 1.0, 0.5], [2.0, 0.3, 1.0]])
    ad = da.from_array(a, chunks=1)
    assert_allclose(cnp.linalg.det(ad).compute(), np.linalg.det(a), rtol=1e-13)
    assert_allclose(cnp.linalg.solve(ad, da.ones(3, chunks=1)).compute(),
                    np.linalg.solve(a, np.ones(3)), rtol=1e-13)


# --- the example ---------------------------------------------------------------------------------

def test_logistic_regression_example_runs_on_the_cluster(client):
    spec = importlib.util.spec_from_file_location("dask_logistic_regression", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    lines = []
    result = example.main(["--rows", "20000", "--steps", "8", "--scheduler",
                           client.scheduler.address], log=lines.append)
    losses = result["losses"]
    assert len(losses) == 8 and len([s for s in lines if s.startswith("step")]) == 8
    assert losses[0] == pytest.approx(np.log(2.0))        # w = 0, b = 0: loss log 2
    assert all(b < a for a, b in zip(losses, losses[1:]))  # gradient descent descends
    assert result["weight_correlation"] > 0.95
