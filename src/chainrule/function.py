"""``cr.Function``: custom operations, registered through the same door as built-ins.

Each subclass becomes a :class:`~chainrule.core.primitive.Primitive` whose
implementation calls ``forward`` on raw arrays and whose rules call
``backward`` (reverse mode) and ``jvp`` (forward mode).  Values saved with
``ctx.save_for_backward`` that are inputs or the output are handed back to
the rules *as seen by the differentiating level*, so a ``backward`` written
with ``chainrule.numpy`` functions is itself differentiable.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .core.primitive import Box, Primitive
from .ops._broadcast import reshape, sum_to

__all__ = ["Function", "FunctionCtx"]

_ids = itertools.count()


class FunctionCtx:
    """The context object passed to ``forward``, ``backward`` and ``jvp``.

    Store what the rules need with ``save_for_backward(*arrays)`` (read back
    as ``saved_tensors``) or as plain attributes.
    """

    def __init__(self) -> None:
        self._saved: tuple = ()
        self._inputs: tuple = ()
        self._output: Any = None

    def save_for_backward(self, *values: Any) -> None:
        self._saved = values

    @property
    def saved_tensors(self) -> tuple:
        return self._saved

    def _resolved(self, vals: tuple, out: Any) -> FunctionCtx:
        """A view of this context whose saved inputs/output are the level's own values."""
        view = FunctionCtx.__new__(FunctionCtx)
        view.__dict__.update(self.__dict__)
        resolved = []
        for v in self._saved:
            for i, a in enumerate(self._inputs):
                if v is a:
                    resolved.append(vals[i])
                    break
            else:
                resolved.append(out if v is self._output else v)
        view._saved = tuple(resolved)
        return view


def _normalise(cts: Any, n: int, name: str) -> tuple:
    if not isinstance(cts, tuple):
        cts = (cts,)
    if len(cts) != n:
        raise ValueError(f"{name}.backward returned {len(cts)} gradients for {n} inputs")
    return cts


def _shape(x: Any) -> tuple:
    return tuple(getattr(x, "shape", ()))


def _kind(x: Any) -> str:
    while isinstance(x, Box):
        x = x.data
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return {bool: "b", int: "i", float: "f", complex: "c"}.get(type(x), "O")
    try:
        return np.dtype(dtype).kind
    except TypeError:
        name = str(dtype)
        return "c" if "complex" in name else "f" if "float" in name else "O"


def _checked(cts: tuple, g: Any, out: Any, vals: tuple, name: str) -> tuple:
    """Each gradient of ``backward`` has its input's shape (plus the cotangent's leading batch
    axes); one broadcastable to it is summed down (as PyTorch does), anything else is an error."""
    if isinstance(g, (tuple, list)):  # several outputs: any cotangent tells the batch axes
        g, out = next(((gi, oi) for gi, oi in zip(g, out) if gi is not None), (None, None))
    nb = len(_shape(g)) - len(_shape(out))
    batch = _shape(g)[:nb] if nb > 0 else ()
    checked: list[Any] = []
    for i, (ct, x) in enumerate(zip(cts, vals)):
        if ct is None:
            checked.append(ct)
            continue
        want = batch + _shape(x)
        got = _shape(ct)
        kind, xkind = _kind(ct), _kind(x)
        if kind not in "biufc" or (kind == "c" and xkind != "c"):
            raise ValueError(
                f"{name}.backward returned a gradient of dtype kind {kind!r} for input {i} of "
                f"dtype kind {xkind!r} (shape {got} for an input of shape {_shape(x)}); "
                "return a real floating-point array for a real input"
            )
        if got != want and all(type(d) is int for d in got + want):  # (graph sizes: unknown)
            try:
                fits = len(got) >= len(want) and np.broadcast_shapes(want, got) == got
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(
                    f"{name}.backward returned a gradient of shape {got} for input {i}, which "
                    f"has shape {_shape(x)}"
                    + (f" (with {nb} leading batch axes: expected {want})" if batch else "")
                    + "; each gradient must have its input's shape (or one that broadcasting "
                    "the input to would give, which is then summed down)"
                )
            ct = sum_to(ct, shape=(1,) * (len(got) - len(want)) + want)
            if len(got) != len(want):
                ct = reshape(ct, shape=want)
        checked.append(ct)
    return tuple(checked)


class Function:
    """Base class of custom differentiable operations.

    >>> import chainrule as cr
    >>> class Cube(cr.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x ** 2 * g
    >>> x = cr.tensor(2.0, requires_grad=True)
    >>> Cube.apply(x).backward()
    >>> float(x.grad)
    12.0
    """

    _primitive: Primitive

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = f"{cls.__module__}.{cls.__qualname__}#{next(_ids)}"

        def impl(xp: Any, *args: Any, ctx: FunctionCtx) -> Any:
            ctx._inputs = args
            out = cls.forward(ctx, *args)
            ctx._output = out
            return out

        def vjp(g: Any, out: Any, *vals: Any, ctx: FunctionCtx) -> tuple:
            cts = _normalise(cls.backward(ctx._resolved(vals, out), g), len(vals), cls.__name__)
            return _checked(cts, g, out, vals, cls.__name__)

        jvp = None
        if "jvp" in cls.__dict__ or any("jvp" in b.__dict__ for b in cls.__mro__[1:-2]):
            def jvp(tangents: list, out: Any, *vals: Any, ctx: FunctionCtx) -> Any:
                batch = next(t for t in tangents if t is not None)
                filled = [
                    t if t is not None else _zeros_tangent(batch, v, tv)
                    for t, v, tv in zip(tangents, vals, tangents)
                ]
                return cls.jvp(ctx._resolved(vals, out), *filled)  # type: ignore[attr-defined]

        cls._primitive = Primitive(name, impl, vjp=vjp, jvp=jvp)

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any) -> Any:
        raise NotImplementedError("subclasses of cr.Function must define forward(ctx, *inputs)")

    @staticmethod
    def backward(ctx: FunctionCtx, *grads: Any) -> Any:
        raise NotImplementedError("subclasses of cr.Function must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *args: Any) -> Any:
        """Run the operation on tensors or arrays (recorded when inputs require grad)."""
        return cls._primitive(*args, ctx=FunctionCtx())

    def __call__(self, *args: Any) -> Any:
        return type(self).apply(*args)


def _zeros_tangent(batch_example: Any, value: Any, _: Any) -> Any:
    from . import numpy as cnp

    shape = tuple(getattr(value, "shape", ()))
    nb = batch_example.ndim - len(shape)
    return cnp.zeros(tuple(batch_example.shape[:nb]) + shape)


def is_function_primitive(prim: Primitive) -> bool:
    """True for primitives made from ``cr.Function`` subclasses."""
    return "#" in prim.name and isinstance(prim, Primitive) and not isinstance(prim, Box)
