"""Compressed evaluation: one batched JVP / VJP / HVP for all colours, decompressed to CSR.

The seed matrix has one row per colour (the sum of the basis vectors of
that colour's columns or rows).  It goes through the transforms' batched
tangents (a leading batch axis) in ONE forward or reverse pass, and each
nonzero of the pattern is read from the compressed product at
``(its colour, its row)`` straight into the ``data`` array of a CSR result
whose ``indices``/``indptr`` are the pattern's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.primitive import Box
from ..pytree import tree_flatten
from ..transforms import _diff_input, _forward, _ReverseTrace, grad
from . import coloring as cl
from ._scipy import require_scipy
from .detect import check_input, hessian_sparsity, jacobian_sparsity

__all__ = ["SparseJacobian", "SparseHessian", "jacobian", "hessian", "jacobian_fn",
           "hessian_fn"]

MODES = ("auto", "fwd", "rev")


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _seed(colors: np.ndarray, k: int, shape: tuple, dtype: Any) -> np.ndarray:
    """``k`` rows: row ``c`` is the indicator of the elements of colour ``c``."""
    size = colors.size
    S = np.zeros((k, size), dtype=dtype)
    S[colors, np.arange(size)] = 1
    return S.reshape((k,) + tuple(shape))


class _Compiled:
    """What every call shares: the pattern's CSR structure and each entry's row/column."""

    def __init__(self, fname: str, f: Callable, x: np.ndarray, pattern: Any) -> None:
        self.fname = fname
        self.f = f
        self.shape = tuple(x.shape)
        self.dtype = x.dtype
        self.sparsity = pattern
        P = pattern.tocsr()
        P.sort_indices()
        self.indptr = P.indptr.copy()
        self.indices = P.indices.copy()
        self.rows = np.repeat(np.arange(P.shape[0]), np.diff(P.indptr))
        self.cols = self.indices.astype(np.int64)
        self._seeds: dict[tuple, np.ndarray] = {}

    def _seed(self, colors: np.ndarray, k: int, shape: tuple, dtype: Any) -> np.ndarray:
        """The seed matrix, made once (read-only: the rules never write into tangents)."""
        key = (shape, np.dtype(dtype))
        seed = self._seeds.get(key)
        if seed is None:
            seed = self._seeds[key] = _seed(colors, k, shape, dtype)
            seed.flags.writeable = False
        return seed

    def _point(self, x: Any) -> np.ndarray:
        x = check_input(self.fname, x)
        if tuple(x.shape) != self.shape:
            raise ValueError(
                f"{self.fname}: x has shape {tuple(x.shape)}, but this function was built for "
                f"shape {self.shape}; build a new one for other shapes"
            )
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        return _diff_input(x, self.fname, "x")

    def _csr(self, data: np.ndarray) -> Any:
        sp = require_scipy(f"cr.sparse.{self.fname}")
        return sp.csr_array((data, self.indices, self.indptr), shape=self.sparsity.shape)

    def _push(self, fun: Callable, x: np.ndarray, colors: np.ndarray, k: int) -> np.ndarray:
        """``(k, out.size)``: the JVPs of ``fun`` along the ``k`` colour seeds."""
        _, in_def = tree_flatten(x)
        seed = self._seed(colors, k, self.shape, x.dtype)
        values, touts, _, _ = _forward(self.fname, fun, in_def, [x], [seed])
        m = int(np.asarray(_raw(values[0])).size)
        if touts[0] is None:
            return np.zeros((k, m), dtype=x.dtype)
        return np.asarray(_raw(touts[0])).reshape(k, m)


class SparseJacobian(_Compiled):
    """``J(x)``: the sparse Jacobian at new points, reusing the pattern and colouring.

    Attributes: ``sparsity`` (boolean CSR pattern), ``colors`` (passes per
    call), ``mode`` (``"fwd"`` or ``"rev"``), ``coloring`` (the colour of
    each column for ``fwd``, of each row for ``rev``).
    """

    def __init__(self, f: Callable, x: Any, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"jacobian: mode must be one of {MODES}, got {mode!r}")
        require_scipy("cr.sparse.jacobian")
        x = check_input("jacobian", x)
        pattern = jacobian_sparsity(f, x)
        super().__init__("jacobian", f, x, pattern)
        if mode == "fwd":
            coloring = cl.column_coloring(pattern)
        elif mode == "rev":
            coloring = cl.row_coloring(pattern)
        else:
            fwd = cl.column_coloring(pattern)
            rev = cl.row_coloring(pattern)
            mode, coloring = ("fwd", fwd) if cl.n_colors(fwd) <= cl.n_colors(rev) else (
                "rev", rev)
        self.mode = mode
        self.coloring = coloring
        self.colors = cl.n_colors(coloring)
        # each entry (i, j) is read at (colour of j, row i) or (colour of i, column j)
        if mode == "fwd":
            self._read = (coloring[self.cols], self.rows)
        else:
            self._read = (coloring[self.rows], self.cols)

    def __repr__(self) -> str:
        m, n = self.sparsity.shape
        return (f"<chainrule sparse Jacobian {m}x{n}, {self.sparsity.nnz} nonzeros, "
                f"{self.colors} {self.mode} passes>")

    def __call__(self, x: Any) -> Any:
        x = self._point(x)
        k = self.colors
        if k == 0:
            return self._csr(np.zeros(0, dtype=x.dtype))
        if self.mode == "fwd":
            B = self._push(self.f, x, self.coloring, k)
        else:
            tr = _ReverseTrace(self.fname, self.f, x)
            out_shape = tuple(np.shape(_raw(tr.out_values[0])))
            ct = self._seed(self.coloring, k, out_shape, x.dtype)
            g = tr.pull([ct], retain=False)[0] if tr.connected(0) else None
            B = (np.zeros((k, x.size), dtype=x.dtype) if g is None
                 else np.asarray(_raw(g)).reshape(k, x.size))
        return self._csr(B[self._read])


class SparseHessian(_Compiled):
    """``H(x)``: the sparse Hessian of scalar ``f`` at new points (symmetric CSR), reusing the
    pattern and the symmetric colouring; one batched Hessian-vector product per call.

    Attributes: ``sparsity``, ``colors``, ``mode`` (``"fwd"``: forward over reverse),
    ``coloring``.
    """

    def __init__(self, f: Callable, x: Any) -> None:
        require_scipy("cr.sparse.hessian")
        x = check_input("hessian", x)
        pattern = hessian_sparsity(f, x)
        super().__init__("hessian", f, x, pattern)
        self.mode = "fwd"
        self.coloring = cl.symmetric_coloring(pattern)
        self.colors = cl.n_colors(self.coloring)
        direct = cl._direct_mask(pattern, self.coloring) if self.colors else np.zeros(0, bool)
        c = self.coloring
        color = np.where(direct, c[self.cols], c[self.rows]) if self.colors else self.rows
        where = np.where(direct, self.rows, self.cols)
        self._read = (color, where)
        self._grad = grad(f)

    def __repr__(self) -> str:
        n = self.sparsity.shape[0]
        return (f"<chainrule sparse Hessian {n}x{n}, {self.sparsity.nnz} nonzeros, "
                f"{self.colors} passes>")

    def __call__(self, x: Any) -> Any:
        x = self._point(x)
        if self.colors == 0:
            return self._csr(np.zeros(0, dtype=x.dtype))
        B = self._push(self._grad, x, self.coloring, self.colors)
        return self._csr(B[self._read])


def jacobian_fn(f: Callable, x: Any, mode: str = "auto") -> SparseJacobian:
    """A callable ``J(x)`` computing the sparse Jacobian of ``f`` at points shaped like ``x``.

    The pattern and colouring are found once, here; each call costs one
    batched JVP (``mode="fwd"``, one tangent per column colour) or one
    batched VJP (``"rev"``, one cotangent per row colour); ``"auto"`` takes
    the side with fewer colours.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> J = cr.sparse.jacobian_fn(lambda x: cnp.sin(x[1:] - x[:-1]), np.zeros(5))
    >>> J.colors, J.mode
    (2, 'fwd')
    >>> J(np.zeros(5)).toarray()[0]
    array([-1.,  1.,  0.,  0.,  0.])
    """
    return SparseJacobian(f, x, mode)


def hessian_fn(f: Callable, x: Any) -> SparseHessian:
    """A callable ``H(x)`` computing the sparse Hessian of scalar ``f`` at points like ``x``.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> H = cr.sparse.hessian_fn(lambda x: cnp.sum(x[1:] * x[:-1]), np.ones(4))
    >>> H.colors
    2
    >>> H(np.ones(4)).toarray()
    array([[0., 1., 0., 0.],
           [1., 0., 1., 0.],
           [0., 1., 0., 1.],
           [0., 0., 1., 0.]])
    """
    return SparseHessian(f, x)


def jacobian(f: Callable, x: Any, mode: str = "auto") -> Any:
    """The sparse Jacobian of ``f`` at ``x`` as a ``scipy.sparse.csr_array``
    (``(out.size, x.size)``); see :func:`jacobian_fn`.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> cr.sparse.jacobian(lambda x: x ** 2, np.array([1.0, 2.0])).toarray()
    array([[2., 0.],
           [0., 4.]])
    """
    return SparseJacobian(f, x, mode)(x)


def hessian(f: Callable, x: Any) -> Any:
    """The sparse Hessian of scalar ``f`` at ``x`` (symmetric ``scipy.sparse.csr_array``).

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> cr.sparse.hessian(lambda x: cnp.sum(x ** 3), np.array([1.0, 2.0])).toarray()
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return SparseHessian(f, x)(x)
