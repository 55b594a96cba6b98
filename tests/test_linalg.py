"""Tests for the linear-algebra family: matmul, einsum, dot & co, and numpy.linalg.

Values are compared with NumPy; derivatives with central finite differences in
float64 (reverse, forward, batched cotangents/tangents and reverse-over-reverse).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core.backward import backward_pass
from chainrule.core.trace import level_scope
from chainrule.ops.linalg import qr_p, tuple_get
from chainrule.tensor import Tensor

RNG = np.random.default_rng(20240611)


def rand(*shape):
    return RNG.standard_normal(shape)


def wellcond(n, batch=()):
    """A well-conditioned (diagonally dominated) square matrix or stack of them."""
    return rand(*batch, n, n) * 0.3 + 2.0 * np.eye(n)


def spd(n, batch=()):
    b = rand(*batch, n, n)
    return b @ np.swapaxes(b, -1, -2) + n * np.eye(n)


# --- derivative helpers ---------------------------------------------------------------------

def _np(x):
    while isinstance(x, cr.Tensor):
        x = x.data
    return np.asarray(x)


def rev_grads(f, arrays, W):
    xs = [cr.tensor(a, requires_grad=True) for a in arrays]
    y = f(*xs)
    leaves, _ = backward_pass([(y, np.asarray(W, dtype=_np(y).dtype))], y._level)
    return [_np(leaves[id(x)][1]) if id(x) in leaves else np.zeros_like(a)
            for x, a in zip(xs, arrays)]


def fwd(f, arrays, tangents):
    with level_scope(forward=True) as L:
        xs = [Tensor(a, L, None, False, t) for a, t in zip(arrays, tangents)]
        y = f(*xs)
    tan = y._tangent if isinstance(y, cr.Tensor) else None
    return _np(y), (None if tan is None else _np(tan))


def fd_grad(f, arrays, i, W, eps=1e-6):
    a = arrays[i]
    g = np.zeros_like(a)
    for idx in np.ndindex(*a.shape):
        plus = [x.copy() for x in arrays]
        minus = [x.copy() for x in arrays]
        plus[i][idx] += eps
        minus[i][idx] -= eps
        g[idx] = (np.sum(W * _np(f(*plus))) - np.sum(W * _np(f(*minus)))) / (2 * eps)
    return g


def fd_dir(f, arrays, tangents, eps=1e-6):
    plus = [a + eps * t for a, t in zip(arrays, tangents)]
    minus = [a - eps * t for a, t in zip(arrays, tangents)]
    return (_np(f(*plus)) - _np(f(*minus))) / (2 * eps)


def check(f, *arrays, second=True, batch=True, forward=True, rtol=1e-5, atol=1e-6):
    """Reverse/forward/batched/second-order derivatives of ``f`` against finite differences."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    out = _np(f(*arrays))
    W = rand(*out.shape)
    grads = rev_grads(f, arrays, W)
    for i, g in enumerate(grads):
        assert g.shape == arrays[i].shape
        assert_allclose(g, fd_grad(f, arrays, i, W), rtol=rtol, atol=atol,
                        err_msg=f"reverse derivative wrt argument {i}")
    T = [rand(*a.shape) for a in arrays]
    if forward:
        val, tan = fwd(f, arrays, T)
        assert_allclose(val, out, rtol=1e-12, atol=1e-12)
        assert_allclose(tan, fd_dir(f, arrays, T), rtol=rtol, atol=atol,
                        err_msg="forward derivative")
    if batch:
        k = 3
        Gb = rand(k, *out.shape)
        xs = [cr.tensor(a, requires_grad=True) for a in arrays]
        y = f(*xs)
        leaves, _ = backward_pass([(y, Gb)], y._level)
        for i, x in enumerate(xs):
            gb = _np(leaves[id(x)][1])
            assert gb.shape == (k,) + arrays[i].shape
            for j in range(k):
                assert_allclose(gb[j], rev_grads(f, arrays, Gb[j])[i], rtol=1e-10, atol=1e-12,
                                err_msg=f"batched cotangent, argument {i}")
        if forward:
            Tb = [rand(k, *a.shape) for a in arrays]
            _, tb = fwd(f, arrays, Tb)
            assert tb.shape == (k,) + out.shape
            for j in range(k):
                assert_allclose(tb[j], fwd(f, arrays, [t[j] for t in Tb])[1], rtol=1e-10,
                                atol=1e-12, err_msg="batched tangent")
    if second:
        V = [rand(*a.shape) for a in arrays]
        xs = [cr.tensor(a, requires_grad=True) for a in arrays]
        y = f(*xs)
        y.backward(W, create_graph=True)
        gs = [x.grad for x in xs]
        h = None
        for g, v in zip(gs, V):
            if g is None:
                continue
            term = cnp.sum(g * v)
            h = term if h is None else h + term
        for x in xs:
            x.grad = None
        if isinstance(h, cr.Tensor) and h.requires_grad:  # else f is linear: no curvature
            h.backward()
        eps = 1e-5
        plus = rev_grads(f, [a + eps * v for a, v in zip(arrays, V)], W)
        minus = rev_grads(f, [a - eps * v for a, v in zip(arrays, V)], W)
        for i, x in enumerate(xs):
            want = (plus[i] - minus[i]) / (2 * eps)
            got = np.zeros_like(want) if x.grad is None else _np(x.grad)
            assert_allclose(got, want, rtol=1e-4, atol=1e-5,
                            err_msg=f"second derivative (Hessian-vector), argument {i}")


