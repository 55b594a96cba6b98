"""``chainrule.scipy.linalg``: SciPy's matrix functions, differentiable.

``solve_triangular``, ``expm``, ``sqrtm``, ``solve_sylvester`` and
``solve_banded`` are primitives (SciPy computes the values; the rules are
written with these same primitives and chainrule ops, so they differentiate
again); ``cholesky``, ``cho_factor`` and ``cho_solve`` are composed of
chainrule's Cholesky factorisation and ``solve_triangular``.

>>> import numpy as np, chainrule as cr
>>> from chainrule.scipy.linalg import expm
>>> float(cr.grad(lambda a: expm(a)[0, 0])(np.zeros((2, 2)))[0, 0])
1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla

from .. import numpy as cnp
from ..core.primitive import Primitive, primitive
from ..ops._broadcast import align, unbroadcast
from ..ops.linalg import LinAlgError
from ..ops.linalg import cholesky as _cholesky
from ._common import known, numpy_only, raw

__all__ = ["solve_triangular", "cholesky", "cho_solve", "cho_factor", "expm", "sqrtm",
           "solve_sylvester", "solve_banded"]


def _mT(x: Any) -> Any:
    return cnp.swapaxes(x, -1, -2)


def _over_batches(solve2d: Any, *arrays: np.ndarray, core: int = 2) -> np.ndarray:
    """Apply a SciPy routine for 2-d arrays to stacks of them (leading axes broadcast)."""
    lead = np.broadcast_shapes(*(a.shape[:-core] for a in arrays))
    if not lead:
        return solve2d(*arrays)
    full = [np.broadcast_to(a, lead + a.shape[-core:]) for a in arrays]
    results = [solve2d(*(a[idx] for a in full)) for idx in np.ndindex(*lead)]
    return np.stack(results).reshape(lead + results[0].shape)


# --- solve_triangular --------------------------------------------------------------------------

def _trsm_np(a, b, trans, lower, unit_diagonal):
    # b is (..., n, k): stacked right-hand sides become extra columns of one solve
    n, k = b.shape[-2], b.shape[-1]
    lead = b.shape[:-2]
    cols = np.moveaxis(b.reshape((-1, n, k)), 0, -1).reshape(n, -1)
    x = sla.solve_triangular(a, cols, trans=trans, lower=lower, unit_diagonal=unit_diagonal)
    return np.moveaxis(x.reshape(n, k, -1), -1, 0).reshape(lead + (n, k))


def _tri_mask(a: Any, lower: bool, unit_diagonal: bool) -> np.ndarray:
    n = a.shape[-1]
    k = -1 if unit_diagonal else 0
    m = np.tri(n, n, k) if lower else np.tri(n, n, k).T
    return m.astype(raw(a).dtype, copy=False)


def _trsm_vjp(g, out, a, b, trans, lower, unit_diagonal):
    gb = trsm_p(a, g, trans=1 - trans, lower=lower, unit_diagonal=unit_diagonal)
    gm = cnp.negative(cnp.matmul(gb, _mT(out)))          # cotangent of op(a)
    ga = gm if trans == 0 else _mT(gm)
    return unbroadcast(ga * _tri_mask(a, lower, unit_diagonal), a, out), gb


def _trsm_jvp_a(t, out, a, b, trans, lower, unit_diagonal):
    ta = align(t, a, out) * _tri_mask(a, lower, unit_diagonal)
    ta = ta if trans == 0 else _mT(ta)
    return cnp.negative(trsm_p(a, cnp.matmul(ta, out), trans=trans, lower=lower,
                               unit_diagonal=unit_diagonal))


trsm_p: Primitive = primitive(
    "scipy.linalg.solve_triangular", numpy_only("solve_triangular", _trsm_np), _trsm_np,
    vjp=_trsm_vjp,
    jvp=(_trsm_jvp_a,
         lambda t, out, a, b, **kw: trsm_p(a, t, **kw)),
)

_TRANS = {0: 0, "N": 0, 1: 1, "T": 1, 2: 1, "C": 1}


def solve_triangular(a: Any, b: Any, trans: Any = 0, lower: bool = False,
                     unit_diagonal: bool = False, overwrite_b: bool = False,
                     check_finite: bool = True) -> Any:
    """Solve ``a x = b`` (``trans=1``: ``a^T x = b``) for triangular ``a`` (SciPy's signature).

    Only the triangle named by ``lower`` is read (and receives a derivative);
    ``unit_diagonal`` takes the diagonal to be ones.  Real matrices only.

    >>> import numpy as np
    >>> solve_triangular(np.array([[2.0, 0.0], [1.0, 1.0]]), np.array([2.0, 3.0]), lower=True)
    array([1., 2.])
    """
    if trans not in _TRANS:
        raise ValueError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', "
                         f"got {trans!r}")
    a = cnp.asarray(a) if not hasattr(a, "shape") else a
    b = cnp.asarray(b) if not hasattr(b, "shape") else b
    if len(a.shape) != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"solve_triangular: expected a square matrix a, got shape "
                         f"{tuple(a.shape)}")
    n = a.shape[0]
    if len(b.shape) not in (1, 2) or b.shape[0] != n:
        raise ValueError(f"solve_triangular: a has shape {tuple(a.shape)}, so b must have "
                         f"shape ({n},) or ({n}, k); got {tuple(b.shape)}")
    ka, kb = (known(a), known(b)) if check_finite else (None, None)
    if ka is not None and kb is not None and not (np.all(np.isfinite(ka))
                                                  and np.all(np.isfinite(kb))):
        raise ValueError("solve_triangular: array must not contain infs or NaNs")
    kw = {"trans": _TRANS[trans], "lower": bool(lower), "unit_diagonal": bool(unit_diagonal)}
    if len(b.shape) == 1:
        return cnp.reshape(trsm_p(a, cnp.reshape(b, (n, 1)), **kw), (n,))
    return trsm_p(a, b, **kw)


# --- Cholesky ----------------------------------------------------------------------------------

def cholesky(a: Any, lower: bool = False, overwrite_a: bool = False,
             check_finite: bool = True) -> Any:
    """Cholesky factor of a symmetric positive definite matrix (upper by default, as SciPy).

    Raises ``LinAlgError`` naming ``a`` when it is not positive definite.

    >>> import numpy as np
    >>> cholesky(np.array([[4.0, 2.0], [2.0, 2.0]]))
    array([[2., 1.],
           [0., 1.]])
    """
    try:
        return _cholesky(a, upper=not lower)
    except LinAlgError as exc:
        raise LinAlgError(f"cholesky: the matrix a is not positive definite ({exc}); "
                          "a covariance needs positive eigenvalues") from None


def cho_factor(a: Any, lower: bool = False, overwrite_a: bool = False,
               check_finite: bool = True) -> tuple:
    """``(c, lower)`` for :func:`cho_solve`; ``c`` is the triangular factor (zeros elsewhere)."""
    return cholesky(a, lower=lower), lower


def cho_solve(c_and_lower: tuple, b: Any, overwrite_b: bool = False,
              check_finite: bool = True) -> Any:
    """Solve ``a x = b`` given ``cho_factor(a)`` (SciPy's signature), differentiable in both.

    >>> import numpy as np
    >>> a = np.array([[4.0, 2.0], [2.0, 2.0]])
    >>> cho_solve(cho_factor(a), np.array([1.0, 0.0]))
    array([ 0.5, -0.5])
    """
    c, lower = c_and_lower
    if lower:   # L L^T x = b
        y = solve_triangular(c, b, lower=True, check_finite=check_finite)
        return solve_triangular(c, y, trans=1, lower=True, check_finite=check_finite)
    y = solve_triangular(c, b, trans=1, lower=False, check_finite=check_finite)  # U^T U x = b
    return solve_triangular(c, y, lower=False, check_finite=check_finite)


# --- expm ----------------------------------------------------------------------------------

def _frechet(a: Any, e: Any) -> Any:
    """The Frechet derivative of expm at ``a`` along ``e`` (``e`` may carry batch axes):
    the upper-right block of ``expm([[a, e], [0, a]])``, itself differentiable."""
    n = a.shape[-1]
    shape = tuple(e.shape)
    ab = cnp.broadcast_to(a, shape)
    zero = np.zeros(shape, dtype=raw(e).dtype)
    block = cnp.concatenate([cnp.concatenate([ab, e], axis=-1),
                             cnp.concatenate([zero, ab], axis=-1)], axis=-2)
    return expm_p(block)[..., :n, n:]


expm_p = primitive(
    "scipy.linalg.expm", numpy_only("expm", sla.expm), sla.expm,
    vjp=(lambda g, out, a: _frechet(_mT(a), g),),
    jvp=(lambda t, out, a: _frechet(a, t),),
)


def _square(a: Any, op: str) -> Any:
    a = cnp.asarray(a) if not hasattr(a, "shape") else a
    s = tuple(a.shape)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ValueError(f"{op}: expected a square matrix (or a stack of them), got shape {s}")
    return a


def expm(A: Any) -> Any:
    """Matrix exponential (SciPy's ``expm``, stacks ``(..., n, n)`` too).

    >>> import numpy as np
    >>> expm(np.zeros((2, 2)))
    array([[1., 0.],
           [0., 1.]])
    """
    return expm_p(_square(A, "expm"))


# --- Sylvester equations and sqrtm ------------------------------------------------------------

def _sylvester_np(a, b, q):
    return _over_batches(sla.solve_sylvester, a, b, q)


sylvester_p = primitive(
    "scipy.linalg.solve_sylvester", numpy_only("solve_sylvester", _sylvester_np), _sylvester_np,
    vjp=None, jvp=None,
)


def _sylvester_vjp(g, out, a, b, q):
    lam = sylvester_p(_mT(a), _mT(b), g)
    return (unbroadcast(cnp.negative(cnp.matmul(lam, _mT(out))), a, out),
            unbroadcast(cnp.negative(cnp.matmul(_mT(out), lam)), b, out),
            unbroadcast(lam, q, out))


sylvester_p.vjp = _sylvester_vjp
sylvester_p.jvp = (
    lambda t, out, a, b, q: sylvester_p(a, b, cnp.negative(cnp.matmul(align(t, a, out), out))),
    lambda t, out, a, b, q: sylvester_p(a, b, cnp.negative(cnp.matmul(out, align(t, b, out)))),
    lambda t, out, a, b, q: sylvester_p(a, b, align(t, q, out)),
)


def solve_sylvester(a: Any, b: Any, q: Any) -> Any:
    """Solve ``a x + x b = q`` for ``x`` (SciPy's ``solve_sylvester``), differentiable in all.

    >>> import numpy as np
    >>> solve_sylvester(np.eye(2), np.eye(2), np.eye(2))
    array([[0.5, 0. ],
           [0. , 0.5]])
    """
    a, b = _square(a, "solve_sylvester"), _square(b, "solve_sylvester")
    q = cnp.asarray(q) if not hasattr(q, "shape") else q
    if len(a.shape) != 2 or len(b.shape) != 2 or tuple(q.shape) != (a.shape[0], b.shape[0]):
        raise ValueError(f"solve_sylvester: a {tuple(a.shape)}, b {tuple(b.shape)} and q "
                         f"{tuple(q.shape)} must be (n, n), (m, m) and (n, m)")
    return sylvester_p(a, b, q)


def _sqrtm_np(a):
    return _over_batches(lambda m: np.asarray(sla.sqrtm(m)), a)


sqrtm_p = primitive(
    "scipy.linalg.sqrtm", numpy_only("sqrtm", _sqrtm_np), _sqrtm_np,
    # X X = A  =>  X dX + dX X = dA (a Sylvester equation for dX)
    vjp=(lambda g, out, a: sylvester_p(_mT(out), _mT(out), g),),
    jvp=(lambda t, out, a: sylvester_p(out, out, t),),
)


def sqrtm(A: Any, disp: bool = True, blocksize: int = 64) -> Any:
    """Principal matrix square root (SciPy's ``sqrtm``), differentiable.

    >>> import numpy as np
    >>> sqrtm(np.array([[4.0, 0.0], [0.0, 9.0]]))
    array([[2., 0.],
           [0., 3.]])
    """
    return sqrtm_p(_square(A, "sqrtm"))


# --- solve_banded ------------------------------------------------------------------------------

def _band_index(n: int, lo: int, up: int, to_lo: int, to_up: int) -> tuple:
    """Gather indices that read the band storage of ``A^T`` (bands ``to_lo``, ``to_up``)
    from the band storage of ``A`` (bands ``lo``, ``up``), and the mask of valid entries."""
    rows = np.arange(to_lo + to_up + 1)[:, None]
    cols = np.arange(n)[None, :]
    # (A^T)[i, j] = A[j, i] sits at row to_up + i - j of A^T's storage, column j
    i = rows - to_up + cols
    src_row = up + cols - i
    valid = (i >= 0) & (i < n) & (src_row >= 0) & (src_row <= lo + up)
    return np.where(valid, src_row, 0), np.where(valid, i, 0), valid


def _band_transpose(ab: Any, lo: int, up: int) -> Any:
    n = ab.shape[-1]
    r, c, valid = _band_index(n, lo, up, up, lo)
    return ab[..., r, c] * valid.astype(raw(ab).dtype)


def _banded_np(ab, b, lo, up):
    n = ab.shape[-1]
    k = b.shape[-1]
    lead = b.shape[:-2]
    cols = np.moveaxis(b.reshape((-1, n, k)), 0, -1).reshape(n, -1)
    x = sla.solve_banded((lo, up), ab, cols)
    return np.moveaxis(x.reshape(n, k, -1), -1, 0).reshape(lead + (n, k))


def _banded_vjp(g, out, ab, b, lo, up):
    gb = banded_p(_band_transpose(ab, lo, up), g, lo=up, up=lo)
    n = ab.shape[-1]
    # dA[i, j] = -(gb x^T)[i, j], kept on the band: storage row up + i - j, column j
    rows = np.arange(lo + up + 1)[:, None]
    cols = np.arange(n)[None, :]
    i = rows - up + cols
    valid = ((i >= 0) & (i < n)).astype(raw(ab).dtype)
    i = np.where(i >= 0, np.minimum(i, n - 1), 0)
    gi = gb[..., i, :]                       # (..., lo+up+1, n, k): rows i of gb
    xj = out[..., cols, :]                    # (..., 1, n, k): rows j of x
    gab = cnp.negative(cnp.sum(gi * xj, axis=-1)) * valid
    return unbroadcast(gab, ab, out), gb


def _banded_jvp_ab(t, out, ab, b, lo, up):
    # dx = -A^-1 (dA x); (dA x)[i] = sum_j dA[i, j] x[j] with dA[i, j] = t[up + i - j, j]
    n = ab.shape[-1]
    rows = np.arange(lo + up + 1)[:, None]
    cols = np.arange(n)[None, :]
    i = rows - up + cols
    valid = (i >= 0) & (i < n)
    t = align(t, ab, out)
    prod = t[..., :, :, None] * out[..., None, :, :]          # (..., rows, n, k): dA[i,j] x[j]
    # scatter into rows i: one-hot over i (a constant), summed over the band rows and j
    onehot = (np.arange(n)[:, None, None] == np.where(valid, i, -1)[None]).astype(
        raw(out).dtype)                                       # (n, rows, n)
    dax = cnp.einsum("...rjk,irj->...ik", prod, onehot)
    return cnp.negative(banded_p(ab, dax, lo=lo, up=up))


banded_p: Primitive = primitive(
    "scipy.linalg.solve_banded", numpy_only("solve_banded", _banded_np), _banded_np,
    vjp=_banded_vjp,
    jvp=(_banded_jvp_ab, lambda t, out, ab, b, lo, up: banded_p(ab, t, lo=lo, up=up)),
)


def solve_banded(l_and_u: tuple, ab: Any, b: Any, overwrite_ab: bool = False,
                 overwrite_b: bool = False, check_finite: bool = True) -> Any:
    """Solve ``a x = b`` for a banded ``a`` given in SciPy's band storage ``ab``.

    ``ab[u + i - j, j] == a[i, j]``; ``l_and_u = (l, u)`` counts the
    sub- and super-diagonals.  Differentiable in ``ab`` and ``b``.

    >>> import numpy as np
    >>> ab = np.array([[0.0, 1.0], [2.0, 2.0], [1.0, 0.0]])   # [[2, 1], [1, 2]]
    >>> solve_banded((1, 1), ab, np.array([3.0, 3.0]))
    array([1., 1.])
    """
    lo, up = (int(v) for v in l_and_u)
    ab = cnp.asarray(ab) if not hasattr(ab, "shape") else ab
    b = cnp.asarray(b) if not hasattr(b, "shape") else b
    if len(ab.shape) != 2 or ab.shape[0] != lo + up + 1:
        raise ValueError(f"solve_banded: ab must have shape ({lo + up + 1}, n) for "
                         f"(l, u) = ({lo}, {up}); got {tuple(ab.shape)}")
    n = ab.shape[1]
    if len(b.shape) not in (1, 2) or b.shape[0] != n:
        raise ValueError(f"solve_banded: b must have shape ({n},) or ({n}, k); "
                         f"got {tuple(b.shape)}")
    if len(b.shape) == 1:
        return cnp.reshape(banded_p(ab, cnp.reshape(b, (n, 1)), lo=lo, up=up), (n,))
    return banded_p(ab, b, lo=lo, up=up)
