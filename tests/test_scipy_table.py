"""``chainrule.scipy``: every primitive in a table of cases (values vs SciPy, derivatives of
first and second order in both modes vs finite differences, batched rules), the stable tails,
odeint's adjoint, and SciPy's errors for invalid parameters.

The cases use the machinery of ``tests/test_primitive_table.py`` (``Case``, samplers,
``unary_cases`` / ``binary_cases`` and the batched-rule check).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("scipy")

import scipy.linalg as sla  # noqa: E402
import scipy.signal as ssig  # noqa: E402
import scipy.special as sc  # noqa: E402
import scipy.stats as st  # noqa: E402

import chainrule as cr  # noqa: E402
import chainrule.numpy as cnp  # noqa: E402
from chainrule.core.primitive import registry  # noqa: E402
from chainrule.scipy import integrate as I  # noqa: E402
from chainrule.scipy import linalg as L  # noqa: E402
from chainrule.scipy import signal as G  # noqa: E402
from chainrule.scipy import special as S  # noqa: E402
from chainrule.scipy import stats as T  # noqa: E402
from test_primitive_table import (  # noqa: E402
    ANY,
    POS,
    UNIT,
    Case,
    _check_batched,
    away_from_zero,
    binary_cases,
    off_integers,
    unary_cases,
    uniform,
)

_rng = np.random.default_rng(7)


def _p(name):
    return ("scipy." + name,)


# --- special -------------------------------------------------------------------------------------

CASES: list[Case] = []
CASES += unary_cases("gammaln", S.gammaln, POS, prims=_p("gammaln"))
CASES += unary_cases("gammaln-neg", S.gammaln, uniform(-2.8, -2.2), [(3,)], prims=_p("gammaln"))
CASES += unary_cases("digamma", S.digamma, POS, prims=_p("digamma"))
CASES += unary_cases("psi", S.psi, POS, [(3,)], prims=_p("digamma"))
CASES += unary_cases("polygamma-2", lambda x: S.polygamma(2, x), POS, prims=_p("polygamma"))
CASES += [Case(_p("polygamma"), lambda x: S.polygamma(np.array([0, 1, 3]), x), (POS((2, 3)),),
               "polygamma-orders-bcast")]
CASES += unary_cases("gamma", S.gamma, uniform(0.5, 3.0), prims=_p("gamma"))
CASES += unary_cases("rgamma", S.rgamma, uniform(0.5, 3.0), prims=_p("rgamma"))
CASES += unary_cases("gammasgn", S.gammasgn, off_integers(), prims=_p("gammasgn"))
CASES += binary_cases("beta", S.beta, POS, prims=_p("beta"))
CASES += binary_cases("betaln", S.betaln, POS, prims=_p("betaln"))
CASES += unary_cases("betainc", lambda x: S.betainc(2.5, 1.5, x), uniform(0.1, 0.9),
                     prims=_p("betainc"))
CASES += [Case(_p("betainc"), lambda x: S.betainc(np.array([0.7, 2.0, 3.0]), 1.3, x),
               (uniform(0.1, 0.9)((2, 3)),), "betainc-bcast")]
CASES += unary_cases("gammainc", lambda x: S.gammainc(1.7, x), POS, prims=_p("gammainc"))
CASES += unary_cases("gammaincc", lambda x: S.gammaincc(np.array([0.6, 2.0, 4.0]), x), POS,
                     [(3,), (2, 3)], prims=_p("gammaincc"))
CASES += unary_cases("erf", S.erf, ANY, prims=("erf",))
CASES += unary_cases("erfc", S.erfc, ANY, prims=_p("erfc"))
CASES += unary_cases("erfinv", S.erfinv, UNIT, prims=_p("erfinv"))
CASES += unary_cases("erfcinv", S.erfcinv, uniform(0.1, 1.9), prims=_p("erfcinv"))
CASES += unary_cases("ndtr", S.ndtr, ANY, prims=_p("ndtr"))
CASES += unary_cases("log_ndtr", S.log_ndtr, uniform(-8.0, 3.0), prims=_p("log_ndtr"))
CASES += unary_cases("expit", S.expit, ANY, prims=_p("expit"))
CASES += unary_cases("logit", S.logit, uniform(0.1, 0.9), prims=_p("logit"))
CASES += binary_cases("xlogy", S.xlogy, ANY, POS, prims=_p("xlogy"))
CASES += binary_cases("xlog1py", S.xlog1py, ANY, uniform(-0.5, 2.0), prims=_p("xlog1py"))
CASES += unary_cases("entr", S.entr, POS, prims=_p("entr"))
CASES += unary_cases("multigammaln", lambda a: S.multigammaln(a, 3), uniform(1.5, 4.0),
                     prims=_p("gammaln"))
CASES += unary_cases("j0", S.j0, ANY, prims=_p("j0"))
CASES += unary_cases("j1", S.j1, ANY, prims=_p("j1"))
CASES += unary_cases("y0", S.y0, POS, prims=_p("y0"))
CASES += unary_cases("y1", S.y1, POS, prims=_p("y1"))
CASES += unary_cases("i0", S.i0, ANY, prims=_p("i0"))
CASES += unary_cases("i1", S.i1, ANY, prims=_p("i1"))
for _name, _fn, _sample in (("jn", S.jn, ANY), ("yn", S.yn, POS), ("iv", S.iv, ANY),
                            ("ive", S.ive, away_from_zero())):
    CASES += unary_cases(_name, lambda x, f=_fn: f(2, x), _sample, prims=_p(_name))
    CASES += [Case(_p(_name), lambda x, f=_fn: f(np.array([0, 1, 3]), x), (_sample((2, 3)),),
                   f"{_name}-orders-bcast")]
CASES += unary_cases("logsumexp", S.logsumexp, ANY, [(3,), (2, 3)], prims=("log", "exp"))
CASES += [
    Case(("log",), lambda x: S.logsumexp(x, axis=1, keepdims=True), (ANY((2, 3)),),
         "logsumexp-axis1-keep"),
    Case(("log",), lambda x, b: S.logsumexp(x, axis=0, b=b), (ANY((3, 2)), POS((3, 1))),
         "logsumexp-b"),
    Case(("log",), lambda x, b: S.logsumexp(x, b=b, return_sign=True)[0],
         (ANY((4,)), np.array([1.0, -0.3, 0.5, -0.2])), "logsumexp-return-sign"),
    Case(("softmax",), lambda x: S.softmax(x, axis=1), (ANY((2, 3)),), "softmax-axis1"),
    Case(("exp",), lambda x: S.softmax(x), (ANY((2, 3)),), "softmax-all"),
    Case(("log_softmax",), lambda x: S.log_softmax(x, axis=0), (ANY((2, 3)),),
         "log_softmax-axis0"),
    Case(("log",), lambda x: S.log_softmax(x, axis=(0, 1)), (ANY((2, 3)),),
         "log_softmax-axes"),
]

# float32 stays float32 through SciPy's functions and the rules
CASES += [Case(c.prims, c.fn, tuple(a.astype(np.float32) for a in c.args), c.id + "-f32")
          for c in list(CASES) if c.id.endswith("-(3,)") and c.id.split("-")[0] in
          ("gammaln", "digamma", "expit", "erfc", "ndtr", "log_ndtr", "xlogy", "j0", "i1")]

# --- stats -------------------------------------------------------------------------------------


def _spd(n, shift=1.0):
    m = _rng.standard_normal((n, n))
    return m @ m.T / n + shift * np.eye(n)


for _m in ("pdf", "logpdf", "cdf", "logcdf", "sf", "logsf"):
    CASES.append(Case(_p("log_ndtr" if _m.startswith("log") and "pdf" not in _m else "ndtr"),
                      getattr(T.norm, _m), (ANY((2, 3)), ANY((3,)), POS(())), f"norm.{_m}"))
CASES += [
    Case(("cholesky",), T.multivariate_normal.logpdf,
         (ANY((4, 3)), ANY((3,)), _spd(3)), "mvn.logpdf"),
    Case(("cholesky",), T.multivariate_normal.pdf, (ANY((3,)), ANY((3,)), _spd(3)), "mvn.pdf"),
    Case(("cholesky",), T.multivariate_normal.entropy, (ANY((3,)), _spd(3)), "mvn.entropy"),
    Case(("eigh",), lambda x, m, c: T.multivariate_normal.logpdf(x, m, c, allow_singular=True),
         (ANY((2, 3)), ANY((3,)), _spd(3)), "mvn.logpdf-eigh"),
    Case(_p("gammaln"), T.t.logpdf, (ANY((2, 3)), POS((3,)), ANY(()), POS(())), "t.logpdf"),
    Case(_p("gammaln"), T.t.pdf, (ANY((3,)), POS(()), ANY(()), POS(())), "t.pdf"),
    Case(_p("stats.t.cdf"), lambda x, loc, s: T.t.cdf(x, 3.5, loc, s),
         (ANY((3,)), ANY(()), POS(())), "t.cdf"),
    Case(_p("stats.t.logcdf"), lambda x, loc, s: T.t.logcdf(x, np.array([1.5, 4.0, 9.0]), loc, s),
         (ANY((3,)), ANY(()), POS(())), "t.logcdf"),
    Case(_p("xlogy"), T.gamma.logpdf, (uniform(2.5, 4.0)((3,)), POS((3,)), uniform(0, 1)(()),
                                       POS(())), "gamma.logpdf"),
    Case(_p("xlogy"), T.gamma.pdf, (uniform(2.5, 4.0)((3,)), POS(()), uniform(0, 1)(()),
                                    POS(())), "gamma.pdf"),
    Case(_p("gammainc"), lambda x, loc, s: T.gamma.cdf(x, 2.2, loc, s),
         (uniform(2.5, 4.0)((3,)), uniform(0, 1)(()), POS(())), "gamma.cdf"),
    Case(_p("xlog1py"), T.beta.logpdf, (uniform(0.2, 0.8)((3,)), POS((3,)), POS(()),
                                        uniform(-0.1, 0.1)(()), uniform(1.0, 1.2)(())),
         "beta.logpdf"),
    Case(_p("betaln"), T.beta.pdf, (uniform(0.2, 0.8)((3,)), POS(()), POS(())), "beta.pdf"),
    Case(_p("betainc"), lambda x: T.beta.cdf(x, 2.0, 3.0), (uniform(0.2, 0.8)((3,)),),
         "beta.cdf"),
    Case(_p("gammaln"), T.chi2.logpdf, (POS((3,)), uniform(1.5, 4.0)((3,))), "chi2.logpdf"),
    Case(_p("gammaln"), T.chi2.pdf, (POS((3,)), uniform(1.5, 4.0)(())), "chi2.pdf"),
    Case(_p("gammainc"), lambda x: T.chi2.cdf(x, 3.0), (POS((3,)),), "chi2.cdf"),
    Case(_p("xlogy"), T.dirichlet.logpdf, (np.array([0.2, 0.3]), POS((3,))), "dirichlet.logpdf"),
    Case(_p("xlogy"), T.dirichlet.pdf, (np.array([[0.2, 0.1], [0.3, 0.5]]), POS((3,))),
         "dirichlet.pdf-points"),
    Case(_p("xlogy"), lambda mu: T.poisson.logpmf(np.array([0.0, 2.0, 5.0]), mu), (POS((3,)),),
         "poisson.logpmf"),
    Case(_p("xlogy"), lambda mu: T.poisson.pmf(np.array([0.0, 2.0, 5.0]), mu), (POS(()),),
         "poisson.pmf"),
    Case(_p("gammaincc"), lambda mu: T.poisson.cdf(np.array([0.0, 2.0, 5.0]), mu), (POS((3,)),),
         "poisson.cdf"),
]

# --- linalg, signal, integrate -----------------------------------------------------------------


def _tri(n, lower=True):
    m = _rng.standard_normal((n, n)) * 0.3 + np.diag(_rng.uniform(1.5, 2.5, n))
    return np.tril(m) if lower else np.triu(m)


def _banded(n, lo, up):
    ab = _rng.standard_normal((lo + up + 1, n)) * 0.3
    ab[up] = _rng.uniform(2.0, 3.0, n)   # diagonally dominant
    return ab


CASES += [
    Case(_p("linalg.solve_triangular"), lambda a, b: L.solve_triangular(a, b, lower=True),
         (_tri(3), ANY((3, 2))), "solve_triangular-lower"),
    Case(_p("linalg.solve_triangular"), lambda a, b: L.solve_triangular(a, b, trans=1),
         (_tri(3, False), ANY((3,))), "solve_triangular-upper-trans"),
    Case(_p("linalg.solve_triangular"),
         lambda a, b: L.solve_triangular(a, b, trans="T", lower=True, unit_diagonal=True),
         (_tri(3), ANY((3, 2))), "solve_triangular-unit-trans"),
    Case(("cholesky",), L.cholesky, (_spd(3),), "cholesky-upper"),
    Case(("cholesky",), lambda a: L.cholesky(a, lower=True), (_spd(3),), "cholesky-lower"),
    Case(_p("linalg.solve_triangular"), lambda a, b: L.cho_solve(L.cho_factor(a), b),
         (_spd(3), ANY((3,))), "cho_solve-upper"),
    Case(_p("linalg.solve_triangular"), lambda a, b: L.cho_solve(L.cho_factor(a, lower=True), b),
         (_spd(3), ANY((3, 2))), "cho_solve-lower"),
    Case(_p("linalg.expm"), L.expm, (ANY((3, 3)) * 0.5,), "expm"),
    Case(_p("linalg.expm"), L.expm, (ANY((2, 2, 2)) * 0.5,), "expm-stack"),
    Case(_p("linalg.sqrtm"), L.sqrtm, (_spd(3),), "sqrtm"),
    Case(_p("linalg.solve_sylvester"), L.solve_sylvester,
         (_spd(3), _spd(2), ANY((3, 2))), "solve_sylvester"),
    Case(_p("linalg.solve_banded"), lambda ab, b: L.solve_banded((1, 2), ab, b),
         (_banded(5, 1, 2), ANY((5,))), "solve_banded-vector"),
    Case(_p("linalg.solve_banded"), lambda ab, b: L.solve_banded((2, 0), ab, b),
         (_banded(4, 2, 0), ANY((4, 2))), "solve_banded-lower"),
]
for _sa, _sb in (((5,), (3,)), ((3,), (4,)), ((3, 4), (2, 2))):
    for _mode in ("full", "valid", "same"):
        CASES.append(Case(_p("signal.convolve"), lambda a, b, m=_mode: G.convolve(a, b, m),
                          (ANY(_sa), ANY(_sb)), f"convolve-{_mode}-{_sa}x{_sb}"))


def _decay(y0, t, a):
    return I.odeint(lambda y, tt, a: -a * y + cnp.sin(tt), y0, t, (a,))


CASES += [
    Case(_p("integrate.odeint"), _decay,
         (np.array([1.0, -0.5]), np.array([0.0, 0.4, 1.1]), np.array([0.7, 1.3])),
         "odeint-decay", order=2, tol={"rtol": 1e-4, "atol": 1e-6}),
]


# --- the checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_scipy_derivatives_match_finite_differences(case):
    cr.check_grads(case.fn, case.args, order=case.order, modes=("fwd", "rev"), **case.tol)
    out = case.fn(*case.args)
    for leaf in cr.pytree.tree_leaves(out):
        assert np.all(np.isfinite(np.asarray(leaf)))


# odeint's Jacobians come from two different integrations (adjoint and sensitivities), equal
# to the solver's tolerance only: it has its own test below.
BATCHED = [c for c in CASES if not c.id.startswith("odeint")]


@pytest.mark.parametrize("case", BATCHED, ids=[c.id for c in BATCHED])
def test_scipy_batched_rules_agree_with_unbatched_ones(case):
    _check_batched(case)


def test_every_scipy_primitive_has_a_case():
    covered = {p for c in CASES for p in c.prims}
    missing = sorted(n for n in registry if n.startswith("scipy.") and n not in covered)
    assert not missing, f"add cases for: {missing}"


def test_every_listed_name_exists():
    special = ("gammaln digamma psi polygamma gamma rgamma gammasgn beta betaln betainc gammainc "
               "gammaincc erf erfc erfinv erfcinv expit logit logsumexp xlogy xlog1py entr "
               "multigammaln j0 j1 jn y0 y1 yn i0 i1 iv ive softmax log_softmax").split()
    for name in special:
        assert callable(getattr(S, name)), name
    methods = {"norm": "pdf logpdf cdf logcdf sf logsf",
               "multivariate_normal": "pdf logpdf entropy",
               "t": "pdf logpdf cdf logcdf", "gamma": "pdf logpdf cdf", "beta": "pdf logpdf cdf",
               "chi2": "pdf logpdf cdf", "dirichlet": "pdf logpdf", "poisson": "pmf logpmf cdf"}
    for dist, names in methods.items():
        for m in names.split():
            assert callable(getattr(getattr(T, dist), m)), f"{dist}.{m}"
    for name in "solve_triangular cholesky cho_solve cho_factor expm sqrtm solve_sylvester " \
                "solve_banded".split():
        assert callable(getattr(L, name)), name
    assert callable(G.convolve) and callable(I.odeint)


# --- values equal SciPy's ----------------------------------------------------------------------

_X = np.linspace(0.15, 2.9, 7)
_U = np.linspace(0.05, 0.95, 7)
VALUES = [
    (S.gammaln, sc.gammaln, (_X,)), (S.digamma, sc.digamma, (_X,)), (S.psi, sc.psi, (_X,)),
    (S.polygamma, sc.polygamma, (2, _X)), (S.gamma, sc.gamma, (_X,)), (S.rgamma, sc.rgamma, (_X,)),
    (S.gammasgn, sc.gammasgn, (_X - 3.5,)), (S.beta, sc.beta, (_X, _X[::-1])),
    (S.betaln, sc.betaln, (_X, _X[::-1])), (S.betainc, sc.betainc, (_X, _X[::-1], _U)),
    (S.gammainc, sc.gammainc, (_X, _X[::-1])), (S.gammaincc, sc.gammaincc, (_X, _X[::-1])),
    (S.erf, sc.erf, (_X - 1,)), (S.erfc, sc.erfc, (_X - 1,)), (S.erfinv, sc.erfinv, (_U,)),
    (S.erfcinv, sc.erfcinv, (_U,)), (S.expit, sc.expit, (_X - 1,)), (S.logit, sc.logit, (_U,)),
    (S.xlogy, sc.xlogy, (_X - 1, _X)), (S.xlog1py, sc.xlog1py, (_X - 1, _X)),
    (S.entr, sc.entr, (_X,)), (S.multigammaln, sc.multigammaln, (3.3, 4)),
    (S.j0, sc.j0, (_X,)), (S.j1, sc.j1, (_X,)), (S.jn, sc.jn, (3, _X)), (S.y0, sc.y0, (_X,)),
    (S.y1, sc.y1, (_X,)), (S.yn, sc.yn, (2, _X)), (S.i0, sc.i0, (_X,)), (S.i1, sc.i1, (_X,)),
    (S.iv, sc.iv, (1.5, _X)), (S.ive, sc.ive, (2, _X - 1)),
    (S.logsumexp, sc.logsumexp, (np.outer(_X, _X),)),
    (lambda a: S.logsumexp(a, axis=0, b=_U[:, None]), lambda a: sc.logsumexp(a, 0, b=_U[:, None]),
     (np.outer(_X, _X),)),
    (lambda a: S.logsumexp(a, b=_U - 0.5, return_sign=True),
     lambda a: sc.logsumexp(a, b=_U - 0.5, return_sign=True), (_X,)),
    (S.softmax, sc.softmax, (np.outer(_X, _U),)),
    (lambda x: S.softmax(x, axis=0), lambda x: sc.softmax(x, axis=0), (np.outer(_X, _U),)),
    (lambda x: S.log_softmax(x, axis=1), lambda x: sc.log_softmax(x, axis=1), (np.outer(_X, _U),)),
    (S.log_softmax, sc.log_softmax, (np.outer(_X, _U),)),
    (T.norm.pdf, st.norm.pdf, (_X, 0.3, 1.7)), (T.norm.logpdf, st.norm.logpdf, (_X, 0.3, 1.7)),
    (T.norm.cdf, st.norm.cdf, (_X, 0.3, 1.7)), (T.norm.logcdf, st.norm.logcdf, (-_X * 9, 0.3, 1.7)),
    (T.norm.sf, st.norm.sf, (_X, 0.3, 1.7)), (T.norm.logsf, st.norm.logsf, (_X * 9, 0.3, 1.7)),
    (T.t.pdf, st.t.pdf, (_X, 2.5, 0.3, 1.7)), (T.t.logpdf, st.t.logpdf, (_X, 2.5, 0.3, 1.7)),
    (T.t.cdf, st.t.cdf, (_X, 2.5, 0.3, 1.7)), (T.t.logcdf, st.t.logcdf, (-_X, 2.5, 0.3, 1.7)),
    (T.gamma.pdf, st.gamma.pdf, (_X - 0.5, 2.5, 0.3, 1.7)),
    (T.gamma.logpdf, st.gamma.logpdf, (_X + 0.5, 2.5, 0.3, 1.7)),
    (T.gamma.cdf, st.gamma.cdf, (_X - 0.5, 2.5, 0.3, 1.7)),
    (T.beta.pdf, st.beta.pdf, (_U * 2 - 0.5, 2.5, 1.3)),
    (T.beta.logpdf, st.beta.logpdf, (_U, 2.5, 1.3, 0.0, 1.0)),
    (T.beta.cdf, st.beta.cdf, (_U * 2 - 0.5, 2.5, 1.3)),
    (T.chi2.pdf, st.chi2.pdf, (_X, 3.0)), (T.chi2.logpdf, st.chi2.logpdf, (_X, 3.0)),
    (T.chi2.cdf, st.chi2.cdf, (_X, 3.0)),
    (T.dirichlet.pdf, st.dirichlet.pdf, (np.array([0.2, 0.3, 0.5]), _X[:3])),
    (T.dirichlet.logpdf, st.dirichlet.logpdf, (np.array([[0.2, 0.1], [0.3, 0.6]]), _X[:3])),
    (T.poisson.pmf, st.poisson.pmf, (np.arange(-1.0, 6.0), 2.3)),
    (T.poisson.logpmf, st.poisson.logpmf, (np.arange(0.0, 6.0), 2.3)),
    (T.poisson.cdf, st.poisson.cdf, (np.arange(-1.0, 6.0) + 0.5, 2.3)),
]


@pytest.mark.parametrize("i", range(len(VALUES)))
def test_values_equal_scipy(i):
    ours, ref, args = VALUES[i]
    got, want = ours(*args), ref(*args)
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            assert_allclose(g, w, rtol=1e-12, atol=1e-300)
    else:
        assert np.shape(got) == np.shape(want)
        assert_allclose(got, want, rtol=1e-12, atol=1e-300)


def test_multivariate_normal_values_equal_scipy():
    x, m, c = _rng.standard_normal((5, 3)), _rng.standard_normal(3), _spd(3)
    mvn = st.multivariate_normal
    for sing in (False, True):
        assert_allclose(T.multivariate_normal.logpdf(x, m, c, allow_singular=sing),
                        mvn.logpdf(x, m, c, allow_singular=sing), rtol=1e-12)
        assert_allclose(T.multivariate_normal.pdf(x[0], m, c, allow_singular=sing),
                        mvn.pdf(x[0], m, c, allow_singular=sing), rtol=1e-12)
        assert_allclose(T.multivariate_normal.entropy(m, c, allow_singular=sing),
                        mvn.entropy(m, c), rtol=1e-12)
    assert_allclose(T.multivariate_normal.logpdf(x[:, 0], 0.5, 2.0), mvn.logpdf(x[:, 0], 0.5, 2.0),
                    rtol=1e-12)
    # a singular covariance (rank 2 in 3 dimensions), as SciPy with allow_singular=True
    v = _rng.standard_normal((3, 2))
    c2, x2 = v @ v.T, (v @ _rng.standard_normal((2, 4))).T
    assert_allclose(T.multivariate_normal.logpdf(x2, None, c2, allow_singular=True),
                    mvn.logpdf(x2, None, c2, allow_singular=True), rtol=1e-9)
    off = x2 + np.cross(v[:, 0], v[:, 1])   # moved off the support: density 0
    assert np.all(T.multivariate_normal.logpdf(off, None, c2, allow_singular=True) == -np.inf)
    assert np.all(mvn.logpdf(off, None, c2, allow_singular=True) == -np.inf)


def test_linalg_and_signal_values_equal_scipy():
    a, b = _spd(4), _rng.standard_normal((4, 2))
    t = np.tril(a)
    for kw in ({"lower": True}, {"lower": True, "trans": 1},
               {"lower": True, "unit_diagonal": True}):
        assert_allclose(L.solve_triangular(t, b, **kw), sla.solve_triangular(t, b, **kw),
                        rtol=1e-12)
    assert_allclose(L.cholesky(a), sla.cholesky(a), rtol=1e-12)
    assert_allclose(L.cholesky(a, lower=True), sla.cholesky(a, lower=True), rtol=1e-12)
    for low in (False, True):
        assert_allclose(L.cho_solve(L.cho_factor(a, lower=low), b),
                        sla.cho_solve(sla.cho_factor(a, lower=low), b), rtol=1e-12)
    assert_allclose(L.cho_solve(sla.cho_factor(a), b), sla.cho_solve(sla.cho_factor(a), b),
                    rtol=1e-12)  # SciPy's own factor (other triangle not zeroed) works too
    assert_allclose(L.expm(a * 0.3), sla.expm(a * 0.3), rtol=1e-12)
    assert_allclose(L.sqrtm(a), sla.sqrtm(a), rtol=1e-12)
    q = _rng.standard_normal((4, 3))
    assert_allclose(L.solve_sylvester(a, _S3, q), sla.solve_sylvester(a, _S3, q), rtol=1e-12)
    ab = _banded(6, 1, 2)
    assert_allclose(L.solve_banded((1, 2), ab, b[:1].repeat(6, 0)),
                    sla.solve_banded((1, 2), ab, b[:1].repeat(6, 0)), rtol=1e-12)
    u, w = _rng.standard_normal((5, 6)), _rng.standard_normal((3, 2))
    for mode in ("full", "valid", "same"):
        assert_allclose(G.convolve(u, w, mode), ssig.convolve(u, w, mode), rtol=1e-12, atol=1e-14)


_S3 = _spd(3)


# --- stable tails --------------------------------------------------------------------------------


def test_stable_tails_values_and_derivatives():
    lc = T.norm.logcdf(-30.0)
    assert_allclose(lc, st.norm.logcdf(-30.0), rtol=1e-12)
    d1 = cr.grad(T.norm.logcdf)(-30.0)                 # ~ -x for x -> -inf (Mills ratio)
    assert np.isfinite(d1) and abs(d1 - 30.0332) < 1e-3
    assert_allclose(cr.jvp(T.norm.logcdf, (-30.0,), (1.0,))[1], d1, rtol=1e-12)
    d2 = cr.grad(cr.grad(T.norm.logcdf))(-30.0)
    assert np.isfinite(d2) and abs(d2 + 0.99889) < 1e-4
    x = np.array([1e4, 1e4 - 1.0, -1e4])
    assert_allclose(S.logsumexp(x), sc.logsumexp(x), rtol=1e-15)
    g = cr.grad(S.logsumexp)(x)
    assert_allclose(g, sc.softmax(x), rtol=1e-12)
    H = cr.hessian(S.logsumexp)(x)
    s = sc.softmax(x)
    assert_allclose(H, np.diag(s) - np.outer(s, s), atol=1e-12)
    for v in (1e3, -1e3):
        assert S.expit(v) == sc.expit(v)
        assert cr.grad(S.expit)(v) == 0.0
        assert cr.grad(cr.grad(S.expit))(v) == 0.0
    assert_allclose(cr.jvp(S.expit, (np.array([-30.0, 30.0]),), (np.ones(2),))[1],
                    sc.expit(30.0) * sc.expit(-30.0), rtol=1e-12)


# --- odeint -------------------------------------------------------------------------------------


def test_odeint_matches_the_closed_form_of_exponential_decay():
    t = np.array([0.0, 0.3, 1.0, 2.5])
    a, y0 = 0.8, np.array([2.0])

    def f(y0, t, a):
        return I.odeint(lambda y, tt, a: -a * y, y0, t, (a,))[:, 0]

    assert_allclose(f(y0, t, a), 2.0 * np.exp(-a * t), rtol=1e-7)
    for jac in (cr.jacrev, cr.jacfwd):
        J0, Jt, Ja = jac(f, argnums=(0, 1, 2))(y0, t, a)
        assert_allclose(J0[:, 0], np.exp(-a * t), rtol=1e-7)
        assert_allclose(Ja, -t * 2.0 * np.exp(-a * t), rtol=1e-6, atol=1e-9)
        # y(t_i) moves with t_i along f, and against it with t_0 (the start moves)
        want = np.zeros((4, 4))
        want[1:, 0] = a * 2.0 * np.exp(-a * t[1:])
        want[np.arange(1, 4), np.arange(1, 4)] = -a * 2.0 * np.exp(-a * t[1:])
        assert_allclose(Jt, want, rtol=1e-6, atol=1e-9)


def test_odeint_gradients_match_finite_differences_and_both_modes_agree():
    def f(y0, t, w):
        return I.odeint(lambda y, tt, w: cnp.tanh(cnp.matmul(w, y)) - 0.1 * y * tt, y0, t, (w,))

    y0, t, w = np.array([0.5, -0.3]), np.array([0.0, 0.5, 1.0]), _rng.standard_normal((2, 2))
    Jr = cr.jacrev(f, argnums=(0, 1, 2))(y0, t, w)
    Jf = cr.jacfwd(f, argnums=(0, 1, 2))(y0, t, w)
    for a, b in zip(Jr, Jf):
        assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    cr.check_grads(f, (y0, t, w), order=1, modes=("rev", "fwd"), rtol=1e-4, atol=1e-6)


def test_odeint_second_derivatives_match_the_closed_form_in_every_mode():
    # y(1) = exp(-a): d2/da2 = exp(-a), through the adjoint and the sensitivity systems
    def y1(a):
        return I.odeint(lambda y, t, a: -a * y, np.array([1.0]), np.array([0.0, 1.0]), (a,),
                        rtol=1e-10, atol=1e-12)[1, 0]

    want = np.exp(-0.5)
    for outer, inner in ((cr.grad, cr.grad), (cr.jacfwd, cr.jacfwd), (cr.jacfwd, cr.grad),
                         (cr.grad, cr.jacfwd)):
        assert_allclose(outer(inner(y1))(0.5), want, rtol=1e-6)
    # the Hessian in y0 of a nonlinear system: reverse-over-reverse equals forward-over-reverse
    def g(y0):
        ys = I.odeint(lambda y, tt: cnp.stack([y[1], -cnp.sin(y[0])]), y0,
                      np.array([0.0, 0.5, 1.0]), rtol=1e-10, atol=1e-12)
        return cnp.sum(ys[-1] ** 2)

    y0 = np.array([0.3, -0.2])
    assert_allclose(cr.jacrev(cr.grad(g))(y0), cr.jacfwd(cr.grad(g))(y0), rtol=1e-5, atol=1e-8)


# --- bad input ------------------------------------------------------------------------------------


def test_invalid_parameters_raise_errors_naming_them():
    with pytest.raises(ValueError, match="scale"):
        T.norm.logpdf(1.0, 0.0, -1.0)
    with pytest.raises(ValueError, match="scale"):
        cr.grad(lambda s: T.norm.logpdf(1.0, 0.0, s))(-1.0)
    with pytest.raises(ValueError, match="df"):
        T.t.logpdf(1.0, -2.0)
    with pytest.raises(ValueError, match="a must be positive"):
        T.gamma.logpdf(1.0, 0.0)
    with pytest.raises(np.linalg.LinAlgError, match="cov"):
        T.multivariate_normal.logpdf(np.zeros(2), np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        L.cholesky(-np.eye(2))
    with pytest.raises(ValueError, match="alpha"):
        T.dirichlet.logpdf(np.array([0.5, 0.5]), np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="sum to 1"):
        T.dirichlet.logpdf(np.array([0.5, 0.6]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="mu"):
        T.poisson.logpmf(1.0, -1.0)
    with pytest.raises(ValueError, match=r"multigammaln: condition"):
        S.multigammaln(0.5, 3)
    with pytest.raises(ValueError, match="solve_triangular"):
        L.solve_triangular(np.eye(2), np.ones(3))
    with pytest.raises(ValueError, match="infs or NaNs"):
        L.solve_triangular(np.eye(2), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="mode"):
        G.convolve(np.ones(3), np.ones(2), mode="bad")


def test_integer_orders_are_not_differentiable():
    with pytest.raises(TypeError, match="not differentiable"):
        cr.grad(lambda n: S.jn(n, 1.5))(2.0)
    with pytest.raises(TypeError, match="not differentiable"):
        cr.grad(lambda a: S.gammainc(a, 1.5))(2.0)
    with pytest.raises(NotImplementedError, match="not differentiable"):
        cr.jvp(lambda v: S.iv(v, 1.5), (2.0,), (1.0,))
    with pytest.raises(TypeError, match="not differentiable"):
        cr.grad(lambda df: T.t.cdf(0.3, df))(2.0)


def test_importing_without_scipy_names_the_extra(monkeypatch):
    import importlib
    import sys

    saved = {k: v for k, v in sys.modules.items()
             if k == "scipy" or k.startswith("scipy.") or k.startswith("chainrule.scipy")}
    for k in saved:
        monkeypatch.delitem(sys.modules, k)
    monkeypatch.setitem(sys.modules, "scipy", None)
    try:
        with pytest.raises(ImportError, match=r"pip install chainrule\[scipy\]"):
            importlib.import_module("chainrule.scipy")
    finally:
        for k in list(sys.modules):
            if k.startswith("chainrule.scipy"):
                del sys.modules[k]
        sys.modules.update(saved)


# --- an independent reference: HIPS autograd's derivatives, where installed ---------------------

AUTOGRAD_SPECIAL = [
    ("gammaln", (_X,), 0), ("digamma", (_X,), 0), ("psi", (_X,), 0), ("gamma", (_X,), 0),
    ("rgamma", (_X,), 0), ("polygamma", (2, _X), 1), ("beta", (_X, _X[::-1]), 0),
    ("betaln", (_X, _X[::-1]), 1), ("betainc", (2.5, 1.5, _U), 2), ("gammainc", (1.7, _X), 1),
    ("gammaincc", (1.7, _X), 1), ("erf", (_X - 1,), 0), ("erfc", (_X - 1,), 0),
    ("erfinv", (_U,), 0), ("erfcinv", (_U,), 0), ("expit", (_X - 1,), 0), ("logit", (_U,), 0),
    ("xlogy", (_X - 1, _X), 1), ("xlog1py", (_X - 1, _X), 1), ("j0", (_X,), 0), ("j1", (_X,), 0),
    ("y0", (_X,), 0), ("y1", (_X,), 0), ("i0", (_X,), 0), ("i1", (_X,), 0), ("jn", (2, _X), 1),
    ("yn", (2, _X), 1), ("iv", (2, _X), 1), ("ive", (2, _X - 1), 1),
    ("multigammaln", (_X + 2, 3), 0), ("logsumexp", (np.outer(_X, _U),), 0),
]


@pytest.mark.parametrize("name, args, argnum", AUTOGRAD_SPECIAL,
                         ids=[n for n, _, _ in AUTOGRAD_SPECIAL])
def test_special_derivatives_match_hips_autograd(name, args, argnum):
    ag = pytest.importorskip("autograd")
    asp = pytest.importorskip("autograd.scipy.special")
    theirs = getattr(asp, name, None)
    if theirs is None:
        pytest.skip(f"autograd.scipy.special has no {name}")
    ours = getattr(S, name)

    def scalar(fn, npm):
        def f(x):
            a = list(args)
            a[argnum] = x
            return npm.sum(fn(*a) * np.linspace(0.5, 1.5, np.size(fn(*args))).reshape(
                np.shape(fn(*args))))
        return f

    x = args[argnum]
    want = ag.grad(scalar(theirs, ag.numpy))(x)
    assert_allclose(cr.grad(scalar(ours, cnp))(x), want, rtol=1e-9, atol=1e-12)
    h = ag.elementwise_grad(ag.grad(scalar(theirs, ag.numpy)))(x)
    assert_allclose(cr.elementwise_grad(cr.grad(scalar(ours, cnp)))(x), h, rtol=1e-8,
                    atol=1e-12)


AUTOGRAD_STATS = [
    ("norm", "logpdf", (_X, 0.3, 1.7)), ("norm", "cdf", (_X, 0.3, 1.7)),
    ("norm", "logcdf", (-_X * 5, 0.3, 1.7)), ("norm", "pdf", (_X, 0.3, 1.7)),
    ("t", "logpdf", (_X, 2.5, 0.3, 1.7)), ("gamma", "logpdf", (_X, 2.5)),
    ("beta", "logpdf", (_U, 2.5, 1.3)), ("chi2", "logpdf", (_X, 3.0)),
    ("poisson", "logpmf", (np.arange(7.0), _X)),
]


@pytest.mark.parametrize("dist, method, args", AUTOGRAD_STATS,
                         ids=[f"{d}.{m}" for d, m, _ in AUTOGRAD_STATS])
def test_stats_gradients_match_hips_autograd(dist, method, args):
    ag = pytest.importorskip("autograd")
    ast = pytest.importorskip("autograd.scipy.stats")
    theirs = getattr(getattr(ast, dist), method)
    ours = getattr(getattr(T, dist), method)
    for argnum in range(len(args)):
        if dist == "poisson" and argnum == 0:
            continue
        if method == "cdf" and argnum > 0 and dist != "norm":
            continue
        f_ours = lambda v, fn=ours, i=argnum: cnp.sum(fn(*args[:i], v, *args[i + 1:]))
        f_theirs = lambda v, fn=theirs, i=argnum: ag.numpy.sum(fn(*args[:i], v, *args[i + 1:]))
        try:
            want = ag.grad(f_theirs)(args[argnum])
        except NotImplementedError:  # autograd has no rule there: nothing to compare with
            continue
        assert_allclose(cr.grad(f_ours)(args[argnum]), want, rtol=1e-9, atol=1e-12,
                        err_msg=f"argument {argnum}")


def test_multivariate_normal_gradients_match_hips_autograd():
    ag = pytest.importorskip("autograd")
    ast = pytest.importorskip("autograd.scipy.stats")
    x, m, c = _rng.standard_normal((4, 3)), _rng.standard_normal(3), _spd(3)
    for i in range(3):
        def f(v, lib, i=i):
            a = [x, m, c]
            a[i] = v
            return lib[1].sum(lib[0].logpdf(*a))
        ours = cr.grad(f)([x, m, c][i], (T.multivariate_normal, cnp))
        theirs = ag.grad(f)([x, m, c][i], (ast.multivariate_normal, ag.numpy))
        if i == 2:  # autograd's is not symmetrised; compare the symmetric parts
            ours, theirs = (ours + ours.T) / 2, (theirs + theirs.T) / 2
        assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_odeint_refuses_a_closure_over_a_traced_value_and_passes_options():
    t = np.array([0.0, 1.0])

    def f(a):
        return I.odeint(lambda y, tt: -a * y, np.array([1.0]), t)[1, 0]

    with pytest.raises(ValueError, match="closure"):
        cr.grad(f)(0.5)
    with pytest.raises(TypeError, match="full_output"):
        I.odeint(lambda y, tt: -y, np.array([1.0]), t, full_output=True)
    g = cr.grad(lambda a: I.odeint(lambda y, tt, a: -a * y, np.array([1.0]), t, (a,),
                                   mxstep=1000, hmax=0.1)[1, 0])(0.5)
    assert_allclose(g, -np.exp(-0.5), rtol=1e-6)


def test_poisson_gradient_at_zero_rate_is_finite():
    # logpmf(0; mu) = -mu: derivative -1 even at mu = 0 (xlogy(0, mu) contributes nothing)
    assert cr.grad(lambda mu: T.poisson.logpmf(0.0, mu))(0.0) == -1.0
    assert cr.jvp(lambda mu: T.poisson.logpmf(0.0, mu), (0.0,), (1.0,))[1] == -1.0
    assert cr.grad(lambda y: S.xlogy(0.0, y))(0.0) == 0.0


def test_distributions_take_lists_like_scipy():
    assert_allclose(T.norm.logpdf([0.5, 1.0], [0.0, 0.1], 2.0),
                    st.norm.logpdf([0.5, 1.0], [0.0, 0.1], 2.0), rtol=1e-12)
    assert_allclose(T.gamma.pdf([0.5, 1.0], a=[2.0, 3.0]), st.gamma.pdf([0.5, 1.0], a=[2.0, 3.0]),
                    rtol=1e-12)
    assert_allclose(T.multivariate_normal.logpdf([0.5, 1.0], [0.0, 0.1], [[2.0, 0.3], [0.3, 1.0]]),
                    st.multivariate_normal.logpdf([0.5, 1.0], [0.0, 0.1],
                                                  [[2.0, 0.3], [0.3, 1.0]]), rtol=1e-12)
    assert_allclose(S.logsumexp([1.0, 2.0], b=[0.5, 0.5]), sc.logsumexp([1.0, 2.0], b=[0.5, 0.5]),
                    rtol=1e-12)
    assert_allclose(S.gammaln([1.5, 2.5]), sc.gammaln([1.5, 2.5]), rtol=1e-12)
    assert repr(T.norm) == "<chainrule.scipy.stats.norm>"


def test_float32_is_preserved_by_values_and_derivatives():
    x = np.array([0.3, 1.7], dtype=np.float32)
    for fn in (S.gammaln, S.digamma, S.expit, S.erfc, S.ndtr, S.log_ndtr, S.j0, S.i1):
        assert fn(x).dtype == np.float32
        assert cr.jvp(fn, (x,), (np.ones_like(x),))[1].dtype == np.float32
        assert cr.elementwise_grad(fn)(x).dtype == np.float32


def test_cr_scipy_is_reachable_from_the_package():
    assert cr.scipy.special.gammaln is S.gammaln
    with pytest.raises(AttributeError, match="no_such_thing"):
        cr.no_such_thing  # noqa: B018


def test_linalg_and_convolve_gradients_match_hips_autograd():
    ag = pytest.importorskip("autograd")
    asl = pytest.importorskip("autograd.scipy.linalg")
    asg = pytest.importorskip("autograd.scipy.signal")
    anp = ag.numpy
    a, b, q = _tri(3), _rng.standard_normal((3, 2)), _rng.standard_normal((3, 3))
    spd = _spd(3)
    w = _rng.standard_normal((3, 2))
    programs = [
        ("solve_triangular", lambda m, lib, sl: lib.sum(sl.solve_triangular(m, b, lower=True) * w),
         a),
        ("sqrtm", lambda m, lib, sl: lib.sum(sl.sqrtm(m) * q), spd),
        ("solve_sylvester", lambda m, lib, sl: lib.sum(sl.solve_sylvester(m, spd, q) * q), spd),
    ]
    for name, prog, point in programs:
        if not hasattr(asl, name):
            continue
        ours = cr.grad(prog)(point, cnp, L)
        theirs = ag.grad(prog)(point, anp, asl)
        assert_allclose(ours, theirs, rtol=1e-8, atol=1e-12, err_msg=name)
    u, k = _rng.standard_normal((5, 4)), _rng.standard_normal((2, 3))
    for mode in ("full", "valid"):
        for i in range(2):
            def conv(v, lib, sg, mode=mode, i=i):
                pair = [u, k]
                pair[i] = v
                return lib.sum(sg.convolve(*pair, mode=mode) ** 2)
            assert_allclose(cr.grad(conv)([u, k][i], cnp, G), ag.grad(conv)([u, k][i], anp, asg),
                            rtol=1e-10, err_msg=f"convolve {mode} argument {i}")
