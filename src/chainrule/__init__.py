"""chainrule: automatic differentiation with NumPy semantics.

>>> import chainrule as cr
>>> x = cr.tensor(3.0, requires_grad=True)
>>> y = x * x * x
>>> y.backward()
>>> float(x.grad)
27.0
"""

from . import numpy  # noqa: F401  (loads every op family)
from ._version import __version__
from .anomaly import detect_anomaly, is_anomaly_enabled
from .core.trace import enable_grad, is_grad_enabled, no_grad
from .dispatch import install as _install_dispatch
from .function import Function, FunctionCtx
from .tape import GradientTape
from .tensor import Tensor, _install_methods, from_numpy, tensor
from .tensor_aliases import install as _install_aliases

_install_methods()
_install_aliases()
_install_dispatch()

# Everything below builds on the tensor methods installed above.
from . import data, datasets, graph, nn, optim, optimize, pytree, sparse  # noqa: E402
from .batching import vmap  # noqa: E402
from .checks import check_grads  # noqa: E402
from .compile import compile, jit  # noqa: E402
from .control_flow import cond, fori_loop, scan, while_loop  # noqa: E402
from .remat import checkpoint, linearize, remat  # noqa: E402
from .transforms import (  # noqa: E402
    elementwise_grad,
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

stop_gradient = numpy.stop_gradient  # (the graph-aware version, once graph is loaded)


def __getattr__(name: str):
    # chainrule.scipy needs the optional SciPy: loaded on first use of cr.scipy
    if name == "scipy":
        import importlib

        return importlib.import_module(".scipy", __name__)
    raise AttributeError(f"module 'chainrule' has no attribute {name!r}")

__all__ = [
    "Tensor", "tensor", "from_numpy", "stop_gradient", "no_grad", "enable_grad",
    "is_grad_enabled", "detect_anomaly", "is_anomaly_enabled", "Function", "FunctionCtx",
    "GradientTape", "grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev",
    "jacobian", "hessian", "hvp", "check_grads", "compile", "jit", "pytree", "graph", "nn", "optim",
    "optimize", "data", "datasets", "elementwise_grad", "sparse", "vmap", "linearize",
    "checkpoint", "remat", "cond", "while_loop", "fori_loop", "scan", "__version__",
]
