"""Layers of ``chainrule.nn``: one small module per family."""

from .activation import (
    ELU,
    GELU,
    Arctan,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
)
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .linear import Flatten, Identity, Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module
from .pooling import AvgPool2d, MaxPool2d
from .rnn import GRU, LSTM, RNN
from .sparse import Embedding

__all__ = [
    "Module", "Sequential", "ModuleList", "ModuleDict", "Identity", "Linear", "Flatten",
    "Conv2d", "MaxPool2d", "AvgPool2d", "Dropout", "BatchNorm1d", "BatchNorm2d", "Embedding",
    "RNN", "LSTM", "GRU", "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softmax",
    "LogSoftmax", "Softplus", "Softsign", "Arctan", "SiLU", "LogSigmoid", "Hardtanh", "ReLU6",
    "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
]
