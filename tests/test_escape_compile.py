"""No silent escapes, the remaining cases: conversions while tracing for ``cr.compile``,
complex outputs seeded without a gradient, complex ``x0`` in ``minimize`` (issues 18.3, 13.1,
16.7)."""

from __future__ import annotations

import math
import operator

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import graph as G
from chainrule.optimize import minimize

# --- complex outputs need an explicit output gradient -----------------------------------------


def test_backward_of_a_complex_output_needs_a_gradient():
    z = cr.tensor(1 + 2j, requires_grad=True)
    y = z * z
    with pytest.raises(TypeError, match=r"backward\(\).*complex.*grad="):
        y.backward(retain_graph=True)
    y.backward(np.array(1 + 0j))  # explicit: allowed, as before
    assert z.grad is not None
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    cnp.sum(cnp.abs(w * (1 + 1j)) ** 2).backward()  # a real output of complex steps: fine
    assert_allclose(w.grad, 4 * np.array([1.0, 2.0]))


def test_tape_gradient_of_a_complex_target_needs_output_gradients():
    z = cr.tensor([1 + 2j, 3 - 1j])
    with cr.GradientTape(persistent=True) as tape:
        tape.watch(z)
        y = cnp.sum(z * z)
        r = cnp.real(y)
    with pytest.raises(TypeError, match=r"GradientTape\.gradient\(\).*output_gradients="):
        tape.gradient(y, z)
    assert tape.gradient(y, z, output_gradients=np.array(1 + 0j)) is not None
    assert tape.gradient(r, z) is not None


# --- minimize over complex x0: real pairs, never a silent cast ---------------------------------

TARGET = np.array([1 + 2j, -0.5 + 0.3j])


def _complex_objective(z):
    return cnp.sum(cnp.abs(z - TARGET) ** 2) + cnp.sum(cnp.real(z) ** 4)


def _expected():
    # the imaginary parts match TARGET's; each real part solves 2 (x - a) + 4 x^3 = 0
    re = [min(np.roots([4, 0, 2, -2 * a]), key=lambda r: abs(r.imag)).real for a in TARGET.real]
    return np.array(re) + 1j * TARGET.imag


@pytest.mark.parametrize("method", ["gd", "adam", "lbfgs", "bfgs", "newton"])
def test_minimize_complex_x0_optimises_real_and_imaginary_parts(method):
    if method in ("lbfgs", "bfgs", "newton"):
        pytest.importorskip("scipy")
    kw = {"lr": 0.05} if method in ("gd", "adam") else {}
    res = minimize(_complex_objective, np.zeros(2, complex), method=method, max_iter=5000,
                   tol=1e-8, **kw)
    assert res.x.dtype == np.complex128 and res.jac.dtype == np.complex128
    assert_allclose(res.x, _expected(), atol=1e-5)
    assert np.max(np.abs(res.jac)) < 1e-5


def test_minimize_complex_x0_with_user_gradients_and_callback():
    pytest.importorskip("scipy")
    seen = []
    res = minimize(cr.value_and_grad(_complex_objective), np.zeros(2, complex), jac=True,
                   method="lbfgs", callback=seen.append)
    assert_allclose(res.x, _expected(), atol=1e-6)
    assert seen and all(np.iscomplexobj(x) and x.shape == (2,) for x in seen)
    res = minimize(_complex_objective, np.zeros(2, complex), jac=cr.grad(_complex_objective),
                   method="newton")
    assert_allclose(res.x, _expected(), atol=1e-6)
    # the gradient at the solution is in cr.grad's convention
    assert_allclose(res.jac, cr.grad(_complex_objective)(res.x), atol=1e-8)


# --- tracing for cr.compile: conversions raise, control flow and explicit reads are guarded ------

CONVERSIONS = {
    "asarray": np.asarray,
    "array": np.array,
    "__array__": lambda x: x.__array__(),
    "item": lambda x: x.item(),
    "tolist": lambda x: x.tolist(),
    "numpy": lambda x: x.numpy(),
    "float64": np.float64,
    "float": float,
    "complex": complex,
    "math.sin": math.sin,
    "interp": lambda x: np.interp(x, [0, 2], [0, 4]),  # a NumPy function chainrule lacks
}


@pytest.mark.parametrize("conversion", sorted(CONVERSIONS))
@pytest.mark.parametrize("shape", [(), (3,)])
def test_conversions_of_values_traced_by_compile_raise(conversion, shape):
    if conversion in ("float", "complex", "math.sin") and shape:
        pytest.skip("Python numbers of one element only")
    convert = CONVERSIONS[conversion]
    f = cr.compile(lambda x: cnp.sum(x * convert(x * 2.0)))
    with pytest.raises(TypeError, match=r"cr\.compile.*chainrule\.numpy.*cr\.stop_gradient"):
        f(np.full(shape, 1.5))
    assert f.trace_count == 0  # refused while tracing: nothing was cached


