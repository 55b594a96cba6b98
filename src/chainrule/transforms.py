"""Function transforms: ``grad``, ``value_and_grad``, ``vjp``, ``jvp``, Jacobians, Hessians.

Each call of a transform opens a fresh trace level (``core.trace.level_scope``)
and boxes the values it differentiates with respect to at that level:

* reverse mode (``vjp``, ``grad``, ``jacrev``) boxes the inputs as leaves
  that require grad, runs ``f`` (which records graph nodes) and sweeps the
  cotangents back with ``core.backward.backward_pass``;
* forward mode (``jvp``, ``jacfwd``) boxes the inputs with a tangent and
  reads the output tangents that the primitives' JVP rules pushed along.

The value received may already be a box of an outer transform, and the
rules run on the unwrapped values, so transforms nest (``grad(grad(f))``,
``jacfwd(jacrev(f))``) without perturbation confusion: every level is new.

Jacobians never loop in Python over basis vectors.  The basis vectors of all
inputs (``jacfwd``) or of all outputs (``jacrev``) are concatenated into one
identity matrix and pushed through in ONE pass as a leading batch axis of
the tangents / cotangents; the result is split back per leaf.  Each leaf's
Jacobian has shape ``out_leaf.shape + in_leaf.shape``.

Arguments and results may be pytrees (nested tuples, lists and dicts of
arrays, see :mod:`chainrule.pytree`); derivatives come back with the same
structure as the arguments they are taken with respect to.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .backend import library_name, namespace_of
from .core.backward import backward_pass
from .core.primitive import Box, Primitive
from .core.trace import EAGER_LEVEL, level_scope
from .graph.replay import GradientReplay
from .ops._broadcast import reshape as _reshape
from .ops.shape import transpose_p as _permute  # permutes trailing axes, batch kept
from .pytree import PyTreeDef, tree_flatten, tree_unflatten
from .tensor import Tensor, is_differentiable_dtype

__all__ = [
    "grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev", "jacobian", "hessian", "hvp",
    "elementwise_grad",
]


# --- small helpers -----------------------------------------------------------------------

def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _shape(x: Any) -> tuple:
    return tuple(x.shape)


def _size(shape: tuple) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _is_scalar_like(x: Any) -> bool:
    return isinstance(x, (int, float, complex, bool, np.generic))


def _as_value(x: Any) -> Any:
    """A leaf as the transforms work with it: numbers become 0-d arrays, inert eager
    tensors (level 0, no grad) become their arrays; boxes of active levels are kept."""
    if type(x) is np.ndarray:  # the common case first (transforms call this per leaf)
        return x
    if isinstance(x, Box):
        if x._level == EAGER_LEVEL and not x.requires_grad and x._node is None:
            return x.data
        weak = x.weak_type
        if weak is float or weak is complex:  # a recorded Python number: strong, as eagerly
            return x * np.ones((), np.result_type(weak))
        return x
    if _is_scalar_like(x) or not hasattr(x, "shape") or not hasattr(x, "dtype"):
        return np.asarray(x)
    return x


def _diff_input(x: Any, fname: str, where: str) -> Any:
    """Prepare one leaf that is differentiated with respect to (floating dtypes only)."""
    x = _as_value(x)
    dtype = x.dtype
    if not is_differentiable_dtype(dtype):
        raise TypeError(
            f"{fname}: {where} has dtype {dtype}, which carries no derivative; differentiate "
            "with respect to floating-point values (e.g. 1.0 instead of 1, or "
            "x.astype(float)), or move this argument out of argnums"
        )
    return x


def _is_complex(x: Any) -> bool:
    return getattr(getattr(_raw(x), "dtype", None), "kind", "") == "c"


def _need_real(fname: str, what: str, values: Sequence[Any], holomorphic: bool) -> None:
    """Complex ``what`` (inputs or outputs) need ``holomorphic=True``, as in JAX."""
    if holomorphic:
        return
    for v in values:
        if _is_complex(v):
            use = "vjp" if what == "outputs" else "jvp"
            raise TypeError(
                f"{fname} requires real-valued {what}, but got dtype {_raw(v).dtype}; for a "
                f"holomorphic function pass holomorphic=True (the result is then f'(z)); for "
                f"a non-holomorphic function with complex {what} use cr.{use} directly, or "
                "take the real part (cnp.real / cnp.abs) first"
            )


def _need_complex(fname: str, what: str, values: Sequence[Any], holomorphic: bool) -> None:
    """``holomorphic=True`` differentiates complex functions of complex inputs only."""
    if not holomorphic:
        return
    for v in values:
        if not _is_complex(v):
            raise TypeError(
                f"{fname} with holomorphic=True requires {what} with a complex dtype, but got "
                f"{_raw(v).dtype}; convert them (e.g. x.astype(complex)) or drop holomorphic"
            )


def _unbox(x: Any, level: int) -> Any:
    """The value of ``x`` one level down (the level's own box is removed)."""
    if isinstance(x, Box) and x._level == level:
        return x.data
    return _as_value(x)


def _dtype_of(*likes: Any) -> Any:
    """The promoted dtype of ``likes``, as the library of the first one spells it."""
    dts = [_raw(v).dtype for v in likes]
    try:
        return np.result_type(*dts)
    except TypeError:  # another library's dtype objects
        pass
    try:
        return _creating_namespace(_raw(likes[0])).result_type(*dts)
    except (TypeError, AttributeError):
        return dts[0]


def _creating_namespace(raw: Any) -> Any:
    """The namespace that makes fresh constants (zeros, seeds, basis vectors) for ``raw``.

    Under ``vmap`` the raw value of a traced array is a view of its batch tracer, whose
    namespace stages operations (and makes NumPy constants); the constants a transform
    feeds in are not batched, so they are made by the library of the batch itself.
    """
    xp = namespace_of(raw)
    while not isinstance(raw, np.ndarray | np.generic):
        batch = getattr(getattr(raw, "_tracer", None), "_bval", None)  # a vmap tracer's view
        if batch is None or isinstance(batch, tuple):
            break
        raw = _raw(batch)
        xp = namespace_of(raw)
    return xp


def _zeros(shape: tuple, *likes: Any) -> Any:
    """Zeros in the library of the first of ``likes`` (a plain array: it carries no derivative)."""
    raw = _raw(likes[0])
    xp = _creating_namespace(raw)
    return xp.zeros(shape, dtype=_dtype_of(*likes))


def _basis(n: int, offset: int, like: Any) -> Any:
    """Rows ``offset .. offset + size`` of the n x n identity, shaped ``(n,) + like.shape``.

    Concatenating these over several leaves gives the identity over all of them: the
    batch of basis vectors that one forward (or reverse) pass pushes through at once.
    Made with the namespace of ``like`` (lazy for Dask, on the array's device).
    """
    raw = _raw(like)
    shape = _shape(like)
    xp = _creating_namespace(raw)
    # columns offset .. offset + size of the identity: ones at [offset + j, j]
    if xp is np or library_name(xp) == "chainrule":  # (a staged graph value: NumPy at run time)
        return np.eye(n, _size(shape), k=-offset, dtype=raw.dtype).reshape((n,) + shape)
    device = getattr(raw, "device", None)
    extra = {} if device is None else {"device": device}
    e = xp.eye(n, _size(shape), k=-offset, dtype=raw.dtype, **extra)
    return xp.reshape(e, (n,) + shape)


def _finish(x: Any) -> Any:
    """Results handed back: NumPy scalars become 0-d arrays, inert eager tensors arrays."""
    if type(x) is np.ndarray:
        return x
    if isinstance(x, np.generic) or _is_scalar_like(x):
        return np.asarray(x)
    if isinstance(x, Box) and x._level == EAGER_LEVEL and not x.requires_grad and x._node is None:
        return x.data
    return x


def _gradients(grads: Sequence[Any], inputs: Sequence[Any]) -> list[Any]:
    """The gradients handed back, one per input (zeros where nothing flowed back; the sweep
    gives each input an array of its own)."""
    return [_finish(g) if g is not None else _zeros(_shape(x), x)
            for g, x in zip(grads, inputs)]


def _argnums(fname: str, argnums: Any, nargs: int) -> tuple[tuple[int, ...], bool]:
    nums: tuple[int, ...]
    if isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool):
        nums, single = (int(argnums),), True
    elif isinstance(argnums, (tuple, list)) and all(
        isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in argnums
    ):
        nums, single = tuple(int(a) for a in argnums), False
        if not nums:
            raise ValueError(f"{fname}: argnums is an empty tuple; name at least one argument")
    else:
        raise TypeError(f"{fname}: argnums must be an int or a tuple of ints, got {argnums!r}")
    out = []
    for a in nums:
        if not -nargs <= a < nargs:
            raise ValueError(
                f"{fname}: argnums={argnums!r} names argument {a}, but the function was "
                f"called with {nargs} positional argument(s)"
            )
        out.append(a % nargs)
    if len(set(out)) != len(out):
        raise ValueError(f"{fname}: argnums={argnums!r} repeats an argument")
    return tuple(out), single


