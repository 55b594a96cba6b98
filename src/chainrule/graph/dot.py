"""Graphviz export: ``to_dot`` (DOT text, no dependency) and ``to_svg`` (needs ``graphviz``).

Nodes are drawn with their name, operation, shape and dtype; placeholders,
variables and constants are coloured.  A :class:`~chainrule.graph.ir.Program`
can be drawn too (one box per equation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ir import Lit, Program, Var, type_str
from .nodes import Node, _topo

__all__ = ["to_dot", "to_svg"]

_STYLE = {
    "placeholder": 'shape=ellipse, style=filled, fillcolor="#cfe2ff"',
    "variable": 'shape=ellipse, style=filled, fillcolor="#d1e7dd"',
    "constant": 'shape=ellipse, style=filled, fillcolor="#eeeeee"',
    "op": "shape=box",
}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _const_label(v: Any) -> str:
    a = np.asarray(v)
    if a.size <= 4:
        return np.array2string(a, separator=",", threshold=4).replace("\n", "")
    return f"const {a.dtype}{list(a.shape)}"


def _node_label(n: Node) -> str:
    shape = n._shape if n._dtype is not None else "tuple"
    dtype = f" {n._dtype}" if n._dtype is not None else ""
    return f"{n.name}\n{n.op}\n{shape}{dtype}"


def to_dot(target: Any, name: str = "chainrule") -> str:
    """Graphviz DOT text for a node, a list of nodes, or a compiled Program.

    >>> from chainrule import graph as G
    >>> x = G.placeholder(shape=(None, 3), name="x")
    >>> print(G.to_dot(x * 2.0).splitlines()[0])
    digraph chainrule {
    """
    if isinstance(target, Program):
        return _program_dot(target, name)
    outputs = [target] if isinstance(target, Node) else list(target)
    lines = [f"digraph {name} {{", "  node [fontname=Helvetica, fontsize=10];"]
    ids: dict[int, str] = {}
    consts = 0
    for n in _topo(outputs):
        nid = f"n{len(ids)}"
        ids[id(n)] = nid
        kind = n._kind if n._prim is None else "op"
        if n._prim is not None and n._known():
            kind = "constant"
        lines.append(f"  {nid} [label={_q(_node_label(n))}, {_STYLE[kind]}];")
        if n._prim is None or n._known():
            continue
        for a in n._args:
            if isinstance(a, Node):
                lines.append(f"  {ids[id(a)]} -> {nid};")
            elif type(a).__name__ == "Dim":
                continue
            else:
                cid = f"c{consts}"
                consts += 1
                lines.append(f"  {cid} [label={_q(_const_label(a))}, shape=plaintext];")
                lines.append(f"  {cid} -> {nid};")
    for o in outputs:
        lines.append(f"  {ids[id(o)]} [penwidth=2];")
    lines.append("}")
    return "\n".join(lines)


def _program_dot(program: Program, name: str) -> str:
    lines = [f"digraph {name} {{", "  node [fontname=Helvetica, fontsize=10];"]
    ids: dict[int, str] = {}
    for i, v in enumerate(program.inputs):
        ids[v.id] = f"i{i}"
        label = _q(f"input {i}\n{type_str(v)}")
        lines.append(f"  i{i} [label={label}, {_STYLE['placeholder']}];")
    for k, e in enumerate(program.eqns):
        eid = f"e{k}"
        label = e.prim.name + (f"\n{type_str(e.out)}" if e.out is not None else "")
        lines.append(f"  {eid} [label={_q(label)}, shape=box];")
        for a in e.inputs:
            if isinstance(a, Var):
                lines.append(f"  {ids[a.id]} -> {eid};")
            elif isinstance(a, Lit):
                cid = f"c{k}_{len(lines)}"
                lines.append(f"  {cid} [label={_q(_const_label(a.value))}, shape=plaintext];")
                lines.append(f"  {cid} -> {eid};")
        if e.out is not None:
            ids[e.out.id] = eid
    for j, o in enumerate(program.outputs):
        label = _q(f"output {j}")
        lines.append(f"  o{j} [label={label}, shape=plaintext];")
        if isinstance(o, Var):
            lines.append(f"  {ids[o.id]} -> o{j};")
    lines.append("}")
    return "\n".join(lines)


def to_svg(target: Any) -> str:
    """SVG text of :func:`to_dot`'s drawing (needs the ``graphviz`` package and program)."""
    try:
        import graphviz
    except ImportError as exc:
        raise ImportError("to_svg needs the graphviz Python package and the Graphviz 'dot' "
                          "program: pip install graphviz (or use to_dot and render it "
                          "yourself)") from exc
    return graphviz.Source(to_dot(target)).pipe(format="svg").decode()
