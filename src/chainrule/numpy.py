"""``chainrule.numpy``: NumPy's functions, differentiable.

Every function takes tensors, arrays and scalars with NumPy's names,
signatures and broadcasting rules.  On plain arrays (nothing being
differentiated) they return plain arrays at NumPy speed.

>>> import chainrule as cr, chainrule.numpy as cnp
>>> x = cr.tensor([0.0, 1.0], requires_grad=True)
>>> cnp.sum(cnp.sin(x)).backward()
>>> x.grad
array([1.        , 0.54030231])
"""

from __future__ import annotations

from .ops import fft  # noqa: F401  (cnp.fft: numpy.fft's functions, differentiable)
from .ops.creation import *  # noqa: F403
from .ops.elementwise import (  # noqa: F401
    absolute,
    add,
    angle,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    cbrt,
    ceil,
    clip,
    conj,
    cos,
    cosh,
    divide,
    equal,
    exp,
    exp2,
    expm1,
    floor,
    fmax,
    fmin,
    greater,
    greater_equal,
    hypot,
    imag,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logaddexp,
    logaddexp2,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    not_equal,
    positive,
    power,
    real,
    reciprocal,
    sign,
    sin,
    sinc,
    sinh,
    sqrt,
    square,
    subtract,
    tan,
    tanh,
    where,
)
from .ops.elementwise import conj as conjugate  # noqa: F401
from .ops.elementwise import divide as true_divide  # noqa: F401
from .ops.elementwise import mod as remainder  # noqa: F401
from .ops.elementwise import round_ as round  # noqa: A001,F401
from .ops.indexing import *  # noqa: F403
from .ops.linalg import *  # noqa: F403
from .ops.linalg import linalg  # noqa: F401
from .ops.reductions import *  # noqa: F403
from .ops.shape import *  # noqa: F403

abs = absolute  # noqa: A001  (NumPy's name)
pi = 3.141592653589793
e = 2.718281828459045
inf = float("inf")
nan = float("nan")
newaxis = None


def deg2rad(x):
    """Degrees to radians (``x * pi / 180``)."""
    return multiply(x, pi / 180.0)


def rad2deg(x):
    """Radians to degrees (``x * 180 / pi``)."""
    return multiply(x, 180.0 / pi)