def _partial(f: Callable, args: tuple, kwargs: dict, nums: tuple, single: bool) -> tuple:
    """Split ``f(*args)`` into the differentiated tree and a function of that tree."""
    dyn = args[nums[0]] if single else tuple(args[i] for i in nums)

    def fun(tree: Any) -> Any:
        full = list(args)
        if single:
            full[nums[0]] = tree
        else:
            for i, v in zip(nums, tree):
                full[i] = v
        return f(*full, **kwargs)

    return dyn, fun


def _split_aux(fname: str, out: Any, has_aux: bool) -> tuple[Any, Any]:
    if not has_aux:
        return out, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(
            f"{fname} with has_aux=True needs f to return a pair (output, aux), got "
            f"{type(out).__name__}"
        )
    return out[0], out[1]


def _strip(tree: Any, level: int) -> Any:
    """Remove this level's boxes everywhere in ``tree`` (aux data carries no derivative)."""
    leaves, td = tree_flatten(tree)
    return tree_unflatten(td, [_finish(_unbox(x, level)) for x in leaves])


# --- private shape primitives used to split and reorder Jacobian blocks -----------------
# (unregistered: they are internal to the transforms; both rules are given so Jacobians
#  nest, e.g. hessian = jacfwd(jacrev(f)).)  Axes are negative: batch axes stay leading.

