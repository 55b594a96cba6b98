"""Tensor and module hooks; cr.detect_anomaly (issue 13, items 2 and 3)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core.primitive import Primitive, registry

# --- Tensor.register_hook ----------------------------------------------------------------------


def test_tensor_hook_sees_and_replaces_the_gradient():
    x = cr.tensor([1.0, -3.0], requires_grad=True)
    y = x * 2
    seen = []
    h1 = y.register_hook(lambda g: seen.append(g.copy()))
    h2 = y.register_hook(lambda g: g.clip(-0.5, 0.5))
    (y * y).sum().backward()
    assert_allclose(seen[0], [4.0, -12.0])
    assert_allclose(x.grad, [1.0, -1.0])
    h1.remove()
    h2.remove()
    h2.remove()  # idempotent
    x.grad = None
    y = x * 2
    (y * y).sum().backward()
    assert_allclose(x.grad, [8.0, -24.0])
    assert len(seen) == 1


def test_leaf_hook_runs_once_on_the_total_before_accumulation():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    x.grad = np.array([100.0, 100.0])
    calls = []

    def hook(g):
        calls.append(g.copy())
        return g * 10

    h = x.register_hook(hook)
    (x * x + 3 * x).sum().backward()  # fan-out: the hook sees the sum 2x + 3 once
    assert len(calls) == 1
    assert_allclose(calls[0], [5.0, 7.0])
    assert_allclose(x.grad, [150.0, 170.0])
    h.remove()


def test_hooks_work_in_transforms_and_tapes():
    def f(x):
        x.register_hook(lambda g: g * 0.5)
        return cnp.sum(x ** 2)

    assert_allclose(cr.grad(f)(np.array([1.0, 2.0])), [1.0, 2.0])
    w = cr.tensor([3.0])
    with cr.GradientTape() as tape:
        tape.watch(w)
        w.register_hook(lambda g: -g)
        y = cnp.sum(w * w)
    assert_allclose(tape.gradient(y, w), [-6.0])


def test_exceptions_in_hooks_name_the_hook():
    def exploding_hook(g):
        raise ValueError("boom")

    x = cr.tensor([1.0], requires_grad=True)
    x.register_hook(exploding_hook)
    with pytest.raises(ValueError, match="exploding_hook.*boom"):
        (x * x).sum().backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        cr.tensor([1.0]).register_hook(lambda g: g)


# --- Module hooks ------------------------------------------------------------------------------


def test_forward_pre_hook_and_forward_hook():
    lin = cr.nn.Linear(2, 3)
    x = np.ones((4, 2))
    inputs_seen, outputs_seen = [], []
    pre = lin.register_forward_pre_hook(lambda m, inputs: (inputs[0] * 2,))
    post = lin.register_forward_hook(lambda m, inputs, out: inputs_seen.append(inputs[0]))
    feat = lin.register_forward_hook(lambda m, inputs, out: outputs_seen.append(out))
    y = lin(x)
    assert_allclose(inputs_seen[0], 2 * x)
    assert outputs_seen[0] is y
    expected = 2 * x @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
    assert_allclose(y.detach().numpy(), expected)
    replace = lin.register_forward_hook(lambda m, inputs, out: out * 0)
    assert_allclose(lin(x).detach().numpy(), 0.0)
    for h in (pre, post, feat, replace):
        h.remove()
    plain = lin(x).detach().numpy()
    assert_allclose(plain, x @ lin.weight.detach().numpy().T + lin.bias.detach().numpy())
    assert len(inputs_seen) == 2


def test_module_hook_errors_name_the_hook():
    def bad_pre_hook(module, inputs):
        raise RuntimeError("no inputs for you")

    lin = cr.nn.Linear(2, 1)
    lin.register_forward_pre_hook(bad_pre_hook)
    with pytest.raises(RuntimeError, match=r"forward pre-hook '.*bad_pre_hook'.*no inputs"):
        lin(np.ones((1, 2)))


def test_hooked_modules_still_train_and_nest():
    net = cr.nn.Sequential(cr.nn.Linear(2, 4), cr.nn.Tanh(), cr.nn.Linear(4, 1))
    acts = {}
    net[1].register_forward_hook(lambda m, i, o: acts.__setitem__("tanh", o.detach()))
    loss = cnp.sum(net(np.ones((3, 2))) ** 2)
    loss.backward()
    assert acts["tanh"].shape == (3, 4)
    assert all(p.grad is not None for p in net.parameters())


# --- detect_anomaly ---------------------------------------------------------------------------


def test_anomaly_in_a_backward_rule_names_primitive_pass_and_line():
    x = cr.tensor([0.0, 1.0], requires_grad=True)
    with cr.detect_anomaly():
        y = cnp.sum(cnp.sqrt(x))  # the recorded line
        with pytest.raises(FloatingPointError,
                           match=r"backward pass of 'sqrt'.*test_hooks_anomaly\.py:\d+"):
            y.backward()


def test_anomaly_in_the_forward_pass():
    x = cr.tensor([0.0, 1.0], requires_grad=True)
    with cr.detect_anomaly(), np.errstate(divide="ignore"):
        with pytest.raises(FloatingPointError,
                           match=r"forward pass of 'log'.*test_hooks_anomaly\.py:\d+"):
            cnp.log(x)


def test_anomaly_decorator_under_transforms_and_nan_inputs_are_not_blamed():
    @cr.detect_anomaly()
    def gradient(x):
        return cr.grad(lambda v: cnp.sum(cnp.sqrt(v)))(x)

    with pytest.raises(FloatingPointError, match="backward pass of 'sqrt'"):
        gradient(np.array([0.0, 4.0]))
    assert_allclose(gradient(np.array([1.0, 4.0])), [0.5, 0.25])
    with cr.detect_anomaly():
        y = cnp.exp(cr.tensor([np.nan, 1.0]))  # NaN came in: not produced here
    assert np.isnan(y.numpy()[0])


def test_anomaly_mode_is_off_by_default_and_swapped_out_after():
    call, rules = Primitive.__call__, {p: p.vjp for p in registry.values()}
    assert not cr.is_anomaly_enabled()
    with cr.detect_anomaly():
        assert cr.is_anomaly_enabled()
        assert Primitive.__call__ is not call
        with cr.detect_anomaly():
            pass
        assert cr.is_anomaly_enabled()
    assert not cr.is_anomaly_enabled()
    assert Primitive.__call__ is call
    assert all(p.vjp is rules[p] for p in registry.values() if p in rules)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = cr.tensor([0.0], requires_grad=True)
        cnp.sum(cnp.sqrt(x)).backward()  # NaN/inf pass silently, like NumPy
    assert np.isinf(x.grad[0])
