"""Shape ops: reshaping, joining, splitting, flipping, padding, diagonals, sorting.

Primitives here keep their static parameters batch-invariant: axes are
negative (they count from the end), a permutation or pad widths address the
*trailing* axes, so the same parameters apply to a cotangent or tangent
that carries extra leading batch axes.  ``reshape`` and ``broadcast_to`` are
the primitives of ``_broadcast``; ``tile``, ``repeat``, ``stack``, ``split``,
``sort`` and the other composites are built from primitives and need no
rules of their own (``sort`` is a ``take_along_axis`` by the stable argsort
permutation, so its gradient is the inverse permutation).
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
from ._broadcast import _full_perm, _inverse, transpose_p  # noqa: F401  (re-exported)
from .elementwise import where
from .indexing import _axis, _full, _take_along_axis, _zeros, concat_p, getitem, take
from .reductions import normalize_axes
from .reductions import sum as _sum

__all__ = [
    "reshape", "ravel", "transpose", "permute_dims", "matrix_transpose", "swapaxes",
    "moveaxis", "expand_dims", "squeeze", "broadcast_to", "broadcast_arrays", "atleast_1d",
    "atleast_2d", "atleast_3d", "concatenate", "concat", "stack", "hstack", "vstack",
    "dstack", "column_stack", "split", "array_split", "hsplit", "vsplit", "flip", "fliplr",
    "flipud", "roll", "tile", "repeat", "pad", "diag", "diagonal", "trace", "triu", "tril",
    "sort",
]


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _arr(x: Any) -> Any:
    """``x`` itself if it is a tensor or an array, else ``numpy.asarray(x)``."""
    if isinstance(x, Box) or (hasattr(x, "shape") and hasattr(x, "dtype")
                              and type(x) not in (list, tuple)):
        return x
    return np.asarray(x)


def _is_numpy(x: Any) -> bool:
    return not isinstance(x, Box) and (type(x) in NUMPY_TYPES or isinstance(x, np.ndarray))


_NO_OUT = "{}: out= is not supported (chainrule arrays are not written in place)"


def _axes(axis: Any, ndim: int, op: str) -> list[int]:
    axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
    out = [_axis(a, ndim, op) for a in axes]
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return out


def _int_tuple(shape: Any) -> tuple:
    shape = _raw(shape)
    try:
        return (operator.index(shape),)
    except TypeError:
        return tuple(operator.index(_raw(s)) for s in shape)


# --- reshape family (the primitives live in _broadcast) -----------------------------------------

def _resolve_shape(old: tuple, shape: Any) -> tuple:
    new = list(_int_tuple(shape))
    size = math.prod(old)
    unknown = [i for i, s in enumerate(new) if s < 0]
    if len(unknown) > 1:
        raise ValueError(f"reshape: can only specify one unknown dimension, got shape {tuple(new)}")
    if unknown and new[unknown[0]] != -1:
        raise ValueError(f"reshape: negative dimensions are not allowed, got shape {tuple(new)}")
    known = math.prod(s for s in new if s >= 0)
    if unknown:
        if known == 0 or size % known:
            raise ValueError(
                f"reshape: cannot reshape array of size {size} into shape {tuple(new)}"
            )
        new[unknown[0]] = size // known
    elif known != size:
        raise ValueError(f"reshape: cannot reshape array of size {size} into shape {tuple(new)}")
    return tuple(new)


def reshape(a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None,
            copy: Any = None) -> Any:
    """Give ``a`` a new shape with the same data (one entry may be ``-1``), like NumPy's.

    >>> import chainrule.numpy as cnp
    >>> cnp.reshape([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (2, -1))
    array([[1., 2., 3.],
           [4., 5., 6.]])
    """
    if newshape is not None:
        if shape is not None:
            raise TypeError("reshape: pass either shape or newshape, not both")
        shape = newshape
    if shape is None:
        raise TypeError("reshape: missing the required argument 'shape'")
    a = _arr(a)
    target = _resolve_shape(tuple(a.shape), shape)
    if order == "F":
        rev = tuple(range(a.ndim))[::-1]
        t = transpose_p(a, axes=rev) if a.ndim > 1 else a
        r = _bc.reshape(t, shape=target[::-1])
        return transpose_p(r, axes=tuple(range(len(target)))[::-1]) if len(target) > 1 else r
    if order not in ("C", "A"):
        raise ValueError(f"reshape: order must be 'C' or 'F', got {order!r}")
    return _bc.reshape(a, shape=target)


def ravel(a: Any, order: str = "C") -> Any:
    """The elements of ``a`` as a 1-D array."""
    return reshape(a, (-1,), order=order)


def expand_dims(a: Any, axis: Any) -> Any:
    """Insert size-1 axes at ``axis`` (an int or a tuple, positions in the result)."""
    a = _arr(a)
    shape = tuple(a.shape)
    out_nd = len(shape) + (1 if isinstance(axis, (int, np.integer)) else len(axis))
    axes = set(_axes(axis, out_nd, "expand_dims"))
    it = iter(shape)
    new = tuple(1 if i in axes else next(it) for i in range(out_nd))
    return _bc.reshape(a, shape=new)


def squeeze(a: Any, axis: Any = None) -> Any:
    """Remove size-1 axes (all of them, or those in ``axis``)."""
    a = _arr(a)
    shape = tuple(a.shape)
    if axis is None:
        axes = {i for i, s in enumerate(shape) if s == 1}
    else:
        axes = set(_axes(axis, len(shape), "squeeze"))
        for i in sorted(axes):
            if shape[i] != 1:
                raise ValueError(
                    f"squeeze: cannot select an axis to squeeze out which has size not equal "
                    f"to one (axis {i} of shape {shape})"
                )
    return _bc.reshape(a, shape=tuple(s for i, s in enumerate(shape) if i not in axes))


def broadcast_to(array: Any, shape: Any) -> Any:
    """Broadcast ``array`` to ``shape``; the gradient sums over the broadcast axes."""
    array = _arr(array)
    shape = _int_tuple(shape)
    try:
        ok = tuple(np.broadcast_shapes(tuple(array.shape), shape)) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"broadcast_to: cannot broadcast an array of shape {tuple(array.shape)} "
            f"to shape {shape}"
        )
    return _bc.broadcast_to(array, shape=shape)


def broadcast_arrays(*args: Any) -> tuple:
    """Broadcast the arguments against each other."""
    arrs = [_arr(a) for a in args]
    try:
        shape = tuple(np.broadcast_shapes(*[tuple(a.shape) for a in arrs]))
    except ValueError:
        raise ValueError(
            "broadcast_arrays: shapes "
            f"{', '.join(str(tuple(a.shape)) for a in arrs)} cannot be broadcast together"
        ) from None
    return tuple(a if tuple(a.shape) == shape else _bc.broadcast_to(a, shape=shape)
                 for a in arrs)


def _at_least(arys: tuple, fn) -> Any:
    res = [fn(_arr(a)) for a in arys]
    return res[0] if len(res) == 1 else tuple(res)


def _at1(a: Any) -> Any:
    return _bc.reshape(a, shape=(1,)) if a.ndim == 0 else a


def _at2(a: Any) -> Any:
    if a.ndim == 0:
        return _bc.reshape(a, shape=(1, 1))
    if a.ndim == 1:
        return _bc.reshape(a, shape=(1,) + tuple(a.shape))
    return a


def _at3(a: Any) -> Any:
    if a.ndim == 0:
        return _bc.reshape(a, shape=(1, 1, 1))
    if a.ndim == 1:
        return _bc.reshape(a, shape=(1,) + tuple(a.shape) + (1,))
    if a.ndim == 2:
        return _bc.reshape(a, shape=tuple(a.shape) + (1,))
    return a


def atleast_1d(*arys: Any) -> Any:
    """Each input with at least one axis (0-d becomes shape ``(1,)``)."""
    return _at_least(arys, _at1)


def atleast_2d(*arys: Any) -> Any:
    """Each input with at least two axes (1-d ``(N,)`` becomes ``(1, N)``)."""
    return _at_least(arys, _at2)


def atleast_3d(*arys: Any) -> Any:
    """Each input with at least three axes: ``(N,)`` -> ``(1, N, 1)``, ``(M, N)`` -> ``(M, N, 1)``.
    """
    return _at_least(arys, _at3)


# --- transpose ----------------------------------------------------------------------------------

def transpose(a: Any, axes: Any = None) -> Any:
    """Permute the axes (reverse them by default), like ``numpy.transpose``.

    >>> import chainrule.numpy as cnp
    >>> cnp.transpose(cnp.zeros((2, 3, 4)), (1, 0, 2)).shape
    (3, 2, 4)
    """
    a = _arr(a)
    nd = a.ndim
    if axes is None:
        perm = tuple(range(nd))[::-1]
    else:
        perm = tuple(_axis(ax, nd, "transpose") for ax in axes)
        if sorted(perm) != list(range(nd)):
            raise ValueError(
                f"transpose: axes {tuple(axes)} are not a permutation of the {nd} axes of an "
                f"array of shape {tuple(a.shape)}"
            )
    return transpose_p(a, axes=perm)


permute_dims = transpose


def swapaxes(a: Any, axis1: int, axis2: int) -> Any:
    """Interchange two axes."""
    a = _arr(a)
    nd = a.ndim
    i, j = _axis(axis1, nd, "swapaxes"), _axis(axis2, nd, "swapaxes")
    perm = list(range(nd))
    perm[i], perm[j] = perm[j], perm[i]
    return transpose_p(a, axes=tuple(perm))


def matrix_transpose(x: Any) -> Any:
    """Swap the last two axes (a stack of matrices transposed)."""
    x = _arr(x)
    if x.ndim < 2:
        raise ValueError(
            f"matrix_transpose: needs at least 2 dimensions, got shape {tuple(x.shape)}"
        )
    return swapaxes(x, -1, -2)


def moveaxis(a: Any, source: Any, destination: Any) -> Any:
    """Move axes ``source`` to positions ``destination`` (ints or sequences), others in order."""
    a = _arr(a)
    nd = a.ndim
    src = _axes(source, nd, "moveaxis")
    dst = _axes(destination, nd, "moveaxis")
    if len(src) != len(dst):
        raise ValueError(
            "moveaxis: `source` and `destination` arguments must have the same number of elements"
        )
    order = [n for n in range(nd) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose_p(a, axes=tuple(order))


# --- concatenate ---------------------------------------------------------------------------------

# (concat_p lives in indexing.py: its reverse rule is slicing, and reductions need it)

def concatenate(arrays: Any, axis: Any = 0, out: Any = None, dtype: Any = None,
                casting: str = "same_kind") -> Any:
    """Join arrays along an existing axis (``axis=None`` flattens them first).

    >>> import chainrule.numpy as cnp
    >>> cnp.concatenate([[1.0, 2.0], [3.0]])
    array([1., 2., 3.])
    """
    if out is not None:
        raise TypeError(_NO_OUT.format("concatenate"))
    arrs = [_arr(a) for a in arrays]
    if not arrs:
        raise ValueError("concatenate: need at least one array to concatenate")
    if axis is None:
        arrs = [_bc.reshape(a, shape=(math.prod(a.shape),)) for a in arrs]
        axis = 0
    nd = arrs[0].ndim
    if nd == 0:
        raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
    ax = _axis(axis, nd, "concatenate")
    first = tuple(arrs[0].shape)
    for i, a in enumerate(arrs[1:], 1):
        s = tuple(a.shape)
        if len(s) != nd:
            raise ValueError(
                "concatenate: all the input arrays must have the same number of dimensions, but "
                f"the array at index 0 has shape {first} and the array at index {i} has shape {s}"
            )
        if s[:ax] + s[ax + 1:] != first[:ax] + first[ax + 1:]:
            raise ValueError(
                "concatenate: all the input array dimensions except for the concatenation axis "
                f"must match exactly, but the array at index 0 has shape {first} and the array "
                f"at index {i} has shape {s} (axis {ax})"
            )
    res = concat_p(*arrs, axis=ax - nd)
    if dtype is not None:
        from .creation import astype

        res = astype(res, dtype)
    return res


concat = concatenate


def stack(arrays: Any, axis: int = 0, out: Any = None, dtype: Any = None) -> Any:
    """Join arrays of one shape along a new axis.

    >>> import chainrule.numpy as cnp
    >>> cnp.stack([[1.0, 2.0], [3.0, 4.0]], axis=1)
    array([[1., 3.],
           [2., 4.]])
    """
    if out is not None:
        raise TypeError(_NO_OUT.format("stack"))
    arrs = [_arr(a) for a in arrays]
    if not arrs:
        raise ValueError("stack: need at least one array to stack")
    shapes = [tuple(a.shape) for a in arrs]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"stack: all input arrays must have the same shape, got {shapes}")
    ax = _axis(axis, len(shapes[0]) + 1, "stack")
    return concatenate([expand_dims(a, ax) for a in arrs], axis=ax, dtype=dtype)


def hstack(tup: Any, *, dtype: Any = None, casting: str = "same_kind") -> Any:
    """Join horizontally: along axis 1, or axis 0 for 1-d inputs."""
    arrs = [_at1(_arr(a)) for a in tup]
    if not arrs:
        raise ValueError("hstack: need at least one array to concatenate")
    return concatenate(arrs, axis=0 if arrs[0].ndim == 1 else 1, dtype=dtype)


def vstack(tup: Any, *, dtype: Any = None, casting: str = "same_kind") -> Any:
    """Join vertically: along axis 0 after making inputs at least 2-d."""
    return concatenate([_at2(_arr(a)) for a in tup], axis=0, dtype=dtype)


def dstack(tup: Any) -> Any:
    """Join depth-wise: along axis 2 after making inputs at least 3-d."""
    return concatenate([_at3(_arr(a)) for a in tup], axis=2)


def column_stack(tup: Any) -> Any:
    """Stack 1-d arrays as columns of a 2-d array (2-d inputs are joined as they are)."""
    cols = []
    for a in tup:
        a = _arr(a)
        if a.ndim < 2:
            a = _bc.reshape(a, shape=(max(math.prod(a.shape), 1) if a.ndim else 1, 1))
        cols.append(a)
    return concatenate(cols, axis=1)


# --- split ---------------------------------------------------------------------------------------

def _sections(indices_or_sections: Any) -> int | None:
    try:
        return operator.index(_raw(indices_or_sections))
    except TypeError:
        return None


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """Split into pieces (an int: as equal as possible; a list: at those indices)."""
    ary = _arr(ary)
    ax = _axis(axis, ary.ndim, "array_split")
    n = ary.shape[ax]
    sections = _sections(indices_or_sections)
    if sections is not None:
        if sections <= 0:
            raise ValueError("array_split: number of sections must be larger than 0")
        each, extras = divmod(n, sections)
        sizes = [each + 1] * extras + [each] * (sections - extras)
        points = [0]
        for s in sizes:
            points.append(points[-1] + s)
    else:
        points = [0] + [operator.index(i) for i in _raw(indices_or_sections)] + [n]
    lead = (slice(None),) * ax
    return [getitem(ary, lead + (slice(points[i], points[i + 1]),))
            for i in range(len(points) - 1)]


def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """Split into equal pieces (an int that must divide the axis) or at the given indices."""
    ary = _arr(ary)
    sections = _sections(indices_or_sections)
    if sections is not None:
        n = ary.shape[_axis(axis, ary.ndim, "split")]
        if sections <= 0 or n % sections:
            raise ValueError(
                f"split: array split does not result in an equal division ({n} into {sections}); "
                "use array_split for unequal pieces"
            )
    return array_split(ary, indices_or_sections, axis)


def hsplit(ary: Any, indices_or_sections: Any) -> list:
    """Split along axis 1 (axis 0 for 1-d arrays)."""
    ary = _arr(ary)
    if ary.ndim == 0:
        raise ValueError("hsplit: only works on arrays of 1 or more dimensions")
    return split(ary, indices_or_sections, 1 if ary.ndim > 1 else 0)


def vsplit(ary: Any, indices_or_sections: Any) -> list:
    """Split along axis 0 (arrays of at least 2 dimensions)."""
    ary = _arr(ary)
    if ary.ndim < 2:
        raise ValueError("vsplit: only works on arrays of 2 or more dimensions")
    return split(ary, indices_or_sections, 0)


# --- flip and roll -------------------------------------------------------------------------------

flip_p: Primitive = primitive(
    "flip", lambda xp, x, axes: xp.flip(x, axis=axes), lambda x, axes: np.flip(x, axis=axes),
    vjp=(lambda g, out, x, axes: flip_p(g, axes=axes),),
    jvp=(lambda t, out, x, axes: flip_p(t, axes=axes),),
)


def flip(m: Any, axis: Any = None) -> Any:
    """Reverse the order of elements along ``axis`` (all axes by default)."""
    m = _arr(m)
    axes = normalize_axes(axis, m.ndim, "flip")
    if not axes:
        return m
    return flip_p(m, axes=axes)


def fliplr(m: Any) -> Any:
    """Reverse the columns (axis 1)."""
    m = _arr(m)
    if m.ndim < 2:
        raise ValueError(f"fliplr: input must be at least 2-d, got shape {tuple(m.shape)}")
    return flip(m, 1)


def flipud(m: Any) -> Any:
    """Reverse the rows (axis 0)."""
    m = _arr(m)
    if m.ndim < 1:
        raise ValueError("flipud: input must be at least 1-d")
    return flip(m, 0)


roll_p: Primitive = primitive(
    "roll",
    lambda xp, x, shifts, axes: xp.roll(x, shift=shifts, axis=axes),
    lambda x, shifts, axes: np.roll(x, shifts, axis=axes),
    vjp=(lambda g, out, x, shifts, axes: roll_p(g, shifts=tuple(-s for s in shifts), axes=axes),),
    jvp=(lambda t, out, x, shifts, axes: roll_p(t, shifts=shifts, axes=axes),),
)


def roll(a: Any, shift: Any, axis: Any = None) -> Any:
    """Roll elements along ``axis`` (of the flattened array by default); they wrap around."""
    a = _arr(a)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), tuple(a.shape))
    pairs = np.broadcast(np.asarray(_raw(shift)), np.asarray(_raw(axis)))
    if pairs.ndim > 1:
        raise ValueError("roll: 'shift' and 'axis' should be scalars or 1D sequences")
    total: dict[int, int] = {}
    for s, ax in pairs:
        ax = _axis(int(ax), a.ndim, "roll")
        total[ax] = total.get(ax, 0) + int(s)
    axes = tuple(sorted(total))
    shifts = tuple(total[ax] % a.shape[ax] if a.shape[ax] else 0 for ax in axes)
    return roll_p(a, shifts=shifts, axes=tuple(ax - a.ndim for ax in axes))


# --- tile and repeat (broadcasts and takes: their gradients sum the copies) ----------------------

def tile(A: Any, reps: Any) -> Any:
    """Repeat the whole array ``reps`` times along each axis, like ``numpy.tile``."""
    A = _arr(A)
    reps = _int_tuple(reps)
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: negative repetitions are not allowed, got {reps}")
    d = max(len(reps), A.ndim)
    shape = (1,) * (d - A.ndim) + tuple(A.shape)
    reps = (1,) * (d - len(reps)) + reps
    inter = tuple(v for s in shape for v in (1, s))
    spread = tuple(v for r, s in zip(reps, shape) for v in (r, s))
    x = _bc.reshape(A, shape=inter)
    x = _bc.broadcast_to(x, shape=spread)
    return _bc.reshape(x, shape=tuple(r * s for r, s in zip(reps, shape)))


def repeat(a: Any, repeats: Any, axis: Any = None) -> Any:
    """Repeat each element ``repeats`` times (an int, or one count per element) along ``axis``."""
    a = _arr(a)
    if axis is None:
        a = _bc.reshape(a, shape=(math.prod(a.shape),))
        axis = 0
    ax = _axis(axis, a.ndim, "repeat")
    shape = tuple(a.shape)
    n = shape[ax]
    r = np.asarray(_raw(repeats))
    if r.dtype.kind not in "iu":
        raise TypeError(f"repeat: repeats must be integers, got dtype {r.dtype}")
    if np.any(r < 0):
        raise ValueError("repeat: negative repeats are not allowed")
    if r.ndim == 0 or r.shape == (1,):
        k = int(r.reshape(()))
        x = _bc.reshape(a, shape=shape[: ax + 1] + (1,) + shape[ax + 1:])
        x = _bc.broadcast_to(x, shape=shape[: ax + 1] + (k,) + shape[ax + 1:])
        return _bc.reshape(x, shape=shape[:ax] + (n * k,) + shape[ax + 1:])
    if r.shape != (n,):
        raise ValueError(
            f"repeat: repeats of shape {r.shape} do not match axis {ax} of size {n}"
        )
    return take(a, np.repeat(np.arange(n), r), axis=ax)


# --- pad -----------------------------------------------------------------------------------------

def _pad_np(x, widths, values):
    if not any(b or a for b, a in widths):
        return np.array(x)
    nb = np.ndim(x) - len(widths)
    return np.pad(x, ((0, 0),) * nb + widths, mode="constant",
                  constant_values=((0, 0),) * nb + values)


def _pad_impl(xp, x, widths, values):
    nb = x.ndim - len(widths)
    for i, ((b, a), (vb, va)) in enumerate(zip(widths, values)):
        if not b and not a:
            continue
        ax = nb + i
        parts = []
        shp = list(x.shape)
        if b:
            shp[ax] = b
            parts.append(_full(xp, tuple(shp), vb, x))
        parts.append(x)
        if a:
            shp[ax] = a
            parts.append(_full(xp, tuple(shp), va, x))
        x = xp.concat(parts, axis=ax)
    return x


def _pad_vjp(g, out, x, widths, values):
    return getitem(g, (Ellipsis,) + tuple(slice(b, b + n) for (b, _), n in zip(widths, x.shape)))


# Constant padding of the trailing len(widths) axes; ``values`` are per-axis (before, after).
pad_p: Primitive = primitive(
    "pad", _pad_impl, _pad_np,
    vjp=(_pad_vjp,),
    jvp=(lambda t, out, x, widths, values:
         pad_p(t, widths=widths, values=((0, 0),) * len(widths)),),
)

_INDEX_MODES = ("edge", "reflect", "symmetric", "wrap")


def pad(array: Any, pad_width: Any, mode: str = "constant", **kwargs: Any) -> Any:
    """Pad an array, like ``numpy.pad``.

    Modes ``"constant"`` (``constant_values``), ``"edge"``, ``"reflect"``,
    ``"symmetric"``, ``"wrap"`` and ``"empty"`` (zeros) are differentiable;
    the gradient of the copying modes sums the copies back.

    >>> import chainrule.numpy as cnp
    >>> cnp.pad([1.0, 2.0], (1, 2), constant_values=9.0)
    array([9., 1., 2., 9., 9.])
    """
    a = _arr(array)
    nd = a.ndim
    try:
        w = np.broadcast_to(np.asarray(_raw(pad_width)), (nd, 2))
    except ValueError:
        raise ValueError(
            f"pad: pad_width {pad_width!r} does not fit an array of shape {tuple(a.shape)}"
        ) from None
    if w.size and w.dtype.kind not in "iu":
        raise TypeError(f"pad: pad_width must be integers, got {pad_width!r}")
    if np.any(w < 0):
        raise ValueError(f"pad: pad widths cannot be negative, got {pad_width!r}")
    widths = tuple((int(b), int(f)) for b, f in w)
    if mode == "constant" or mode == "empty":
        cv = kwargs.pop("constant_values", 0) if mode == "constant" else 0
        if kwargs:
            raise TypeError(f"pad: unexpected arguments {sorted(kwargs)} for mode {mode!r}")
        vals = np.broadcast_to(np.asarray(_raw(cv)), (nd, 2)).tolist()
        values = tuple((v[0], v[1]) for v in vals)
        if isinstance(a, Box) and not any(b or f for b, f in widths):
            return a
        return pad_p(a, widths=widths, values=values)
    if mode in _INDEX_MODES:
        reflect_type = kwargs.pop("reflect_type", "even")
        if kwargs or reflect_type != "even":
            raise NotImplementedError(
                f"pad: mode {mode!r} supports no options here (got {sorted(kwargs)}, "
                f"reflect_type={reflect_type!r})"
            )
        out = a
        for i, (b, f) in enumerate(widths):
            if b or f:
                idx = np.pad(np.arange(a.shape[i]), (b, f), mode=mode)  # type: ignore[call-overload]  # mode checked above
                out = take(out, idx, axis=i)
        return out
    raise NotImplementedError(
        f"pad: mode {mode!r} is not supported; use 'constant', 'edge', 'reflect', "
        "'symmetric', 'wrap' or 'empty'"
    )


# --- diagonals -----------------------------------------------------------------------------------

def _diag_len(r: int, c: int, k: int) -> int:
    return max(0, min(r, c - k)) if k >= 0 else max(0, min(r + k, c))


def _diagonal_impl(xp, x, offset, axis1, axis2):
    nd = x.ndim
    a1, a2 = nd + axis1, nd + axis2
    rest = tuple(i for i in range(nd) if i not in (a1, a2))
    r, c = x.shape[a1], x.shape[a2]
    y = xp.permute_dims(x, rest + (a1, a2))
    y = xp.reshape(y, tuple(y.shape[:-2]) + (r * c,))
    n = _diag_len(r, c, offset)
    if n == 0:
        return y[..., 0:0]
    start = offset if offset >= 0 else -offset * c
    return y[..., start: start + (n - 1) * (c + 1) + 1: c + 1]


def _diagonal_vjp(g, out, x, offset, axis1, axis2):
    e = diag_embed_p(g, rows=x.shape[axis1], cols=x.shape[axis2], offset=offset)
    return moveaxis(e, (-2, -1), (axis1, axis2))


# ``axis1``/``axis2`` are negative: the diagonal of the same two axes of a batched array.
diagonal_p: Primitive = primitive(
    "diagonal", _diagonal_impl,
    lambda x, offset, axis1, axis2: np.diagonal(x, offset, axis1, axis2),
    vjp=(_diagonal_vjp,),
    jvp=(lambda t, out, x, offset, axis1, axis2:
         diagonal_p(t, offset=offset, axis1=axis1, axis2=axis2),),
)


def _embed_np(d, rows, cols, offset):
    d = np.asarray(d)
    z = np.zeros(d.shape[:-1] + (rows, cols), dtype=d.dtype)
    i = np.arange(d.shape[-1])
    z[..., i + max(-offset, 0), i + max(offset, 0)] = d
    return z


def _embed_impl(xp, d, rows, cols, offset):
    lead = tuple(d.shape[:-1])
    n = d.shape[-1]
    if n == 0 or rows * cols == 0:
        return _zeros(xp, lead + (rows, cols), d)
    # Row i of [d_i, 0 * cols] flattened puts d_i at i * (cols + 1): the diagonal's stride.
    m = xp.concat([xp.reshape(d, lead + (n, 1)), _zeros(xp, lead + (n, cols), d)], axis=-1)
    flat = xp.reshape(m, lead + (n * (cols + 1),))
    start = offset if offset >= 0 else -offset * cols
    total = rows * cols
    length = start + n * (cols + 1)
    parts = [_zeros(xp, lead + (start,), d)] if start else []
    parts.append(flat)
    if length < total:
        parts.append(_zeros(xp, lead + (total - length,), d))
    flat = xp.concat(parts, axis=-1) if len(parts) > 1 else flat
    if length > total:
        flat = flat[..., :total]
    return xp.reshape(flat, lead + (rows, cols))


# The transpose of ``diagonal`` on the last two axes: a (rows, cols) matrix per vector.
diag_embed_p: Primitive = primitive(
    "diag_embed", _embed_impl, _embed_np,
    vjp=(lambda g, out, d, rows, cols, offset:
         diagonal_p(g, offset=offset, axis1=-2, axis2=-1),),
    jvp=(lambda t, out, d, rows, cols, offset:
         diag_embed_p(t, rows=rows, cols=cols, offset=offset),),
)


def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The ``offset`` diagonal of the (``axis1``, ``axis2``) planes, as a last axis.

    >>> import chainrule.numpy as cnp
    >>> cnp.diagonal([[1.0, 2.0], [3.0, 4.0]])
    array([1., 4.])
    """
    a = _arr(a)
    nd = a.ndim
    if nd < 2:
        raise ValueError(f"diagonal: needs at least 2 dimensions, got shape {tuple(a.shape)}")
    i, j = _axis(axis1, nd, "diagonal"), _axis(axis2, nd, "diagonal")
    if i == j:
        raise ValueError("diagonal: axis1 and axis2 cannot be the same")
    return diagonal_p(a, offset=operator.index(offset), axis1=i - nd, axis2=j - nd)


def diag(v: Any, k: int = 0) -> Any:
    """The ``k``-th diagonal of a 2-d array, or a 2-d array with 1-d ``v`` on that diagonal."""
    v = _arr(v)
    k = operator.index(k)
    if v.ndim == 1:
        m = v.shape[0] + abs(k)
        return diag_embed_p(v, rows=m, cols=m, offset=k)
    if v.ndim == 2:
        return diagonal(v, k)
    raise ValueError(f"diag: input must be 1-d or 2-d, got shape {tuple(v.shape)}")


def trace(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None,
          out: Any = None) -> Any:
    """Sum along a diagonal (of the (``axis1``, ``axis2``) planes)."""
    if out is not None:
        raise TypeError(_NO_OUT.format("trace"))
    return _sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


def _tri(xp: Any, r: int, c: int, k: int) -> Any:
    """Boolean (r, c) mask of the elements on and below the ``k``-th diagonal."""
    if xp is np:
        return np.tri(r, c, k, dtype=bool)
    i = xp.reshape(xp.arange(r), (r, 1))
    j = xp.reshape(xp.arange(c), (1, c))
    return (j - i) <= k


def _triangle(m: Any, k: int, upper: bool, op: str) -> Any:
    m = _arr(m)
    k = operator.index(k)
    if m.ndim == 0:
        raise ValueError(f"{op}: input must be at least 1-d")
    raw = _raw(m)
    if not isinstance(raw, (np.ndarray, np.generic)):
        raw_xp = namespace_of(raw)
    else:
        raw_xp = np
    if not isinstance(m, Box) and raw_xp is np:
        return np.triu(m, k) if upper else np.tril(m, k)
    r, c = (m.shape[0], m.shape[0]) if m.ndim == 1 else tuple(m.shape[-2:])
    # (a traced value has no device to ask for: probing it would read its numbers)
    zero = np.zeros((), dtype=m.dtype) if is_staged(m) else _zeros(raw_xp, (), raw)
    if upper:
        return where(_tri(raw_xp, r, c, k - 1), zero, m)
    return where(_tri(raw_xp, r, c, k), m, zero)


def triu(m: Any, k: int = 0) -> Any:
    """Zero the elements below the ``k``-th diagonal (of the last two axes)."""
    return _triangle(m, k, True, "triu")


def tril(m: Any, k: int = 0) -> Any:
    """Zero the elements above the ``k``-th diagonal (of the last two axes)."""
    return _triangle(m, k, False, "tril")


# --- sort ----------------------------------------------------------------------------------------
# On staged values (graph nodes, traced programs) the sorting permutation is not known
# while the program is built, so sorting is a primitive computing it at run time:
# ``sort_like(t, x, axis)`` orders ``t`` the way sorting ``x`` orders ``x`` (``t`` may carry
# leading batch axes); ``unsort`` puts values back, its transpose.  Both are linear in
# ``t`` and constant in ``x`` (the permutation is piecewise constant).


def is_staged(x: Any) -> bool:
    """True for a value traced at a staging level (``vmap``, a compiled program), under any
    number of other levels: its numbers are not there to look at."""
    while isinstance(x, Box):
        if x._level in STAGING:
            return True
        x = x.data
    return False


def _argsort(xp: Any, x: Any, axis: int) -> Any:
    if xp is np:
        return np.argsort(x, axis=axis, kind="stable")
    return xp.argsort(x, axis=axis, stable=True)


def _permuted(xp: Any, t: Any, idx: Any, axis: int) -> Any:
    lead = tuple(t.shape[: t.ndim - idx.ndim])
    idx = xp.broadcast_to(idx, lead + tuple(idx.shape)) if lead else idx
    return xp.take_along_axis(t, idx, axis=axis)


def _sort_like_impl(xp: Any, t: Any, x: Any, axis: int) -> Any:
    return _permuted(xp, t, _argsort(xp, x, axis), axis)


def _unsort_impl(xp: Any, t: Any, x: Any, axis: int) -> Any:
    return _permuted(xp, t, _argsort(xp, _argsort(xp, x, axis), axis), axis)


def _zero_ct_x(g, out, t, x, axis):
    """The (zero) cotangent of the permutation's source ``x``: g's batch axes + x's shape."""
    lead = tuple(g.shape[: g.ndim - len(out.shape)])
    return _bc.broadcast_to(x * 0.0, shape=lead + tuple(x.shape))


def _zero_tan_x(tx, out, t, x, axis):
    """The (zero) tangent from ``x``: tx's batch axes + the output's shape."""
    lead = tuple(tx.shape[: tx.ndim - len(x.shape)])
    return _bc.broadcast_to(out * 0.0, shape=lead + tuple(out.shape))


sort_like_p: Primitive = primitive(
    "sort_like", _sort_like_impl,
    vjp=(lambda g, out, t, x, axis: unsort_p(g, x, axis=axis), _zero_ct_x),
    jvp=(lambda tt, out, t, x, axis: sort_like_p(tt, x, axis=axis), _zero_tan_x),
)
unsort_p: Primitive = primitive(
    "unsort", _unsort_impl,
    vjp=(lambda g, out, t, x, axis: sort_like_p(g, x, axis=axis), _zero_ct_x),
    jvp=(lambda tt, out, t, x, axis: unsort_p(tt, x, axis=axis), _zero_tan_x),
)


def sort(a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *,
         stable: Any = None) -> Any:
    """Sorted copy along ``axis`` (of the flattened array for ``axis=None``).

    The gradient goes back through the (stable) sorting permutation.

    >>> import chainrule.numpy as cnp
    >>> cnp.sort([3.0, 1.0, 2.0])
    array([1., 2., 3.])
    """
    if order is not None:
        raise NotImplementedError("sort: order= (structured arrays) is not supported")
    a = _arr(a)
    if _is_numpy(a):
        return np.sort(a, axis=axis, kind=kind)
    if axis is None:
        a = ravel(a)
        axis = -1
    ax = _axis(axis, a.ndim, "sort")
    if is_staged(a):  # no values until the program runs
        return sort_like_p(a, a, axis=ax - a.ndim)  # type: ignore[attr-defined]  # a Tensor
    raw = _raw(a)
    if isinstance(raw, (np.ndarray, np.generic)):
        idx = np.argsort(raw, axis=ax, kind="stable")
    else:
        xp = namespace_of(raw)
        if not isinstance(a, Box):
            return xp.sort(raw, axis=ax, stable=True)
        idx = xp.argsort(raw, axis=ax, stable=True)
    return _take_along_axis(a, idx, ax, True)
