"""``cr.compile``: trace a function once per input signature, replay the recorded program.

On a call, the arguments' *signature* is computed: the pytree structure,
the shape and dtype of every array leaf, the type of every float leaf and
the value of every other leaf (ints, bools, strings... are static).  On a
cache miss the function is traced (:func:`chainrule.graph.trace.trace`):
every primitive it binds is recorded, with Python control flow unrolled on
the concrete values; the program is optimised (:mod:`chainrule.graph.passes`)
and turned into straight-line Python (:mod:`chainrule.graph.executor`).
Later calls with the same signature run that code on raw arrays only.

It composes with transforms: ``cr.compile(cr.value_and_grad(f))`` records
the forward *and* the backward pass, both from the same rules as eager
mode.  Called on tensors being differentiated (inside ``cr.grad`` etc.) a
compiled function simply runs ``f`` so that the outer transform sees every
operation.

Things to know:

* Arrays and tensors that ``f`` closes over are captured as constants when
  it is traced.  Rebinding those names later does not affect the compiled
  program; to pick up new values (or values mutated in place), call
  ``compiled.clear_cache()``.
* No traced value escapes as plain numbers: ``np.asarray(x)``,
  ``np.array(x)``, ``x.item()``, ``x.tolist()``, ``float(x)``,
  ``np.float64(x)`` -- and so a NumPy function that does not dispatch to
  chainrule -- raise ``TypeError`` naming ``cr.compile``.  Python control
  flow works: ``bool(x)`` (``if x.sum() > 0:``), ``int(x)`` and
  ``operator.index(x)`` read the value, and so does an explicit read of a
  cut value (``float(cr.stop_gradient(x))``, ``np.asarray(x.detach())``);
  the program then records a guard and is re-traced when a later call gives
  a different value (see ``compiled.trace_count``).  Functions that do this
  on every call lose the benefit of compiling.
* Results are NumPy arrays (or NumPy scalars), never tensors.
* A compiled function keeps its work buffers between calls (one set per
  thread).

>>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
>>> f = cr.compile(cr.value_and_grad(lambda x: cnp.sum(cnp.sin(x) ** 2)))
>>> value, g = f(np.array([0.5, 1.0]))
>>> bool(np.allclose(g, np.sin(2 * np.array([0.5, 1.0]))))
True
>>> f.trace_count
1
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .core.primitive import Box
from .graph.executor import DEFAULT_MIN_BUFFER_SIZE, Executable, generate
from .graph.fusion import fuse
from .graph.ir import GuardFailed, Program
from .graph.passes import optimize
from .graph.trace import is_dynamic_leaf, record
from .pytree import tree_flatten, tree_unflatten

__all__ = ["compile", "jit", "CompiledFunction"]

#: How many programs (traced with different guarded values) one signature may keep.
MAX_VARIANTS = 8
#: Warn once a function has been re-traced this often for one signature.
RETRACE_WARNING = 10

_NUMPY_LEAVES = (np.ndarray, np.generic, float, complex)


def _leaf_key(x: Any) -> Any:
    t = type(x)
    if t is np.ndarray:
        return (x.shape, x.dtype)
    if t is float or t is complex:
        return t
    if isinstance(x, np.generic):
        return (t, ())
    try:
        hash(x)
    except TypeError:
        return ("id", id(x))
    return ("static", t, x)


def _writeable(dyn: list, positions: tuple) -> None:
    """Donated arrays are written into: read-only ones (views, constants) are copied first."""
    for k in positions:
        a = dyn[k]
        if isinstance(a, np.ndarray) and not a.flags.writeable:
            dyn[k] = a.copy()


def _inert(x: Any) -> bool:
    """An eager tensor that records nothing and holds a NumPy array."""
    return (isinstance(x, Box) and x._level == 0 and not x.requires_grad and x._prim is None
            and isinstance(x.data, _NUMPY_LEAVES))


def _unwrap_inert(tree: Any) -> Any:
    leaves, td = tree_flatten(tree)
    return tree_unflatten(td, [x.data if _inert(x) else x for x in leaves])


class _Entry:
    """One signature's compiled programs (several when guards made it re-trace)."""

    __slots__ = ("variants", "out_tree", "retraces")

    def __init__(self, out_tree: Any) -> None:
        self.variants: list[Executable] = []
        self.out_tree = out_tree
        self.retraces = 0


