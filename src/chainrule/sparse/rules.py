"""Dependency rules: how each primitive's output elements depend on its input elements.

``DEPENDENCY_RULES[name](args, out_shape, params, prim)`` returns the
pattern of the primitive's output (see :mod:`._patterns`) from the patterns
of its inputs; ``args`` are :class:`Arg` objects.  Rules come in families:

* elementwise (with broadcasting): the union of the inputs' patterns,
  gathered to the output shape;
* index-moving operations (reshape, transpose, getitem, pad, concatenate,
  roll, ...): the operation's own implementation applied to
  ``np.arange(size).reshape(shape)`` says which input element each output
  element is a copy of;
* scatters and reductions: a label per input element (the output element it
  flows into), turned into a sparse matrix;
* matrix products as products of patterns, linear algebra as "every element
  of a matrix depends on every element of the matching input matrices".

``HESSIAN_RULES[name]`` names the second-order structure ("nonlinear
interaction") of the primitive: ``"linear"`` couples nothing, ``"nonlinear"``
couples every pair of the dependencies of each output element,
``"multiply"``/``"divide"``/``"bilinear"`` couple across (and for division,
within the denominator).  Primitives missing from ``HESSIAN_RULES`` are
treated as ``"nonlinear"`` (a safe over-estimate).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _patterns as pt

__all__ = ["Arg", "DEPENDENCY_RULES", "HESSIAN_RULES", "ZERO_DERIVATIVE", "conservative"]


class Arg:
    """One input of an equation as the rules see it."""

    __slots__ = ("pattern", "shape", "value", "dep", "dtype")

    def __init__(self, pattern: Any, shape: tuple, value: Any, dep: bool,
                 dtype: Any = None) -> None:
        self.pattern = pattern  # pattern (m x n), a PerBatch, or None (no dependency)
        self.shape = shape  # () for Python scalars
        self.value = value  # the concrete value when it does not depend on x, else None
        self.dep = dep
        self.dtype = dtype  # the NumPy dtype when known (None: unknown)


Rule = Callable[[list, Any, dict, Any], Any]
DEPENDENCY_RULES: dict[str, Rule] = {}
HESSIAN_RULES: dict[str, str] = {}


def _labels(shape: tuple) -> np.ndarray:
    return np.arange(pt.size_of(shape), dtype=np.int64).reshape(shape)


def _broadcast_gather(a: Arg, out_shape: tuple) -> Any:
    """The pattern of ``a`` broadcast to ``out_shape``."""
    if a.pattern is None:
        return None
    if tuple(a.shape) == tuple(out_shape):
        return a.pattern
    return pt.gather(a.pattern, np.broadcast_to(_labels(a.shape), out_shape))


def fold_constant(eq: Any, args: list, consts: dict) -> None:
    """Record the value of an equation computed from constants only (an aid to the rules:
    a failure, or an input whose value is unknown, just leaves it out)."""
    if not all(a.value is not None or a.shape is None for a in args):
        return
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            consts[eq.out.id] = eq.prim.np_impl(*[a.value for a in args], **eq.params)
    except Exception:  # noqa: BLE001 - folding is only an aid
        pass


def pattern_of(eq: Any, args: list) -> Any:
    """The dependency pattern of an equation's output (``None``: it depends on no input)."""
    if not (eq.prim.differentiable and any(a.pattern is not None for a in args)):
        return None
    rule = DEPENDENCY_RULES.get(eq.prim.name, conservative)
    return rule(args, eq.out.shape, eq.params, eq.prim)


def conservative(args: list, out_shape: Any, params: dict, prim: Any) -> Any:
    """Every output element depends on every input element (always safe, often dense)."""
    pats = [a.pattern for a in args if a.pattern is not None]
    pats = [p.P if isinstance(p, pt.PerBatch) else p for p in pats]
    if not pats:
        return None
    n = pats[0].shape[1]
    row = pt.union(*[pt.labels_matrix(np.zeros(p.shape[0], np.int64), 1) @ p for p in pats])
    if out_shape is None:
        return pt.PerBatch(row, ())
    m = pt.size_of(out_shape)
    if m * row.nnz > 50_000_000:
        raise NotImplementedError(
            f"sparsity of {prim.name!r}: no dependency rule, and the conservative dense "
            f"pattern ({m} x {n}) is too large to form"
        )
    return pt.gather(row, np.zeros(m, dtype=np.int64))


# --- elementwise ---------------------------------------------------------------------------

