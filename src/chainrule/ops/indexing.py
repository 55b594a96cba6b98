"""Indexing: ``x[key]`` with NumPy's basic and advanced rules, and its transpose.

Two primitives carry everything: ``getitem`` and its transpose ``scatter_add``
(zeros of the input's shape with ``g`` added in at the indexed places, so
repeated indices *accumulate*, as ``numpy.add.at`` does).  Each is the other's
VJP, so derivatives of any order work.

Every key is first put in a canonical form, an :class:`IndexKey`: the
Ellipsis expanded, boolean masks turned into integer arrays (``nonzero``),
``None`` entries taken out (a reshape puts the new axes back) and one entry
per input axis, behind a leading ``Ellipsis``.  That leading Ellipsis makes
the key address the trailing axes, so the same key applies unchanged to a
cotangent or tangent that carries extra leading batch axes.  NumPy moves the
result axes of *separated* advanced indices (``x[i, :, j]``) to the front,
which a batch axis in front would change; such keys are made adjacent by
transposing the indexed axes to the front first, which gives the same result
and keeps batch axes in front.

Backends other than NumPy get integer-array indexing through ``xp.take`` on
the indexed axes flattened into one; the reverse rule then needs a
scatter-add, which the array API standard lacks: it is done exactly through
``take`` when the indices are unique (boolean masks, permutations) and
raises ``NotImplementedError`` for repeated indices.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from ..backend import NUMPY_TYPES, namespace_of
from ..core.primitive import Box, Primitive, primitive
from ..core.trace import STAGING
from . import _broadcast as _bc
from ._broadcast import reshape, transpose_p

__all__ = ["getitem", "take", "take_along_axis"]


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _zeros(xp: Any, shape: tuple, like: Any) -> Any:
    """Zeros of ``like``'s dtype (and device) in namespace ``xp``."""
    if xp is np:
        return np.zeros(shape, dtype=like.dtype)
    device = getattr(like, "device", None)
    if device is not None:
        try:
            return xp.zeros(shape, dtype=like.dtype, device=device)
        except TypeError:
            pass
    return xp.zeros(shape, dtype=like.dtype)


def _full(xp: Any, shape: tuple, value: Any, like: Any) -> Any:
    """``value`` everywhere, with ``like``'s dtype (and device), in namespace ``xp``."""
    if xp is np:
        return np.full(shape, value, dtype=like.dtype)
    device = getattr(like, "device", None)
    if device is not None:
        try:
            return xp.full(shape, value, dtype=like.dtype, device=device)
        except TypeError:
            pass
    return xp.full(shape, value, dtype=like.dtype)


def _xp_name(xp: Any) -> str:
    return getattr(xp, "__name__", type(xp).__name__)


# --- the canonical key ------------------------------------------------------------------------

class IndexKey:
    """A normalised index into the trailing ``len(in_shape)`` axes of an array.

    ``idx`` is ``(Ellipsis, e_0, ..., e_{n-1})`` with one entry per input axis:
    an ``int``, a ``slice`` or an integer array.  Integer arrays (and the
    ints among them) form one adjacent *block* of axes ``block = (p, k)``
    whose result axes ``bshape`` stand in place of the block.  ``unique``
    says that no element is selected twice (so scattering needs no
    accumulation); ``take`` is ``(axis, array)`` when the key is exactly
    ``numpy.take`` along one axis.
    """

    __slots__ = ("idx", "in_shape", "out_shape", "block", "bshape", "unique", "take", "_flat")

    def __init__(self, idx, in_shape, out_shape, block, bshape, unique, take):
        self.idx = idx
        self.in_shape = in_shape
        self.out_shape = out_shape
        self.block = block
        self.bshape = bshape
        self.unique = unique
        self.take = take
        self._flat = None

    def __repr__(self) -> str:
        return f"IndexKey(in_shape={self.in_shape}, out_shape={self.out_shape}, block={self.block})"

    def basic_idx(self) -> tuple:
        """The key with the advanced block replaced by full slices."""
        p, k = self.block
        return self.idx[: 1 + p] + (slice(None),) * k + self.idx[1 + p + k:]

    def flat(self, xp: Any) -> Any:
        """The block's indices as flat positions into the block's axes (1-D, in ``xp``)."""
        if self._flat is not None and namespace_of(self._flat) is xp:
            return self._flat
        p, k = self.block
        dims = self.in_shape[p: p + k]
        flat: Any = 0
        for e, n in zip(self.idx[1 + p: 1 + p + k], dims):
            if isinstance(e, int):
                e = e + n if e < 0 else e
            else:
                e = xp.asarray(e)
                e = xp.where(e < 0, e + n, e)
            flat = flat * n + e
        flat = xp.broadcast_to(xp.asarray(flat), self.bshape)
        self._flat = xp.reshape(flat, (-1,))
        return self._flat


