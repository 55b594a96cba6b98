"""``Module``: the base of every layer, with parameter registration by attribute.

Assigning a :class:`Parameter` or a :class:`Module` to an attribute
registers it (in order); ``register_buffer`` registers arrays that are part
of the state but not trained (BatchNorm's running statistics).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from ...core.hooks import RemovableHandle, call_hook
from ...core.primitive import Box
from ..parameter import Parameter
from ..serialization import load_state, save_state

__all__ = ["Module"]

LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


class Module:
    """Base class of networks: subclass it, assign layers and parameters, write ``forward``.

    >>> import chainrule as cr
    >>> class Net(cr.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1 = cr.nn.Linear(4, 8)
    ...         self.fc2 = cr.nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         return self.fc2(cr.nn.functional.relu(self.fc1(x)))
    >>> net = Net()
    >>> [name for name, _ in net.named_parameters()]
    ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
    >>> net(cr.numpy.ones((3, 4))).shape
    (3, 2)
    """

    training: bool
    _parameters: dict[str, Any]
    _buffers: dict[str, Any]
    _modules: dict[str, Any]

    def __init__(self) -> None:
        d = self.__dict__
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_modules"] = {}
        d["training"] = True

    # --- registration ------------------------------------------------------------------
    def _registries(self) -> tuple[dict, dict, dict]:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning parameters, "
                "buffers or submodules")
        return d["_parameters"], d["_buffers"], d["_modules"]

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            params, buffers, modules = self._registries()
            buffers.pop(name, None)
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params, buffers, modules = self._registries()
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif "_parameters" in d and name in d["_parameters"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r} of "
                                f"{type(self).__name__}: use a cr.nn.Parameter (or None)")
            d["_parameters"][name] = None
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to submodule {name!r} of "
                                f"{type(self).__name__}: use a cr.nn.Module (or None)")
            d["_modules"][name] = None
        elif "_buffers" in d and name in d["_buffers"]:
            d["_buffers"][name] = None if value is None else _raw(value)
            value = d["_buffers"][name]
        object.__setattr__(self, name, value)  # also a plain attribute: fast lookups

    def __delattr__(self, name: str) -> None:
        for key in ("_parameters", "_buffers", "_modules"):
            self.__dict__.get(key, {}).pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` under ``name`` (``None`` reserves the name, e.g. ``bias=False``)."""
        params, _, _ = self._registries()
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, "
                            f"got {type(param).__name__}")
        params[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, array: Any) -> None:
        """Register a non-trained array (saved in the state dict), e.g. running statistics."""
        _, buffers, _ = self._registries()
        buffers[name] = None if array is None else _raw(array)
        object.__setattr__(self, name, buffers[name])

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as a child under ``name``."""
        _, _, modules = self._registries()
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        modules[name] = module
        object.__setattr__(self, name, module)

    # --- traversal -----------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "", _seen: set | None = None
                      ) -> Iterator[tuple[str, Module]]:
        """This module and all below it, each once, with dotted names."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, m in self.named_children():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True
                         ) -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` pairs; a shared parameter is listed once."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mname, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{name}" if mname else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every trainable parameter (what an optimiser takes)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        for mname, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{name}" if mname else name), b

    def buffers(self) -> Iterator[Any]:
        for _, b in self.named_buffers():
            yield b

    def num_parameters(self) -> int:
        """The number of trainable scalars."""
        return int(sum(int(np.prod(p.shape)) for p in self.parameters()))

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first) and on ``self``."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # --- modes and gradients ---------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active, batch statistics in BatchNorm); returns ``self``."""
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (the same as ``train(False)``); returns ``self``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of every parameter (``.grad = None``, or zeros)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = np.zeros_like(_raw(p.grad))

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, dtype: Any) -> Module:
        """Convert every floating parameter and buffer to ``dtype`` (in place); returns ``self``."""
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.data = np.asarray(p.data).astype(dtype)
                    p.grad = None
            for name, b in list(m._buffers.items()):
                if b is not None and np.issubdtype(np.asarray(b).dtype, np.floating):
                    setattr(m, name, np.asarray(b).astype(dtype))
        return self

    def float(self) -> Module:
        """Parameters and buffers in float32."""
        return self.to(np.float32)

    def double(self) -> Module:
        """Parameters and buffers in float64."""
        return self.to(np.float64)

    # --- state -------------------------------------------------------------------------------
    def _state_entries(self) -> dict[str, tuple[Module, str, bool]]:
        entries: dict[str, tuple[Module, str, bool]] = {}
        for mname, m in self.named_modules():
            for name, p in m._parameters.items():
                if p is not None:
                    entries.setdefault(f"{mname}.{name}" if mname else name, (m, name, True))
            for name, b in m._buffers.items():
                if b is not None:
                    entries.setdefault(f"{mname}.{name}" if mname else name, (m, name, False))
        return entries

    def state_dict(self) -> dict[str, np.ndarray]:
        """``{dotted name: copy of the array}`` for every parameter and buffer."""
        out = {}
        for key, (m, name, is_param) in self._state_entries().items():
            value = m._parameters[name].data if is_param else m._buffers[name]
            out[key] = np.array(value, copy=True)
        return out

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Copy arrays from ``state`` into the parameters and buffers, in place.

        Every key and shape is checked *before* anything changes: a missing or
        unexpected key (with ``strict``) or a shape mismatch raises
        ``ValueError`` naming it, and the module is left as it was.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of names to arrays, "
                            f"got {type(state).__name__}")
        entries = self._state_entries()
        missing = [k for k in entries if k not in state]
        unexpected = [k for k in state if k not in entries]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys: {missing}")
            if unexpected:
                parts.append(f"unexpected keys: {unexpected}")
            raise ValueError(f"load_state_dict into {type(self).__name__}: "
                             + "; ".join(parts) + " (nothing was loaded)")
        plan = []
        for key, (m, name, is_param) in entries.items():
            if key not in state:
                continue
            current = np.asarray(m._parameters[name].data if is_param else m._buffers[name])
            value = np.asarray(_raw(state[key]))
            if value.shape != current.shape:
                raise ValueError(
                    f"load_state_dict: size mismatch for {key!r}: the state has shape "
                    f"{value.shape} but the module has shape {current.shape} (nothing was loaded)")
            if value.dtype == object or not np.can_cast(value.dtype, current.dtype, "same_kind"):
                raise ValueError(
                    f"load_state_dict: {key!r} has dtype {value.dtype}, which cannot be stored "
                    f"in the module's dtype {current.dtype} (nothing was loaded)")
            plan.append((m, name, is_param, value))
        for m, name, is_param, value in plan:  # every check passed: now change things
            if is_param:
                p = m._parameters[name]
                if isinstance(p.data, np.ndarray) and p.data.flags.writeable:
                    np.copyto(p.data, value, casting="same_kind")
                else:
                    p.data = value.astype(np.asarray(p.data).dtype, copy=True)
            else:
                b = m._buffers[name]
                if isinstance(b, np.ndarray) and b.flags.writeable:
                    np.copyto(b, value, casting="same_kind")
                else:
                    setattr(m, name, np.array(value, dtype=np.asarray(b).dtype))
        return LoadResult(missing, unexpected)

    def save(self, path: Any) -> None:
        """Write the state dict to ``path`` as ``.npz`` (read it back with ``cr.nn.load_state``)."""
        save_state(self.state_dict(), path)

    def load(self, path: Any, strict: bool = True) -> LoadResult:
        """``load_state_dict(cr.nn.load_state(path))``."""
        return self.load_state_dict(load_state(path), strict=strict)

    # --- calling and printing ------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    #: True once a forward (pre-)hook was registered: plain calls skip the hook machinery.
    _hooked = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._hooked:
            return self.forward(*args, **kwargs)
        return self._call_with_hooks(args, kwargs)

    def _call_with_hooks(self, args: tuple, kwargs: dict) -> Any:
        for hook in tuple(self.__dict__.get("_forward_pre_hooks", ())):
            r = call_hook(hook, "forward pre-hook", self, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
        output = self.forward(*args, **kwargs)
        for hook in tuple(self.__dict__.get("_forward_hooks", ())):
            r = call_hook(hook, "forward hook", self, args, output)
            if r is not None:
                output = r
        return output

    def _add_hook(self, kind: str, hook: Callable) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"a hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__.get(kind)
        if hooks is None:
            hooks = []
            object.__setattr__(self, kind, hooks)
        hooks.append(hook)
        object.__setattr__(self, "_hooked", True)
        return RemovableHandle(hooks, hook)

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """Call ``hook(module, inputs)`` before each ``forward``; a returned tuple (or a
        single value) replaces the positional inputs.  Returns a handle with ``remove()``.

        >>> import chainrule as cr
        >>> lin = cr.nn.Linear(2, 1)
        >>> handle = lin.register_forward_pre_hook(lambda m, inputs: (inputs[0] * 0,))
        >>> float(lin(cr.numpy.ones((1, 2)))[0, 0]) == float(lin.bias.data[0])
        True
        >>> handle.remove()
        """
        return self._add_hook("_forward_pre_hooks", hook)

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after each ``forward``; a returned value
        replaces the output (feature extraction, inspection).  Returns a handle with
        ``remove()``.

        >>> import chainrule as cr
        >>> features = []
        >>> lin = cr.nn.Linear(2, 3)
        >>> handle = lin.register_forward_hook(lambda m, inputs, out: features.append(out.shape))
        >>> _ = lin(cr.numpy.ones((4, 2)))
        >>> features
        [(4, 3)]
        >>> handle.remove()
        """
        return self._add_hook("_forward_hooks", hook)

    def extra_repr(self) -> str:
        """The text inside ``Name(...)`` when the module is printed."""
        return ""

    def __repr__(self) -> str:
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ")
                 for name, m in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}(" + (f"{extra}" if extra else "")
        return head + "\n" + "\n".join(lines) + "\n)"
