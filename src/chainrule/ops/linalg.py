"""Linear algebra: ``matmul``, ``einsum`` and the ``numpy.linalg`` family, differentiable.

``matmul`` and ``einsum`` are the two contraction primitives; ``dot``,
``inner``, ``outer``, ``vdot``, ``tensordot`` and ``kron`` are composed from
them (and from reshapes), so they need no rules of their own.  The
decompositions (``eigh``, ``qr``, ``svd``, ``slogdet``) are primitives that
return a Python tuple of arrays; the public functions pick the entries with
the ``tuple_get`` primitive, whose reverse rule sends a tuple cotangent with
``None`` (a symbolic zero) in the other slots, so the decomposition's rule
receives every output's cotangent at once.

Every rule is written with chainrule's own ops (so it is differentiable
again) and addresses matrix axes from the end, so cotangents and tangents
may carry extra leading batch axes.  Stacks of matrices ``(..., n, n)`` are
supported as in NumPy.  ``cholesky`` and ``eigh`` use the symmetric part
of their input (for a symmetric input the values are NumPy's); ``eigh`` and
``svd`` assume distinct eigen/singular values.

Complex matrices (API section 11): a cotangent ``G`` acts on a tangent ``T``
as ``Re(sum(G * T))``.  The holomorphic rules (``matmul``, ``einsum``,
``inv``, ``solve``, ``det``) hold as written, with plain transposes.  The
decompositions are not holomorphic: their forward rules use conjugate
transposes, and their reverse rules are written in the conjugate convention
of the literature (``<X, Y> = Re tr(X^H Y)``, formulas with ``^H``) and
wrapped by :func:`_conjugate_convention`, which conjugates the cotangents
going in and coming out.  ``cholesky`` and ``eigh`` use the Hermitian part
``(A + A^H)/2``.
"""

from __future__ import annotations

import string
import types
from collections import Counter, namedtuple
from typing import Any

import numpy as np

from ..backend import namespace_of
from ..core.primitive import Box, Primitive, primitive
from ._broadcast import align, broadcast_to, reshape, sum_to
from .elementwise import (
    absolute,
    conj,
    divide,
    imag,
    is_complex,
    multiply,
    negative,
    not_equal,
    power,
    real,
    where,
)
from .indexing import concat_p, getitem
from .reductions import amax, amin, reduce_sum

__all__ = ["dot", "vdot", "inner", "outer", "matmul", "tensordot", "einsum", "kron"]

LinAlgError = np.linalg.LinAlgError  # a ValueError subclass, as in NumPy

SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
QRResult = namedtuple("QRResult", ["Q", "R"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])


# --- small helpers ------------------------------------------------------------------------

def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _arr(x: Any) -> Any:
    """Tensors and arrays pass through; lists and Python scalars become NumPy arrays."""
    if isinstance(x, Box) or (hasattr(x, "shape") and hasattr(x, "dtype")):
        return x
    return np.asarray(x)


def _nd(x: Any) -> int:
    return len(x.shape)


def _is_boxed(*xs: Any) -> bool:
    return any(isinstance(x, Box) for x in xs)


def _const(values: np.ndarray, like: Any) -> Any:
    """A constant (no derivative) in the library and dtype of ``like``."""
    raw = _raw(like)
    if isinstance(raw, (np.ndarray, np.generic)):
        return values.astype(raw.dtype, copy=False)
    xp = namespace_of(raw)
    return xp.asarray(values, dtype=raw.dtype)


def _eye(n: int, like: Any, m: int | None = None) -> Any:
    return _const(np.eye(n, n if m is None else m), like)


def _tril_mask(n: int, like: Any, k: int = 0) -> Any:
    return _const(np.tri(n, n, k), like)


def _triu_mask(n: int, like: Any, k: int = 0) -> Any:
    return _const(1.0 - np.tri(n, n, k - 1), like)


def _fmask(cond: Any, like: Any) -> Any:
    """A boolean array (no derivative) as 0/1 in ``like``'s dtype."""
    raw = _raw(like)
    if isinstance(cond, (np.ndarray, np.generic)):
        return np.asarray(cond).astype(raw.dtype)
    xp = namespace_of(cond)
    return xp.astype(cond, raw.dtype)


def _expand_last(x: Any, n: int = 1) -> Any:
    return reshape(x, shape=tuple(x.shape) + (1,) * n)


def _as_row(x: Any) -> Any:
    """``(..., k) -> (..., 1, k)``."""
    s = tuple(x.shape)
    return reshape(x, shape=s[:-1] + (1, s[-1]))


def _diag_embed(x: Any, like: Any) -> Any:
    """``(..., n) -> (..., n, n)`` with ``x`` on the diagonal."""
    return _expand_last(x) * _eye(x.shape[-1], like)


def _diag_part(x: Any) -> Any:
    """``(..., n, n) -> (..., n)``: the diagonal."""
    return reduce_sum(x * _eye(x.shape[-1], x), axes=(-1,), keepdims=False)


def _reduce_to(x: Any, nb: int, shape: tuple) -> Any:
    """Sum ``x`` (with ``nb`` leading batch axes) down to ``batch + shape`` (right-aligned)."""
    xs = tuple(x.shape)
    shape = tuple(shape)
    target = xs[:nb] + (1,) * (len(xs) - nb - len(shape)) + shape
    if target != xs:
        x = sum_to(x, shape=target)
    final = xs[:nb] + shape
    if final != target:
        x = reshape(x, shape=final)
    return x


def _check_square(a: Any, op: str) -> None:
    s = tuple(a.shape)
    if len(s) < 2 or s[-1] != s[-2]:
        raise LinAlgError(
            f"{op}: expected a square matrix or a stack of them (shape (..., n, n)), "
            f"got shape {s}"
        )


def _check_matrix(a: Any, op: str) -> None:
    if _nd(a) < 2:
        raise LinAlgError(
            f"{op}: expected a matrix or a stack of them (at least 2 dimensions), "
            f"got shape {tuple(a.shape)}"
        )


# --- axis permutations (private; ops/shape.py owns the public ones) ----------------------

def _mT_impl(xp, x):
    fn = getattr(xp, "matrix_transpose", None)
    return fn(x) if fn is not None else xp.linalg.matrix_transpose(x)


_mT: Primitive = primitive(
    "_linalg_mT", _mT_impl, lambda x: np.swapaxes(x, -1, -2),
    vjp=(lambda g, out, x: _mT(g),),
    jvp=(lambda t, out, x: _mT(t),),
)


def _mH(x: Any) -> Any:
    """The conjugate transpose of the last two axes (the transpose for real data)."""
    return conj(_mT(x)) if is_complex(x) else _mT(x)


def _conj(x: Any) -> Any:
    return conj(x) if x is not None and is_complex(x) else x


def _conjugate_convention(rule: Any) -> Any:
    """A reverse rule written for ``<X, Y> = Re tr(X^H Y)`` (the formulas with ``^H`` of the
    literature), turned into chainrule's ``Re(sum(G * T))``: conjugate in and out.  Real
    inputs pass straight through."""
    def wrapped(g, out, a, **params):
        if not is_complex(a):
            return rule(g, out, a, **params)
        g = tuple(_conj(x) for x in g) if type(g) is tuple else _conj(g)
        return _conj(rule(g, out, a, **params))

    return wrapped


def _permute_axes(x: Any, perm: list | tuple) -> Any:
    perm = tuple(perm)
    if perm == tuple(range(len(perm))):
        return x
    from .shape import transpose_p  # permutes the trailing axes; batch axes stay in front

    return transpose_p(x, axes=perm)


# --- tuple outputs --------------------------------------------------------------------------

