"""cr.nn.Module, Parameter, state dicts, saving/loading, initialisers and gradient utilities."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
from chainrule import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(3))
        self.inner = nn.Linear(3, 2)
        self.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 1)])
        self.register_buffer("count", np.zeros(1))
        self.note = "not registered"

    def forward(self, x):
        h = self.inner(x * self.scale)
        for layer in self.layers:
            h = layer(h)
        return h


def test_parameter_is_a_leaf_tensor_that_requires_grad():
    p = nn.Parameter([1.0, 2.0])
    assert isinstance(p, cr.Tensor) and p.requires_grad and p.is_leaf
    assert p.dtype == np.float64
    a = np.array([1.0, 2.0])
    q = nn.Parameter(a)
    q.data[0] = 5.0
    assert a[0] == 1.0  # the parameter owns a copy
    assert not nn.Parameter([1.0], requires_grad=False).requires_grad
    with pytest.raises(TypeError, match="int"):
        nn.Parameter(np.array([1, 2]))
    assert "Parameter containing" in repr(p)
    y = (p * p).sum()
    assert type(y) is cr.Tensor
    y.backward()
    assert_allclose(p.grad, [2.0, 4.0])


def test_registration_by_attribute_nested_and_lists():
    m = Block()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "inner.weight", "inner.bias", "layers.0.weight", "layers.0.bias",
                     "layers.1.weight", "layers.1.bias"]
    assert len(list(m.parameters())) == 7
    assert m.num_parameters() == 3 + 8 + 6 + 3
    assert [n for n, _ in m.named_children()] == ["inner", "layers"]
    assert [n for n, _ in m.named_modules()] == ["", "inner", "layers", "layers.0", "layers.1"]
    assert [n for n, _ in m.named_buffers()] == ["count"]
    assert m.note == "not registered"
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale"]


def test_shared_parameters_are_listed_once_and_reassignment_replaces():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    m = Block()
    new = nn.Parameter(np.zeros(3))
    m.scale = new
    assert m.scale is new and dict(m.named_parameters())["scale"] is new
    with pytest.raises(TypeError, match="Parameter"):
        m.scale = np.zeros(3)
    m.scale = None
    assert "scale" not in dict(m.named_parameters())
    del m.inner
    assert "inner.weight" not in dict(m.named_parameters())


def test_assigning_before_super_init_is_an_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter([1.0])

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_call_runs_forward_and_base_forward_is_abstract():
    m = Block()
    assert m(np.ones((4, 3))).shape == (4, 1)
    with pytest.raises(NotImplementedError):
        nn.Module()(1)


def test_train_eval_zero_grad_requires_grad_and_to():
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    assert m.training and m[1].training
    assert m.eval() is m
    assert not m.training and not m[1].training
    m.train()
    assert m[1].training
    m(np.ones((1, 2))).sum().backward()
    assert m[0].weight.grad is not None
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m(np.ones((1, 2))).sum().backward()
    m.zero_grad(set_to_none=False)
    assert_allclose(m[0].weight.grad, 0.0)
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    bn = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).float()
    assert all(p.dtype == np.float32 for p in bn.parameters())
    assert bn[1].running_var.dtype == np.float32
    assert bn(np.ones((3, 2), np.float32)).dtype == np.float32


def test_apply_and_repr():
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "ReLU", "Sequential"]
    text = repr(m)
    assert "Linear(in_features=2, out_features=3, bias=True)" in text and "(1): ReLU()" in text


# --- state dicts ------------------------------------------------------------------------------

def test_state_dict_has_parameters_and_buffers_as_copies():
    m = Block()
    sd = m.state_dict()
    # PyTorch's order: a module's own parameters, its buffers, then its children
    assert list(sd) == ["scale", "count", "inner.weight", "inner.bias", "layers.0.weight",
                        "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    sd["scale"][0] = 99.0
    assert m.scale.data[0] == 1.0


def test_load_state_dict_round_trip_in_place():
    a, b = Block(), Block()
    b.count[0] = 7.0
    w = a.inner.weight
    a.load_state_dict(b.state_dict())
    assert a.inner.weight is w  # the same Parameter objects, updated in place
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb
        assert_allclose(pa, pb)
    x = np.ones((2, 3))
    assert_allclose(a(x).numpy(), b(x).numpy())


def test_load_state_dict_shape_mismatch_names_key_and_shapes_and_changes_nothing():
    m = Block()
    before = m.state_dict()
    bad = Block().state_dict()
    bad["layers.1.weight"] = np.zeros((3, 2))
    with pytest.raises(ValueError) as info:
        m.load_state_dict(bad)
    msg = str(info.value)
    assert "layers.1.weight" in msg and "(3, 2)" in msg and "(1, 2)" in msg
    # the keys that come before the bad one were not loaded either
    for k, v in m.state_dict().items():
        assert_allclose(v, before[k])


def test_load_state_dict_missing_and_unexpected_keys():
    m = Block()
    before = m.state_dict()
    sd = Block().state_dict()
    del sd["inner.bias"]
    with pytest.raises(ValueError, match="missing keys.*inner.bias"):
        m.load_state_dict(sd)
    sd = Block().state_dict()
    sd["extra"] = np.zeros(2)
    with pytest.raises(ValueError, match="unexpected keys.*extra"):
        m.load_state_dict(sd)
    for k, v in m.state_dict().items():
        assert_allclose(v, before[k])
    result = m.load_state_dict(sd, strict=False)
    assert result.unexpected_keys == ["extra"] and result.missing_keys == []
    with pytest.raises(ValueError, match="dtype"):
        m.load_state_dict({**Block().state_dict(), "scale": np.array(["a", "b", "c"])})
    with pytest.raises(TypeError):
        m.load_state_dict([1, 2])


def test_load_state_dict_casts_to_the_parameter_dtype():
    m = nn.Linear(2, 2, dtype=np.float32)
    sd = {k: v.astype(np.float64) + 1 for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    assert m.weight.dtype == np.float32
    assert_allclose(m.weight.numpy(), sd["weight"].astype(np.float32))


# --- files --------------------------------------------------------------------------------------

def test_save_and_load_state_round_trip(tmp_path):
    m = Block()
    path = tmp_path / "model.npz"
    m.save(path)
    state = nn.load_state(path)
    assert list(state) == list(m.state_dict())
    other = Block()
    other.load_state_dict(state)
    x = np.ones((2, 3))
    assert_allclose(other(x).numpy(), m(x).numpy())
    path2 = tmp_path / "plain"  # saved under exactly the name given
    m.save(path2)
    assert path2.exists()
    other.load(path2)


def test_load_state_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        nn.load_state(missing)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not really a zip file")
    with pytest.raises(ValueError, match="corrupt.npz"):
        nn.load_state(corrupt)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="text.npz"):
        nn.load_state(text)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="single.npy"):
        nn.load_state(single)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz"):
        nn.load_state(pickled)  # allow_pickle=False: object arrays are refused
    with pytest.raises(ValueError, match="corrupt.npz"):
        Block().load(corrupt)


def test_truncated_file_leaves_model_unchanged(tmp_path):
    m = Block()
    path = tmp_path / "m.npz"
    m.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    before = m.state_dict()
    with pytest.raises(ValueError, match="m.npz"):
        m.load(path)
    for k, v in m.state_dict().items():
        assert_allclose(v, before[k])


def test_parameters_pickle():
    p = nn.Parameter([1.0, 2.0])
    q = pickle.loads(pickle.dumps(p))
    assert isinstance(q, nn.Parameter) and q.requires_grad
    assert_allclose(q.numpy(), [1.0, 2.0])


# --- init ---------------------------------------------------------------------------------------

def test_init_constant_fills_keep_dtype_and_identity():
    p = nn.Parameter(np.empty((3, 4), dtype=np.float32))
    data = p.data
    assert nn.init.zeros_(p) is p and p.data is data and p.dtype == np.float32
    assert_allclose(p.numpy(), 0.0)
    nn.init.ones_(p)
    assert_allclose(p.numpy(), 1.0)
    nn.init.constant_(p, 2.5)
    assert_allclose(p.numpy(), 2.5)
    nn.init.eye_(p)
    assert_allclose(p.numpy(), np.eye(3, 4))


def test_init_random_distributions():
    big = nn.Parameter(np.empty((400, 500)))
    nn.init.uniform_(big, -2.0, 3.0, rng=0)
    assert big.numpy().min() >= -2.0 and big.numpy().max() <= 3.0
    assert abs(big.numpy().mean() - 0.5) < 0.02
    nn.init.normal_(big, 1.0, 2.0, rng=0)
    assert abs(big.numpy().mean() - 1.0) < 0.02 and abs(big.numpy().std() - 2.0) < 0.02
    fan_in, fan_out = 500, 400
    nn.init.xavier_uniform_(big, rng=0)
    a = math.sqrt(6 / (fan_in + fan_out))
    assert big.numpy().max() <= a and big.numpy().max() > 0.99 * a
    nn.init.xavier_normal_(big, gain=2.0, rng=0)
    assert abs(big.numpy().std() - 2 * math.sqrt(2 / (fan_in + fan_out))) < 1e-3
    nn.init.kaiming_uniform_(big, nonlinearity="relu", rng=0)
    bound = math.sqrt(2) * math.sqrt(3 / fan_in)
    assert big.numpy().max() <= bound and big.numpy().max() > 0.99 * bound
    nn.init.kaiming_normal_(big, mode="fan_out", nonlinearity="relu", rng=0)
    assert abs(big.numpy().std() - math.sqrt(2 / fan_out)) < 1e-3
    nn.init.trunc_normal_(big, std=1.0, a=-1.0, b=1.0, rng=0)
    assert np.abs(big.numpy()).max() <= 1.0
    q = nn.Parameter(np.empty((5, 3)))
    nn.init.orthogonal_(q, rng=0)
    assert_allclose(q.numpy().T @ q.numpy(), np.eye(3), atol=1e-12)


def test_init_conv_fans_gains_errors_and_seeding():
    w = nn.Parameter(np.empty((8, 4, 3, 3)))
    assert nn.init.fans(w) == (36, 72)
    assert nn.init.calculate_gain("tanh") == 5 / 3
    assert nn.init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    with pytest.raises(ValueError, match="at least 2"):
        nn.init.xavier_uniform_(nn.Parameter(np.empty(3)))
    with pytest.raises(ValueError, match="unsupported"):
        nn.init.calculate_gain("swish")
    nn.init.seed(5)
    a = nn.init.normal_(nn.Parameter(np.empty(4))).numpy()
    nn.init.seed(5)
    assert_allclose(nn.init.normal_(nn.Parameter(np.empty(4))).numpy(), a)
    raw = np.empty(3)
    nn.init.ones_(raw)  # plain arrays are filled too
    assert_allclose(raw, 1.0)


# --- utils --------------------------------------------------------------------------------------

def test_clip_grad_norm_and_value():
    p, q = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(1))
    p.grad, q.grad = np.array([3.0, 0.0]), np.array([4.0])
    total = nn.utils.clip_grad_norm_([p, q], max_norm=1.0)
    assert_allclose(total, 5.0)
    assert_allclose(np.concatenate([p.grad, q.grad]), np.array([3.0, 0.0, 4.0]) / (5 + 1e-6))
    p.grad = np.array([3.0, 0.0])
    assert_allclose(nn.utils.clip_grad_norm_([p], max_norm=10.0), 3.0)
    assert_allclose(p.grad, [3.0, 0.0])  # below the limit: unchanged
    p.grad = np.array([3.0, -5.0])
    assert_allclose(nn.utils.clip_grad_norm_([p], 1.0, norm_type=float("inf")), 5.0)
    nn.utils.clip_grad_value_([p], 0.5)
    assert np.abs(p.grad).max() <= 0.5
    assert nn.utils.clip_grad_norm_([nn.Parameter([1.0])], 1.0) == 0.0  # no grads at all


def test_parameters_to_vector_round_trip():
    m = nn.Linear(3, 2)
    v = nn.utils.parameters_to_vector(m.parameters())
    assert v.shape == (8,)
    nn.utils.vector_to_parameters(np.arange(8.0), m.parameters())
    assert_allclose(m.weight.numpy(), np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError):
        nn.utils.vector_to_parameters(np.arange(9.0), m.parameters())
