"""Sparse Jacobians and Hessians: structural sparsity, colourings, SciPy sparse results.

For ``f`` taking one array ``x`` (any shape, flattened in C order), results
are ``scipy.sparse`` CSR arrays; nothing ever forms a dense
``out.size x x.size`` array.  Needs SciPy (the ``optimize`` extra).

>>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
>>> f = lambda x: x[1:] ** 2 - x[:-1]
>>> J = cr.sparse.jacobian(f, np.arange(4.0))
>>> J.toarray()
array([[-1.,  2.,  0.,  0.],
       [ 0., -1.,  4.,  0.],
       [ 0.,  0., -1.,  6.]])
"""

from . import block_rules  # noqa: F401  (the checkpoint rule traces through detect)
from .coloring import column_coloring, row_coloring, symmetric_coloring
from .detect import hessian_sparsity, jacobian_sparsity
from .evaluate import SparseHessian, SparseJacobian, hessian, hessian_fn, jacobian, jacobian_fn

__all__ = [
    "jacobian_sparsity", "hessian_sparsity", "jacobian", "hessian", "jacobian_fn",
    "hessian_fn", "SparseJacobian", "SparseHessian", "column_coloring", "row_coloring",
    "symmetric_coloring",
]
