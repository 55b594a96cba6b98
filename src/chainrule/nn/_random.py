"""The random generator shared by ``cr.nn`` (initialisers and dropout).

One NumPy ``Generator`` per process, reseeded with :func:`manual_seed`, so a
seeded script builds the same network and drops the same units every run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["manual_seed", "get_rng", "resolve_rng"]

_state = {"rng": np.random.default_rng()}


def manual_seed(seed: int | None) -> np.random.Generator:
    """Reseed the generator behind ``cr.nn.init`` and dropout; returns it.

    >>> import chainrule as cr
    >>> _ = cr.nn.manual_seed(0)
    >>> a = cr.nn.Linear(2, 2).weight.numpy()
    >>> _ = cr.nn.manual_seed(0)
    >>> bool((cr.nn.Linear(2, 2).weight.numpy() == a).all())
    True
    """
    _state["rng"] = np.random.default_rng(seed)
    return _state["rng"]


def get_rng() -> np.random.Generator:
    """The shared generator."""
    return _state["rng"]


def resolve_rng(rng: Any = None) -> np.random.Generator:
    """``rng`` as a Generator: ``None`` -> the shared one, an int -> a fresh seeded one."""
    if rng is None:
        return _state["rng"]
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
