"""Function transforms: grad, value_and_grad, vjp, jvp, jacfwd, jacrev, jacobian, hessian, hvp.

Values are checked against closed forms and central finite differences;
nesting is checked for perturbation confusion; pytrees for structure.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.pytree import tree_flatten, tree_map, tree_structure, tree_unflatten

rng = np.random.default_rng(0)


def fd_jacobian(f, x, eps=1e-6):
    """Central-difference Jacobian of f (array -> array) at x: shape out.shape + x.shape."""
    x = np.asarray(x, dtype=np.float64)
    out = np.asarray(f(x))
    jac = np.zeros(out.shape + x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        jac[(...,) + i] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps)
    return jac


# --- grad / value_and_grad ------------------------------------------------------------------

def test_grad_scalar_and_vector():
    assert_allclose(cr.grad(lambda x: cnp.sin(x) + cnp.cos(x))(np.pi), -1.0, rtol=1e-12)
    x = rng.standard_normal(5)
    g = cr.grad(lambda x: cnp.sum(cnp.tanh(x) * x))(x)
    assert_allclose(g, np.tanh(x) + x * (1 - np.tanh(x) ** 2), rtol=1e-12)


def test_grad_returns_plain_arrays_of_the_input_dtype():
    g = cr.grad(lambda x: x * x)(3.0)
    assert type(g) is np.ndarray and g.shape == () and g.dtype == np.float64
    assert_allclose(g, 6.0)
    x32 = np.array([1.0, 2.0], dtype=np.float32)
    g32 = cr.grad(lambda x: cnp.sum(cnp.exp(x)))(x32)
    assert type(g32) is np.ndarray and g32.dtype == np.float32
    assert_allclose(g32, np.exp(x32), rtol=1e-6)
    v, g = cr.value_and_grad(lambda x: cnp.sum(x * x))(x32)
    assert v.dtype == np.float32 and type(v) is np.ndarray


def test_grad_argnums_int_tuple_negative_and_kwargs():
    f = lambda x, y, z, scale=1.0: scale * cnp.sum(x * y ** 2 + z)
    x, y, z = np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array(0.5)
    assert_allclose(cr.grad(f)(x, y, z), y ** 2)
    assert_allclose(cr.grad(f, argnums=1)(x, y, z, scale=2.0), 4 * x * y)
    gx, gz = cr.grad(f, argnums=(0, 2))(x, y, z)
    assert_allclose(gx, y ** 2)
    assert_allclose(gz, 2.0)
    (gz2,) = cr.grad(f, argnums=(-1,))(x, y, z)
    assert_allclose(gz2, 2.0)


def test_grad_errors():
    with pytest.raises(TypeError, match=r"scalar.*shape \(2,\)"):
        cr.grad(lambda x: x * 2)(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="scalar"):
        cr.grad(lambda x: (x, x))(1.0)
    with pytest.raises(TypeError, match="int64"):
        cr.grad(lambda x: x * 2.0)(np.array(3))
    with pytest.raises(ValueError, match="argnums"):
        cr.grad(lambda x: x)(1.0) if False else cr.grad(lambda x: x, argnums=3)(1.0)
    with pytest.raises(TypeError, match="argnums"):
        cr.grad(lambda x: x, argnums="0")(1.0)
    with pytest.raises(ValueError, match="repeats"):
        cr.grad(lambda x, y: x * y, argnums=(0, 0))(1.0, 2.0)
    with pytest.raises(TypeError, match="pair"):
        cr.grad(lambda x: x * x, has_aux=True)(1.0)


def test_grad_has_aux_and_value_and_grad():
    def f(x):
        y = cnp.sum(x ** 2)
        return y, {"y": y, "double": 2 * x}

    x = np.array([1.0, 2.0])
    g, aux = cr.grad(f, has_aux=True)(x)
    assert_allclose(g, 2 * x)
    assert type(aux["y"]) is np.ndarray and type(aux["double"]) is np.ndarray
    assert_allclose(aux["double"], 2 * x)
    (v, aux2), g2 = cr.value_and_grad(f, has_aux=True)(x)
    assert_allclose(v, 5.0)
    assert_allclose(g2, 2 * x)
    assert_allclose(aux2["y"], 5.0)


def test_grad_of_function_not_depending_on_input_is_zero():
    g = cr.grad(lambda x: 3.0)(np.array([1.0, 2.0]))
    assert_allclose(g, [0.0, 0.0])
    g2 = cr.grad(lambda x, y: cnp.sum(y * 2.0), argnums=(0, 1))(np.ones((2, 2)), np.ones(3))
    assert g2[0].shape == (2, 2) and np.all(g2[0] == 0)
    assert_allclose(g2[1], 2.0 * np.ones(3))


def test_stop_gradient_and_no_grad_inside_and_outside():
    f = lambda x: x * cnp.stop_gradient(x)          # d/dx = stop(x) = x
    assert_allclose(cr.grad(f)(3.0), 3.0)
    with cr.no_grad():                               # a transform opens its own level
        assert_allclose(cr.grad(lambda x: x ** 2)(3.0), 6.0)

    def g(x):
        with cr.no_grad():
            y = x * 2.0                              # not recorded: a constant
        return x * y

    assert_allclose(cr.grad(g)(3.0), 6.0)


def test_jacobians_has_aux():
    f = lambda x: (x ** 2, {"n": cnp.sum(x)})
    x = np.array([1.0, 2.0])
    for jac in (cr.jacfwd, cr.jacrev, cr.jacobian):
        J, aux = jac(f, has_aux=True)(x)
        assert_allclose(J, np.diag(2 * x))
        assert type(aux["n"]) is np.ndarray
        assert_allclose(aux["n"], 3.0)


def test_grad_identity_and_fan_out():
    assert_allclose(cr.grad(lambda x: x)(2.0), 1.0)
    assert_allclose(cr.grad(lambda x: x * x + x * x * x)(2.0), 2 * 2 + 3 * 4)


def test_grad_on_eager_tensor_is_differentiable_again():
    x = cr.tensor(2.0, requires_grad=True)
    g = cr.grad(lambda z: z ** 3)(x)       # 3 x^2, recorded at the eager level
    assert_allclose(np.asarray(g.detach()), 12.0)
    g.backward()
    assert_allclose(x.grad, 12.0)          # 6 x
    # An inert tensor (no grad) is looked through: the result is a plain array.
    g2 = cr.grad(lambda z: z ** 3)(cr.tensor(2.0))
    assert type(g2) is np.ndarray


# --- pytrees ---------------------------------------------------------------------------------

Params = namedtuple("Params", ["w", "b"])


def test_grad_pytree_structures():
    def loss(p, x):
        return cnp.sum((p["layer"][0] * x + p["layer"][1]) ** 2) + p["scale"] ** 2

    p = {"layer": [np.array([1.0, -2.0]), np.array(0.5)], "scale": np.array(3.0)}
    x = np.array([0.3, 0.7])
    g = cr.grad(loss)(p, x)
    assert tree_structure(g) == tree_structure(p)
    r = p["layer"][0] * x + p["layer"][1]
    assert_allclose(g["layer"][0], 2 * r * x)
    assert_allclose(g["layer"][1], np.sum(2 * r))
    assert_allclose(g["scale"], 6.0)

    gp = cr.grad(lambda q: cnp.sum(q.w * q.b))(Params(np.array([1.0, 2.0]), np.array(3.0)))
    assert isinstance(gp, Params)
    assert_allclose(gp.w, [3.0, 3.0])
    assert_allclose(gp.b, 3.0)

    gt = cr.grad(lambda t: t[0] * t[1][0])((2.0, [5.0, None]))
    assert isinstance(gt, tuple) and isinstance(gt[1], list) and gt[1][1] is None
    assert_allclose(gt[0], 5.0)
    assert_allclose(gt[1][0], 2.0)


def test_pytree_flatten_unflatten_map():
    tree = {"b": (1.0, [2.0, None]), "a": Params(3.0, 4.0)}
    leaves, td = tree_flatten(tree)
    assert leaves == [3.0, 4.0, 1.0, 2.0]
    assert tree_unflatten(td, leaves) == tree
    doubled = tree_map(lambda v: 2 * v, tree)
    assert doubled["a"] == Params(6.0, 8.0) and doubled["b"] == (2.0, [4.0, None])
    assert tree_structure({"x": 1, "y": 2}) == tree_structure({"y": 0, "x": 0})
    assert tree_structure((1, 2)) != tree_structure([1, 2])
    with pytest.raises(ValueError, match="differ"):
        tree_map(lambda a, b: a, (1, 2), (1, (2,)))
    with pytest.raises(ValueError, match="too few"):
        tree_unflatten(td, [1.0])
    with pytest.raises(ValueError, match="too many"):
        tree_unflatten(td, [1.0] * 5)
    assert "PyTreeDef" in repr(td)


# --- vjp / jvp ------------------------------------------------------------------------------

def test_vjp_several_primals_and_pytree_output():
    def f(x, y):
        return {"prod": x * y, "sum": cnp.sum(x) + y[0]}

    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    out, vjp_fn = cr.vjp(f, x, y)
    assert_allclose(out["prod"], x * y)
    assert_allclose(out["sum"], 6.0)
    ct = {"prod": np.array([1.0, 10.0]), "sum": np.array(2.0)}
    gx, gy = vjp_fn(ct)
    assert_allclose(gx, ct["prod"] * y + 2.0)
    assert_allclose(gy, ct["prod"] * x + np.array([2.0, 0.0]))
    gx2, gy2 = vjp_fn(ct)  # callable several times
    assert_allclose(gx2, gx)
    assert_allclose(gy2, gy)
    with pytest.raises(ValueError, match="structure"):
        vjp_fn(np.ones(2))
    with pytest.raises(ValueError, match="shape"):
        vjp_fn({"prod": np.ones(3), "sum": np.array(1.0)})


def test_vjp_has_aux_and_unconnected_input():
    out, vjp_fn, aux = cr.vjp(lambda x, y: (x * 2.0, "hello"), np.ones(3), np.ones(2),
                              has_aux=True)
    assert aux == "hello"
    gx, gy = vjp_fn(np.arange(3.0))
    assert_allclose(gx, 2 * np.arange(3.0))
    assert_allclose(gy, np.zeros(2))


def test_jvp_values_and_pytrees():
    x, v = np.array([0.1, 0.2, 0.3]), np.array([1.0, -1.0, 0.5])
    out, t = cr.jvp(lambda x: cnp.exp(x) * cnp.sin(x), (x,), (v,))
    assert_allclose(out, np.exp(x) * np.sin(x))
    assert_allclose(t, v * np.exp(x) * (np.sin(x) + np.cos(x)), rtol=1e-12)

    def f(p):
        return [p["a"] * p["b"], p["a"] + 1.0]

    p = {"a": np.array([1.0, 2.0]), "b": np.array(3.0)}
    tp = {"a": np.array([1.0, 0.0]), "b": np.array(1.0)}
    out, t = cr.jvp(f, (p,), (tp,))
    assert isinstance(out, list) and isinstance(t, list)
    assert_allclose(t[0], tp["a"] * 3.0 + p["a"] * 1.0)
    assert_allclose(t[1], tp["a"])
    # an output that does not depend on the input has a zero tangent
    _, tz = cr.jvp(lambda x: (x, np.ones(4)), (x,), (v,))
    assert_allclose(tz[1], np.zeros(4))


def test_jvp_errors():
    with pytest.raises(TypeError, match="tuples"):
        cr.jvp(cnp.sin, np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="shape"):
        cr.jvp(cnp.sin, (np.ones(2),), (np.ones(3),))
    with pytest.raises(ValueError, match="structure"):
        cr.jvp(lambda a, b: a * b, (1.0, 2.0), (1.0,))


def test_vjp_equals_transpose_of_jvp():
    A = rng.standard_normal((3, 4))

    def f(x):
        return cnp.tanh(cnp.sum(A * x, axis=1)) * cnp.sum(x ** 2)

    x, v, u = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(3)
    _, jv = cr.jvp(f, (x,), (v,))
    _, vjp_fn = cr.vjp(f, x)
    (uj,) = vjp_fn(u)
    assert_allclose(np.dot(u, jv), np.dot(uj, v), rtol=1e-12)


# --- Jacobians -----------------------------------------------------------------------------

def test_jacobians_closed_form_elementwise_and_reduction():
    A = rng.standard_normal((3, 4))
    x = rng.standard_normal(4)

    def f(x):  # tanh(A x) + x[:3]**2 without matmul: A x = sum(A * x, axis=1)
        return cnp.tanh(cnp.sum(A * x, axis=1)) + cnp.sum(x ** 2) * 0.5

    s = 1 - np.tanh(A @ x) ** 2
    expected = s[:, None] * A + x[None, :]
    for jac in (cr.jacfwd, cr.jacrev, cr.jacobian):
        assert_allclose(jac(f)(x), expected, rtol=1e-10, atol=1e-12)


def test_jacobian_matches_finite_differences_on_matrices():
    X = rng.standard_normal((2, 3))

    def f(X):
        return cnp.exp(X) * cnp.sum(X, axis=0, keepdims=True)

    expected = fd_jacobian(f, X)
    for jac in (cr.jacfwd(f), cr.jacrev(f)):
        J = jac(X)
        assert J.shape == (2, 3, 2, 3)
        assert_allclose(J, expected, rtol=1e-7, atol=1e-8)


def test_jacfwd_equals_jacrev_several_inputs_of_different_shapes():
    s, v, M = np.array(0.7), rng.standard_normal(3), rng.standard_normal((2, 3))

    def f(s, v, M):
        return {"mat": cnp.sin(M * v) * s, "vec": cnp.sum(M, axis=0) * v ** 2,
                "scalar": s * cnp.sum(v * v)}

    Jf = cr.jacfwd(f, argnums=(0, 1, 2))(s, v, M)
    Jr = cr.jacrev(f, argnums=(0, 1, 2))(s, v, M)
    shapes = {"mat": (2, 3), "vec": (3,), "scalar": ()}
    for key, oshape in shapes.items():
        for i, ishape in enumerate([(), (3,), (2, 3)]):
            assert Jf[key][i].shape == oshape + ishape
            assert Jr[key][i].shape == oshape + ishape
            assert_allclose(Jf[key][i], Jr[key][i], rtol=1e-12, atol=1e-14)
    # closed form of two blocks
    assert_allclose(Jf["scalar"][1], 2 * s * v)
    assert_allclose(Jr["mat"][0], np.sin(M * v))
    # and against finite differences, block by block
    assert_allclose(Jr["vec"][2], fd_jacobian(lambda M_: np.sum(M_, axis=0) * v ** 2, M),
                    rtol=1e-7, atol=1e-8)


def test_jacobian_pytree_input_dict():
    p = {"w": rng.standard_normal(3), "b": np.array(0.4)}
    f = lambda p: cnp.tanh(p["w"] * 2.0 + p["b"])
    Jf, Jr = cr.jacfwd(f)(p), cr.jacrev(f)(p)
    assert set(Jf) == {"w", "b"} and Jf["w"].shape == (3, 3) and Jf["b"].shape == (3,)
    d = 1 - np.tanh(p["w"] * 2 + p["b"]) ** 2
    assert_allclose(Jf["w"], np.diag(2 * d))
    assert_allclose(Jr["w"], np.diag(2 * d))
    assert_allclose(Jf["b"], d)
    assert_allclose(Jr["b"], d)


def test_jacobians_call_f_once_basis_is_batched():
    calls = []

    def f(x):
        calls.append(1)
        return cnp.sin(x) * 2.0

    x = rng.standard_normal(6)
    for jac in (cr.jacfwd, cr.jacrev):
        calls.clear()
        J = jac(f)(x)
        assert len(calls) == 1
        assert_allclose(J, np.diag(2 * np.cos(x)), atol=1e-15)


def test_jacobian_of_constant_and_identity():
    x = np.ones((2, 2))
    for jac in (cr.jacfwd, cr.jacrev):
        Z = jac(lambda x: np.arange(3.0))(x)
        assert Z.shape == (3, 2, 2) and np.all(Z == 0)
        eye = jac(lambda x: x)(x)
        assert_allclose(eye, np.eye(4).reshape(2, 2, 2, 2))


def test_jacobian_float32_is_kept():
    x = np.array([1.0, 2.0], dtype=np.float32)
    for jac in (cr.jacfwd, cr.jacrev):
        J = jac(lambda x: x * x)(x)
        assert J.dtype == np.float32
        assert_allclose(J, np.diag(2 * x))


class OnlyReverse(cr.Function):
    """A custom op with a backward but no jvp: forward mode must refuse it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 3.0

    @staticmethod
    def backward(ctx, g):
        return g * 3.0


