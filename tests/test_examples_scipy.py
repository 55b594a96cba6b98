"""Where HIPS autograd is installed, the chainrule.scipy examples give the same numbers on it
as on chainrule, with the same seeds (tests/test_examples.py runs every example's fast mode)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("scipy")
pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ["gaussian_process", "black_box_vi", "mixture_model", "neural_ode"]


def _load(name):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


def _libs():
    pytest.importorskip("autograd")
    backends = _load("_backends")
    return backends.chainrule_lib(), backends.autograd_lib()


def test_gaussian_process_matches_autograd():
    ours, theirs = _libs()
    gp = _load("gaussian_process")
    x, y = gp.make_data(15)
    p = np.array([0.1, 0.3, -0.2, -1.5])
    (fo, _), (ft, _) = gp.build(ours, x, y), gp.build(theirs, x, y)
    assert_allclose(fo(p), ft(p), rtol=1e-12)
    assert_allclose(ours.grad(fo)(p), theirs.grad(ft)(p), rtol=1e-9)
    assert_allclose(gp.fit(ours, True)[2].x, gp.fit(theirs, True)[2].x, rtol=1e-6)


def test_black_box_vi_matches_autograd():
    ours, theirs = _libs()
    vi = _load("black_box_vi")
    po, to, _ = vi.fit(ours, True)
    pt, tt, _ = vi.fit(theirs, True)
    assert_allclose(to, tt, rtol=1e-10)
    assert_allclose(po["mean"], pt["mean"], rtol=1e-9)
    assert_allclose(po["log_std"], pt["log_std"], rtol=1e-9)


def test_mixture_model_matches_autograd():
    ours, theirs = _libs()
    mm = _load("mixture_model")
    _, po, fo, _ = mm.fit(ours, True)
    _, pt, ft, _ = mm.fit(theirs, True)
    for k in po:
        assert_allclose(po[k], pt[k], rtol=1e-9, atol=1e-12)
    assert_allclose(fo(po, 0), ft(pt, 0), rtol=1e-12)


def test_neural_ode_matches_autograd():
    ours, theirs = _libs()
    node = _load("neural_ode")
    t, y0, ys = node.make_data(6)
    p = node.init_params(4)
    (lo, _), (lt, _) = node.build(ours, t, y0, ys), node.build(theirs, t, y0, ys)
    assert_allclose(lo(p, 0), lt(p, 0), rtol=1e-7)
    go, gt = ours.grad(lo)(p, 0), theirs.grad(lt)(p, 0)
    for k in go:
        assert_allclose(go[k], gt[k], rtol=1e-5, atol=1e-8)