def _tuple_get_vjp(g, out, x, index):
    n = len(_raw(x))
    return tuple(g if i == index else None for i in range(n))


def _tuple_get_jvp(t, out, x, index):
    if isinstance(t, Box):
        return tuple_get(t, index=index)
    return t[index]


class _TupleGet(Primitive):
    """The engine hands raw non-array values to the array-library dispatch, which would turn
    a tuple into an array; a raw tuple is indexed here directly instead."""

    __slots__ = ()

    def __call__(self, x: Any, index: int) -> Any:
        if not isinstance(x, Box):
            return x[index]
        return Primitive.__call__(self, x, index=index)


#: Entry ``index`` of a primitive's tuple output; its cotangent is a tuple with ``None`` elsewhere.
tuple_get = _TupleGet(
    "tuple_get", lambda xp, x, index: x[index], lambda x, index: x[index],
    vjp=(_tuple_get_vjp,), jvp=(_tuple_get_jvp,),
)


def _entries(out: Any, n: int) -> list:
    return [tuple_get(out, index=i) for i in range(n)]


# --- matmul -----------------------------------------------------------------------------------
# NumPy semantics: a 1-D first operand is a row (its axis then removed), a 1-D second operand a
# column; the batch axes of stacked operands broadcast.  Cotangents/tangents may carry extra
# leading batch axes, which matmul's own broadcasting carries along on the cotangent side.

def _mm_vjp_a(g, out, a, b):
    an, bn = _nd(a), _nd(b)
    if bn == 2:
        # One matrix on the right: fold every leading axis of g into the rows of one product
        # (a stack times a transposed view is several times slower in NumPy than one gemm).
        if _nd(g) <= 2:
            return matmul_p(g, _mT(b))
        lead = tuple(g.shape[:-1])
        r = matmul_p(reshape(g, shape=(_prod(lead), g.shape[-1])), _mT(b))
        return reshape(r, shape=lead + (b.shape[0],))
    nb = _nd(g) - _nd(out)
    if bn == 1:
        if an == 1:  # dot product: out is a scalar
            return _expand_last(g) * b
        return _reduce_to(_expand_last(g) * b, nb, a.shape)  # (..., m, 1) * (n,)
    if an == 1:  # out (..., p): treat a as a (1, n) row
        return _reduce_to(matmul_p(_as_row(g), _mT(b)), nb, a.shape)
    return _reduce_to(matmul_p(g, _mT(b)), nb, a.shape)


def _mm_vjp_b(g, out, a, b):
    an, bn = _nd(a), _nd(b)
    nb = _nd(g) - _nd(out)
    if an == 1:
        if bn == 1:
            return _expand_last(g) * a
        # out (..., p): gb[..., n, p] = a[n] g[..., p]
        return _reduce_to(multiply(_expand_last(a), _as_row(g)), nb, b.shape)
    if bn == 1:  # out (..., m): gb[n] = sum a[..., m, n] g[..., m]
        return _reduce_to(matmul_p(_as_row(g), a), nb, b.shape)
    if bn == 2 and an > 2:
        # A stack against one matrix: fold the stack into the contraction (one matmul, no
        # (stack, n, p) temporary).
        rows = _prod(a.shape[:-1])
        a2 = reshape(a, shape=(rows, a.shape[-1]))
        g2 = reshape(g, shape=tuple(g.shape[:nb]) + (rows, g.shape[-1]))
        return matmul_p(_mT(a2), g2)
    return _reduce_to(matmul_p(_mT(a), g), nb, b.shape)


def _mm_jvp_a(t, out, a, b):
    an, bn = _nd(a), _nd(b)
    if an == 1:
        if bn == 1:
            return matmul_p(t, b)
        k = tuple(t.shape[:-1])
        t2 = reshape(t, shape=k + (1,) * (_nd(out) - 1) + (1, a.shape[0]))
        return reshape(matmul_p(t2, b), shape=k + tuple(out.shape))
    if bn == 1:
        return matmul_p(t, b)
    return matmul_p(align(t, a, out), b)


def _mm_jvp_b(t, out, a, b):
    an, bn = _nd(a), _nd(b)
    if bn == 1:
        if an == 1:
            return matmul_p(t, a)
        if an == 2:  # one gemm for every tangent in the batch: (..., n) @ a^T
            return matmul_p(t, _mT(a))
        k = tuple(t.shape[:-1])
        t2 = reshape(t, shape=k + (1,) * (_nd(out) - 1) + (b.shape[0], 1))
        return reshape(matmul_p(a, t2), shape=k + tuple(out.shape))
    if an == 1:
        return matmul_p(a, t)
    return matmul_p(a, align(t, b, out))


def _matmul_np(a, b):
    if a.ndim > 2 and b.ndim == 2 and a.size and a.flags.c_contiguous:
        # a stack times one matrix: one gemm over the folded rows
        r = np.matmul(a.reshape(-1, a.shape[-1]), b)
        return r.reshape(a.shape[:-1] + (b.shape[-1],))
    return np.matmul(a, b)


matmul_p = primitive(
    "matmul", lambda xp, a, b: xp.matmul(a, b), _matmul_np,
    vjp=(_mm_vjp_a, _mm_vjp_b),
    jvp=(_mm_jvp_a, _mm_jvp_b),
)


def matmul(x1: Any, x2: Any, /) -> Any:
    """Matrix product with NumPy's semantics (``x1 @ x2``).

    1-D operands are promoted to a row (first) or a column (second) and the
    added axis is removed again; stacks of matrices broadcast over their
    leading axes.

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> A = cr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> cnp.matmul(A, [1.0, 1.0]).sum().backward()
    >>> A.grad
    array([[1., 1.],
           [1., 1.]])
    """
    a, b = _arr(x1), _arr(x2)
    sa, sb = a.shape, b.shape
    if not sa or not sb:
        raise ValueError(
            f"matmul: operands must have at least one dimension, got shapes {tuple(sa)} and "
            f"{tuple(sb)}; use multiply (*) for scalars"
        )
    if sa[-1] != (sb[-2] if len(sb) > 1 else sb[0]):
        raise ValueError(
            f"matmul: shapes {tuple(sa)} and {tuple(sb)} do not align: the last axis of the "
            f"first ({sa[-1]}) must match the "
            f"{'second-to-last' if len(sb) > 1 else 'only'} axis of the second"
        )
    return matmul_p(a, b)


# --- einsum -----------------------------------------------------------------------------------

_LETTERS = string.ascii_letters
_MAX_OPERANDS = 64


def _einsum_impl(xp, *ops, spec):
    fn = getattr(xp, "einsum", None)
    if fn is None:
        raise NotImplementedError(
            f"einsum is not available for arrays of the {getattr(xp, '__name__', xp)!s} backend "
            "(the array API standard has no einsum); use matmul/tensordot, or NumPy arrays"
        )
    return fn(spec, *ops)


def _einsum_np(*ops, spec):
    # The optimised path (BLAS, pairwise order) pays a fixed cost that only big or many
    # operands recover.
    n = len(ops)
    opt = n > 2 or (n == 2 and max(np.size(o) for o in ops) > 512)
    return np.einsum(spec, *ops, optimize=opt)


def _split_spec(spec: str) -> tuple[list, str]:
    lhs, out = spec.split("->")
    return lhs.split(","), out


def _fresh(spec: str, n: int) -> str:
    free = [c for c in _LETTERS if c not in spec]
    if n > len(free):
        raise ValueError(f"einsum: {spec!r} leaves too few free letters for {n} more axes")
    return "".join(free[:n])


def _einsum_call(terms: list, out: str, ops: list) -> Any:
    if len(ops) == 1 and terms[0] == out:
        return ops[0]
    return einsum_p(*ops, spec=",".join(terms) + "->" + out)