class CompiledFunction:
    """The callable that :func:`compile` returns (see the module docstring).

    Attributes and methods: ``trace_count`` (how many times ``f`` was
    traced), ``program(*args)`` (the optimised program for those
    arguments' signature), ``source(*args)`` (its generated Python code),
    ``clear_cache()``.
    """

    def __init__(self, fun: Callable, optimize: bool = True, buffers: bool = True,
                 min_buffer_size: int = DEFAULT_MIN_BUFFER_SIZE,
                 donate_argnums: Any = ()) -> None:
        self.fun = fun
        if isinstance(donate_argnums, int):
            donate_argnums = (donate_argnums,)
        self.donate_argnums = tuple(donate_argnums)
        self.optimize = optimize
        self.buffers = buffers
        self.min_buffer_size = min_buffer_size
        self.trace_count = 0
        self._cache: dict[Any, _Entry] = {}
        functools.update_wrapper(self, fun)

    def __repr__(self) -> str:
        name = getattr(self.fun, "__name__", repr(self.fun))
        return f"<chainrule compiled function {name} ({len(self._cache)} signature(s))>"

    def clear_cache(self) -> None:
        """Forget every compiled program (the next call traces again)."""
        self._cache.clear()

    def _signature(self, args: tuple, kwargs: dict) -> tuple[Any, list, list]:
        leaves, tree = tree_flatten((args, kwargs))
        key = (tree, tuple(_leaf_key(x) for x in leaves))
        dyn = [x for x in leaves if is_dynamic_leaf(x)]
        return key, leaves, dyn

    def _donated(self, args: tuple) -> tuple[int, ...]:
        """Positions (among the dynamic leaves) of the leaves of the donated arguments."""
        if not self.donate_argnums:
            return ()
        out = []
        k = 0
        for i, a in enumerate(args):
            for leaf in tree_flatten(a)[0]:
                if is_dynamic_leaf(leaf):
                    if i in self.donate_argnums or i - len(args) in self.donate_argnums:
                        out.append(k)
                    k += 1
        return tuple(out)

    def _trace(self, args: tuple, kwargs: dict) -> tuple[Executable, Any, list]:
        program, out_tree, values = record(self.fun, args, kwargs, "compile")
        self.trace_count += 1
        if self.optimize:
            # fusion last: it sees the simplified program (a no-op without numba)
            program = fuse(optimize(program))
        # (a guard may fail after outputs were written: then donated inputs must be intact)
        guarded = any(e.out is None for e in program.eqns)
        exe = generate(program, buffers=self.buffers, min_buffer_size=self.min_buffer_size,
                       donate=() if guarded else self._donated(args))
        return exe, out_tree, values

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key, leaves, dyn = self._signature(args, kwargs)
        for x in leaves:
            if isinstance(x, Box) or not (isinstance(x, _NUMPY_LEAVES) or not hasattr(x, "shape")):
                if _inert(x):  # a plain eager tensor: compile on its array
                    a, k = _unwrap_inert((args, kwargs))
                    return self(*a, **k)
                # Being differentiated (or another array library): run f itself.
                return self.fun(*args, **kwargs)
        entry = self._cache.get(key)
        if entry is not None:
            if self.donate_argnums:
                _writeable(dyn, self._donated(args))
            for exe in entry.variants:
                try:
                    out = exe(*dyn)
                except GuardFailed:
                    continue
                return tree_unflatten(entry.out_tree, out)
        exe, out_tree, values = self._trace(args, kwargs)
        if entry is None:
            entry = self._cache[key] = _Entry(out_tree)
        else:
            entry.retraces += 1
            if entry.retraces == RETRACE_WARNING:
                warnings.warn(
                    f"compiled function {getattr(self.fun, '__name__', self.fun)!r} was traced "
                    f"{entry.retraces + 1} times for the same argument shapes because it reads "
                    "traced values concretely (bool(), float(), np.asarray(), or a helper that "
                    "looks at the data); compiling gains nothing here",
                    RuntimeWarning, stacklevel=2)
            entry.out_tree = out_tree
        entry.variants.insert(0, exe)
        del entry.variants[MAX_VARIANTS:]
        return tree_unflatten(out_tree, values)

    def lower(self, *args: Any, **kwargs: Any) -> Executable:
        """The executable for these arguments' signature (tracing if needed)."""
        key, _, dyn = self._signature(args, kwargs)
        entry = self._cache.get(key)
        if entry is None or not entry.variants:
            self(*args, **kwargs)
            entry = self._cache[key]
        return entry.variants[0]

    def program(self, *args: Any, **kwargs: Any) -> Program:
        """The (optimised) program recorded for these arguments' signature."""
        return self.lower(*args, **kwargs).program

    def source(self, *args: Any, **kwargs: Any) -> str:
        """The generated Python code for these arguments' signature."""
        return self.lower(*args, **kwargs).source