def _clean_slice(s: slice) -> slice:
    def idx(v):
        v = _raw(v)
        return None if v is None else operator.index(v)

    out = slice(idx(s.start), idx(s.stop), idx(s.step))
    if out.step == 0:
        raise ValueError("getitem: slice step cannot be zero")
    return out


def _is_bool_dtype(a: Any, xp: Any) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == np.bool_
    try:
        return xp.isdtype(a.dtype, "bool")
    except AttributeError:
        return str(a.dtype) == "bool"


def _is_int_dtype(a: Any, xp: Any) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype.kind in "iu"
    try:
        return xp.isdtype(a.dtype, "integral")
    except AttributeError:
        return "int" in str(a.dtype)


def _classify(entry: Any, xp: Any) -> tuple[str, Any]:
    e = _raw(entry)
    if e is None:
        return "none", None
    if e is Ellipsis:
        return "ellipsis", None
    if isinstance(e, slice):
        return "slice", _clean_slice(e)
    if isinstance(e, (bool, np.bool_)):
        raise NotImplementedError(
            "getitem: a boolean scalar index (x[True]) is not supported; use x[None] instead"
        )
    if isinstance(e, (int, np.integer)):
        return "int", int(e)
    if not (hasattr(e, "shape") and hasattr(e, "dtype")):
        e = np.asarray(e)
        if e.size == 0 and e.dtype.kind == "f":  # an empty list indexes nothing
            e = e.astype(np.intp)
    if xp is not np and isinstance(e, np.ndarray):
        e = xp.asarray(e)
    if _is_bool_dtype(e, xp):
        if e.ndim == 0:
            raise NotImplementedError(
                "getitem: a 0-d boolean index is not supported; use x[None] instead"
            )
        return "mask", e
    if _is_int_dtype(e, xp):
        if e.ndim == 0:
            return "int", int(e)
        return "array", e
    raise IndexError(
        "getitem: only integers, slices (`:`), ellipsis (`...`), None (`newaxis`) and integer "
        f"or boolean arrays are valid indices, got an array of dtype {e.dtype}"
    )


_SLICE_PART = (int, type(None))


def _slice_len(s: slice, n: Any) -> Any:
    """How many elements slice ``s`` selects from an axis of size ``n``."""
    if isinstance(n, int):
        return len(range(*s.indices(n)))
    if s == slice(None):
        return n
    return n.slice_length(s)  # a size known only when a graph runs (graph.Dim)


def _basic_key(shape: tuple, key: Any) -> IndexKey | None:
    """The common case quickly: only Python ints and slices of ints (None when not that)."""
    entries = key if type(key) is tuple else (key,)
    if len(entries) > len(shape):
        return None
    out = []
    for e, n in zip(entries, shape):
        t = type(e)
        if not isinstance(n, int):  # a size known only when a graph runs (graph.Dim)
            if t is int:
                continue  # NumPy checks the bound at run time
            if t is slice and (type(e.start) in _SLICE_PART and type(e.stop) in _SLICE_PART
                               and type(e.step) in _SLICE_PART and e.step != 0):
                out.append(_slice_len(e, n))
                continue
            return None
        if t is int:
            if not -n <= e < n:
                return None
        elif t is slice:
            if (type(e.start) not in _SLICE_PART or type(e.stop) not in _SLICE_PART
                    or type(e.step) not in _SLICE_PART or e.step == 0):
                return None
            out.append(len(range(*e.indices(n))))
        else:
            return None
    rest = len(shape) - len(entries)
    out.extend(shape[len(entries):])
    idx = (Ellipsis, *entries) + (slice(None),) * rest
    return IndexKey(idx, shape, tuple(out), None, (), True, None)