def _einsum_vjp(k: int):
    def rule(g, out, *ops, spec):
        ins, outs = _split_spec(spec)
        nb = _nd(g) - _nd(out)
        z = _fresh(spec, nb)
        term, x = ins[k], ops[k]
        size = dict(zip(term, x.shape))
        uniq = "".join(dict.fromkeys(term))
        avail = set(z + outs)
        for j, t in enumerate(ins):
            if j != k:
                avail.update(t)
        kept = "".join(c for c in uniq if c in avail)
        others = [ops[j] for j in range(len(ops)) if j != k]
        r = _einsum_call([z + outs] + [t for j, t in enumerate(ins) if j != k], z + kept,
                         [g] + others)
        bshape = tuple(g.shape[:nb])
        have = dict(zip(kept, r.shape[nb:]))
        cur = tuple(have.get(c, 1) for c in uniq)
        if kept != uniq:  # letters only this operand has: broadcast along them
            r = reshape(r, shape=bshape + cur)
        want = tuple(size[c] for c in uniq)
        if any(c == 1 and w != 1 for c, w in zip(cur, want)):
            cur = tuple(max(c, w) for c, w in zip(cur, want))
            r = broadcast_to(r, shape=bshape + cur)
        if cur != want:  # the operand was broadcast (size 1) along some letters
            r = sum_to(r, shape=bshape + want)
        if len(uniq) < len(term):  # repeated letters: scatter onto the diagonal
            extra = _fresh(spec + z, len(term) - len(uniq))
            seen, new, factors, eyes = set(), [], [], []
            for c in term:
                if c in seen:
                    d = extra[len(factors)]
                    new.append(d)
                    factors.append(c + d)
                    eyes.append(_eye(size[c], g))
                else:
                    seen.add(c)
                    new.append(c)
            r = einsum_p(r, *eyes, spec=",".join([z + uniq] + factors) + "->" + z + "".join(new))
        return r

    return rule


def _einsum_jvp(k: int):
    def rule(t, out, *ops, spec):
        ins, outs = _split_spec(spec)
        z = _fresh(spec, _nd(t) - _nd(ops[k]))
        terms = list(ins)
        terms[k] = z + terms[k]
        args = list(ops)
        args[k] = t
        return einsum_p(*args, spec=",".join(terms) + "->" + z + outs)

    return rule


einsum_p = primitive(
    "einsum", _einsum_impl, _einsum_np,
    vjp=tuple(_einsum_vjp(k) for k in range(_MAX_OPERANDS)),
    jvp=tuple(_einsum_jvp(k) for k in range(_MAX_OPERANDS)),
)


def _sublist_to_str(sub: Any) -> str:
    out = []
    for s in sub:
        if s is Ellipsis:
            out.append("...")
        elif isinstance(s, (int, np.integer)) and 0 <= s < len(_LETTERS):
            out.append(_LETTERS[int(s)])
        else:
            raise ValueError(f"einsum: subscript {s!r} must be an int in [0, 52) or Ellipsis")
    return "".join(out)


def _canonical_spec(subscripts: str, shapes: list) -> str:
    """Explicit letters-only form ``"ab,bc->ac"`` (ellipses expanded, output made explicit)."""
    s = subscripts.replace(" ", "")
    bad = set(s) - set(_LETTERS) - set(",.->")
    if bad:
        raise ValueError(f"einsum: invalid characters {sorted(bad)} in {subscripts!r}")
    if s.count("->") > 1 or ("-" in s.replace("->", "")) or (">" in s.replace("->", "")):
        raise ValueError(f"einsum: malformed subscripts {subscripts!r}")
    lhs, rhs = s.split("->") if "->" in s else (s, None)
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(
            f"einsum: {subscripts!r} names {len(ins)} operand(s) but {len(shapes)} were given"
        )
    ell_dims = []
    for i, (term, shape) in enumerate(zip(ins, shapes)):
        letters = term.replace("...", "", 1)
        if "." in letters:
            raise ValueError(f"einsum: malformed ellipsis in {term!r} of {subscripts!r}")
        n = len(shape) - len(letters)
        if ("..." in term and n < 0) or ("..." not in term and n != 0):
            raise ValueError(
                f"einsum: operand {i} has shape {tuple(shape)} ({len(shape)} axes) but its "
                f"subscripts {term!r} name {len(letters)}"
            )
        ell_dims.append(n if "..." in term else 0)
    max_ell = max(ell_dims, default=0)
    ell = _fresh(s, max_ell)
    new_ins = [t.replace("...", ell[max_ell - n:]) for t, n in zip(ins, ell_dims)]
    if rhs is None:
        counts = Counter(c for t in ins for c in t if c != ".")
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1))
    else:
        if "." in rhs.replace("...", "", 1):
            raise ValueError(f"einsum: malformed ellipsis in output of {subscripts!r}")
        out = rhs.replace("...", ell)
        every = set("".join(new_ins))
        for c in out:
            if c not in every:
                raise ValueError(f"einsum: output subscript {c!r} of {subscripts!r} is not "
                                 "in any operand")
        if len(set(out)) != len(out):
            raise ValueError(f"einsum: output subscripts of {subscripts!r} repeat a letter")
    sizes: dict = {}
    for i, (term, shape) in enumerate(zip(new_ins, shapes)):
        for c, d in zip(term, shape):
            prev = sizes.get(c)
            if prev is None or prev == 1:
                sizes[c] = d
            elif d != 1 and d != prev:
                raise ValueError(
                    f"einsum: axis {c!r} has size {prev} in one operand and {d} in operand {i} "
                    f"(shapes {[tuple(x) for x in shapes]}, subscripts {subscripts!r})"
                )
    return ",".join(new_ins) + "->" + out


def einsum(subscripts: Any, *operands: Any, optimize: Any = None) -> Any:
    """Einstein summation with NumPy's rules, differentiable in every operand.

    Supports explicit (``'ij,jk->ik'``) and implicit (``'ij,jk'``) output,
    ellipses (``'...ij,...jk->...ik'``) with broadcasting, repeated letters
    (diagonals ``'ii->i'``, traces ``'ii'``) and NumPy's interleaved
    ``einsum(op0, sublist0, op1, sublist1, ..., [sublist_out])`` form.
    ``optimize`` is accepted for compatibility; the contraction order is
    chosen automatically.  Not available for array-API backends without an
    ``einsum`` (``NotImplementedError``).

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> cnp.einsum('i,i->', x, x).backward()
    >>> x.grad
    array([2., 4.])
    """
    if not isinstance(subscripts, str):
        args = (subscripts,) + operands
        ops = list(args[0::2])
        subs = [_sublist_to_str(s) for s in args[1::2]]
        if len(args) % 2:  # trailing output sublist
            out = _sublist_to_str(ops.pop())
            subscripts = ",".join(subs) + "->" + out
        else:
            subscripts = ",".join(subs)
        operands = tuple(ops)
    if not operands:
        raise ValueError("einsum: at least one operand is required")
    if len(operands) > _MAX_OPERANDS:
        raise ValueError(f"einsum: at most {_MAX_OPERANDS} operands are supported")
    ops = [_arr(o) for o in operands]
    spec = _canonical_spec(subscripts, [tuple(o.shape) for o in ops])
    return einsum_p(*ops, spec=spec)


# --- composites: dot, inner, outer, vdot, tensordot, kron ---------------------------------

