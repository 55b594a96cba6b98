"""Backend dispatch, and array-api-strict as the conformance backend.

1. ``chainrule.backend``: the namespace of the arrays at hand (NumPy by
   default, cached per type), the rules for mixing libraries, and the clear
   ``NotImplementedError`` for what a library cannot express.
2. ``FUNCTIONS``: a few functions that use many families at once; their
   gradients, VJPs, JVPs and Hessian-vector products must agree between NumPy
   and every other backend to 1e-10 relative.  ``tests/test_backend_dask.py``
   and ``tests/test_backend_cupy.py`` import them and run the same checks.
3. The primitive table (``CASES`` of ``test_primitive_table.py``) on
   array-api-strict: ``check_grads`` builds its finite differences with NumPy,
   so here every case runs on float64 (or float32) strict arrays and its value,
   JVP, VJP and second derivatives (forward over reverse, reverse over
   reverse) are compared with the NumPy results, which ``check_grads``
   verifies against central differences in ``test_primitive_table.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.backend import (
    NUMPY_TYPES,
    ArrayNamespace,
    BackendNotImplementedError,
    dtype_in,
    library_name,
    namespace_of,
    to_numpy,
)
from chainrule.core.primitive import Primitive
from chainrule.pytree import tree_leaves

RTOL, ATOL = 1e-10, 1e-12

# --- 2. functions shared by every backend's tests -----------------------------------------------

_rng = np.random.default_rng(1234)


@dataclass
class Fn:
    id: str
    f: Callable[..., Any]
    args: tuple               # NumPy arrays; each backend converts them to its own arrays
    argnums: tuple = (0,)


def _logistic(w, X, y):
    z = cnp.matmul(X, w)
    # -[y log s(z) + (1 - y) log s(-z)] = -log s(z) + (1 - y) z, with log s(z) = -logaddexp(0, -z)
    # (a Tensor on the left: array-api-strict's operators refuse Tensors on their right)
    return cnp.mean(cnp.logaddexp(0.0, -z) + z * (1.0 - y))


def _shapes(x):
    s = cnp.stack([x[1:3], x[:2] * 2.0], axis=0)
    t = cnp.transpose(cnp.reshape(x, (2, 2, 3)), (2, 0, 1))
    return (cnp.sum(s ** 2) + cnp.sum(cnp.sin(t) * t) +
            cnp.sum(cnp.concatenate([x, cnp.flip(x, axis=0)], axis=1) ** 3) +
            cnp.sum(cnp.squeeze(x[:, 1:2]) ** 2) + cnp.sum(cnp.expand_dims(x[0], 0) * x))


FUNCTIONS = [
    Fn("elementwise", lambda x: cnp.sum(cnp.tanh(x) * x ** 2 + cnp.exp(-x)
                                        + cnp.sin(x) / (1.0 + x * x)
                                        + cnp.log1p(x * x) + cnp.sqrt(x * x + 1.0)),
       (_rng.normal(size=(4, 3)),)),
    Fn("reductions", lambda x: cnp.sum(cnp.mean(x, axis=0) * cnp.max(x, axis=1, keepdims=True))
       + cnp.sum(cnp.std(x, axis=-1)) + cnp.sum(cnp.logsumexp(x, axis=1))
       + cnp.sum(cnp.prod(x, axis=0)) + cnp.min(x),
       (_rng.normal(size=(4, 3)),)),
    Fn("broadcasting", lambda x, b: cnp.sum((x - b) ** 2 * cnp.cos(b)) + cnp.sum(cnp.maximum(x, b))
       + cnp.sum(x / (2.0 + b * b)),
       (_rng.normal(size=(4, 3)), _rng.normal(size=(3,))), (0, 1)),
    Fn("select", lambda x: cnp.sum(cnp.where(x > 0, x, 0.1 * x) + cnp.clip(x, -0.5, 0.5)
                                   + cnp.abs(x) * x),
       (_rng.normal(size=(4, 3)),)),
    Fn("matmul", lambda a, b: cnp.sum(cnp.tanh(cnp.matmul(a, b)) ** 2),
       (_rng.normal(size=(4, 6)), _rng.normal(size=(6, 3))), (0, 1)),
    Fn("logistic", _logistic,
       (_rng.normal(size=(5,)), _rng.normal(size=(8, 5)),
        (_rng.uniform(size=(8,)) > 0.5).astype(np.float64)), (0, 1)),
    Fn("shapes", _shapes, (_rng.normal(size=(4, 3)) * 0.5,)),
]


def results(fn: Fn, args: tuple, seed: int = 0, nested: bool = True) -> dict[str, Any]:
    """Everything the backends must agree on, computed on ``args`` (any library).

    Directions and cotangents are made with NumPy and converted with the library's
    ``asarray`` of the first argument (the same numbers on every backend).  The
    Hessian-vector product comes from ``cr.hvp`` (nested transforms) and from
    ``Tensor.backward(create_graph=True)``; ``nested=False`` leaves out the first
    (array-api-strict, see ``test_nested_transforms_on_strict``).
    """
    rng = np.random.default_rng(seed)
    asarray = _asarray_like(args[0])
    nums = fn.argnums
    value, grads = cr.value_and_grad(fn.f, argnums=nums)(*args)
    vs = tuple(asarray(rng.normal(size=tuple(a.shape))) for a in args)
    _, tangent = cr.jvp(fn.f, args, vs)
    out, pullback = cr.vjp(fn.f, *args)
    cotangents = pullback(asarray(np.array(1.5)))
    res = {"value": value, "grad": tuple(grads), "jvp": tangent, "vjp": tuple(cotangents),
           "vjp_out": out, "hvp_create_graph": second_order(fn.f, args, None, vs)}
    if nested:
        hv = cr.hvp(lambda *a: fn.f(*a), args, vs)
        res["hvp"] = hv if isinstance(hv, tuple) else (hv,)
    return res


def second_order(f: Callable, args: tuple, u: Any, vs: tuple) -> tuple:
    """``d/dx <u^T J(x), v>`` (for scalar ``f`` and ``u=None``: ``H v``) with Tensors:
    ``backward(create_graph=True)``, then ``backward()`` of ``<x.grad, v>``."""
    xs = [cr.tensor(a, requires_grad=True) for a in args]
    y = f(*xs)
    y.backward(u, create_graph=True)
    grads = [x.grad for x in xs]
    for x in xs:
        x.grad = None
    total = None
    for g, v in zip(grads, vs):
        if g is not None:
            term = cnp.sum(g * v)
            total = term if total is None else total + term
    if isinstance(total, cr.Tensor) and total.requires_grad:
        total.backward()
    return tuple(x.grad if x.grad is not None else cnp.zeros_like(a) for x, a in zip(xs, args))


def np_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype of the same name (array-api-strict has dtype objects of its own)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        return np.dtype(str(dtype).split(".")[-1])


def _asarray_like(x: Any) -> Callable[[np.ndarray], Any]:
    """Convert NumPy numbers to arrays of ``x``'s library and dtype."""
    dtype = np_dtype(x.dtype)
    if type(x) in NUMPY_TYPES:
        return lambda a: np.asarray(a, dtype=dtype)
    xp = namespace_of(x)
    return lambda a: xp.asarray(np.asarray(a, dtype=dtype))