def _normalize(shape: tuple, key: Any, xp: Any, unique: bool = False):
    """``(perm, IndexKey, final_shape)`` for ``x[key]``.

    ``perm`` (or None) transposes ``x`` first (separated advanced indices);
    ``final_shape`` (or None) is the reshape that puts ``None`` axes back.
    """
    ndim = len(shape)
    raw_entries = key if isinstance(key, tuple) else (key,)
    entries = [_classify(e, xp) for e in raw_entries]
    n_ell = sum(1 for kind, _ in entries if kind == "ellipsis")
    if n_ell > 1:
        raise IndexError("getitem: an index can only have a single ellipsis ('...')")
    consumed = sum(v.ndim if kind == "mask" else 1 for kind, v in entries
                   if kind in ("int", "slice", "array", "mask"))
    if consumed > ndim:
        raise IndexError(
            f"getitem: too many indices for array: array is {ndim}-dimensional, "
            f"but {consumed} were indexed"
        )
    fill = [("slice", slice(None))] * (ndim - consumed)
    if n_ell:
        i = next(i for i, (kind, _) in enumerate(entries) if kind == "ellipsis")
        entries = entries[:i] + fill + entries[i + 1:]
    else:
        entries = entries + fill

    # Boolean masks become integer arrays; check every entry against its axis.
    flat: list[tuple[str, Any, bool]] = []  # (kind, value, from_mask)
    axis = 0
    for kind, v in entries:
        if kind == "mask":
            mshape = tuple(v.shape)
            for j, m in enumerate(mshape):
                if shape[axis + j] != m:
                    raise IndexError(
                        f"getitem: boolean index did not match indexed array along axis "
                        f"{axis + j}; size of axis is {shape[axis + j]} but size of "
                        f"corresponding boolean axis is {m}"
                    )
            nz = np.nonzero(v) if xp is np else xp.nonzero(v)
            flat.extend(("array", a, True) for a in nz)
            axis += len(mshape)
            continue
        if kind == "int":
            n = shape[axis]
            if isinstance(n, int) and not -n <= v < n:  # unknown sizes: checked at run time
                raise IndexError(
                    f"getitem: index {v} is out of bounds for axis {axis} with size {n}"
                )
        if kind != "none":
            axis += 1
        flat.append((kind, v, False))

    has_array = any(kind == "array" for kind, _, _ in flat)
    perm = None
    in_shape = shape
    if has_array:
        adv = [i for i, (kind, _, _) in enumerate(flat) if kind in ("int", "array")]
        if adv[-1] - adv[0] + 1 != len(adv):
            # Separated advanced indices: NumPy puts their result axes first.  Move the
            # indexed axes to the front so the block is adjacent and the result the same.
            axis_of = []
            a = 0
            for kind, _, _ in flat:
                axis_of.append(a if kind != "none" else None)
                if kind != "none":
                    a += 1
            rest = [i for i in range(len(flat)) if i not in adv]
            order = adv + rest
            p = [j for j in (axis_of[i] for i in order) if j is not None]
            flat = [flat[i] for i in order]
            if p != list(range(ndim)):
                perm = tuple(p)
                in_shape = tuple(shape[i] for i in p)

    # Take the None entries out, remembering where their axes go in the result.
    none_at: list[int] = []
    out_shape: list[int] = []
    idx: list[Any] = []
    block = None
    bshape: tuple = ()
    axis = 0
    pos = 0
    arrays = [v for kind, v, _ in flat if kind == "array"]
    if has_array:
        try:
            bshape = tuple(np.broadcast_shapes(*[tuple(a.shape) for a in arrays]))
        except ValueError:
            raise IndexError(
                "getitem: shape mismatch: indexing arrays could not be broadcast together "
                f"with shapes {' '.join(str(tuple(a.shape)) for a in arrays)}"
            ) from None
    for kind, v, _ in flat:
        if kind == "none":
            none_at.append(pos)
            pos += 1
            continue
        if kind == "slice":
            n = _slice_len(v, in_shape[axis])
            out_shape.append(n)
            pos += 1
        elif has_array:
            if block is None:
                block = [axis, 0]
                out_shape.extend(bshape)
                pos += len(bshape)
            block[1] += 1
        idx.append(v)
        axis += 1

    final: Any = None  # (built as a list, kept as a tuple)
    if none_at:
        final = list(out_shape)
        for p_ in none_at:
            final.insert(p_, 1)
        final = tuple(final)
    if has_array:
        unique = unique or all(m for kind, _, m in flat if kind == "array")
    else:
        unique = True
    take_ = None
    if block is not None and block[1] == 1 and len(arrays) == 1 and not isinstance(
            idx[block[0]], int):
        others = idx[: block[0]] + idx[block[0] + 1:]
        if all(s == slice(None) for s in others):
            take_ = (block[0] - len(in_shape), idx[block[0]])
    k = IndexKey((Ellipsis, *idx), tuple(in_shape), tuple(out_shape),
                 tuple(block) if block is not None else None, bshape, unique, take_)
    return perm, k, final


