"""cr.nn layers: constructors, initialisation, forward values and gradients (PyTorch semantics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn

RNG = np.random.default_rng(7)


def setup_function(_):
    nn.manual_seed(0)


# --- Linear, Conv2d, pooling, Flatten ------------------------------------------------------------

def test_linear_shapes_init_and_forward():
    layer = nn.Linear(20, 5)
    assert layer.weight.shape == (5, 20) and layer.bias.shape == (5,)
    bound = 1 / math.sqrt(20)
    assert np.abs(layer.weight.numpy()).max() <= bound
    assert np.abs(layer.bias.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > 0.8 * bound  # really uniform over the range
    x = RNG.standard_normal((3, 20))
    assert_allclose(layer(x).numpy(), x @ layer.weight.numpy().T + layer.bias.numpy())
    assert nn.Linear(4, 2, bias=False).bias is None
    assert [n for n, _ in nn.Linear(4, 2, bias=False).named_parameters()] == ["weight"]


def test_linear_gradients():
    layer = nn.Linear(3, 2)
    x = RNG.standard_normal((4, 3))
    g = RNG.standard_normal((4, 2))
    (layer(x) * g).sum().backward()
    assert_allclose(layer.weight.grad, g.T @ x)
    assert_allclose(layer.bias.grad, g.sum(0))


def test_linear_float32():
    layer = nn.Linear(3, 2, dtype=np.float32)
    out = layer(RNG.standard_normal((4, 3)).astype(np.float32))
    assert out.dtype == np.float32
    out.sum().backward()
    assert layer.weight.grad.dtype == np.float32


def test_conv2d_layer():
    conv = nn.Conv2d(2, 4, kernel_size=3, stride=2, padding=1)
    assert conv.weight.shape == (4, 2, 3, 3) and conv.bias.shape == (4,)
    bound = 1 / math.sqrt(2 * 9)
    assert np.abs(conv.weight.numpy()).max() <= bound
    x = RNG.standard_normal((2, 2, 7, 7))
    out = conv(x)
    assert out.shape == (2, 4, 4, 4)
    assert_allclose(out.numpy(), np.asarray(F.conv2d(x, conv.weight.data, conv.bias.data, 2, 1)))
    out.sum().backward()
    assert conv.weight.grad.shape == (4, 2, 3, 3)
    assert_allclose(conv.bias.grad, np.full(4, 2 * 16.0))
    rect = nn.Conv2d(1, 1, (3, 1), bias=False)
    assert rect.weight.shape == (1, 1, 3, 1) and rect.bias is None


def test_pool_layers_and_flatten():
    x = RNG.standard_normal((2, 3, 8, 8))
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 4, 4)
    assert nn.MaxPool2d(3, stride=1, padding=1)(x).shape == (2, 3, 8, 8)
    assert nn.AvgPool2d(2)(x).shape == (2, 3, 4, 4)
    assert_allclose(np.asarray(nn.AvgPool2d(2)(x)),
                    x.reshape(2, 3, 4, 2, 4, 2).mean(axis=(3, 5)))
    assert_allclose(np.asarray(nn.MaxPool2d(2)(x)), x.reshape(2, 3, 4, 2, 4, 2).max(axis=(3, 5)))
    assert nn.Flatten()(x).shape == (2, 192)


def test_small_cnn_gradients_check():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8, 3))
    x = RNG.standard_normal((2, 1, 4, 4))
    cr.check_grads(lambda x: model(x), (x,), order=2, modes=("fwd", "rev"))
    loss = F.cross_entropy(model(x), np.array([0, 2]))
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


# --- Dropout -------------------------------------------------------------------------------------

def test_dropout_layer_modes():
    drop = nn.Dropout(0.5)
    x = np.ones((100, 100))
    y = np.asarray(drop(x))
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    drop.eval()
    assert_allclose(np.asarray(drop(x)), x)
    with pytest.raises(ValueError):
        nn.Dropout(-0.1)


def test_dropout_is_reproducible_with_the_seed():
    x = np.ones((10, 10))
    nn.manual_seed(3)
    a = np.asarray(nn.Dropout(0.5)(x))
    nn.manual_seed(3)
    b = np.asarray(nn.Dropout(0.5)(x))
    assert_allclose(a, b)


# --- BatchNorm -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, shape, axes", [
    (nn.BatchNorm1d, (8, 3), (0,)),
    (nn.BatchNorm1d, (8, 3, 5), (0, 2)),
    (nn.BatchNorm2d, (4, 3, 5, 5), (0, 2, 3)),
])
def test_batchnorm_training_running_stats_and_eval(cls, shape, axes):
    bn = cls(3)
    assert_allclose(bn.running_mean, 0.0)
    assert_allclose(bn.running_var, 1.0)
    assert bn.momentum == 0.1
    x = RNG.standard_normal(shape) * 3 + 2
    y = np.asarray(bn(x).detach())
    assert_allclose(y.mean(axis=axes), 0.0, atol=1e-10)
    assert_allclose(y.var(axis=axes), 1.0, rtol=1e-4)  # eps = 1e-5
    mu, var_unbiased = x.mean(axis=axes), x.var(axis=axes, ddof=1)
    assert_allclose(bn.running_mean, 0.1 * mu)
    assert_allclose(bn.running_var, 0.9 + 0.1 * var_unbiased)
    bn(x)
    assert_allclose(bn.running_mean, 0.9 * 0.1 * mu + 0.1 * mu)
    bn.eval()
    keep = [1 if i in axes else 3 for i in range(len(shape))]
    ref = (x - bn.running_mean.reshape(keep)) / np.sqrt(bn.running_var.reshape(keep) + 1e-5)
    assert_allclose(np.asarray(bn(x).detach()), ref, rtol=1e-10)
    before = bn.running_mean.copy()
    bn(x)
    assert_allclose(bn.running_mean, before)  # evaluation does not update the statistics


def test_batchnorm_affine_parameters_get_gradients():
    bn = nn.BatchNorm1d(3)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert sorted(bn.state_dict()) == ["bias", "running_mean", "running_var", "weight"]
    x = RNG.standard_normal((6, 3))
    g = RNG.standard_normal((6, 3))
    (bn(x) * g).sum().backward()
    xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    assert_allclose(bn.weight.grad, (g * xhat).sum(0), rtol=1e-10)
    assert_allclose(bn.bias.grad, g.sum(0))
    cr.check_grads(lambda x: bn(x), (x,), order=2, modes=("rev",))


def test_batchnorm_errors():
    with pytest.raises(ValueError, match="channels"):
        nn.BatchNorm1d(3)(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="dimensions"):
        nn.BatchNorm2d(3)(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="more than one value"):
        nn.BatchNorm1d(3)(np.zeros((1, 3)))


def test_batchnorm_without_running_stats_uses_batch_statistics():
    bn = nn.BatchNorm1d(2, track_running_stats=False, affine=False).eval()
    x = RNG.standard_normal((5, 2))
    assert_allclose(np.asarray(bn(x)), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5))
    assert list(bn.parameters()) == [] and bn.state_dict() == {}


# --- Embedding -----------------------------------------------------------------------------------

def test_embedding_lookup_and_gradient_accumulation():
    emb = nn.Embedding(5, 3)
    idx = np.array([[1, 2, 1], [4, 1, 0]])
    out = emb(idx)
    assert out.shape == (2, 3, 3)
    assert_allclose(out.numpy(), emb.weight.numpy()[idx])
    out.sum().backward()
    assert_allclose(emb.weight.grad[:, 0], [1, 3, 1, 0, 1])


def test_embedding_padding_idx():
    emb = nn.Embedding(4, 2, padding_idx=0)
    assert_allclose(emb.weight.numpy()[0], 0.0)
    out = emb(np.array([0, 1, 0]))
    (out * 3).sum().backward()
    assert_allclose(emb.weight.grad[0], 0.0)
    assert_allclose(emb.weight.grad[1], 3.0)
    with pytest.raises(IndexError):
        emb(np.array([4]))
    with pytest.raises(TypeError):
        emb(np.array([0.5]))


# --- recurrent layers, against NumPy transcriptions of PyTorch's equations -----------------------

def _sig(x):
    return 1 / (1 + np.exp(-x))


def _ref_rnn(kind, layer, x, h0=None, c0=None):
    """Time-major x (L, N, in); returns output (L, N, H), h_n, c_n."""
    H, L_ = layer.hidden_size, layer.num_layers
    n = x.shape[1]
    hs = np.zeros((L_, n, H)) if h0 is None else np.array(h0, float)
    cs = np.zeros((L_, n, H)) if c0 is None else np.array(c0, float)
    inp = x
    for k in range(L_):
        wih, whh, bih, bhh = (getattr(layer, f"{n}_l{k}").numpy()
                              for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        h, c = hs[k], cs[k]
        outs = []
        for t in range(inp.shape[0]):
            gi, gh = inp[t] @ wih.T + bih, h @ whh.T + bhh
            if kind == "rnn":
                h = np.tanh(gi + gh)
            elif kind == "lstm":
                z = gi + gh
                i, f, g, o = (z[:, j * H:(j + 1) * H] for j in range(4))
                c = _sig(f) * c + _sig(i) * np.tanh(g)
                h = _sig(o) * np.tanh(c)
            else:
                r = _sig(gi[:, :H] + gh[:, :H])
                zg = _sig(gi[:, H:2 * H] + gh[:, H:2 * H])
                nn_ = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
                h = (1 - zg) * nn_ + zg * h
            outs.append(h)
        hs[k], cs[k] = h, c
        inp = np.stack(outs)
    return inp, hs, cs


@pytest.mark.parametrize("kind, cls, gates", [("rnn", nn.RNN, 1), ("lstm", nn.LSTM, 4),
                                              ("gru", nn.GRU, 3)])
@pytest.mark.parametrize("num_layers, batch_first", [(1, False), (2, True)])
def test_recurrent_layers_follow_pytorch_equations(kind, cls, gates, num_layers, batch_first):
    layer = cls(3, 4, num_layers=num_layers, batch_first=batch_first)
    names = [n for n, _ in layer.named_parameters()]
    assert names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert layer.weight_ih_l0.shape == (gates * 4, 3) and layer.weight_hh_l0.shape == (gates * 4, 4)
    assert np.abs(np.concatenate([p.numpy().ravel() for p in layer.parameters()])).max() <= 0.5
    x = RNG.standard_normal((5, 2, 3))  # time-major reference input
    h0 = RNG.standard_normal((num_layers, 2, 4))
    c0 = RNG.standard_normal((num_layers, 2, 4))
    ref_out, ref_h, ref_c = _ref_rnn(kind, layer, x, h0, c0)
    inp = np.swapaxes(x, 0, 1) if batch_first else x
    if kind == "lstm":
        out, (h, c) = layer(inp, (h0, c0))
        assert_allclose(c.numpy(), ref_c, rtol=1e-10, atol=1e-12)
    else:
        out, h = layer(inp, h0)
    out = out.numpy()
    assert_allclose(np.swapaxes(out, 0, 1) if batch_first else out, ref_out, rtol=1e-10,
                    atol=1e-12)
    assert_allclose(h.numpy(), ref_h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
def test_recurrent_defaults_unbatched_and_gradients(cls):
    layer = cls(2, 3)
    x = RNG.standard_normal((4, 2))  # unbatched (L, in)
    res = layer(x)
    out = res[0]
    assert out.shape == (4, 3)
    hn = res[1][0] if cls is nn.LSTM else res[1]
    assert hn.shape == (1, 3)
    assert_allclose(out.numpy()[-1], hn.numpy()[0])
    cr.check_grads(lambda x: layer(x)[0], (x,), order=1, modes=("fwd", "rev"))
    xb = cr.tensor(RNG.standard_normal((4, 2, 2)), requires_grad=True)
    layer(xb)[0].sum().backward()
    assert xb.grad.shape == (4, 2, 2)
    assert all(p.grad is not None for p in layer.parameters())


def test_recurrent_errors():
    with pytest.raises(ValueError, match="expected an input"):
        nn.LSTM(3, 4)(np.zeros((5, 2, 2)))
    with pytest.raises(ValueError, match="h0 must have shape"):
        nn.GRU(3, 4)(np.zeros((5, 2, 3)), np.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")


def test_rnn_relu_nonlinearity():
    layer = nn.RNN(2, 3, nonlinearity="relu")
    x = RNG.standard_normal((3, 1, 2))
    out, _ = layer(x)
    h = np.zeros(3)
    for t in range(3):
        h = np.maximum(x[t, 0] @ layer.weight_ih_l0.numpy().T + layer.bias_ih_l0.numpy()
                       + h @ layer.weight_hh_l0.numpy().T + layer.bias_hh_l0.numpy(), 0)
    assert_allclose(out.numpy()[-1, 0], h)


# --- containers and the thin activation / loss modules --------------------------------------

def test_sequential_indexing_and_append():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert len(seq) == 2 and isinstance(seq[0], nn.Linear) and isinstance(seq[-1], nn.ReLU)
    seq.append(nn.Linear(3, 1))
    assert len(seq) == 3 and seq(np.ones((4, 2))).shape == (4, 1)
    assert len(seq[1:]) == 2
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    with pytest.raises(IndexError):
        seq[5]


def test_module_list_and_dict_register_parameters():
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    ml.append(nn.Linear(2, 1))
    assert len(ml) == 3 and len(list(ml.parameters())) == 6
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md["b"] = nn.Linear(1, 2)
    assert sorted(md.keys()) == ["a", "b"] and len(list(md.parameters())) == 4


@pytest.mark.parametrize("module, fn", [
    (nn.ReLU(), F.relu), (nn.Sigmoid(), F.sigmoid), (nn.Tanh(), F.tanh),
    (nn.Softmax(axis=0), lambda x: F.softmax(x, 0)), (nn.LogSoftmax(dim=1), F.log_softmax),
    (nn.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2)), (nn.ELU(), F.elu), (nn.GELU(), F.gelu),
    (nn.Softplus(), F.softplus), (nn.Softsign(), F.softsign), (nn.Arctan(), F.arctan),
    (nn.SiLU(), F.silu), (nn.LogSigmoid(), F.log_sigmoid), (nn.Identity(), lambda x: x),
])
def test_activation_modules_match_functions(module, fn):
    x = RNG.standard_normal((3, 4))
    assert_allclose(np.asarray(module(x)), np.asarray(fn(x)))


def test_loss_modules_match_functions():
    z, y = RNG.standard_normal((4, 3)), np.array([0, 2, 1, 1])
    p, t = RNG.uniform(0.1, 0.9, 4), RNG.uniform(0, 1, 4)
    pairs = [
        (nn.CrossEntropyLoss(), F.cross_entropy(z, y)),
        (nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.1),
         F.cross_entropy(z, y, reduction="sum", label_smoothing=0.1)),
        (nn.NLLLoss(), F.nll_loss(F.log_softmax(z), y)),
    ]
    assert_allclose(np.asarray(pairs[0][0](z, y)), np.asarray(pairs[0][1]))
    assert_allclose(np.asarray(pairs[1][0](z, y)), np.asarray(pairs[1][1]))
    assert_allclose(np.asarray(pairs[2][0](F.log_softmax(z), y)), np.asarray(pairs[2][1]))
    assert_allclose(np.asarray(nn.MSELoss()(p, t)), np.mean((p - t) ** 2))
    assert_allclose(np.asarray(nn.L1Loss(reduction="sum")(p, t)), np.abs(p - t).sum())
    assert_allclose(np.asarray(nn.BCELoss()(p, t)),
                    np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))
    assert_allclose(np.asarray(nn.BCEWithLogitsLoss()(p, t)),
                    np.asarray(F.binary_cross_entropy_with_logits(p, t)))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


def test_training_a_small_classifier_end_to_end():
    x = RNG.standard_normal((64, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(int)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = cr.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    acc = (np.argmax(np.asarray(model(x).detach()), axis=1) == y).mean()
    assert acc > 0.95