def _prod(xs: Any) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """Sum products over the given axes (NumPy's ``tensordot``), as one matrix product.

    ``axes`` is an int ``N`` (the last ``N`` axes of ``a`` with the first ``N``
    of ``b``) or a pair of axis sequences.
    """
    a, b = _arr(a), _arr(b)
    na, nb = _nd(a), _nd(b)
    ax_a: list[Any]
    ax_b: list[Any]
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > na or n > nb:
            raise ValueError(f"tensordot: axes={n} is invalid for shapes {tuple(a.shape)} and "
                             f"{tuple(b.shape)}")
        ax_a, ax_b = list(range(na - n, na)), list(range(n))
    else:
        try:
            ax_a, ax_b = axes
        except (TypeError, ValueError):
            raise ValueError(f"tensordot: axes must be an int or a pair of sequences, got "
                             f"{axes!r}") from None
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
        if len(ax_a) != len(ax_b):
            raise ValueError(f"tensordot: axes {axes!r} pair {len(ax_a)} axes with {len(ax_b)}")
    sa, sb = tuple(a.shape), tuple(b.shape)
    try:
        ax_a = [int(i) + na if int(i) < 0 else int(i) for i in ax_a]
        ax_b = [int(i) + nb if int(i) < 0 else int(i) for i in ax_b]
        bad = any(not 0 <= i < na for i in ax_a) or any(not 0 <= i < nb for i in ax_b)
    except TypeError:
        bad = True
    if bad or len(set(ax_a)) != len(ax_a) or len(set(ax_b)) != len(ax_b):
        raise ValueError(f"tensordot: invalid axes {axes!r} for shapes {sa} and {sb}")
    for i, j in zip(ax_a, ax_b):
        if sa[i] != sb[j]:
            raise ValueError(f"tensordot: shape mismatch for sum: axis {i} of {sa} has size "
                             f"{sa[i]} but axis {j} of {sb} has size {sb[j]}")
    free_a = [i for i in range(na) if i not in ax_a]
    free_b = [i for i in range(nb) if i not in ax_b]
    k = _prod(sa[i] for i in ax_a)
    fa = tuple(sa[i] for i in free_a)
    fb = tuple(sb[i] for i in free_b)
    a2 = _permute_axes(a, free_a + ax_a)
    if tuple(a2.shape) != (_prod(fa), k):
        a2 = reshape(a2, shape=(_prod(fa), k))
    b2 = _permute_axes(b, ax_b + free_b)
    if tuple(b2.shape) != (k, _prod(fb)):
        b2 = reshape(b2, shape=(k, _prod(fb)))
    r = matmul_p(a2, b2)
    if tuple(r.shape) != fa + fb:
        r = reshape(r, shape=fa + fb)
    return r


def dot(a: Any, b: Any) -> Any:
    """Dot product with NumPy's rules (``numpy.dot``): matmul for 1-D/2-D operands,
    a sum over the last axis of ``a`` and the second-to-last of ``b`` otherwise."""
    a, b = _arr(a), _arr(b)
    na, nb = _nd(a), _nd(b)
    if na == 0 or nb == 0:
        return multiply(a, b)
    if nb <= 2:
        return matmul(a, b)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"dot: shapes {tuple(a.shape)} and {tuple(b.shape)} not aligned: "
                         f"{a.shape[-1]} (last axis of a) != {b.shape[-2]} (axis -2 of b)")
    return tensordot(a, b, axes=([na - 1], [nb - 2]))


def inner(a: Any, b: Any) -> Any:
    """Inner product over the last axes (``numpy.inner``); scalars multiply."""
    a, b = _arr(a), _arr(b)
    na, nb = _nd(a), _nd(b)
    if na == 0 or nb == 0:
        return multiply(a, b)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"inner: last axes of shapes {tuple(a.shape)} and {tuple(b.shape)} "
                         "differ")
    if nb == 1:
        return matmul_p(a, b)
    if nb == 2:
        return matmul_p(a, _mT(b))
    return tensordot(a, b, axes=([na - 1], [nb - 1]))


def outer(a: Any, b: Any) -> Any:
    """Outer product of the flattened inputs (``numpy.outer``): shape ``(a.size, b.size)``."""
    a, b = _arr(a), _arr(b)
    ra = reshape(a, shape=(_prod(a.shape), 1))
    rb = reshape(b, shape=(1, _prod(b.shape)))
    return multiply(ra, rb)


def vdot(a: Any, b: Any) -> Any:
    """Dot product of the flattened inputs (``numpy.vdot``: a complex ``a`` is conjugated)."""
    a, b = _arr(a), _arr(b)
    na, nb = _prod(a.shape), _prod(b.shape)
    if na != nb:
        raise ValueError(f"vdot: inputs have {na} and {nb} elements (shapes {tuple(a.shape)} "
                         f"and {tuple(b.shape)}); they must have the same size")
    ra = a if _nd(a) == 1 else reshape(a, shape=(na,))
    rb = b if _nd(b) == 1 else reshape(b, shape=(nb,))
    return matmul_p(_conj(ra), rb)


def kron(a: Any, b: Any) -> Any:
    """Kronecker product (``numpy.kron``): blocks ``a[i, j] * b``."""
    a, b = _arr(a), _arr(b)
    nd = max(_nd(a), _nd(b))
    sa = (1,) * (nd - _nd(a)) + tuple(a.shape)
    sb = (1,) * (nd - _nd(b)) + tuple(b.shape)
    ra = reshape(a, shape=tuple(x for s in sa for x in (s, 1)))
    rb = reshape(b, shape=tuple(x for s in sb for x in (1, s)))
    return reshape(multiply(ra, rb), shape=tuple(x * y for x, y in zip(sa, sb)))


# --- inv, solve, det, slogdet --------------------------------------------------------------

inv_p = primitive(
    "inv", lambda xp, a: xp.linalg.inv(a), np.linalg.inv,
    vjp=(lambda g, out, a: negative(matmul_p(_mT(out), matmul_p(g, _mT(out)))),),
    jvp=(lambda t, out, a: negative(matmul_p(out, matmul_p(t, out))),),
)


def inv(a: Any) -> Any:
    """Inverse of a square matrix (or a stack of them); the gradient is ``-A^-T G A^-T``."""
    a = _arr(a)
    _check_square(a, "inv")
    return inv_p(a)


def _solve_vjp(g, out, a, b):
    # One solve serves both cotangents: gb = A^-T g, ga = -gb x^T.
    nb = _nd(g) - _nd(out)
    gb = solve_p(_mT(a), g)
    ga = negative(matmul_p(gb, _mT(out)))
    return _reduce_to(ga, nb, a.shape), _reduce_to(gb, nb, b.shape)


solve_p: Primitive = primitive(
    "solve", lambda xp, a, b: xp.linalg.solve(a, b), np.linalg.solve,
    vjp=_solve_vjp,
    jvp=(lambda t, out, a, b: negative(solve_p(a, matmul_p(align(t, a, out), out))),
         lambda t, out, a, b: solve_p(a, align(t, b, out))),
)


def solve(a: Any, b: Any) -> Any:
    """Solve ``a @ x = b`` for ``x`` (``numpy.linalg.solve``); ``b`` is a vector ``(n,)`` or a
    stack of matrices ``(..., n, k)``, and both arguments are differentiable."""
    a, b = _arr(a), _arr(b)
    _check_square(a, "solve")
    n = a.shape[-1]
    if _nd(b) == 1:
        if b.shape[0] != n:
            raise ValueError(f"solve: a has shape {tuple(a.shape)} but b has shape "
                             f"{tuple(b.shape)}; b needs {n} entries")
        r = solve_p(a, reshape(b, shape=(n, 1)))
        return reshape(r, shape=tuple(r.shape[:-1]))
    if _nd(b) == 0 or b.shape[-2] != n:
        raise ValueError(f"solve: a has shape {tuple(a.shape)} but b has shape "
                         f"{tuple(b.shape)}; b must be (n,) or (..., n, k) with n = {n}")
    return solve_p(a, b)