# --- the two primitives -----------------------------------------------------------------------

def _getitem_np(x: Any, key: IndexKey) -> Any:
    if key.take is not None:
        return np.take(x, key.take[1], axis=key.take[0])
    return x[key.idx]


def _getitem_impl(xp: Any, x: Any, key: IndexKey) -> Any:
    if key.block is None:
        return x[key.idx]
    # Integer arrays through xp.take: flatten the block's axes into one, take, reshape.
    p, k = key.block
    n_post = len(key.in_shape) - p - k
    y = x[key.basic_idx()]
    nd = y.ndim
    lead = tuple(y.shape[: nd - k - n_post])
    tail = tuple(y.shape[nd - n_post:])
    n = math.prod(key.in_shape[p: p + k])
    y = xp.reshape(y, lead + (n,) + tail)
    r = xp.take(y, key.flat(xp), axis=len(lead))
    return xp.reshape(r, lead + key.bshape + tail)


def _scatter_np(g: Any, key: IndexKey) -> Any:
    g = np.asarray(g)
    nb = g.ndim - len(key.out_shape)
    z = np.zeros(g.shape[:nb] + key.in_shape, dtype=g.dtype)
    if key.unique:
        z[key.idx] = g
    else:
        np.add.at(z, key.idx, g)
    return z


def _scatter_impl(xp: Any, g: Any, key: IndexKey) -> Any:
    nb = g.ndim - len(key.out_shape)
    z = _zeros(xp, tuple(g.shape[:nb]) + key.in_shape, g)
    if key.block is None:
        if 0 not in tuple(g.shape):  # Dask refuses to assign an empty block
            z[key.idx] = g
        return z
    add_at = getattr(getattr(xp, "add", None), "at", None)
    if add_at is not None:  # CuPy and kin
        add_at(z, key.idx, g)
        return z
    # No scatter-add in the array API: with unique indices, each target element takes at
    # most one value, found through a sort and a search, then gathered with xp.take.
    p, k = key.block
    n_post = len(key.in_shape) - p - k
    bnd = len(key.bshape)
    lead = tuple(g.shape[: g.ndim - bnd - n_post])
    tail = tuple(g.shape[g.ndim - n_post:])
    m = math.prod(key.bshape)
    dims = key.in_shape[p: p + k]
    n = math.prod(dims)
    if m == 0 or n == 0:
        zf = _zeros(xp, lead + (n,) + tail, g)
    else:
        flat = key.flat(xp)
        gr = xp.reshape(g, lead + (m,) + tail)
        order = xp.argsort(flat)
        sflat = xp.take(flat, order)
        if not key.unique and m > 1 and bool(xp.any(sflat[1:] == sflat[:-1])):
            raise NotImplementedError(
                "getitem: the reverse-mode derivative of integer-array indexing with repeated "
                f"indices needs a scatter-add, which the {_xp_name(xp)} backend does not "
                "provide; use unique indices, forward mode, or NumPy arrays"
            )
        rng = xp.arange(n, dtype=flat.dtype)
        pos = xp.clip(xp.searchsorted(sflat, rng), max=m - 1)
        hit = xp.take(sflat, pos) == rng
        zf = xp.take(gr, xp.take(order, pos), axis=len(lead))
        hit = xp.reshape(hit, (n,) + (1,) * len(tail))
        zf = xp.where(hit, zf, xp.zeros_like(zf))
    zb = xp.reshape(zf, lead + tuple(dims) + tail)
    basic = key.basic_idx()
    if all(isinstance(s, slice) and s == slice(None) for s in basic[1:]):
        return zb
    z[basic] = zb
    return z


