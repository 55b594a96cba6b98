"""A recorded operation keeps only what its reverse rule reads (``Primitive.saves``)."""

from __future__ import annotations

import gc
import importlib
import tracemalloc

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core.primitive import Primitive, registry

P = importlib.import_module("chainrule.core.primitive")  # the module (a function shares its name)


def _chain(y, steps=50):
    """sin (reads its input), +1 and negation (read nothing), exp (reads its output)."""
    for i in range(steps):
        k = i % 5
        if k == 0:
            y = cnp.sin(y)
        elif k == 2:
            y = cnp.exp(y)
        elif k == 4:
            y = -y
        else:
            y = y + 1.0
    return y


def test_recorded_chain_holds_only_what_the_rules_read():
    n = 10**6
    a = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    x = cr.tensor(a, requires_grad=True)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        y = _chain(x)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 10 sin inputs (the first is x itself, allocated before), 10 exp outputs, and the
    # result the caller holds: 20 new arrays, not the 50 that every box would keep.
    needed = 20 * a.nbytes
    assert needed <= held < needed + a.nbytes // 2, (held / a.nbytes, "arrays held")
    y.sum().backward()
    ref = cr.grad(lambda v: cnp.sum(_chain(v)))(a[:1000].astype(np.float64))
    np.testing.assert_allclose(x.grad[:1000], ref, rtol=1e-4)


def test_saves_column_of_common_primitives():
    expect = {"add": "nothing", "subtract": "nothing", "negative": "nothing",
              "reduce_sum": "nothing", "reshape": "nothing", "broadcast_to": "nothing",
              "multiply": "inputs", "sin": "inputs", "log1p": "inputs", "maximum": "inputs",
              "exp": "output", "tanh": "output", "sqrt": "output", "relu": "output",
              "softmax": "output", "divide": "both", "power": "inputs", "reduce_max": "both"}
    assert {k: registry[k].saves for k in expect} == expect


def test_a_rule_that_reads_an_undeclared_value_fails_loudly(monkeypatch):
    monkeypatch.setattr(P, "KEEP_BELOW", 0)
    wrong = Primitive("sq_declared_wrong", lambda xp, x: x * x,
                      vjp=(lambda g, out, x: g * 2.0 * x,), saves="nothing", register=False)
    x = cr.tensor(np.arange(3.0), requires_grad=True)
    with pytest.raises(TypeError):
        wrong(x).sum().backward()


def test_unknown_saves_value_is_refused():
    with pytest.raises(ValueError, match="saves must be one of"):
        Primitive("bad_saves", lambda xp, x: x, saves="everything", register=False)


