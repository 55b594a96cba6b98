"""No silent escapes, the remaining cases: conversions while tracing for ``cr.compile``,
complex outputs seeded without a gradient, complex ``x0`` in ``minimize`` (issues 18.3, 13.1,
16.7)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
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
