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

__all__ = [
    "PyTreeDef", "tree_flatten", "tree_unflatten", "tree_leaves", "tree_structure", "tree_map",
    "flatten", "unflatten",
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


def _sorted_keys(d: dict) -> tuple:
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
        keys = _sorted_keys(tree)
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