det_p = primitive(
    "det", lambda xp, a: xp.linalg.det(a), np.linalg.det,
    vjp=(lambda g, out, a: _expand_last(g * out, 2) * _mT(inv_p(a)),),
    jvp=(lambda t, out, a:
         multiply(out, reduce_sum(multiply(_mT(inv_p(a)), t), axes=(-2, -1), keepdims=False)),),
)


def det(a: Any) -> Any:
    """Determinant (``numpy.linalg.det``); the gradient is ``det(A) A^-T`` (A invertible)."""
    a = _arr(a)
    _check_square(a, "det")
    return det_p(a)


def _slogdet_vjp(g, out, a):
    gs, gl = g
    if not is_complex(a):  # the sign is piecewise constant
        return None if gl is None else _expand_last(gl, 2) * _mT(inv_p(a))
    # With tau = tr(A^-1 dA): d logabsdet = Re(tau), d sign = sign * i Im(tau); the cotangent
    # c of tau then multiplies A^-T (tau is holomorphic in A).
    c = None if gl is None else real(gl) + 0j
    if gs is not None:
        sign = tuple_get(out, index=0)
        term = imag(gs * sign) * 1j
        c = term if c is None else c + term
    if c is None:
        return None
    return _expand_last(c, 2) * _mT(inv_p(a))


def _slogdet_jvp(t, out, a):
    tau = reduce_sum(multiply(_mT(inv_p(a)), t), axes=(-2, -1), keepdims=False)
    if not is_complex(a):
        return None, tau
    sign = tuple_get(out, index=0)
    return sign * (imag(tau) * 1j), real(tau)


slogdet_p = primitive(
    "slogdet", lambda xp, a: tuple(xp.linalg.slogdet(a)), lambda a: tuple(np.linalg.slogdet(a)),
    vjp=(_slogdet_vjp,),
    jvp=(_slogdet_jvp,),
)


def slogdet(a: Any) -> SlogdetResult:
    """``(sign, logabsdet)`` of the determinant; ``logabsdet`` is differentiable
    (gradient ``A^-T``); ``sign`` is a plain array for real matrices (it is piecewise
    constant) and differentiable for complex ones (``det / |det|``)."""
    a = _arr(a)
    _check_square(a, "slogdet")
    res = slogdet_p(a)
    if not isinstance(res, Box):
        return SlogdetResult(*res)
    sign = tuple_get(res, index=0) if is_complex(a) else _raw(res)[0]
    return SlogdetResult(sign, tuple_get(res, index=1))


# --- cholesky ---------------------------------------------------------------------------------

def _phi_mask(L: Any) -> Any:
    """Lower triangle with the diagonal halved (Murray 2016's Phi)."""
    n = L.shape[-1]
    return _const(np.tri(n) - 0.5 * np.eye(n), L)


def _cholesky_vjp(g, out, a):
    # Murray (2016): Abar = L^-H Phi(L^H Lbar) L^-1, made Hermitian (conjugate convention).
    Lh = _mH(out)
    P = matmul_p(Lh, g) * _phi_mask(out)
    S = _mH(solve_p(Lh, _mH(solve_p(Lh, P))))  # L^-H P L^-1
    return (S + _mH(S)) * 0.5


def _cholesky_jvp(t, out, a):
    Y = solve_p(out, t)                 # L^-1 dA
    X = _mH(solve_p(out, _mH(Y)))       # L^-1 dA L^-H
    return matmul_p(out, X * _phi_mask(out))


cholesky_p = primitive(
    "cholesky", lambda xp, a: xp.linalg.cholesky(a), np.linalg.cholesky,
    vjp=(_conjugate_convention(_cholesky_vjp),), jvp=(_cholesky_jvp,),
)


def _sym(a: Any) -> Any:
    """The symmetric (complex: Hermitian) part ``(A + A^H) / 2``."""
    return (a + _mH(a)) * 0.5


def cholesky(a: Any, /, *, upper: bool = False) -> Any:
    """Cholesky factor ``L`` (lower; ``upper=True`` gives ``L^H``) of a symmetric (complex:
    Hermitian) positive definite matrix (or a stack of them).

    The symmetric part ``(A + A^H)/2`` is factored (as JAX does), so values
    and derivatives agree for any perturbation and the gradient is
    symmetric; for a symmetric input the result is NumPy's.
    """
    a = _arr(a)
    _check_square(a, "cholesky")
    L = cholesky_p(_sym(a))
    return _mH(L) if upper else L


# --- eigh -----------------------------------------------------------------------------------

def _eig_F(w: Any) -> Any:
    """``F[i, j] = 1 / (w[j] - w[i])`` off the diagonal, 0 on it."""
    n = w.shape[-1]
    d = _as_row(w) - _expand_last(w)
    eye = _eye(n, w)
    return divide(1.0 - eye, d + eye)


def _eigh_vjp(g, out, a):
    # Conjugate convention: Abar = V (diag(wbar) + F o (V^H Vbar)) V^H, made Hermitian
    # (the eigenvector phases are fixed as in the JVP: diag(V^H dV) = 0).
    gw, gv = g
    w, v = _entries(out, 2)
    vh = _mH(v)
    inner_ = None if gw is None else _diag_embed(real(gw) if is_complex(gw) else gw, v)
    if gv is not None:
        term = multiply(_eig_F(w), matmul_p(vh, gv))
        inner_ = term if inner_ is None else inner_ + term
    if inner_ is None:
        return None
    return _sym(matmul_p(v, matmul_p(inner_, vh)))


def _eigh_jvp(t, out, a):
    w, v = _entries(out, 2)
    dP = matmul_p(_mH(v), matmul_p(t, v))
    dw = _diag_part(dP)
    return (real(dw) if is_complex(dw) else dw), matmul_p(v, multiply(_eig_F(w), dP))


eigh_p = primitive(
    "eigh", lambda xp, a: tuple(xp.linalg.eigh(a)), lambda a: tuple(np.linalg.eigh(a)),
    vjp=(_conjugate_convention(_eigh_vjp),), jvp=(_eigh_jvp,),
)


def eigh(a: Any, UPLO: str = "L") -> EighResult:
    """Eigenvalues (ascending) and eigenvectors of a symmetric (complex: Hermitian) matrix:
    ``(w, v)``.

    The symmetric part ``(A + A^H)/2`` is decomposed (NumPy reads the
    ``UPLO`` triangle instead; both agree for a symmetric input), so values
    and derivatives agree for any perturbation.  The derivative assumes
    distinct eigenvalues.
    """
    a = _arr(a)
    _check_square(a, "eigh")
    if UPLO not in ("L", "U"):
        raise ValueError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    res = eigh_p(_sym(a))
    if not isinstance(res, Box):
        return EighResult(*res)
    return EighResult(*_entries(res, 2))


def eigvalsh(a: Any, UPLO: str = "L") -> Any:
    """Eigenvalues of a symmetric matrix, ascending (differentiable; see :func:`eigh`)."""
    a = _arr(a)
    if not isinstance(a, Box) and isinstance(a, np.ndarray):
        _check_square(a, "eigvalsh")
        return np.linalg.eigvalsh(_sym(a))
    return eigh(a, UPLO)[0]


# --- qr ---------------------------------------------------------------------------------------

def _qr_wide_error() -> NotImplementedError:
    # (qr() splits a wide matrix before it reaches the primitive: see _qr_wide)
    return NotImplementedError(
        "qr: the qr primitive's derivative is for square and tall matrices (m >= n); "
        "call cnp.linalg.qr, which splits a wide matrix"
    )


