"""The batching column of the primitive table: ``vmap(f)`` equals stacking ``f`` over examples.

For every case of ``test_primitive_table.CASES``, of the convolution, SciPy, complex and FFT
tables (their ``CASES``), and for the linear-algebra, shape and indexing cases below: the
mapped axis first and last, only the first argument mapped (the others shared), and
``vmap(grad(sum f))`` against per-example gradients.  A registry walk fails for any
registered primitive (differentiable or not) without a batching rule.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.batching import BATCHING_RULES
from chainrule.core.primitive import registry
from chainrule.optimize import fixed_point  # (its primitive joins the registry walk)
from other_tables import OTHER_TABLES  # noqa: E402
from test_primitive_table import CASES, Case

B = 3
_rng = np.random.default_rng(7)


# Functions that read their arguments' VALUES (checks, data-dependent sizes or ranks): a
# batched value has none, so vmap refuses them (BatchedValueError) instead of guessing.
READS_VALUES = {
    "mvn.logpdf-eigh": "the rank of a singular covariance comes from its eigenvalues",
    "dirichlet.logpdf": "alpha and the points are validated on their values",
    "dirichlet.pdf-points": "alpha and the points are validated on their values",
    "poisson.logpmf": "mu is validated and k's integrality read on their values",
    "poisson.pmf": "mu is validated and k's integrality read on their values",
    "poisson.cdf": "mu is validated and k's integrality read on their values",
    "lstsq-x": "the rank (a result) comes from the singular values",
    "lstsq-residuals": "the rank (a result) comes from the singular values",
}
# One time grid for the solver: odeint maps y0 and the arguments (test_vmap_odeint below).
SHARED_ARGS = {"odeint-decay": (0, None, 0)}


def test_every_registered_primitive_has_a_batching_rule():
    missing = [n for n in registry if "#" not in n and n not in BATCHING_RULES]
    assert not missing, "primitives without a batching rule: " + ", ".join(missing)


def _examples(args):
    """B examples per argument: float arrays scaled slightly apart (inside each domain)."""
    out = []
    for a in args:
        a = np.asarray(a)
        if a.dtype.kind in "fc":
            scale = np.array([1.0, 1.013, 0.987]).astype(a.dtype).reshape((B,) + (1,) * a.ndim)
            out.append(a[None] * scale)
        else:
            out.append(np.stack([a] * B))
    return out


def _tol(x):
    return dict(rtol=2e-5, atol=1e-6) if np.asarray(x).dtype in (np.float32, np.complex64) \
        else dict(rtol=1e-10, atol=1e-12)


def _plain(x):
    return np.asarray(x.data if isinstance(x, cr.Tensor) else x)


def check_batching(fn, args):
    exs = _examples(args)
    ref = np.stack([_plain(fn(*[e[k] for e in exs])) for k in range(B)])
    # mapped axis first
    got = cr.vmap(fn)(*exs)
    assert_allclose(_plain(got), ref, **_tol(ref))
    # mapped axis last (in and out)
    last = [np.moveaxis(e, 0, -1) for e in exs]
    got = cr.vmap(fn, in_axes=-1, out_axes=-1)(*last)
    assert_allclose(_plain(got), np.moveaxis(ref, 0, -1), **_tol(ref))
    # only the first argument mapped: the others are shared by every example
    if len(args) > 1:
        ref1 = np.stack([_plain(fn(exs[0][k], *args[1:])) for k in range(B)])
        got = cr.vmap(fn, in_axes=(0,) + (None,) * (len(args) - 1))(exs[0], *args[1:])
        assert_allclose(_plain(got), ref1, **_tol(ref1))
    return exs


def _real_sum(y):
    """A real scalar of every entry of ``y`` (real and imaginary parts of complex ones)."""
    y = cnp.asarray(y)
    if np.dtype(y.dtype).kind == "c":
        return cnp.sum(cnp.real(y)) + cnp.sum(cnp.imag(y))
    return cnp.sum(y)


def check_batched_grad(fn, args, exs):
    nums = tuple(i for i, a in enumerate(args) if np.asarray(a).dtype.kind in "fc")
    if not nums:
        return
    g = cr.grad(lambda *a: _real_sum(fn(*a)), argnums=nums)
    ref = [g(*[e[k] for e in exs]) for k in range(B)]
    got = cr.vmap(g)(*exs)
    for j in range(len(nums)):
        want = np.stack([r[j] for r in ref])
        assert_allclose(_plain(got[j]), want, **_tol(want))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_vmap_matches_stacking(case: Case):
    exs = check_batching(case.fn, case.args)
    check_batched_grad(case.fn, case.args, exs)


@pytest.mark.parametrize("module,case", OTHER_TABLES,
                         ids=[f"{m.removeprefix('test_')}-{c.id}" for m, c in OTHER_TABLES])
def test_vmap_matches_stacking_other_tables(module, case):
    if case.id in READS_VALUES:
        with pytest.raises(cr.batching.BatchedValueError):
            cr.vmap(case.fn)(*_examples(case.args))
        pytest.skip("reads values: " + READS_VALUES[case.id])
    if case.id in SHARED_ARGS:
        pytest.skip("a shared argument (see test_vmap_odeint)")
    exs = check_batching(case.fn, case.args)
    check_batched_grad(case.fn, case.args, exs)


def test_vmap_odeint_maps_the_start_and_the_arguments():
    scipy_table = pytest.importorskip("test_scipy_table")
    case = next(c for c in scipy_table.CASES if c.id == "odeint-decay")
    y0, t, a = _examples(case.args)
    ref = np.stack([case.fn(y0[k], case.args[1], a[k]) for k in range(B)])
    got = cr.vmap(case.fn, in_axes=SHARED_ARGS[case.id])(y0, case.args[1], a)
    assert_allclose(got, ref, rtol=1e-6, atol=1e-8)  # one joint solve: its own step sizes
    # derivatives of the batched solve (odeint's adjoint is first order only, so the
    # transform goes outside vmap)
    g = cr.grad(lambda y, aa: cnp.sum(case.fn(y, case.args[1], aa)), argnums=(0, 1))
    want = [g(y0[k], a[k]) for k in range(B)]
    got = cr.grad(lambda y, aa: cnp.sum(cr.vmap(case.fn, in_axes=(0, None, 0))(
        y, case.args[1], aa)), argnums=(0, 1))(y0, a)
    for j in range(2):
        assert_allclose(got[j], np.stack([w[j] for w in want]), rtol=1e-5, atol=1e-7)
    with pytest.raises(NotImplementedError, match="time points"):
        cr.vmap(case.fn)(y0, np.stack([case.args[1]] * B), a)


def test_vmap_fixed_point_iterates_the_whole_batch_at_once():
    def newton_sqrt(a, x):
        return 0.5 * (x + a / x)

    def sqrt(a):
        return fixed_point(newton_sqrt, a, cnp.ones_like(a), lambda x, y: np.max(np.abs(x - y)),
                           1e-13)

    a = np.array([[2.0, 3.0], [4.0, 9.0], [0.5, 7.0]])
    assert_allclose(cr.vmap(sqrt)(a), np.sqrt(a), rtol=1e-12)
    # a distance returning a Python float (it reads numbers): measured on the whole batch
    plain = lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y))))  # noqa: E731
    got = cr.vmap(lambda v: fixed_point(newton_sqrt, v, cnp.ones_like(v), plain, 1e-13))(a)
    assert_allclose(got, np.sqrt(a), rtol=1e-12)
    # derivatives of the batched iteration, both modes (its implicit rules iterate until
    # converged, so the transform goes outside vmap)
    assert_allclose(cr.grad(lambda v: cnp.sum(cr.vmap(sqrt)(v)))(a), 0.5 / np.sqrt(a),
                    rtol=1e-10)
    assert_allclose(cr.jvp(cr.vmap(sqrt), (a,), (np.ones_like(a),))[1], 0.5 / np.sqrt(a),
                    rtol=1e-10)
    # ... and inside vmap: the implicit rules' own iterations run batched until every
    # example has converged
    scalar = lambda s: fixed_point(newton_sqrt, s, 1.0, lambda x, y: cnp.abs(x - y), 1e-13)  # noqa: E731
    v = a.ravel()
    assert_allclose(cr.vmap(cr.grad(scalar))(v), 0.5 / np.sqrt(v), rtol=1e-10)
    assert_allclose(cr.vmap(cr.jacfwd(scalar))(v), 0.5 / np.sqrt(v), rtol=1e-10)
    assert_allclose(cr.vmap(cr.grad(cr.grad(scalar)))(v), -0.25 * v ** -1.5, rtol=1e-8)


def _spd(n):
    a = _rng.standard_normal((n, n))
    return a @ a.T + n * np.eye(n)


def _r(*shape):
    return _rng.standard_normal(shape)


LINALG_SHAPE_INDEX = [
    Case(("matmul",), cnp.matmul, (_r(2, 3), _r(3, 4)), "matmul-mm"),
    Case(("matmul",), cnp.matmul, (_r(3), _r(3, 4)), "matmul-vm"),
    Case(("matmul",), cnp.matmul, (_r(2, 3), _r(3)), "matmul-mv"),
    Case(("matmul",), cnp.matmul, (_r(3), _r(3)), "matmul-vv"),
    Case(("matmul",), cnp.matmul, (_r(2, 2, 3), _r(3, 4)), "matmul-stack"),
    Case(("matmul",), cnp.matmul, (_r(2, 3), _r(5, 3, 4)), "matmul-stack-b"),
    Case(("einsum",), lambda a, b: cnp.einsum("ij,jk->ki", a, b), (_r(2, 3), _r(3, 4)),
         "einsum"),
    Case(("einsum",), lambda a: cnp.einsum("ii->i", a), (_r(3, 3),), "einsum-diag"),
    Case(("inv",), cnp.linalg.inv, (_spd(3),), "inv"),
    Case(("solve",), cnp.linalg.solve, (_spd(3), _r(3)), "solve-vector"),
    Case(("solve",), cnp.linalg.solve, (_spd(3), _r(3, 2)), "solve-matrix"),
    Case(("det",), cnp.linalg.det, (_spd(3),), "det"),
    Case(("slogdet",), lambda a: cnp.linalg.slogdet(a)[1], (_spd(3),), "slogdet"),
    Case(("cholesky",), cnp.linalg.cholesky, (_spd(3),), "cholesky"),
    Case(("eigh",), lambda a: cnp.linalg.eigh(a + a.T)[0], (_spd(3),), "eigh"),
    Case(("qr",), lambda a: cnp.linalg.qr(a)[1], (_r(4, 3),), "qr"),
    Case(("svd",), lambda a: cnp.linalg.svd(a, compute_uv=False), (_r(4, 3),), "svd"),
    Case(("norm2",), lambda a: cnp.linalg.norm(a, axis=0), (_r(4, 3),), "norm"),
    Case(("transpose",), lambda a: cnp.transpose(a, (1, 0, 2)), (_r(2, 3, 4),), "transpose"),
    Case(("concatenate",), lambda a, b: cnp.concatenate([a, b], axis=0), (_r(2, 3), _r(1, 3)),
         "concatenate"),
    Case(("concatenate",), lambda a, b: cnp.stack([a, b], axis=1), (_r(2, 3), _r(2, 3)),
         "stack"),
    Case(("flip",), lambda a: cnp.flip(a, 1), (_r(2, 3),), "flip"),
    Case(("roll",), lambda a: cnp.roll(a, 1, axis=0), (_r(3, 2),), "roll"),
    Case(("pad",), lambda a: cnp.pad(a, ((1, 0), (0, 2))), (_r(2, 3),), "pad"),
    Case(("diagonal",), lambda a: cnp.diagonal(a, 1), (_r(3, 4),), "diagonal"),
    Case(("diag_embed",), cnp.diag, (_r(3),), "diag"),
    Case(("diagonal",), cnp.trace, (_r(3, 3),), "trace"),
    Case(("getitem",), lambda a: a[1:, ::-1], (_r(3, 4),), "getitem-slices"),
    Case(("getitem",), lambda a: a[np.array([0, 2, 2])], (_r(3, 4),), "getitem-int-array"),
    Case(("getitem",), lambda a: a[:, None, np.array([1, 0])], (_r(3, 4),), "getitem-newaxis"),
    Case(("getitem",), lambda a: a[np.array([True, False, True])], (_r(3, 2),), "getitem-mask"),
    Case(("getitem",), lambda a: a[np.array([0, 1]), :, np.array([1, 0])], (_r(2, 3, 2),),
         "getitem-separated"),
    Case(("getitem",), lambda a: cnp.take_along_axis(a, np.array([[1], [0]]), axis=1),
         (_r(2, 3),), "take_along_axis"),
    Case(("cumsum",), lambda a: cnp.cumsum(a), (_r(2, 3),), "cumsum-flat"),
    Case(("reduce_sum",), lambda a: cnp.var(a, axis=0), (_r(3, 2),), "var"),
    Case(("reduce_sum",), lambda a: cnp.logsumexp(a, axis=-1), (_r(3, 2),), "logsumexp"),
    Case(("reshape",), lambda a: cnp.reshape(a, (-1,)), (_r(2, 3),), "ravel"),
    Case(("broadcast_to",), lambda a: cnp.broadcast_to(a, (4, 2, 3)), (_r(2, 1),),
         "broadcast-rank"),
    Case(("tile",), lambda a: cnp.tile(a, (2, 1)), (_r(2, 3),), "tile"),
    Case(("repeat",), lambda a: cnp.repeat(a, 2, axis=0), (_r(2, 3),), "repeat"),
    Case(("outer",), cnp.outer, (_r(3), _r(2)), "outer"),
    Case(("kron",), cnp.kron, (_r(2, 2), _r(2, 1)), "kron"),
    Case(("tensordot",), lambda a, b: cnp.tensordot(a, b, axes=1), (_r(2, 3), _r(3, 2)),
         "tensordot"),
    Case(("linear",), lambda w, x: cr.nn.functional.linear(x, w), (_r(4, 3), _r(2, 3)),
         "linear-batched-weight"),
    Case(("conv2d",), lambda w, x: cr.nn.functional.conv2d(x, w, padding=1),
         (_r(3, 2, 2, 2), _r(1, 2, 4, 4)), "conv2d-batched-weight"),
    Case(("conv2d_bias",), lambda w, x, b: cr.nn.functional.conv2d(x, w, b, stride=2),
         (_r(3, 2, 2, 2), _r(2, 2, 5, 5), _r(3)), "conv2d-bias-batched-weight"),
    Case(("softmax_cross_entropy",),
         lambda z: cr.nn.functional.cross_entropy(z, np.array([0, 2])), (_r(2, 3),),
         "cross_entropy-mean"),
]


@pytest.mark.parametrize("case", LINALG_SHAPE_INDEX, ids=[c.id for c in LINALG_SHAPE_INDEX])
def test_vmap_linalg_shape_indexing(case: Case):
    exs = check_batching(case.fn, case.args)
    check_batched_grad(case.fn, case.args, exs)


NON_DIFFERENTIABLE = [
    ("greater", lambda a, b: a > b, 2),
    ("less_equal", lambda a, b: cnp.less_equal(a, b), 2),
    ("equal", lambda a, b: cnp.equal(a, b), 2),
    ("not_equal", lambda a, b: cnp.not_equal(a, b), 2),
    ("isnan", lambda a: cnp.isnan(cnp.where(a > 0, a, np.nan)), 1),
    ("isfinite", lambda a: cnp.isfinite(cnp.where(a > 0, a, np.inf)), 1),
    ("isinf", lambda a: cnp.isinf(a), 1),
    ("logical", lambda a, b: cnp.logical_and(a > 0, cnp.logical_not(b > 0)), 2),
    ("logical_or", lambda a, b: cnp.logical_or(a > 0, b > 0), 2),
    ("argmax", lambda a: cnp.argmax(a, axis=1), 1),
    ("argmax-flat", lambda a: cnp.argmax(a), 1),
    ("argmin", lambda a: cnp.argmin(a, axis=-1), 1),
    ("argsort", lambda a: cnp.argsort(a, axis=0), 1),
]


@pytest.mark.parametrize("name,fn,n", NON_DIFFERENTIABLE, ids=[c[0] for c in NON_DIFFERENTIABLE])
def test_vmap_non_differentiable(name, fn, n):
    args = [_rng.standard_normal((2, 3)) for _ in range(n)]
    exs = [_rng.standard_normal((B, 2, 3)) for _ in range(n)]
    ref = np.stack([np.asarray(fn(*[e[k] for e in exs])) for k in range(B)])
    assert_allclose(np.asarray(cr.vmap(fn)(*exs)), ref)
    if n > 1:
        ref1 = np.stack([np.asarray(fn(exs[0][k], *args[1:])) for k in range(B)])
        got = cr.vmap(fn, in_axes=(0,) + (None,) * (n - 1))(exs[0], *args[1:])
        assert_allclose(np.asarray(got), ref1)
