"""CuPy on a GPU: the checks of the Dask and array-api-strict tests, on CuPy arrays.

Skipped unless ``cupy`` imports and a GPU is present.  Results must be CuPy
arrays on the inputs' device, with the inputs' dtype, equal to NumPy's to
1e-10 relative (the same functions and primitive table as the other
backends).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

cp = pytest.importorskip("cupy")
try:
    _GPUS = cp.cuda.runtime.getDeviceCount()
except Exception:  # no driver, no device
    _GPUS = 0
if _GPUS == 0:
    pytest.skip("no GPU present", allow_module_level=True)

import chainrule as cr  # noqa: E402
import chainrule.numpy as cnp  # noqa: E402
from chainrule.backend import library_name, namespace_of, to_numpy  # noqa: E402
from chainrule.pytree import tree_leaves  # noqa: E402
from test_backend_conformance import (  # noqa: E402
    ATOL,
    FUNCTIONS,
    RTOL,
    TRANSFORMS,
    VALUE_ATOL,
    assert_agree,
    closes_over_numpy,
    compare,
    derivatives,
    results,
    tols,
)
from test_primitive_table import CASES  # noqa: E402


def test_cupy_namespace_and_mixing_rules():
    x = cp.ones(3)
    xp = namespace_of(x)
    assert library_name(xp) == "cupy" and namespace_of(x, 2.0, None) is xp
    with pytest.raises(TypeError, match="cannot mix a NumPy array.*cupy"):
        namespace_of(np.ones(3), x)
    with pytest.raises(TypeError, match="cannot mix"):
        cnp.add(np.ones(3), x)


@pytest.mark.parametrize("name,transform", TRANSFORMS, ids=[t[0] for t in TRANSFORMS])
def test_transforms_on_cupy_arrays(name, transform):
    """Every transform and nesting of the strict suite: CuPy results equal to NumPy's."""
    x = np.linspace(-0.9, 1.1, 4)
    v = np.linspace(0.5, -0.3, 4)
    compare(transform(cp.asarray(x), cp.asarray(v)), transform(x, v), name, RTOL, ATOL,
            library="cupy")


def test_grad_of_a_cupy_array_is_a_cupy_array_on_its_device():
    a = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    f = lambda x: cnp.sum(cnp.tanh(x) * x ** 2)
    x = cp.asarray(a)
    g = cr.grad(f)(x)
    assert isinstance(g, cp.ndarray) and g.device == x.device and g.dtype == np.float64
    assert_allclose(g.get(), cr.grad(f)(a), rtol=RTOL)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=[f.id for f in FUNCTIONS])
def test_functions_agree_between_numpy_and_cupy(fn):
    want = results(fn, fn.args)
    got = results(fn, tuple(cp.asarray(a) for a in fn.args))
    for key, value in got.items():
        for leaf in tree_leaves(value):
            assert isinstance(leaf, cp.ndarray), f"{key}: {type(leaf)}"
    assert_agree(got, want, "cupy")


def test_float32_stays_float32_on_cupy():
    fn = FUNCTIONS[0]
    got = results(fn, (cp.asarray(fn.args[0], dtype=cp.float32),))
    want = results(fn, (fn.args[0].astype(np.float32),))
    for key in got:
        for g in tree_leaves(got[key]):
            assert g.dtype == np.float32, key
    assert_agree(got, want, "cupy", rtol=2e-5)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_primitive_table_on_cupy(case):
    if closes_over_numpy(case.fn):
        pytest.skip("closes over a NumPy array (CuPy refuses NumPy operands)")
    want = derivatives(case.fn, case.args, np.asarray, case.order, seed=0)
    got = derivatives(case.fn, tuple(cp.asarray(a) for a in case.args), cp.asarray,
                      case.order, seed=0)
    rtol, atol = tols(case.args)
    for key in want:
        a = VALUE_ATOL.get(case.prims[0], atol) if key == "value" else atol
        compare(got[key], want[key], f"{case.id}: {key}", rtol, a, library="cupy")


def test_second_order_with_create_graph_on_cupy():
    x = cr.tensor(cp.asarray([0.3, 0.7]), requires_grad=True)
    cnp.sum(cnp.sin(x) * x).backward(create_graph=True)
    g = x.grad
    x.grad = None
    cnp.sum(g).backward()
    v = np.array([0.3, 0.7])
    assert isinstance(x.grad, cp.ndarray)
    assert_allclose(to_numpy(x.grad), 2 * np.cos(v) - v * np.sin(v), rtol=1e-12)
