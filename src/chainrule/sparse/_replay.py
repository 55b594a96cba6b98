"""Replaying a recorded compressed pass, only while calling ``f`` could not compute otherwise.

A sparse Jacobian's compressed pass (one batched JVP, VJP or HVP) costs most
of its time in Python dispatch, and computes primal values that only the
output needs (``u ** 3``, whose tangent needs ``u ** 2`` alone).  Recorded
once as a program (:func:`chainrule.graph.trace.record`), optimised
(dead code removed) and turned into straight-line code, it runs several
times faster -- but a recording holds what ``f`` read besides ``x`` as
constants.  :class:`Environment` lists everything ``f`` can read: its code,
closure cells, default values and the globals its code names, recursively
through the Python functions it calls, and ``x``-independent arrays and
tensors by *content*.  :class:`Replay` replays only while that snapshot
holds (else it calls ``f``, eagerly, as before); a function that reads
anything it cannot watch (object attributes, random generators, I/O,
``getattr`` with computed names...) is simply never replayed.

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

from ..anomaly import is_anomaly_enabled
from ..core.primitive import Box, Primitive
from ..graph.executor import generate
from ..graph.ir import GuardFailed
from ..graph.passes import optimize
from ..graph.trace import record
from ..pytree import tree_unflatten

__all__ = ["Environment", "Replay", "MAX_CHECKS"]

#: Functions whose environment needs more checks than this are not replayed.
MAX_CHECKS = 2000

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


def _names(code: types.CodeType) -> set:
    """Every global or attribute name that ``code`` (and code nested in it) loads."""
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out


class _Snapshot:
    """Builds the checks: ``(kind, holder, key, expected)`` tuples (see ``Environment``)."""

    def __init__(self) -> None:
        self.checks: list[tuple] = []
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
            elif name in _IMPURE_BUILTINS and name in b:
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


def _holds(check: tuple) -> bool:
    kind, holder, key, expected = check
    if kind == "array":
        a = holder
        if a.shape != expected.shape or a.dtype != expected.dtype:
            return False
        return bool(np.array_equal(a, expected, equal_nan=a.dtype.kind in "fc"))
    if kind == "key":
        return holder.get(key, _MISSING) is expected
    if kind == "cell":
        try:
            return holder.cell_contents is expected
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
    def of(cls, f: Callable) -> Environment | None:
        snap = _Snapshot()
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


class Replay:
    """``product(x, seed)``, replayed from a recording while ``f``'s environment holds.

    ``env`` is the snapshot taken when the pattern was found (``None``: never
    replay).  The first call runs ``product`` eagerly; the next, if the
    snapshot still holds, records ``product`` (the recording computes that
    call's result too), keeping the program only when the snapshot held
    throughout; later calls replay it after checking the snapshot.  On any
    change ``on_change(x)`` runs (it may raise: the sparsity pattern is
    checked there), then the call runs eagerly under a new snapshot and the
    cycle restarts.  Never replayed: functions reading what cannot be
    watched or changing it themselves, programs that read values (guards),
    and anything under ``cr.detect_anomaly()``.
    """

    def __init__(self, f: Callable, product: Callable, env: Environment | None,
                 on_change: Callable[[np.ndarray], None] | None = None) -> None:
        self.f = f
        self.product = product
        self.on_change = on_change
        self.enabled = env is not None
        self._env = env
        self._exe: Any = None
        self._tree: Any = None
        self._warm = False
        #: how many calls were replayed (the rest ran eagerly or recorded)
        self.replays = 0

    def _eager(self, x: np.ndarray, seed: np.ndarray) -> Any:
        """Run ``product`` under a new snapshot (kept only if ``f`` left it intact)."""
        self._exe = None
        if not self.enabled:
            return self.product(x, seed)
        env = Environment.of(self.f)
        out = self.product(x, seed)
        if env is None or not env.unchanged():
            self.enabled = False
            self._env = None
        else:
            self._env = env
        return out

    def __call__(self, x: np.ndarray, seed: np.ndarray) -> Any:
        env, exe, tree = self._env, self._exe, self._tree  # (one consistent state)
        if env is None or is_anomaly_enabled():
            return self._eager(x, seed)
        if not env.unchanged():
            if self.on_change is not None:
                self.on_change(x)
            return self._eager(x, seed)
        if exe is not None:
            try:
                out = exe(x, seed)
            except GuardFailed:
                return self._eager(x, seed)
            self.replays += 1
            return tree_unflatten(tree, out)
        if not self._warm:  # a first call (often the only one) is not recorded
            self._warm = True
            return self._eager(x, seed)
        try:
            program, tree, values = record(self.product, (x, seed), {})
        except Exception:  # something the recorder cannot follow: f's own run decides
            self.enabled = False
            return self._eager(x, seed)
        if any(e.out is None for e in program.eqns):  # it read values: never replayed
            self.enabled = False
            self._env = None
        elif env.unchanged():  # (else f changed what it reads while it ran)
            self._tree = tree
            self._exe = generate(optimize(program))
        else:
            self.enabled = False
            self._env = None
        return tree_unflatten(tree, values)
