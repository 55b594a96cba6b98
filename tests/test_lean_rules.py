"""A recorded operation keeps only what its reverse rule reads (``Primitive.saves``)."""

from __future__ import annotations

import gc
import importlib
import tracemalloc

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core.primitive import Primitive, registry

P = importlib.import_module("chainrule.core.primitive")  # the module (a function shares its name)


def _chain(y, steps=50):
    """sin (reads its input), +1 and negation (read nothing), exp (reads its output)."""
    for i in range(steps):
        k = i % 5
        if k == 0:
            y = cnp.sin(y)
        elif k == 2:
            y = cnp.exp(y)
        elif k == 4:
            y = -y
        else:
            y = y + 1.0
    return y


def test_recorded_chain_holds_only_what_the_rules_read():
    n = 10**6
    a = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    x = cr.tensor(a, requires_grad=True)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        y = _chain(x)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 10 sin inputs (the first is x itself, allocated before), 10 exp outputs, and the
    # result the caller holds: 20 new arrays, not the 50 that every box would keep.
    needed = 20 * a.nbytes
    assert needed <= held < needed + a.nbytes // 2, (held / a.nbytes, "arrays held")
    y.sum().backward()
    ref = cr.grad(lambda v: cnp.sum(_chain(v)))(a[:1000].astype(np.float64))
    np.testing.assert_allclose(x.grad[:1000], ref, rtol=1e-4)


def test_saves_column_of_common_primitives():
    expect = {"add": "nothing", "subtract": "nothing", "negative": "nothing",
              "reduce_sum": "nothing", "reshape": "nothing", "broadcast_to": "nothing",
              "multiply": "inputs", "sin": "inputs", "log1p": "inputs", "maximum": "inputs",
              "exp": "output", "tanh": "output", "sqrt": "output", "relu": "output",
              "softmax": "output", "divide": "both", "power": "both", "reduce_max": "both"}
    assert {k: registry[k].saves for k in expect} == expect


def test_a_rule_that_reads_an_undeclared_value_fails_loudly(monkeypatch):
    monkeypatch.setattr(P, "KEEP_BELOW", 0)
    wrong = Primitive("sq_declared_wrong", lambda xp, x: x * x,
                      vjp=(lambda g, out, x: g * 2.0 * x,), saves="nothing", register=False)
    x = cr.tensor(np.arange(3.0), requires_grad=True)
    with pytest.raises(TypeError):
        wrong(x).sum().backward()


def test_unknown_saves_value_is_refused():
    with pytest.raises(ValueError, match="saves must be one of"):
        Primitive("bad_saves", lambda xp, x: x, saves="everything", register=False)


def test_create_graph_after_lean_recording_is_still_second_order(monkeypatch):
    monkeypatch.setattr(P, "KEEP_BELOW", 0)
    x = cr.tensor(np.array([0.3, -0.7, 1.1]), requires_grad=True)
    y = cnp.sum(cnp.exp(cnp.sin(x) + 1.0) * 2.0)
    y.backward(create_graph=True)
    g = x.grad
    x.grad = None
    g.sum().backward()
    a = x.data
    e = np.exp(np.sin(a) + 1.0)
    np.testing.assert_allclose(g.data, 2 * e * np.cos(a))
    np.testing.assert_allclose(x.grad, 2 * e * (np.cos(a) ** 2 - np.sin(a)))
