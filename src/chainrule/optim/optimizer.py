"""``Optimizer``: parameter groups, per-parameter state, ``step`` / ``zero_grad`` / state dicts.

Subclasses implement ``_update(p, g, state, group)``, which changes the
parameter's array **in place** (so the parameter objects a model holds stay
the same) with PyTorch's formula.  Parameters whose ``.grad`` is ``None``
are skipped.

Complex parameters (API section 11): ``.grad`` is ``df/dx - i df/dy``, so
the steepest descent direction is ``-conj(grad)``; the update runs on the
conjugated gradient with the parameter seen as pairs of reals (its real and
imaginary parts side by side, as PyTorch's optimisers view complex
parameters), so every optimiser descends, and the adaptive ones scale the
real and imaginary parts separately.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..core.primitive import Box
from ..core.trace import enable_grad
from ..core.version import bump_version

__all__ = ["Optimizer", "required"]


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required: Any = _Required()


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


class _RealPairs:
    """A complex parameter's array seen as pairs of reals (what ``_update`` works on)."""

    __slots__ = ("data",)
    data: np.ndarray


class Optimizer:
    """Base class of the optimisers (see :class:`chainrule.optim.SGD` for an example)."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        if isinstance(params, Box):
            raise TypeError("params must be an iterable of parameters (or of dicts), not a "
                            "single tensor; wrap it in a list")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones from defaults)."""
        group = dict(group)
        params = group.get("params")
        params = [params] if isinstance(params, Box) else list(params or [])
        for p in params:
            if not isinstance(p, Box) or not p.requires_grad:
                raise TypeError(f"{type(self).__name__} can only optimise tensors that require "
                                f"grad (leaves), got {type(p).__name__}")
            if p._node is not None:
                raise ValueError(f"{type(self).__name__} can only optimise leaf tensors")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        for k, v in self.defaults.items():
            if v is required and k not in group:
                raise ValueError(f"{type(self).__name__}: parameter group needs {k!r}")
            group.setdefault(k, v)
        group["params"] = params
        self._check(group)
        self.param_groups.append(group)

    def _check(self, group: dict[str, Any]) -> None:
        lr = group.get("lr")
        if lr is not None and (not isinstance(lr, (int, float)) or lr < 0):
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr!r}")
        wd = group.get("weight_decay", 0.0)
        if wd < 0:
            raise ValueError(f"{type(self).__name__}: invalid weight_decay {wd!r}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of every parameter (``.grad = None``, or zeros)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = np.zeros_like(_raw(p.grad))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; ``closure`` re-evaluates the loss.

        Every gradient is checked against its parameter's shape before the
        first one is applied, so a bad gradient leaves the whole model as it was.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        work = []
        for group in self.param_groups:
            pairs = []
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if type(g) is not np.ndarray:
                    g = _raw(g)
                    if not hasattr(g, "shape"):  # a Python number
                        g = np.asarray(g)
                a = p.data
                if type(a) is not np.ndarray or g.shape != a.shape:
                    self._check_grad(g, a)
                pairs.append((p, g, a))
            work.append((group, pairs))
        for group, pairs in work:
            self._update_group(group, pairs)
        return loss

    def _check_grad(self, g: Any, a: Any) -> None:
        """Raise ``ValueError`` if the gradient ``g`` does not have the shape of the data ``a``."""
        ps = tuple(getattr(_raw(a), "shape", ()))
        if tuple(g.shape) != ps:
            raise ValueError(
                f"{type(self).__name__}.step: a gradient of shape {tuple(g.shape)} for a "
                f"parameter of shape {ps}; no parameter was changed (set .grad to an "
                "array of the parameter's shape, or to None)")

    def _update_group(self, group: dict[str, Any], pairs: list) -> None:
        """Apply ``_update`` to each checked ``(parameter, raw gradient, data)`` of ``group``."""
        state = self.state
        maximize = group.get("maximize")
        for p, g, _ in pairs:
            if maximize:
                g = -g
            st = state.get(id(p))
            if st is None:
                st = state[id(p)] = {}
            if getattr(g, "dtype", None) is not None and g.dtype.kind == "c":
                self._update_complex(p, g, st, group)
            else:
                self._update(p, g, st, group)
            bump_version(p)

    def _update_complex(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any]
                        ) -> None:
        """The update of a complex parameter, on pairs of reals along ``conj(grad)``."""
        a = np.asarray(_raw(p.data))
        shape, rdt = a.shape, a.real.dtype
        pairs = _RealPairs()
        # reshape(-1) of a contiguous array is a view: the in-place update reaches p.data
        inplace = a.flags.c_contiguous and a.flags.writeable and a is _raw(p.data)
        pairs.data = (a.reshape(-1) if inplace else a.reshape(-1).copy()).view(rdt)
        view = pairs.data
        g = np.ascontiguousarray(np.conj(g)).reshape(-1).view(rdt)
        self._update(pairs, g, state, group)
        if not inplace or pairs.data is not view:
            p.data = np.ascontiguousarray(pairs.data).view(a.dtype).reshape(shape)

    def _update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    @staticmethod
    def _apply(p: Any, delta: Any) -> None:
        """``p += delta`` in place on the parameter's array (same-kind casting)."""
        a = p.data
        if type(a) is np.ndarray and a.flags.writeable:
            np.add(a, delta, out=a, casting="same_kind")
        else:
            p.data = a + delta

    # --- state --------------------------------------------------------------------------
    def _index(self) -> list[Any]:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}`` (copies)."""
        params = self._index()
        ids = {id(p): i for i, p in enumerate(params)}
        state = {ids[k]: copy.deepcopy(v) for k, v in self.state.items() if k in ids and v}
        groups = []
        for g in self.param_groups:
            d = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            d["params"] = [ids[id(p)] for p in g["params"]]
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and per-parameter state; checked before anything changes."""
        groups = state_dict.get("param_groups")
        saved_state = state_dict.get("state", {})
        if groups is None or len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state has "
                             f"{0 if groups is None else len(groups)} parameter groups, the "
                             f"optimiser {len(self.param_groups)}")
        for i, (mine, theirs) in enumerate(zip(self.param_groups, groups)):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: group {i} has "
                                 f"{len(theirs['params'])} parameters in the state but "
                                 f"{len(mine['params'])} in the optimiser")
        params = self._index()
        new_state: dict[int, dict[str, Any]] = {}
        for idx, st in saved_state.items():
            idx = int(idx)
            if not 0 <= idx < len(params):
                raise ValueError(f"{type(self).__name__}.load_state_dict: state for parameter "
                                 f"{idx}, but there are only {len(params)}")
            p = params[idx]
            entry = {}
            for k, v in st.items():
                if isinstance(v, np.ndarray) and v.shape != p.shape:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: state {k!r} of "
                                     f"parameter {idx} has shape {v.shape}, the parameter "
                                     f"{p.shape}")
                entry[k] = copy.deepcopy(v)
            new_state[id(p)] = entry
        for mine, theirs in zip(self.param_groups, groups):
            for k, v in theirs.items():
                if k != "params":
                    mine[k] = copy.deepcopy(v)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"
