"""Compressed evaluation: one batched JVP / VJP / HVP for all colours, decompressed to CSR.

The seed matrix has one row per colour (the sum of the basis vectors of
that colour's columns or rows).  It goes through the transforms' batched
tangents (a leading batch axis) in ONE forward or reverse pass, and each
nonzero of the pattern is read from the compressed product at
``(its colour, its row)`` straight into the ``data`` array of a CSR result
whose ``indices``/``indptr`` are the pattern's.

``J(x)`` replays that pass from a recording (:mod:`._replay`) while nothing
that ``f`` reads besides ``x`` has changed -- checked on every call -- and
runs it eagerly otherwise, so a result is never stale.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from ..compile import compile as compile_function
from ..core.primitive import Box
from ..graph.environment import Environment
from ..pytree import tree_flatten
from ..transforms import _diff_input, _forward, _ReverseTrace, grad
from . import coloring as cl
from ._replay import Replay
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
    """What every call shares: the pattern's CSR structure, where each entry is read in the
    compressed product, the seed matrix, and the (optionally compiled) product itself."""

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
        self._flat = np.zeros(0, dtype=np.int64)
        self._seed = np.zeros(0)
        self._product: Callable = lambda x, seed: None
        self.replay: Replay | None = None
        sp = require_scipy(f"cr.sparse.{fname}")
        # every result is a copy of this one with fresh arrays (no per-call validation)
        self._template = sp.csr_array((np.zeros(self.indices.size, dtype=x.dtype),
                                       self.indices, self.indptr), shape=P.shape)

    def _setup(self, coloring: np.ndarray, read_color: np.ndarray, read_at: np.ndarray,
               width: int, seed_shape: tuple, product: Callable, compiled: bool,
               env: Environment | None) -> None:
        """Entry ``e`` of the result is ``B[read_color[e], read_at[e]]`` in the compressed
        product ``B`` (``colors x width``) that ``product(x, seed)`` returns.  ``env``: the
        snapshot of ``f``'s environment taken before the pattern was found."""
        self.colors = n_colors = int(coloring.max()) + 1 if coloring.size else 0
        self.coloring = coloring
        self._flat = read_color.astype(np.int64) * width + read_at
        self._seed = _seed(coloring, n_colors, seed_shape, self.dtype)
        self._seed.flags.writeable = False  # shared by every call
        if compiled:
            self._product = compile_function(product)
        else:
            if env is not None and not env.unchanged():  # f changes what it reads itself
                env = None
            self.replay = Replay(self.f, product, env, self._check_pattern)
            self._product = self.replay

    def _detect(self, x: np.ndarray) -> Any:
        raise NotImplementedError

    def _check_pattern(self, x: np.ndarray) -> None:
        """Something ``f`` reads besides ``x`` changed: its pattern must still lie within the
        one this function was built for (fewer nonzeros are fine: they come out as zeros)."""
        P = self._detect(x)
        if P.shape == self.sparsity.shape:
            outside = P.astype(np.int8) - P.multiply(self.sparsity).astype(np.int8)
            outside.eliminate_zeros()
            if outside.nnz == 0:
                return
        raise ValueError(
            f"{self.fname}: something f reads besides x changed, and f now has nonzeros "
            f"outside the sparsity pattern found when this {self.fname} function was built; "
            f"build a new one (cr.sparse.{self.fname}_fn(f, x))"
        )

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

    def __call__(self, x: Any) -> Any:
        x = self._point(x)
        B = self._product(x, self._seed) if self.colors else None
        if B is None:
            data = np.zeros(self._flat.size, dtype=x.dtype)
        else:
            data = np.asarray(_raw(B)).reshape(-1).take(self._flat)
        # fresh arrays: results never alias each other (in-place edits such as
        # eliminate_zeros() on one must not reach the next)
        J = copy.copy(self._template)
        J.data, J.indices, J.indptr = data, self.indices.copy(), self.indptr.copy()
        return J


def _jvp_product(fname: str, fun: Callable, x: np.ndarray) -> Callable:
    """``(x, seed) -> `` the output tangent of ``fun`` along the batch of tangents ``seed``
    (``None`` when the output does not depend on ``x``)."""
    _, in_def = tree_flatten(x)

    def product(x: Any, seed: Any) -> Any:
        _, touts, _, _ = _forward(fname, fun, in_def, [x], [seed])
        return touts[0]

    return product


def _vjp_product(fname: str, fun: Callable) -> Callable:
    """``(x, seed) -> `` the input cotangent of ``fun`` for the batch of cotangents ``seed``."""

    def product(x: Any, seed: Any) -> Any:
        tr = _ReverseTrace(fname, fun, x)
        return tr.pull([seed], retain=False)[0] if tr.connected(0) else None

    return product