def test_power_recomputes_its_output_for_a_differentiable_exponent(monkeypatch):
    monkeypatch.setattr(P, "KEEP_BELOW", 0)  # every output is a stand-in
    x = np.array([0.5, 1.5, 2.0])
    y = np.array([1.5, -0.5, 2.5])
    f = lambda a, b: cnp.sum(a ** b * 3.0)  # noqa: E731
    ga, gb = cr.grad(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(ga, 3 * y * x ** (y - 1))
    np.testing.assert_allclose(gb, 3 * np.log(x) * x ** y)
    cr.check_grads(f, (x, y), order=2, modes=("rev",))
    xt = cr.tensor(x, requires_grad=True)
    yt = cr.tensor(y, requires_grad=True)
    cnp.sum(xt ** yt).backward(create_graph=True)
    g, yt.grad = yt.grad, None
    cnp.sum(g * 2.0).backward()  # d/dy of 2 log(x) x**y, through the recomputed output
    np.testing.assert_allclose(yt.grad, 2 * np.log(x) ** 2 * x ** y)


def test_create_graph_after_lean_recording_is_still_second_order(monkeypatch):
    monkeypatch.setattr(P, "KEEP_BELOW", 0)
    x = cr.tensor(np.array([0.3, -0.7, 1.1]), requires_grad=True)
    y = cnp.sum(cnp.exp(cnp.sin(x) + 1.0) * 2.0)
    y.backward(create_graph=True)
    g = x.grad
    x.grad = None
    g.sum().backward()
    a = x.data
    e = np.exp(np.sin(a) + 1.0)
    np.testing.assert_allclose(g.data, 2 * e * np.cos(a))
    np.testing.assert_allclose(x.grad, 2 * e * (np.cos(a) ** 2 - np.sin(a)))


def _both_sweeps(f, *arrays):
    """Gradients from the lean sweep (in-place rules allowed) and the pure one (create_graph)."""
    lean, pure = [], []
    for create in (False, True):
        xs = [cr.tensor(np.array(a), requires_grad=True) for a in arrays]
        f(*xs).backward(create_graph=create)
        (pure if create else lean).extend(
            x.grad.data if isinstance(x.grad, cr.Tensor) else x.grad for x in xs)
    return lean, pure


_rng = np.random.default_rng(7)
_POS = _rng.uniform(0.5, 2.0, (4, 3))
_ANY = _rng.standard_normal((4, 3))
_ROW = _rng.standard_normal(3)

def W(x):
    return _ANY.astype(x.dtype)


def R(x):
    return _ROW.astype(x.dtype)


# Each case feeds the primitive a cotangent that the sweep owns (made by the multiply after
# it) and an input with fan-out, so in-place scaling and in-place accumulation both run.
IN_PLACE_CASES = {
    "tanh": lambda x: cnp.sum(cnp.tanh(x * 1.5) * x * W(x)),
    "exp": lambda x: cnp.sum(cnp.exp(x * 0.5) * x * W(x)),
    "log": lambda x: cnp.sum(cnp.log(x + 1.0) * x * W(x)),
    "log1p": lambda x: cnp.sum(cnp.log1p(x * 0.5) * x * W(x)),
    "sqrt": lambda x: cnp.sum(cnp.sqrt(x + 1.0) * x * W(x)),
    "sin": lambda x: cnp.sum(cnp.sin(x * 1.5) * x * W(x)),
    "cos": lambda x: cnp.sum(cnp.cos(x * 1.5) * x * W(x)),
    "square": lambda x: cnp.sum(cnp.square(x + 1.0) * x * W(x)),
    "negative": lambda x: cnp.sum(-(x * 2.0) * x * W(x)),
    "multiply": lambda x: cnp.sum((x * R(x)) * 3.0 * W(x) + (x * 2.0) * x),
    "divide": lambda x: cnp.sum((x / R(x)) * 3.0 * W(x) + (x / 2.0) * W(x)),
    "power": lambda x: cnp.sum((x ** 2) * W(x) + (x ** 3) * W(x) + x ** 2.5 * W(x)),
    "relu": lambda x: cnp.sum(cr.nn.functional.relu(x * 1.5 - 1.0) * x * W(x)),
}


@pytest.mark.parametrize("name", sorted(IN_PLACE_CASES))
def test_in_place_rules_agree_with_the_pure_rules(name):
    assert registry[name].vjp_inplace is not None
    for dtype in (np.float64, np.float32):
        lean, pure = _both_sweeps(IN_PLACE_CASES[name], _POS.astype(dtype))
        assert lean[0].dtype == dtype
        np.testing.assert_allclose(lean[0], pure[0], rtol=1e-6 if dtype == np.float32 else 1e-12)
    ref = cr.grad(lambda v: IN_PLACE_CASES[name](v))(_POS)
    np.testing.assert_allclose(_both_sweeps(IN_PLACE_CASES[name], _POS)[0][0], ref, rtol=1e-12)


def test_every_in_place_rule_has_a_case():
    have = {n for n, p in registry.items() if p.vjp_inplace is not None}
    assert have <= set(IN_PLACE_CASES), sorted(have - set(IN_PLACE_CASES))


def test_in_place_accumulation_leaves_shared_cotangents_alone():
    # add hands the same cotangent to both inputs: neither may be written into.
    x = cr.tensor(_ANY.copy(), requires_grad=True)
    y = cr.tensor(_ANY.copy(), requires_grad=True)
    s = x + y
    cnp.sum(cnp.tanh(s) + cnp.exp(s) + x * 2.0).backward()
    t = np.tanh(_ANY + _ANY)
    d = (1 - t * t) + np.exp(_ANY + _ANY)
    np.testing.assert_allclose(x.grad, d + 2.0)
    np.testing.assert_allclose(y.grad, d)


def test_gradient_tape_targets_are_not_written_into():
    x = cr.tensor(_POS.copy())
    with cr.GradientTape() as tape:
        tape.watch(x)
        h = x * 2.0
        y = cnp.sum(cnp.tanh(h) * 3.0)
    gh, gx = tape.gradient(y, [h, x])
    t = np.tanh(2 * _POS)
    np.testing.assert_allclose(gh, 3 * (1 - t * t))
    np.testing.assert_allclose(gx, 6 * (1 - t * t))


def test_logsumexp_is_one_primitive_with_exact_rules():
    x = cr.tensor(np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -np.inf]]), requires_grad=True)
    y = cnp.logsumexp(x, axis=1)
    assert y._node._prim.name == "reduce_logsumexp"
    np.testing.assert_allclose(y.data, [np.log(np.exp([1.0, 2.0, 3.0]).sum()),
                                        1000.0 + np.log(2.0)])
    y.sum().backward()
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(x.grad, [e / e.sum(), [0.5, 0.5, 0.0]])
    assert float(cnp.logsumexp([1000.0, 1000.0])) == pytest.approx(1000.0 + np.log(2.0))