def compile(fun: Callable | None = None, *, optimize: bool = True, buffers: bool = True,
            min_buffer_size: int = DEFAULT_MIN_BUFFER_SIZE, donate_argnums: Any = ()) -> Any:
    """Compile ``fun``: trace it once per input signature and replay the recorded program.

    Usable as ``cr.compile(f)``, ``@cr.compile`` or ``@cr.compile(optimize=False)``.
    ``optimize=False`` skips the passes (constant folding, simplification,
    CSE, DCE); ``buffers=False`` turns off buffer reuse; results with at
    least ``min_buffer_size`` elements are computed into reused buffers.
    ``donate_argnums`` names arguments whose arrays the caller gives away
    (as in ``jax.jit``): results of the same shape and dtype are written
    into them, so a training step ``params = step(params, ...)`` updates
    the weights in place instead of allocating new ones.  Do not use a
    donated array after the call (it holds a result, or garbage).
    See :mod:`chainrule.compile` for what is captured and when it re-traces.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> @cr.compile
    ... def f(x):
    ...     return cnp.tanh(x) * 2.0
    >>> f(np.zeros(2))
    array([0., 0.])
    """
    if fun is None:
        return lambda f: CompiledFunction(f, optimize, buffers, min_buffer_size, donate_argnums)
    if not callable(fun):
        raise TypeError(f"compile: expected a function, got {type(fun).__name__}")
    return CompiledFunction(fun, optimize, buffers, min_buffer_size, donate_argnums)


class _WithStaticArgs:
    """``jit`` with static arguments: one compiled function per distinct set of their values."""

    def __init__(self, fun: Callable, static_argnums: tuple, static_argnames: tuple,
                 donate_argnums: tuple, options: dict) -> None:
        self.fun = fun
        self.static_argnums = static_argnums
        self.static_argnames = static_argnames
        self.donate_argnums = donate_argnums
        self.options = options
        self._compiled: dict[Any, CompiledFunction] = {}
        functools.update_wrapper(self, fun)

    @property
    def trace_count(self) -> int:
        return sum(c.trace_count for c in self._compiled.values())

    def clear_cache(self) -> None:
        """Forget every compiled program (the next call traces again)."""
        self._compiled.clear()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        n = len(args)
        nums = sorted({i + n if i < 0 else i for i in self.static_argnums if -n <= i < n})
        statics = tuple(args[i] for i in nums)
        named = tuple(sorted((k, kwargs[k]) for k in self.static_argnames if k in kwargs))
        key = (n, tuple(nums), statics, named)
        try:
            hash(key)
        except TypeError:
            raise TypeError(
                "jit: static arguments must be hashable (numbers, strings, tuples...); got "
                f"{[type(v).__name__ for v in statics + tuple(v for _, v in named)]}; pass "
                "arrays as ordinary (traced) arguments") from None
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._specialise(n, nums, statics, dict(named))
        dyn = [a for i, a in enumerate(args) if i not in nums]
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        return compiled(*dyn, **dyn_kwargs)

    def _specialise(self, n: int, nums: list, statics: tuple, named: dict) -> CompiledFunction:
        fun = self.fun
        dynamic_positions = [i for i in range(n) if i not in nums]

        def bound(*dyn: Any, **dyn_kwargs: Any) -> Any:
            full: list = [None] * n
            for i, v in zip(nums, statics):
                full[i] = v
            for i, v in zip(dynamic_positions, dyn):
                full[i] = v
            return fun(*full, **named, **dyn_kwargs)

        donate = tuple(dynamic_positions.index(i) for i in self.donate_argnums
                       if i in dynamic_positions)
        return CompiledFunction(bound, donate_argnums=donate, **self.options)


def jit(fun: Callable | None = None, *, static_argnums: Any = (), static_argnames: Any = (),
        donate_argnums: Any = (), **options: Any) -> Any:
    """JAX's spelling of :func:`compile`, with ``static_argnums`` / ``static_argnames``.

    Static arguments are not traced: the function is compiled once for each
    distinct (hashable) value they take, so Python code may branch on them
    freely.  Without static arguments this is ``compile(fun, donate_argnums=...)``
    (which already treats ints, strings and other non-float Python values as
    static); other keyword arguments go to :func:`compile`.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> def power_sum(x, p):
    ...     return cnp.sum(x ** p) if p > 1.5 else cnp.sum(x)
    >>> f = cr.jit(power_sum, static_argnums=1)
    >>> float(f(np.array([1.0, 2.0]), 2.0)), float(f(np.array([1.0, 2.0]), 1.0))
    (5.0, 3.0)
    """
    def norm(v: Any) -> tuple:
        return (v,) if isinstance(v, (int, str)) else tuple(v)

    if fun is None:
        return lambda f: jit(f, static_argnums=static_argnums, static_argnames=static_argnames,
                             donate_argnums=donate_argnums, **options)
    if not callable(fun):
        raise TypeError(f"jit: expected a function, got {type(fun).__name__}")
    nums, names, donate = norm(static_argnums), norm(static_argnames), norm(donate_argnums)
    if not nums and not names:
        return CompiledFunction(fun, donate_argnums=donate, **options)
    return _WithStaticArgs(fun, nums, names, donate, options)
