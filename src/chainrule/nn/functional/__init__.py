"""``chainrule.nn.functional`` (import as ``F``): activations, losses and layer functions.

Every function accepts tensors and arrays and is differentiable in its
floating-point inputs (forward and reverse mode, to any order).

>>> import chainrule as cr
>>> import chainrule.nn.functional as F
>>> x = cr.tensor([[2.0, 1.0, 0.1]], requires_grad=True)
>>> loss = F.cross_entropy(x, cr.numpy.asarray([0]))
>>> round(float(loss), 4)
0.417
"""

from .activation import (
    arctan,
    elu,
    gelu,
    hardtanh,
    leaky_relu,
    log_sigmoid,
    log_softmax,
    relu,
    relu6,
    sigmoid,
    silu,
    softmax,
    softplus,
    softsign,
    tanh,
)
from .conv import conv1d, conv2d, conv3d, conv_transpose2d
from .layer import batch_norm, dropout, embedding, flatten, linear
from .loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    l1_loss,
    mse_loss,
    nll_loss,
    one_hot,
)
from .normalization import group_norm, layer_norm
from .pooling import (
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    interpolate,
    max_pool1d,
    max_pool2d,
)

logsigmoid = log_sigmoid

__all__ = [
    "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax",
    "softplus", "softsign", "arctan", "silu", "log_sigmoid", "logsigmoid", "hardtanh", "relu6",
    "mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "one_hot",
    "linear", "conv2d", "max_pool2d", "avg_pool2d", "dropout", "batch_norm", "embedding",
    "flatten", "conv1d", "conv3d", "conv_transpose2d", "max_pool1d", "avg_pool1d",
    "adaptive_avg_pool2d", "interpolate", "layer_norm", "group_norm",
]