def _qr_vjp(g, out, a):
    gq, gr = g
    m, n = a.shape[-2:]
    if m < n:
        raise _qr_wide_error()
    # Conjugate convention: Abar = (Qbar + Q N) R^-H with N built from M = Rbar R^H - Q^H Qbar.
    q, r = _entries(out, 2)
    M = None
    if gr is not None:
        M = matmul_p(gr, _mH(r))
    if gq is not None:
        qtgq = matmul_p(_mH(q), gq)
        M = negative(qtgq) if M is None else M - qtgq
    if M is None:
        return None
    # the upper triangle with the lower one's conjugate mirrored in (R's diagonal is real)
    N = M * _triu_mask(n, r, 1) + _mH(M) * _tril_mask(n, r, -1)
    d = _diag_part(M)
    N = N + _diag_embed(real(d) if is_complex(d) else d, r)
    B = matmul_p(q, N)
    if gq is not None:
        B = B + gq
    return _mH(solve_p(r, _mH(B)))  # B R^-H


def _qr_jvp(t, out, a):
    m, n = a.shape[-2:]
    if m < n:
        raise _qr_wide_error()
    q, r = _entries(out, 2)
    dx_rinv = _mT(solve_p(_mT(r), _mT(t)))  # dA R^-1
    X = matmul_p(_mH(q), dx_rinv)
    low = X * _tril_mask(n, r, -1)
    C = low - _mH(low)  # Q^H dQ: skew-Hermitian
    if is_complex(X):  # R's diagonal stays real, so Q^H dQ takes the imaginary diagonal
        C = C + _diag_embed(imag(_diag_part(X)) * 1j, X)
    return matmul_p(q, C - X) + dx_rinv, matmul_p(X - C, r)


qr_p = primitive(
    "qr", lambda xp, a: tuple(xp.linalg.qr(a)), lambda a: tuple(np.linalg.qr(a)),
    vjp=(_conjugate_convention(_qr_vjp),), jvp=(_qr_jvp,),
)


def qr(a: Any, mode: str = "reduced") -> Any:
    """QR decomposition ``(Q, R)`` (``numpy.linalg.qr``).

    The derivative covers ``mode='reduced'`` (and ``'r'``, ``'complete'`` where
    they coincide with it) for square, tall and wide matrices (a wide one is
    split into its leading square block and the rest).
    """
    a = _arr(a)
    _check_matrix(a, "qr")
    if mode not in ("reduced", "complete", "r", "raw"):
        raise ValueError(f"qr: unknown mode {mode!r}; use 'reduced', 'complete', 'r' or 'raw'")
    if not isinstance(a, Box):
        if isinstance(a, np.ndarray):
            res = np.linalg.qr(a, mode=mode)  # type: ignore[call-overload]  # mode checked above
            return QRResult(*res) if mode in ("reduced", "complete") else res
        if mode in ("reduced", "complete"):
            return QRResult(*namespace_of(a).linalg.qr(a, mode=mode))
    m, n = a.shape[-2:]
    if mode == "raw" or (mode == "complete" and m > n):
        raise NotImplementedError(f"qr: mode={mode!r} is not differentiable for shape "
                                  f"{tuple(a.shape)}; use mode='reduced'")
    q, r = _qr_wide(a) if m < n else _entries(qr_p(a), 2)
    return r if mode == "r" else QRResult(q, r)


def _qr_wide(a: Any) -> tuple[Any, Any]:
    """QR of a wide matrix (m < n) composed from the square case, so both modes and every
    order follow: with ``A = [X | Y]`` (``X`` square), ``X = Q U`` and ``R = [U | Q^H Y]``.
    Householder QR of ``A`` builds ``Q`` from the first m columns alone, so the values are
    NumPy's."""
    m = a.shape[-2]
    lead = (slice(None),) * (_nd(a) - 1)
    q, u = _entries(qr_p(getitem(a, lead + (slice(0, m),))), 2)
    v = matmul_p(_mH(q), getitem(a, lead + (slice(m, None),)))
    return q, concat_p(u, v, axis=-1)


# --- svd --------------------------------------------------------------------------------------

def _svd_F(s: Any) -> Any:
    """``F[i, j] = 1 / (s[j]^2 - s[i]^2)`` off the diagonal, 0 on it."""
    s2 = s * s
    eye = _eye(s.shape[-1], s)
    return divide(1.0 - eye, _as_row(s2) - _expand_last(s2) + eye)


def _svd_reduced(out, a, full_matrices):
    u, s, vh = _entries(out, 3)
    m, n = a.shape[-2:]
    k = min(m, n)
    if full_matrices and m != n:  # keep the first k columns / rows (the rest are not unique)
        if m > k:
            u = matmul_p(u, _eye(m, u, k))
        else:
            vh = matmul_p(_eye(k, vh, n), vh)
    return u, s, vh, m, n, k


_COLS = (Ellipsis, slice(None))  # then a slice of the last axis


def _complement_tangents(out: Any, m: int, n: int, k: int) -> tuple[Any, Any]:
    """``U2`` and ``Vh2``: the extra columns / rows of a full SVD (``None`` when absent)."""
    u, _, vh = _entries(out, 3)
    u2 = getitem(u, _COLS + (slice(k, None),)) if m > k else None
    vh2 = getitem(vh, (Ellipsis, slice(k, None), slice(None))) if n > k else None
    return u2, vh2


def _svd_vjp(g, out, a, full_matrices):
    # Townsend (2016), "Differentiating the singular value decomposition".
    gu, gs, gvh = g
    u, s, vh, m, n, k = _svd_reduced(out, a, full_matrices)
    if full_matrices and m != n:
        # The extra columns U2 (rows Vh2) are any orthonormal basis of the complement; they
        # move with the least rotation that keeps U unitary (see _svd_jvp): the transpose
        # of dU2 = -U1 dU1^H U2 sends -U2 gU2^H U1 to U1's cotangent (likewise for Vh).
        u2, vh2 = _complement_tangents(out, m, n, k)
        if gu is not None and m > k:
            gu2 = getitem(gu, _COLS + (slice(k, None),))
            gu = getitem(gu, _COLS + (slice(0, k),)) - matmul_p(u2, matmul_p(_mH(gu2), u))
        if gvh is not None and n > k:
            rows = (Ellipsis, slice(k, None), slice(None))
            gvh2 = getitem(gvh, rows)
            gvh = (getitem(gvh, (Ellipsis, slice(0, k), slice(None)))
                   - matmul_p(vh, matmul_p(_mH(gvh2), vh2)))
    # (conjugate convention; for complex data the phase of each singular pair is taken by U,
    # as in the JVP, which adds the imaginary diagonal of U^H Ubar divided by s)
    s_row = _as_row(s)  # s[j] along the last axis
    s_col = _expand_last(s)  # s[i] along the second-to-last axis
    cplx = is_complex(u)
    if gs is not None and is_complex(gs):
        gs = real(gs)
    core = None if gs is None else _diag_embed(gs, u)
    extra = None
    if gu is not None or gvh is not None:
        F = _svd_F(s)
    if gu is not None:
        utgu = matmul_p(_mH(u), gu)
        term = multiply(F, utgu - _mH(utgu)) * s_row
        if cplx:
            term = term + _diag_embed(imag(_diag_part(utgu)) * 1j / s, u)
        core = term if core is None else core + term
        if m > k:
            extra = matmul_p((gu - matmul_p(u, utgu)) / s_row, vh)
    if gvh is not None:
        gv = _mH(gvh)
        v = _mH(vh)
        vtgv = matmul_p(vh, gv)
        term = multiply(s_col, multiply(F, vtgv - _mH(vtgv)))
        core = term if core is None else core + term
        if n > k:
            e = matmul_p(u / s_row, _mH(gv - matmul_p(v, vtgv)))
            extra = e if extra is None else extra + e
    if core is None:
        return None
    ga = matmul_p(u, matmul_p(core, vh))
    return ga if extra is None else ga + extra