# --- matmul ---------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3,), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)),
    ((5, 2, 3), (5, 3, 4)),
    ((5, 1, 2, 3), (4, 3, 2)),
    ((3,), (5, 3, 4)),
    ((5, 2, 3), (3,)),
    ((1, 2, 3), (5, 3, 4)),
    ((2, 1, 2, 3), (1, 3, 3, 1)),
    ((1, 1), (1, 1)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_values_and_derivatives(sa, sb):
    a, b = rand(*sa), rand(*sb)
    assert_allclose(cnp.matmul(a, b), np.matmul(a, b))
    check(cnp.matmul, a, b, second=len(sa) + len(sb) < 7)


@pytest.mark.parametrize("sa,sb", [((3,), (3, 4)), ((2, 3), (3,)), ((5, 2, 3), (3, 4))])
def test_matmul_second_order(sa, sb):
    # Only one argument differentiated: d/da of <W, (a @ b) * (a @ b)> mixes a with itself.
    b = rand(*sb)
    check(lambda a: cnp.matmul(a, b) * cnp.matmul(a, b), rand(*sa), batch=False)
    a = rand(*sa)
    check(lambda b: cnp.sin(cnp.matmul(a, b)), rand(*sb), batch=False)


def test_matmul_operator_and_tensor_dot():
    a, b = rand(2, 3), rand(3, 4)
    x = cr.tensor(a, requires_grad=True)
    y = x @ b
    assert isinstance(y, cr.Tensor)
    assert_allclose(_np(y), a @ b)
    (b.T @ x.T).sum().backward()  # ndarray @ Tensor defers to Tensor.__rmatmul__
    assert_allclose(x.grad, np.ones((2, 4)) @ b.T)
    assert_allclose(_np(x.dot(b)), a @ b)


def test_matmul_batched_cotangent_vector_case():
    # The brief's example: A (m, n) @ x (n,), cotangent batch (k, m).
    A, x = rand(4, 3), rand(3)
    At, xt = cr.tensor(A, requires_grad=True), cr.tensor(x, requires_grad=True)
    y = cnp.matmul(At, xt)
    G = rand(6, 4)
    leaves, _ = backward_pass([(y, G)], y._level)
    gx, gA = _np(leaves[id(xt)][1]), _np(leaves[id(At)][1])
    assert gx.shape == (6, 3) and gA.shape == (6, 4, 3)
    assert_allclose(gx, G @ A)
    assert_allclose(gA, G[:, :, None] * x[None, None, :])


def test_matmul_float32_preserved():
    a = rand(3, 4).astype(np.float32)
    b = rand(4, 2).astype(np.float32)
    x = cr.tensor(a, requires_grad=True)
    y = cnp.matmul(x, b)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_matmul_plain_arrays_stay_plain():
    assert type(cnp.matmul(rand(2, 2), rand(2, 2))) is np.ndarray
    assert_allclose(cnp.matmul([[1.0, 2.0]], [[3.0], [4.0]]), [[11.0]])


def test_matmul_errors():
    with pytest.raises(ValueError, match="matmul"):
        cnp.matmul(rand(2, 3), rand(4, 2))
    with pytest.raises(ValueError, match="scalar"):
        cnp.matmul(rand(2, 3), 2.0)


def test_matmul_stack_against_matrix_folds_contraction():
    # The reshape fast path of the reverse rule for a stack times one matrix.
    a, b = rand(4, 5, 3), rand(3, 2)
    W = rand(4, 5, 2)
    gb = rev_grads(cnp.matmul, [a, b], W)[1]
    assert_allclose(gb, np.einsum("smn,smp->np", a, W))


# --- dot, inner, outer, vdot, tensordot, kron --------------------------------------------------

@pytest.mark.parametrize("sa,sb", [
    ((), (3,)), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)),
    ((4, 2, 3), (3, 5)), ((2, 3), (4, 3, 5)), ((2, 2, 3), (4, 3, 5)),
])
def test_dot(sa, sb):
    a, b = rand(*sa), rand(*sb)
    assert_allclose(cnp.dot(a, b), np.dot(a, b))
    check(cnp.dot, a, b, second=False)