def _take_impl(xp: Any, x: Any, start: int, stop: int, axis: int) -> Any:
    return x[(slice(None),) * (x.ndim + axis) + (slice(start, stop),)]


def _pad_impl(xp: Any, x: Any, before: int, after: int, axis: int) -> Any:
    parts = []
    shape = list(x.shape)
    for n in (before, None, after):
        if n is None:
            parts.append(x)
        elif n:
            shape[axis] = n
            parts.append(xp.zeros(tuple(shape), dtype=x.dtype))
    concat = getattr(xp, "concat", None) or xp.concatenate
    return concat(parts, axis=axis) if len(parts) > 1 else x


_take: Primitive = Primitive(
    "transforms.take_block", _take_impl,
    vjp=(lambda g, out, x, start, stop, axis:
         _pad(g, before=start, after=x.shape[axis] - stop, axis=axis),),
    jvp=(lambda t, out, x, start, stop, axis: _take(t, start=start, stop=stop, axis=axis),),
    register=False,
)
_pad: Primitive = Primitive(
    "transforms.pad_block", _pad_impl,
    vjp=(lambda g, out, x, before, after, axis:
         _take(g, start=before, stop=before + x.shape[axis], axis=axis),),
    jvp=(lambda t, out, x, before, after, axis: _pad(t, before=before, after=after, axis=axis),),
    register=False,
)


# --- the two engines: a reverse trace and a forward push ---------------------------------

class _ReverseTrace:
    """``f`` evaluated once at a fresh reverse level, ready to pull cotangents back."""

    def __init__(self, fname: str, fun: Callable, tree: Any, has_aux: bool = False) -> None:
        leaves, self.in_def = tree_flatten(tree)
        self.inputs = []
        for i, x in enumerate(leaves):
            x = _as_value(x)
            if type(x) is not np.ndarray or x.dtype.kind not in "fc":  # (else: it is fine)
                x = _diff_input(x, fname, f"input leaf {i} (shape {_shape(x)})")
            self.inputs.append(x)
        with level_scope(name=fname) as level:
            self.level = level
            self.boxes = [Tensor(x, level, None, True) for x in self.inputs]
            out = fun(tree_unflatten(self.in_def, self.boxes))
        out, aux = _split_aux(fname, out, has_aux)
        self.aux = _strip(aux, level) if has_aux else None
        self.out_leaves, self.out_def = tree_flatten(out)
        self.out_leaves = [x if isinstance(x, Box) else _as_value(x) for x in self.out_leaves]
        self.out_values = [_unbox(x, level) for x in self.out_leaves]

    def connected(self, i: int) -> bool:
        o = self.out_leaves[i]
        return isinstance(o, Box) and o._level == self.level and o.requires_grad

    def pull(self, cotangents: Sequence[Any], retain: bool) -> list[Any]:
        """Cotangents of the inputs (``None`` where nothing flowed back)."""
        roots = [(o, g) for i, (o, g) in enumerate(zip(self.out_leaves, cotangents))
                 if g is not None and self.connected(i)]
        if not roots:
            return [None] * len(self.boxes)
        leaves, _ = backward_pass(roots, self.level, retain_graph=retain)
        return [leaves[id(b)][1] if id(b) in leaves else None for b in self.boxes]


