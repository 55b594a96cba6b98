"""Products: ``matmul`` and ``einsum`` (primitives) and the composites ``dot``, ``inner``,
``outer``, ``vdot``, ``tensordot``, ``kron``."""

from __future__ import annotations

import string
from collections import Counter
from typing import Any

import numpy as np

from ...core.primitive import primitive
from .._broadcast import align, broadcast_to, reshape, sum_to
from ..elementwise import (
    multiply,
)
from ._common import _arr, _as_row, _conj, _expand_last, _eye, _mT, _nd, _permute_axes, _reduce_to

# --- matmul -----------------------------------------------------------------------------------
# NumPy semantics: a 1-D first operand is a row (its axis then removed), a 1-D second operand a
# column; the batch axes of stacked operands broadcast.  Cotangents/tangents may carry extra
# leading batch axes, which matmul's own broadcasting carries along on the cotangent side.

def _mm_vjp_a(g, out, a, b):
    # the common case on NumPy values, without dispatch (a 2-D g is (m, p) for a matrix a, or
    # a batch of (p,) for a vector a: g @ b^T either way)
    if type(g) is np.ndarray and type(b) is np.ndarray and g.ndim == 2 and b.ndim == 2:
        return np.matmul(g, b.T)
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
    if (type(g) is np.ndarray and type(a) is np.ndarray and g.ndim == 2 and a.ndim == 2
            and len(b.shape) == 2):
        return np.matmul(a.T, g)  # the common case on NumPy values: no dispatch
    an, bn = _nd(a), _nd(b)
    nb = _nd(g) - _nd(out)
    if an == 1:
        if bn == 1:
            return _expand_last(g) * a
        # out (..., p): gb[..., n, p] = a[n] g[..., p]
        return _reduce_to(multiply(_expand_last(a), _as_row(g)), nb, b.shape)
    if bn == 1:  # out (..., m): gb[n] = sum a[..., m, n] g[..., m]
        if an == 2:  # one matrix: (batch..., m) @ a is already (batch..., n)
            return matmul_p(g, a)
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
            # (a constant NumPy matrix needs no recorded transpose: its view will do)
            return matmul_p(t, a.T if type(a) is np.ndarray else _mT(a))
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


# (the reverse rules read the inputs and only the output's shape)
matmul_p = primitive(
    "matmul", lambda xp, a, b: xp.matmul(a, b), _matmul_np,
    vjp=(_mm_vjp_a, _mm_vjp_b),
    jvp=(_mm_jvp_a, _mm_jvp_b),
    saves="inputs",
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
