"""Inverses, linear solves and determinants: ``inv``, ``solve``, ``det``, ``slogdet``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.primitive import Box, Primitive, primitive
from .._broadcast import align, reshape
from ..elementwise import (
    imag,
    is_complex,
    multiply,
    negative,
    real,
)
from ..reductions import reduce_sum
from ._common import (
    SlogdetResult,
    _arr,
    _check_square,
    _expand_last,
    _mT,
    _nd,
    _raw,
    _reduce_to,
    tuple_get,
)
from .products import matmul_p

# --- inv, solve, det, slogdet --------------------------------------------------------------

inv_p = primitive(
    "inv", lambda xp, a: xp.linalg.inv(a), np.linalg.inv,
    vjp=(lambda g, out, a: negative(matmul_p(_mT(out), matmul_p(g, _mT(out)))),),
    jvp=(lambda t, out, a: negative(matmul_p(out, matmul_p(t, out))),),
)


def inv(a: Any) -> Any:
    """Inverse of a square matrix (or a stack of them); the gradient is ``-A^-T G A^-T``."""
    a = _arr(a)
    _check_square(a, "inv")
    return inv_p(a)


def _solve_vjp(g, out, a, b):
    # One solve serves both cotangents: gb = A^-T g, ga = -gb x^T.
    nb = _nd(g) - _nd(out)
    gb = solve_p(_mT(a), g)
    ga = negative(matmul_p(gb, _mT(out)))
    return _reduce_to(ga, nb, a.shape), _reduce_to(gb, nb, b.shape)


solve_p: Primitive = primitive(
    "solve", lambda xp, a, b: xp.linalg.solve(a, b), np.linalg.solve,
    vjp=_solve_vjp,
    jvp=(lambda t, out, a, b: negative(solve_p(a, matmul_p(align(t, a, out), out))),
         lambda t, out, a, b: solve_p(a, align(t, b, out))),
)


def solve(a: Any, b: Any) -> Any:
    """Solve ``a @ x = b`` for ``x`` (``numpy.linalg.solve``); ``b`` is a vector ``(n,)`` or a
    stack of matrices ``(..., n, k)``, and both arguments are differentiable."""
    a, b = _arr(a), _arr(b)
    _check_square(a, "solve")
    n = a.shape[-1]
    if _nd(b) == 1:
        if b.shape[0] != n:
            raise ValueError(f"solve: a has shape {tuple(a.shape)} but b has shape "
                             f"{tuple(b.shape)}; b needs {n} entries")
        r = solve_p(a, reshape(b, shape=(n, 1)))
        return reshape(r, shape=tuple(r.shape[:-1]))
    if _nd(b) == 0 or b.shape[-2] != n:
        raise ValueError(f"solve: a has shape {tuple(a.shape)} but b has shape "
                         f"{tuple(b.shape)}; b must be (n,) or (..., n, k) with n = {n}")
    return solve_p(a, b)


det_p = primitive(
    "det", lambda xp, a: xp.linalg.det(a), np.linalg.det,
    vjp=(lambda g, out, a: _expand_last(g * out, 2) * _mT(inv_p(a)),),
    jvp=(lambda t, out, a:
         multiply(out, reduce_sum(multiply(_mT(inv_p(a)), t), axes=(-2, -1), keepdims=False)),),
)


def det(a: Any) -> Any:
    """Determinant (``numpy.linalg.det``); the gradient is ``det(A) A^-T`` (A invertible)."""
    a = _arr(a)
    _check_square(a, "det")
    return det_p(a)


def _slogdet_vjp(g, out, a):
    gs, gl = g
    if not is_complex(a):  # the sign is piecewise constant
        return None if gl is None else _expand_last(gl, 2) * _mT(inv_p(a))
    # With tau = tr(A^-1 dA): d logabsdet = Re(tau), d sign = sign * i Im(tau); the cotangent
    # c of tau then multiplies A^-T (tau is holomorphic in A).
    c = None if gl is None else real(gl) + 0j
    if gs is not None:
        sign = tuple_get(out, index=0)
        term = imag(gs * sign) * 1j
        c = term if c is None else c + term
    if c is None:
        return None
    return _expand_last(c, 2) * _mT(inv_p(a))


def _slogdet_jvp(t, out, a):
    tau = reduce_sum(multiply(_mT(inv_p(a)), t), axes=(-2, -1), keepdims=False)
    if not is_complex(a):
        return None, tau
    sign = tuple_get(out, index=0)
    return sign * (imag(tau) * 1j), real(tau)


slogdet_p = primitive(
    "slogdet", lambda xp, a: tuple(xp.linalg.slogdet(a)), lambda a: tuple(np.linalg.slogdet(a)),
    vjp=(_slogdet_vjp,),
    jvp=(_slogdet_jvp,),
)


def slogdet(a: Any) -> SlogdetResult:
    """``(sign, logabsdet)`` of the determinant; ``logabsdet`` is differentiable
    (gradient ``A^-T``); ``sign`` is a plain array for real matrices (it is piecewise
    constant) and differentiable for complex ones (``det / |det|``)."""
    a = _arr(a)
    _check_square(a, "slogdet")
    res = slogdet_p(a)
    if not isinstance(res, Box):
        return SlogdetResult(*res)
    sign = tuple_get(res, index=0) if is_complex(a) else _raw(res)[0]
    return SlogdetResult(sign, tuple_get(res, index=1))