getitem_p: Primitive = primitive(
    "getitem", _getitem_impl, _getitem_np,
    vjp=(lambda g, out, x, key: scatter_add_p(g, key=key),),
    jvp=(lambda t, out, x, key: getitem_p(t, key=key),),
)
scatter_add_p: Primitive = primitive(
    "scatter_add", _scatter_impl, _scatter_np,
    vjp=(lambda g, out, v, key: getitem_p(g, key=key),),
    jvp=(lambda t, out, v, key: scatter_add_p(t, key=key),),
)


# --- boolean masks whose values are known only at run time ---------------------------------------
# ``x[mask]`` or ``x[:, mask]`` with a staged mask (a graph node): the result's size depends on
# the mask's values, so selection and its transpose are primitives run when the program
# runs.  The mask addresses the axes of ``x`` after the first ``skip`` ones (``ndim`` is
# x's rank without batch axes).

def _mask_key(v: Any, mask: Any, ndim: int, skip: int) -> tuple:
    return (slice(None),) * (v.ndim - ndim + skip) + (mask,)


def _mask_select_impl(xp: Any, x: Any, mask: Any, ndim: int, skip: int) -> Any:
    return x[_mask_key(x, mask, ndim, skip)]


def _mask_scatter_impl(xp: Any, g: Any, mask: Any, ndim: int, skip: int) -> Any:
    at = g.ndim - (1 + ndim - mask.ndim) + skip  # the selected axis of g
    shape = tuple(g.shape[:at]) + tuple(mask.shape) + tuple(g.shape[at + 1:])
    z = _zeros(xp, shape, g)
    z[(slice(None),) * at + (mask,)] = g
    return z


mask_select_p: Primitive = primitive(
    "mask_select", _mask_select_impl,
    vjp=(lambda g, out, x, mask, ndim, skip: mask_scatter_p(g, mask, ndim=ndim, skip=skip),
         None),
    jvp=(lambda t, out, x, mask, ndim, skip: mask_select_p(t, mask, ndim=ndim, skip=skip),
         None),
)
mask_scatter_p: Primitive = primitive(
    "mask_scatter", _mask_scatter_impl,
    vjp=(lambda g, out, v, mask, ndim, skip: mask_select_p(g, mask, ndim=ndim, skip=skip),
         None),
    jvp=(lambda t, out, v, mask, ndim, skip: mask_scatter_p(t, mask, ndim=ndim, skip=skip),
         None),
)


def _staged_mask_index(x: Any, key: tuple) -> Any:
    """``x[mask]``, ``x[:, mask, ...]``: one staged mask with full slices around it."""
    key = key if isinstance(key, tuple) else (key,)
    at = [i for i, k in enumerate(key) if _staged_mask(k) is not None]
    others = [k for i, k in enumerate(key) if i != at[0]]
    if (len(at) != 1 or sum(k is Ellipsis for k in key) > 1
            or not all(k is Ellipsis or (isinstance(k, slice) and k == slice(None))
                       for k in others)):
        raise NotImplementedError(
            "getitem: a boolean mask node whose values are known only when the graph runs "
            "is supported with full slices around it (x[mask], x[:, mask, ...]); apply the "
            "other indices in a separate step")
    mask = key[at[0]]
    skip = at[0]
    if Ellipsis in key[: at[0]]:  # the Ellipsis stands for the axes no other entry takes
        skip = x.ndim - mask.ndim - (len(key) - at[0] - 1)
    if skip < 0 or skip + mask.ndim > x.ndim:
        raise IndexError(f"getitem: too many indices for array: array is {x.ndim}-dimensional, "
                         f"but {skip + mask.ndim} were indexed")
    return mask_select_p(x, mask, ndim=x.ndim, skip=skip)


