"""Batching rules of the primitives declared above this layer: ``chainrule.scipy`` (an
optional dependency) and ``chainrule.optimize``.

The rules are registered by primitive *name* and find the primitive in the
registry when they first run, so this module imports neither SciPy nor the
modules that declare those primitives.  Operations that hold a function
(``odeint``, ``fixed_point``) batch it with :func:`~chainrule.batching.vmap`,
so each stays ONE primitive call for the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import numpy as cnp
from ..core.primitive import registry
from ..ops._broadcast import broadcast_to, reshape
from ..ops.elementwise import is_complex
from ..ops.indexing import getitem
from ..ops.linalg import _mT
from ..ops.shape import moveaxis
from .api import vmap
from .rules import align, elementwise, leading, move_to_front
from .tracer import BATCHING_RULES, BatchedValueError, _shape_of

__all__: list[str] = []


def _by_name(name: str, maker: Callable[[Any], Any]) -> None:
    """Register ``maker(prim)`` for the primitive called ``name``, made when first used."""
    made: list = []

    def rule(size, vals, dims, /, **params):
        if not made:
            made.append(maker(registry[name]))
        return made[0](size, vals, dims, **params)

    BATCHING_RULES[name] = rule


# --- scipy.special and scipy.stats: elementwise -------------------------------------------------

SPECIAL = (
    "polygamma digamma gammaln gamma rgamma gammasgn beta betaln betainc gammainc gammaincc "
    "erfc erfinv erfcinv ndtr log_ndtr expit logit xlogy xlog1py entr jn yn iv ive j0 j1 y0 y1 "
    "i0 i1 stats.t.cdf stats.t.logcdf"
).split()

for _name in SPECIAL:
    _by_name("scipy." + _name, elementwise)

# Stacks of matrices along the leading axes (the implementations broadcast them).
for _name in ("scipy.linalg.expm", "scipy.linalg.sqrtm", "scipy.linalg.solve_sylvester"):
    _by_name(_name, leading)


# --- triangular and banded solves: one matrix per example is a batched dense solve ------------

def _solve_stacked(size: int, a: Any, b: Any, db: int | None) -> Any:
    """``solve(a[k], b[k])`` for every example: ``a`` batched ``(B, n, n)``, ``b`` the
    right-hand sides ``(..., n, k)`` (per example possibly with leading axes of its own)."""
    b = move_to_front(b, db, size)
    sb = _shape_of(b)
    n = _shape_of(a)[-1]
    a = broadcast_to(align(a, 0, len(sb) - 1), shape=sb[:-2] + (n, n))
    return registry["solve"](a, b)


def _trsm_rule(size, vals, dims, /, trans, lower, unit_diagonal):
    (a, b), (da, db) = vals, dims
    if da is None:  # one matrix for the whole batch: the right-hand sides are leading axes
        return registry["scipy.linalg.solve_triangular"](
            a, move_to_front(b, db, size), trans=trans, lower=lower,
            unit_diagonal=unit_diagonal), 0
    n = _shape_of(a)[-1]
    dtype = getattr(a, "dtype", np.float64)
    # Only the named triangle is read (the rules mask the same way); a unit diagonal is ones.
    keep = np.tri(n, n, -1 if unit_diagonal else 0, dtype=dtype)
    tri = a * (keep if lower else keep.T)
    if unit_diagonal:
        tri = tri + np.eye(n, dtype=dtype)
    if trans:
        tri = _mT(tri)
    return _solve_stacked(size, tri, b, db), 0


def _banded_rule(size, vals, dims, /, lo, up):
    (ab, b), (dab, db) = vals, dims
    if dab is None:
        return registry["scipy.linalg.solve_banded"](
            ab, move_to_front(b, db, size), lo=lo, up=up), 0
    # band storage to the dense matrix: a[i, j] = ab[up + i - j, j] inside the band
    n = _shape_of(ab)[-1]
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    rows = up + i - j
    inside = (rows >= 0) & (rows <= lo + up)
    dense = getitem(ab, key=(Ellipsis, np.where(inside, rows, 0), j))
    dense = dense * inside.astype(getattr(ab, "dtype", np.float64))
    return _solve_stacked(size, dense, b, db), 0


for _name, _r in (("scipy.linalg.solve_triangular", _trsm_rule),
                  ("scipy.linalg.solve_banded", _banded_rule)):
    BATCHING_RULES[_name] = _r


# --- scipy.signal.convolve (full mode) -----------------------------------------------------------

def _lead_ones(v: Any, n: int) -> Any:
    return reshape(v, shape=(1,) * n + _shape_of(v)) if n > 0 else v


def _convolve_rule(size, vals, dims, /):
    full = registry["scipy.signal.convolve"]
    (a, b), (da, db) = vals, dims
    if da is None or db is None:
        # One operand for the whole batch: a length-1 axis in front of it convolves along the
        # batch axis as a plain product, example by example.
        ra, rb = len(_shape_of(a)), len(_shape_of(b))
        return full(_lead_ones(a, rb - ra), _lead_ones(b, ra - rb)), 0
    # Each example its own pair: convolution theorem over the example axes, zero-padded to
    # the full length (exact linear convolution; no loop over the batch).
    sa, sb = _shape_of(a)[1:], _shape_of(b)[1:]
    axes = tuple(range(-len(sa), 0))
    s = tuple(p + q - 1 for p, q in zip(sa, sb))
    if not axes:
        return a * b, 0
    if is_complex(a) or is_complex(b):
        prod = cnp.fft.fftn(a, s=s, axes=axes) * cnp.fft.fftn(b, s=s, axes=axes)
        return cnp.fft.ifftn(prod, s=s, axes=axes), 0
    prod = cnp.fft.rfftn(a, s=s, axes=axes) * cnp.fft.rfftn(b, s=s, axes=axes)
    return cnp.fft.irfftn(prod, s=s, axes=axes), 0


BATCHING_RULES["scipy.signal.convolve"] = _convolve_rule


# --- operations holding a function: the function is vmapped, the operation runs once ---------

def _odeint_rule(size, vals, dims, /, func, rtol, atol, options):
    if dims[1] is not None:
        raise NotImplementedError(
            "vmap: odeint with batched time points is not supported (the solver needs one "
            "time grid); map over y0 and the arguments, or call odeint once per grid")
    y0 = move_to_front(vals[0], dims[0], size)
    arg_dims = tuple(dims[2:])
    # the state of the joint system is the whole batch; func sees one example at a time
    batched = vmap(func, in_axes=(0, None) + arg_dims)
    out = registry["scipy.integrate.odeint"](y0, vals[1], *vals[2:], func=batched, rtol=rtol,
                                             atol=atol, options=options)
    return moveaxis(out, 1, 0), 0  # (T, B, ...) -> (B, T, ...)


def _fixed_point_rule(size, vals, dims, /, f, distance, tol):
    (a, x0), (da, dx) = vals, dims
    x0 = move_to_front(x0, dx, size)
    batched_f = vmap(f, in_axes=(da, 0))

    def batched_distance(x: Any, y: Any) -> Any:
        # the batch has converged when every example has (its distance is below tol)
        try:
            return np.max(np.asarray(vmap(distance)(x, y)))
        except BatchedValueError:
            # a distance that reads plain numbers (float(...)): measured on the whole batch,
            # which for max-, sum- or norm-like distances bounds every example's
            return distance(x, y)

    return registry["fixed_point"](a, x0, f=batched_f, distance=batched_distance, tol=tol), 0


BATCHING_RULES["scipy.integrate.odeint"] = _odeint_rule
BATCHING_RULES["fixed_point"] = _fixed_point_rule
