"""The batching trace level: boxes that carry a batched value, and the interpreter behind them.

:func:`chainrule.vmap` opens a *staging level* (``core.trace.new_staging_level``)
whose handler is :meth:`BatchTrace.handle`.  Its boxes, :class:`BatchTracer`,
stand for ONE example; they hold the whole batch in ``_bval`` with the mapped
axis first (the canonical position: every rule receives batched values with
their batch axis at 0, or unbatched values).  Every primitive bound on a
tracer reaches the handler, which looks the primitive's *batching rule* up
by name in :data:`BATCHING_RULES` and applies it to the batched values --
one call of the primitive (or a few) for the whole batch, never a loop.

Batched values may themselves be boxes of lower levels (an eager tensor that
requires grad, a transform opened outside ``vmap``); transforms opened
inside ``vmap`` box the tracers.  So ``vmap`` nests with every transform in
both orders, as levels do.

A tracer answers ``shape``, ``ndim``, ``size`` and ``dtype`` for one example.
Reading its value (``bool()``, ``float()``, ``np.asarray()``...) is impossible:
the value differs per example, so :class:`BatchedValueError` is raised, naming
the operation that made it and suggesting ``cr.cond`` / ``cnp.where``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import numpy as cnp
from ..core.primitive import Box, Primitive
from ..core.trace import EAGER_LEVEL, new_staging_level, release_level
from ..graph.trace import (
    EXTRA_BOX_SLOTS,
    RawView,
    StagedOps,
    _tensor_methods,
    register_staged_type,
    stop_gradient_p,
)
from ..ops._broadcast import reshape as _reshape
from ..ops.indexing import getitem as _getitem
from ..tensor import Tensor

__all__ = ["BatchTracer", "BatchTrace", "BatchedValueError", "BATCHING_RULES",
           "register_batching_rule", "BatchingRule"]

#: ``rule(size, vals, dims, /, **params) -> (out, out_dim)`` (positional-only: a parameter
#: of the primitive may be called ``size``): ``vals`` are the primitive's
#: inputs, batched ones with their batch axis at 0 (``dims[i] == 0``), unbatched ones as
#: they are (``dims[i] is None``); ``size`` is the batch size.  ``out`` is the batched
#: result (a tuple for tuple-valued primitives, every entry batched at 0) and ``out_dim``
#: is 0, or ``None`` when the result does not depend on the mapped axis.
BatchingRule = Callable[..., tuple[Any, "int | None"]]

#: Batching rules by primitive name (``Primitive.name``; unregistered primitives too).
BATCHING_RULES: dict[str, BatchingRule] = {}


def register_batching_rule(prim: Any, rule: BatchingRule) -> None:
    """Register ``rule`` as the batching rule of ``prim`` under :func:`chainrule.vmap`.

    ``prim`` is a :class:`~chainrule.core.primitive.Primitive`, its name, or a
    ``cr.Function`` subclass.  ``rule`` is a function (see :data:`BatchingRule`
    for the signature) or the name of a ready-made family rule of
    :mod:`chainrule.batching.rules`: ``"elementwise"`` (operands broadcast
    like NumPy's, axes lined up from the end) or ``"leading"`` (the operation
    treats extra leading axes as a batch; unbatched operands are broadcast).

    >>> import numpy as np, chainrule as cr
    >>> from chainrule.batching import register_batching_rule
    >>> class Cube(cr.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         return x ** 3
    >>> register_batching_rule(Cube, "elementwise")  # forward works on any shape
    >>> cr.vmap(Cube.apply)(np.array([1.0, 2.0]))
    array([1., 8.])
    """
    if isinstance(prim, type) and hasattr(prim, "_primitive"):
        prim = prim._primitive
    name = prim.name if isinstance(prim, Primitive) else str(prim)
    if isinstance(rule, str):
        if rule not in FAMILY_RULES:
            raise ValueError(f"register_batching_rule: unknown family rule {rule!r}; use one of "
                             f"{sorted(FAMILY_RULES)} or a function")
        if not isinstance(prim, Primitive):
            raise TypeError("register_batching_rule: a family rule needs the primitive itself")
        rule = FAMILY_RULES[rule](prim)
    BATCHING_RULES[name] = rule


#: Family rule makers by name (``maker(prim) -> rule``), filled in by ``rules``.
FAMILY_RULES: dict[str, Callable[[Primitive], BatchingRule]] = {}


class BatchedValueError(TypeError):
    """A batched value was read concretely (``bool()``, ``float()``...) inside ``vmap``."""


def _shape_of(v: Any) -> tuple:
    s = getattr(v, "shape", None)
    return tuple(s) if s is not None else tuple(np.shape(v))


class _BatchedRaw(RawView):
    """What ``tracer.data`` holds: static facts answered, value reads refused."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: BatchTracer) -> None:
        self._tracer = tracer

    def _box(self) -> Any:
        return self._tracer

    def _read(self) -> Any:
        raise self._tracer._read_error("reading the value (np.asarray, or indexing an array "
                                       "or a chainrule function with it)")

    def __len__(self) -> int:
        v = self._tracer._bval
        if isinstance(v, tuple):
            return len(v)
        return len(self._tracer)

    def __getattr__(self, name: str) -> Any:
        if name in _tensor_methods():
            return getattr(self._as_box(), name)
        raise AttributeError(name)  # hasattr() probes (``.get``, ``.compute``) must say no

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        # NumPy functions applied to the raw value are staged through chainrule.numpy on the
        # tracer, gradient stopped (e.g. ``np.expand_dims(labels, -1)`` inside a rule).
        fn = getattr(cnp, func.__name__, None)
        if fn is None or not callable(fn):
            raise self._tracer._read_error(f"numpy.{func.__name__}")

        def lift(a: Any) -> Any:
            if type(a) is _BatchedRaw:
                return stop_gradient_p(a._tracer)
            if type(a) in (list, tuple):
                return type(a)(lift(x) for x in a)
            return a

        return fn(*lift(tuple(args)), **{k: lift(v) for k, v in kwargs.items()})

    def __repr__(self) -> str:
        return f"<batched value of shape {self.shape} and dtype {self.dtype}>"


class BatchTracer(StagedOps, Tensor):
    """A box at a ``vmap`` level: one example's view of a batched value.

    ``_bval`` holds the whole batch (batch axis first), ``_bdim`` is that
    axis (always 0: the canonical position), ``_size`` the batch size and
    ``_origin`` the name of the operation that made it (for error messages).
    """

    __slots__ = ("_bval", "_bdim", "_size", "_origin", "_trace")
    _bval: Any
    _bdim: int
    _size: int
    _origin: str
    _trace: Any

    @property
    def shape(self) -> tuple:
        v = self._bval
        if isinstance(v, tuple):
            return tuple(_shape_of(e)[1:] for e in v)
        return _shape_of(v)[1:]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= int(s)
        return n

    @property
    def dtype(self) -> Any:
        v = self._bval
        if isinstance(v, tuple):
            v = v[0]
        d = getattr(v, "dtype", None)
        return d if d is not None else np.result_type(v)

    def __repr__(self) -> str:
        return f"BatchTracer(shape={self.shape}, dtype={self.dtype}, batch={self._size})"

    @property  # type: ignore[override]
    def requires_grad(self) -> bool:
        return bool(getattr(self._bval, "requires_grad", False))

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        # Watching a batched value (GradientTape.watch) watches the whole batch: its array
        # becomes an eager leaf that records, so the tape can pull per-example gradients.
        if not flag or self.requires_grad:
            return
        v = self._bval
        if isinstance(v, Box):
            v.requires_grad = True
        elif isinstance(v, tuple):
            raise TypeError("cannot watch a tuple-valued result")
        else:
            self._bval = Tensor(v, EAGER_LEVEL, None, True)

    def _read_error(self, what: str) -> BatchedValueError:
        return BatchedValueError(
            f"vmap: {what} of a batched value (the result of {self._origin!r}, shape "
            f"{self.shape} per example) is not possible: it differs from example to example. "
            "Python control flow cannot branch on it; use cr.cond(pred, true_fun, false_fun, "
            "*operands) or cnp.where(cond, a, b) instead, or move the value out of the "
            "mapped arguments (in_axes=None)"
        )

    def __getitem__(self, key: Any) -> Any:
        entries = key if isinstance(key, tuple) else (key,)
        if not any(self._trace.batched_entry(e) for e in entries):
            return _getitem(self, key)
        return self._trace.gather(self, entries)

    def __bool__(self) -> bool:
        raise self._read_error("bool()")

    def __float__(self) -> float:
        raise self._read_error("float()")

    def __int__(self) -> int:
        raise self._read_error("int()")

    def __index__(self) -> int:
        raise self._read_error("using as an index")

    def __complex__(self) -> complex:
        raise self._read_error("complex()")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise self._read_error("numpy.asarray()")

    def numpy(self) -> np.ndarray:
        raise self._read_error(".numpy()")

    def item(self) -> Any:
        raise self._read_error(".item()")

    def tolist(self) -> Any:
        raise self._read_error(".tolist()")


register_staged_type(BatchTracer)
register_staged_type(_BatchedRaw)


class BatchTrace:
    """One ``vmap`` call: its level, its batch size and the handler bound at that level."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.level = new_staging_level(self.handle)

    def close(self) -> None:
        release_level(self.level)

    def box(self, value: Any, origin: str) -> BatchTracer:
        """A tracer standing for ``value`` (batched, batch axis first)."""
        t = BatchTracer.__new__(BatchTracer)
        for s in EXTRA_BOX_SLOTS:
            setattr(t, s, None)
        t._bval = value
        t._bdim = 0
        t._size = self.size
        t._origin = origin
        t._trace = self
        t.data = _BatchedRaw(t)
        t.grad = None
        t._level = self.level
        t._tangent = None
        t._prim = None
        return t

    def batched_entry(self, e: Any) -> bool:
        return (isinstance(e, BatchTracer) and e._level == self.level) or \
            (type(e) is _BatchedRaw and e._tracer._level == self.level)

    def gather(self, x: BatchTracer, entries: tuple) -> BatchTracer:
        """``x[key]`` where the key holds batched integer arrays (one gather for the batch).

        Supported: the integer arrays (batched or not) and ints come first, slices after,
        so NumPy puts the broadcast index axes in front, after the batch axis.
        """
        vals: list[Any] = []
        n_adv, rank = 0, 0
        for e in entries:
            if isinstance(e, slice):
                vals.append(e)
                continue
            if vals and isinstance(vals[-1], slice) or e is None or e is Ellipsis:
                raise IndexError(
                    "vmap: indexing with a batched integer array is supported when the integer "
                    "arrays and ints come first in the key and slices after (x[i], x[i, j], "
                    f"x[i, :]); got {entries!r}")
            v, d = self.lower(e)
            if isinstance(v, Box) and not isinstance(v, BatchTracer):
                v = v.data if v._level == EAGER_LEVEL else v
            kind = getattr(getattr(v, "dtype", None), "kind", "i")
            if kind not in "iu":
                raise IndexError("vmap: a batched index must be an integer array (boolean masks "
                                 "give a data-dependent shape, which vmap cannot batch)")
            n_adv += 1
            r = len(_shape_of(v)) - (0 if d is None else 1)
            rank = max(rank, r)
            vals.append((v, d))
        key: list = [np.arange(self.size).reshape((self.size,) + (1,) * rank)]
        for v in vals:
            if isinstance(v, slice):
                key.append(v)
                continue
            a, d = v
            if d is not None:
                shape = _shape_of(a)
                a = _reshape(a, shape=shape[:1] + (1,) * (rank + 1 - len(shape)) + shape[1:])
            key.append(a)
        return self.box(_getitem(x._bval, tuple(key)), "getitem")

    def lower(self, a: Any) -> tuple[Any, int | None]:
        """``(value one level down, batch dim)`` for one input of a primitive."""
        if isinstance(a, BatchTracer) and a._level == self.level:
            return a._bval, 0
        if type(a) is _BatchedRaw and a._tracer._level == self.level:
            return stop_gradient_p(a._tracer._bval), 0  # a raw value: no derivative
        return a, None

    def handle(self, prim: Primitive, args: tuple, params: dict) -> Any:
        vals, dims = [], []
        for a in args:
            v, d = self.lower(a)
            vals.append(v)
            dims.append(d)
        rule = BATCHING_RULES.get(prim.name)
        if rule is None:
            raise NotImplementedError(_no_rule_message(prim))
        out, out_dim = rule(self.size, vals, dims, **(params or {}))
        if out_dim is None:
            return out
        return self.box(out, prim.name)


def _no_rule_message(prim: Primitive) -> str:
    if "#" in prim.name:  # a cr.Function
        cls = prim.name.split("#")[0].rsplit(".", 1)[-1]
        return (
            f"vmap: the custom operation {cls} (cr.Function) has no batching rule: its forward "
            "runs on raw arrays and chainrule cannot know whether it treats a leading axis as "
            f"a batch. Register one: chainrule.batching.register_batching_rule({cls}, "
            "'elementwise') when forward is elementwise, 'leading') when it treats leading "
            "axes as a batch, or a rule function of your own"
        )
    return (
        f"vmap: the primitive {prim.name!r} has no batching rule; register one with "
        "chainrule.batching.register_batching_rule(prim, rule)"
    )