def _staged_mask(key: Any) -> Any:
    """The key's boolean mask when it is a staged value without a value yet, else None."""
    if isinstance(key, Box) and key._level in STAGING and str(key.dtype) == "bool":  # type: ignore[attr-defined]  # a Tensor
        return key
    return None


# --- public functions -------------------------------------------------------------------------

def _unwrap_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(_raw(k) for k in key)
    return _raw(key)


def _index(x: Any, key: Any, unique: bool = False) -> Any:
    if _staged_mask(key) is not None or (
            isinstance(key, tuple) and any(_staged_mask(k) is not None for k in key)):
        return _staged_mask_index(x, key)
    if not isinstance(x, Box):
        if type(x) in NUMPY_TYPES or isinstance(x, np.ndarray):
            return np.asarray(x)[_unwrap_key(key)]
        raw = x
    else:
        raw = _raw(x)
        if type(raw) in NUMPY_TYPES and not isinstance(raw, np.ndarray):
            raw = np.asarray(raw)
    shape = tuple(raw.shape)
    k = _basic_key(shape, key)
    if k is not None:
        return getitem_p(x, key=k)
    xp = namespace_of(raw)
    perm, k, final = _normalize(shape, key, xp, unique)
    if perm is not None:
        x = transpose_p(x, axes=perm)
    out = getitem_p(x, key=k)
    if final is not None:
        out = reshape(out, shape=final)
    return out


def getitem(x: Any, key: Any) -> Any:
    """``x[key]`` with all of NumPy's indexing, differentiable (what ``Tensor[key]`` calls).

    Integers, slices (any step), ``None``, ``...``, integer arrays or lists
    and boolean masks, in any mix.  The gradient scatters back with
    ``numpy.add.at`` semantics: repeated indices accumulate.

    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> x[[0, 0, 2]].sum().backward()
    >>> x.grad
    array([2., 0., 1.])
    """
    return _index(x, key)


def _int_indices(indices: Any) -> Any:
    idx = _raw(indices)
    if isinstance(idx, (int, np.integer)) and not isinstance(idx, (bool, np.bool_)):
        return int(idx)
    if not (hasattr(idx, "shape") and hasattr(idx, "dtype")):
        idx = np.asarray(idx)
        if idx.size == 0 and idx.dtype.kind == "f":
            idx = idx.astype(np.intp)
    return idx


def _axis(axis: Any, ndim: int, op: str) -> int:
    a = operator.index(axis)
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(
            f"{op}: axis {a} is out of bounds for array of dimension {ndim}"
        )
    return a + ndim if a < 0 else a


def take(a: Any, indices: Any, axis: Any = None, out: Any = None, mode: str = "raise") -> Any:
    """Elements of ``a`` at ``indices`` along ``axis`` (of the flattened array by default).

    Differentiable; repeated indices accumulate in the gradient.  ``mode``
    is ``"raise"``, ``"wrap"`` or ``"clip"`` as in ``numpy.take``.

    >>> import chainrule.numpy as cnp
    >>> cnp.take([[1.0, 2.0], [3.0, 4.0]], [1, 1], axis=1)
    array([[2., 2.],
           [4., 4.]])
    """
    if out is not None:
        raise TypeError("take: out= is not supported (chainrule arrays are not written in place)")
    if not isinstance(a, Box) and (type(a) in NUMPY_TYPES or isinstance(a, np.ndarray)):
        return np.take(np.asarray(a), _raw(indices), axis=axis, mode=mode)  # type: ignore[call-overload]  # NumPy checks mode
    if not isinstance(a, Box) and not hasattr(a, "shape"):
        a = np.asarray(a)
    if axis is None:
        a = reshape(a, shape=(-1,))
        axis = 0
    ax = _axis(axis, a.ndim, "take")
    idx = _int_indices(indices)
    if mode != "raise":
        n = a.shape[ax]
        if mode == "wrap":
            idx = idx % n
        elif mode == "clip":
            idx = np.clip(idx, 0, n - 1) if isinstance(idx, (int, np.ndarray)) else \
                namespace_of(idx).clip(idx, min=0, max=n - 1)
        else:
            raise ValueError(f"take: mode must be 'raise', 'wrap' or 'clip', got {mode!r}")
    return _index(a, (slice(None),) * ax + (idx,))


