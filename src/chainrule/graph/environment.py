"""What a function reads besides its arguments, watched so that a recording of it can be trusted.

A recorded program holds what ``f`` read besides its arguments as
constants.  :class:`Environment` lists everything ``f`` can read: its code,
closure cells, default values and the globals its code names, recursively
through the Python functions it calls, and arrays and tensors by *content*.
A recording may be replayed only while that snapshot holds; a function that
reads anything this cannot watch (object attributes, random generators,
I/O, ``getattr`` with computed names...) has no snapshot and is never
replayed.  Used by sparse Jacobians (:mod:`chainrule.sparse`) and by the
replays of ``value_and_grad`` (:mod:`chainrule.graph.replay`).

Library code (``chainrule``, NumPy, SciPy, ``math``...) is taken as fixed:
its globals are not watched (monkey-patching a library between calls is not
detected), but every attribute of a library module that ``f``'s code names
is vetted, so that ``np.random.normal`` and the like are recognised.
"""

from __future__ import annotations

import builtins
import functools
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.primitive import Box, Primitive

__all__ = ["Environment", "MAX_CHECKS", "MAX_WATCHED_BYTES"]

#: Functions whose environment needs more checks than this are not replayed.
MAX_CHECKS = 2000
#: Nor those that read more array data than this (each check compares it by content).
MAX_WATCHED_BYTES = 64 * 2**20

_MISSING = object()
_LIBRARIES = frozenset({"chainrule", "numpy", "scipy.special", "math", "cmath", "operator",
                        "functools", "builtins"})
#: Library modules with hidden state (random generators, data loaders): analysed like user
#: code (and so refused as soon as they reach a generator).
_STATEFUL = ("numpy.random", "chainrule.nn", "chainrule.data", "chainrule.datasets",
             "chainrule.demo", "chainrule.checks")
#: Builtins whose result is not a function of their arguments, or that reach objects by name.
_IMPURE_BUILTINS = frozenset({
    "print", "open", "input", "eval", "exec", "compile", "getattr", "setattr", "delattr",
    "hasattr", "globals", "locals", "vars", "__import__", "id", "breakpoint", "exit", "quit",
    "help", "memoryview", "dir", "next", "iter", "super", "object", "property", "classmethod",
    "staticmethod"})
#: Builtins that only read their arguments' attributes or iterate them: pure in chainrule's
#: own code (which names its attributes), whose hidden state is found through its globals.
_READING_BUILTINS = frozenset({"getattr", "hasattr", "iter", "next", "super", "object",
                               "property", "classmethod", "staticmethod"})
_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, np.generic, np.dtype, range,
              slice, type(Ellipsis), type(NotImplemented), types.CodeType)
_LIBRARY_CALLABLES = (np.ufunc, type(np.concatenate), Primitive)


class _Unwatchable(Exception):
    """``f`` reads something whose changes cannot be seen: it is never replayed."""


def _library(module: Any) -> bool:
    if not isinstance(module, str):
        return False
    if module.startswith(_STATEFUL):
        return False
    root = module.split(".", 1)[0]
    return root in _LIBRARIES or (root == "scipy" and module.startswith("scipy.special"))


def _own(module: Any) -> bool:
    """Code of chainrule itself."""
    return isinstance(module, str) and (module == "chainrule" or module.startswith("chainrule."))


def _names(code: types.CodeType) -> set:
    """Every global or attribute name that ``code`` (and code nested in it) loads."""
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out


