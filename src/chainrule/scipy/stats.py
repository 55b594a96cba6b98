"""``chainrule.scipy.stats``: densities and distribution functions, differentiable.

Each distribution is an object with SciPy's method names and signatures
(``norm.logpdf(x, loc=0, scale=1)``, ...), composed of the primitives of
:mod:`chainrule.scipy.special`, so every method is differentiable to any
order in every continuous argument -- except the ``cdf``/``logcdf`` of
``t``, ``gamma``, ``beta`` and ``chi2``, which are differentiable in ``x``
(and, through ``(x - loc) / scale``, in ``loc`` and ``scale``) but not in the
shape parameters, as in HIPS autograd.  Invalid parameters (a scale that is
not positive, a covariance that is not positive definite) raise errors
naming the argument instead of returning NaN.

>>> import chainrule as cr
>>> from chainrule.scipy.stats import norm
>>> float(cr.grad(norm.logpdf)(1.0))
-1.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.special as sc
import scipy.stats as st

from .. import numpy as cnp
from ..ops import elementwise as E
from . import special as S
from ._common import check_positive, known, partials, raw
from .linalg import cholesky, solve_triangular

__all__ = ["norm", "multivariate_normal", "t", "gamma", "beta", "chi2", "dirichlet", "poisson"]

_LOG_2PI = math.log(2.0 * math.pi)


def _z(x: Any, loc: Any, scale: Any, where: str) -> Any:
    check_positive(scale, "scale", where)
    return (x - loc) / scale


def _log(v: Any) -> Any:
    return E.log(v) if hasattr(v, "shape") or not isinstance(v, (int, float)) else math.log(v)


def _accepting_lists(method: Any) -> Any:
    """``method`` with list and tuple arguments turned into float arrays (as SciPy takes)."""
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        args = tuple(np.asarray(a, dtype=float) if isinstance(a, (list, tuple)) else a
                     for a in args)
        kwargs = {k: np.asarray(v, dtype=float) if isinstance(v, (list, tuple)) else v
                  for k, v in kwargs.items()}
        return method(self, *args, **kwargs)

    wrapped.__name__ = method.__name__
    wrapped.__qualname__ = method.__qualname__
    wrapped.__doc__ = method.__doc__
    return wrapped


class _Distribution:
    """A namespace of SciPy-named functions (no state); ``repr`` names the distribution."""

    name = "distribution"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for key, value in list(vars(cls).items()):
            if callable(value) and not key.startswith("_"):
                setattr(cls, key, _accepting_lists(value))

    def __repr__(self) -> str:
        return f"<chainrule.scipy.stats.{self.name}>"


# --- normal ----------------------------------------------------------------------------------

class _Norm(_Distribution):
    name = "norm"

    def logpdf(self, x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Log density of the normal distribution."""
        z = _z(x, loc, scale, "norm.logpdf")
        return z * z * -0.5 - _log(scale) - 0.5 * _LOG_2PI

    def pdf(self, x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Density of the normal distribution."""
        return E.exp(self.logpdf(x, loc, scale))

    def cdf(self, x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Distribution function."""
        return S.ndtr(_z(x, loc, scale, "norm.cdf"))

    def logcdf(self, x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Log of the distribution function, accurate far into the lower tail."""
        return S.log_ndtr(_z(x, loc, scale, "norm.logcdf"))

    def sf(self, x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Survival function ``1 - cdf``, accurate in the upper tail."""
        return S.ndtr(E.negative(_z(x, loc, scale, "norm.sf")))

    def logsf(self, x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Log of the survival function."""
        return S.log_ndtr(E.negative(_z(x, loc, scale, "norm.logsf")))


norm = _Norm()


# --- multivariate normal -----------------------------------------------------------------------

def _as_cov(cov: Any, d: int | None) -> tuple[Any, int]:
    c = raw(cov)
    nd = np.ndim(c)
    if nd == 2:
        if c.shape[0] != c.shape[1]:
            raise ValueError(f"multivariate_normal: cov must be a square matrix, got shape "
                             f"{np.shape(c)}")
        return cov, c.shape[0]
    dim = d if d is not None else (np.shape(c)[0] if nd == 1 else 1)
    if nd == 0:
        return cov * np.eye(dim), dim
    if nd == 1:
        return cnp.diag(cov), dim
    raise ValueError(f"multivariate_normal: cov must be a scalar, a vector or a matrix, got "
                     f"an array of dimension {nd}")


class _MultivariateNormal(_Distribution):
    name = "multivariate_normal"

    def _prepare(self, x, mean, cov, where):
        d = None if mean is None else int(np.size(raw(mean)))
        cov, dim = _as_cov(cov, d)
        if mean is None:
            mean = np.zeros(dim)
        elif np.size(raw(mean)) != dim:
            raise ValueError(f"{where}: mean has {np.size(raw(mean))} entries but cov is "
                             f"{dim} x {dim}")
        if x is None:
            return None, mean, cov, dim, ()
        xs = np.shape(raw(x))
        if dim == 1 and (len(xs) == 0 or xs[-1] != 1):
            x = cnp.reshape(x, xs + (1,))
        elif len(xs) == 0 or xs[-1] != dim:
            raise ValueError(f"{where}: x has shape {xs} but the distribution has dimension "
                             f"{dim} (the last axis of x)")
        lead = np.shape(raw(x))[:-1]
        return x, cnp.reshape(mean, (dim,)), cov, dim, lead

    def _factor(self, cov, dim, allow_singular, where):
        """``(logdet, whiten)``: ``whiten(dev)`` gives the squared Mahalanobis norms."""
        if not allow_singular:
            try:
                L = cholesky(cov, lower=True)
            except np.linalg.LinAlgError:
                raise np.linalg.LinAlgError(
                    f"{where}: the covariance cov is not positive definite (pass "
                    "allow_singular=True for a degenerate distribution)") from None
            logdet = 2.0 * cnp.sum(E.log(cnp.diagonal(L)))

            def whiten(dev2):  # dev2: (n, d)
                z = solve_triangular(L, cnp.transpose(dev2), lower=True)
                return cnp.sum(z * z, axis=0)

            return logdet, whiten, dim
        w, v = cnp.linalg.eigh(cov)
        wr = np.asarray(raw(w))
        if np.any(wr < -1e6 * np.finfo(float).eps * np.abs(wr).max()):
            raise ValueError(f"{where}: the covariance cov must be positive semidefinite")
        keep = wr > 1e6 * np.finfo(float).eps * np.abs(wr).max()
        safe = E.where(keep, w, 1.0)
        logdet = cnp.sum(E.where(keep, E.log(safe), 0.0))
        inv = E.where(keep, 1.0 / safe, 0.0)

        def whiten(dev2):
            p = cnp.matmul(dev2, v)
            maha = cnp.sum(p * p * inv, axis=-1)
            # points off the support (a component along a null direction) have density 0
            off = np.asarray(raw(p))[:, ~keep]
            outside = np.sqrt(np.sum(off * off, axis=-1)) > 1e-8 * max(1.0, np.abs(wr).max())
            return E.where(outside, np.inf, maha) if np.any(outside) else maha

        return logdet, whiten, int(keep.sum())

    def logpdf(self, x: Any, mean: Any = None, cov: Any = 1, allow_singular: bool = False) -> Any:
        """Log density; ``x``'s last axis holds the components (SciPy's conventions)."""
        where = "multivariate_normal.logpdf"
        x, mean, cov, dim, lead = self._prepare(x, mean, cov, where)
        logdet, whiten, rank = self._factor(cov, dim, allow_singular, where)
        dev = cnp.reshape(x - mean, (-1, dim))
        out = (whiten(dev) + logdet + rank * _LOG_2PI) * -0.5
        return cnp.reshape(out, lead)

    def pdf(self, x: Any, mean: Any = None, cov: Any = 1, allow_singular: bool = False) -> Any:
        """Density."""
        return E.exp(self.logpdf(x, mean, cov, allow_singular))

    def entropy(self, mean: Any = None, cov: Any = 1, allow_singular: bool = False) -> Any:
        """Differential entropy ``(rank (1 + log 2 pi) + log det cov) / 2``."""
        where = "multivariate_normal.entropy"
        _, mean, cov, dim, _ = self._prepare(None, mean, cov, where)
        logdet, _, rank = self._factor(cov, dim, allow_singular, where)
        return (logdet + rank * (1.0 + _LOG_2PI)) * 0.5


multivariate_normal = _MultivariateNormal()


# --- Student's t -------------------------------------------------------------------------------

def _t_logpdf_std(z: Any, df: Any) -> Any:
    return (S.gammaln((df + 1.0) * 0.5) - S.gammaln(df * 0.5) - 0.5 * _log(df * math.pi)
            - (df + 1.0) * 0.5 * E.log1p(z * z / df))


_t_cdf = partials("stats.t.cdf", sc.stdtr,
                  (None, lambda df, z, out: E.exp(_t_logpdf_std(z, raw(df)))))
_t_logcdf = partials("stats.t.logcdf", lambda df, z: st.t.logcdf(z, df),
                     (None, lambda df, z, out: E.exp(_t_logpdf_std(z, raw(df)) - out)))


class _T(_Distribution):
    name = "t"

    def logpdf(self, x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Log density of Student's t distribution."""
        check_positive(df, "df", "t.logpdf")
        return _t_logpdf_std(_z(x, loc, scale, "t.logpdf"), df) - _log(scale)

    def pdf(self, x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Density."""
        return E.exp(self.logpdf(x, df, loc, scale))

    def cdf(self, x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Distribution function (not differentiable in ``df``)."""
        check_positive(df, "df", "t.cdf")
        return _t_cdf(df, _z(x, loc, scale, "t.cdf"))

    def logcdf(self, x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Log of the distribution function (not differentiable in ``df``)."""
        check_positive(df, "df", "t.logcdf")
        return _t_logcdf(df, _z(x, loc, scale, "t.logcdf"))


t = _T()


# --- gamma, beta, chi-squared ---------------------------------------------------------------------

def _inside(z: Any, lo: float, hi: float) -> tuple[np.ndarray, Any]:
    """The support mask and ``z`` moved inside it (no NaN in either branch of ``where``)."""
    zr = known(z)
    if zr is None:  # traced values: the mask is traced too
        ok = E.logical_and(E.greater(z, lo), E.less(z, hi))
    else:
        ok = (zr > lo) & (zr < hi)
    return ok, E.where(ok, z, 0.5 if hi == 1.0 else 1.0)


class _Gamma(_Distribution):
    name = "gamma"

    def logpdf(self, x: Any, a: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Log density of the gamma distribution (``-inf`` outside ``x > loc``)."""
        check_positive(a, "a", "gamma.logpdf")
        ok, z = _inside(_z(x, loc, scale, "gamma.logpdf"), 0.0, np.inf)
        lp = S.xlogy(a - 1.0, z) - z - S.gammaln(a) - _log(scale)
        return E.where(ok, lp, -np.inf)

    def pdf(self, x: Any, a: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Density."""
        return E.exp(self.logpdf(x, a, loc, scale))

    def cdf(self, x: Any, a: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Distribution function (not differentiable in ``a``)."""
        check_positive(a, "a", "gamma.cdf")
        return S.gammainc(a, E.maximum(_z(x, loc, scale, "gamma.cdf"), 0.0))


gamma = _Gamma()


class _Beta(_Distribution):
    name = "beta"

    def logpdf(self, x: Any, a: Any, b: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Log density of the beta distribution (``-inf`` outside ``(loc, loc + scale)``)."""
        check_positive(a, "a", "beta.logpdf")
        check_positive(b, "b", "beta.logpdf")
        ok, z = _inside(_z(x, loc, scale, "beta.logpdf"), 0.0, 1.0)
        lp = (S.xlogy(a - 1.0, z) + S.xlog1py(b - 1.0, E.negative(z)) - S.betaln(a, b)
              - _log(scale))
        return E.where(ok, lp, -np.inf)

    def pdf(self, x: Any, a: Any, b: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Density."""
        return E.exp(self.logpdf(x, a, b, loc, scale))

    def cdf(self, x: Any, a: Any, b: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Distribution function (not differentiable in ``a`` and ``b``)."""
        check_positive(a, "a", "beta.cdf")
        check_positive(b, "b", "beta.cdf")
        return S.betainc(a, b, E.clip(_z(x, loc, scale, "beta.cdf"), 0.0, 1.0))


beta = _Beta()


class _Chi2(_Distribution):
    name = "chi2"

    def logpdf(self, x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Log density of the chi-squared distribution (a gamma with ``a = df / 2``)."""
        check_positive(df, "df", "chi2.logpdf")
        return gamma.logpdf(x, df * 0.5, loc, scale * 2.0)

    def pdf(self, x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Density."""
        return E.exp(self.logpdf(x, df, loc, scale))

    def cdf(self, x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Distribution function (not differentiable in ``df``)."""
        check_positive(df, "df", "chi2.cdf")
        return gamma.cdf(x, df * 0.5, loc, scale * 2.0)


chi2 = _Chi2()


# --- Dirichlet and Poisson ----------------------------------------------------------------------

class _Dirichlet(_Distribution):
    name = "dirichlet"

    def logpdf(self, x: Any, alpha: Any) -> Any:
        """Log density; ``x``'s FIRST axis holds the components (SciPy's convention), and
        ``x`` may leave out the last component (it is ``1 - sum``)."""
        a = np.asarray(raw(alpha))
        if a.ndim != 1 or np.any(a <= 0):
            raise ValueError(f"dirichlet.logpdf: alpha must be a vector of positive numbers, "
                             f"got {a!r}")
        xr = np.asarray(raw(x))
        k = a.shape[0]
        if xr.shape[0] == k - 1:
            x = cnp.concatenate([x, 1.0 - cnp.sum(x, axis=0, keepdims=True)], axis=0)
            xr = np.asarray(raw(x))
        if xr.shape[0] != k:
            raise ValueError(f"dirichlet.logpdf: x has {xr.shape[0]} components along its first "
                             f"axis but alpha has {k}")
        if np.any(xr < 0) or np.any(xr > 1):
            raise ValueError("dirichlet.logpdf: every entry of x must lie in [0, 1]")
        if np.any(np.abs(xr.sum(axis=0) - 1.0) > 10e-10):
            raise ValueError("dirichlet.logpdf: the components of x must sum to 1")
        shaped = cnp.reshape(alpha, (k,) + (1,) * (xr.ndim - 1))
        log_b = cnp.sum(S.gammaln(alpha)) - S.gammaln(cnp.sum(alpha))
        return cnp.sum(S.xlogy(shaped - 1.0, x), axis=0) - log_b

    def pdf(self, x: Any, alpha: Any) -> Any:
        """Density."""
        return E.exp(self.logpdf(x, alpha))


dirichlet = _Dirichlet()


class _Poisson(_Distribution):
    name = "poisson"

    def logpmf(self, k: Any, mu: Any, loc: Any = 0) -> Any:
        """Log probability mass (``-inf`` off the non-negative integers); differentiable in
        ``mu``."""
        mr = np.asarray(raw(mu))
        if np.any(mr < 0):
            raise ValueError(f"poisson.logpmf: mu must be non-negative, got {mr!r}")
        kk = np.asarray(raw(k), dtype=float) - raw(loc)
        ok = (kk >= 0) & (kk == np.floor(kk))
        ks = np.where(ok, kk, 0.0)
        return E.where(ok, S.xlogy(ks, mu) - sc.gammaln(ks + 1.0) - mu, -np.inf)

    def pmf(self, k: Any, mu: Any, loc: Any = 0) -> Any:
        """Probability mass."""
        return E.exp(self.logpmf(k, mu, loc))

    def cdf(self, k: Any, mu: Any, loc: Any = 0) -> Any:
        """Distribution function ``P(K <= k)``; differentiable in ``mu``."""
        mr = np.asarray(raw(mu))
        if np.any(mr < 0):
            raise ValueError(f"poisson.cdf: mu must be non-negative, got {mr!r}")
        kk = np.floor(np.asarray(raw(k), dtype=float) - raw(loc))
        ok = kk >= 0
        return E.where(ok, S.gammaincc(np.where(ok, kk, 0.0) + 1.0, mu), 0.0)


poisson = _Poisson()
