"""Decompositions: ``cholesky``, ``eigh``, ``qr`` and ``svd``, with their rules."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import namespace_of
from ...core.primitive import Box, primitive
from ..elementwise import (
    divide,
    imag,
    is_complex,
    multiply,
    negative,
    real,
)
from ..indexing import concat_p, getitem
from ._common import (
    EighResult,
    QRResult,
    SVDResult,
    _arr,
    _as_row,
    _check_matrix,
    _check_square,
    _conjugate_convention,
    _const,
    _diag_embed,
    _diag_part,
    _entries,
    _expand_last,
    _eye,
    _mH,
    _mT,
    _nd,
    _tril_mask,
    _triu_mask,
    tuple_get,
)
from .products import matmul_p
from .solve import solve_p

# --- cholesky ---------------------------------------------------------------------------------

def _phi_mask(L: Any) -> Any:
    """Lower triangle with the diagonal halved (Murray 2016's Phi)."""
    n = L.shape[-1]
    return _const(np.tri(n) - 0.5 * np.eye(n), L)


def _cholesky_vjp(g, out, a):
    # Murray (2016): Abar = L^-H Phi(L^H Lbar) L^-1, made Hermitian (conjugate convention).
    Lh = _mH(out)
    P = matmul_p(Lh, g) * _phi_mask(out)
    S = _mH(solve_p(Lh, _mH(solve_p(Lh, P))))  # L^-H P L^-1
    return (S + _mH(S)) * 0.5


def _cholesky_jvp(t, out, a):
    Y = solve_p(out, t)                 # L^-1 dA
    X = _mH(solve_p(out, _mH(Y)))       # L^-1 dA L^-H
    return matmul_p(out, X * _phi_mask(out))


cholesky_p = primitive(
    "cholesky", lambda xp, a: xp.linalg.cholesky(a), np.linalg.cholesky,
    vjp=(_conjugate_convention(_cholesky_vjp),), jvp=(_cholesky_jvp,),
)


def _sym(a: Any) -> Any:
    """The symmetric (complex: Hermitian) part ``(A + A^H) / 2``."""
    return (a + _mH(a)) * 0.5


def cholesky(a: Any, /, *, upper: bool = False) -> Any:
    """Cholesky factor ``L`` (lower; ``upper=True`` gives ``L^H``) of a symmetric (complex:
    Hermitian) positive definite matrix (or a stack of them).

    The symmetric part ``(A + A^H)/2`` is factored (as JAX does), so values
    and derivatives agree for any perturbation and the gradient is
    symmetric; for a symmetric input the result is NumPy's.
    """
    a = _arr(a)
    _check_square(a, "cholesky")
    L = cholesky_p(_sym(a))
    return _mH(L) if upper else L


# --- eigh -----------------------------------------------------------------------------------

def _eig_F(w: Any) -> Any:
    """``F[i, j] = 1 / (w[j] - w[i])`` off the diagonal, 0 on it."""
    n = w.shape[-1]
    d = _as_row(w) - _expand_last(w)
    eye = _eye(n, w)
    return divide(1.0 - eye, d + eye)


def _eigh_vjp(g, out, a):
    # Conjugate convention: Abar = V (diag(wbar) + F o (V^H Vbar)) V^H, made Hermitian
    # (the eigenvector phases are fixed as in the JVP: diag(V^H dV) = 0).
    gw, gv = g
    w, v = _entries(out, 2)
    vh = _mH(v)
    inner_ = None if gw is None else _diag_embed(real(gw) if is_complex(gw) else gw, v)
    if gv is not None:
        term = multiply(_eig_F(w), matmul_p(vh, gv))
        inner_ = term if inner_ is None else inner_ + term
    if inner_ is None:
        return None
    return _sym(matmul_p(v, matmul_p(inner_, vh)))


def _eigh_jvp(t, out, a):
    w, v = _entries(out, 2)
    dP = matmul_p(_mH(v), matmul_p(t, v))
    dw = _diag_part(dP)
    return (real(dw) if is_complex(dw) else dw), matmul_p(v, multiply(_eig_F(w), dP))


eigh_p = primitive(
    "eigh", lambda xp, a: tuple(xp.linalg.eigh(a)), lambda a: tuple(np.linalg.eigh(a)),
    vjp=(_conjugate_convention(_eigh_vjp),), jvp=(_eigh_jvp,),
)


def eigh(a: Any, UPLO: str = "L") -> EighResult:
    """Eigenvalues (ascending) and eigenvectors of a symmetric (complex: Hermitian) matrix:
    ``(w, v)``.

    The symmetric part ``(A + A^H)/2`` is decomposed (NumPy reads the
    ``UPLO`` triangle instead; both agree for a symmetric input), so values
    and derivatives agree for any perturbation.  The derivative assumes
    distinct eigenvalues.
    """
    a = _arr(a)
    _check_square(a, "eigh")
    if UPLO not in ("L", "U"):
        raise ValueError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    res = eigh_p(_sym(a))
    if not isinstance(res, Box):
        return EighResult(*res)
    return EighResult(*_entries(res, 2))


def eigvalsh(a: Any, UPLO: str = "L") -> Any:
    """Eigenvalues of a symmetric matrix, ascending (differentiable; see :func:`eigh`)."""
    a = _arr(a)
    if not isinstance(a, Box) and isinstance(a, np.ndarray):
        _check_square(a, "eigvalsh")
        return np.linalg.eigvalsh(_sym(a))
    return eigh(a, UPLO)[0]


# --- qr ---------------------------------------------------------------------------------------

def _qr_wide_error() -> NotImplementedError:
    # (qr() splits a wide matrix before it reaches the primitive: see _qr_wide)
    return NotImplementedError(
        "qr: the qr primitive's derivative is for square and tall matrices (m >= n); "
        "call cnp.linalg.qr, which splits a wide matrix"
    )


def _qr_vjp(g, out, a):
    gq, gr = g
    m, n = a.shape[-2:]
    if m < n:
        raise _qr_wide_error()
    # Conjugate convention: Abar = (Qbar + Q N) R^-H with N built from M = Rbar R^H - Q^H Qbar.
    q, r = _entries(out, 2)
    M = None
    if gr is not None:
        M = matmul_p(gr, _mH(r))
    if gq is not None:
        qtgq = matmul_p(_mH(q), gq)
        M = negative(qtgq) if M is None else M - qtgq
    if M is None:
        return None
    # the upper triangle with the lower one's conjugate mirrored in (R's diagonal is real)
    N = M * _triu_mask(n, r, 1) + _mH(M) * _tril_mask(n, r, -1)
    d = _diag_part(M)
    N = N + _diag_embed(real(d) if is_complex(d) else d, r)
    B = matmul_p(q, N)
    if gq is not None:
        B = B + gq
    return _mH(solve_p(r, _mH(B)))  # B R^-H


def _qr_jvp(t, out, a):
    m, n = a.shape[-2:]
    if m < n:
        raise _qr_wide_error()
    q, r = _entries(out, 2)
    dx_rinv = _mT(solve_p(_mT(r), _mT(t)))  # dA R^-1
    X = matmul_p(_mH(q), dx_rinv)
    low = X * _tril_mask(n, r, -1)
    C = low - _mH(low)  # Q^H dQ: skew-Hermitian
    if is_complex(X):  # R's diagonal stays real, so Q^H dQ takes the imaginary diagonal
        C = C + _diag_embed(imag(_diag_part(X)) * 1j, X)
    return matmul_p(q, C - X) + dx_rinv, matmul_p(X - C, r)


qr_p = primitive(
    "qr", lambda xp, a: tuple(xp.linalg.qr(a)), lambda a: tuple(np.linalg.qr(a)),
    vjp=(_conjugate_convention(_qr_vjp),), jvp=(_qr_jvp,),
)


def qr(a: Any, mode: str = "reduced") -> Any:
    """QR decomposition ``(Q, R)`` (``numpy.linalg.qr``).

    The derivative covers ``mode='reduced'`` (and ``'r'``, ``'complete'`` where
    they coincide with it) for square, tall and wide matrices (a wide one is
    split into its leading square block and the rest).
    """
    a = _arr(a)
    _check_matrix(a, "qr")
    if mode not in ("reduced", "complete", "r", "raw"):
        raise ValueError(f"qr: unknown mode {mode!r}; use 'reduced', 'complete', 'r' or 'raw'")
    if not isinstance(a, Box):
        if isinstance(a, np.ndarray):
            res = np.linalg.qr(a, mode=mode)  # type: ignore[call-overload]  # mode checked above
            return QRResult(*res) if mode in ("reduced", "complete") else res
        if mode in ("reduced", "complete"):
            return QRResult(*namespace_of(a).linalg.qr(a, mode=mode))
    m, n = a.shape[-2:]
    if mode == "raw" or (mode == "complete" and m > n):
        raise NotImplementedError(f"qr: mode={mode!r} is not differentiable for shape "
                                  f"{tuple(a.shape)}; use mode='reduced'")
    q, r = _qr_wide(a) if m < n else _entries(qr_p(a), 2)
    return r if mode == "r" else QRResult(q, r)


def _qr_wide(a: Any) -> tuple[Any, Any]:
    """QR of a wide matrix (m < n) composed from the square case, so both modes and every
    order follow: with ``A = [X | Y]`` (``X`` square), ``X = Q U`` and ``R = [U | Q^H Y]``.
    Householder QR of ``A`` builds ``Q`` from the first m columns alone, so the values are
    NumPy's."""
    m = a.shape[-2]
    lead = (slice(None),) * (_nd(a) - 1)
    q, u = _entries(qr_p(getitem(a, lead + (slice(0, m),))), 2)
    v = matmul_p(_mH(q), getitem(a, lead + (slice(m, None),)))
    return q, concat_p(u, v, axis=-1)


# --- svd --------------------------------------------------------------------------------------

def _svd_F(s: Any) -> Any:
    """``F[i, j] = 1 / (s[j]^2 - s[i]^2)`` off the diagonal, 0 on it."""
    s2 = s * s
    eye = _eye(s.shape[-1], s)
    return divide(1.0 - eye, _as_row(s2) - _expand_last(s2) + eye)


def _svd_reduced(out, a, full_matrices):
    u, s, vh = _entries(out, 3)
    m, n = a.shape[-2:]
    k = min(m, n)
    if full_matrices and m != n:  # keep the first k columns / rows (the rest are not unique)
        if m > k:
            u = matmul_p(u, _eye(m, u, k))
        else:
            vh = matmul_p(_eye(k, vh, n), vh)
    return u, s, vh, m, n, k


_COLS = (Ellipsis, slice(None))  # then a slice of the last axis


def _complement_tangents(out: Any, m: int, n: int, k: int) -> tuple[Any, Any]:
    """``U2`` and ``Vh2``: the extra columns / rows of a full SVD (``None`` when absent)."""
    u, _, vh = _entries(out, 3)
    u2 = getitem(u, _COLS + (slice(k, None),)) if m > k else None
    vh2 = getitem(vh, (Ellipsis, slice(k, None), slice(None))) if n > k else None
    return u2, vh2


def _svd_vjp(g, out, a, full_matrices):
    # Townsend (2016), "Differentiating the singular value decomposition".
    gu, gs, gvh = g
    u, s, vh, m, n, k = _svd_reduced(out, a, full_matrices)
    if full_matrices and m != n:
        # The extra columns U2 (rows Vh2) are any orthonormal basis of the complement; they
        # move with the least rotation that keeps U unitary (see _svd_jvp): the transpose
        # of dU2 = -U1 dU1^H U2 sends -U2 gU2^H U1 to U1's cotangent (likewise for Vh).
        u2, vh2 = _complement_tangents(out, m, n, k)
        if gu is not None and m > k:
            gu2 = getitem(gu, _COLS + (slice(k, None),))
            gu = getitem(gu, _COLS + (slice(0, k),)) - matmul_p(u2, matmul_p(_mH(gu2), u))
        if gvh is not None and n > k:
            rows = (Ellipsis, slice(k, None), slice(None))
            gvh2 = getitem(gvh, rows)
            gvh = (getitem(gvh, (Ellipsis, slice(0, k), slice(None)))
                   - matmul_p(vh, matmul_p(_mH(gvh2), vh2)))
    # (conjugate convention; for complex data the phase of each singular pair is taken by U,
    # as in the JVP, which adds the imaginary diagonal of U^H Ubar divided by s)
    s_row = _as_row(s)  # s[j] along the last axis
    s_col = _expand_last(s)  # s[i] along the second-to-last axis
    cplx = is_complex(u)
    if gs is not None and is_complex(gs):
        gs = real(gs)
    core = None if gs is None else _diag_embed(gs, u)
    extra = None
    if gu is not None or gvh is not None:
        F = _svd_F(s)
    if gu is not None:
        utgu = matmul_p(_mH(u), gu)
        term = multiply(F, utgu - _mH(utgu)) * s_row
        if cplx:
            term = term + _diag_embed(imag(_diag_part(utgu)) * 1j / s, u)
        core = term if core is None else core + term
        if m > k:
            extra = matmul_p((gu - matmul_p(u, utgu)) / s_row, vh)
    if gvh is not None:
        gv = _mH(gvh)
        v = _mH(vh)
        vtgv = matmul_p(vh, gv)
        term = multiply(s_col, multiply(F, vtgv - _mH(vtgv)))
        core = term if core is None else core + term
        if n > k:
            e = matmul_p(u / s_row, _mH(gv - matmul_p(v, vtgv)))
            extra = e if extra is None else extra + e
    if core is None:
        return None
    ga = matmul_p(u, matmul_p(core, vh))
    return ga if extra is None else ga + extra


def _svd_jvp(t, out, a, full_matrices):
    u, s, vh, m, n, k = _svd_reduced(out, a, full_matrices)
    v = _mH(vh)
    ut = _mH(u)
    dP = matmul_p(ut, matmul_p(t, v))
    ds = _diag_part(dP)
    F = _svd_F(s)
    s_row = _as_row(s)
    s_col = _expand_last(s)
    dPS = dP * s_row
    SdP = multiply(s_col, dP)
    inner_ = multiply(F, dPS + _mH(dPS))
    if is_complex(dP):  # U takes the phase: diag(U^H dU) = i Im(diag dP) / s
        inner_ = inner_ + _diag_embed(imag(ds) * 1j / s, dP)
        ds = real(ds)
    du = matmul_p(u, inner_)
    dv = matmul_p(v, multiply(F, SdP + _mH(SdP)))
    if m > k:
        dav = matmul_p(t, v)
        du = du + (dav - matmul_p(u, matmul_p(ut, dav))) / s_row
    if n > k:
        dau = matmul_p(_mH(t), u)
        dv = dv + (dau - matmul_p(v, matmul_p(vh, dau))) / s_row
    dvh = _mH(dv)
    if full_matrices and m != n:
        # the complement's basis moves with the least rotation keeping U (V) unitary:
        # dU2 = -U1 dU1^H U2 (U2^H dU2 = 0), and dVh2 = -Vh2 dVh1^H Vh1
        u2, vh2 = _complement_tangents(out, m, n, k)
        if m > k:
            du = concat_p(du, negative(matmul_p(u, matmul_p(_mH(du), u2))), axis=-1)
        if n > k:
            dvh = concat_p(dvh, negative(matmul_p(vh2, matmul_p(_mH(dvh), vh))), axis=-2)
    return du, ds, dvh


svd_p = primitive(
    "svd", lambda xp, a, full_matrices: tuple(xp.linalg.svd(a, full_matrices=full_matrices)),
    lambda a, full_matrices: tuple(np.linalg.svd(a, full_matrices=full_matrices)),
    vjp=(_conjugate_convention(_svd_vjp),), jvp=(_svd_jvp,),
)


def svd(a: Any, full_matrices: bool = True, compute_uv: bool = True,
        hermitian: bool = False) -> Any:
    """Singular value decomposition ``(U, S, Vh)`` (``numpy.linalg.svd``); ``S`` alone when
    ``compute_uv=False``.

    The derivative assumes distinct, non-zero singular values.  With
    ``full_matrices=True`` on a non-square matrix the extra columns ``U2`` of
    ``U`` (rows of ``Vh``) are any orthonormal basis of the complement; in both
    modes they move with the least rotation that keeps ``U`` unitary
    (``dU2 = -U1 dU1^H U2``), so every function that does not depend on the
    choice of that basis (``U2 U2^H``, norms of projections...) gets its exact
    derivative.
    """
    a = _arr(a)
    _check_matrix(a, "svd")
    if not isinstance(a, Box):
        if isinstance(a, np.ndarray):
            return np.linalg.svd(a, full_matrices, compute_uv, hermitian)  # type: ignore[call-overload]  # (stubs: compute_uv a literal)
        xp = namespace_of(a)
        if not compute_uv:
            return xp.linalg.svdvals(a)
        return SVDResult(*xp.linalg.svd(a, full_matrices=bool(full_matrices)))
    if not compute_uv:
        return tuple_get(svd_p(a, full_matrices=False), index=1)
    res = svd_p(a, full_matrices=bool(full_matrices))
    return SVDResult(*_entries(res, 3))
