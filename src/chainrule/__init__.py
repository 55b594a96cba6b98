"""chainrule: automatic differentiation with NumPy semantics.

>>> import chainrule as cr
>>> x = cr.tensor(3.0, requires_grad=True)
>>> y = x * x * x
>>> y.backward()
>>> float(x.grad)
27.0
"""

from . import numpy  # noqa: F401  (loads every op family)
from .core.trace import enable_grad, is_grad_enabled, no_grad
from .function import Function, FunctionCtx
from .tape import GradientTape
from .tensor import Tensor, _install_methods, tensor

_install_methods()

# Everything below builds on the tensor methods installed above.
from . import data, datasets, graph, nn, optim, optimize, pytree  # noqa: E402
from .batching import vmap  # noqa: E402
from .checks import check_grads  # noqa: E402
from .compile import compile  # noqa: E402
from .remat import checkpoint, linearize, remat  # noqa: E402
from .transforms import (  # noqa: E402
    grad,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    value_and_grad,
    vjp,
)

__version__ = "0.1.0"

__all__ = [
    "Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "Function",
    "FunctionCtx", "GradientTape", "grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev",
    "jacobian", "hessian", "hvp", "check_grads", "compile", "pytree", "graph", "nn", "optim",
    "optimize", "data", "datasets", "vmap", "linearize", "checkpoint", "remat",
]
