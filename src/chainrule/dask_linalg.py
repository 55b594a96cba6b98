"""``det``, ``slogdet`` and ``eigh`` for Dask arrays, which ``dask.array.linalg`` lacks.

:mod:`chainrule.backend` hands these to the linear-algebra primitives as the
``linalg`` functions of the Dask namespace, so ``cnp.linalg.det`` and its
derivatives (whose rules use ``inv`` and ``solve``, which Dask has) stay lazy.

* ``slogdet`` and ``det`` of one matrix go through Dask's LU factorisation
  ``A = P L U`` (``dask.array.linalg.lu``): ``L`` has a unit diagonal, so
  ``det A = sign(P) prod(diag U)``; the sign of the permutation is the parity
  of its inversions, counted lazily.  Dask's blocked LU pivots only inside the
  diagonal blocks (it fails, or silently loses accuracy, when a leading block
  is singular or ill-conditioned), so the matrix is rechunked into one block
  first: partial pivoting over all rows, as in NumPy.  A stack of matrices (or
  a Dask without SciPy, which its LU needs) maps NumPy's function over the
  matrices, each in one block.
* ``inv`` and ``solve`` (which the derivative rules use) are Dask's, with the
  matrix in one block for the same reason (the right-hand side keeps its
  column chunks); stacks are mapped like ``slogdet``.
* ``eigh`` has no blocked algorithm: each matrix is rechunked into one block
  and NumPy's ``eigh`` is mapped over the stack (one task per block of the
  batch axes), which suits the small matrices it is used for.

Nothing here is computed: every result is a lazy Dask array.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

__all__ = ["det", "slogdet", "eigh", "inv", "solve"]


def _da() -> Any:
    import dask.array  # only reached with Dask arrays in hand, so Dask is installed

    return dask.array


def _one_block(a: Any) -> Any:
    """``a`` (one matrix) in one block: Dask's blocked LU pivots only inside the diagonal
    blocks (a singular or ill-conditioned leading block breaks it, or silently loses
    accuracy), so the LU runs on the whole matrix with partial pivoting over all rows."""
    return a.rechunk(a.shape)


def _permutation_sign(p: Any) -> Any:
    """``det(P)`` of a permutation matrix: -1 to the number of inversions."""
    da = _da()
    perm = da.argmax(p, axis=1)
    inversions = da.sum(da.triu(perm[:, None] > perm[None, :], 1).astype(np.int64))
    return (1 - 2 * (inversions % 2)).astype(p.dtype)


def _lu_parts(a: Any) -> tuple[Any, Any]:
    """``(sign(P), diag(U))`` of the LU factorisation of one square matrix."""
    da = _da()
    p, _, u = da.linalg.lu(_one_block(a))
    return _permutation_sign(p), da.diagonal(u)


def _use_lu(a: Any) -> bool:
    return a.ndim == 2 and importlib.util.find_spec("scipy") is not None


def _mapped(fn: Any, a: Any, signature: str, dtypes: Any) -> Any:
    """``fn`` applied to each matrix of ``a`` (its last two axes in one block)."""
    return _da().apply_gufunc(fn, signature, a, output_dtypes=dtypes, allow_rechunk=True)


def _real_dtype(dtype: Any) -> Any:
    return np.empty((), dtype).real.dtype


def slogdet(a: Any) -> tuple[Any, Any]:
    """``(sign, logabsdet)`` of the determinant of a square Dask array (or a stack)."""
    if not _use_lu(a):
        return _mapped(lambda m: tuple(np.linalg.slogdet(m)), a, "(n,n)->(),()",
                       (a.dtype, _real_dtype(a.dtype)))
    da = _da()
    sign_p, d = _lu_parts(a)
    mag = da.absolute(d)
    # a zero pivot gives sign 0 and logabsdet -inf, as NumPy does
    zero = mag == 0
    safe = da.where(zero, 1, mag)
    sign = sign_p * da.prod(d / safe)
    logabs = da.where(da.any(zero), -np.inf, da.sum(da.log(safe)))
    return sign, logabs


def det(a: Any) -> Any:
    """The determinant of a square Dask array (or a stack)."""
    if not _use_lu(a):
        return _mapped(np.linalg.det, a, "(n,n)->()", a.dtype)
    da = _da()
    sign_p, d = _lu_parts(a)
    return sign_p * da.prod(d)


def eigh(a: Any) -> tuple[Any, Any]:
    """Eigenvalues (ascending) and eigenvectors of symmetric Dask matrices (or a stack)."""
    return _mapped(lambda m: tuple(np.linalg.eigh(m)), a, "(n,n)->(n),(n,n)",
                   (_real_dtype(a.dtype), a.dtype))


def inv(a: Any) -> Any:
    """The inverse of a square Dask array (or a stack)."""
    if not _use_lu(a):
        return _mapped(np.linalg.inv, a, "(n,n)->(n,n)", a.dtype)
    return _da().linalg.inv(_one_block(a))


def solve(a: Any, b: Any) -> Any:
    """``x`` with ``a @ x = b`` for square ``a`` and ``b`` of shape ``(n,)`` or ``(..., n, k)``."""
    if not (_use_lu(a) and b.ndim <= 2):
        signature = "(n,n),(n)->(n)" if b.ndim == 1 else "(n,n),(n,k)->(n,k)"
        return _da().apply_gufunc(np.linalg.solve, signature, a, b, allow_rechunk=True,
                                  output_dtypes=np.result_type(a.dtype, b.dtype))
    n = a.shape[-1]
    b = b.rechunk((n,) if b.ndim == 1 else (n, b.chunks[1]))  # (columns keep their chunks)
    return _da().linalg.solve(_one_block(a), b)