def test_a_numpy_function_chainrule_lacks_is_named():
    f = cr.compile(lambda x: x * np.interp(x, [0, 2], [0, 4]))
    with pytest.raises(TypeError, match=r"numpy\.interp.*cr\.compile"):
        f(np.ones(3))


def test_under_compile_of_grad_the_innermost_transform_is_named():
    f = cr.compile(cr.grad(lambda x: x * float(x)))
    with pytest.raises(TypeError, match=r"cr\.grad"):
        f(1.5)
    g = cr.compile(cr.grad(lambda x: x * np.asarray(cr.stop_gradient(x) * 2.0)))
    with pytest.raises(TypeError, match=r"cr\.compile"):  # cut from grad, still traced
        g(1.5)


def test_bool_int_index_and_comparisons_keep_python_control_flow_working():
    def f(x):
        y = x * 2.0 if x.sum() > 0 else -x  # bool() of a comparison
        if np.any(x > 5):                    # a NumPy function with a boolean answer
            y = y + 100.0
        return y * x[int(x[0])] + x[operator.index(x[1].astype(int))]

    g = cr.compile(f)
    for x in ([1.0, 0.0, 3.0], [-1.0, 2.0, 1.0], [0.0, 1.0, 7.0], [1.0, 0.0, 3.0]):
        x = np.array(x)
        assert_allclose(g(x), f(x))
    assert g.trace_count == 3  # each new branch traced once; the first program is reused


def test_explicit_reads_of_cut_values_are_guarded():
    g = cr.compile(cr.grad(lambda x: x * float(cr.stop_gradient(x))))
    assert_allclose([g(1.5), g(2.5), g(1.5)], [1.5, 2.5, 1.5])
    assert g.trace_count == 2
    h = cr.compile(lambda x: x * np.asarray(x.detach()).sum() + x.data.item())
    assert_allclose(h(np.float64(2.0)), 6.0)
    assert_allclose(h(np.float64(3.0)), 12.0)
    assert h.trace_count == 2


def test_anonymous_traces_still_read_with_guards():
    # sparsity detection traces without a transform name: a read shows as a guard
    prog, _, _ = G.trace(lambda x: x * float(x), 2.0)
    assert any(e.out is None for e in prog.eqns)


RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 3))
X = RNG.standard_normal((5, 4))
LABELS = np.array([0, 1, 2, 1, 0])
F = cr.nn.functional
LOSSES = {
    "cross_entropy": lambda w, x, t: F.cross_entropy(x @ w, t),
    "cross_entropy_smoothed": lambda w, x, t: F.cross_entropy(x @ w, t, label_smoothing=0.1),
    "cross_entropy_weighted": lambda w, x, t: F.cross_entropy(x @ w, t,
                                                              weight=np.array([1.0, 2.0, 3.0])),
    "cross_entropy_probabilities": lambda w, x, t: F.cross_entropy(
        x @ w, cnp.exp(x @ w) / cnp.sum(cnp.exp(x @ w), axis=1, keepdims=True)),
    "nll_loss": lambda w, x, t: F.nll_loss(cnp.tanh(x @ w), t),
    "one_hot": lambda w, x, t: cnp.sum(F.one_hot(t, 3) * (x @ w)),
    "binary_cross_entropy": lambda w, x, t: F.binary_cross_entropy(
        1 / (1 + cnp.exp(-(x @ w))), np.full((5, 3), 0.25)),
    "integer_array_index": lambda w, x, t: cnp.sum((x @ w)[np.arange(5), t]) + cnp.sum(w[t[:3]]),
    "sort": lambda w, x, t: cnp.sum(cnp.sort(x @ w, axis=1)[:, -1]),
    "boolean_mask": lambda w, x, t: cnp.sum((x @ w)[(x @ w) > 0]),
    "argsort": lambda w, x, t: cnp.sum(cnp.take_along_axis(
        x @ w, cnp.argsort(x @ w, axis=1), axis=1)[:, 0]),
    "nonzero": lambda w, x, t: cnp.sum(w[cnp.nonzero(t)[0] % 4]),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_chainrule_code_reading_values_works_under_compile(name):
    loss = LOSSES[name]
    f = cr.compile(cr.value_and_grad(loss))
    for x, t in ((X, LABELS), (X + 0.3, LABELS), (X, LABELS[::-1].copy())):
        v, g = f(W, x, t)
        ve, ge = cr.value_and_grad(loss)(W, x, t)
        assert_allclose(v, ve, rtol=1e-12)
        assert_allclose(g, ge, rtol=1e-12, atol=1e-14)
    # new float values never re-trace; new labels may (their read is guarded)
    assert f.trace_count <= 2