class OnlyForward(cr.Function):
    """A custom op whose backward refuses to run: only forward mode can differentiate it."""

    @staticmethod
    def forward(ctx, x):
        return x * 5.0

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("reverse mode was used")

    @staticmethod
    def jvp(ctx, t):
        return t * 5.0


def test_jacobian_auto_picks_forward_for_tall_and_reverse_for_wide():
    wide_in, tall_in = np.ones(4), np.ones(2)
    wide = lambda op: (lambda x: cnp.sum(op(x)) * np.ones(2))     # 4 inputs -> 2 outputs
    tall = lambda op: (lambda x: cnp.concatenate([op(x), op(x)]) if hasattr(cnp, "concatenate")
                       else op(x) * np.ones((3, 1)))               # 2 inputs -> 4 or 6 outputs
    # wide: reverse mode is chosen (an op without a JVP works, one without VJP fails)
    assert_allclose(cr.jacobian(wide(OnlyReverse.apply))(wide_in), 3.0 * np.ones((2, 4)))
    with pytest.raises(RuntimeError, match="reverse mode was used"):
        cr.jacobian(wide(OnlyForward.apply))(wide_in)
    # tall: forward mode is chosen
    J = cr.jacobian(tall(OnlyForward.apply))(tall_in)
    assert J.shape[-1] == 2 and np.all(J.reshape(-1, 2).sum(axis=1) == 5.0)
    with pytest.raises(NotImplementedError, match="OnlyReverse"):
        cr.jacobian(tall(OnlyReverse.apply))(tall_in)
    # square: forward (n <= m)
    assert_allclose(cr.jacobian(OnlyForward.apply)(tall_in), 5.0 * np.eye(2))
    # explicit modes
    assert_allclose(cr.jacobian(OnlyReverse.apply, mode="rev")(tall_in), 3.0 * np.eye(2))
    assert_allclose(cr.jacobian(OnlyForward.apply, mode="fwd")(wide_in), 5.0 * np.eye(4))
    with pytest.raises(ValueError, match="mode"):
        cr.jacobian(cnp.sin, mode="sideways")