class SparseJacobian(_Compiled):
    """``J(x)``: the sparse Jacobian at new points, reusing the pattern and colouring.

    Attributes: ``sparsity`` (boolean CSR pattern), ``colors`` (passes per
    call), ``mode`` (``"fwd"`` or ``"rev"``), ``coloring`` (the colour of
    each column for ``fwd``, of each row for ``rev``), ``replay`` (the
    recorded pass: ``replay.enabled``, ``replay.replays``; ``None`` with
    ``compile=True``).  Each call returns a new matrix with its own arrays.
    """

    def __init__(self, f: Callable, x: Any, mode: str = "auto", compile: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"jacobian: mode must be one of {MODES}, got {mode!r}")
        require_scipy("cr.sparse.jacobian")
        x = check_input("jacobian", x)
        env = None if compile else Environment.of(f)  # (before f runs)
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
        m, n = pattern.shape
        out_shape = _output_shape(f, x) if mode == "rev" else ()
        # entry (i, j) is at (colour of column j, row i) or (colour of row i, column j)
        if mode == "fwd":
            self._setup(coloring, coloring[self.cols], self.rows, m, self.shape,
                        _jvp_product("jacobian", f, x), compile, env)
        else:
            self._setup(coloring, coloring[self.rows], self.cols, n, out_shape,
                        _vjp_product("jacobian", f), compile, env)

    def _detect(self, x: np.ndarray) -> Any:
        return jacobian_sparsity(self.f, x)

    def __repr__(self) -> str:
        m, n = self.sparsity.shape
        return (f"<chainrule sparse Jacobian {m}x{n}, {self.sparsity.nnz} nonzeros, "
                f"{self.colors} {self.mode} passes>")


def _output_shape(f: Callable, x: np.ndarray) -> tuple:
    return tuple(np.shape(_raw(f(x))))


class SparseHessian(_Compiled):
    """``H(x)``: the sparse Hessian of scalar ``f`` at new points (symmetric CSR), reusing the
    pattern and the symmetric colouring; one batched Hessian-vector product per call
    (forward over reverse).

    Attributes: ``sparsity``, ``colors``, ``mode`` (``"fwd"``), ``coloring``, ``replay``.
    """

    def __init__(self, f: Callable, x: Any, compile: bool = False) -> None:
        require_scipy("cr.sparse.hessian")
        x = check_input("hessian", x)
        env = None if compile else Environment.of(f)  # (before f runs)
        pattern = hessian_sparsity(f, x)
        super().__init__("hessian", f, x, pattern)
        self.mode = "fwd"
        coloring = cl.symmetric_coloring(pattern)
        # an entry is read directly (column j alone of its colour in row i) or by symmetry
        direct = cl._direct_mask(pattern, coloring) if coloring.size else np.zeros(0, bool)
        if coloring.size:
            color = np.where(direct, coloring[self.cols], coloring[self.rows])
        else:
            color = self.rows
        at = np.where(direct, self.rows, self.cols)
        self._setup(coloring, color, at, pattern.shape[0], self.shape,
                    _jvp_product("hessian", grad(f), x), compile, env)

    def _detect(self, x: np.ndarray) -> Any:
        return hessian_sparsity(self.f, x)

    def __repr__(self) -> str:
        n = self.sparsity.shape[0]
        return (f"<chainrule sparse Hessian {n}x{n}, {self.sparsity.nnz} nonzeros, "
                f"{self.colors} passes>")


def jacobian_fn(f: Callable, x: Any, mode: str = "auto", *, compile: bool = False
                ) -> SparseJacobian:
    """A callable ``J(x)`` computing the sparse Jacobian of ``f`` at points shaped like ``x``.

    The pattern and colouring are found once, here; each call costs one
    batched JVP (``mode="fwd"``, one tangent per column colour) or one
    batched VJP (``"rev"``, one cotangent per row colour); ``"auto"`` takes
    the side with fewer colours.  The second call records that pass and
    later calls replay the recording (no Python dispatch per operation, no
    primal values the tangents do not need) as long as nothing ``f`` reads
    besides ``x`` changed: its code, closure, defaults, the globals it names
    (through the Python functions it calls) and the contents of the arrays
    and tensors among them are checked on every call, and any change runs
    the pass eagerly (re-recording later).  Functions reading what cannot be
    checked (attributes of objects, random generators...) always run
    eagerly.  ``compile=True`` runs the pass through ``cr.compile`` instead
    (with numba fusion when installed): as with ``cr.compile``, values that
    ``f`` closes over are then frozen at their values of the first call.
    After such a change the pattern is found again: nonzeros outside the
    one found here raise ``ValueError`` (build a new ``jacobian_fn``); for
    functions that cannot be watched it is assumed to hold.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> J = cr.sparse.jacobian_fn(lambda x: cnp.sin(x[1:] - x[:-1]), np.zeros(5))
    >>> J.colors, J.mode
    (2, 'fwd')
    >>> J(np.zeros(5)).toarray()[0]
    array([-1.,  1.,  0.,  0.,  0.])
    """
    return SparseJacobian(f, x, mode, compile)


def hessian_fn(f: Callable, x: Any, *, compile: bool = False) -> SparseHessian:
    """A callable ``H(x)`` computing the sparse Hessian of scalar ``f`` at points like ``x``.

    One batched Hessian-vector product (forward over reverse) per call, one
    tangent per colour of a symmetric colouring, replayed from a recording
    while ``f``'s environment is unchanged; ``compile`` as in
    :func:`jacobian_fn`.

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
    return SparseHessian(f, x, compile)


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
