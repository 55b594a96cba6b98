"""``chainrule.optim``: optimisers with PyTorch's update formulas, and LR schedules.

Updates happen in place on each parameter's array; parameters without a
gradient are skipped.

>>> import chainrule as cr, numpy as np
>>> w = cr.nn.Parameter([3.0])
>>> opt = cr.optim.Adam([w], lr=0.1)
>>> for _ in range(200):
...     opt.zero_grad()
...     loss = ((w - 1.0) ** 2).sum()
...     loss.backward()
...     opt.step()
>>> bool(abs(w.item() - 1.0) < 1e-2)
True
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import Adagrad, RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