def test_function_jvp_is_used_and_missing_jvp_is_named():
    used = []

    class Cube(cr.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x ** 2 * g

        @staticmethod
        def jvp(ctx, t):
            used.append(1)
            (x,) = ctx.saved_tensors
            return 3 * x ** 2 * t

    x = np.array([1.0, 2.0])
    assert_allclose(cr.jacfwd(Cube.apply)(x), np.diag(3 * x ** 2))
    assert used
    assert_allclose(cr.jvp(Cube.apply, (x,), (np.ones(2),))[1], 3 * x ** 2)
    # second derivatives through the custom rules (written with chainrule ops)
    assert_allclose(cr.hessian(lambda x: cnp.sum(Cube.apply(x)))(x), np.diag(6 * x))
    with pytest.raises(NotImplementedError, match="OnlyReverse"):
        cr.jvp(OnlyReverse.apply, (x,), (x,))
    with pytest.raises(NotImplementedError, match="OnlyReverse"):
        cr.jacfwd(OnlyReverse.apply)(x)
    assert_allclose(cr.jacrev(OnlyReverse.apply)(x), 3 * np.eye(2))


# --- Hessians and HVPs ------------------------------------------------------------------------

def rosen(x):
    return cnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def quartic(x):  # no slicing needed: sum x^4 + (sum x)^2 * prod-free cross terms
    return cnp.sum(x ** 4) + cnp.sum(x) ** 2 * cnp.sum(cnp.sin(x))


def quartic_hessian(x):
    S, T = np.sum(x), np.sum(np.sin(x))
    c = np.cos(x)
    H = np.diag(12 * x ** 2) + 2 * T * np.ones((x.size, x.size))
    H = H + 2 * S * (c[None, :] + c[:, None]) - np.diag(S ** 2 * np.sin(x))
    return H


def test_hessian_closed_form_and_all_compositions_agree():
    x = rng.standard_normal(4)
    H = quartic_hessian(x)
    for h in (cr.hessian(quartic), cr.jacfwd(cr.jacrev(quartic)), cr.jacrev(cr.jacfwd(quartic)),
              cr.jacrev(cr.jacrev(quartic)), cr.jacfwd(cr.jacfwd(quartic)),
              cr.jacfwd(cr.grad(quartic)), cr.jacobian(cr.grad(quartic))):
        assert_allclose(h(x), H, rtol=1e-10, atol=1e-12)


def test_hessian_shapes_for_matrix_input_and_tuple_argnums():
    X = rng.standard_normal((2, 3))
    f = lambda X: cnp.sum(cnp.exp(X) * X)
    H = cr.hessian(f)(X)
    assert H.shape == (2, 3, 2, 3)
    diag = np.exp(X) * (X + 2)
    assert_allclose(H.reshape(6, 6), np.diag(diag.ravel()), atol=1e-12)

    g = lambda a, b: cnp.sum(a ** 2 * b) + cnp.sum(b ** 3)
    a, b = np.array([1.0, 2.0]), np.array(3.0)
    (Haa, Hab), (Hba, Hbb) = cr.hessian(g, argnums=(0, 1))(a, b)
    assert_allclose(Haa, 2 * b * np.eye(2))
    assert_allclose(Hab, 2 * a)
    assert Hab.shape == (2,) and Hba.shape == (2,)
    assert_allclose(Hba, 2 * a)
    assert_allclose(Hbb, 6 * b)


def test_hvp_equals_hessian_times_vector():
    x, v = rng.standard_normal(5), rng.standard_normal(5)
    assert_allclose(cr.hvp(quartic, (x,), (v,)), quartic_hessian(x) @ v, rtol=1e-10)
    # several primals: the gradient with respect to each, differentiated along all tangents
    f = lambda a, b: cnp.sum(a * a * b)
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    da, db = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    ha, hb = cr.hvp(f, (a, b), (da, db))
    assert_allclose(ha, 2 * b * da + 2 * a * db)
    assert_allclose(hb, 2 * a * da)
    with pytest.raises(TypeError, match="tuples"):
        cr.hvp(f, a, da)


# --- nesting without perturbation confusion ------------------------------------------------------

def test_no_perturbation_confusion():
    # Siskind & Pearlmutter; JAX api_test: the inner derivative must not see the outer x.
    assert cr.grad(lambda x: x * cr.grad(lambda y: x + y)(1.0))(1.0) == 1.0
    # d/dx [x * d/dy (x * y)] = d/dx x^2 = 2x
    assert_allclose(cr.grad(lambda x: x * cr.grad(lambda y: x * y)(2.0))(1.0), 2.0)
    # the same with forward mode inside, outside, and mixed
    dfwd = lambda f: (lambda x: cr.jvp(f, (x,), (1.0,))[1])
    assert_allclose(dfwd(lambda x: x * dfwd(lambda y: x + y)(1.0))(1.0), 1.0)
    assert_allclose(dfwd(lambda x: x * cr.grad(lambda y: x * y)(2.0))(1.0), 2.0)
    assert_allclose(cr.grad(lambda x: x * dfwd(lambda y: x * y)(2.0))(1.0), 2.0)
    # JAX's classic: the inner function closes over the outer argument
    f = lambda x: cr.grad(lambda y: cnp.sin(x * y))(x)     # x cos(x^2)
    expect = lambda x: np.cos(x ** 2) - 2 * x ** 2 * np.sin(x ** 2)
    assert_allclose(cr.grad(f)(0.7), expect(0.7), rtol=1e-12)
    assert_allclose(dfwd(f)(0.7), expect(0.7), rtol=1e-12)


def test_third_derivatives_every_mode_mix():
    d3 = -np.cos(0.3)
    assert_allclose(cr.grad(cr.grad(cr.grad(cnp.sin)))(0.3), d3, rtol=1e-12)
    dfwd = lambda f: (lambda x: cr.jvp(f, (x,), (cnp.ones_like(x),))[1])
    assert_allclose(dfwd(cr.grad(dfwd(cnp.sin)))(0.3), d3, rtol=1e-12)
    assert_allclose(dfwd(dfwd(dfwd(cnp.sin)))(0.3), d3, rtol=1e-12)
    assert_allclose(cr.grad(lambda x: x ** 4)(2.0), 32.0)
    assert_allclose(cr.grad(cr.grad(cr.grad(lambda x: x ** 4)))(2.0), 48.0)
    x = rng.standard_normal(3)
    T = cr.jacfwd(cr.hessian(lambda x: cnp.sum(x ** 4)))(x)
    expected = np.zeros((3, 3, 3))
    expected[np.arange(3), np.arange(3), np.arange(3)] = 24 * x
    assert_allclose(T, expected, atol=1e-12)


def test_nested_jacobians_of_several_inputs_use_differentiable_block_ops():
    # jacfwd / jacrev with several inputs split and reorder blocks with internal primitives;
    # differentiating the Jacobian again exercises their rules (both modes).
    f = lambda x, y: cnp.sin(x * y) * cnp.sum(y)
    x, y = rng.standard_normal(2), rng.standard_normal(2)
    cr.check_grads(lambda x, y: cr.jacfwd(f, argnums=(0, 1))(x, y), (x, y), order=1)
    cr.check_grads(lambda x, y: cr.jacrev(f, argnums=(0, 1))(x, y), (x, y), order=1)
    H1 = cr.jacfwd(cr.jacrev(f, argnums=(0, 1)), argnums=(0, 1))(x, y)
    H2 = cr.jacrev(cr.jacfwd(f, argnums=(0, 1)), argnums=(0, 1))(x, y)
    for i in range(2):
        for j in range(2):
            assert H1[i][j].shape == (2, 2, 2)
            assert_allclose(H1[i][j], H2[i][j], rtol=1e-12, atol=1e-14)