@pytest.mark.parametrize("sa,sb", [
    ((), (3,)), ((3,), (3,)), ((2, 3), (3,)), ((3,), (4, 3)), ((2, 3), (4, 3)),
    ((5, 2, 3), (4, 3)), ((2, 3), (4, 5, 3)),
])
def test_inner(sa, sb):
    a, b = rand(*sa), rand(*sb)
    assert_allclose(cnp.inner(a, b), np.inner(a, b))
    check(cnp.inner, a, b, second=False)


def test_outer_vdot_kron():
    a, b = rand(2, 3), rand(4)
    assert_allclose(cnp.outer(a, b), np.outer(a, b))
    check(cnp.outer, a, b, second=False)
    c, d = rand(2, 3), rand(3, 2)
    assert_allclose(cnp.vdot(c, d), np.vdot(c, d))
    check(cnp.vdot, c, d, second=False)
    for sa, sb in [((2, 3), (3, 2)), ((2,), (3, 2)), ((2, 1, 2), (3, 2)), ((), (2,))]:
        a, b = rand(*sa), rand(*sb)
        assert_allclose(cnp.kron(a, b), np.kron(a, b))
        check(cnp.kron, a, b, second=False)
    with pytest.raises(ValueError, match="vdot"):
        cnp.vdot(rand(3), rand(4))


@pytest.mark.parametrize("sa,sb,axes", [
    ((2, 3, 4), (3, 4, 5), 2),
    ((2, 3, 4), (4, 5), 1),
    ((2, 3), (4, 5), 0),
    ((3, 2, 4), (4, 3, 5), ([0, 2], [1, 0])),
    ((3, 2, 4), (4, 3, 5), ([-1], [0])),
    ((3, 4), (4, 3), ([1, 0], [0, 1])),
])
def test_tensordot(sa, sb, axes):
    a, b = rand(*sa), rand(*sb)
    assert_allclose(cnp.tensordot(a, b, axes), np.tensordot(a, b, axes))
    check(lambda x, y: cnp.tensordot(x, y, axes), a, b, second=False)


def test_tensordot_errors():
    with pytest.raises(ValueError, match="tensordot"):
        cnp.tensordot(rand(2, 3), rand(4, 5), ([1], [0]))
    with pytest.raises(ValueError, match="tensordot"):
        cnp.tensordot(rand(2, 3), rand(3, 5), ([1, 0], [0]))


# --- einsum -----------------------------------------------------------------------------------

EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("i,i", [(3,), (3,)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("ij->ji", [(2, 3)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("iii->i", [(3, 3, 3)]),
    ("iij->ji", [(3, 3, 2)]),
    ("ij,ij->ij", [(3, 1), (3, 4)]),
    ("i,i->i", [(1,), (3,)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("...i,...i", [(2, 3), (3,)]),
    ("i...->...", [(3, 2, 2)]),
    ("ba,aB", [(2, 3), (3, 4)]),
    ("ij,ik->jk", [(5, 3), (5, 2)]),
    (",i->i", [(), (3,)]),
]


@pytest.mark.parametrize("spec,shapes", EINSUM_CASES)
def test_einsum(spec, shapes):
    ops = [rand(*s) for s in shapes]
    assert_allclose(cnp.einsum(spec, *ops), np.einsum(spec, *ops), atol=1e-12)
    check(lambda *xs: cnp.einsum(spec, *xs), *ops, second=len(ops) <= 2 and
          sum(len(s) for s in shapes) <= 6)


def test_einsum_second_order_mixed():
    # Both operands are the same tensor: the second derivative mixes the two slots.
    check(lambda a: cnp.einsum("ij,jk->ik", a, a), rand(3, 3))
    check(lambda a: cnp.einsum("ii,ij->j", a, a), rand(3, 3))


def test_einsum_interleaved_form_and_large_operands():
    a, b = rand(2, 3), rand(3, 4)
    assert_allclose(cnp.einsum(a, [0, 1], b, [1, 2], [0, 2]), a @ b)
    c = rand(3, 2)
    assert_allclose(cnp.einsum(a, [Ellipsis, 1], c, [1, Ellipsis]), np.einsum("...j,j...", a, c))
    big = rand(30, 40), rand(40, 20)  # the BLAS-backed optimised path
    assert_allclose(cnp.einsum("ij,jk->ik", *big), big[0] @ big[1])
    check(lambda x: cnp.einsum("ij,jk->ik", x, big[1][:5, :3]), rand(4, 5), second=False)


def test_einsum_float32_preserved():
    a = rand(3, 3).astype(np.float32)
    x = cr.tensor(a, requires_grad=True)
    y = cnp.einsum("ii->i", x)
    assert y.dtype == np.float32
    cnp.sum(y).backward()
    assert x.grad.dtype == np.float32
    assert_allclose(x.grad, np.eye(3))


@pytest.mark.parametrize("spec,shapes", [
    ("ij,jk->ik", [(2, 3), (4, 5)]),
    ("ij->ii", [(2, 2)]),
    ("ij->k", [(2, 2)]),
    ("ij,jk->ik", [(2, 3)]),
    ("ijk", [(2, 3)]),
    ("i$", [(2, 3)]),
])
def test_einsum_errors(spec, shapes):
    with pytest.raises(ValueError, match="einsum"):
        cnp.einsum(spec, *[rand(*s) for s in shapes])


# --- inv, solve, det, slogdet -------------------------------------------------------------------

@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_inv(batch):
    A = wellcond(3, batch)
    assert_allclose(cnp.linalg.inv(A), np.linalg.inv(A))
    check(cnp.linalg.inv, A, second=len(batch) < 2)


def test_inv_closed_form_gradient():
    A, G = wellcond(3), rand(3, 3)
    Ai = np.linalg.inv(A)
    assert_allclose(rev_grads(cnp.linalg.inv, [A], G)[0], -Ai.T @ G @ Ai.T)


@pytest.mark.parametrize("sa,sb", [
    ((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 2)), ((2, 3, 3), (3,)),
    ((3, 3), (2, 3, 1)), ((2, 1, 3, 3), (4, 3, 2)),
])
def test_solve(sa, sb):
    A, b = wellcond(sa[-1], sa[:-2]), rand(*sb)
    assert_allclose(cnp.linalg.solve(A, b), np.linalg.solve(A, b))
    check(cnp.linalg.solve, A, b, second=len(sa) + len(sb) <= 5)


@pytest.mark.parametrize("batch", [(), (3,)])
def test_det_and_slogdet(batch):
    A = wellcond(3, batch)
    assert_allclose(cnp.linalg.det(A), np.linalg.det(A))
    check(cnp.linalg.det, A)
    B = A.copy()
    B[..., 0, :] *= -1  # negative determinant: sign -1, logabsdet still smooth
    sign, logdet = cnp.linalg.slogdet(B)
    s_np, l_np = np.linalg.slogdet(B)
    assert_allclose(sign, s_np)
    assert_allclose(logdet, l_np)
    check(lambda a: cnp.linalg.slogdet(a)[1], B)
    check(lambda a: cnp.linalg.slogdet(a).logabsdet, A, second=False)


def test_det_gradient_closed_form_and_sign_is_plain():
    A = wellcond(3)
    g = rev_grads(cnp.linalg.det, [A], np.ones(()))[0]
    assert_allclose(g, np.linalg.det(A) * np.linalg.inv(A).T)
    x = cr.tensor(A, requires_grad=True)
    sign, logdet = cnp.linalg.slogdet(x)
    assert not isinstance(sign, cr.Tensor)
    logdet.backward()
    assert_allclose(x.grad, np.linalg.inv(A).T)


def test_square_checks():
    with pytest.raises(ValueError, match="inv"):
        cnp.linalg.inv(rand(2, 3))
    with pytest.raises(np.linalg.LinAlgError, match="det"):
        cnp.linalg.det(rand(3))
    with pytest.raises(ValueError, match="solve"):
        cnp.linalg.solve(wellcond(3), rand(4))


# --- cholesky, eigh, qr, svd -------------------------------------------------------------------

@pytest.mark.parametrize("batch", [(), (2,)])
def test_cholesky(batch):
    A = spd(3, batch)
    assert_allclose(cnp.linalg.cholesky(A), np.linalg.cholesky(A))
    assert_allclose(cnp.linalg.cholesky(A, upper=True),
                    np.swapaxes(np.linalg.cholesky(A), -1, -2))
    # The symmetric part is factored: derivatives are consistent for any perturbation.
    chol = lambda a: cnp.linalg.cholesky((a + np.swapaxes(a, -1, -2)) * 0.5)
    check(chol, A, second=not batch)
    check(cnp.linalg.cholesky, A, second=False)


def test_cholesky_logdet_gradient_is_inverse():
    A = spd(4)
    x = cr.tensor(A, requires_grad=True)
    L = cnp.linalg.cholesky(x)
    (2.0 * cnp.sum(cnp.log(cnp.einsum("ii->i", L)))).backward()
    assert_allclose(x.grad, np.linalg.inv(A), rtol=1e-10)


def _eigh_fn(a):
    w, v = cnp.linalg.eigh(a)
    # eigenvector signs are arbitrary: use sign-invariant functions of them
    return cnp.reshape(w, (-1, 1)) * np.arange(1.0, 4.0) + (v * v) * np.array([[1.0, -2.0, 0.5]])


def test_eigh():
    A = spd(3) + np.diag([0.0, 3.0, 7.0])
    w, v = cnp.linalg.eigh(A)
    w_np, v_np = np.linalg.eigh(A)
    assert_allclose(w, w_np)
    assert_allclose(np.abs(v), np.abs(v_np), atol=1e-10)
    check(_eigh_fn, A)
    check(lambda a: cnp.linalg.eigvalsh(a), A)
    x = cr.tensor(A, requires_grad=True)
    res = cnp.linalg.eigh(x)
    assert_allclose(res.eigenvalues.data, w_np)


def test_eigh_stacked_and_gradient_symmetric():
    A = spd(3, (2,)) + np.diag([0.0, 3.0, 7.0])
    check(lambda a: cnp.linalg.eigh(a)[1] ** 2, A, second=False)
    x = cr.tensor(A[0], requires_grad=True)
    w, v = cnp.linalg.eigh(x)
    cnp.sum(w * np.array([0.0, 0.0, 1.0])).backward()
    vmax = np.linalg.eigh(A[0])[1][:, 2]
    assert_allclose(x.grad, np.outer(vmax, vmax), atol=1e-10)  # d lambda_max / dA = v v^T


def _qr_fn(a):
    q, r = cnp.linalg.qr(a)
    return cnp.sum(q * np.linspace(1, 2, q.shape[-1])) + cnp.einsum("...ij,ij->...", r,
                                                                     np.triu(np.ones(r.shape[-2:])))


@pytest.mark.parametrize("shape", [(3, 3), (5, 3), (2, 4, 3)])
def test_qr(shape):
    A = rand(*shape) + np.eye(*shape[-2:])
    q, r = cnp.linalg.qr(A)
    q_np, r_np = np.linalg.qr(A)
    assert_allclose(q, q_np)
    assert_allclose(r, r_np)
    check(lambda a: cnp.linalg.qr(a)[0], A, second=len(shape) == 2)
    check(lambda a: cnp.linalg.qr(a)[1], A, second=False)
    check(lambda a: cnp.linalg.qr(a, mode="r"), A, second=False)


@pytest.mark.parametrize("shape", [(2, 4), (3, 5), (2, 2, 3)])
def test_qr_wide(shape):
    """A wide matrix (m < n): NumPy's values; derivatives of Q and R in both modes."""
    A = rand(*shape)
    x = cr.tensor(A, requires_grad=True)
    for mode in ("reduced", "complete"):
        q, r = cnp.linalg.qr(x, mode=mode)
        q_np, r_np = np.linalg.qr(A, mode=mode)
        assert q.shape == q_np.shape and r.shape == r_np.shape
        assert_allclose(_np(q), q_np, atol=1e-12)
        assert_allclose(_np(r), r_np, atol=1e-12)
    assert_allclose(_np(cnp.linalg.qr(x, mode="r")), np.linalg.qr(A, mode="r"), atol=1e-12)
    check(_qr_fn, A, second=len(shape) == 2)
    check(lambda a: cnp.linalg.qr(a)[1], A, second=False)


def test_qr_primitive_itself_refuses_wide_matrices_with_a_pointer():
    with pytest.raises(NotImplementedError, match="cnp.linalg.qr"):
        cr.grad(lambda a: cnp.sum(tuple_get(qr_p(a), index=1)))(rand(2, 4))


def _svd_fn(a):
    u, s, vh = cnp.linalg.svd(a, full_matrices=False)
    # u * u and vh * vh are invariant under the sign ambiguity of singular vectors
    w = np.linspace(1.0, 2.0, s.shape[-1])
    return (cnp.sum(u * u * w, axis=-2) + s * s
            + cnp.sum(vh * vh * np.linspace(-1.0, 1.0, vh.shape[-1]), axis=-1))


@pytest.mark.parametrize("shape", [(3, 3), (5, 3), (3, 5), (2, 4, 3)])
def test_svd(shape):
    A = rand(*shape)
    u, s, vh = cnp.linalg.svd(A, full_matrices=False)
    u_np, s_np, vh_np = np.linalg.svd(A, full_matrices=False)
    assert_allclose(s, s_np)
    assert_allclose(np.abs(u), np.abs(u_np), atol=1e-10)
    assert_allclose(np.abs(vh), np.abs(vh_np), atol=1e-10)
    check(_svd_fn, A, second=len(shape) == 2)
    check(lambda a: cnp.linalg.svd(a, compute_uv=False), A, second=False)
    w = np.linspace(1.0, 2.0, min(shape[-2:]))
    check(lambda a: cnp.matmul(cnp.linalg.svd(a, full_matrices=False)[0] * w,
                               cnp.linalg.svd(a, full_matrices=False)[2]), A, second=False)


def test_svd_full_matrices():
    A = rand(4, 3)
    x = cr.tensor(A, requires_grad=True)
    u, s, vh = cnp.linalg.svd(x)  # NumPy's default: full_matrices=True
    assert u.shape == (4, 4)
    assert_allclose(np.abs(_np(u)), np.abs(np.linalg.svd(A)[0]), atol=1e-10)
    cnp.sum(s).backward()
    u_np, _, vh_np = np.linalg.svd(A, full_matrices=False)
    assert_allclose(x.grad, u_np @ vh_np, atol=1e-10)  # d sum(s) / dA = U V^T
    # square: full == reduced, both modes work
    check(lambda a: cnp.linalg.svd(a)[1], rand(3, 3), second=False)


def _svd_full_fn(a):
    """Depends on the extra columns of U (rows of Vh) only through their projector, which
    the basis choice does not change, and on everything else of the full SVD."""
    u, s, vh = cnp.linalg.svd(a)  # full_matrices=True
    m, n = a.shape[-2:]
    k = min(m, n)
    u2, vh2 = u[..., :, k:], vh[..., k:, :]
    p_u = cnp.matmul(u2, cnp.swapaxes(u2, -1, -2))
    p_v = cnp.matmul(cnp.swapaxes(vh2, -1, -2), vh2)
    return (cnp.sum(p_u * np.arange(m * m).reshape(m, m), axis=(-2, -1))
            + cnp.sum(p_v * np.arange(n * n).reshape(n, n), axis=(-2, -1))
            + cnp.sum(s * s, axis=-1)
            + cnp.sum(u[..., :, :k] ** 2 * np.linspace(1.0, 2.0, k), axis=(-2, -1))
            + cnp.sum(vh[..., :k, :] ** 2 * np.linspace(1.0, 3.0, n), axis=(-2, -1)))


def _svd_full_complex_fn(a):
    u, s, vh = cnp.linalg.svd(a)
    u2 = u[..., :, min(a.shape[-2:]):]
    p_u = cnp.matmul(u2, cnp.conj(cnp.swapaxes(u2, -1, -2)))  # (phase-free, like s)
    return cnp.real(p_u) * 2.0 + cnp.imag(p_u) + cnp.sum(s * s)


@pytest.mark.parametrize("shape", [(4, 2), (2, 5), (2, 4, 3)])
def test_svd_full_matrices_both_modes(shape):
    """full_matrices=True on non-square matrices: forward mode too, consistent with reverse
    mode, exact for functions of the complement's projector (the old rule dropped them)."""
    A = rand(*shape)
    check(_svd_full_fn, A, second=len(shape) == 2)
    _, tan = fwd(lambda a: cnp.linalg.svd(a)[0], [A], [rand(*shape)])
    assert tan.shape == np.linalg.svd(A)[0].shape
    # U stays unitary to first order: U^T dU is skew
    u = np.linalg.svd(A)[0]
    w = np.swapaxes(u, -1, -2) @ tan
    assert_allclose(w, -np.swapaxes(w, -1, -2), atol=1e-10)


# --- norms -------------------------------------------------------------------------------------

@pytest.mark.parametrize("ord_,axis,shape", [
    (None, None, (3,)), (None, None, (2, 3)), (None, None, (2, 3, 2)), (2, None, (4,)),
    (1, None, (4,)), (np.inf, None, (4,)), (-np.inf, None, (4,)), (3, None, (4,)),
    (0.5, None, (4,)), (None, 1, (2, 3)), (None, -2, (2, 3)), ("fro", None, (2, 3)),
    (1, None, (2, 3)), (-1, None, (2, 3)), (np.inf, None, (2, 3)), (-np.inf, None, (2, 3)),
    (2, None, (3, 2)), (-2, None, (3, 2)), ("nuc", None, (3, 2)), (None, (0, 2), (2, 3, 4)),
    (2, (2, 0), (3, 2, 4)), (1, (-1, 0), (2, 3, 4)),
])
@pytest.mark.parametrize("keepdims", [False, True])
def test_norm(ord_, axis, shape, keepdims):
    x = rand(*shape)
    want = np.linalg.norm(x, ord=ord_, axis=axis, keepdims=keepdims)
    got = cnp.linalg.norm(x, ord=ord_, axis=axis, keepdims=keepdims)
    assert np.shape(got) == np.shape(want)
    assert_allclose(got, want)
    check(lambda a: cnp.linalg.norm(a, ord=ord_, axis=axis, keepdims=keepdims), x,
          second=ord_ in (None, "fro") and not keepdims)


def test_norm_zero_vector_gradient_is_zero():
    x = cr.tensor(np.zeros(3), requires_grad=True)
    cnp.linalg.norm(x).backward()
    assert_allclose(x.grad, np.zeros(3))
    _, tan = fwd(cnp.linalg.norm, [np.zeros(3)], [np.ones(3)])
    assert_allclose(tan, 0.0)
    x = cr.tensor(np.array([[0.0, 0.0], [3.0, 4.0]]), requires_grad=True)
    cnp.sum(cnp.linalg.norm(x, axis=1)).backward()
    assert_allclose(x.grad, [[0.0, 0.0], [0.6, 0.8]])


def test_norm_float32_and_count_norm():
    x = cr.tensor(rand(4).astype(np.float32), requires_grad=True)
    y = cnp.linalg.norm(x)
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32
    v = np.array([0.0, 2.0, 0.0, -1.0])
    assert_allclose(cnp.linalg.norm(v, ord=0), np.linalg.norm(v, ord=0))


def test_vector_and_matrix_norm():
    x = rand(2, 3, 4)
    assert_allclose(cnp.linalg.vector_norm(x), np.linalg.vector_norm(x))
    assert_allclose(cnp.linalg.vector_norm(x, axis=(0, 2), ord=1),
                    np.linalg.vector_norm(x, axis=(0, 2), ord=1))
    assert_allclose(cnp.linalg.matrix_norm(x, ord=2), np.linalg.matrix_norm(x, ord=2))
    check(lambda a: cnp.linalg.vector_norm(a, axis=(0, 2)), x, second=False)


def test_norm_errors():
    with pytest.raises(ValueError, match="norm"):
        cnp.linalg.norm(rand(2, 2, 2), ord=1)
    with pytest.raises(ValueError, match="norm"):
        cnp.linalg.norm(rand(3), ord="fro")
    with pytest.raises(ValueError, match="norm"):
        cnp.linalg.norm(rand(3, 3), ord=3)


# --- pinv, matrix_power, lstsq -------------------------------------------------------------------

def test_pinv_matrix_power_lstsq():
    A = rand(5, 3)
    assert_allclose(cnp.linalg.pinv(A), np.linalg.pinv(A))
    x = cr.tensor(A, requires_grad=True)
    assert_allclose(_np(cnp.linalg.pinv(x)), np.linalg.pinv(A), atol=1e-12)
    check(cnp.linalg.pinv, A, second=False)
    M = wellcond(3)
    for n in (0, 1, 2, 3, 5, -2):
        assert_allclose(cnp.linalg.matrix_power(M, n), np.linalg.matrix_power(M, n))
    check(lambda m: cnp.linalg.matrix_power(m, 3), M)
    check(lambda m: cnp.linalg.matrix_power(m, -2), M, second=False)
    b = rand(5)
    xs_np = np.linalg.lstsq(A, b)
    xs = cnp.linalg.lstsq(cr.tensor(A, requires_grad=True), b)
    assert_allclose(_np(xs[0]), xs_np[0])
    assert_allclose(_np(xs[1]), xs_np[1])
    assert xs[2] == xs_np[2]
    check(lambda a, bb: cnp.linalg.lstsq(a, bb)[0], A, b, second=False)


# --- multi-output plumbing ----------------------------------------------------------------------

def test_tuple_get_cotangent_has_none_elsewhere():
    from chainrule.ops.linalg import tuple_get

    assert tuple_get.name == "tuple_get"
    A = spd(3) + np.diag([0.0, 3.0, 7.0])
    x = cr.tensor(A, requires_grad=True)
    w, v = cnp.linalg.eigh(x)
    # only the eigenvalues used: the eigenvector slot of the tuple cotangent stays None
    cnp.sum(w).backward()
    assert_allclose(x.grad, np.eye(3), atol=1e-10)  # d trace / dA


def test_plain_arrays_return_numpy_results():
    A = spd(3)
    assert type(cnp.linalg.inv(A)) is np.ndarray
    w, v = cnp.linalg.eigh(A)
    assert type(w) is np.ndarray
    u, s, vh = cnp.linalg.svd(A)
    assert type(s) is np.ndarray
    sign, logdet = cnp.linalg.slogdet(A)
    assert_allclose(logdet, np.linalg.slogdet(A)[1])


# --- array-API backends ---------------------------------------------------------------------------

def test_array_api_strict_matmul_and_einsum_error():
    xp = pytest.importorskip("array_api_strict")
    a = xp.asarray(rand(2, 3))
    b = xp.asarray(rand(3, 4))
    out = cnp.matmul(a, b)
    assert_allclose(np.asarray(out), np.asarray(a) @ np.asarray(b))
    x = cr.tensor(a, requires_grad=True)
    y = cnp.matmul(x, b)
    y.backward(xp.ones((2, 4), dtype=xp.float64))
    assert_allclose(np.asarray(x.grad), np.ones((2, 4)) @ np.asarray(b).T)
    A = xp.asarray(wellcond(3))
    assert_allclose(np.asarray(cnp.linalg.inv(A)), np.linalg.inv(np.asarray(A)))
    with pytest.raises(NotImplementedError, match="einsum.*array_api_strict"):
        cnp.einsum("ij,jk->ik", a, b)


# --- the shared numerical checker (forward and reverse, second order) ---------------------------

@pytest.mark.parametrize("name", ["matmul", "inv", "solve", "det", "einsum", "stacked_inv",
                                  "qr_wide", "qr_wide_stack", "qr_wide_complex",
                                  "svd_full_tall", "svd_full_wide", "svd_full_complex"])
def test_check_grads_second_order(name):
    check_grads = getattr(cr, "check_grads", None)
    if check_grads is None:
        pytest.skip("cr.check_grads not available")
    A, B = wellcond(3), rand(3, 2)
    cases = {
        "matmul": (lambda a, b: cnp.matmul(a, b), (A, B)),
        "inv": (cnp.linalg.inv, (A,)),
        "solve": (cnp.linalg.solve, (A, B)),
        "det": (cnp.linalg.det, (A,)),
        "einsum": (lambda a, b: cnp.einsum("ij,jk->ik", a, b), (A, B)),
        "stacked_inv": (cnp.linalg.inv, (wellcond(3, (2,)),)),
        "qr_wide": (lambda a: cnp.linalg.qr(a), (rand(2, 4),)),
        "qr_wide_stack": (lambda a: cnp.linalg.qr(a, mode="r"), (rand(2, 2, 3),)),
        "qr_wide_complex": (lambda a: cnp.linalg.qr(a), (rand(2, 3) + 1j * rand(2, 3),)),
        "svd_full_tall": (_svd_full_fn, (rand(4, 2),)),
        "svd_full_wide": (_svd_full_fn, (rand(2, 4),)),
        "svd_full_complex": (_svd_full_complex_fn, (rand(3, 2) + 1j * rand(3, 2),)),
    }
    f, args = cases[name]
    check_grads(f, args, order=2, modes=("fwd", "rev"))
