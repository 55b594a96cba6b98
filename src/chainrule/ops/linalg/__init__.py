"""Linear algebra: ``matmul``, ``einsum`` and the ``numpy.linalg`` family, differentiable.

``matmul`` and ``einsum`` are the two contraction primitives; ``dot``,
``inner``, ``outer``, ``vdot``, ``tensordot`` and ``kron`` are composed from
them (and from reshapes), so they need no rules of their own.  The
decompositions (``eigh``, ``qr``, ``svd``, ``slogdet``) are primitives that
return a Python tuple of arrays; the public functions pick the entries with
the ``tuple_get`` primitive, whose reverse rule sends a tuple cotangent with
``None`` (a symbolic zero) in the other slots, so the decomposition's rule
receives every output's cotangent at once.

Every rule is written with chainrule's own ops (so it is differentiable
again) and addresses matrix axes from the end, so cotangents and tangents
may carry extra leading batch axes.  Stacks of matrices ``(..., n, n)`` are
supported as in NumPy.  ``cholesky`` and ``eigh`` use the symmetric part
of their input (for a symmetric input the values are NumPy's); ``eigh`` and
``svd`` assume distinct eigen/singular values.

Complex matrices (API section 11): a cotangent ``G`` acts on a tangent ``T``
as ``Re(sum(G * T))``.  The holomorphic rules (``matmul``, ``einsum``,
``inv``, ``solve``, ``det``) hold as written, with plain transposes.  The
decompositions are not holomorphic: their forward rules use conjugate
transposes, and their reverse rules are written in the conjugate convention
of the literature (``<X, Y> = Re tr(X^H Y)``, formulas with ``^H``) and
wrapped by :func:`_conjugate_convention`, which conjugates the cotangents
going in and coming out.  ``cholesky`` and ``eigh`` use the Hermitian part
``(A + A^H)/2``.

The family is split by job: ``products`` (matmul, einsum and their composites), ``solve``
(inverses, solves, determinants), ``decompositions`` (cholesky, eigh, qr, svd) and ``norms``
(norms, pinv, lstsq and the rest); ``_common`` holds what they share.
"""

from __future__ import annotations

import types

from ._common import (  # noqa: F401  (re-exported)
    EighResult,
    LinAlgError,
    QRResult,
    SlogdetResult,
    SVDResult,
    _mT,
    tuple_get,
)
from .decompositions import (  # noqa: F401
    cholesky,
    cholesky_p,
    eigh,
    eigh_p,
    eigvalsh,
    qr,
    qr_p,
    svd,
    svd_p,
)
from .norms import (  # noqa: F401
    lstsq,
    matrix_norm,
    matrix_power,
    matrix_transpose,
    multi_dot,
    norm,
    norm2_p,
    pinv,
    vector_norm,
)
from .products import (  # noqa: F401
    dot,
    einsum,
    einsum_p,
    inner,
    kron,
    matmul,
    matmul_p,
    outer,
    tensordot,
    vdot,
)
from .solve import det, det_p, inv, inv_p, slogdet, slogdet_p, solve, solve_p  # noqa: F401

__all__ = ["dot", "vdot", "inner", "outer", "matmul", "tensordot", "einsum", "kron"]

#: ``chainrule.numpy.linalg``: NumPy's ``numpy.linalg`` functions, differentiable.
linalg = types.SimpleNamespace(
    inv=inv, solve=solve, det=det, slogdet=slogdet, cholesky=cholesky, norm=norm, eigh=eigh,
    eigvalsh=eigvalsh, qr=qr, svd=svd, pinv=pinv, matrix_power=matrix_power, lstsq=lstsq,
    vector_norm=vector_norm, matrix_norm=matrix_norm, multi_dot=multi_dot, matmul=matmul,
    tensordot=tensordot, outer=outer, matrix_transpose=matrix_transpose,
    LinAlgError=LinAlgError,
)
