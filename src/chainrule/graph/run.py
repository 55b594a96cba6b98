"""Running static graphs: an interpreter of the node graph, compiled per fed shapes.

``node.forward(feed_dict)`` evaluates a node through a compiled program
(:func:`chainrule.compile` on an interpreter of the node graph, cached per node
and per fed shapes); ``node.backward()`` fills the ``.grad`` of every variable
the node depends on; :func:`compile` returns a fast callable for a list of nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..core.primitive import Box
from .dims import Dim, _subst
from .nodes import Node, _placeholders, _topo, gradients

__all__ = ["compile", "GraphFunction", "check_feed"]


# --- running: an interpreter of the node graph, compiled -----------------------------------------


def _size_of(env: dict) -> Callable[[Any, Any, int], int]:
    def size_of(node: Node, path: Any, axis: int) -> int:
        v = env[id(node)]
        v = getattr(v, "_value", v) if isinstance(v, Box) else v  # a tracer: its concrete value
        if path is not None:
            v = v[path]
        return int(np.shape(v)[axis])

    return size_of


class _Runner:
    """Evaluates a list of nodes from fed placeholder arrays and current variable values."""

    def __init__(self, outputs: tuple) -> None:
        from ..compile import CompiledFunction

        for o in outputs:
            if not isinstance(o, Node):
                raise TypeError(f"can only evaluate graph nodes, got {type(o).__name__}")
        self.outputs = outputs
        self.order = _topo(outputs)
        self.placeholders = [n for n in self.order if n._kind == "placeholder"]
        self.variables = [n for n in self.order if n._kind == "variable"]
        self.compiled = CompiledFunction(self._interpret)

    def _interpret(self, *values: Any) -> list:
        env: dict[int, Any] = {}
        for n, v in zip(self.placeholders + self.variables, values):
            env[id(n)] = v
        size_of = _size_of(env)
        resolve = lambda d: d.value(size_of)  # noqa: E731
        for n in self.order:
            if id(n) in env:
                continue
            if n._prim is None or n._known():
                env[id(n)] = n._value
                continue
            args = [env[id(a)] if isinstance(a, Node) else (a.value(size_of) if isinstance(a, Dim)
                                                            else a) for a in n._args]
            params = _subst(n._params, resolve) if n._params else {}
            env[id(n)] = n._prim(*args, **params)
        return [env[id(o)] for o in self.outputs]

    def feed_values(self, feed_dict: dict | None) -> list:
        fed: dict[int, Any] = {}
        for key, value in (feed_dict or {}).items():
            node = _feed_key(key, self.placeholders)
            if node is not None:
                fed[id(node)] = check_feed(node, value)
        values = []
        for p in self.placeholders:
            if id(p) not in fed:
                raise KeyError(f"placeholder {p.name!r} (shape {p.shape}, {p.dtype}) was not "
                               "fed: pass its value in feed_dict, e.g. {" + repr(p.name) +
                               ": array}")
            values.append(fed[id(p)])
        return values

    def run(self, feed_dict: dict | None) -> list:
        values = self.feed_values(feed_dict) + [v._value for v in self.variables]
        return self.compiled(*values)


def _feed_key(key: Any, placeholders: list) -> Node | None:
    """The placeholder a feed key names (``None``: a placeholder this graph does not need)."""
    if isinstance(key, Node):
        if key._kind != "placeholder":
            raise TypeError(f"feed_dict key {key.name!r} is a {key.op} node, not a placeholder; "
                            "only placeholders are fed (use variable.assign() for variables)")
        return key if any(p is key for p in placeholders) else None
    if isinstance(key, str):
        for p in placeholders:
            if p._name == key:
                return p
        if key in _placeholders:
            return None
        names = ", ".join(repr(p.name) for p in placeholders) or "none"
        raise KeyError(f"feed_dict key {key!r} names no placeholder (this graph's placeholders: "
                       f"{names})")
    raise TypeError(f"feed_dict keys must be placeholders or their names, got "
                    f"{type(key).__name__}")


def check_feed(p: Node, value: Any) -> np.ndarray:
    """``value`` as an array of placeholder ``p``'s dtype; ``ValueError`` if the shape conflicts."""
    if isinstance(value, Box):
        while isinstance(value, Box):
            value = value.data
    a = np.asarray(value)
    if a.dtype != p._dtype:
        if not np.can_cast(a.dtype, p._dtype, "same_kind"):
            raise TypeError(f"placeholder {p.name!r} has dtype {p._dtype}, but was fed an array "
                            f"of dtype {a.dtype}")
        a = a.astype(p._dtype)
    if a.ndim != len(p._shape) or any(isinstance(s, int) and s != n
                                      for s, n in zip(p._shape, a.shape)):
        raise ValueError(f"placeholder {p.name!r} has shape {p._shape}, but was fed an array of "
                         f"shape {a.shape}")
    return a


