"""cr.jit: JAX's spelling of cr.compile, with static arguments."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp


def test_jit_without_static_arguments_is_compile():
    f = cr.jit(lambda x: cnp.tanh(x) * 2.0)
    assert isinstance(f, cr.compile(lambda x: x).__class__)
    assert_allclose(f(np.array([0.5])), 2 * np.tanh(0.5))

    @cr.jit
    def g(x):
        return x + 1.0

    assert_allclose(g(np.ones(2)), 2.0)


def test_static_arguments_compile_once_per_value_and_may_steer_python():
    calls = []

    def f(x, p, scale=1.0):
        calls.append(p)
        y = cnp.sum(x ** p) if p > 1.5 else cnp.sum(x)
        return y * scale if scale > 0 else -y

    g = cr.jit(f, static_argnums=1, static_argnames="scale")
    x = np.array([1.0, 2.0])
    assert float(g(x, 2.0)) == 5.0 and float(g(x, 1.0)) == 3.0
    assert float(g(x, 2.0, scale=-1.0)) == -5.0
    assert g.trace_count == 3
    assert float(g(x + 1, 2.0)) == 13.0 and g.trace_count == 3  # replayed, not re-traced
    # a float that is not static is traced: one program for every value
    h = cr.jit(lambda x, s: x * s)
    assert_allclose(h(x, 2.0), 2 * x)
    assert_allclose(h(x, 3.0), 3 * x)
    assert h.trace_count == 1


def test_jit_composes_with_transforms_and_partial_and_donation():
    loss = lambda w, x, p: cnp.sum((x @ w) ** p)  # noqa: E731
    step = partial(cr.jit, static_argnums=2)(cr.grad(loss))
    w, x = np.ones(3), np.arange(6.0).reshape(2, 3)
    assert_allclose(step(w, x, 2), cr.grad(loss)(w, x, 2))
    upd = cr.jit(lambda w, g: w - 0.1 * g, donate_argnums=0)
    assert_allclose(upd(np.ones(3), np.ones(3)), 0.9)


def test_unhashable_static_arguments_are_refused():
    g = cr.jit(lambda x, n: x * n, static_argnums=1)
    with pytest.raises(TypeError, match="hashable"):
        g(np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match="expected a function"):
        cr.jit(3)
