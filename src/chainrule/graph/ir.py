"""The program IR: a flat list of equations in topological order (DESIGN principle 8).

A :class:`Program` has input variables, equations and outputs.  Each
:class:`Equation` applies one primitive to its inputs (variables or
literal constants) with static keyword parameters and defines one output
variable (``out is None`` for effects such as guards).  ``print(program)``
gives a readable text form::

    program(a:f64[3]) {
      b:f64[3] = sin a
      c:f64[3] = multiply b 1.0001
      d:f64[] = reduce_sum[axes=(-1,), keepdims=False] c
      return (d,)
    }

Programs hold raw values only (NumPy arrays and scalars): no Tensor
objects, no tape.  The passes (:mod:`.passes`) rewrite programs and the
executor (:mod:`.executor`) turns one into straight-line Python code.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..core.primitive import Primitive

__all__ = ["Var", "Lit", "Equation", "Program", "GuardFailed", "guard_p", "type_str"]

_var_ids = itertools.count()

_PY_SCALARS = (bool, int, float, complex)


class Var:
    """A value defined once in a program (an input or an equation's output).

    ``shape`` and ``dtype`` describe the value (``None`` for values that are
    not arrays, such as the tuples that ``eigh`` returns); ``pytype`` is the
    Python scalar type when the value is a plain Python number (those keep
    NumPy's "weak" promotion rules, so the executor must not change them).
    """

    __slots__ = ("id", "shape", "dtype", "pytype")

    def __init__(self, shape: tuple | None, dtype: Any, pytype: type | None = None) -> None:
        self.id = next(_var_ids)
        self.shape = shape
        self.dtype = dtype
        self.pytype = pytype

    @classmethod
    def like(cls, value: Any) -> Var:
        """A variable describing ``value`` (an array, a NumPy or Python scalar, a tuple)."""
        t = type(value)
        if t in _PY_SCALARS:
            return cls((), np.result_type(value), t)
        shape = getattr(value, "shape", None)
        dtype = getattr(value, "dtype", None)
        return cls(tuple(shape) if shape is not None else None, dtype)

    @property
    def size(self) -> int | None:
        if self.shape is None:
            return None
        n = 1
        for s in self.shape:
            n *= s
        return n

    def __repr__(self) -> str:
        return f"Var({self.id}, {type_str(self)})"


class Lit:
    """A constant input of an equation (a captured array, a Python number, ``None``...)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    @property
    def shape(self) -> tuple | None:
        if type(self.value) in _PY_SCALARS:
            return ()
        s = getattr(self.value, "shape", None)
        return None if s is None else tuple(s)

    @property
    def dtype(self) -> Any:
        if type(self.value) in _PY_SCALARS:
            return np.result_type(self.value)
        return getattr(self.value, "dtype", None)

    @property
    def pytype(self) -> type | None:
        t = type(self.value)
        return t if t in _PY_SCALARS else None

    def __repr__(self) -> str:
        return f"Lit({_short(self.value)})"


class Equation:
    """``out = prim(*inputs, **params)``; inputs are :class:`Var` or :class:`Lit`."""

    __slots__ = ("prim", "inputs", "params", "out")

    def __init__(self, prim: Primitive, inputs: list, params: dict, out: Var | None) -> None:
        self.prim = prim
        self.inputs = list(inputs)
        self.params = dict(params) if params else {}
        self.out = out

    def __repr__(self) -> str:
        return f"Equation({self.prim.name}, out={self.out!r})"


class Program:
    """A flat, topologically ordered list of equations with inputs and outputs.

    ``outputs`` are variables or literals (a function may return constants).
    Equations whose ``out`` is ``None`` are effects (guards) and are never
    removed by dead-code elimination.
    """

    __slots__ = ("inputs", "eqns", "outputs")

    def __init__(self, inputs: list[Var], eqns: list[Equation], outputs: list) -> None:
        self.inputs = list(inputs)
        self.eqns = list(eqns)
        self.outputs = list(outputs)

    def copy(self) -> Program:
        """A shallow copy whose lists (and equations) may be rewritten independently."""
        eqns = [Equation(e.prim, e.inputs, e.params, e.out) for e in self.eqns]
        return Program(self.inputs, eqns, self.outputs)

    def __len__(self) -> int:
        return len(self.eqns)

    def count(self, name: str) -> int:
        """How many equations apply the primitive called ``name``."""
        return sum(1 for e in self.eqns if e.prim.name == name)

    def __str__(self) -> str:
        names = _Namer()
        head = ", ".join(f"{names(v)}:{type_str(v)}" for v in self.inputs)
        lines = [f"program({head}) {{"]
        for e in self.eqns:
            params = ""
            if e.params:
                params = "[" + ", ".join(f"{k}={_short(v)}" for k, v in e.params.items()) + "]"
            args = " ".join(names.ref(a) for a in e.inputs)
            lhs = f"{names(e.out)}:{type_str(e.out)} = " if e.out is not None else ""
            lines.append(f"  {lhs}{e.prim.name}{params} {args}".rstrip())
        outs = ", ".join(names.ref(o) for o in self.outputs)
        lines.append(f"  return ({outs}{',' if len(self.outputs) == 1 else ''})")
        lines.append("}")
        return "\n".join(lines)

    __repr__ = __str__


class _Namer:
    """Short names a, b, ..., z, ba, bb, ... in order of first appearance."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def __call__(self, v: Var) -> str:
        name = self.names.get(v.id)
        if name is None:
            n = len(self.names)
            name = ""
            while True:
                name = chr(ord("a") + n % 26) + name
                n //= 26
                if not n:
                    break
            self.names[v.id] = name
        return name

    def ref(self, x: Any) -> str:
        if isinstance(x, Var):
            return self(x)
        return _short(x.value if isinstance(x, Lit) else x)


_DTYPE_ABBREV = {
    "float64": "f64", "float32": "f32", "float16": "f16", "int64": "i64", "int32": "i32",
    "int16": "i16", "int8": "i8", "uint8": "u8", "bool": "bool", "complex128": "c128",
    "complex64": "c64",
}


def type_str(v: Any) -> str:
    """``f64[3,4]`` for arrays, ``float`` for Python numbers, ``?`` when unknown."""
    if getattr(v, "pytype", None) is not None:
        return v.pytype.__name__
    if v.shape is None:
        return "?"
    dt = str(v.dtype) if v.dtype is not None else "?"
    return f"{_DTYPE_ABBREV.get(dt, dt)}[{','.join(str(s) for s in v.shape)}]"


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 6:
            body = np.array2string(value, separator=",", threshold=6).replace("\n", "")
            return body if value.ndim else f"{body}:{type_str(value)}"
        return f"const:{type_str(value)}"
    if isinstance(value, np.generic):
        return f"{value!r}"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(_short(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- guards --------------------------------------------------------------------------------------


class GuardFailed(Exception):
    """A value that the trace read concretely differs at run time: the program must be re-traced."""


def _guard_np(x: Any, kind: str, expected: Any) -> None:
    if kind == "bool":
        ok = bool(x) == expected
    elif kind == "int":
        ok = int(x) == expected
    elif kind in ("float", "complex"):
        got = complex(x) if kind == "complex" else float(x)
        ok = got == expected or (got != got and expected != expected)
    else:  # "array": the whole value
        a = np.asarray(x)
        ok = a.shape == expected.shape and a.dtype == expected.dtype
        if ok and a.dtype.kind in "biu":  # (index arrays: the common case, without NaNs)
            ok = bool((a == expected).all())
        elif ok:
            ok = bool(np.array_equal(a, expected, equal_nan=a.dtype.kind in "fc"))
    if not ok:
        raise GuardFailed(kind)


def _guard_impl(xp: Any, x: Any, kind: str, expected: Any) -> None:
    return _guard_np(x, kind, expected)


#: The guard primitive: an effect (no output) that raises ``GuardFailed`` on a mismatch.
guard_p = Primitive("graph.guard", _guard_impl, _guard_np, differentiable=False, register=False)