def assert_agree(got: dict, want: dict, library: str, rtol: float = RTOL) -> None:
    """Each entry of ``got`` is an array of ``library`` equal to NumPy's within ``rtol``."""
    for key in want:
        for g, w in zip(tree_leaves(got[key]), tree_leaves(want[key])):
            assert library_name(g) == library, f"{key}: {type(g)} is not a {library} array"
            assert_allclose(to_numpy(g), to_numpy(w), rtol=rtol, atol=ATOL * 10, err_msg=key)


# --- 1. dispatch ----------------------------------------------------------------------------------

def test_numpy_is_the_default_namespace():
    assert namespace_of() is np
    assert namespace_of(np.ones(3), 2.0, np.float32(1), None, [1.0], (2,)) is np
    assert namespace_of(np.ma.masked_array([1.0])) is np  # NumPy subclasses stay on NumPy
    assert np.ndarray in NUMPY_TYPES and float in NUMPY_TYPES and np.float32 in NUMPY_TYPES


def test_a_value_that_is_no_array_is_a_clear_type_error():
    with pytest.raises(TypeError, match="cannot work with arrays of type"):
        namespace_of(object())


def test_missing_function_is_a_not_implemented_error_naming_primitive_and_backend():
    xp = pytest.importorskip("array_api_strict")
    prim = Primitive("test_backend_missing_fn", lambda xp, x: xp.no_such_function(x),
                     register=False)
    with pytest.raises(NotImplementedError,
                       match="'test_backend_missing_fn'.*array_api_strict.*no_such_function"):
        prim(xp.asarray([1.0]))
    ns = namespace_of(xp.asarray([1.0]))
    # still an AttributeError, so implementations can probe for optional functions
    assert not hasattr(ns, "no_such_function")
    assert getattr(ns, "no_such_function", None) is None
    with pytest.raises(BackendNotImplementedError):
        ns.linalg.no_such_function  # noqa: B018