def _svd_jvp(t, out, a, full_matrices):
    u, s, vh, m, n, k = _svd_reduced(out, a, full_matrices)
    v = _mH(vh)
    ut = _mH(u)
    dP = matmul_p(ut, matmul_p(t, v))
    ds = _diag_part(dP)
    F = _svd_F(s)
    s_row = _as_row(s)
    s_col = _expand_last(s)
    dPS = dP * s_row
    SdP = multiply(s_col, dP)
    inner_ = multiply(F, dPS + _mH(dPS))
    if is_complex(dP):  # U takes the phase: diag(U^H dU) = i Im(diag dP) / s
        inner_ = inner_ + _diag_embed(imag(ds) * 1j / s, dP)
        ds = real(ds)
    du = matmul_p(u, inner_)
    dv = matmul_p(v, multiply(F, SdP + _mH(SdP)))
    if m > k:
        dav = matmul_p(t, v)
        du = du + (dav - matmul_p(u, matmul_p(ut, dav))) / s_row
    if n > k:
        dau = matmul_p(_mH(t), u)
        dv = dv + (dau - matmul_p(v, matmul_p(vh, dau))) / s_row
    dvh = _mH(dv)
    if full_matrices and m != n:
        # the complement's basis moves with the least rotation keeping U (V) unitary:
        # dU2 = -U1 dU1^H U2 (U2^H dU2 = 0), and dVh2 = -Vh2 dVh1^H Vh1
        u2, vh2 = _complement_tangents(out, m, n, k)
        if m > k:
            du = concat_p(du, negative(matmul_p(u, matmul_p(_mH(du), u2))), axis=-1)
        if n > k:
            dvh = concat_p(dvh, negative(matmul_p(vh2, matmul_p(_mH(dvh), vh))), axis=-2)
    return du, ds, dvh


svd_p = primitive(
    "svd", lambda xp, a, full_matrices: tuple(xp.linalg.svd(a, full_matrices=full_matrices)),
    lambda a, full_matrices: tuple(np.linalg.svd(a, full_matrices=full_matrices)),
    vjp=(_conjugate_convention(_svd_vjp),), jvp=(_svd_jvp,),
)


def svd(a: Any, full_matrices: bool = True, compute_uv: bool = True,
        hermitian: bool = False) -> Any:
    """Singular value decomposition ``(U, S, Vh)`` (``numpy.linalg.svd``); ``S`` alone when
    ``compute_uv=False``.

    The derivative assumes distinct, non-zero singular values.  With
    ``full_matrices=True`` on a non-square matrix the extra columns ``U2`` of
    ``U`` (rows of ``Vh``) are any orthonormal basis of the complement; in both
    modes they move with the least rotation that keeps ``U`` unitary
    (``dU2 = -U1 dU1^H U2``), so every function that does not depend on the
    choice of that basis (``U2 U2^H``, norms of projections...) gets its exact
    derivative.
    """
    a = _arr(a)
    _check_matrix(a, "svd")
    if not isinstance(a, Box):
        if isinstance(a, np.ndarray):
            return np.linalg.svd(a, full_matrices, compute_uv, hermitian)  # type: ignore[call-overload]  # (stubs: compute_uv a literal)
        xp = namespace_of(a)
        if not compute_uv:
            return xp.linalg.svdvals(a)
        return SVDResult(*xp.linalg.svd(a, full_matrices=bool(full_matrices)))
    if not compute_uv:
        return tuple_get(svd_p(a, full_matrices=False), index=1)
    res = svd_p(a, full_matrices=bool(full_matrices))
    return SVDResult(*_entries(res, 3))


# --- norms ------------------------------------------------------------------------------------

def _norm2_np(x, axes, keepdims):
    if x.dtype.kind == "c":
        x = np.abs(x)
    if x.ndim == 1 and not keepdims:
        return np.sqrt(np.dot(x, x))
    return np.sqrt(np.add.reduce(x * x, axis=axes, keepdims=keepdims))


def _norm2_impl(xp, x, axes, keepdims):
    if "complex" in str(x.dtype):
        x = xp.abs(x)
    return xp.sqrt(xp.sum(x * x, axis=axes, keepdims=keepdims))


def _safe(out: Any) -> Any:
    """``out`` with zeros replaced by ones (the 2-norm's gradient at 0 is defined as 0)."""
    return out + _fmask(out == 0, out)


def _norm2_vjp(g, out, x, axes, keepdims):
    from .reductions import expand_reduced

    if is_complex(x):  # d||x|| = Re(sum(conj(x) dx)) / ||x||
        return expand_reduced(real(g) / _safe(out), x, out, axes, keepdims) * conj(x)
    return expand_reduced(g / _safe(out), x, out, axes, keepdims) * x


def _norm2_jvp(t, out, x, axes, keepdims):
    if is_complex(x):
        return real(reduce_sum(t * conj(x), axes=axes, keepdims=keepdims)) / _safe(out)
    return reduce_sum(t * x, axes=axes, keepdims=keepdims) / _safe(out)


norm2_p = primitive(
    "norm2", _norm2_impl, _norm2_np, vjp=(_norm2_vjp,), jvp=(_norm2_jvp,),
)


def _norm_axes(axis: Any, nd: int) -> tuple:
    axes = axis if isinstance(axis, tuple) else tuple(axis) if isinstance(axis, list) else (axis,)
    out = []
    for ax in axes:
        try:
            ax = int(ax)
        except TypeError:
            raise TypeError(f"norm: axis must be an int or a tuple of ints, got {axis!r}") from None
        if not -nd <= ax < nd:
            raise ValueError(f"norm: axis {ax} is out of bounds for an array of dimension {nd}")
        out.append(ax - nd if ax >= 0 else ax)
    if len(set(out)) != len(out):
        raise ValueError(f"norm: duplicate axes in {axis!r}")
    return tuple(out)


