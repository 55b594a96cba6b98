"""Boolean sparse matrices that say which input elements each value element depends on.

A *pattern* of a value with ``m`` elements (flattened in C order) is a
boolean CSR matrix of shape ``(m, n)``: row ``k`` holds the input elements
that element ``k`` depends on.  ``None`` stands for "depends on nothing".
Every operation here is vectorised (SciPy's sparse kernels, NumPy index
arithmetic); none loops in Python over elements.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._scipy import sp

__all__ = ["empty", "identity", "gather", "union", "apply", "labels_matrix", "PerBatch",
           "size_of", "outer_union"]


def size_of(shape: tuple) -> int:
    return math.prod(int(s) for s in shape)


def empty(rows: int, n: int) -> Any:
    return sp.csr_matrix((rows, n), dtype=bool)


def identity(n: int) -> Any:
    return sp.identity(n, dtype=bool, format="csr")


def gather(P: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of ``P`` (a flat index array; ``-1`` gives an empty row)."""
    idx = np.asarray(idx, dtype=np.int64).ravel()
    if idx.size == P.shape[0] and idx.size and idx[0] == 0 and np.array_equal(
            idx, np.arange(idx.size)):
        return P
    if idx.size and idx.min() < 0:
        P = sp.vstack([P, empty(1, P.shape[1])], format="csr")
        idx = np.where(idx < 0, P.shape[0] - 1, idx)
    return _rows(P, idx)


def _rows(P: Any, idx: np.ndarray) -> Any:
    """CSR row selection through index arithmetic on ``indptr`` (no per-row Python work)."""
    indptr = P.indptr
    starts = indptr[idx]
    counts = indptr[idx + 1] - starts
    new_ptr = np.zeros(idx.size + 1, dtype=np.int64)
    np.cumsum(counts, out=new_ptr[1:])
    total = int(new_ptr[-1])
    # position k of the result reads P.indices[starts[row] + (k - new_ptr[row])]
    offsets = np.arange(total, dtype=np.int64) - np.repeat(new_ptr[:-1] - starts, counts)
    indices = P.indices[offsets]
    data = np.ones(total, dtype=bool)
    return sp.csr_matrix((data, indices, new_ptr), shape=(idx.size, P.shape[1]))


def union(*patterns: Any) -> Any:
    """Elementwise OR of patterns of the same shape (``None`` entries are skipped)."""
    present = [p for p in patterns if p is not None]
    if not present:
        return None
    out = present[0]
    for p in present[1:]:
        out = out + p
    return _clean(out)


def _clean(P: Any) -> Any:
    P = P.tocsr()
    if P.dtype != bool:
        P = P.astype(bool)
    P.eliminate_zeros()
    return P


def apply(L: Any, P: Any) -> Any:
    """``L @ P`` for a local dependency matrix ``L`` (out elements x input elements)."""
    if P is None:
        return None
    return _clean(L @ P)


def labels_matrix(labels: np.ndarray, out_size: int) -> Any:
    """The local dependency matrix that sends input element ``j`` to output ``labels[j]``.

    ``labels`` has one entry per input element (``-1``: it reaches no output).
    """
    labels = np.asarray(labels, dtype=np.int64).ravel()
    cols = np.arange(labels.size)
    keep = labels >= 0
    rows, cols = labels[keep], cols[keep]
    data = np.ones(rows.size, dtype=bool)
    L = sp.csr_matrix((data, (rows, cols)), shape=(out_size, labels.size))
    L.sum_duplicates()
    return L


def outer_union(A: Any, B: Any) -> Any:
    """``A.T @ B`` as a pattern: pairs (a, b) with a in row k of A and b in row k of B."""
    return _clean(A.T.tocsr() @ B)


class PerBatch:
    """The pattern of a tuple-valued result (``eigh``, ``qr``...): every element of batch
    entry ``b`` of every tuple member depends on row ``b`` of ``P``."""

    __slots__ = ("P", "batch_shape")

    def __init__(self, P: Any, batch_shape: tuple) -> None:
        self.P = P
        self.batch_shape = tuple(batch_shape)

    def expand(self, out_shape: tuple) -> Any:
        nb = len(self.batch_shape)
        labels = np.arange(size_of(self.batch_shape)).reshape(self.batch_shape)
        labels = np.broadcast_to(labels.reshape(self.batch_shape + (1,) * (len(out_shape) - nb)),
                                 out_shape)
        return gather(self.P, labels)
