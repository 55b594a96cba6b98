"""``chainrule.nn``: modules, layers, losses, initialisers (PyTorch's names and semantics).

>>> import chainrule as cr
>>> import chainrule.nn.functional as F
>>> _ = cr.nn.manual_seed(0)
>>> model = cr.nn.Sequential(cr.nn.Linear(4, 16), cr.nn.ReLU(), cr.nn.Linear(16, 3))
>>> opt = cr.optim.SGD(model.parameters(), lr=0.1)
>>> x, y = cr.numpy.ones((8, 4)), cr.numpy.zeros(8, dtype=int)
>>> for _ in range(20):
...     opt.zero_grad()
...     loss = F.cross_entropy(model(x), y)
...     loss.backward()
...     opt.step()
>>> float(loss) < 0.1
True
"""

from . import functional, init, utils
from ._random import manual_seed
from .modules import *  # noqa: F403
from .modules import __all__ as _modules_all
from .parameter import Parameter
from .serialization import load_state, save_state

__all__ = [
    "Parameter", "functional", "init", "utils", "manual_seed", "load_state", "save_state",
    *_modules_all,
]
