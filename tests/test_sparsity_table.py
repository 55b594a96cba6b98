"""Sparsity detection, checked against dense derivatives: a column of the primitive table.

For every case of the primitive table, of the convolution, SciPy, complex and FFT tables
(their ``CASES``), and of the shape, indexing and linear-algebra cases below, the case's
arrays are packed into one vector ``z``; the detected Jacobian pattern of
``z -> fn(*unpack(z))`` must contain every nonzero of the dense Jacobian (``cr.jacfwd``) at
random points, and equal it for elementwise, indexing, shape, reduction and cumulative
operations.  The Hessian pattern of ``z -> sum(w * fn(*unpack(z)))`` (random constant
``w``) must contain every nonzero of the dense Hessian.  A registry walk checks that every
differentiable primitive has a dependency rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("scipy")

import chainrule as cr  # noqa: E402
import chainrule.numpy as cnp  # noqa: E402
import chainrule.optimize  # noqa: E402, F401  (its primitives join the registry walk)
import chainrule.scipy  # noqa: E402, F401
from chainrule.core.primitive import registry  # noqa: E402
from chainrule.sparse import rules  # noqa: E402
from other_tables import OTHER_TABLES  # noqa: E402
from test_primitive_table import CASES, Case  # noqa: E402

_rng = np.random.default_rng(7)

# Primitives whose derivative at a point selects among the structural dependencies (kinks,
# clipping, arg-max): the pattern is the union over all points, so only "contains" holds.
SELECTING = {"absolute", "relu", "maximum", "minimum", "fmax", "fmin", "clip", "mod", "fmod",
             "reduce_max", "reduce_min", "max_pool2d", "sort_like", "unsort"}
# Families for which the pattern must EQUAL the dense Jacobian's nonzeros.
EXACT_FAMILIES = set(rules._NONLINEAR_UNARY + rules._NONLINEAR_BINARY + rules._LINEAR) | {
    "multiply", "divide", "where", "sign", "floor", "ceil", "round",
    "reshape", "transpose", "broadcast_to", "flip", "roll", "diagonal", "getitem",
    "concatenate", "pad", "diag_embed", "_linalg_mT", "im2col", "col2im", "scatter_add",
    "reduce_sum", "reduce_prod", "sum_to", "norm2", "cumsum", "cumprod", "softmax",
    "log_softmax", "matmul", "einsum", "conv2d", "conv2d_bias", "avg_pool2d",
    "real", "imag", "conj", "angle", "reduce_logsumexp", "mask_select", "mask_scatter",
    "fft_c2c", "rfftn", "irfftn", "fft_conj_weighted", "conv", "conv_input_grad",
    "conv_weight_grad", "scipy.signal.convolve",
}
# cases whose inputs hold exact zeros, or whose function reuses a primitive on top of
# another one that only "contains" (their dense Jacobians have structural entries at 0)
NOT_EXACT = {"prod-with-zero", "cumprod-with-zero",
             # identically constant (numerical cancellation, not structure): softmax over a
             # size-1 axis is 1, a variance over a size-1 axis is 0
             "softmax-size1-axis", "log_softmax-size1-axis", "var-(2,1,3)-axis1-keepTrue",
             "var-(2,1,3)-axis1-keepFalse", "std-(2,1,3)-axis1-keepTrue",
             # exact zeros: x ** 0 at x = 0, linspace's weights 0 and 1 at its ends
             "power-zero-exp-array", "linspace", "linspace-arrays-axis",
             # a permutation chosen at run time (the pattern is the whole line)
             "partition"}
# .at[].min / .at[].max select between the old and the new value
SELECTING_IDS = ("at-min-", "at-max-")


def _pack(args):
    """(z, unpack): the floating arrays of ``args`` as one float64 vector (complex arrays as
    their real parts followed by their imaginary parts)."""
    floats = [i for i, a in enumerate(args)
              if isinstance(a, (np.ndarray, np.floating, np.complexfloating))
              and np.issubdtype(a.dtype, np.inexact)]
    shapes = [np.shape(args[i]) for i in floats]
    dtypes = [args[i].dtype for i in floats]
    cplx = [np.issubdtype(d, np.complexfloating) for d in dtypes]
    sizes = [int(np.prod(s)) * (2 if c else 1) for s, c in zip(shapes, cplx)]
    parts = [np.concatenate([np.ravel(args[i].real), np.ravel(args[i].imag)]) if c
             else np.ravel(args[i]).astype(np.float64) for i, c in zip(floats, cplx)]
    z = np.concatenate(parts).astype(np.float64) if floats else np.zeros(0)
    offsets = np.cumsum([0] + sizes)

    def unpack(v):
        out = list(args)
        for k, i in enumerate(floats):
            seg = v[offsets[k]:offsets[k + 1]]
            if cplx[k]:
                half = sizes[k] // 2
                part = cnp.reshape(seg[:half] + 1j * seg[half:], shapes[k])
            else:
                part = cnp.reshape(seg, shapes[k])
            out[i] = part if dtypes[k] in (np.float64, np.complex128) else \
                cnp.astype(part, dtypes[k])
        return out

    return z, unpack


def _dense_pattern(g, z, points=2, scale=1e-3):
    """Nonzeros of the dense Jacobian at ``z`` and at nearby random points (union)."""
    hits = None
    for k in range(points):
        p = z if k == 0 else z + scale * _rng.standard_normal(z.shape) * np.maximum(
            np.abs(z), 0.1)
        J = np.asarray(cr.jacfwd(g)(p)).reshape(-1, z.size)
        nz = J != 0
        hits = nz if hits is None else hits | nz
    return hits


def _exact(case: Any) -> bool:
    prims = getattr(case, "prims", None)
    if prims is None:  # a table without primitive names: containment only
        return False
    return (case.id not in NOT_EXACT and not case.id.startswith(SELECTING_IDS)
            and all(p in EXACT_FAMILIES for p in prims)
            and not any(p in SELECTING for p in prims))


def _check_case(case: Case):
    z, unpack = _pack(case.args)
    if z.size == 0:
        pytest.skip("no floating input")

    def g(v):
        return case.fn(*unpack(v))

    out = g(z)
    if isinstance(out, tuple):
        pytest.skip("tuple result")
    P = cr.sparse.jacobian_sparsity(g, z).toarray()
    dense = _dense_pattern(g, z)
    assert P.shape == dense.shape
    missed = dense & ~P
    assert not missed.any(), f"{case.id}: pattern misses {np.argwhere(missed)[:5].tolist()}"
    if _exact(case):
        extra = P & ~dense
        assert not extra.any(), f"{case.id}: pattern has extra {np.argwhere(extra)[:5].tolist()}"
    return g, z, out


def _check_hessian(g, z, out):
    w = _rng.uniform(0.5, 1.5, size=np.shape(out))

    def h(v):
        y = g(v)
        if np.iscomplexobj(out):  # a real scalar of both parts
            y = cnp.real(y) + cnp.imag(y)
        return cnp.sum(cnp.astype(y, np.float64) * w)

    Hp = cr.sparse.hessian_sparsity(h, z).toarray()
    assert (Hp == Hp.T).all()
    H = np.asarray(cr.hessian(h)(z)).reshape(z.size, z.size)
    missed = (np.abs(H) > 1e-9 * max(1.0, np.abs(H).max())) & ~Hp
    assert not missed.any(), f"Hessian pattern misses {np.argwhere(missed)[:5].tolist()}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pattern_of_table_case(case):
    g, z, out = _check_case(case)
    if case.order >= 2 and not any(p in ("floor", "ceil", "round", "sign") for p in case.prims):
        _check_hessian(g, z, out)


# --- shape, indexing and linear-algebra cases -------------------------------------------------

A = _rng.standard_normal
SPD = (lambda m: m @ m.T + 3 * np.eye(3))(_rng.standard_normal((3, 3)))
BATCH_SPD = np.stack([SPD, SPD + np.eye(3)])
SPARSE_CONST = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]])
MORE = [
    Case(("transpose",), lambda x: cnp.transpose(x, (2, 0, 1)), (A((2, 3, 4)),), "transpose"),
    Case(("flip",), lambda x: cnp.flip(x, axis=1), (A((2, 3)),), "flip"),
    Case(("roll",), lambda x: cnp.roll(x, 2, axis=0), (A((5, 2)),), "roll"),
    Case(("diagonal",), lambda x: cnp.diagonal(x, 1), (A((3, 4)),), "diagonal"),
    Case(("getitem",), lambda x: x[1:, ::2], (A((3, 5)),), "getitem-slices"),
    Case(("getitem",), lambda x: x[np.array([2, 0, 2])], (A((4, 2)),), "getitem-ints"),
    Case(("getitem",), lambda x: x[np.array([[True, False], [False, True]])], (A((2, 2)),),
         "getitem-mask"),
    Case(("getitem",), lambda x: x[:, np.array([0, 2]), 1], (A((2, 3, 2)),), "getitem-mixed"),
    Case(("concatenate",), lambda x, y: cnp.concatenate([y, x, y], axis=1),
         (A((2, 2)), A((2, 1))), "concatenate"),
    Case(("concatenate",), lambda x: cnp.stack([x, 2 * x]), (A((3,)),), "stack"),
    Case(("pad",), lambda x: cnp.pad(x, ((1, 0), (2, 1)), constant_values=5.0), (A((2, 2)),),
         "pad-constant"),
    Case(("getitem",), lambda x: cnp.pad(x, 2, mode="edge"), (A((3,)),), "pad-edge"),
    Case(("diag_embed",), lambda x: cnp.diag(x), (A((3,)),), "diag"),
    Case(("cumsum",), lambda x: cnp.cumsum(x, axis=0) * x, (A((3, 2)),), "cumsum-times"),
    Case(("matmul",), lambda a, b: a @ b, (A((2, 3)), A((3, 4))), "matmul"),
    Case(("matmul",), lambda a, b: a @ b, (A((2, 2, 3)), A((3,))), "matmul-batch-vector"),
    Case(("matmul",), lambda x: SPARSE_CONST @ x, (A((3,)),), "matmul-const-left"),
    Case(("matmul",), lambda x: x @ SPARSE_CONST.T, (A((2, 3)),), "matmul-const-right"),
    Case(("matmul",), lambda x: x @ x, (A((3, 3)),), "matmul-square"),
    Case(("einsum",), lambda a, b: cnp.einsum("ij,jk->ki", a, b), (A((2, 3)), A((3, 2))),
         "einsum"),
    Case(("einsum",), lambda a: cnp.einsum("ij->j", a), (A((2, 3)),), "einsum-sum"),
    Case(("inv",), lambda a: cnp.linalg.inv(a), (SPD,), "inv"),
    Case(("inv",), lambda a: cnp.linalg.inv(a), (BATCH_SPD,), "inv-batch"),
    Case(("det",), lambda a: cnp.linalg.det(a), (BATCH_SPD,), "det-batch"),
    Case(("solve",), lambda a, b: cnp.linalg.solve(a, b), (SPD, A((3,))), "solve"),
    Case(("cholesky",), lambda a: cnp.linalg.cholesky(a), (SPD,), "cholesky"),
    Case(("eigh", "tuple_get"), lambda a: cnp.linalg.eigh(a)[0], (BATCH_SPD,), "eigh-values"),
    Case(("qr", "tuple_get"), lambda a: cnp.linalg.qr(a)[1], (A((3, 2)),), "qr-r"),
    Case(("svd", "tuple_get"), lambda a: cnp.linalg.svd(a, compute_uv=False), (A((2, 3)),),
         "svd-values"),
    Case(("slogdet", "tuple_get"), lambda a: cnp.linalg.slogdet(a)[1], (SPD,), "slogdet"),
]


@pytest.mark.parametrize("case", MORE, ids=[c.id for c in MORE])
def test_pattern_of_shape_index_linalg_case(case):
    g, z, out = _check_case(case)
    _check_hessian(g, z, out)


# --- registry walk and structural facts -------------------------------------------------------



# Functions that read their arguments' values (checks, data-dependent ranks): a structural
# pattern cannot depend on values, so detection refuses them with a clear ValueError.
READS_VALUES = {
    "mvn.logpdf-eigh": "the rank of a singular covariance comes from its eigenvalues",
    "lstsq-x": "the rank (a result) comes from the singular values",
    "lstsq-residuals": "the rank (a result) comes from the singular values",
    "dirichlet.logpdf": "alpha and the points are validated on their values",
    "dirichlet.pdf-points": "alpha and the points are validated on their values",
    "poisson.logpmf": "mu is validated and k's integrality read on their values",
    "poisson.pmf": "mu is validated and k's integrality read on their values",
    "poisson.cdf": "mu is validated and k's integrality read on their values",
}


@pytest.mark.parametrize("module,case", OTHER_TABLES,
                         ids=[f"{m.removeprefix('test_')}-{c.id}" for m, c in OTHER_TABLES])
def test_pattern_of_other_table_case(module, case):
    if case.id in READS_VALUES:
        z, unpack = _pack(case.args)
        with pytest.raises(ValueError, match="reads the values"):
            cr.sparse.jacobian_sparsity(lambda v: case.fn(*unpack(v)), z)
        pytest.skip("reads values: " + READS_VALUES[case.id])
    g, z, out = _check_case(case)
    if getattr(case, "order", 2) >= 2:
        _check_hessian(g, z, out)


def test_every_differentiable_primitive_has_a_dependency_rule():
    missing = [name for name, prim in registry.items()
               if prim.differentiable and "#" not in name and name not in rules.DEPENDENCY_RULES]
    assert not missing, "primitives without a dependency rule: " + ", ".join(sorted(missing))
    missing2 = [name for name in rules.DEPENDENCY_RULES if name in registry
                and name not in rules.HESSIAN_RULES]
    assert not missing2, "without second-order information: " + ", ".join(missing2)


def test_pattern_is_structural():
    P = cr.sparse.jacobian_sparsity(lambda x: x ** 2, np.zeros(4))
    assert (P.toarray() == np.eye(4, dtype=bool)).all()
    H = cr.sparse.hessian_sparsity(lambda x: cnp.sum(x ** 2), np.zeros(4))
    assert (H.toarray() == np.eye(4, dtype=bool)).all()


def test_second_order_couplings():
    x = np.ones(4)
    # + couples nothing, x*y couples x and y, sin couples an element with itself
    assert cr.sparse.hessian_sparsity(lambda v: cnp.sum(v[1:] + v[:-1]), x).nnz == 0
    H = cr.sparse.hessian_sparsity(lambda v: cnp.sum(v[1:] * v[:-1]), x).toarray()
    assert (H == (np.eye(4, k=1, dtype=bool) | np.eye(4, k=-1, dtype=bool))).all()
    H = cr.sparse.hessian_sparsity(lambda v: cnp.sum(cnp.sin(v)), x).toarray()
    assert (H == np.eye(4, dtype=bool)).all()
    H = cr.sparse.hessian_sparsity(lambda v: v[0] / v[1] + 3.0 * v[2], x).toarray()
    assert (H == np.array([[0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
                          dtype=bool)).all()


def test_matmul_couples_only_across_its_factors():
    def f(v):
        return cnp.sum(v[:6].reshape(2, 3) @ v[6:].reshape(3, 2))

    x = _rng.standard_normal(12)
    P = cr.sparse.hessian_sparsity(f, x).toarray()
    assert (P == (np.asarray(cr.hessian(f)(x)) != 0)).all()
    assert not P[:6, :6].any() and not P[6:, 6:].any()


def test_checkpointed_block_has_its_own_pattern():
    block = cr.checkpoint(lambda v, w: (cnp.sin(v) * w, v[:2] ** 2))

    def f(x):
        a, b = block(x[:3], x[3:])
        c, _ = block(x[:3], 2.0)  # a constant argument
        return cnp.concatenate([a, b, c])

    x = _rng.standard_normal(6)
    P = cr.sparse.jacobian_sparsity(f, x).toarray()
    assert (P == _dense_pattern(f, x)).all()
    Hp = cr.sparse.hessian_sparsity(lambda v: cnp.sum(f(v)), x).toarray()
    H = np.asarray(cr.hessian(lambda v: cnp.sum(f(v)))(x))
    assert not ((H != 0) & ~Hp).any()
    assert not Hp[:3, :3][~np.eye(3, dtype=bool)].any()  # no coupling across elements
