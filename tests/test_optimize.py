"""cr.optimize.minimize: every method on a quadratic, Rosenbrock with the second-order ones,
user gradients, callbacks, results, and the errors."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.optimize import METHODS, OptimizeResult, minimize


def quadratic(v):
    return (v[0] + 5.0) ** 2 + (v[1] + 3.0) ** 2


def rosenbrock(v):
    return (1.0 - v[0]) ** 2 + 100.0 * (v[1] - v[0] ** 2) ** 2


def rosenbrock_grad(v):
    x, y = v
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_the_minimum_of_a_quadratic(method):
    res = minimize(quadratic, np.array([10.0, 4.0]), method=method)
    assert isinstance(res, OptimizeResult)
    assert res.success, res.message
    assert_allclose(res.x, [-5.0, -3.0], atol=1e-6)
    assert res.fun < 1e-10
    assert_allclose(res.jac, [0.0, 0.0], atol=1e-6)
    assert res.nit > 0 and res.method == method
    for key in ("x", "fun", "jac", "nit", "success", "message"):
        assert key in res


@pytest.mark.parametrize("method", ["lbfgs", "newton", "bfgs"])
def test_rosenbrock_from_the_classic_start(method):
    res = minimize(rosenbrock, [-1.2, 1.0], method=method)
    assert res.success, res.message
    assert_allclose(res.x, [1.0, 1.0], atol=1e-6)
    assert res.nit < 200


def test_newton_uses_exact_hessian_vector_products():
    calls = []
    x0 = np.array([-1.2, 1.0])

    def hessp(x, v):
        calls.append(1)
        return cr.hvp(rosenbrock, (x,), (v,))

    res = minimize(rosenbrock, x0, method="newton", hessp=hessp)
    assert calls and res.success
    auto = minimize(rosenbrock, x0, method="newton")
    assert_allclose(auto.x, res.x, atol=1e-10)
    assert auto.nit == res.nit  # the built-in HVPs are the exact ones


@pytest.mark.parametrize("method", ["lbfgs", "gd"])
def test_user_gradients(method):
    res = minimize(rosenbrock, [-1.2, 1.0], method=method, jac=rosenbrock_grad,
                   **({"lr": 1e-3, "max_iter": 20} if method == "gd" else {}))
    auto = minimize(rosenbrock, [-1.2, 1.0], method=method,
                    **({"lr": 1e-3, "max_iter": 20} if method == "gd" else {}))
    assert_allclose(res.x, auto.x, rtol=1e-8)
    both = minimize(lambda v: (rosenbrock(v), rosenbrock_grad(v)), [-1.2, 1.0], jac=True)
    assert_allclose(both.x, [1.0, 1.0], atol=1e-6)


def test_newton_with_a_user_gradient_written_in_chainrule_ops():
    grad = cr.grad(rosenbrock)
    res = minimize(rosenbrock, [-1.2, 1.0], method="newton", jac=grad)
    assert_allclose(res.x, [1.0, 1.0], atol=1e-6)


def test_shapes_are_kept_and_functions_of_matrices_work():
    target = np.arange(6.0).reshape(2, 3)

    def f(m):
        return cnp.sum((m - target) ** 2) + cnp.sum(m[0] * m[1])

    for method in ("lbfgs", "adam"):
        res = minimize(f, np.zeros((2, 3)), method=method, max_iter=5000)
        assert res.x.shape == (2, 3) and res.jac.shape == (2, 3)
        assert_allclose(res.jac, 0.0, atol=1e-6)


def test_callback_is_called_every_iteration_with_x():
    seen = []
    res = minimize(quadratic, [10.0, 4.0], method="gd", callback=lambda x: seen.append(x.copy()))
    assert len(seen) == res.nit
    assert_allclose(seen[-1], res.x)
    seen.clear()
    res = minimize(quadratic, [10.0, 4.0], method="bfgs", callback=lambda x: seen.append(x))
    assert len(seen) == res.nit and seen[0].shape == (2,)


def test_options_progress_and_max_iter(capsys):
    res = minimize(quadratic, [10.0, 4.0], method="gd", lr=0.01, max_iter=5, progress=True)
    assert res.nit == 5 and not res.success and "maximum" in res.message
    res = minimize(quadratic, [10.0, 4.0], method="momentum", lr=0.05, beta=0.5)
    assert res.success
    res = minimize(quadratic, [10.0, 4.0], method="lbfgs", progress=True)
    assert res.success
    # SciPy's spelling of the options: a dict (no "unknown solver option" warning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = minimize(rosenbrock, [-1.2, 1.0], method="L-BFGS-B", options={"maxiter": 3})
    assert res.nit == 3 and not res.success
    with pytest.raises(TypeError, match="options must be a dict"):
        minimize(quadratic, [1.0, 1.0], options=3)


def test_float32_start_stays_float32_for_own_methods():
    res = minimize(quadratic, np.array([10.0, 4.0], np.float32), method="adam", tol=1e-4)
    assert res.x.dtype == np.float32
    assert_allclose(res.x, [-5.0, -3.0], atol=1e-3)


def test_divergence_is_reported():
    with np.errstate(over="ignore", invalid="ignore"):
        res = minimize(quadratic, [10.0, 4.0], method="gd", lr=10.0, max_iter=2000)
    assert not res.success and "non-finite" in res.message


def test_errors():
    with pytest.raises(ValueError, match="unknown method"):
        minimize(quadratic, [0.0, 0.0], method="simplex")
    with pytest.raises(TypeError, match="unknown options"):
        minimize(quadratic, [0.0, 0.0], method="gd", learning_rate=0.1)
    with pytest.raises(ValueError, match="scalar"):
        minimize(lambda v: v * 2, [0.0, 0.0], method="gd", jac=lambda v: v)
    with pytest.raises(ValueError, match="lr"):
        minimize(quadratic, [0.0, 0.0], method="adam", lr=-1.0)


def test_scipy_methods_need_scipy(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    with pytest.raises(ImportError, match="SciPy"):
        minimize(quadratic, [0.0, 0.0], method="lbfgs")
    assert minimize(quadratic, [10.0, 4.0], method="gd").success  # own methods still work