# Rules with a NumPy fast path (no graph of the gradient is built) next to the general rule
# that create_graph runs: ties, NaNs, batch shapes and broadcasting included.
FAST_PATH_CASES = {
    "max keepdims": lambda x: cnp.sum((x - cnp.max(x, axis=1, keepdims=True)) ** 2 * W(x)),
    "max ties": lambda x: cnp.sum(cnp.max(x[:, [0, 0, 1]], axis=1) * x[:, 2]),
    "min axis 0": lambda x: cnp.sum(cnp.min(x, axis=0) * R(x)),
    "max all": lambda x: cnp.max(x * W(x)) * 2.0,
    "logsumexp": lambda x: cnp.sum(cnp.logsumexp(x * W(x), axis=1) * x[:, 0]),
    "logsumexp keepdims": lambda x: cnp.sum(cnp.logsumexp(x, axis=0, keepdims=True) * R(x)),
    "logsumexp all": lambda x: cnp.logsumexp(x * W(x)) * 3.0,
    "subtract row": lambda x: cnp.sum((W(x) - x[0]) * x * W(x)),
    "add bias": lambda x: cnp.sum(cnp.tanh(x @ W(x).T + x[:, 0]) * 2.0),
    "mean": lambda x: cnp.mean((x - cnp.mean(x, axis=0)) ** 2),
    # (x - x[0, 0] ties with 0 at one entry: the tie shares the cotangent, the rule falls back)
    "maximum": lambda x: cnp.sum(cnp.maximum(x - 1.0, 0.0) * x * W(x)
                                 + cnp.maximum(x - x[0, 0], 0.0) * x * W(x)),
    "minimum": lambda x: cnp.sum(cnp.minimum(1.0, x) * x * W(x)
                                 + cnp.minimum(x[0, 0], x) * x * W(x)),
    "fmax": lambda x: cnp.sum(cnp.fmax(x - 1.0, np.nan) * x * W(x)
                              + cnp.fmax(x - x[0, 0], 0.0) * x * W(x)),
    "fmin": lambda x: cnp.sum(cnp.fmin(1.0, x) * x * W(x) + cnp.fmin(np.nan, x) * x * W(x)),
}


@pytest.mark.parametrize("name", sorted(FAST_PATH_CASES))
def test_numpy_fast_paths_agree_with_the_general_rules(name):
    for dtype in (np.float64, np.float32):
        lean, pure = _both_sweeps(FAST_PATH_CASES[name], _POS.astype(dtype))
        assert lean[0].dtype == dtype
        np.testing.assert_allclose(lean[0], pure[0], rtol=1e-5 if dtype == np.float32 else 1e-12)
    cr.check_grads(FAST_PATH_CASES[name], (_POS,), order=2, modes=("rev",))


def test_max_and_logsumexp_fast_paths_keep_ties_and_nans():
    x = cr.tensor(np.array([[1.0, 3.0, 3.0], [2.0, np.nan, 1.0], [0.0, 1.0, -1.0]]),
                  requires_grad=True)
    with np.errstate(invalid="ignore"):  # (0/0 weights where a row holds a NaN)
        cnp.sum(cnp.max(x, axis=1) * np.array([1.0, 2.0, 3.0])).backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5], [np.nan] * 3, [0.0, 3.0, 0.0]])
    x = cr.tensor(np.array([[0.0, -np.inf], [np.inf, 1.0]]), requires_grad=True)
    cnp.sum(cnp.logsumexp(x[:1], axis=1)).backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 0.0], [0.0, 0.0]])