def _elementwise(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    return pt.union(*[_broadcast_gather(a, out_shape) for a in args])


def _zero(args: list, out_shape: Any, params: dict, prim: Any) -> Any:
    return None


def _where(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    # the condition selects and carries no derivative; a constant one selects for good
    cond = args[0]
    x, y = (_broadcast_gather(a, out_shape) for a in args[1:])
    if cond.pattern is None and cond.value is not None:
        picked = np.broadcast_to(np.asarray(cond.value, dtype=bool), out_shape).ravel()
        labels = np.arange(picked.size, dtype=np.int64)
        if x is not None:
            x = pt.gather(x, np.where(picked, labels, -1))
        if y is not None:
            y = pt.gather(y, np.where(picked, -1, labels))
    return pt.union(x, y)


_NONLINEAR_UNARY = (
    "arccos arccosh arcsin arcsinh arctan arctanh cbrt cos cosh erf exp exp2 expm1 log log10 "
    "log1p log2 log_sigmoid reciprocal sigmoid sin sinc sinh softplus sqrt square tan tanh"
).split()
_NONLINEAR_BINARY = "arctan2 hypot logaddexp logaddexp2 power binary_cross_entropy".split()
# piecewise linear: first derivatives only (their second derivative is zero where defined)
_PIECEWISE_LINEAR = "absolute relu maximum minimum fmax fmin clip mod".split()
# (select_grad, the select ops' rule, is linear in g; its other inputs only choose)
_LINEAR_IN_FIRST = ["select_grad"]
_LINEAR = "add subtract negative positive astype".split()
#: Differentiable primitives whose derivative is zero wherever it is defined.
ZERO_DERIVATIVE = ("ceil", "floor", "round")

for _name in _NONLINEAR_UNARY + _NONLINEAR_BINARY:
    DEPENDENCY_RULES[_name] = _elementwise
    HESSIAN_RULES[_name] = "nonlinear"
for _name in _PIECEWISE_LINEAR + _LINEAR + _LINEAR_IN_FIRST:
    DEPENDENCY_RULES[_name] = _elementwise
    HESSIAN_RULES[_name] = "linear"
DEPENDENCY_RULES["multiply"] = _elementwise
HESSIAN_RULES["multiply"] = "multiply"
DEPENDENCY_RULES["divide"] = _elementwise
HESSIAN_RULES["divide"] = "divide"
DEPENDENCY_RULES["where"] = _where
HESSIAN_RULES["where"] = "linear"
for _name in ZERO_DERIVATIVE + ("graph.stop_gradient",):
    DEPENDENCY_RULES[_name] = _zero
    HESSIAN_RULES[_name] = "linear"


def _real_input(a: Arg) -> bool:
    return a.dtype is not None and not np.issubdtype(np.dtype(a.dtype), np.complexfloating)


def _zero_if_real(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """``sign``, ``imag``, ``angle``: constant on real numbers, smooth on complex ones
    (``z / |z|``, ``Im z``, ``arg z``); an input of unknown dtype counts as complex."""
    if _real_input(args[0]):
        return None
    return _elementwise(args, out_shape, params, prim)


DEPENDENCY_RULES["sign"] = _zero_if_real
# |z| and z / |z| are smooth (curved) for complex z: every dependency couples with itself
HESSIAN_RULES["sign"] = "nonlinear"
HESSIAN_RULES["absolute"] = "nonlinear"


# --- index-moving operations ---------------------------------------------------------------

def _index_moving(replace: dict | None = None) -> Rule:
    """Run the primitive on the (1-based) labels of its inputs' elements: every output
    element is a copy of the input element whose label it holds (0: of none, e.g. padding).
    ``replace`` overrides parameters that would write other numbers (fill values)."""

    def rule(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
        if replace:
            params = {**params, **{k: f(params[k]) for k, f in replace.items() if k in params}}
        offset = 1
        labelled = []
        pats = []
        for a in args:
            size = pt.size_of(a.shape)
            labelled.append(np.arange(offset, offset + size, dtype=np.int64).reshape(a.shape))
            offset += size
            p = a.pattern
            if p is None:
                p = pt.empty(size, _width(args))
            pats.append(p)
        moved = np.asarray(prim.np_impl(*labelled, **params))
        stacked = pats[0] if len(pats) == 1 else pt.sp.vstack(pats, format="csr")
        return pt.gather(stacked, moved.ravel() - 1)

    return rule


def _width(args: list) -> int:
    for a in args:
        if a.pattern is not None:
            return a.pattern.shape[1]
    raise AssertionError("a rule ran on an equation with no dependent input")


for _name in ("reshape", "transpose", "broadcast_to", "flip", "roll", "diagonal", "_linalg_mT",
              "getitem", "concatenate", "diag_embed", "transforms.take_block",
              "transforms.pad_block"):
    DEPENDENCY_RULES[_name] = _index_moving()
    HESSIAN_RULES[_name] = "linear"
DEPENDENCY_RULES["pad"] = _index_moving({"values": lambda v: tuple((0, 0) for _ in v)})
HESSIAN_RULES["pad"] = "linear"
DEPENDENCY_RULES["im2col"] = _index_moving({"fill": lambda v: 0})
HESSIAN_RULES["im2col"] = "linear"


def _scatter_add(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """``out = zeros.at[key].add(g)``: ``g``'s element j flows into the output element that
    ``getitem(labels of out, key)`` names at position j."""
    key = params["key"]
    (g,) = args
    targets = np.asarray(DEPENDENCY_RULES_IMPL["getitem"](_labels(tuple(key.in_shape)), key=key))
    targets = np.broadcast_to(targets, g.shape)
    L = pt.labels_matrix(targets, pt.size_of(out_shape))
    return pt.apply(L, g.pattern)


def _col2im(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """The transpose of ``im2col``: im2col of the output's labels names each input
    element's destination."""
    (c,) = args
    labels = _labels(tuple(out_shape)) + 1
    lead = tuple(out_shape[:-2])
    cols = np.asarray(DEPENDENCY_RULES_IMPL["im2col"](
        labels.reshape(lead + tuple(out_shape[-2:])), kernel=params["kernel"],
        stride=params["stride"], padding=params["padding"], fill=0)) - 1
    L = pt.labels_matrix(np.broadcast_to(cols, c.shape), pt.size_of(out_shape))
    return pt.apply(L, c.pattern)


DEPENDENCY_RULES["scatter_add"] = _scatter_add
HESSIAN_RULES["scatter_add"] = "linear"
DEPENDENCY_RULES["col2im"] = _col2im
HESSIAN_RULES["col2im"] = "linear"
#: implementations used by rules of other primitives (filled in by ``install``)
DEPENDENCY_RULES_IMPL: dict[str, Callable] = {}


# --- reductions ----------------------------------------------------------------------------

def _norm_axes(axes: Any, ndim: int) -> tuple:
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    return tuple(sorted(a % ndim for a in axes)) if ndim else ()


def _reduce_labels(shape: tuple, axes: tuple) -> tuple[np.ndarray, int]:
    """For each element of an array of ``shape``, its group when ``axes`` are reduced."""
    kept = tuple(1 if i in axes else s for i, s in enumerate(shape))
    groups = pt.size_of(kept)
    return np.broadcast_to(_labels(kept), shape), groups


def _reduce(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    x = args[0]
    axes = _norm_axes(params.get("axes"), len(x.shape))
    labels, groups = _reduce_labels(tuple(x.shape), axes)
    return pt.apply(pt.labels_matrix(labels, groups), x.pattern)


def _sum_to(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    x = args[0]
    shape = tuple(params["shape"])
    lead = len(x.shape) - len(shape)
    padded = (1,) * lead + shape
    labels = np.broadcast_to(_labels(shape).reshape(padded), x.shape)
    return pt.apply(pt.labels_matrix(labels, pt.size_of(shape)), x.pattern)


for _name, _kind in (("reduce_sum", "linear"), ("reduce_max", "linear"), ("reduce_min", "linear"),
                     ("reduce_prod", "nonlinear"), ("norm2", "nonlinear")):
    DEPENDENCY_RULES[_name] = _reduce
    HESSIAN_RULES[_name] = _kind
DEPENDENCY_RULES["sum_to"] = _sum_to
HESSIAN_RULES["sum_to"] = "linear"


def _along_axis(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """softmax-like: each output element depends on its whole line along ``axis``."""
    x = args[0]
    axis = params.get("axis", -1)
    axes = _norm_axes(axis, len(x.shape))
    labels, groups = _reduce_labels(tuple(x.shape), axes)
    lines = pt.apply(pt.labels_matrix(labels, groups), x.pattern)
    return pt.gather(lines, labels)


def _cumulative(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """out[..., i, ...] depends on x[..., j, ...] for j <= i along ``axis``."""
    x = args[0]
    axis = params.get("axis")
    shape = tuple(x.shape)
    if axis is None:  # over the flattened array
        shape, axis = (pt.size_of(shape),), 0
    axis %= len(shape)
    labels = _labels(shape)
    length = shape[axis]
    # pairs (i, j), j <= i, of positions along the axis, for every line
    i, j = np.tril_indices(length)
    moved = np.moveaxis(labels, axis, -1).reshape(-1, length)  # lines x length
    rows = moved[:, i].ravel()
    cols = moved[:, j].ravel()
    n_el = pt.size_of(shape)
    L = pt.sp.csr_matrix((np.ones(rows.size, dtype=bool), (rows, cols)), shape=(n_el, n_el))
    return pt.apply(L, x.pattern)


for _name in ("softmax", "log_softmax"):
    DEPENDENCY_RULES[_name] = _along_axis
    HESSIAN_RULES[_name] = "nonlinear"
DEPENDENCY_RULES["cumsum"] = _cumulative
HESSIAN_RULES["cumsum"] = "linear"
DEPENDENCY_RULES["cumprod"] = _cumulative
HESSIAN_RULES["cumprod"] = "nonlinear"


def _softmax_cross_entropy(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    z = args[0]
    axes = _norm_axes(params.get("axis", -1), len(z.shape))
    pats = []
    for a in args:
        if a.pattern is None:
            continue
        if tuple(a.shape) != tuple(z.shape):
            return conservative(args, out_shape, params, prim)
        labels, groups = _reduce_labels(tuple(a.shape), axes)
        pats.append(pt.apply(pt.labels_matrix(labels, groups), a.pattern))
    lines = pt.union(*pats)
    if lines is None:
        return None
    m = pt.size_of(out_shape)
    if m == lines.shape[0]:  # reduction="none": one loss per line
        return lines
    return pt.gather(pt.apply(pt.labels_matrix(np.zeros(lines.shape[0]), 1), lines),
                     np.zeros(m, dtype=np.int64))


DEPENDENCY_RULES["softmax_cross_entropy"] = _softmax_cross_entropy
HESSIAN_RULES["softmax_cross_entropy"] = "nonlinear"


# --- products ------------------------------------------------------------------------------

def _matmul(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """out[..., i, j] depends on a[..., i, :] and b[..., :, j] (where the other factor, when
    it is a constant, is nonzero)."""
    a, b = args
    a2 = a.shape if len(a.shape) > 1 else (1,) + tuple(a.shape)
    b2 = b.shape if len(b.shape) > 1 else tuple(b.shape) + (1,)
    full = np.broadcast_shapes(a2[:-2], b2[:-2]) + (a2[-2], b2[-1])
    parts = []
    for this, other, this2, rowwise in ((a, b, a2, True), (b, a, b2, False)):
        if this.pattern is None:
            continue
        if (other.value is not None and other.pattern is None and np.ndim(other.value) <= 2
                and tuple(this2[:-2]) == tuple(full[:-2])):
            parts.append(_matmul_const(this, np.asarray(other.value), rowwise, out_shape))
            continue
        # union over the contracted axis, then broadcast over the other factor's free axis
        axis = len(this2) - 1 if rowwise else len(this2) - 2
        labels, groups = _reduce_labels(tuple(this2), (axis,))
        red = pt.apply(pt.labels_matrix(labels, groups), this.pattern)
        kept = tuple(1 if k == axis else s for k, s in enumerate(this2))
        idx = np.broadcast_to(_labels(kept), full)
        parts.append(pt.gather(red, idx))
    return pt.union(*parts)


def _matmul_const(this: Arg, const: np.ndarray, rowwise: bool, out_shape: tuple) -> Any:
    """``x @ C`` (``rowwise``) or ``C @ x`` with a constant matrix ``C``: its zeros stay
    (``x`` may be a stack of matrices: the same map for each)."""
    nz = pt.sp.csr_matrix(const.reshape(const.shape if const.ndim > 1 else (
        (1, -1) if not rowwise else (-1, 1))) != 0)
    shape = tuple(this.shape)
    if rowwise:  # out(..., i, j) <- x(..., i, k) where C[k, j] != 0
        rows_x = pt.size_of(shape[:-1])
        L = pt.sp.kron(pt.identity(rows_x), nz.T, format="csr")
    else:  # out(..., i, j) <- x(..., k, j) where C[i, k] != 0
        cols_x = 1 if len(shape) == 1 else shape[-1]
        stack = pt.size_of(shape[:-2])
        L = pt.sp.kron(pt.identity(stack), pt.sp.kron(nz, pt.identity(cols_x), format="csr"),
                       format="csr")
    return pt.apply(L.astype(bool), this.pattern)


DEPENDENCY_RULES["matmul"] = _matmul
HESSIAN_RULES["matmul"] = "matmul"


def matmul_couplings(args: list) -> list | None:
    """Second-order couplings of ``a @ b`` (both depending on x): ``a[..., i, k]`` meets
    ``b[..., k, j]`` for every i, j -- the pairs (union over i of a[..., :, k]) x (union
    over j of b[..., k, :]) for each batch entry and k."""
    a, b = args
    a2 = tuple(a.shape) if len(a.shape) > 1 else (1,) + tuple(a.shape)
    b2 = tuple(b.shape) if len(b.shape) > 1 else tuple(b.shape) + (1,)
    if a2[:-2] != b2[:-2]:  # broadcast batches: every pair of their dependencies, safely
        return None
    la, ga = _reduce_labels(a2, (len(a2) - 2,))
    lb, gb = _reduce_labels(b2, (len(b2) - 1,))
    A = pt.apply(pt.labels_matrix(la, ga), a.pattern)
    B = pt.apply(pt.labels_matrix(lb, gb), b.pattern)
    return [(A, B)]


def _linear(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """``x @ w.T + b``: out[..., o] depends on x[..., :], w[o, :] and b[o]."""
    x, w = args[0], args[1]
    parts = []
    if x.pattern is not None:
        labels, groups = _reduce_labels(tuple(x.shape), (len(x.shape) - 1,))
        red = pt.apply(pt.labels_matrix(labels, groups), x.pattern)
        kept = tuple(x.shape[:-1]) + (1,)
        parts.append(pt.gather(red, np.broadcast_to(_labels(kept), out_shape)))
    if w.pattern is not None:
        labels, groups = _reduce_labels(tuple(w.shape), (1,))
        red = pt.apply(pt.labels_matrix(labels, groups), w.pattern)
        parts.append(pt.gather(red, np.broadcast_to(_labels((w.shape[0],)), out_shape)))
    if len(args) > 2 and args[2].pattern is not None:
        parts.append(_broadcast_gather(args[2], out_shape))
    return pt.union(*parts)


for _name in ("linear", "linear_nobias"):
    DEPENDENCY_RULES[_name] = _linear
    HESSIAN_RULES[_name] = "bilinear"


def _einsum(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """Each output element depends on the elements of each operand that agree with it on
    the shared subscripts (a union over the summed ones)."""
    spec = params["spec"]
    if "..." in spec or "->" not in spec:
        return conservative(args, out_shape, params, prim)
    ins, out = spec.replace(" ", "").split("->")
    subs = ins.split(",")
    parts = []
    for s, a in zip(subs, args):
        if a.pattern is None:
            continue
        if len(set(s)) != len(s):  # a repeated subscript (a diagonal): stay safe
            return conservative(args, out_shape, params, prim)
        summed = tuple(k for k, c in enumerate(s) if c not in out)
        labels, groups = _reduce_labels(tuple(a.shape), summed)
        red = pt.apply(pt.labels_matrix(labels, groups), a.pattern)
        kept_letters = [c for c in s if c in out]
        kept_shape = tuple(a.shape[s.index(c)] for c in kept_letters)
        lab = _labels(kept_shape)
        # order the kept axes like the output, with size-1 axes for the missing letters
        order = sorted(range(len(kept_letters)), key=lambda k: out.index(kept_letters[k]))
        lab = lab.transpose(order)
        shape = tuple(a.shape[s.index(c)] if c in s else 1 for c in out)
        parts.append(pt.gather(red, np.broadcast_to(lab.reshape(shape), out_shape)))
    return pt.union(*parts)


DEPENDENCY_RULES["einsum"] = _einsum
HESSIAN_RULES["einsum"] = "bilinear"


def _windows(shape: tuple, kernel: tuple, stride: tuple, padding: tuple) -> np.ndarray:
    """For an input of ``shape`` (``..., H, W``): the index of the input element at every
    window position, ``(..., kh, kw, Ho, Wo)`` (``-1`` where the window reads padding)."""
    labels = _labels(shape) + 1
    cols = DEPENDENCY_RULES_IMPL["im2col"](labels, kernel=tuple(kernel), stride=tuple(stride),
                                           padding=tuple(padding), fill=0)
    return np.asarray(cols) - 1


def _window_union(x: Arg, windows: np.ndarray, reduce_axes: int) -> tuple[Any, tuple]:
    """The union of ``x``'s pattern over each window: ``windows`` is ``(lead..., r_1..r_k,
    Ho, Wo)`` with ``reduce_axes = k`` axes reduced; returns the pattern of shape
    ``(lead..., Ho, Wo)`` and that shape."""
    nd = windows.ndim
    lead = windows.shape[:nd - 2 - reduce_axes]
    out_shape = tuple(lead) + tuple(windows.shape[-2:])
    groups = _labels(out_shape).reshape(tuple(lead) + (1,) * reduce_axes
                                        + tuple(windows.shape[-2:]))
    groups = np.broadcast_to(groups, windows.shape).ravel()
    cols = windows.ravel()
    keep = cols >= 0
    L = pt.sp.csr_matrix((np.ones(int(keep.sum()), dtype=bool), (groups[keep], cols[keep])),
                         shape=(pt.size_of(out_shape), pt.size_of(x.shape)))
    L.sum_duplicates()
    return pt.apply(L, x.pattern), out_shape


def _conv2d(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """out[..., o, i, j] depends on the window (i, j) of x[...] over all channels, on w[o]
    and on b[o]."""
    x, w = args[0], args[1]
    kernel = tuple(w.shape[-2:])
    windows = _windows(tuple(x.shape), kernel, params["stride"], params["padding"])
    parts = []
    if x.pattern is not None:
        union, shape = _window_union(x, windows, 3)  # over (C, kh, kw)
        lead = shape[:-2]
        idx = np.broadcast_to(_labels(shape).reshape(lead + (1,) + shape[-2:]), out_shape)
        parts.append(pt.gather(union, idx))
    if w.pattern is not None:  # w[o, c, p, q] where the window reads x, not padding
        lead = tuple(windows.shape[:-5])
        nl = len(lead)
        C, kh, kw, Ho, Wo = windows.shape[-5:]
        O = w.shape[0]
        full = lead + (O, C, kh, kw, Ho, Wo)
        reads = np.broadcast_to((windows >= 0).reshape(lead + (1, C, kh, kw, Ho, Wo)), full)
        rows = np.broadcast_to(_labels(tuple(out_shape)).reshape(lead + (O, 1, 1, 1, Ho, Wo)),
                               full)[reads]
        cols = np.broadcast_to(_labels(tuple(w.shape)).reshape((1,) * nl + (O, C, kh, kw, 1, 1)),
                               full)[reads]
        L = pt.sp.csr_matrix((np.ones(rows.size, dtype=bool), (rows, cols)),
                             shape=(pt.size_of(out_shape), pt.size_of(w.shape)))
        L.sum_duplicates()
        parts.append(pt.apply(L, w.pattern))
    if len(args) > 2 and args[2].pattern is not None:  # the bias: out[..., o, :, :] <- b[o]
        b = args[2]
        chan = np.broadcast_to(_labels((b.shape[0],)).reshape((-1, 1, 1)), out_shape[-3:])
        parts.append(pt.gather(b.pattern, np.broadcast_to(chan, out_shape)))
    return pt.union(*parts)


def _pool(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """out[..., i, j] depends on the window (i, j) of x[...]."""
    x = args[0]
    windows = _windows(tuple(x.shape), params["kernel"], params["stride"], params["padding"])
    union, _ = _window_union(x, windows, 2)  # over (kh, kw)
    return union


for _name in ("conv2d", "conv2d_bias"):
    DEPENDENCY_RULES[_name] = _conv2d
    HESSIAN_RULES[_name] = "bilinear"
DEPENDENCY_RULES["max_pool2d"] = _pool
HESSIAN_RULES["max_pool2d"] = "linear"
DEPENDENCY_RULES["avg_pool2d"] = _pool
HESSIAN_RULES["avg_pool2d"] = "linear"


def _max_pool_grad(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """max_pool2d's reverse rule: g's element (i, j) flows into window (i, j) of the result
    (to one entry of it, which one x chooses: a choice that carries no derivative)."""
    g = args[0]
    if g.pattern is None:
        return pt.empty(pt.size_of(out_shape), _width(args))
    labels = _labels(tuple(out_shape)) + 1
    cols = np.asarray(DEPENDENCY_RULES_IMPL["im2col"](
        labels, kernel=params["kernel"], stride=params["stride"], padding=params["padding"],
        fill=0)) - 1                                                  # (..., kh, kw, Ho, Wo)
    kh, kw = params["kernel"]
    return pt.union(*[
        pt.apply(pt.labels_matrix(np.broadcast_to(cols[..., p, q, :, :], g.shape),
                                  pt.size_of(out_shape)), g.pattern)
        for p in range(kh) for q in range(kw)])


DEPENDENCY_RULES["max_pool2d_grad"] = _max_pool_grad
HESSIAN_RULES["max_pool2d_grad"] = "linear"


# --- linear algebra: every element of a matrix result depends on its whole input matrices --

def _batched_matrix(args: list, out_shape: Any, params: dict, prim: Any) -> Any:
    a = args[0]
    batch = tuple(a.shape[:-2])
    nb = len(batch)
    if any(x.pattern is not None and tuple(x.shape[:nb]) != batch for x in args):
        return conservative(args, out_shape, params, prim)
    groups = pt.size_of(batch)
    rows = []
    for x in args:
        if x.pattern is None:
            continue
        inner = pt.size_of(tuple(x.shape[nb:]))
        labels = np.arange(pt.size_of(x.shape), dtype=np.int64) // max(inner, 1)
        rows.append(pt.apply(pt.labels_matrix(labels, groups), x.pattern))
    per_batch = pt.PerBatch(pt.union(*rows), batch)
    if out_shape is None:  # a tuple of results (eigh, qr, svd, slogdet)
        return per_batch
    return per_batch.expand(tuple(out_shape))


for _name in ("cholesky", "det", "eigh", "inv", "qr", "slogdet", "solve", "svd"):
    DEPENDENCY_RULES[_name] = _batched_matrix
    HESSIAN_RULES[_name] = "nonlinear"


def _tuple_get(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    p = args[0].pattern
    members = getattr(p, "members", None)
    if members is not None:  # one pattern per entry (control flow: sparse/loops.py)
        return members[params["index"]]
    if isinstance(p, pt.PerBatch):
        return p.expand(tuple(out_shape))
    return conservative(args, out_shape, params, prim)


DEPENDENCY_RULES["tuple_get"] = _tuple_get
HESSIAN_RULES["tuple_get"] = "linear"


# --- primitives of the later families -----------------------------------------------------

# zero derivative wherever defined; piecewise linear; complex parts (linear); nonlinear
for _name in ("trunc", "floor_divide"):
    DEPENDENCY_RULES[_name] = _zero
    HESSIAN_RULES[_name] = "linear"
for _name in ("fmod", "real", "conj", "fft_conj_weighted"):
    DEPENDENCY_RULES[_name] = _elementwise
    HESSIAN_RULES[_name] = "linear"
DEPENDENCY_RULES["imag"] = _zero_if_real
HESSIAN_RULES["imag"] = "linear"
DEPENDENCY_RULES["angle"] = _zero_if_real
HESSIAN_RULES["angle"] = "nonlinear"
DEPENDENCY_RULES["reduce_logsumexp"] = _reduce
HESSIAN_RULES["reduce_logsumexp"] = "nonlinear"


def _permute_along(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """``sort_like(t, x)`` / ``unsort(t, x)``: ``t`` permuted along ``axis`` by an order read
    from ``x`` at run time -- structurally any element of the line (``x`` itself carries no
    derivative: the permutation is piecewise constant)."""
    t = args[0]
    if t.pattern is None:
        return None
    return _along_axis([t], out_shape, {"axis": params["axis"]}, prim)


for _name in ("sort_like", "unsort"):
    DEPENDENCY_RULES[_name] = _permute_along
    HESSIAN_RULES[_name] = "linear"


def _mask_moving(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """``mask_select`` / ``mask_scatter`` with a constant mask: an index-moving operation on
    the first input (run on its labels); a mask computed from x selects at run time."""
    v, mask = args[0], args[1]
    if v.pattern is None:
        return None
    if mask.value is None:
        return conservative(args, out_shape, params, prim)
    labels = np.arange(1, pt.size_of(v.shape) + 1, dtype=np.int64).reshape(v.shape)
    moved = np.asarray(prim.np_impl(labels, np.asarray(mask.value, dtype=bool), **params))
    return pt.gather(v.pattern, moved.ravel() - 1)


for _name in ("mask_select", "mask_scatter"):
    DEPENDENCY_RULES[_name] = _mask_moving
    HESSIAN_RULES[_name] = "linear"


def _over_axes(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """FFTs: every output element depends on every input element of its line (plane...)
    over the transformed ``axes`` -- the DFT matrix has no zero -- and on nothing else."""
    x = args[0]
    nd = len(x.shape)
    axes = tuple(a % nd for a in (params["axes"] if "axes" in params else (params["axis"],)))
    labels, groups = _reduce_labels(tuple(x.shape), axes)
    lines = pt.apply(pt.labels_matrix(labels, groups), x.pattern)
    kept = tuple(1 if k in axes else s for k, s in enumerate(out_shape))
    return pt.gather(lines, np.broadcast_to(_labels(kept), tuple(out_shape)))


for _name in ("fft_c2c", "rfftn", "irfftn"):
    DEPENDENCY_RULES[_name] = _over_axes
    HESSIAN_RULES[_name] = "linear"


# --- the N-d convolution family: exact windows (stride, padding, dilation, groups) ----------

def _taps(S: tuple, K: tuple, So: tuple, stride: tuple, padding: tuple, dilation: tuple
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every window tap that reads the input (not padding): the flat output position, the
    flat kernel offset and the flat input position, as three equally long arrays."""
    d = len(S)
    o_flat = np.zeros(So + K, dtype=np.int64)
    k_flat = np.zeros(So + K, dtype=np.int64)
    i_flat = np.zeros(So + K, dtype=np.int64)
    valid = np.ones(So + K, dtype=bool)
    for a in range(d):
        shape_o = [1] * (2 * d)
        shape_o[a] = So[a]
        shape_k = [1] * (2 * d)
        shape_k[d + a] = K[a]
        o = np.arange(So[a]).reshape(shape_o)
        k = np.arange(K[a]).reshape(shape_k)
        idx = o * stride[a] + k * dilation[a] - padding[a][0]
        valid = valid & (idx >= 0) & (idx < S[a])
        o_flat = o_flat * So[a] + o
        k_flat = k_flat * K[a] + k
        i_flat = i_flat * S[a] + idx
    return o_flat[valid], k_flat[valid], i_flat[valid]


def _pairs_matrix(rows: np.ndarray, cols: np.ndarray, m: int, n: int) -> Any:
    L = pt.sp.csr_matrix((np.ones(rows.size, dtype=bool), (rows.ravel(), cols.ravel())),
                         shape=(m, n))
    L.sum_duplicates()
    return L


def _conv_geometry(x_shape: tuple, w_like: tuple, params: dict, So: tuple, S: tuple) -> Any:
    """``(lead, C, O, Cg, Og, taps)`` of a convolution whose image is ``(lead.., C, *S)`` and
    kernel ``(O, Cg, *K)``, or ``None`` when the kernel has extra (broadcast) axes."""
    d = len(params["stride"])
    if len(w_like) != d + 2:
        return None
    O, Cg, K = w_like[0], w_like[1], tuple(w_like[2:])
    groups = params["groups"]
    lead = tuple(x_shape[:-d - 1])
    C = Cg * groups
    taps = _taps(S, K, So, params["stride"], params["padding"], params["dilation"])
    return lead, C, O, Cg, O // groups, taps


def _conv_indices(lead: tuple, C: int, O: int, Cg: int, Og: int, taps: tuple, P_out: int,
                  P_in: int, n_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat labels, broadcast over (lead, o, c_local, tap), of the output element
    ``(lead, o, T_o)``, the image element ``(lead, c, T_i)`` and the kernel element
    ``(o, c_local, T_k)`` of every multiply of the convolution."""
    t_o, t_k, t_i = taps
    nl = pt.size_of(lead)
    ld = np.arange(nl).reshape(-1, 1, 1, 1)
    o = np.arange(O).reshape(1, -1, 1, 1)
    cl = np.arange(Cg).reshape(1, 1, -1, 1)
    c = (o // Og) * Cg + cl
    out_l = (ld * O + o) * P_out + t_o.reshape(1, 1, 1, -1)
    img_l = (ld * C + c) * P_in + t_i.reshape(1, 1, 1, -1)
    ker_l = (o * Cg + cl) * n_k + t_k.reshape(1, 1, 1, -1)
    full = (nl, O, Cg, t_o.size)
    return (np.broadcast_to(out_l, full), np.broadcast_to(img_l, full),
            np.broadcast_to(ker_l, full))


def _through_pairs(out_shape: tuple, operands: tuple) -> Any:
    """The pattern of an operation bilinear in its operands: for each ``(operand, rows, cols)``
    output element ``rows[k]`` reads operand element ``cols[k]`` (operands without a pattern,
    constants, are skipped)."""
    m = pt.size_of(tuple(out_shape))
    return pt.union(*(pt.apply(_pairs_matrix(rows, cols, m, pt.size_of(tuple(v.shape))),
                               v.pattern) for v, rows, cols in operands if v.pattern is not None))


def _conv(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    x, w = args
    d = len(params["stride"])
    S, So = tuple(x.shape[-d:]), tuple(out_shape[-d:])
    geo = _conv_geometry(tuple(x.shape), tuple(w.shape), params, So, S)
    if geo is None:
        return conservative(args, out_shape, params, prim)
    lead, C, O, Cg, Og, taps = geo
    out_l, img_l, ker_l = _conv_indices(lead, C, O, Cg, Og, taps, pt.size_of(So),
                                        pt.size_of(S), pt.size_of(tuple(w.shape[2:])))
    return _through_pairs(out_shape, ((x, out_l, img_l), (w, out_l, ker_l)))


def _conv_input_grad(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    g, w = args
    d = len(params["stride"])
    S, So = tuple(params["size"]), tuple(g.shape[-d:])
    geo = _conv_geometry(tuple(out_shape), tuple(w.shape), params, So, S)
    if geo is None or tuple(g.shape[:-d - 1]) != tuple(out_shape[:-d - 1]):
        return conservative(args, out_shape, params, prim)
    lead, C, O, Cg, Og, taps = geo
    g_l, img_l, ker_l = _conv_indices(lead, C, O, Cg, Og, taps, pt.size_of(So),
                                      pt.size_of(S), pt.size_of(tuple(w.shape[2:])))
    return _through_pairs(out_shape, ((g, img_l, g_l), (w, img_l, ker_l)))


def _conv_weight_grad(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    x, g = args
    d = len(params["stride"])
    S, So = tuple(x.shape[-d:]), tuple(g.shape[-d:])
    lead = tuple(x.shape[:-d - 1])
    geo = _conv_geometry(tuple(x.shape), tuple(out_shape), params, So, S)
    if geo is None or len(lead) != params["ns"] or tuple(g.shape[:-d - 1]) != lead:
        return conservative(args, out_shape, params, prim)
    lead, C, O, Cg, Og, taps = geo
    g_l, img_l, ker_l = _conv_indices(lead, C, O, Cg, Og, taps, pt.size_of(So),
                                      pt.size_of(S), pt.size_of(tuple(out_shape[2:])))
    return _through_pairs(out_shape, ((x, ker_l, img_l), (g, ker_l, g_l)))


for _name, _r in (("conv", _conv), ("conv_input_grad", _conv_input_grad),
                  ("conv_weight_grad", _conv_weight_grad)):
    DEPENDENCY_RULES[_name] = _r
    HESSIAN_RULES[_name] = "bilinear"


# --- operations holding a function, and SciPy's --------------------------------------------

def _full_convolve(args: list, out_shape: tuple, params: dict, prim: Any) -> Any:
    """``scipy.signal.convolve`` (full): out[n] = sum_j a[j] b[n - j], over every axis."""
    a, b = args
    sa, sb = tuple(a.shape), tuple(b.shape)
    if len(sa) != len(sb):
        return conservative(args, out_shape, params, prim)
    ja = np.arange(pt.size_of(sa)).reshape(sa)
    jb = np.arange(pt.size_of(sb)).reshape(sb)
    # every pair (j, k): out position j + k (axis by axis)
    ia = np.indices(sa).reshape(len(sa), -1, 1)
    ib = np.indices(sb).reshape(len(sb), 1, -1)
    out_l = np.ravel_multi_index(tuple(ia + ib), tuple(out_shape)) if sa else np.zeros((1, 1),
                                                                                       np.int64)
    full = out_l.shape
    return _through_pairs(out_shape, ((a, out_l, np.broadcast_to(ja.reshape(-1, 1), full)),
                                      (b, out_l, np.broadcast_to(jb.reshape(1, -1), full))))


DEPENDENCY_RULES["scipy.signal.convolve"] = _full_convolve
HESSIAN_RULES["scipy.signal.convolve"] = "bilinear"

_SCIPY_ELEMENTWISE = (
    "polygamma digamma gammaln gamma rgamma gammasgn beta betaln betainc gammainc gammaincc "
    "erfc erfinv erfcinv ndtr log_ndtr expit logit xlogy xlog1py entr jn yn iv ive j0 j1 y0 "
    "y1 i0 i1 stats.t.cdf stats.t.logcdf"
).split()
for _name in _SCIPY_ELEMENTWISE:
    DEPENDENCY_RULES["scipy." + _name] = _elementwise
    HESSIAN_RULES["scipy." + _name] = "linear" if _name == "gammasgn" else "nonlinear"
DEPENDENCY_RULES["scipy.gammasgn"] = _zero  # piecewise constant
for _name in ("expm", "sqrtm", "solve_sylvester", "solve_triangular", "solve_banded"):
    # stacks of matrices: each result matrix depends on its whole input matrices
    DEPENDENCY_RULES["scipy.linalg." + _name] = _batched_matrix
    HESSIAN_RULES["scipy.linalg." + _name] = "nonlinear"
# A solution of an equation (an ODE's trajectory, a fixed point) depends on every element
# of its inputs as far as a structural rule can tell.
# (``checkpoint`` gets its block's own pattern in :mod:`.block_rules`.)
for _name in ("scipy.integrate.odeint", "fixed_point", "checkpoint"):
    DEPENDENCY_RULES[_name] = conservative
    HESSIAN_RULES[_name] = "nonlinear"


def install(registry: dict) -> None:
    """Look up the implementations that some rules run (through the primitive registry)."""
    for name in ("getitem", "im2col"):
        if name in registry:
            DEPENDENCY_RULES_IMPL[name] = registry[name].np_impl
