"""Which array namespace serves the arrays at hand.

NumPy is the default and the fast path: plain ``ndarray`` and NumPy scalars
never leave it (the engine tests ``type(a) in NUMPY_TYPES`` and calls the
NumPy implementation directly; nothing here runs for them).  Any other
array-API library (array-api-strict, CuPy, Dask, ...) is served through its
own namespace, found once per array type and cached.  ``array-api-compat``
is used when installed (it smooths over the libraries that are not fully
compliant, Dask and CuPy among them); otherwise the array's own
``__array_namespace__`` is asked.

Mixing libraries follows the other library's own rules: NumPy arrays mixed
with Dask arrays are fine (Dask accepts NumPy operands, so NumPy weights
with Dask data give Dask results); libraries that refuse NumPy operands
(CuPy, array-api-strict) get a clear ``TypeError`` here instead of their
own message; two different non-NumPy libraries never mix.

The namespace handed to the implementations is a thin :class:`ArrayNamespace`
around the library's namespace.  A function the library does not have raises
:class:`BackendNotImplementedError` -- a ``NotImplementedError`` naming the
chainrule primitive and the backend -- which is also an ``AttributeError``,
so ``hasattr(xp, name)`` and ``getattr(xp, name, None)`` keep working for
implementations that pick a fallback.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

from . import dask_linalg

__all__ = [
    "namespace_of", "is_numpy_namespace", "library_name", "to_numpy", "dtype_in",
    "ArrayNamespace", "BackendNotImplementedError", "NUMPY_TYPES", "register_namespace",
    "REFUSING_TYPES", "refuses_operand",
]

#: Types that NumPy serves directly (Python scalars are promoted by NumPy).
NUMPY_TYPES: frozenset[type] = frozenset(
    {np.ndarray, float, int, bool, complex}
    | {t for t in np.sctypeDict.values() if isinstance(t, type)}
)

#: Libraries (top-level module names) whose arrays accept NumPy arrays as operands.
ACCEPTS_NUMPY: frozenset[str] = frozenset({"dask"})

#: Array types whose operators raise ``TypeError`` for an operand that is not their own
#: array (array-api-strict) instead of returning ``NotImplemented`` (which lets a Tensor on
#: the right handle ``a * t``).  Filled as libraries are met; while it is empty the engine
#: never looks at the rules' inputs for it.
REFUSING_TYPES: set[type] = set()


class _Deferring:
    """A probe operand that asks other arrays to defer to it (as chainrule's Tensor does)."""

    __array_ufunc__ = None
    __array_priority__ = 1e6


def refuses_operand(example: Any) -> bool:
    """True when ``example + other`` raises instead of deferring to a foreign ``other``."""
    try:
        return example.__add__(_Deferring()) is not NotImplemented
    except Exception:
        return True


#: Functions chainrule supplies for a library that lacks them (or whose own are not safe
#: on every input: Dask's blocked LU pivots only inside diagonal blocks, see
#: chainrule.dask_linalg), by (library, qualified name).
SUPPLIED: dict[tuple[str, str], Any] = {
    ("dask", "linalg.inv"): dask_linalg.inv,
    ("dask", "linalg.solve"): dask_linalg.solve,
    ("dask", "linalg.det"): dask_linalg.det,
    ("dask", "linalg.slogdet"): dask_linalg.slogdet,
    ("dask", "linalg.eigh"): dask_linalg.eigh,
}


class BackendNotImplementedError(NotImplementedError, AttributeError):
    """An operation that the array library of the inputs cannot express.

    Also an ``AttributeError``: it is raised when a namespace lacks a
    function, so ``hasattr``/``getattr(..., None)`` fallbacks still work.
    """


class ArrayNamespace:
    """The namespace of a non-NumPy array library, as the implementations see it.

    Attribute access forwards to the library's namespace (and is cached on
    the instance, so later look-ups are plain attribute reads); sub-namespaces
    such as ``linalg`` are wrapped too.  A missing function raises
    :class:`BackendNotImplementedError` naming the primitive being run and the
    library.
    """

    def __init__(self, xp: Any, library: str, accepts_numpy: bool, prefix: str = "") -> None:
        d = self.__dict__
        d["_xp"] = xp
        d["_library"] = library
        d["_accepts_numpy"] = accepts_numpy
        d["_prefix"] = prefix
        d["__name__"] = getattr(xp, "__name__", library)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            return getattr(self._xp, name)
        if name.startswith("_"):  # chainrule's own marks (e.g. _staged), or not set yet
            raise AttributeError(name)
        value = SUPPLIED.get((self._library, self._prefix + name))
        if value is None:
            try:
                value = getattr(self._xp, name)
            except AttributeError:
                raise _missing(self._library, self._prefix + name) from None
        if name in ("linalg", "fft") and not callable(value):
            value = ArrayNamespace(value, self._library, self._accepts_numpy,
                                   self._prefix + name + ".")
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ArrayNamespace is read-only")

    def __repr__(self) -> str:
        return f"<chainrule namespace for {self._library} arrays ({self.__name__})>"


def _calling_primitive() -> str | None:
    """The name of the primitive whose implementation is running (error path only)."""
    f = sys._getframe(2)
    for _ in range(12):
        if f is None:
            return None
        s = f.f_locals.get("self")
        if getattr(type(s), "is_primitive", False):  # (backend sits below core: no import)
            return str(getattr(s, "name", ""))
        f = f.f_back  # type: ignore[assignment]
    return None


def _missing(library: str, fn: str) -> BackendNotImplementedError:
    prim = _calling_primitive()
    what = f"primitive {prim!r}" if prim else f"function {fn!r}"
    return BackendNotImplementedError(
        f"{what} is not implemented for {library} arrays: the {library} namespace has no "
        f"function {fn!r}; convert the inputs to NumPy arrays for this operation, or "
        "express it with other operations"
    )


# --- finding the namespace --------------------------------------------------------------

_cache: dict[type, Any] = {}
_by_library: dict[str, ArrayNamespace] = {}


def library_name(x_or_type: Any) -> str:
    """The top-level module of an array (or array type): ``'numpy'``, ``'dask'``, ``'cupy'``..."""
    if isinstance(x_or_type, ArrayNamespace):
        return x_or_type._library
    if isinstance(x_or_type, ModuleType):
        return x_or_type.__name__.split(".")[0]
    t = x_or_type if isinstance(x_or_type, type) else type(x_or_type)
    return t.__module__.split(".")[0]


def _raw_namespace_of_type(t: type, example: Any) -> Any:
    try:
        import array_api_compat
    except ImportError:
        getter = getattr(example, "__array_namespace__", None)
        if getter is None:
            raise TypeError(
                f"chainrule cannot work with arrays of type {t.__module__}.{t.__name__}: it is "
                "neither a NumPy array nor an array-API array (for Dask or CuPy arrays, "
                "install array-api-compat: pip install 'chainrule[backends]')"
            ) from None
        return getter()
    try:
        return array_api_compat.array_namespace(example)
    except TypeError as exc:
        raise TypeError(
            f"chainrule cannot work with arrays of type {t.__module__}.{t.__name__}: {exc}"
        ) from None


def _namespace_of_type(t: type, example: Any) -> Any:
    # NumPy subclasses (np.matrix, masked arrays, ...) stay on NumPy.
    if isinstance(example, np.ndarray | np.generic):
        return np
    library = library_name(t)
    ns = _by_library.get(library)
    if ns is None:
        xp = _raw_namespace_of_type(t, example)
        if getattr(xp, "__name__", "") in ("numpy", "array_api_compat.numpy"):
            return np
        ns = _by_library[library] = ArrayNamespace(xp, library, library in ACCEPTS_NUMPY)
    if t not in REFUSING_TYPES and refuses_operand(example):
        REFUSING_TYPES.add(t)
    return ns


def namespace_of(*values: Any) -> Any:
    """Return the array namespace serving ``values`` (``numpy`` by default).

    Python scalars, NumPy arrays and scalars, lists, tuples and ``None``
    defer to the other values; the namespace of each other array type is
    looked up once and cached.  NumPy arrays mix with libraries that accept
    them (Dask); a library that refuses NumPy operands (CuPy,
    array-api-strict), or two different libraries, raise ``TypeError``.

    >>> import numpy as np
    >>> namespace_of(np.ones(3), 2.0) is np
    True
    """
    found: Any = np
    for v in values:
        t = type(v)
        if t in NUMPY_TYPES or v is None or t is list or t is tuple:
            continue
        xp = _cache.get(t)
        if xp is None:
            xp = _cache[t] = _namespace_of_type(t, v)
        if xp is np or xp is found:
            continue
        if found is not np:
            raise TypeError(
                f"cannot mix {found._library} arrays and {xp._library} arrays in one "
                f"operation; convert them to one library first"
            )
        found = xp
    if found is not np and not found._accepts_numpy:
        for v in values:
            if isinstance(v, np.ndarray):
                lib = found._library
                raise TypeError(
                    f"cannot mix a NumPy array (shape {v.shape}, dtype {v.dtype}) with "
                    f"{lib} arrays in one operation: {lib} does not accept NumPy operands; "
                    f"convert it first (e.g. {lib}.asarray(a)), or pass a Python scalar"
                )
    return found


def register_namespace(t: type, xp: Any, accepts_numpy: bool = True) -> ArrayNamespace:
    """Serve values of type ``t`` with namespace ``xp`` (an ``ArrayNamespace`` is used as
    it is, so several types can share one).  For chainrule.graph's staged values (graph
    nodes, traced values), whose namespace stages operations instead of computing."""
    ns = xp if isinstance(xp, ArrayNamespace) else ArrayNamespace(xp, library_name(t),
                                                                  accepts_numpy)
    _cache[t] = ns
    return ns


def is_numpy_namespace(xp: ModuleType | Any) -> bool:
    """True when ``xp`` is NumPy itself (the fast path)."""
    return xp is np


def dtype_in(xp: Any, dtype: Any) -> Any:
    """``dtype`` as the namespace ``xp`` spells it (NumPy dtypes map by name)."""
    if xp is np or dtype is None:
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError:
        return dtype  # already the library's own dtype object
    return getattr(xp, name, dtype)


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of an array of any supported library (computes Dask, copies from GPU)."""
    while hasattr(x, "_level") and hasattr(x, "data"):  # a chainrule box
        x = x.data
    if isinstance(x, np.ndarray):
        return x
    lib = library_name(x)
    if lib == "cupy":
        return x.get()
    if lib == "dask":
        return np.asarray(x.compute())
    return np.asarray(x)
