"""Pytrees: nested tuples, lists and dicts whose leaves are arrays, numbers or Tensors.

The transforms (``grad``, ``jacfwd``, ...) take and return pytrees: they
flatten their arguments to a list of leaves, differentiate with respect to
the leaves, and build results with the same structure again.

* tuples (namedtuples keep their type), lists and dicts are *nodes*;
  dict keys are visited in sorted order (as in JAX), so two dicts with the
  same keys have the same structure whatever order they were built in;
* ``None`` is a node with no children (it holds no leaves);
* everything else (arrays, Python numbers, Tensors) is a *leaf*.

>>> from chainrule.pytree import tree_flatten, tree_unflatten
>>> leaves, tree = tree_flatten({"b": (1.0, 2.0), "a": [3.0]})
>>> leaves
[3.0, 1.0, 2.0]
>>> tree_unflatten(tree, [x * 10 for x in leaves])
{'a': [30.0], 'b': (10.0, 20.0)}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .core.primitive import Box
from .ops.shape import concatenate as _concatenate
from .ops.shape import reshape as _reshape

__all__ = [
    "PyTreeDef", "tree_flatten", "tree_unflatten", "tree_leaves", "tree_structure", "tree_map",
    "flatten", "unflatten", "ravel_pytree",
]

_LEAF = "leaf"
_NONE = "none"


class PyTreeDef:
    """The shape of a pytree without its leaves (compare with ``==``)."""

    __slots__ = ("kind", "meta", "children", "num_leaves")

    def __init__(self, kind: Any, meta: Any, children: tuple[PyTreeDef, ...]) -> None:
        self.kind = kind          # "leaf", "none", tuple, list, dict or a namedtuple class
        self.meta = meta          # dict keys (sorted) for dicts, else None
        self.children = children
        self.num_leaves: int = 1 if kind == _LEAF else sum(c.num_leaves for c in children)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PyTreeDef)
            and self.kind == other.kind
            and self.meta == other.meta
            and self.children == other.children
        )

    def __hash__(self) -> int:
        return hash((str(self.kind), self.meta, self.children))

    def __repr__(self) -> str:
        return f"PyTreeDef({self._describe()})"

    def _describe(self) -> str:
        if self.kind == _LEAF:
            return "*"
        if self.kind == _NONE:
            return "None"
        inner = [c._describe() for c in self.children]
        if self.kind is dict:
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(self.meta, inner)) + "}"
        if self.kind is list:
            return "[" + ", ".join(inner) + "]"
        if self.kind is tuple:
            return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"
        return f"{self.kind.__name__}(" + ", ".join(inner) + ")"

    @property
    def is_leaf(self) -> bool:
        return self.kind == _LEAF


_LEAF_DEF = PyTreeDef(_LEAF, None, ())


def sorted_keys(d: dict) -> tuple:
    """The keys of ``d`` in the order pytrees flatten them (sorted when they can be)."""
    keys = tuple(d.keys())
    try:
        return tuple(sorted(keys))
    except TypeError:  # keys of mixed, unorderable types: keep insertion order
        return keys


def _flatten_into(tree: Any, leaves: list) -> PyTreeDef:
    if tree is None:
        return PyTreeDef(_NONE, None, ())
    t = type(tree)
    if t is tuple or t is list:
        return PyTreeDef(t, None, tuple(_flatten_into(c, leaves) for c in tree))
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # namedtuple
        return PyTreeDef(t, None, tuple(_flatten_into(c, leaves) for c in tree))
    if isinstance(tree, dict):
        keys = sorted_keys(tree)
        return PyTreeDef(dict, keys, tuple(_flatten_into(tree[k], leaves) for k in keys))
    leaves.append(tree)
    return _LEAF_DEF


def tree_flatten(tree: Any) -> tuple[list[Any], PyTreeDef]:
    """Split ``tree`` into its list of leaves and its structure.

    >>> tree_flatten((1.0, [2.0, None]))[0]
    [1.0, 2.0]
    """
    leaves: list[Any] = []
    treedef = _flatten_into(tree, leaves)
    return leaves, treedef


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild a tree of structure ``treedef`` from ``leaves`` (in flattening order)."""
    it = iter(leaves)
    tree = _build(treedef, it)
    for _ in it:
        raise ValueError(f"too many leaves for the tree structure {treedef} "
                         f"({treedef.num_leaves} expected)")
    return tree


