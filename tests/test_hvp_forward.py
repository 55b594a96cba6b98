"""hvp entered directly (one reverse level around one forward level) and the forward-level
bind: values against closed forms and finite differences, structures, errors, nesting."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp

rng = np.random.default_rng(7)


def _tanh_square_problem(n: int = 6):
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    return A, rng.standard_normal(n), rng.standard_normal(n)


def _closed_form_hvp(A, x, v):
    t = np.tanh(A @ x)
    s = 1 - t * t
    return A.T @ ((2 * s * s - 4 * t * t * s) * (A @ v))


def _fd_hvp(f, x, v, eps=1e-6):
    """Central differences of the gradient along v (an independent reference)."""
    g = cr.grad(f)
    return (g(x + eps * v) - g(x - eps * v)) / (2 * eps)


def test_hvp_of_tanh_matmul_matches_closed_form_and_differences():
    A, x, v = _tanh_square_problem()
    f = lambda x: cnp.sum(cnp.tanh(cnp.matmul(A, x)) ** 2)
    hv = cr.hvp(f, (x,), (v,))
    assert isinstance(hv, np.ndarray) and hv.shape == x.shape
    assert_allclose(hv, _closed_form_hvp(A, x, v), rtol=1e-10, atol=1e-12)
    assert_allclose(hv, _fd_hvp(f, x, v), rtol=1e-6, atol=1e-8)
    # the same as the composition it replaces
    direct = cr.grad(lambda y: cr.jvp(f, (y,), (v,))[1])(x)
    assert_allclose(hv, direct, rtol=1e-12)


def test_hvp_matrix_input_and_batched_lists():
    A = rng.standard_normal((3, 4))
    x, v = rng.standard_normal(4), rng.standard_normal(4)
    # differentiated with respect to the matrix: f(A) = sum((A x)^3)
    f = lambda M: cnp.sum(cnp.matmul(M, x) ** 3)
    V = rng.standard_normal((3, 4))
    hv = cr.hvp(f, (A,), (V,))
    u, du = A @ x, V @ x
    assert_allclose(hv, np.outer(6 * u * du, x), rtol=1e-10)
    # a list of tensors is an array at the forward level too
    g = lambda y: cnp.sum(cnp.add([y, 2.0 * y], 1.0) ** 3)
    y = rng.standard_normal(3)
    assert_allclose(cr.hvp(g, (y,), (v[:3],)),
                    6 * (y + 1) * v[:3] + 2 * 6 * (2 * y + 1) * 2 * v[:3], rtol=1e-10)


def test_hvp_structures_several_primals_and_pytrees():
    f = lambda p, c: cnp.sum(p["w"] ** 2 * p["b"]) * c
    p = {"w": np.array([1.0, 2.0]), "b": np.array(3.0)}
    t = {"w": np.array([1.0, 0.0]), "b": np.array(1.0)}
    hp, hc = cr.hvp(f, (p, 2.0), (t, 0.0))
    assert set(hp) == {"w", "b"} and hp["b"].shape == () and np.asarray(hc).shape == ()
    # H of c * b * sum(w^2): d2/dw2 = 2 b c, d2/dw db = 2 w c, d2/dw dc = 2 b w, ...
    assert_allclose(hp["w"], 2 * 3.0 * 2.0 * t["w"] + 2 * p["w"] * 2.0 * t["b"])
    assert_allclose(hp["b"], np.sum(2 * p["w"] * 2.0 * t["w"]))
    assert_allclose(hc, np.sum(2 * p["w"] * 3.0 * t["w"]) + np.sum(p["w"] ** 2) * t["b"])


def test_hvp_of_functions_without_curvature_is_zero():
    x, v = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    linear = cr.hvp(lambda y: cnp.sum(3.0 * y), (x,), (v,))
    constant = cr.hvp(lambda y: cnp.sum(np.ones(2)), (x,), (v,))
    for hv in (linear, constant):
        assert isinstance(hv, np.ndarray) and hv.shape == (2,)
        assert_allclose(hv, 0.0)
    assert cr.hvp(lambda y: cnp.sum(y ** 2), (x,), (v.astype(np.float32),)).dtype == np.float64


def test_hvp_errors_name_hvp():
    x, v = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    with pytest.raises(TypeError, match="tuples"):
        cr.hvp(cnp.sum, x, v)
    with pytest.raises(TypeError, match=r"hvp requires f to return a scalar.*\(2,\)"):
        cr.hvp(lambda y: y ** 2, (x,), (v,))
    with pytest.raises(TypeError, match="hvp requires f to return a scalar"):
        cr.hvp(lambda y: (cnp.sum(y), cnp.sum(y)), (x,), (v,))
    with pytest.raises(TypeError, match="real-valued"):
        cr.hvp(lambda y: cnp.sum(y ** 2) * 1j, (x,), (v,))
    with pytest.raises(ValueError, match="hvp: tangent leaf 0 has shape"):
        cr.hvp(cnp.sum, (x,), (np.ones(3),))
    with pytest.raises(ValueError, match="hvp: primals have structure"):
        cr.hvp(cnp.sum, (x,), (v, v))
    with pytest.raises(TypeError, match="hvp: primal leaf 0 .*int"):
        cr.hvp(cnp.sum, (np.array([1, 2]),), (v,))


def test_hvp_nests_and_batches():
    A, x, v = _tanh_square_problem(4)
    f = lambda x: cnp.sum(cnp.tanh(cnp.matmul(A, x)) ** 2)
    # third order: d/dx <w, H(x) v> by finite differences of the hvp
    w = rng.standard_normal(4)
    third = cr.grad(lambda y: cnp.sum(cr.hvp(f, (y,), (v,)) * w))(x)
    eps = 1e-6
    fd = np.array([(np.dot(cr.hvp(f, (x + eps * e,), (v,)), w)
                    - np.dot(cr.hvp(f, (x - eps * e,), (v,)), w)) / (2 * eps)
                   for e in np.eye(4)])
    assert_allclose(third, fd, rtol=1e-5, atol=1e-8)
    # forward over the hvp (a jvp of it) and vmap over tangents
    out, t = cr.jvp(lambda y: cr.hvp(f, (y,), (v,)), (x,), (w,))
    along = (cr.hvp(f, (x + eps * w,), (v,)) - cr.hvp(f, (x - eps * w,), (v,))) / (2 * eps)
    assert_allclose(out, _closed_form_hvp(A, x, v), rtol=1e-10)
    assert_allclose(t, along, rtol=1e-5, atol=1e-8)
    V = rng.standard_normal((3, 4))
    batched = cr.vmap(lambda u: cr.hvp(f, (x,), (u,)))(V)
    assert_allclose(batched, np.stack([_closed_form_hvp(A, x, u) for u in V]), rtol=1e-10)


def test_forward_level_skips_rules_without_tangents_and_keeps_plain_results():
    x, v = np.array([0.5, -1.0]), np.array([1.0, 2.0])
    c = np.array([3.0, 4.0])

    def f(y):
        mask = cnp.greater(y, 0.0)  # not differentiable: a plain array
        assert type(mask) is np.ndarray
        return cnp.where(mask, y * c, cnp.sin(c))  # sin(c) has no tangent: no rule runs

    out, t = cr.jvp(f, (x,), (v,))
    assert_allclose(out, np.where(x > 0, x * c, np.sin(c)))
    assert_allclose(t, np.where(x > 0, v * c, 0.0))
