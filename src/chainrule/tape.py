"""``GradientTape``: TensorFlow-style recording of the operations in a block.

A tape remembers the window of graph nodes created while it was active
(nodes are numbered as they are made), so ``gradient`` follows only the
operations that ran inside the ``with`` block.  Tensors made inside the
block, and those passed to ``watch``, are tracked.  A tape's gradient is
itself recorded (``create_graph``) while any tape is active, which is how
nested tapes give higher derivatives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .core.backward import backward_pass
from .core.primitive import Box, _seq
from .core.trace import state
from .tensor import Tensor, _complex_seed_message, _is_complex_dtype, is_differentiable_dtype

__all__ = ["GradientTape"]

_INF = float("inf")


#: ``hook(tape, target, sources, output_gradients, unconnected)`` functions that
#: ``gradient`` asks first; one that does not apply returns ``NotImplemented``
#: (``vmap`` answers for batched values, see ``chainrule.batching``).
GRADIENT_HOOKS: list = []


def _active_tapes() -> list[GradientTape]:
    return state.tapes


def _flatten(x: Any) -> tuple[list[Any], bool]:
    if isinstance(x, (list, tuple)):
        return list(x), True
    return [x], False


class GradientTape:
    """Record operations in a ``with`` block and differentiate them afterwards.

    >>> import chainrule as cr
    >>> with cr.GradientTape() as tape:
    ...     a = cr.tensor([2.0, 5.0])
    ...     b = cr.tensor([1.0, 2.0])
    ...     e = (a + b) / (a * b)
    >>> tape.gradient(e, a)
    array([-0.25, -0.04])
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True) -> None:
        self.persistent = persistent
        self.watch_accessed_variables = watch_accessed_variables
        self._windows: list[list[float]] = []
        self._used = False

    def __enter__(self) -> GradientTape:
        self._windows.append([next(_seq), _INF])
        state.tapes.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._windows[-1][1] = next(_seq)
        state.tapes.remove(self)

    def _records(self, node: Any) -> bool:
        seq = node._seq
        for start, end in self._windows:
            if start < seq < end:
                return True
        return False

    def watch(self, tensor: Any) -> None:
        """Track ``tensor`` (or every tensor in a list/tuple) from now on."""
        for t in _flatten(tensor)[0]:
            if not isinstance(t, Box):
                raise TypeError(
                    f"GradientTape.watch() needs chainrule tensors, got {type(t).__name__}; "
                    "wrap arrays with cr.tensor(...) first"
                )
            if not is_differentiable_dtype(t.dtype):  # type: ignore[attr-defined]  # a Tensor
                raise TypeError(f"cannot watch a tensor of dtype {t.dtype}: it has no gradient")  # type: ignore[attr-defined]  # a Tensor
            t.requires_grad = True

    def gradient(
        self,
        target: Any,
        sources: Any,
        output_gradients: Any = None,
        unconnected: str = "none",
    ) -> Any:
        """d(target)/d(sources); non-scalar targets are summed unless ``output_gradients``.

        Returns an array per source (a list when ``sources`` is a list or
        tuple), ``None`` for a source that ``target`` does not depend on
        (or zeros with ``unconnected="zero"``).
        """
        if unconnected not in ("none", "zero"):
            raise ValueError(f"unconnected must be 'none' or 'zero', got {unconnected!r}")
        if self._used and not self.persistent:
            raise RuntimeError(
                "a non-persistent GradientTape can compute one gradient only; "
                "use GradientTape(persistent=True) to call gradient() several times"
            )
        self._used = True
        for hook in GRADIENT_HOOKS:
            res = hook(self, target, sources, output_gradients, unconnected)
            if res is not NotImplemented:
                return res
        srcs, many = _flatten(sources)
        targets, _ = _flatten(target)
        outs = _flatten(output_gradients)[0] if output_gradients is not None else None
        create = bool(state.tapes)
        roots = []
        for i, t in enumerate(targets):
            if not (isinstance(t, Box) and t.requires_grad):
                continue
            if outs is not None:
                g = outs[i]
                g = g if (create and isinstance(g, Box)) else _raw(g)
            else:
                if _is_complex_dtype(_raw(t).dtype):
                    raise TypeError(_complex_seed_message("GradientTape.gradient()", t,
                                                          "output_gradients="))
                g = _ones_like(_raw(t))
            roots.append((t, Tensor(g) if create and not isinstance(g, Box) else g))
        results: list[Any] = [None] * len(srcs)
        if roots:
            wanted = [s._node for s in srcs if isinstance(s, Box) and s._node is not None]
            leaves, found = backward_pass(roots, roots[0][0]._level, True, create,
                                          accept=self._records, target_nodes=wanted)
            for i, s in enumerate(srcs):
                if not isinstance(s, Box):
                    continue
                if s._node is not None:
                    results[i] = found.get(s._node)
                elif id(s) in leaves:
                    results[i] = leaves[id(s)][1]
        if unconnected == "zero":
            results = [np.zeros_like(_raw(s)) if r is None else r for r, s in zip(results, srcs)]
        return results if many else results[0]

    def jacobian(self, target: Any, source: Any) -> Any:
        """The full Jacobian, shape ``target.shape + source.shape``, in one batched pass."""
        if self._used and not self.persistent:
            raise RuntimeError("a non-persistent GradientTape can compute one gradient only")
        self._used = True
        tshape = tuple(target.shape)
        sshape = tuple(source.shape)
        raw = _raw(target)
        m = int(np.prod(tshape))
        eye = np.eye(m, dtype=raw.dtype).reshape((m,) + tshape)
        create = bool(state.tapes)
        leaves, found = backward_pass([(target, Tensor(eye) if create else eye)], target._level,
                                      True, create, accept=self._records,
                                      target_nodes=[n for n in (source._node,) if n is not None])
        if source._node is not None:
            g = found.get(source._node)
        else:
            g = leaves.get(id(source), (None, None))[1]
        if g is None:
            return np.zeros(tshape + sshape, dtype=raw.dtype)
        from . import numpy as cnp

        return cnp.reshape(g, tshape + sshape)


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _ones_like(x: Any) -> Any:
    from .backend import namespace_of

    return namespace_of(x).ones_like(x)


