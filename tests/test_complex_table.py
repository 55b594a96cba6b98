"""Complex numbers through every primitive family (API section 11), checked numerically.

``check_grads`` perturbs complex inputs along random complex directions (the real and the
imaginary direction at once) and pairs cotangents with tangents as ``Re(sum(c * t))``, so
these cases check the convention that the VJP is the transpose of the real-linear JVP with
no conjugation: forward and reverse, first and second order.  Decompositions whose outputs
have a gauge freedom (eigenvector and singular vector phases) are checked through
gauge-invariant functions of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core.primitive import Node, node_of
from chainrule.ops import _broadcast as B
from chainrule.ops import elementwise as E
from chainrule.ops import indexing as I
from chainrule.ops import reductions as R
from chainrule.ops import shape as S

_rng = np.random.default_rng(1357)


def crand(*shape, scale=1.0, shift=0.0):
    return (scale * (_rng.standard_normal(shape) + 1j * _rng.standard_normal(shape))
            + shift).astype(np.complex128)


def away(*shape):  # |z| in [0.5, 1.5]: clear of the branch points and poles
    r = _rng.uniform(0.5, 1.5, size=shape)
    return (r * np.exp(1j * _rng.uniform(-2.8, 2.8, size=shape))).astype(np.complex128)


def rhalf(*shape):  # right half plane: clear of log's and sqrt's branch cut
    return (_rng.uniform(0.5, 2.0, size=shape) + 1j * _rng.uniform(-1.5, 1.5, size=shape))


def small(*shape):  # inside the unit disk: clear of arcsin/arctanh branch cuts
    return 0.5 * _rng.uniform(0.0, 1.0, size=shape) * np.exp(1j * _rng.uniform(-3, 3, shape))


def hermitian_pd(n):
    a = crand(n, n)
    return a @ a.conj().T + n * np.eye(n)


def hermitian(n):
    a = crand(n, n)
    return (a + a.conj().T) / 2


@dataclass
class Case:
    fn: Callable[..., Any]
    args: tuple
    id: str
    tol: dict = field(default_factory=dict)


CASES: list[Case] = []

# --- elementwise: holomorphic ------------------------------------------------------------
for name, sample in [("negative", crand), ("positive", crand), ("square", crand),
                     ("sqrt", rhalf), ("reciprocal", away), ("exp", crand), ("exp2", crand),
                     ("expm1", crand), ("log", rhalf), ("log2", rhalf), ("log10", rhalf),
                     ("log1p", rhalf), ("sin", crand), ("cos", crand), ("tan", small),
                     ("arcsin", small), ("arccos", small), ("arctan", small), ("sinh", crand),
                     ("cosh", crand), ("tanh", small), ("arcsinh", small), ("arccosh", rhalf),
                     ("arctanh", small), ("sinc", away)]:
    fn = getattr(cnp, name)
    CASES.append(Case(fn, (sample(3),), f"{name}"))
    CASES.append(Case(fn, (sample(2, 1, 2),), f"{name}-(2,1,2)"))
    CASES.append(Case(fn, (np.complex64(sample(3)),), f"{name}-c64",
                      {"rtol": 5e-3, "atol": 5e-3}))

for name, sx, sy in [("add", crand, crand), ("subtract", crand, crand),
                     ("multiply", crand, crand), ("divide", crand, away),
                     ("power", rhalf, small)]:
    fn = getattr(cnp, name)
    CASES += [Case(fn, (sx(3), sy(3)), f"{name}"),
              Case(fn, (sx(2, 1), sy(1, 3)), f"{name}-bcast"),
              Case(fn, (sx(2, 3), sy()), f"{name}-scalar")]
    # mixed real and complex operands: the real one keeps the real part of its cotangent
    CASES += [Case(fn, (sx(2, 3), np.real(sy(3)) + 1.0), f"{name}-complex-real"),
              Case(fn, (np.real(sx(3)) + 2.0, sy(2, 3)), f"{name}-real-complex")]
CASES += [Case(lambda z: z ** 2, (crand(3),), "power-2"),
          Case(lambda z: z ** 3.0, (crand(3),), "power-3"),
          Case(lambda z: 2.0 ** z, (crand(3),), "power-const-base"),
          Case(lambda z: (1 + 1j) ** z, (crand(3),), "power-complex-base"),
          Case(lambda z: z ** (0.5 - 1j), (rhalf(3),), "power-complex-exp")]

# --- elementwise: not holomorphic (real outputs, conjugation) -------------------------------
for name in ("absolute", "sign", "real", "imag", "conj", "conjugate", "angle"):
    fn = getattr(cnp, name)
    CASES += [Case(fn, (away(3),), name), Case(fn, (away(2, 1, 2),), f"{name}-(2,1,2)")]
CASES += [
    Case(lambda z: cnp.abs(z) ** 2, (crand(3),), "abs-squared"),
    Case(lambda z: cnp.real(z) * cnp.imag(z) + cnp.angle(z) * cnp.abs(z), (away(4),),
         "real-imag-angle-abs"),
    Case(lambda z: cnp.exp(cnp.abs(z)) * z, (away(3),), "real-into-complex"),
    Case(lambda z, x: cnp.abs(z * x) + cnp.angle(z + x), (away(3), _rng.uniform(1, 2, 3)),
         "abs-angle-mixed"),
    Case(lambda z: z.conj() * z.real + z.imag, (crand(3),), "tensor-methods"),
]

# --- selection ------------------------------------------------------------------------------
_cond = np.array([[True, False, True], [False, True, False]])
CASES += [
    Case(lambda x, y: cnp.where(_cond, x, y), (crand(2, 3), crand(3)), "where"),
    Case(lambda x, y: cnp.where(_cond, x, y), (crand(2, 3), _rng.standard_normal(3)),
         "where-mixed"),
    # NumPy orders complex numbers lexicographically; keep real parts apart
    Case(cnp.maximum, (crand(3) + np.array([2, -2, 2]), crand(3)), "maximum"),
    Case(cnp.minimum, (crand(3) + np.array([2, -2, 2]), crand(3)), "minimum"),
    Case(lambda x: cnp.round(x) * 0 + x, (crand(3),), "round"),
    Case(cnp.fmax, (crand(3) + np.array([2, -2, 2]), crand(3)), "fmax"),
    Case(cnp.fmin, (crand(3) + np.array([2, -2, 2]), crand(3)), "fmin"),
    # their rule, linear in the cotangent (complex x, y: lexicographic choice; a tie at [1])
    Case(lambda g: E.select_grad(g, np.array([2 + 1j, 1j, -2]), np.array([1j, 1j, 0]),
                                 op="maximum", first=True), (crand(3),), "select_grad"),
    Case(lambda x: cnp.clip(x, -0.5, 0.8), (np.array([1 + 2j, -1 + 0.5j, 0.1 - 1j]),), "clip"),
]

# --- reductions ---------------------------------------------------------------------------
for name in ("sum", "mean", "prod", "var", "std", "cumsum", "cumprod"):
    fn = getattr(cnp, name)
    CASES += [Case(fn, (crand(2, 3),), f"{name}-all"),
              Case(lambda x, f=fn: f(x, axis=0), (crand(2, 3),), f"{name}-axis0")]
CASES += [Case(lambda x: cnp.sum(x, axis=1, keepdims=True), (crand(2, 3),), "sum-keepdims"),
          Case(lambda x: cnp.max(x, axis=1), (crand(2, 3) + np.arange(3) * 3,), "max"),
          Case(lambda x: cnp.min(x, axis=1), (crand(2, 3) + np.arange(3) * 3,), "min"),
          Case(lambda x: R.logsumexp(x, axis=1), (crand(2, 3, scale=0.3),), "logsumexp")]

# --- shape and indexing ---------------------------------------------------------------------
CASES += [
    Case(lambda x: cnp.reshape(x, (3, 2)), (crand(2, 3),), "reshape"),
    Case(lambda x: cnp.transpose(x), (crand(2, 3),), "transpose"),
    Case(lambda x: cnp.broadcast_to(x, (2, 3)), (crand(3),), "broadcast_to"),
    Case(lambda x: cnp.swapaxes(x, 0, 1), (crand(2, 3),), "swapaxes"),
    Case(lambda x, y: cnp.concatenate([x, y]), (crand(2), crand(3)), "concatenate"),
    Case(lambda x, y: cnp.concatenate([x, y]), (crand(2), _rng.standard_normal(3)),
         "concatenate-mixed"),
    Case(lambda x, y: cnp.stack([x, y], axis=1), (crand(3), crand(3)), "stack"),
    Case(lambda x: cnp.flip(x, 0), (crand(3),), "flip"),
    Case(lambda x: cnp.roll(x, 1), (crand(4),), "roll"),
    Case(lambda x: cnp.pad(x, 1), (crand(2, 2),), "pad"),
    Case(lambda x: cnp.diag(x), (crand(3),), "diag-embed"),
    Case(lambda x: cnp.diagonal(x), (crand(3, 3),), "diagonal"),
    Case(lambda x: cnp.trace(x), (crand(3, 3),), "trace"),
    Case(lambda x: cnp.triu(x), (crand(3, 3),), "triu"),
    Case(lambda x: cnp.tril(x, -1), (crand(3, 3),), "tril"),
    Case(lambda x: cnp.tile(x, 2), (crand(2),), "tile"),
    Case(lambda x: cnp.repeat(x, 2), (crand(2),), "repeat"),
    Case(lambda x: cnp.split(x, 2)[1], (crand(4),), "split"),
    Case(lambda x: x[1:, ::-1], (crand(3, 3),), "getitem-slice"),
    Case(lambda x: x[np.array([0, 2, 0])], (crand(3),), "getitem-fancy"),
    Case(lambda x: cnp.take(x, np.array([1, 1, 0])), (crand(3),), "take"),
    Case(lambda v: cr.vjp(lambda x: x[np.array([0, 2, 0])], crand(3))[1](v)[0], (crand(3),),
         "scatter_add"),
    Case(lambda x: B.sum_to(x, shape=(1, 3)), (crand(2, 3),), "sum_to"),
    Case(lambda x: cnp.sort(x), (crand(4) + np.array([3, 0, -3, 6]),), "sort"),
    Case(lambda x: cnp.astype(x, np.complex64) if hasattr(cnp, "astype") else x,
         (crand(3),), "astype-c128-c64", {"rtol": 1e-3, "atol": 1e-3}),
    Case(lambda x: cnp.astype(x, np.complex128), (_rng.standard_normal(3),), "astype-real-c"),
]

# --- linear algebra ---------------------------------------------------------------------------
CASES += [
    Case(cnp.matmul, (crand(2, 3), crand(3, 2)), "matmul"),
    Case(cnp.matmul, (crand(2, 2, 3), crand(3)), "matmul-batched-vec"),
    Case(cnp.matmul, (crand(2, 3), _rng.standard_normal((3, 2))), "matmul-mixed"),
    Case(cnp.dot, (crand(3), crand(3)), "dot"),
    Case(cnp.vdot, (crand(3), crand(3)), "vdot"),
    Case(cnp.inner, (crand(3), crand(3)), "inner"),
    Case(cnp.outer, (crand(2), crand(3)), "outer"),
    Case(lambda a, b: cnp.tensordot(a, b, 1), (crand(2, 3), crand(3, 2)), "tensordot"),
    Case(lambda a, b: cnp.einsum("ij,jk->ik", a, b), (crand(2, 3), crand(3, 2)), "einsum"),
    Case(lambda a: cnp.einsum("ii->", a), (crand(3, 3),), "einsum-trace"),
    Case(cnp.kron, (crand(2), crand(2)), "kron"),
    Case(cnp.linalg.inv, (crand(3, 3) + 3 * np.eye(3),), "inv"),
    Case(cnp.linalg.solve, (crand(3, 3) + 3 * np.eye(3), crand(3, 2)), "solve"),
    Case(cnp.linalg.solve, (crand(3, 3) + 3 * np.eye(3), _rng.standard_normal((3,))),
         "solve-real-rhs"),
    Case(cnp.linalg.det, (crand(3, 3),), "det"),
    Case(cnp.linalg.det, (crand(2, 3, 3),), "det-batched"),
    Case(lambda a: cnp.linalg.slogdet(a)[1], (crand(3, 3),), "slogdet-logabsdet"),
    Case(lambda a: cnp.linalg.slogdet(a)[0], (crand(3, 3),), "slogdet-sign"),
    Case(lambda a: cnp.linalg.cholesky(a), (hermitian_pd(3),), "cholesky"),
    Case(lambda a: cnp.linalg.cholesky(a, upper=True), (hermitian_pd(3),), "cholesky-upper"),
    Case(lambda a: cnp.linalg.qr(a)[0], (crand(4, 3),), "qr-Q"),
    Case(lambda a: cnp.linalg.qr(a)[1], (crand(4, 3),), "qr-R"),
    Case(lambda a: cnp.linalg.qr(a)[1], (crand(3, 3),), "qr-square-R"),
    Case(lambda a: cnp.linalg.svd(a, compute_uv=False), (crand(3, 2),), "svd-S"),
    Case(lambda a: _svd_invariant(a), (crand(3, 2),), "svd-polar"),
    Case(lambda a: _svd_invariant(a), (crand(3, 3),), "svd-square-polar"),
    Case(lambda a: cnp.linalg.eigh(a)[0], (hermitian(3),), "eigh-w"),
    Case(lambda a: _eigh_invariant(a), (hermitian(3),), "eigh-projector"),
    Case(lambda a: cnp.linalg.eigvalsh(a), (hermitian(3),), "eigvalsh"),
    Case(lambda a: cnp.linalg.norm(a), (crand(2, 3),), "norm-fro"),
    Case(lambda a: cnp.linalg.norm(a, axis=1), (crand(2, 3),), "norm-axis"),
    Case(lambda a: cnp.linalg.norm(a, 1), (away(3),), "norm-1"),
    Case(lambda a: cnp.linalg.norm(a, 3), (away(3),), "norm-3"),
    Case(lambda a: cnp.linalg.norm(a, "nuc"), (crand(3, 2),), "norm-nuc"),
    Case(lambda a: cnp.linalg.norm(a, 2), (crand(3, 2),), "norm-2"),
    Case(cnp.linalg.pinv, (crand(3, 2),), "pinv"),
    Case(lambda a, b: cnp.linalg.lstsq(a, b)[0], (crand(4, 2), crand(4)), "lstsq-x"),
    Case(lambda a, b: cnp.linalg.lstsq(a, b)[1], (crand(4, 2), crand(4)), "lstsq-residuals"),
    Case(lambda a: cnp.linalg.matrix_power(a, -2), (crand(2, 2) + 2 * np.eye(2),),
         "matrix_power"),
]

# primitives that move values by a mask or a permutation known only at run time
_MASK = np.array([[True, False, True], [False, True, True]])
_ORDER = np.array([[0.3, -1.2, 0.8], [2.0, 0.1, -0.4]])
CASES += [
    Case(lambda x: I.mask_select_p(x, _MASK, ndim=2, skip=0), (crand(2, 3),), "mask_select"),
    Case(lambda v: I.mask_scatter_p(v, _MASK, ndim=2, skip=0), (crand(4),), "mask_scatter"),
    Case(lambda t: S.sort_like_p(t, _ORDER, axis=-1), (crand(2, 3),), "sort_like"),
    Case(lambda t: S.unsort_p(t, _ORDER, axis=-1), (crand(2, 3),), "unsort"),
]


def _svd_invariant(a):
    u, s, vh = cnp.linalg.svd(a, full_matrices=False)
    return cnp.matmul(u, vh) * 2.0 + cnp.matmul(u * s, vh)  # polar factor and a itself


def _eigh_invariant(a):
    w, v = cnp.linalg.eigh(a)
    return cnp.matmul(v * cnp.exp(w), cnp.conj(cnp.swapaxes(v, -1, -2)))   # expm(a)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_complex_derivatives_match_finite_differences(case):
    cr.check_grads(case.fn, case.args, order=2, modes=("fwd", "rev"), **case.tol)


# --- values equal NumPy's --------------------------------------------------------------------
_Z = crand(2, 3)
_H = hermitian_pd(3)
VALUES = [
    (cnp.abs, np.abs, (_Z,)), (cnp.angle, np.angle, (_Z,)), (cnp.sign, np.sign, (_Z,)),
    (cnp.real, np.real, (_Z,)), (cnp.imag, np.imag, (_Z,)), (cnp.conj, np.conj, (_Z,)),
    (cnp.conjugate, np.conjugate, (_Z,)), (cnp.var, np.var, (_Z,)), (cnp.std, np.std, (_Z,)),
    (lambda z: cnp.var(z, axis=0), lambda z: np.var(z, axis=0), (_Z,)),
    (cnp.linalg.norm, np.linalg.norm, (_Z,)),
    (lambda z: cnp.linalg.norm(z, axis=1), lambda z: np.linalg.norm(z, axis=1), (_Z,)),
    (lambda z: cnp.linalg.norm(z[0]), lambda z: np.linalg.norm(z[0]), (_Z,)),
    (lambda z: cnp.linalg.norm(z, 3, axis=1), lambda z: np.linalg.norm(z, 3, axis=1), (_Z,)),
    (lambda z: cnp.linalg.norm(z, "nuc"), lambda z: np.linalg.norm(z, "nuc"), (_Z,)),
    (cnp.vdot, np.vdot, (_Z, _Z[::-1])),
    (lambda a: cnp.linalg.slogdet(a)[0], lambda a: np.linalg.slogdet(a)[0], (_H + 1j,)),
    (lambda a: cnp.linalg.slogdet(a)[1], lambda a: np.linalg.slogdet(a)[1], (_H + 1j,)),
    (cnp.linalg.cholesky, np.linalg.cholesky, (_H,)),
    (lambda a: cnp.linalg.cholesky(a, upper=True),
     lambda a: np.linalg.cholesky(a).conj().T, (_H,)),
    (lambda a: cnp.linalg.eigh(a)[0], lambda a: np.linalg.eigh(a)[0], (_H,)),
    (lambda a: cnp.linalg.svd(a)[1], lambda a: np.linalg.svd(a)[1], (_Z,)),
    (cnp.linalg.pinv, np.linalg.pinv, (_Z,)),
    (lambda a, b: cnp.linalg.lstsq(a, b)[0], lambda a, b: np.linalg.lstsq(a, b)[0],
     (_Z.T, _Z[0])),
    (lambda a, b: cnp.linalg.lstsq(a, b)[1], lambda a, b: np.linalg.lstsq(a, b)[1],
     (_Z.T, _Z[0])),
]


@pytest.mark.parametrize("i", range(len(VALUES)))
def test_values_equal_numpys_under_a_transform(i):
    fn, ref, args = VALUES[i]
    want = ref(*args)
    assert_allclose(np.asarray(fn(*args)), want, rtol=1e-12, atol=1e-12)
    out, _ = cr.vjp(fn, *args)      # the traced path computes the same values
    assert_allclose(np.asarray(out), want, rtol=1e-12, atol=1e-12)
    assert np.asarray(out).dtype == np.asarray(want).dtype


# --- the convention and the transforms ---------------------------------------------------------


def test_grad_of_a_real_function_is_dx_minus_i_dy():
    assert cr.grad(lambda z: cnp.abs(z) ** 2)(1 + 2j) == 2 - 4j
    z = crand(4)
    g = cr.grad(lambda z: cnp.sum(cnp.real(z) ** 3 + cnp.imag(z) * cnp.real(z)))(z)
    x, y = z.real, z.imag
    assert_allclose(g, (3 * x ** 2 + y) - 1j * x)
    assert g.dtype == np.complex128


def test_tensor_grad_follows_the_same_convention():
    z = cr.tensor(np.array([1 + 2j, -0.5j]), requires_grad=True)
    cnp.sum(cnp.abs(z) ** 2).backward()
    assert_allclose(z.grad, 2 * np.conj(z.data))
    t = cr.tensor(np.array([3 - 1j]))
    assert_allclose(t.real.data, [3.0])
    assert_allclose(t.imag.data, [-1.0])
    assert_allclose(t.conj().data, [3 + 1j])


def test_real_inputs_keep_the_real_part_of_a_complex_cotangent():
    g = cr.grad(lambda x: cnp.abs(x * (1 + 2j)) ** 2)(1.5)   # |x (1+2i)|^2 = 5 x^2
    assert g.dtype == np.float64
    assert_allclose(g, 15.0)
    g = cr.grad(lambda x: cnp.imag(cnp.exp(1j * x)))(0.3)    # sin(x)
    assert_allclose(g, np.cos(0.3))
    x = cr.tensor(0.3, requires_grad=True)
    cnp.real(cnp.exp(1j * x)).backward()
    assert x.grad.dtype == np.float64
    assert_allclose(x.grad, -np.sin(0.3))


def test_holomorphic_grad_is_the_complex_derivative():
    z = 0.3 + 0.7j
    assert_allclose(cr.grad(lambda z: z ** 3, holomorphic=True)(z), 3 * z ** 2)
    assert_allclose(cr.grad(cnp.sin, holomorphic=True)(z), np.cos(z))
    v, g = cr.value_and_grad(cnp.exp, holomorphic=True)(z)
    assert_allclose(v, np.exp(z))
    assert_allclose(g, np.exp(z))
    # second derivative
    assert_allclose(cr.grad(cr.grad(cnp.sin, holomorphic=True), holomorphic=True)(z), -np.sin(z))


def test_complex_output_without_holomorphic_raises():
    with pytest.raises(TypeError, match="holomorphic=True"):
        cr.grad(lambda z: z * z)(1 + 1j)
    with pytest.raises(TypeError, match="holomorphic=True"):
        cr.value_and_grad(lambda z: z * z)(1 + 1j)
    with pytest.raises(TypeError, match="holomorphic=True"):
        cr.grad(lambda x: x * 1j)(1.0)
    with pytest.raises(TypeError, match="complex dtype"):
        cr.grad(lambda x: x * 1j, holomorphic=True)(1.0)


def test_jacobians_take_holomorphic():
    z = crand(3)
    f = lambda z: cnp.exp(z) * z[0]  # noqa: E731
    want = np.diag(np.exp(z)) * z[0]
    want[:, 0] += np.exp(z)
    for jac in (cr.jacfwd, cr.jacrev, cr.jacobian):
        assert_allclose(jac(f, holomorphic=True)(z), want)
        with pytest.raises(TypeError, match="holomorphic"):
            jac(f)(z)
    assert_allclose(cr.jacobian(f, mode="rev", holomorphic=True)(z), want)
    h = cr.hessian(lambda z: cnp.sum(z ** 3), holomorphic=True)(z)
    assert_allclose(h, np.diag(6 * z))
    # real inputs and outputs with complex intermediates need no flag
    x = np.array([0.2, 0.5])
    assert_allclose(cr.jacfwd(lambda x: cnp.real(cnp.exp(1j * x)))(x), np.diag(-np.sin(x)))
    assert_allclose(cr.jacrev(lambda x: cnp.abs(cnp.exp(1j * x) + 1))(x),
                    np.diag(cr.jacfwd(lambda x: cnp.abs(cnp.exp(1j * x) + 1))(x).diagonal()))


def test_check_grads_catches_a_wrong_complex_rule():
    class ConjugatedRule(cr.Function):   # a rule that conjugates where it must not
        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return z * z

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            return g * 2 * cnp.conj(z)

    with pytest.raises(AssertionError, match="mismatch"):
        cr.check_grads(ConjugatedRule.apply, (crand(3),), order=1, modes=("rev",))
    # the imaginary direction alone is checked too: a rule right on the real axis only fails
    with pytest.raises(AssertionError):
        cr.check_grads(lambda z: cnp.real(z) * 0 + cnp.stop_gradient(cnp.imag(z)) + cnp.real(z),
                       (crand(3),), order=1, modes=("fwd",))


# --- optimisers ---------------------------------------------------------------------------------

OPTIMISERS = [
    ("SGD", dict(lr=0.1)), ("SGD-momentum", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD-wd", dict(lr=0.1, weight_decay=1e-3)), ("Adam", dict(lr=0.1)),
    ("Adam-amsgrad", dict(lr=0.1, amsgrad=True)), ("AdamW", dict(lr=0.1)),
    ("RMSprop", dict(lr=0.05)), ("RMSprop-centered", dict(lr=0.05, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.5)),
]


@pytest.mark.parametrize("name,kw", OPTIMISERS, ids=[o[0] for o in OPTIMISERS])
def test_every_optimiser_descends_on_complex_parameters(name, kw):
    target = np.array([[1 + 2j, -0.5 + 0.25j], [0.3 - 1j, 2j]])
    z = cr.nn.Parameter(np.zeros((2, 2), dtype=complex))
    opt = getattr(cr.optim, name.split("-")[0])([z], **kw)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = cnp.sum(cnp.abs(z - target) ** 2)
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
    assert z.data.dtype == np.complex128
    assert losses[-1] < 0.1 * losses[0], losses[::10]
    # the imaginary parts move toward the target's, not away from it
    assert np.all(np.abs(z.data.imag - target.imag) < np.abs(target.imag) + 1e-12)


def test_sgd_step_moves_along_the_conjugate_gradient():
    z = cr.nn.Parameter(np.array([1 + 1j]))
    cnp.sum(cnp.abs(z) ** 2).backward()          # grad = 2 conj(z) = 2 - 2j
    assert_allclose(z.grad, [2 - 2j])
    cr.optim.SGD([z], lr=0.25).step()
    assert_allclose(z.data, [0.5 + 0.5j])         # z - lr * conj(grad)


# --- coverage: every primitive of the four families has a complex case (or NumPy has none) ------

#: NumPy defines these for real numbers only (they raise TypeError on complex input)
REAL_ONLY = {"cbrt", "floor", "ceil", "logaddexp", "logaddexp2", "arctan2", "hypot", "mod",
             "fmod", "floor_divide", "trunc"}
FAMILIES = {"chainrule.ops.elementwise", "chainrule.ops.reductions", "chainrule.ops.shape",
            "chainrule.ops.linalg", "chainrule.ops.indexing", "chainrule.ops._broadcast",
            "chainrule.ops.creation"}


def _primitives_used(case):
    leaves = [cr.tensor(a, requires_grad=True) for a in case.args]
    out = case.fn(*leaves)
    seen = set()
    stack = [node_of(b) for b in cr.pytree.tree_leaves(out) if isinstance(b, cr.Tensor)]
    while stack:
        node = stack.pop()  # a recorded operation (its inputs are nodes, leaves or values)
        if node is None or not hasattr(node, "_args") or id(node) in seen:
            continue
        seen.add(id(node))
        yield node._prim.name
        stack.extend(node_of(a) if isinstance(a, cr.Tensor) else a for a in node._args
                     if isinstance(a, (cr.Tensor, Node)))


def test_every_primitive_of_the_families_has_a_complex_case():
    from chainrule.core.primitive import registry

    covered = set()
    for case in CASES:
        covered.update(_primitives_used(case))
    missing = sorted(
        name for name, prim in registry.items()
        if prim.differentiable
        and (getattr(prim.impl, "__module__", None) or "").startswith(tuple(FAMILIES))
        and name not in covered and name not in REAL_ONLY
    )
    assert not missing, f"primitives without a complex case: {missing}"


@pytest.mark.parametrize("name", sorted(REAL_ONLY))
def test_real_only_functions_refuse_complex_input(name):
    fn = getattr(cnp, {"mod": "mod"}.get(name, name))
    args = (crand(2),) if name in ("cbrt", "floor", "ceil", "trunc") else (crand(2), crand(2))
    with pytest.raises(TypeError, match=name if name != "mod" else "remainder"):
        fn(*args)


# --- an independent reference: HIPS autograd follows the same convention ----------------------

_REF_Z = crand(3, 3)
_REF_H = hermitian_pd(3)
REFERENCE = [
    ("abs-sin", lambda np_: lambda z: np_.sum(np_.abs(np_.sin(z)) ** 2), _REF_Z),
    ("det", lambda np_: lambda z: np_.abs(np_.linalg.det(z)), _REF_Z),
    ("inv", lambda np_: lambda z: np_.sum(np_.real(np_.linalg.inv(z)) * np_.imag(z)), _REF_Z),
    ("angle", lambda np_: lambda z: np_.sum(np_.angle(z) * np_.real(z)), _REF_Z),
    ("fft", lambda np_: lambda z: np_.sum(np_.abs(np_.fft.fft(z, axis=0)) ** 1.5), _REF_Z),
    ("conj-exp", lambda np_: lambda z: np_.real(np_.sum(np_.conj(z) * np_.exp(z))), _REF_Z),
    # eigh: autograd returns another representative of the same gradient on Hermitian
    # matrices, so the Hermitian parts are compared
    ("eigh", lambda np_: lambda a: np_.sum(np_.linalg.eigh(a)[0] ** 3), _REF_H),
]


@pytest.mark.parametrize("name,make,z", REFERENCE, ids=[r[0] for r in REFERENCE])
def test_gradients_agree_with_hips_autograd(name, make, z):
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    want = autograd.grad(make(anp))(z)
    got = cr.grad(make(cnp))(z)
    if name == "eigh":
        want, got = (want + want.conj().T) / 2, (got + got.conj().T) / 2
    assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def _torch_cases(torch):
    def svd_loss(lib, u, s, vh):
        return lib.sum(lib.real(u @ vh)) + lib.sum(s ** 3)

    return [
        ("cholesky", lambda a: torch.linalg.cholesky(a).abs().pow(2.5).sum(),
         lambda a: cnp.sum(cnp.abs(cnp.linalg.cholesky(a)) ** 2.5), _REF_H, True),
        ("qr", lambda a: (torch.linalg.qr(a)[0].real ** 3).sum() + torch.linalg.qr(a)[1].imag.sum(),
         lambda a: cnp.sum(cnp.real(cnp.linalg.qr(a)[0]) ** 3)
         + cnp.sum(cnp.imag(cnp.linalg.qr(a)[1])), crand(4, 3), False),
        ("svd", lambda a: svd_loss(torch, *torch.linalg.svd(a, full_matrices=False)),
         lambda a: svd_loss(cnp, *cnp.linalg.svd(a, full_matrices=False)), crand(4, 3), False),
        ("eigh", lambda a: (lambda w, v: (v * torch.exp(w)) @ v.conj().T)(
            *torch.linalg.eigh(a)).abs().sum(),
         lambda a: cnp.sum(cnp.abs(_eigh_invariant(a))), _REF_H, True),
        ("slogdet", lambda a: torch.linalg.slogdet(a)[1] + torch.linalg.slogdet(a)[0].imag,
         lambda a: cnp.linalg.slogdet(a)[1] + cnp.imag(cnp.linalg.slogdet(a)[0]), _REF_Z, False),
    ]


def test_decomposition_gradients_agree_with_pytorch():
    """PyTorch's complex gradient is the conjugate of this convention's (API section 11)."""
    torch = pytest.importorskip("torch")
    for name, f_torch, f_cr, a, hermitian_input in _torch_cases(torch):
        at = torch.tensor(a, requires_grad=True)
        f_torch(at).backward()
        want = np.conj(at.grad.numpy())
        got = cr.grad(f_cr)(a)
        if hermitian_input:  # both are gradients on Hermitian matrices: compare those parts
            want, got = (want + want.conj().T) / 2, (got + got.conj().T) / 2
        assert_allclose(got, want, rtol=1e-7, atol=1e-9, err_msg=name)