def _forward(fname: str, fun: Callable, in_def: PyTreeDef, inputs: list, tangents: list
             ) -> tuple[list, list, PyTreeDef, int]:
    """Run ``fun`` at a fresh forward level: output values, tangents (None = 0), tree, level."""
    with level_scope(forward=True, name=fname) as level:
        boxes = [Tensor(x, level, None, False, t) for x, t in zip(inputs, tangents)]
        out = fun(tree_unflatten(in_def, boxes))
    out_leaves, out_def = tree_flatten(out)
    values = [_unbox(o, level) for o in out_leaves]
    touts = [o._tangent if isinstance(o, Box) and o._level == level else None
             for o in out_leaves]
    return values, touts, out_def, level


# --- grad, value_and_grad, vjp, jvp --------------------------------------------------------

def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
                   holomorphic: bool = False, *, replay: bool = True) -> Callable:
    """Return a function computing both ``f(*args)`` and its gradient (reverse mode).

    ``f`` must return a scalar (shape ``()``, floating dtype).  The gradient is
    taken with respect to the argument(s) named by ``argnums`` (an int, or a
    tuple of ints giving a tuple of gradients); each gradient has the
    structure (pytree), shape and dtype of its argument.  With
    ``has_aux=True``, ``f`` returns ``(value, aux)`` and the result is
    ``((value, aux), gradient)``.

    Complex numbers (API section 11): for a real ``f`` of a complex ``z``
    the gradient is ``df/dx - i df/dy``; a complex output raises
    ``TypeError`` unless ``holomorphic=True``, which gives ``f'(z)`` (and
    requires complex inputs).

    Called repeatedly with arguments of one signature (NumPy arrays and
    numbers of the same shapes and dtypes), the computation is recorded
    once and then *replayed* as a compiled program while nothing else that
    ``f`` reads has changed -- same results, a fraction of the Python
    overhead (see :mod:`chainrule.graph.replay` for exactly when).
    ``replay=False`` always runs ``f`` eagerly.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> value, g = cr.value_and_grad(lambda x: cnp.sum(x ** 3))(np.array([1.0, 2.0]))
    >>> value, g
    (array(9.), array([ 3., 12.]))
    """

    def eager_value_and_grad(*args: Any, **kwargs: Any) -> Any:
        nums, single = _argnums("value_and_grad", argnums, len(args))
        dyn, fun = _partial(f, args, kwargs, nums, single)
        tr = _ReverseTrace("grad", fun, dyn, has_aux)
        _need_complex("grad", "inputs", tr.inputs, holomorphic)
        if not tr.out_def.is_leaf:
            raise TypeError(
                f"grad requires f to return a scalar, but it returned {tr.out_def}; use "
                "jacrev/jacobian or vjp for non-scalar outputs"
            )
        out = tr.out_leaves[0]
        shape = _shape(out)
        if shape != ():
            raise TypeError(
                f"grad requires f to return a scalar (shape ()), but it returned an array of "
                f"shape {shape}; reduce it first (e.g. .sum()) or use jacrev/jacobian/vjp"
            )
        raw = _raw(out)
        if not is_differentiable_dtype(raw.dtype):
            raise TypeError(
                f"grad requires f to return a floating-point scalar, got dtype {raw.dtype}"
            )
        _need_real("grad", "outputs", [raw], holomorphic)
        _need_complex("grad", "outputs", [raw], holomorphic)
        xp = _creating_namespace(raw)
        grads = tr.pull([xp.ones((), dtype=raw.dtype)], retain=False)
        g = tree_unflatten(tr.in_def, _gradients(grads, tr.inputs))
        value = _finish(tr.out_values[0])
        return ((value, tr.aux), g) if has_aux else (value, g)

    if not replay:
        return functools.wraps(f)(eager_value_and_grad)
    replayed = GradientReplay(f, eager_value_and_grad)

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> Any:
        return replayed(*args, **kwargs)

    value_and_grad_f.replay = replayed  # type: ignore[attr-defined]
    return value_and_grad_f


def grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
         holomorphic: bool = False, *, replay: bool = True) -> Callable:
    """Return the function computing the gradient of scalar-valued ``f`` (reverse mode).

    ``argnums`` picks the argument(s) to differentiate (an int, or a tuple of
    ints giving a tuple of gradients); arguments may be pytrees, and
    gradients come back with the same structure.  ``f`` must return a
    scalar (shape ``()``) -- otherwise ``TypeError``.  With ``has_aux=True``
    ``f`` returns ``(value, aux)`` and ``grad`` returns ``(gradient, aux)``.
    Transforms nest: ``grad(grad(f))`` is the second derivative.  Repeated
    calls are replayed from a recording while nothing ``f`` reads changes
    (``replay=False`` turns that off; see :func:`value_and_grad`).

    Complex inputs (API section 11): for a real-valued ``f`` the gradient is
    ``df/dx - i df/dy`` (HIPS autograd's and JAX's convention); a complex
    output raises ``TypeError`` unless ``holomorphic=True``, which gives the
    complex derivative ``f'(z)``.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> cr.grad(lambda x: cnp.sum(x ** 2))(np.array([1.0, 2.0]))
    array([2., 4.])
    >>> float(cr.grad(cr.grad(cnp.sin))(0.5))      # -sin(0.5)
    -0.479425538604203
    >>> cr.grad(lambda p: p["w"] * p["b"])({"w": 2.0, "b": 3.0})
    {'b': array(2.), 'w': array(3.)}
    >>> complex(cr.grad(lambda z: cnp.abs(z) ** 2)(1 + 2j))
    (2-4j)
    >>> complex(cr.grad(lambda z: z ** 3, holomorphic=True)(1j))     # 3 z^2
    (-3+0j)
    """
    vg = value_and_grad(f, argnums, has_aux, holomorphic, replay=replay)

    @functools.wraps(f)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        if has_aux:
            (_, aux), g = vg(*args, **kwargs)
            return g, aux
        return vg(*args, **kwargs)[1]

    if replay:
        grad_f.replay = vg.replay  # type: ignore[attr-defined]
    return grad_f