class _Snapshot:
    """Builds the checks: ``(kind, holder, key, expected)`` tuples (see ``Environment``)."""

    def __init__(self, max_bytes: int) -> None:
        self.checks: list[tuple] = []
        self.max_bytes = max_bytes
        self.watched_bytes = 0
        self.seen: set[int] = set()
        self.vetted: set[int] = set()

    def add(self, check: tuple) -> None:
        self.checks.append(check)
        if len(self.checks) > MAX_CHECKS:
            raise _Unwatchable("too much to watch")

    def value(self, v: Any, names: set) -> None:
        """Watch what can change *inside* ``v`` (its binding is watched by the caller)."""
        if isinstance(v, _IMMUTABLE):
            return
        if id(v) in self.seen:
            return
        self.seen.add(id(v))
        if isinstance(v, (tuple, frozenset)):
            for item in v:
                self.value(item, names)
        elif type(v) is list:
            self.add(("items", v, None, tuple(v)))
            for item in v:
                self.value(item, names)
        elif type(v) is dict:
            self.add(("dict", v, None, tuple(v.items())))
            for item in v.values():
                self.value(item, names)
        elif type(v) is np.ndarray:
            if v.dtype.kind == "O":
                raise _Unwatchable("object array")
            self.watched_bytes += v.nbytes
            if self.watched_bytes > self.max_bytes:
                raise _Unwatchable("too much array data to compare on every call")
            self.add(("array", v, None, v.copy()))
        elif isinstance(v, Box):
            if v._level != 0 or not _library(type(v).__module__):
                raise _Unwatchable("a tensor being traced or differentiated")
            self.add(("attr", v, "data", v.data))
            self.value(v.data, names)
        elif isinstance(v, types.FunctionType):
            self.function(v)
        elif isinstance(v, types.ModuleType):
            self.module(v, names)
        elif isinstance(v, functools.partial):
            self.value(v.func, names)
            self.value(v.args, names)
            self.value(v.keywords, names)
        elif isinstance(v, types.BuiltinFunctionType):
            owner = v.__self__
            if not (owner is None or isinstance(owner, types.ModuleType)) or not _library(
                    v.__module__ or getattr(owner, "__name__", None)):
                raise _Unwatchable(f"builtin {v!r}")
            if v.__module__ == "builtins" and v.__name__ in _IMPURE_BUILTINS:
                raise _Unwatchable(f"builtin {v.__name__}")
        elif isinstance(v, type):
            if not _library(v.__module__):
                raise _Unwatchable(f"class {v.__qualname__}")
        elif isinstance(v, _LIBRARY_CALLABLES):
            return
        else:
            raise _Unwatchable(f"an object of type {type(v).__name__}")

    def function(self, fn: types.FunctionType) -> None:
        code = fn.__code__
        self.add(("attr", fn, "__code__", code))
        self.add(("attr", fn, "__defaults__", fn.__defaults__))
        self.add(("attr", fn, "__kwdefaults__", fn.__kwdefaults__))
        names = _names(code)
        self.value(fn.__defaults__, names)
        self.value(fn.__kwdefaults__, names)
        for cell in fn.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:  # not assigned yet: whatever comes later is unknown
                raise _Unwatchable("an empty closure cell") from None
            self.add(("cell", cell, None, content))
            self.value(content, names)
        if _library(fn.__module__):
            return  # library code: its globals are fixed (its closure, above, may hold f)
        g = fn.__globals__
        b = g.get("__builtins__", builtins)
        b = b.__dict__ if isinstance(b, types.ModuleType) else b
        for name in sorted(names):
            v = g.get(name, _MISSING)
            self.add(("key", g, name, v))
            if v is not _MISSING:
                self.value(v, names)
            elif name in _IMPURE_BUILTINS and name in b and not (
                    name in _READING_BUILTINS and _own(fn.__module__)):
                raise _Unwatchable(f"builtin {name}")

    def module(self, m: types.ModuleType, names: set) -> None:
        """A user module: the attributes ``names`` may read are watched; a library module:
        they are vetted (a random generator in it is refused)."""
        if _library(m.__name__):
            for name in sorted(names):
                v = m.__dict__.get(name, _MISSING)
                if isinstance(v, types.ModuleType):
                    if _library(v.__name__):
                        if id(v) not in self.vetted:
                            self.vetted.add(id(v))
                            self.module(v, names)
                    else:  # e.g. numpy.random: watched like user code
                        self.add(("key", m.__dict__, name, v))
                        self.value(v, names)
                elif isinstance(v, types.MethodType):  # a bound method of some state
                    raise _Unwatchable(f"{m.__name__}.{name}")
                elif isinstance(v, (types.FunctionType, types.BuiltinFunctionType)) and \
                        not _library(v.__module__):  # re-exported from stateful code
                    self.value(v, names)
            return
        d = m.__dict__
        for name in sorted(names):
            v = d.get(name, _MISSING)
            if v is not _MISSING:
                self.add(("key", d, name, v))
                self.value(v, names)


_VALUES = (int, float, complex, str, bytes, bool)
_BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _same(now: Any, expected: Any) -> bool:
    """The same object, or an equal number or string (a recording holds it as a constant)."""
    if now is expected:
        return True
    t = type(now)
    return t is type(expected) and t in _VALUES and now == expected


def _holds(check: tuple) -> bool:
    kind, holder, key, expected = check
    if kind == "array":
        a = holder
        if a.shape != expected.shape or a.dtype != expected.dtype:
            return False
        if a.dtype.kind in "fc" and a.flags.c_contiguous and a.dtype.itemsize in _BITS:
            # bit by bit: one pass, NaNs equal to themselves (-0.0 and 0.0 count as a change)
            bits = _BITS[a.dtype.itemsize]
            return bool((a.view(bits) == expected.view(bits)).all())
        return bool(np.array_equal(a, expected, equal_nan=a.dtype.kind in "fc"))
    if kind == "key":
        return _same(holder.get(key, _MISSING), expected)
    if kind == "cell":
        try:
            return _same(holder.cell_contents, expected)
        except ValueError:
            return False
    if kind == "attr":
        return getattr(holder, key, _MISSING) is expected
    if kind == "items":
        return len(holder) == len(expected) and all(
            a is b for a, b in zip(holder, expected))
    # "dict"
    now = tuple(holder.items())
    return len(now) == len(expected) and all(
        ka == kb and va is vb for (ka, va), (kb, vb) in zip(now, expected))


class Environment:
    """A snapshot of everything ``f`` can read besides its argument (see the module text).

    ``Environment.of(f)`` is ``None`` when ``f`` reads something that cannot
    be watched; ``unchanged()`` says whether every binding still holds the
    same object and every watched array or tensor the same values.
    """

    __slots__ = ("checks",)

    def __init__(self, checks: list[tuple]) -> None:
        self.checks = checks

    @classmethod
    def of(cls, f: Callable, max_bytes: int = MAX_WATCHED_BYTES) -> Environment | None:
        """The snapshot of ``f``'s reads; ``None`` when they cannot be watched or hold more
        than ``max_bytes`` of arrays (each of which every check compares)."""
        snap = _Snapshot(max_bytes)
        try:
            snap.value(f, set())
        except _Unwatchable:
            return None
        return cls(snap.checks)

    def unchanged(self) -> bool:
        for check in self.checks:
            if not _holds(check):
                return False
        return True