def test_relu_by_maximum_ties_and_nans():
    a = np.array([-1.0, 0.0, 2.0, np.nan])
    x = cr.tensor(a, requires_grad=True)
    cnp.sum(cnp.maximum(x, 0.0) * np.array([1.0, 2.0, 3.0, 4.0])).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 3.0, 0.0])
    x = cr.tensor(a[:3].copy(), requires_grad=True)
    cnp.sum(cnp.maximum(x, 0.0) * np.array([1.0, 2.0, 3.0])).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 3.0])


# --- select ops (maximum, minimum, fmax, fmin): their rule is one select_grad ----------------

_E = importlib.import_module("chainrule.ops.elementwise")


def _share_reference(g, x, y, op, first):
    """The rule written out: g where the operand wins, g / 2 at ties, 0 elsewhere."""
    wins = {"maximum": np.greater, "minimum": np.less}[op]
    a, b = (x, y) if first else (y, x)
    return np.where(wins(a, b), g, np.where(x == y, g * 0.5, 0.0))


@pytest.mark.parametrize("op", ["maximum", "minimum"])
@pytest.mark.parametrize("first", [True, False])
def test_select_grad_kernels_agree_with_the_rule_written_out(op, first):
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, (4, 5)).astype(float)  # many ties
    y = rng.integers(-2, 3, (5,)).astype(float)
    g = rng.standard_normal((4, 5))
    want = _share_reference(g, x, y, op, first)
    assert np.any(x == y)
    assert np.array_equal(_E.select_grad(g, x, y, op=op, first=first), want)
    assert np.array_equal(_E._select_grad_impl(np, g, x, y, op, first), want)
    out = np.full_like(g, np.nan)
    assert np.array_equal(_E._select_grad_into(g, x, y, out=out, op=op, first=first), want)
    xt = x + 0.25  # no ties: the one-multiply path
    out = np.full_like(g, np.nan)
    _E._select_grad_into(g, xt, y, out=out, op=op, first=first)
    assert np.array_equal(out, _share_reference(g, xt, y, op, first))


def test_select_grad_without_a_share_at_ties_is_a_mask():
    g = np.array([1.0, 2.0, 3.0])
    x = np.array([0.0, 1.0, -1.0])
    want = np.array([0.0, 2.0, 0.0])  # relu's rule: nothing at x == 0
    assert np.array_equal(_E.select_grad(g, x, 0.0, op="maximum", first=True, tie=0.0), want)
    assert np.array_equal(_E._select_grad_impl(np, g, x, 0.0, "maximum", True, 0.0), want)
    out = np.empty(3)
    _E._select_grad_into(g, x, 0.0, out=out, op="maximum", first=True, tie=0.0)
    assert np.array_equal(out, want)


def test_select_grad_into_may_write_over_the_cotangent():
    g = np.array([1.0, 2.0, 3.0])
    x = np.array([0.0, 1.0, -1.0])
    _E._select_grad_into(g, x, 0.0, out=g, op="maximum", first=True)
    assert np.array_equal(g, [0.5, 2.0, 0.0])


def test_recorded_maximum_backward_is_one_mask_multiply():
    f = cr.compile(cr.grad(lambda z: cnp.sum(cnp.maximum(z, 0.0) ** 2)))
    z = np.array([-1.0, 0.0, 2.0, 3.0] * 2000)
    assert np.array_equal(f(z), np.where(z > 0, 2 * z, 0.0))
    src = f.source(z)
    assert "select_grad" in src and "where" not in src


def test_select_rules_under_create_graph_and_forward_mode():
    x = np.array([-1.0, 0.0, 2.0])
    # d/dx sum(max(x, 0) * x) = x * [x > 0] + max(x, 0) (tie at 0 shares 1/2 of 0)
    h = cr.hessian(lambda v: cnp.sum(cnp.maximum(v, 0.0) * v))(x)
    assert np.allclose(h, np.diag([0.0, 1.0, 2.0]))
    j = cr.jacfwd(lambda v: cnp.minimum(v, 0.0))(x)
    assert np.allclose(j, np.diag([1.0, 0.5, 0.0]))