def vjp(f: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """Evaluate ``f(*primals)`` and return ``(out, vjp_fn)`` (reverse mode).

    ``vjp_fn(cotangent)`` takes a cotangent with the structure and shapes of
    ``out`` and returns a tuple with one cotangent per primal (each with that
    primal's structure): ``u -> u^T J``.  It may be called several times.
    With ``has_aux=True`` it returns ``(out, vjp_fn, aux)``.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> out, vjp_fn = cr.vjp(lambda x, y: x * y, np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    >>> vjp_fn(np.array([1.0, 10.0]))
    (array([ 3., 40.]), array([ 1., 20.]))
    """
    tr = _ReverseTrace("vjp", lambda tree: f(*tree), tuple(primals), has_aux)
    out = tree_unflatten(tr.out_def, [_finish(v) for v in tr.out_values])

    def vjp_fn(cotangent: Any) -> tuple:
        leaves, td = tree_flatten(cotangent)
        if td != tr.out_def:
            raise ValueError(
                f"vjp_fn: the cotangent has structure {td} but the output of f has {tr.out_def}"
            )
        cts = []
        for i, (g, o) in enumerate(zip(leaves, tr.out_values)):
            g = _as_value(g)
            if _shape(g) != _shape(o):
                raise ValueError(
                    f"vjp_fn: cotangent leaf {i} has shape {_shape(g)} but the output leaf has "
                    f"shape {_shape(o)}; they must be equal"
                )
            if isinstance(g, np.ndarray) and isinstance(_raw(o), np.ndarray | np.generic) \
                    and g.dtype != _raw(o).dtype and is_differentiable_dtype(_raw(o).dtype):
                g = g.astype(_raw(o).dtype)
            cts.append(g)
        grads = tr.pull(cts, retain=True)
        return tuple(tree_unflatten(tr.in_def, _gradients(grads, tr.inputs)))

    return (out, vjp_fn, tr.aux) if has_aux else (out, vjp_fn)


def _primals_and_tangents(fname: str, primals: Sequence[Any], tangents: Sequence[Any]
                          ) -> tuple[PyTreeDef, list, list]:
    """The leaves of ``primals`` (differentiable) and of ``tangents`` (same shapes, the
    primals' dtypes), checked once, with the primals' tree structure."""
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(
            f"{fname}: primals and tangents must be tuples (or lists) of arguments, e.g. "
            f"{fname}(f, (x,), (v,)); got {type(primals).__name__} and "
            f"{type(tangents).__name__}"
        )
    p_leaves, p_def = tree_flatten(tuple(primals))
    t_leaves, t_def = tree_flatten(tuple(tangents))
    if p_def != t_def:
        raise ValueError(f"{fname}: primals have structure {p_def} but tangents have {t_def}")
    inputs, tans = [], []
    for i, (p, t) in enumerate(zip(p_leaves, t_leaves)):
        if not (type(p) is np.ndarray and p.dtype.kind in "fc"):  # (the common case, quickly)
            p = _diff_input(p, fname, f"primal leaf {i}")
        if type(t) is not np.ndarray:
            t = _as_value(t)
        if _shape(t) != _shape(p):
            raise ValueError(
                f"{fname}: tangent leaf {i} has shape {_shape(t)} but its primal has shape "
                f"{_shape(p)}; they must be equal"
            )
        if isinstance(t, np.ndarray) and t.dtype != _raw(p).dtype:
            t = t.astype(_raw(p).dtype)
        inputs.append(p)
        tans.append(t)
    return p_def, inputs, tans


def jvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple:
    """Evaluate ``f(*primals)`` and its directional derivative: ``(out, J @ tangents)``.

    Forward mode: ``primals`` and ``tangents`` are tuples (or lists) with the
    same structure and shapes; the result's tangent has the structure of
    ``out``.  One pass costs about one evaluation of ``f``.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> out, t = cr.jvp(cnp.sin, (np.array([0.0, np.pi]),), (np.array([1.0, 2.0]),))
    >>> t
    array([ 1., -2.])
    """
    p_def, inputs, tans = _primals_and_tangents("jvp", primals, tangents)
    values, touts, out_def, _ = _forward("jvp", lambda tree: f(*tree), p_def, inputs, tans)
    touts = [_finish(t) if t is not None else _zeros(_shape(v), v, *inputs)
             for t, v in zip(touts, values)]
    return (tree_unflatten(out_def, [_finish(v) for v in values]),
            tree_unflatten(out_def, touts))


# --- Jacobians ------------------------------------------------------------------------------

def _jac_tree(out_def: PyTreeDef, in_def: PyTreeDef, blocks: list[list[Any]]) -> Any:
    """Output structure outside, input structure inside (as in JAX)."""
    return tree_unflatten(out_def, [tree_unflatten(in_def, row) for row in blocks])


def _fwd_block(t: Any, n_in: int, off: int, in_shape: tuple, out_shape: tuple) -> Any:
    """d out / d in from the output tangent ``t`` of shape ``(n,) + out_shape``."""
    size = _size(in_shape)
    if n_in > 1:
        t = _take(t, start=off, stop=off + size, axis=-(1 + len(out_shape)))
    t = _reshape(t, shape=in_shape + out_shape)
    if in_shape and out_shape:
        ni, no = len(in_shape), len(out_shape)
        t = _permute(t, axes=tuple(range(ni, ni + no)) + tuple(range(ni)))
    return _finish(t)


def _rev_block(g: Any, n_out: int, off: int, out_shape: tuple, in_shape: tuple) -> Any:
    """d out / d in from the input cotangent ``g`` of shape ``(m,) + in_shape``."""
    if n_out > 1:
        g = _take(g, start=off, stop=off + _size(out_shape), axis=-(1 + len(in_shape)))
    return _finish(_reshape(g, shape=out_shape + in_shape))


def _jacfwd_call(f: Callable, argnums: Any, has_aux: bool, args: tuple, kwargs: dict,
                 holomorphic: bool = False) -> Any:
    nums, single = _argnums("jacfwd", argnums, len(args))
    dyn, fun = _partial(f, args, kwargs, nums, single)
    leaves, in_def = tree_flatten(dyn)
    inputs = [_diff_input(x, "jacfwd", f"input leaf {i}") for i, x in enumerate(leaves)]
    _need_real("jacfwd", "inputs", inputs, holomorphic)
    _need_complex("jacfwd", "inputs", inputs, holomorphic)
    shapes = [_shape(x) for x in inputs]
    n = sum(_size(s) for s in shapes)
    offsets = np.cumsum([0] + [_size(s) for s in shapes]).tolist()
    tangents = [_basis(n, off, x) for off, x in zip(offsets, inputs)]
    aux_box: list = []

    def run(tree: Any) -> Any:
        out, aux = _split_aux("jacfwd", fun(tree), has_aux)
        aux_box.append(aux)
        return out

    values, touts, out_def, level = _forward("jacfwd", run, in_def, inputs, tangents)
    blocks = []
    for t, v in zip(touts, values):
        os = _shape(v)
        if t is None:
            blocks.append([_zeros(os + s, v, x) for s, x in zip(shapes, inputs)])
        else:
            blocks.append([_fwd_block(t, len(inputs), off, s, os)
                           for off, s in zip(offsets, shapes)])
    jac = _jac_tree(out_def, in_def, blocks)
    if has_aux:
        return jac, _strip(aux_box[0], level)
    return jac


def _jacrev_from_trace(tr: _ReverseTrace) -> Any:
    out_shapes = [_shape(v) for v in tr.out_values]
    m = sum(_size(s) for s in out_shapes)
    offsets = np.cumsum([0] + [_size(s) for s in out_shapes]).tolist()
    cts = [_basis(m, off, v) if tr.connected(i) else None
           for i, (off, v) in enumerate(zip(offsets, tr.out_values))]
    grads = tr.pull(cts, retain=False)
    blocks = []
    for os, off, v in zip(out_shapes, offsets, tr.out_values):
        row = []
        for g, x in zip(grads, tr.inputs):
            xs = _shape(x)
            if g is None:
                row.append(_zeros(os + xs, x, v))
            else:
                row.append(_rev_block(g, len(out_shapes), off, os, xs))
        blocks.append(row)
    return _jac_tree(tr.out_def, tr.in_def, blocks)


def _check_rev(fname: str, tr: _ReverseTrace, holomorphic: bool) -> None:
    _need_real(fname, "outputs", tr.out_values, holomorphic)
    _need_complex(fname, "inputs", tr.inputs, holomorphic)
    _need_complex(fname, "outputs", tr.out_values, holomorphic)


def _jacrev_call(f: Callable, argnums: Any, has_aux: bool, args: tuple, kwargs: dict,
                 holomorphic: bool = False) -> Any:
    nums, single = _argnums("jacrev", argnums, len(args))
    dyn, fun = _partial(f, args, kwargs, nums, single)
    tr = _ReverseTrace("jacrev", fun, dyn, has_aux)
    _check_rev("jacrev", tr, holomorphic)
    jac = _jacrev_from_trace(tr)
    return (jac, tr.aux) if has_aux else jac


def jacfwd(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
           holomorphic: bool = False) -> Callable:
    """Return the function computing the Jacobian of ``f`` by forward mode.

    The basis vectors of all inputs (all leaves of the differentiated
    arguments, concatenated) are pushed through ``f`` as ONE batch of
    tangents, so the cost is one batched evaluation -- cheap when inputs are
    few.  Each block has shape ``out_leaf.shape + in_leaf.shape``; the result
    has the output's structure outside and the input's structure inside.
    Complex inputs need ``holomorphic=True`` (the blocks are then ``f'(z)``).

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> cr.jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """

    @functools.wraps(f)
    def jacfwd_f(*args: Any, **kwargs: Any) -> Any:
        return _jacfwd_call(f, argnums, has_aux, args, kwargs, holomorphic)

    return jacfwd_f


def jacrev(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
           holomorphic: bool = False) -> Callable:
    """Return the function computing the Jacobian of ``f`` by reverse mode.

    ``f`` runs once; the basis vectors of all outputs (concatenated) are
    then pulled back as ONE batch of cotangents, so the cost is one batched
    backward pass -- cheap when outputs are few.  Same result layout as
    :func:`jacfwd`: blocks of shape ``out_leaf.shape + in_leaf.shape``.
    Complex outputs need ``holomorphic=True`` (and complex inputs).

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> cr.jacrev(lambda x, y: x * y, argnums=(0, 1))(np.array([1.0, 2.0]), np.array(3.0))
    (array([[3., 0.],
           [0., 3.]]), array([1., 2.]))
    """

    @functools.wraps(f)
    def jacrev_f(*args: Any, **kwargs: Any) -> Any:
        return _jacrev_call(f, argnums, has_aux, args, kwargs, holomorphic)

    return jacrev_f


_MODES = {"auto": "auto", "fwd": "fwd", "forward": "fwd", "rev": "rev", "reverse": "rev"}


def jacobian(f: Callable, argnums: int | Sequence[int] = 0, mode: str = "auto",
             has_aux: bool = False, holomorphic: bool = False) -> Callable:
    """Return the function computing the Jacobian of ``f`` (shape ``out.shape + in.shape``).

    ``mode`` is ``"fwd"`` (:func:`jacfwd`), ``"rev"`` (:func:`jacrev`) or
    ``"auto"``: ``f`` is first run at a reverse level (which also tells the
    output size); forward mode is then used when the total input size is at
    most the total output size (the Jacobian is "tall": fewer input basis
    vectors to push), reverse mode otherwise (the recorded run is reused).

    >>> import numpy as np, chainrule as cr
    >>> cr.jacobian(lambda x: x[:1] * x[1:])(np.array([2.0, 3.0]))   # 2 inputs > 1 output: rev
    array([[3., 2.]])
    """
    try:
        chosen = _MODES[mode]
    except (KeyError, TypeError):
        raise ValueError(
            f"jacobian: mode must be 'auto', 'fwd' or 'rev', got {mode!r}"
        ) from None
    if chosen == "fwd":
        return jacfwd(f, argnums, has_aux, holomorphic)
    if chosen == "rev":
        return jacrev(f, argnums, has_aux, holomorphic)

    @functools.wraps(f)
    def jacobian_f(*args: Any, **kwargs: Any) -> Any:
        nums, single = _argnums("jacobian", argnums, len(args))
        dyn, fun = _partial(f, args, kwargs, nums, single)
        tr = _ReverseTrace("jacobian", fun, dyn, has_aux)
        _check_rev("jacobian", tr, holomorphic)
        n = sum(_size(_shape(x)) for x in tr.inputs)
        m = sum(_size(_shape(v)) for v in tr.out_values)
        if n <= m:  # tall (or square) Jacobian: forward mode pushes fewer basis vectors
            del tr
            return _jacfwd_call(f, argnums, has_aux, args, kwargs, holomorphic)
        jac = _jacrev_from_trace(tr)
        return (jac, tr.aux) if has_aux else jac

    return jacobian_f


def hessian(f: Callable, argnums: int | Sequence[int] = 0, holomorphic: bool = False
            ) -> Callable:
    """Return the function computing the Hessian of scalar ``f``: ``jacfwd(jacrev(f))``.

    Forward-over-reverse: one reverse pass gives the gradient as a function
    of the inputs, whose Jacobian is taken by one batched forward pass.  For
    an input of shape ``s`` the Hessian has shape ``s + s``; with a tuple of
    ``argnums`` the blocks are nested tuples ``H[i][j]``.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> cr.hessian(lambda x: x[0] ** 2 * x[1])(np.array([1.0, 2.0]))
    array([[4., 2.],
           [2., 0.]])
    """
    return jacfwd(jacrev(f, argnums, holomorphic=holomorphic), argnums,
                  holomorphic=holomorphic)


def hvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
    """Hessian-vector product ``H(primals) @ tangents`` of scalar ``f``, without forming H.

    Reverse-over-forward: the gradient of the directional derivative
    ``x -> jvp(f, x, v)[1]``, costing a small multiple of one evaluation of
    ``f``.  (Forward-over-reverse, ``jvp(grad(f))``, would also compute the
    gradient itself, which is thrown away: for ``f = sum(g(A @ x))`` that is
    one more product with ``A``.)  With one primal the result
    is an array (pytree) like it; with several, a tuple (one entry per
    primal: the gradient with respect to it, differentiated along all
    tangents).

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> f = lambda x: cnp.sum(x ** 3)              # H = diag(6 x)
    >>> cr.hvp(f, (np.array([1.0, 2.0]),), (np.array([1.0, 1.0]),))
    array([ 6., 12.])
    """
    # One reverse level around one forward level, entered directly: the same computation
    # as grad(lambda *xs: jvp(f, xs, tangents)[1]) without two transforms' entry and exit.
    p_def, inputs, tans = _primals_and_tangents("hvp", primals, tangents)
    with level_scope(name="hvp") as level:
        boxes = [Tensor(x, level, None, True) for x in inputs]
        values, touts, out_def, _ = _forward("hvp", lambda tree: f(*tree), p_def, boxes, tans)
    if not out_def.is_leaf or _shape(values[0]) != ():
        shown = out_def if not out_def.is_leaf else f"an array of shape {_shape(values[0])}"
        raise TypeError(
            f"hvp requires f to return a scalar (shape ()), but it returned {shown}; reduce "
            "it first (e.g. .sum())"
        )
    d = touts[0]  # the directional derivative: a box of ``level`` where it depends on x
    if _is_complex(d) or _is_complex(values[0]):
        raise TypeError(
            f"hvp requires a real-valued f, but it returned dtype {_raw(values[0]).dtype}; "
            "take the real part (cnp.real / cnp.abs) first"
        )
    grads: list[Any] = [None] * len(boxes)
    if isinstance(d, Box) and d._level == level and d.requires_grad:
        raw = _raw(d)
        seed = _creating_namespace(raw).ones((), dtype=raw.dtype)
        found, _ = backward_pass([(d, seed)], level)
        grads = [found[id(b)][1] if id(b) in found else None for b in boxes]
    t = tree_unflatten(p_def, _gradients(grads, inputs))
    return t[0] if len(t) == 1 else t


def elementwise_grad(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The gradient of ``sum(f(x))``: for an elementwise ``f``, its derivative at every entry.

    One reverse pass with a cotangent of ones (HIPS autograd's name); for a
    function that is not elementwise it is the sum of the Jacobian's rows.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> cr.elementwise_grad(cnp.tanh)(np.array([0.0, 1.0]))
    array([1.        , 0.41997434])
    """
    def summed(*args: Any, **kwargs: Any) -> Any:
        out = f(*args, **kwargs)
        leaves, _ = tree_flatten(out)
        total = None
        for leaf in leaves:
            s = leaf.sum() if isinstance(leaf, Box) else namespace_of(leaf).sum(leaf)  # type: ignore[attr-defined]  # a Tensor
            total = s if total is None else total + s
        return total

    functools.update_wrapper(summed, f)
    return grad(summed, argnums=argnums)