def _take_along_axis(arr: Any, indices: Any, axis: Any, unique: bool) -> Any:
    if not isinstance(arr, Box) and not hasattr(arr, "shape"):
        arr = np.asarray(arr)
    idx = _int_indices(indices)
    if isinstance(idx, int):
        idx = np.asarray(idx)
    if axis is None:
        if idx.ndim != 1:
            raise ValueError(
                "take_along_axis: when axis=None, `indices` must have a single dimension"
            )
        arr = reshape(arr, shape=(-1,))
        axis = 0
    nd = arr.ndim
    if idx.ndim != nd:
        raise ValueError(
            f"take_along_axis: `indices` and `arr` must have the same number of dimensions, "
            f"got {idx.ndim} and {nd}"
        )
    ax = _axis(axis, nd, "take_along_axis")
    raw = _raw(arr)
    if not isinstance(arr, Box) and isinstance(raw, np.ndarray):
        return np.take_along_axis(raw, idx, axis=ax)
    xp = namespace_of(idx) if not isinstance(idx, np.ndarray) else np
    key = []
    for i, n in enumerate(arr.shape):
        if i == ax:
            key.append(idx)
        else:
            shp = [1] * nd
            shp[i] = n
            key.append(xp.reshape(xp.arange(n), tuple(shp)))
    return _index(arr, tuple(key), unique)


def take_along_axis(arr: Any, indices: Any, axis: Any = -1) -> Any:
    """Pick values along ``axis`` at ``indices`` (same rank as ``arr``), like NumPy's.

    Differentiable; repeated indices accumulate in the gradient.

    >>> import chainrule.numpy as cnp
    >>> cnp.take_along_axis([[3.0, 1.0, 2.0]], [[1, 2, 0]], axis=1)
    array([[1., 2., 3.]])
    """
    return _take_along_axis(arr, indices, axis, False)


# --- concatenation: the transpose of slicing ------------------------------------------------------

def _concat_impl(xp, *arrays, axis):
    fn = getattr(xp, "concat", None) or xp.concatenate
    return fn(list(arrays), axis=axis)


def _concat_np(*arrays, axis):
    return np.concatenate(arrays, axis=axis)


def _concat_vjp(g, out, *arrays, axis):
    # Each input's cotangent is its slice of g along ``axis`` (negative, so batch axes pass).
    tail = (slice(None),) * (-axis - 1)
    cts = []
    start = 0
    for a in arrays:
        n = a.shape[axis]
        cts.append(getitem(g, (Ellipsis, slice(start, start + n)) + tail))
        start += n
    return tuple(cts)


def _concat_jvp(tangents, out, *arrays, axis):
    present = [(t, a) for t, a in zip(tangents, arrays) if t is not None]
    batch = tuple(np.broadcast_shapes(*[tuple(t.shape[: t.ndim - a.ndim]) for t, a in present]))
    like = _raw(present[0][0])
    xp = namespace_of(like)
    parts = []
    for t, a in zip(tangents, arrays):
        shape = batch + tuple(a.shape)
        if t is None:
            parts.append(_zeros(xp, shape, like))
        elif tuple(t.shape) != shape:
            parts.append(_bc.broadcast_to(t, shape=shape))
        else:
            parts.append(t)
    return concat_p(*parts, axis=axis)


concat_p = primitive("concatenate", _concat_impl, _concat_np, vjp=_concat_vjp, jvp=_concat_jvp)
