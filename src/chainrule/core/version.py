"""In-place changes of values saved for backward, noticed by a clock (PyTorch's version
counters, made cheaper).

Recorded operations are numbered from one counter (``Box._seq``).  An in-place
change that chainrule makes or offers (an optimiser step, assigning a
parameter's ``.data``) stamps the tensor with the next number of that same
counter, so "changed after the operation that saved it was recorded" is one
comparison at backward time -- and recording pays nothing.  Only changed
tensors are kept in :data:`modified`; while it is empty, backward pays one
truth test per operation.
"""

from __future__ import annotations

import weakref
from typing import Any

from .primitive import Box, _seq, node_of

__all__ = ["modified", "newest", "bump_version", "bump_versions", "check_saved"]

#: ``id(box)`` -> the clock when the box was last changed in place.
modified: dict[int, int] = {}
#: ``[clock]`` of the latest in-place change: an operation recorded after it has nothing
#: to check (the usual training loop: the optimiser steps, then the next forward pass).
newest: list[int] = [-1]


def bump_version(box: Box) -> None:
    """Note that ``box``'s data was changed in place (now, on the recording clock)."""
    if not isinstance(box, Box):
        return
    now = next(_seq)
    newest[0] = now
    node = node_of(box)  # a recorded result: the graph refers to its node, not the tensor
    for obj in (box,) if node is None or node is box else (box, node):
        key = id(obj)
        if key not in modified:
            weakref.finalize(obj, modified.pop, key, None)
        modified[key] = now


def bump_versions(boxes: Any) -> None:
    """:func:`bump_version` for many boxes changed at once (an optimiser step): one tick."""
    now = next(_seq)
    newest[0] = now
    for box in boxes:
        if box._prim is not None or node_of(box) is not None:  # a recorded result
            bump_version(box)
            continue
        key = id(box)
        if key not in modified:
            weakref.finalize(box, modified.pop, key, None)
        modified[key] = now


def check_saved(box: Any) -> None:
    """Raise if an input (or the result) that ``box``'s operation saved changed since (the
    sweep calls it only for operations recorded before the latest change, see ``newest``)."""
    seq = box._seq
    for i, a in enumerate(box._args):
        if isinstance(a, Box):
            stamp = modified.get(id(a))
            if stamp is not None and stamp > seq:
                raise _changed_error(box, f"its input {i} (shape {a.shape})")  # type: ignore[attr-defined]  # boxes are Tensors
    stamp = modified.get(id(box))
    if stamp is not None and stamp > seq:
        raise _changed_error(box, "its result")


def _changed_error(box: Any, what: str) -> RuntimeError:
    return RuntimeError(
        f"one of the values saved for the backward of {box._prim.name!r} -- {what} -- was "
        "modified in place (an optimiser step or an assignment to .data) after the operation "
        "was recorded, so its gradient would be wrong; call backward() before changing it, "
        "or compute the result again after the change"
    )
