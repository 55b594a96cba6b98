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

import functools as _functools
import inspect as _inspect
import types as _types

from .ops import fft  # noqa: F401  (cnp.fft: numpy.fft's functions, differentiable)
from .ops.composite import *  # noqa: F403
from .ops.creation import *  # noqa: F403
from .ops.creation import asarray as _asarray
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
    conj,
    cos,
    cosh,
    divide,
    equal,
    exp,
    exp2,
    expm1,
    floor,
    floor_divide,
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
    trunc,
    where,
)
from .ops.elementwise import conj as conjugate  # noqa: F401
from .ops.elementwise import divide as true_divide  # noqa: F401
from .ops.elementwise import mod as remainder  # noqa: F401
from .ops.elementwise import round_ as round  # noqa: A001,F401
from .ops.index_tricks import c_, r_  # noqa: F401
from .ops.indexing import *  # noqa: F403
from .ops.linalg import *  # noqa: F403
from .ops.linalg import linalg as _linalg
from .ops.reductions import *  # noqa: F403
from .ops.shape import *  # noqa: F403

abs = absolute  # noqa: A001  (NumPy's name)
pi = 3.141592653589793
e = 2.718281828459045
inf = float("inf")
nan = float("nan")
newaxis = None

fix = trunc


# --- a list or tuple of tensors is an array wherever NumPy takes one -------------------------
# Primitives stack such lists when they bind them; the functions composed of several
# primitives look at their input's shape first, so their array arguments are made arrays
# here, once, for the whole module.

_ARRAY_PARAMS = frozenset({"a", "x", "m", "ary", "arr", "array", "f", "v", "A", "x1", "x2",
                           "b", "y", "M", "values"})


def _lists_as_arrays(fn):
    """``fn`` with its array parameters' lists and tuples made arrays first.

    The wrapper is generated with ``fn``'s own signature, so a call costs one plain
    Python call more and no ``*args`` repacking (these are hot functions).
    """
    try:
        params = list(_inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return fn
    spots = [p.name for p in params if p.name in _ARRAY_PARAMS and p.kind in (
        p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not spots:
        return fn
    env = {"_fn": fn, "_asarray": _asarray, "_SEQ": (list, tuple)}
    head, call = [], []
    star = False
    for i, p in enumerate(params):
        default = ""
        if p.default is not p.empty:
            env[f"_d{i}"] = p.default
            default = f"=_d{i}"
        if p.kind is p.VAR_POSITIONAL:
            head.append(f"*{p.name}")
            call.append(f"*{p.name}")
            star = True
        elif p.kind is p.VAR_KEYWORD:
            head.append(f"**{p.name}")
            call.append(f"**{p.name}")
        elif p.kind is p.KEYWORD_ONLY:
            if not star:
                head.append("*")
                star = True
            head.append(p.name + default)
            call.append(f"{p.name}={p.name}")
        else:
            head.append(p.name + default)
            call.append(p.name)
        if p.kind is p.POSITIONAL_ONLY and (i + 1 == len(params)
                                            or params[i + 1].kind is not p.POSITIONAL_ONLY):
            head.append("/")
    body = "".join(f"    if type({n}) in _SEQ:\n        {n} = _asarray({n})\n" for n in spots)
    src = f"def wrapper({', '.join(head)}):\n{body}    return _fn({', '.join(call)})\n"
    exec(src, env)  # noqa: S102  (source built above from the signature only)
    return _functools.wraps(fn)(env["wrapper"])


def _wrap_functions(namespace):
    return {name: _lists_as_arrays(obj) for name, obj in namespace.items()
            if isinstance(obj, _types.FunctionType) and not name.startswith("_")
            and obj.__module__.startswith("chainrule.ops.")
            and name not in ("array", "asarray")}


globals().update(_wrap_functions(dict(globals())))
linalg = _types.SimpleNamespace(**{**vars(_linalg), **_wrap_functions(vars(_linalg))})