# --- array-api-strict ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def strict():
    return pytest.importorskip("array_api_strict")


def test_strict_namespace_is_found_once_and_cached(strict):
    a = strict.asarray([1.0, 2.0])
    ns = namespace_of(a)
    assert isinstance(ns, ArrayNamespace) and library_name(ns) == "array_api_strict"
    assert namespace_of(a, 3.0, None) is ns is namespace_of(strict.asarray([[0.5]]))
    assert ns.sin is ns.sin  # looked up once, then a plain attribute


def test_strict_refuses_numpy_operands_with_a_clear_type_error(strict):
    a = strict.asarray([1.0, 2.0])
    with pytest.raises(TypeError, match="cannot mix a NumPy array.*array_api_strict"):
        namespace_of(np.ones(2), a)
    with pytest.raises(TypeError, match="cannot mix a NumPy array"):
        cnp.add(a, np.ones(2))
    x = cr.tensor(a, requires_grad=True)
    with pytest.raises(TypeError, match="cannot mix"):
        x * np.ones(2)
    assert library_name(cnp.add(a, 2.0)) == "array_api_strict"  # Python scalars are fine


def test_dtype_in_maps_numpy_dtypes_to_the_library(strict):
    ns = namespace_of(strict.asarray([1.0]))
    assert dtype_in(ns, np.float32) is strict.float32
    assert dtype_in(ns, strict.float64) is strict.float64
    assert dtype_in(np, np.float32) is np.float32
    y = cnp.astype(cr.tensor(strict.asarray([1.0, 2.0]), requires_grad=True), np.float32)
    assert y.dtype == strict.float32


@pytest.mark.parametrize("fn", FUNCTIONS, ids=[f.id for f in FUNCTIONS])
def test_functions_agree_between_numpy_and_strict(fn, strict):
    want = results(fn, fn.args, nested=False)
    got = results(fn, tuple(strict.asarray(a) for a in fn.args), nested=False)
    assert_agree(got, want, "array_api_strict")


def test_nested_transforms_on_strict(strict):
    fn = FUNCTIONS[0]
    x, v = fn.args[0], np.ones_like(fn.args[0])
    got = cr.hvp(fn.f, (strict.asarray(x),), (strict.asarray(v),))
    assert_allclose(to_numpy(got), cr.hvp(fn.f, (x,), (v,)), rtol=RTOL)


def test_strict_float32_is_preserved(strict):
    fn = FUNCTIONS[0]
    got = results(fn, (strict.asarray(fn.args[0], dtype=strict.float32),), nested=False)
    want = results(fn, (fn.args[0].astype(np.float32),), nested=False)
    for key in got:
        for g in tree_leaves(got[key]):
            assert g.dtype == strict.float32, key
    assert_agree(got, want, "array_api_strict", rtol=2e-5)


# --- 3. the primitive table on array-api-strict ---------------------------------------------------

from test_primitive_table import CASES  # noqa: E402


