"""``value_and_grad`` / ``grad`` replay a recording only when calling ``f`` could not differ."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.graph import replay as R

CALLS = 6  # enough calls of one signature to be recorded and replayed several times


def _eager(f, *args, **kw):
    return cr.value_and_grad(f, replay=False, **kw)(*args)


def _same(a, b):
    va, ga = a
    vb, gb = b
    assert type(va) is type(vb) and va.dtype == vb.dtype
    np.testing.assert_allclose(va, vb, rtol=1e-12)
    la, lb = cr.pytree.tree_leaves(ga), cr.pytree.tree_leaves(gb)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert type(x) is type(y) and x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


def mlp_loss(params, x, y):
    w1, b1, w2, b2 = params
    h = cnp.maximum(x @ w1 + b1, 0.0)
    z = h @ w2 + b2
    z = z - cnp.max(z, axis=1, keepdims=True)
    return cnp.mean(cnp.logsumexp(z, axis=1) - z[np.arange(z.shape[0]), y])


def _mlp_args(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((5, 8)), rng.standard_normal(8),
              rng.standard_normal((8, 3)), rng.standard_normal(3)]
    params = [p.astype(dtype) for p in params]
    return params, rng.standard_normal((4, 5)).astype(dtype), rng.integers(0, 3, 4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_replays_equal_eager_results_for_new_values(dtype):
    vg = cr.value_and_grad(mlp_loss)
    params, x, y = _mlp_args(0, dtype)
    for seed in range(CALLS):
        p2 = [p + seed for p in params]  # new values, same signature (and labels)
        _same(vg(p2, x, y), _eager(mlp_loss, p2, x, y))
    assert vg.replay.recordings == 1 and vg.replay.replays >= CALLS - 3


def test_grad_replays_too():
    g = cr.grad(mlp_loss)
    params, x, y = _mlp_args(2)
    for _ in range(CALLS):
        want = _eager(mlp_loss, params, x, y)[1]
        for a, b in zip(g(params, x, y), want):
            np.testing.assert_allclose(a, b, rtol=1e-12)
    assert g.replay.replays > 0
    assert not hasattr(cr.grad(mlp_loss, replay=False), "replay")


def test_new_labels_fail_the_guard_and_run_eagerly():
    vg = cr.value_and_grad(mlp_loss)
    params, x, _ = _mlp_args(1)
    for seed in range(3 * CALLS):
        y = np.random.default_rng(seed % 4).integers(0, 3, 4)
        _same(vg(params, x, y), _eager(mlp_loss, params, x, y))


def test_a_closed_over_array_mutated_in_place_or_rebound_is_seen():
    w = np.array([1.0, 2.0, 3.0])

    def f(x):
        return cnp.sum(cnp.sin(x * w))

    vg = cr.value_and_grad(f)
    x = np.array([0.1, 0.2, 0.3])
    for i in range(3 * CALLS):
        if i % 4 == 3:
            w[1] += 1.0  # in place
        _same(vg(x), _eager(f, x))
    assert vg.replay.replays > 0


GLOBAL_SCALE = 2.0


def _uses_a_global(x):
    return cnp.sum(cnp.exp(x) * GLOBAL_SCALE)


def test_a_rebound_global_is_seen():
    global GLOBAL_SCALE
    vg = cr.value_and_grad(_uses_a_global)
    x = np.array([0.5, -0.5])
    try:
        for i in range(3 * CALLS):
            GLOBAL_SCALE = 2.0 + i // 4
            _same(vg(x), _eager(_uses_a_global, x))
    finally:
        GLOBAL_SCALE = 2.0
    assert vg.replay.replays > 0


def test_functions_with_effects_or_unwatchable_reads_are_never_replayed(capsys):
    seen = []

    class Model:
        scale = 3.0

    model = Model()
    fns = {
        "print": lambda x: print("called") or cnp.sum(x ** 2),
        "append": lambda x: seen.append(1) or cnp.sum(x ** 2),
        "attribute": lambda x: cnp.sum(x * model.scale),
        "random": lambda x: cnp.sum(x * np.random.rand()),
    }
    x = np.array([1.0, 2.0])
    for name, f in fns.items():
        vg = cr.value_and_grad(f)
        for _ in range(CALLS):
            vg(x)
        assert vg.replay.replays == 0, name
    assert capsys.readouterr().out.count("called") == CALLS  # f ran on every call
    assert len(seen) >= CALLS


def test_results_are_fresh_arrays_never_arguments_or_constants():
    # d/dw sum(x * w) is x itself; d/dc of an unused c is a constant zero
    f = lambda w, x, c: cnp.sum(x * w) + 0.0 * cnp.sum(x)  # noqa: E731
    vg = cr.value_and_grad(f, argnums=(0, 1, 2))
    x = np.array([1.0, 2.0, 3.0])
    w = np.array([4.0, 5.0, 6.0])
    c = np.zeros(3)
    for _ in range(CALLS):
        value, (gw, gx, gc) = vg(w, x, c)
        assert not np.shares_memory(gw, x) and not np.shares_memory(gx, w)
        np.testing.assert_array_equal(gw, x)
        np.testing.assert_array_equal(gc, 0.0)
        gw += 100.0  # the caller owns its results
        gc += 100.0
        gx.reshape(-1)[:] = -1.0
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(w, [4.0, 5.0, 6.0])
    assert vg.replay.replays > 0


def test_python_control_flow_is_guarded():
    def f(x):
        if cnp.sum(x) > 0:
            return cnp.sum(x ** 2)
        return cnp.sum(cnp.sin(x))

    vg = cr.value_and_grad(f)
    for i in range(4 * CALLS):
        x = np.array([1.0, 2.0]) * (1 if (i // 3) % 2 else -1) * (1 + i)
        _same(vg(x), _eager(f, x))


def test_static_arguments_and_too_many_signatures():
    f = lambda x, n: cnp.sum(x ** n)  # noqa: E731
    vg = cr.value_and_grad(f)
    x = np.array([1.0, 2.0])
    for n in list(range(1, R.MAX_SIGNATURES + 3)) * 3:
        _same(vg(x, n), _eager(f, x, n))
    assert not vg.replay.enabled  # ever new signatures: no longer considered
    vg = cr.value_and_grad(f)
    for _ in range(CALLS):
        for n in (2, 3):
            _same(vg(x, n), _eager(f, x, n))
    assert vg.replay.replays > 0


def test_scalars_tensors_aux_and_nested_transforms_keep_eager_results():
    f = lambda x: cnp.sin(x) * x  # noqa: E731
    vg = cr.value_and_grad(f)
    for i in range(CALLS):
        v, g = vg(0.5 + i)
        assert type(g) is np.ndarray and g.shape == () and v.shape == ()
        np.testing.assert_allclose(g, np.cos(0.5 + i) * (0.5 + i) + np.sin(0.5 + i))
    vt = cr.value_and_grad(lambda t: cnp.sum(t * t))
    for _ in range(CALLS):
        np.testing.assert_allclose(vt(cr.tensor([1.0, 2.0]))[1], [2.0, 4.0])
    inner = cr.grad(lambda y: cnp.sum(y ** 3))
    outer = cr.grad(lambda x: cnp.sum(inner(x)))  # d/dx sum(3 x^2) = 6 x
    for i in range(CALLS):
        np.testing.assert_allclose(outer(np.array([1.0, float(i)])), [6.0, 6.0 * i])


def test_errors_are_raised_on_every_call():
    vg = cr.value_and_grad(lambda x: x * 2.0)  # not a scalar
    for _ in range(CALLS):
        with pytest.raises(TypeError, match="scalar"):
            vg(np.ones(3))


def test_replay_off_and_under_anomaly_detection():
    f = lambda x: cnp.sum(cnp.log(x))  # noqa: E731
    vg = cr.value_and_grad(f, replay=False)
    assert not hasattr(vg, "replay")
    vg = cr.value_and_grad(f)
    x = np.array([1.0, 2.0])
    with cr.detect_anomaly():
        for _ in range(CALLS):
            vg(x)
    assert vg.replay.replays == 0
    for _ in range(CALLS):
        _same(vg(x), _eager(f, x))
    assert vg.replay.replays > 0


def test_a_function_changing_what_it_reads_is_never_replayed():
    state = {"k": 1.0}

    def f(x):
        state["k"] = state["k"] + 1.0  # reads and rebinds: results change every call
        return cnp.sum(x) * state["k"]

    vg = cr.value_and_grad(f)
    values = [float(vg(np.ones(2))[0]) for _ in range(CALLS)]
    assert values == [2.0 * k for k in range(2, CALLS + 2)]
    assert vg.replay.replays == 0


_X32 = np.ones(3, np.float32)


@pytest.mark.parametrize("f, args", [
    (lambda s, x: cnp.sum(x * s), (2.0, _X32)),                 # a Python float: float64
    (lambda x, s: cnp.sum(x * s), (_X32, 2.0)),                 # not differentiated: weak
    (lambda s, x: cnp.sum(x * s), (np.float32(2.0), _X32)),
    (lambda z, x: cnp.sum(cnp.abs(x * z) ** 2), (1 + 2j, _X32)),
    (lambda z: cnp.sum(cnp.abs(z) ** 2), (np.array([1 + 2j, 3j]),)),
], ids=["float", "float-static", "np-float32", "complex", "complex-array"])
def test_replayed_dtypes_follow_eager_promotion(f, args):
    vg = cr.value_and_grad(f)
    for _ in range(CALLS):
        _same(vg(*args), _eager(f, *args))
    assert vg.replay.replays > 0
    # (a compiled gradient promotes the same way; it hands back NumPy scalars for 0-d results)
    (vc, gc), (ve, ge) = cr.compile(cr.value_and_grad(f, replay=False))(*args), _eager(f, *args)
    assert np.asarray(vc).dtype == ve.dtype and np.asarray(gc).dtype == ge.dtype


def test_large_programs_are_not_kept(monkeypatch):
    monkeypatch.setattr(R, "MAX_EQUATIONS", 5)
    f = lambda x: cnp.sum(cnp.sin(cnp.cos(cnp.exp(x))) ** 2)  # noqa: E731
    vg = cr.value_and_grad(f)
    x = np.array([0.1, 0.2])
    for _ in range(CALLS):
        _same(vg(x), _eager(f, x))
    assert vg.replay.recordings == 1 and vg.replay.replays == 0


def test_functions_reading_much_data_besides_their_arguments_are_not_replayed():
    data = np.ones(R.MAX_WATCHED_BYTES // 8 + 1)  # comparing it on every call would cost more
    f = lambda w: cnp.sum(data * w)  # noqa: E731
    vg = cr.value_and_grad(f)
    for _ in range(CALLS):
        _same(vg(2.0), _eager(f, 2.0))
    assert vg.replay.replays == 0


def test_watched_float_arrays_compare_bit_by_bit():
    w = np.array([np.nan, 1.0, 0.0])
    f = lambda x: cnp.sum(cnp.where(w == w, w, 0.0) * x)  # noqa: E731
    vg = cr.value_and_grad(f)
    x = np.array([1.0, 2.0, 3.0])
    for i in range(3 * CALLS):
        if i == 2 * CALLS:
            w[2] = -0.0  # equal to 0.0, but a change all the same: recorded again
        _same(vg(x), _eager(f, x))
    assert vg.replay.replays > 0 and vg.replay.recordings == 2


def test_two_results_computed_alike_are_two_arrays():
    f = lambda x, y: cnp.sum(cnp.sin(x + y))  # noqa: E731  (both gradients: one cos(x + y))
    vg = cr.value_and_grad(f, argnums=(0, 1))
    for _ in range(CALLS):
        _, (gx, gy) = vg(np.ones(3), np.ones(3))
        assert not np.shares_memory(gx, gy)
        np.testing.assert_allclose(gx, np.cos(2.0))
        np.testing.assert_allclose(gy, np.cos(2.0))
    assert vg.replay.replays > 0


def test_aux_results_replay_with_eager_types():
    def f(x):
        loss = cnp.sum(x ** 2)
        return loss, {"mean": cnp.mean(x), "double": x * 2, "count": 3, "name": "mse",
                      "loss": cr.stop_gradient(loss), "first": x[0], "none": None}

    vg = cr.value_and_grad(f, has_aux=True)
    eager = cr.value_and_grad(f, has_aux=True, replay=False)
    for i in range(CALLS):
        x = np.array([1.0, 2.0, 3.0]) + i
        ((v, aux), g), ((ve, auxe), ge) = vg(x), eager(x)
        np.testing.assert_allclose(v, ve)
        assert aux.keys() == auxe.keys() and aux["none"] is None
        for k in aux:
            if k != "none":
                assert type(aux[k]) is type(auxe[k]) and aux[k].dtype == auxe[k].dtype, k
                np.testing.assert_array_equal(aux[k], auxe[k])
        aux["double"] += 1.0  # the caller's own arrays
        np.testing.assert_allclose(g, ge)
    assert vg.replay.replays > 0