def _vector_norm(x: Any, ord: Any, axes: tuple, keepdims: bool) -> Any:
    if ord is None or ord == 2:
        return norm2_p(x, axes=tuple(sorted(axes)), keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
    if ord == np.inf:
        return amax(absolute(x), axis=axes, keepdims=keepdims)
    if ord == -np.inf:
        return amin(absolute(x), axis=axes, keepdims=keepdims)
    if ord == 0:  # the number of non-zeros: piecewise constant, no derivative
        raw = _raw(x)
        nz = not_equal(raw, 0)
        return reduce_sum(_fmask(nz, raw), axes=tuple(sorted(axes)), keepdims=keepdims)
    if ord == 1:
        return reduce_sum(absolute(x), axes=tuple(sorted(axes)), keepdims=keepdims)
    p = float(ord)
    s = reduce_sum(power(absolute(x), p), axes=tuple(sorted(axes)), keepdims=keepdims)
    return power(s, 1.0 / p)


def _matrix_norm(x: Any, ord: Any, row: int, col: int, keepdims: bool) -> Any:
    nd = _nd(x)
    axes = tuple(sorted((row, col)))
    if ord is None or ord == "fro":
        return norm2_p(x, axes=axes, keepdims=keepdims)
    if ord in (1, -1, np.inf, -np.inf):
        summed, picked = (row, col) if ord in (1, -1) else (col, row)
        pick = amax if ord in (1, np.inf) else amin
        r = pick(reduce_sum(absolute(x), axes=(summed,), keepdims=True), axis=picked,
                 keepdims=True)
    elif ord in ("nuc", 2, -2):
        others = [i for i in range(nd) if i - nd not in (row, col)]
        xm = _permute_axes(x, others + [row + nd, col + nd])
        s = svd(xm, compute_uv=False)
        if ord == "nuc":
            r = reduce_sum(s, axes=(-1,), keepdims=False)
        else:
            r = (amax if ord == 2 else amin)(s, axis=-1)
        shape = list(x.shape)
        shape[row] = shape[col] = 1
        r = reshape(r, shape=tuple(shape))
    else:
        raise ValueError(f"norm: invalid norm order {ord!r} for matrices")
    if keepdims:
        return r
    return reshape(r, shape=tuple(d for i, d in enumerate(x.shape) if i - nd not in axes))


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """Vector or matrix norm with NumPy's ``ord``/``axis``/``keepdims`` rules.

    The default is the 2-norm of the flattened input; its gradient at the
    zero vector is defined as 0 (not NaN).

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> x = cr.tensor([3.0, 4.0], requires_grad=True)
    >>> y = cnp.linalg.norm(x); y.backward()
    >>> float(y), x.grad
    (5.0, array([0.6, 0.8]))
    """
    x = _arr(x)
    nd = _nd(x)
    keepdims = bool(keepdims)
    if axis is None:
        if ord is None:
            return norm2_p(x, axes=tuple(range(-nd, 0)), keepdims=keepdims)
        if nd == 1:
            axis = (-1,)
        elif nd == 2:
            axis = (-2, -1)
        else:
            raise ValueError(f"norm: ord={ord!r} needs axis for an array of shape "
                             f"{tuple(x.shape)} (1-D or 2-D without axis)")
    axes = _norm_axes(axis, nd)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes, keepdims)
    if len(axes) == 2:
        return _matrix_norm(x, ord, axes[0], axes[1], keepdims)
    raise ValueError(f"norm: axis must name 1 or 2 axes, got {axis!r}")


def vector_norm(x: Any, /, *, axis: Any = None, keepdims: bool = False, ord: Any = 2) -> Any:
    """Vector norm over ``axis`` (all axes, flattened, by default), like NumPy 2's."""
    x = _arr(x)
    nd = _nd(x)
    axes = tuple(range(-nd, 0)) if axis is None else _norm_axes(axis, nd)
    return _vector_norm(x, ord, axes, bool(keepdims))


def matrix_norm(x: Any, /, *, keepdims: bool = False, ord: Any = "fro") -> Any:
    """Matrix norm over the last two axes, like NumPy 2's."""
    x = _arr(x)
    _check_matrix(x, "matrix_norm")
    return _matrix_norm(x, ord, -2, -1, bool(keepdims))


# --- more: pinv, matrix_power, lstsq, multi_dot -------------------------------------------------

_NoValue = object()


def pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = _NoValue) -> Any:
    """Moore-Penrose pseudo-inverse via the SVD (``numpy.linalg.pinv``); differentiable
    where the rank does not change."""
    a = _arr(a)
    _check_matrix(a, "pinv")
    raw = _raw(a)
    if not isinstance(a, Box) and isinstance(a, np.ndarray):
        kw = {} if rtol is _NoValue else {"rtol": rtol}
        return np.linalg.pinv(a, rcond, hermitian, **kw)
    if rcond is None:
        if rtol is _NoValue:
            rcond = 1e-15
        elif rtol is None:
            eps = np.finfo(raw.dtype).eps if isinstance(raw, np.ndarray) else (
                np.finfo(np.float32).eps if "32" in str(raw.dtype) else np.finfo(float).eps)
            rcond = max(a.shape[-2:]) * eps  # type: ignore[union-attr]  # a Tensor
        else:
            rcond = rtol
    u, s, vh = svd(a, full_matrices=False)
    s_raw = _raw(s)
    xp = namespace_of(s_raw)
    rc = np.asarray(rcond)
    smax = xp.max(s_raw, axis=-1, keepdims=True)
    cutoff = smax * float(rc) if rc.ndim == 0 else smax * _const(rc[..., None], s_raw)
    keep = s_raw > cutoff
    s_inv = divide(_fmask(keep, s), where(keep, s, 1.0))
    return matmul_p(_mH(vh), _expand_last(s_inv) * _mH(u))


def matrix_power(a: Any, n: int) -> Any:
    """``a`` multiplied by itself ``n`` times (``n < 0`` inverts first; ``n = 0`` gives the
    identity), by repeated squaring."""
    a = _arr(a)
    _check_square(a, "matrix_power")
    if not isinstance(n, (int, np.integer)):
        raise TypeError(f"matrix_power: exponent must be an integer, got {n!r}")
    n = int(n)
    if n == 0:
        raw = _raw(a)
        eye = _eye(a.shape[-1], raw)
        if isinstance(raw, np.ndarray):
            return np.broadcast_to(eye, raw.shape).copy()
        return namespace_of(raw).broadcast_to(eye, raw.shape)
    if n < 0:
        a = inv(a)
        n = -n
    result, base = None, a
    while True:
        if n & 1:
            result = base if result is None else matmul_p(result, base)
        n >>= 1
        if not n:
            return result
        base = matmul_p(base, base)


def lstsq(a: Any, b: Any, rcond: Any = None) -> tuple:
    """Least-squares solution ``(x, residuals, rank, s)`` (``numpy.linalg.lstsq``); ``x`` and
    ``residuals`` are differentiable (through the pseudo-inverse)."""
    a, b = _arr(a), _arr(b)
    if not _is_boxed(a, b) and isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.linalg.lstsq(a, b, rcond=rcond)
    if _nd(a) != 2 or _nd(b) not in (1, 2) or a.shape[0] != b.shape[0]:
        raise LinAlgError(f"lstsq: a must be (m, n) and b (m,) or (m, k) with the same m, got "
                          f"shapes {tuple(a.shape)} and {tuple(b.shape)}")
    m, n = a.shape
    s = np.linalg.svd(np.asarray(_raw(a)), compute_uv=False)
    if rcond is None:
        rcond = np.finfo(s.dtype).eps * max(m, n)
    rank = int(np.sum(s > rcond * (s.max() if s.size else 0.0)))
    x = matmul(pinv(a, rcond=rcond), b)
    if rank == n and m > n:
        resid = matmul(a, x) - b
        sq = real(resid * conj(resid)) if is_complex(resid) else resid * resid
        resid = reduce_sum(sq, axes=(0,) if _nd(b) == 2 else (-1,), keepdims=False)
        if _nd(b) == 1:
            resid = reshape(resid, shape=(1,))
    else:
        resid = np.zeros((0,), dtype=s.dtype)
    return x, resid, rank, s


def multi_dot(arrays: Any) -> Any:
    """Product of a sequence of matrices, left to right (1-D ends act as vectors)."""
    arrays = list(arrays)
    if len(arrays) < 2:
        raise ValueError("multi_dot: expected at least two arrays")
    out = arrays[0]
    for x in arrays[1:]:
        out = matmul(out, x)
    return out


def matrix_transpose(x: Any, /) -> Any:
    """Swap the last two axes."""
    x = _arr(x)
    _check_matrix(x, "matrix_transpose")
    return _mT(x)


#: ``chainrule.numpy.linalg``: NumPy's ``numpy.linalg`` functions, differentiable.
linalg = types.SimpleNamespace(
    inv=inv, solve=solve, det=det, slogdet=slogdet, cholesky=cholesky, norm=norm, eigh=eigh,
    eigvalsh=eigvalsh, qr=qr, svd=svd, pinv=pinv, matrix_power=matrix_power, lstsq=lstsq,
    vector_norm=vector_norm, matrix_norm=matrix_norm, multi_dot=multi_dot, matmul=matmul,
    tensordot=tensordot, outer=outer, matrix_transpose=matrix_transpose,
    LinAlgError=LinAlgError,
)