def closes_over_numpy(fn: Callable) -> bool:
    """True when ``fn`` uses a NumPy array it did not receive (a global, closure cell or
    default argument, or one it makes with NumPy), such as ``where(COND23, x, y)`` or the
    integer labels of a loss."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    held = [fn.__globals__.get(n) for n in code.co_names]
    held += [c.cell_contents for c in (fn.__closure__ or ())]
    held += list(fn.__defaults__ or ())
    return any(isinstance(v, np.ndarray) or v is np for v in held)


#: erf on a library without erf is the Abramowitz-Stegun approximation (|error| < 1.5e-7);
#: its derivative rule is exact.
VALUE_ATOL = {"erf": 3e-7}
#: Known gaps to fix in the ops (the test turns into an XPASS when they are fixed).
KNOWN_GAPS: dict[str, str] = {}


def tols(args: tuple) -> tuple[float, float]:
    low = any(np.asarray(a).dtype == np.float32 for a in args)
    return (2e-5, 1e-6) if low else (RTOL, ATOL)


def compare(got: Any, want: Any, what: str, rtol: float, atol: float,
            library: str = "array_api_strict") -> None:
    """Arrays of ``library`` in ``got`` equal NumPy's in ``want``, dtypes included."""
    g_leaves, w_leaves = tree_leaves(got), tree_leaves(want)
    assert len(g_leaves) == len(w_leaves), what
    for g, w in zip(g_leaves, w_leaves):
        assert library_name(g) == library, f"{what}: {type(g)}"
        w = np.asarray(w)
        assert np_dtype(g.dtype) == w.dtype, f"{what}: dtype {g.dtype} vs {w.dtype}"
        assert_allclose(to_numpy(g), w, rtol=rtol, atol=atol, err_msg=what)


