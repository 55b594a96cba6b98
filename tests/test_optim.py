"""cr.optim: every optimiser against its published update formula over several steps,
in-place updates, skipped parameters, state dicts, parameter groups and LR schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
from chainrule import nn, optim
from chainrule.optim import lr_scheduler

RNG = np.random.default_rng(11)
STEPS = 6
P0 = RNG.standard_normal((3, 2))
GRADS = [RNG.standard_normal((3, 2)) for _ in range(STEPS)]


def run_optimizer(cls, dtype=np.float64, **kw):
    """Apply ``cls`` to a parameter starting at P0 with the gradients GRADS; the trajectory."""
    p = nn.Parameter(P0.astype(dtype))
    opt = cls([p], **kw)
    data = p.data
    out = []
    for g in GRADS:
        p.grad = g.astype(dtype)
        opt.step()
        assert p.data is data  # updated in place
        out.append(p.numpy().copy())
    return out


# --- reference implementations (PyTorch's documented algorithms) ------------------------------

def ref_sgd(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    p, b, out = P0.copy(), None, []
    for g in GRADS:
        g = -g if maximize else g.copy()
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            b = g.copy() if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
        out.append(p)
    return out


def ref_adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False,
             amsgrad=False):
    p, m, v, vmax, out = P0.copy(), 0.0, 0.0, 0.0, []
    b1, b2 = betas
    for t, g in enumerate(GRADS, start=1):
        if weight_decay and decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1 ** t)
        if amsgrad:
            vmax = np.maximum(vmax, v)
            vhat = vmax / (1 - b2 ** t)
        else:
            vhat = v / (1 - b2 ** t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
        out.append(p)
    return out


def ref_rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    p, v, ga, buf, out = P0.copy(), 0.0, 0.0, 0.0, []
    for g in GRADS:
        if weight_decay:
            g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            ga = alpha * ga + (1 - alpha) * g
            avg = np.sqrt(v - ga * ga) + eps
        else:
            avg = np.sqrt(v) + eps
        if momentum:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
        out.append(p)
    return out


def ref_adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                eps=1e-10):
    p, s, out = P0.copy(), initial_accumulator_value, []
    for t, g in enumerate(GRADS, start=1):
        if weight_decay:
            g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
        out.append(p)
    return out


CASES = [
    (optim.SGD, ref_sgd, {"lr": 0.1}),
    (optim.SGD, ref_sgd, {"lr": 0.1, "momentum": 0.9}),
    (optim.SGD, ref_sgd, {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
    (optim.SGD, ref_sgd, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    (optim.SGD, ref_sgd, {"lr": 0.1, "maximize": True}),
    (optim.Adam, ref_adam, {}),
    (optim.Adam, ref_adam, {"lr": 0.1, "betas": (0.8, 0.99), "eps": 1e-6}),
    (optim.Adam, ref_adam, {"lr": 0.05, "weight_decay": 0.1}),
    (optim.Adam, ref_adam, {"lr": 0.05, "amsgrad": True}),
    (optim.AdamW, lambda **k: ref_adam(decoupled=True, **{"weight_decay": 0.01, **k}),
     {"lr": 0.05}),
    (optim.AdamW, lambda **k: ref_adam(decoupled=True, **k), {"lr": 0.05, "weight_decay": 0.3}),
    (optim.RMSprop, ref_rmsprop, {}),
    (optim.RMSprop, ref_rmsprop, {"lr": 0.01, "alpha": 0.9, "centered": True}),
    (optim.RMSprop, ref_rmsprop, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}),
    (optim.RMSprop, ref_rmsprop, {"lr": 0.01, "momentum": 0.5, "centered": True}),
    (optim.Adagrad, ref_adagrad, {}),
    (optim.Adagrad, ref_adagrad, {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.05,
                                  "initial_accumulator_value": 0.5}),
]


@pytest.mark.parametrize("cls, ref, kw", CASES,
                         ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_optimizer_follows_the_published_formula(cls, ref, kw):
    got = run_optimizer(cls, **kw)
    expected = ref(**{k: v for k, v in kw.items() if k != "maximize"}) if "maximize" not in kw \
        else ref(**kw)
    for step, (a, b) in enumerate(zip(got, expected)):
        assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {step + 1}")


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop,
                                 optim.Adagrad])
def test_float32_parameters_stay_float32(cls):
    kw = {"lr": 0.1}
    got = run_optimizer(cls, np.float32, **kw)
    ref = run_optimizer(cls, np.float64, **kw)
    assert got[-1].dtype == np.float32
    assert_allclose(got[-1], ref[-1], rtol=1e-4, atol=1e-5)


def test_parameters_without_gradient_are_skipped():
    a, b = nn.Parameter([1.0]), nn.Parameter([2.0])
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = np.array([1.0])
    opt.step()
    assert b.numpy()[0] == 2.0 and a.numpy()[0] != 1.0
    assert len(opt.state_dict()["state"]) == 1


def test_zero_grad_and_step_closure():
    p = nn.Parameter([3.0])
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss) == 9.0 and p.numpy()[0] == 3.0 - 0.25 * 6.0
    opt.zero_grad()
    assert p.grad is None
    p.grad = np.array([1.0])
    opt.zero_grad(set_to_none=False)
    assert_allclose(p.grad, 0.0)


def test_gradients_from_create_graph_are_accepted():
    p = nn.Parameter([2.0])
    (p ** 3).sum().backward(create_graph=True)
    assert isinstance(p.grad, cr.Tensor)
    optim.SGD([p], lr=0.1).step()
    assert_allclose(p.numpy(), [2.0 - 0.1 * 12.0])


def test_param_groups_have_their_own_hyperparameters():
    a, b = nn.Parameter([1.0]), nn.Parameter([1.0])
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.0)
    a.grad = b.grad = np.array([1.0])
    opt.step()
    assert_allclose([a.numpy()[0], b.numpy()[0]], [0.9, 0.5])
    assert opt.param_groups[1]["momentum"] == 0.0
    with pytest.raises(ValueError, match="more than one"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)


def test_constructor_errors():
    p = nn.Parameter([1.0])
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD([p], lr=-1.0)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p])
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(TypeError, match="require grad"):
        optim.Adam([cr.tensor([1.0])])
    with pytest.raises(TypeError, match="iterable"):
        optim.Adam(p)


@pytest.mark.parametrize("cls, kw", [(optim.SGD, {"lr": 0.1, "momentum": 0.9}),
                                     (optim.Adam, {"lr": 0.1}), (optim.RMSprop, {"lr": 0.01}),
                                     (optim.Adagrad, {"lr": 0.1}), (optim.AdamW, {"lr": 0.1})])
def test_state_dict_resumes_exactly(cls, kw):
    full = run_optimizer(cls, **kw)
    p = nn.Parameter(P0.copy())
    opt = cls([p], **kw)
    for g in GRADS[:3]:
        p.grad = g
        opt.step()
    saved_p, saved = p.numpy().copy(), opt.state_dict()
    q = nn.Parameter(saved_p)
    fresh = cls([q], **{**kw, "lr": 123.0})
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == kw["lr"]
    for g in GRADS[3:]:
        q.grad = g
        fresh.step()
    assert_allclose(q.numpy(), full[-1], rtol=1e-12)
    # the saved state is a copy: stepping on does not change it
    again = cls([nn.Parameter(saved_p)], **kw)
    again.load_state_dict(saved)


def test_load_state_dict_errors():
    p = nn.Parameter(np.zeros(2))
    opt = optim.Adam([p])
    p.grad = np.ones(2)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="groups"):
        optim.Adam([nn.Parameter([1.0])]).load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="shape"):
        optim.Adam([nn.Parameter(np.zeros(3))]).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameters"):
        optim.Adam([nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(2))]).load_state_dict(sd)


def test_training_a_model_in_place():
    model = nn.Linear(3, 1)
    params = list(model.parameters())
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    x = RNG.standard_normal((32, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    for _ in range(300):
        opt.zero_grad()
        loss = cr.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    assert list(model.parameters())[0] is params[0]
    assert_allclose(model.weight.numpy(), [[1.0, -2.0, 0.5]], atol=1e-4)
    assert_allclose(model.bias.numpy(), [0.3], atol=1e-4)


# --- learning-rate schedules ----------------------------------------------------------------

def _lrs(make, epochs=8, lr=1.0):
    opt = optim.SGD([nn.Parameter([0.0])], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        assert sched.get_last_lr() == [out[-1]]
        opt.step()
        sched.step()
    return out


def test_step_lr():
    assert_allclose(_lrs(lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
                    [0.5 ** (e // 3) for e in range(8)])


def test_multistep_lr():
    assert_allclose(_lrs(lambda o: lr_scheduler.MultiStepLR(o, [2, 5], gamma=0.1)),
                    [1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])


def test_exponential_lr():
    assert_allclose(_lrs(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9), lr=0.5),
                    [0.5 * 0.9 ** e for e in range(8)])


def test_cosine_annealing_lr():
    got = _lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=5, eta_min=0.1), epochs=6)
    ref = [0.1 + 0.9 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(6)]
    assert_allclose(got, ref, atol=1e-15)
    assert_allclose(got[5], 0.1)


def test_lambda_lr_and_scheduler_state_dict():
    assert_allclose(_lrs(lambda o: lr_scheduler.LambdaLR(o, lambda e: 1 / (e + 1)), epochs=4),
                    [1, 1 / 2, 1 / 3, 1 / 4])
    opt = optim.SGD([nn.Parameter([0.0])], lr=1.0)
    s = lr_scheduler.StepLR(opt, 2, 0.5)
    for _ in range(3):
        s.step()
    state = s.state_dict()
    opt2 = optim.SGD([nn.Parameter([0.0])], lr=1.0)
    s2 = lr_scheduler.StepLR(opt2, 2, 0.5)
    s2.load_state_dict(state)
    s2.step()
    s.step()
    assert s2.get_last_lr() == s.get_last_lr() == [0.25]
    with pytest.raises(ValueError):
        lr_scheduler.StepLR(opt, 0)