def _build(td: PyTreeDef, it: Any) -> Any:
    if td.kind == _LEAF:
        try:
            return next(it)
        except StopIteration:
            raise ValueError("too few leaves for the tree structure") from None
    if td.kind == _NONE:
        return None
    children = [_build(c, it) for c in td.children]
    if td.kind is dict:
        return dict(zip(td.meta, children))
    if td.kind is list:
        return children
    if td.kind is tuple:
        return tuple(children)
    return td.kind(*children)  # namedtuple


def tree_leaves(tree: Any) -> list[Any]:
    """The leaves of ``tree``, in flattening order."""
    return tree_flatten(tree)[0]


def tree_structure(tree: Any) -> PyTreeDef:
    """The structure of ``tree`` (its leaves left out)."""
    return tree_flatten(tree)[1]


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Apply ``f`` to every leaf (and the matching leaves of ``rest``), keeping the structure.

    >>> tree_map(lambda a, b: a + b, {"x": 1.0, "y": (2.0,)}, {"x": 10.0, "y": (20.0,)})
    {'x': 11.0, 'y': (22.0,)}
    """
    leaves, treedef = tree_flatten(tree)
    others = []
    for r in rest:
        rl, rd = tree_flatten(r)
        if rd != treedef:
            raise ValueError(f"tree_map: tree structures differ: {treedef} and {rd}")
        others.append(rl)
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others)])


flatten = tree_flatten


def unflatten(treedef: PyTreeDef, leaves: Iterable[Any]) -> Any:
    """Same as :func:`tree_unflatten`."""
    return tree_unflatten(treedef, leaves)


def _data(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def ravel_pytree(tree: Any) -> tuple[Any, Callable[[Any], Any]]:
    """Flatten every leaf of ``tree`` into one 1-d array, and a function that undoes it.

    Returns ``(flat, unravel)``: ``flat`` concatenates the raveled leaves in
    flattening order (a Tensor when a leaf is one, so derivatives flow
    through it), and ``unravel(flat)`` rebuilds the structure, each leaf with
    its shape (Python numbers come back as 0-d arrays).  The dtype of
    ``flat`` is the common dtype of the leaves.

    >>> import numpy as np
    >>> flat, unravel = ravel_pytree({"w": np.array([[1.0, 2.0]]), "b": 3.0})
    >>> flat
    array([3., 1., 2.])
    >>> unravel(flat * 10)
    {'b': array(30.), 'w': array([[10., 20.]])}
    """
    leaves, treedef = tree_flatten(tree)
    datas = [np.asarray(_data(leaf)) for leaf in leaves]
    shapes = [d.shape for d in datas]
    sizes = [int(d.size) for d in datas]
    offsets = np.cumsum([0] + sizes)
    dtype = np.result_type(*datas) if datas else np.dtype(np.float64)
    if any(isinstance(leaf, Box) for leaf in leaves):
        flat = _concatenate([_reshape(leaf, (-1,)) for leaf in leaves], axis=0)
    else:
        flat = np.concatenate([d.ravel() for d in datas]).astype(dtype, copy=False) \
            if datas else np.zeros(0, dtype)

    def unravel(flat_values: Any) -> Any:
        n = int(np.shape(_data(flat_values))[0]) if np.ndim(_data(flat_values)) == 1 else -1
        if n != offsets[-1]:
            raise ValueError(f"unravel: expected a 1-d array of {offsets[-1]} entries, got shape "
                             f"{np.shape(_data(flat_values))}")
        parts = [_reshape(flat_values[offsets[i]:offsets[i + 1]], shapes[i])
                 for i in range(len(shapes))]
        return tree_unflatten(treedef, parts)

    return flat, unravel