def derivatives(f: Callable, args: tuple, asarray: Callable, order: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = f(*args)
    u = asarray(rng.standard_normal(tuple(out.shape)).astype(np_dtype(out.dtype)))
    vs = tuple(asarray(rng.standard_normal(tuple(a.shape)).astype(np_dtype(a.dtype)))
               for a in args)
    res = {"value": out, "jvp": cr.jvp(f, args, vs)[1], "vjp": cr.vjp(f, *args)[1](u)}
    if order >= 2:  # every second-order rule (reverse over reverse) runs here
        res["second_order"] = second_order(f, args, u, vs)
    return res


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_primitive_table_on_array_api_strict(case, strict):
    """Every case: value, JVP, VJP and second derivatives equal NumPy's, or a clear error.

    A case whose function closes over NumPy constants is refused by array-api-strict's own
    rule (a clear TypeError: skipped; ``where`` runs in ``test_where_on_array_api_strict``);
    what the array API cannot express (``einsum``) raises a NotImplementedError naming the
    operation and the backend.
    """
    sargs = tuple(strict.asarray(a) for a in case.args)
    gap = set(case.prims) & set(KNOWN_GAPS)
    if gap:
        pytest.xfail(KNOWN_GAPS[gap.pop()])
    want = derivatives(case.fn, case.args, np.asarray, case.order, seed=0)
    try:
        got = derivatives(case.fn, sargs, strict.asarray, case.order, seed=0)
    except NotImplementedError as exc:
        assert "array_api_strict" in str(exc) and ("einsum" in str(exc) or
                                                   any(p in str(exc) for p in case.prims)), exc
        return
    except TypeError as exc:
        if "cannot mix a NumPy array" in str(exc) and closes_over_numpy(case.fn):
            pytest.skip("the case closes over a NumPy array, which array-api-strict refuses")
        raise
    rtol, atol = tols(case.args)
    for key in want:
        a = VALUE_ATOL.get(case.prims[0], atol) if key == "value" else atol
        compare(got[key], want[key], f"{case.id}: {key}", rtol, a)


def test_where_on_array_api_strict(strict):
    cond = np.array([[True, False, True], [False, False, True]])
    x, y = _rng.normal(size=(2, 3)), _rng.normal(size=(3,))
    c = strict.asarray(cond)
    for f in (lambda c, x, y: cnp.where(c, x, y), lambda c, x, y: cnp.where(c, x, 0.0) * y):
        want = derivatives(lambda x, y, f=f: f(cond, x, y), (x, y), np.asarray, 2, seed=1)
        got = derivatives(lambda x, y, f=f: f(c, x, y), (strict.asarray(x), strict.asarray(y)),
                          strict.asarray, 2, seed=1)
        for key in want:
            compare(got[key], want[key], key, RTOL, ATOL)


# --- every transform, nested in any order, on array-api-strict ------------------------------------

def _elementwise(x):
    return cnp.tanh(x) * x ** 2 + cnp.exp(-x) * cnp.sin(x)


def _scalar(x):
    return cnp.sum(_elementwise(x) * cnp.cos(x))


#: (name, transform of (x, v) -> pytree); each runs on NumPy and on strict arrays.
TRANSFORMS = [
    ("grad", lambda x, v: cr.grad(_scalar)(x)),
    ("value_and_grad", lambda x, v: cr.value_and_grad(_scalar)(x)),
    ("vjp", lambda x, v: cr.vjp(_elementwise, x)[1](v)),
    ("jvp", lambda x, v: cr.jvp(_elementwise, (x,), (v,))),
    ("jacfwd", lambda x, v: cr.jacfwd(_elementwise)(x)),
    ("jacrev", lambda x, v: cr.jacrev(_elementwise)(x)),
    ("jacobian", lambda x, v: cr.jacobian(_elementwise)(x)),
    ("hessian", lambda x, v: cr.hessian(_scalar)(x)),
    ("hvp", lambda x, v: cr.hvp(_scalar, (x,), (v,))),
    ("vmap", lambda x, v: cr.vmap(_elementwise)(x)),
    ("grad-grad", lambda x, v: cr.grad(lambda y: cnp.sum(cr.grad(_scalar)(y) * y))(x)),
    ("jacfwd-jacfwd", lambda x, v: cr.jacfwd(cr.jacfwd(_elementwise))(x)),
    ("jacrev-jacrev", lambda x, v: cr.jacrev(cr.jacrev(_elementwise))(x)),
    ("jacrev-jacfwd", lambda x, v: cr.jacrev(cr.jacfwd(_elementwise))(x)),
    ("jvp-grad", lambda x, v: cr.jvp(cr.grad(_scalar), (x,), (v,))),
    ("vjp-jvp", lambda x, v: cr.vjp(lambda y: cr.jvp(_elementwise, (y,), (v,))[1], x)[1](v)),
    ("grad-vjp", lambda x, v: cr.grad(lambda y: cnp.sum(cr.vjp(_elementwise, y)[1](v)[0]))(x)),
    ("grad-hvp", lambda x, v: cr.grad(lambda y: cnp.sum(cr.hvp(_scalar, (y,), (v,)) ** 2))(x)),
    ("jacfwd-hessian", lambda x, v: cr.jacfwd(cr.hessian(_scalar))(x[:3])),
    ("grad-vmap", lambda x, v: cr.grad(lambda y: cnp.sum(cr.vmap(_elementwise)(y)))(x)),
    ("vmap-grad", lambda x, v: cr.vmap(cr.grad(lambda r: cnp.sum(_elementwise(r) * r)))(
        cnp.reshape(x, (2, 2)))),
    ("vmap-jacfwd", lambda x, v: cr.vmap(cr.jacfwd(_elementwise))(cnp.reshape(x, (2, 2)))),
    ("vmap-jacrev", lambda x, v: cr.vmap(cr.jacrev(_elementwise))(cnp.reshape(x, (2, 2)))),
    ("vmap-hvp", lambda x, v: cr.vmap(lambda r, w: cr.hvp(_scalar, (r,), (w,)))(
        cnp.reshape(x, (2, 2)), cnp.reshape(v, (2, 2)))),
    ("jacfwd-vmap", lambda x, v: cr.jacfwd(lambda y: cr.vmap(_elementwise)(y))(x)),
    ("linearize", lambda x, v: cr.linearize(_elementwise, x)[1](v)),
    ("linearize-value", lambda x, v: cr.linearize(_elementwise, x)[0]),
    ("vmap-linearize", lambda x, v: cr.vmap(cr.linearize(_elementwise, x)[1])(
        cnp.stack([v, v * 2.0]))),
    ("grad-linearize", lambda x, v: cr.grad(
        lambda y: cnp.sum(cr.linearize(_elementwise, y)[1](v) ** 2))(x)),
    ("grad-closure", lambda x, v: cr.grad(lambda a: cnp.sum(
        cr.grad(lambda b: cnp.sum(cnp.sin(a * b) * a))(v) ** 2))(x)),
]


@pytest.mark.parametrize("name,transform", TRANSFORMS, ids=[t[0] for t in TRANSFORMS])
def test_transforms_on_strict_arrays(name, transform, strict):
    """Each transform (and nesting) takes and returns strict arrays, equal to NumPy's."""
    x = np.linspace(-0.9, 1.1, 4)
    v = np.linspace(0.5, -0.3, 4)
    want = transform(x, v)
    got = transform(strict.asarray(x), strict.asarray(v))
    compare(got, want, name, RTOL, ATOL)