def _runner(outputs: tuple) -> _Runner:
    st = outputs[0]._state()
    key = ("runner",) + tuple(id(o) for o in outputs)
    r = st.get(key)
    if r is None:
        r = st[key] = _Runner(outputs)
    return r


class GraphFunction:
    """A compiled list of nodes: ``run(*input_arrays) -> [values]`` (see :func:`compile`)."""

    def __init__(self, outputs: Any, inputs: Iterable[Node] = ()) -> None:
        self.single = isinstance(outputs, Node)
        outs = (outputs,) if self.single else tuple(outputs)
        for o in outs:
            if not isinstance(o, Node):
                raise TypeError(f"graph.compile: outputs must be nodes, got {type(o).__name__} "
                                "(gradients() gives None for unconnected variables)")
        self.inputs = list(inputs)
        for p in self.inputs:
            if not isinstance(p, Node) or p._kind != "placeholder":
                raise TypeError(f"graph.compile: inputs must be placeholders, got {p!r}")
        self.runner = _Runner(outs)
        missing = [p for p in self.runner.placeholders if not any(p is q for q in self.inputs)]
        if missing:
            raise ValueError("graph.compile: the outputs need placeholder(s) " +
                             ", ".join(repr(p.name) for p in missing) + " that inputs= omits")
        self._pos = [next(i for i, q in enumerate(self.inputs) if q is p)
                     for p in self.runner.placeholders]

    def _values(self, data: tuple) -> list:
        if len(data) != len(self.inputs):
            raise TypeError(f"this compiled graph takes {len(self.inputs)} input(s) "
                            f"({', '.join(p.name for p in self.inputs)}), got {len(data)}")
        checked = [check_feed(p, d) for p, d in zip(self.inputs, data)]
        return [checked[i] for i in self._pos] + [v._value for v in self.runner.variables]

    def __call__(self, *data: Any) -> Any:
        out = self.runner.compiled(*self._values(data))
        return out[0] if self.single else out

    def program(self, *data: Any) -> Any:
        """The optimised program for these inputs' shapes."""
        return self.runner.compiled.program(*self._values(data))

    def source(self, *data: Any) -> str:
        """The generated Python code for these inputs' shapes."""
        return self.runner.compiled.source(*self._values(data))


def compile(outputs: Any, inputs: Iterable[Node] = ()) -> GraphFunction:  # noqa: A001
    """A fast callable evaluating ``outputs`` (a node or a list of nodes) from ``inputs``.

    ``run = compile([loss, gw], inputs=[x])``; ``run(data)`` returns
    ``[loss_value, gw_value]``.  Every placeholder the outputs need must be
    in ``inputs``; variables are read when ``run`` is called, so
    ``assign()`` is honoured.  The program is traced once per input shape.
    """
    return GraphFunction(outputs, inputs)


# --- the running methods of nodes (installed on Node: running sits above building) ------

def _forward(self: Node, feed_dict: dict | None = None) -> Any:
    """Evaluate this node: ``feed_dict`` maps placeholders (or their names) to arrays."""
    out = _runner((self,)).run(feed_dict)[0]
    self._state()["feed"] = feed_dict
    return out


def _backward(self: Node, feed_dict: dict | None = None, **_: Any) -> None:
    """Set ``v.grad = d self / d v`` for every variable ``v`` this scalar node depends on.

    Uses ``feed_dict``, or the feed of the last ``forward`` call.  ``.grad``
    is replaced, not accumulated.
    """
    if any(not isinstance(s, int) or s != 1 for s in self.shape):
        raise ValueError(
            f"backward() needs a scalar node, but {self.name!r} has shape {self.shape}; "
            "reduce it first (e.g. cnp.sum(node)) or use graph.gradients with grad_ys"
        )
    st = self._state()
    if feed_dict is None:
        feed_dict = st.get("feed")
    variables = [n for n in _topo((self,)) if n._kind == "variable" and n.requires_grad]
    grads = st.get("grads")
    if grads is None or grads[0] != [id(v) for v in variables]:
        grads = st["grads"] = ([id(v) for v in variables], gradients(self, variables))
    nodes = [g for g in grads[1] if g is not None]
    values = _runner(tuple(nodes)).run(feed_dict) if nodes else []
    it = iter(values)
    for v, g in zip(variables, grads[1]):
        v.grad = (np.array(next(it), dtype=v._dtype) if g is not None
                  else np.zeros_like(v._value))


# (these are Node's methods, defined here because running builds on nodes)
for _name, _method in (("forward", _forward), ("eval", _forward), ("backward", _backward)):
    setattr(Node, _name, _method)
