"""Convolution-family modules (constructors, initialisation, unbatched input) and bad input."""

from __future__ import annotations

import gc
import importlib.util
import math
import os
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.ops import conv as CV

nn = cr.nn
rng = np.random.default_rng(7)
HERE = os.path.dirname(os.path.abspath(__file__))


# --- modules -----------------------------------------------------------------------------------

@pytest.mark.parametrize("make, x_shape, out_shape, fan_in", [
    (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 9), (2, 6, 5), 2 * 3),
    (lambda: nn.Conv2d(3, 8, (3, 2), padding="same", dilation=2), (1, 3, 6, 5), (1, 8, 6, 5),
     3 * 6),
    (lambda: nn.Conv2d(3, 8, 3), (3, 6, 5), (8, 4, 3), 27),   # unbatched, as PyTorch
    (lambda: nn.Conv3d(2, 4, 2, padding="valid"), (1, 2, 3, 3, 3), (1, 4, 2, 2, 2), 16),
    (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
     (1, 4, 5, 5), (1, 6, 10, 10), 3 * 9),
])
def test_conv_modules_shapes_and_pytorch_initialisation(make, x_shape, out_shape, fan_in):
    nn.manual_seed(0)
    m = make()
    out = m(cr.tensor(rng.standard_normal(x_shape), requires_grad=True))
    assert out.shape == out_shape
    bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and the bias both use it
    w, b = m.weight.numpy(), m.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.7 * bound
    assert np.abs(b).max() <= bound
    out.sum().backward()
    assert m.weight.grad.shape == w.shape and m.bias.grad.shape == b.shape


def test_conv_modules_match_pytorch_modules():
    torch = pytest.importorskip("torch")
    nn.manual_seed(1)
    pairs = [(nn.Conv1d(2, 4, 3, padding="same", dilation=2),
              torch.nn.Conv1d(2, 4, 3, padding="same", dilation=2, dtype=torch.float64),
              (2, 2, 7)),
             (nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False),
              torch.nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False,
                              dtype=torch.float64), (4, 6, 6)),
             (nn.ConvTranspose2d(2, 3, 2, stride=2),
              torch.nn.ConvTranspose2d(2, 3, 2, stride=2, dtype=torch.float64), (1, 2, 3, 3))]
    for mine, theirs, shape in pairs:
        assert tuple(theirs.weight.shape) == mine.weight.shape
        with torch.no_grad():
            for p, q in zip(theirs.parameters(), mine.parameters()):
                p.copy_(torch.from_numpy(q.numpy()))
        x = rng.standard_normal(shape)
        assert_allclose(mine(x).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                        rtol=1e-12, atol=1e-12)


def test_pool_norm_and_resampling_modules():
    x = rng.standard_normal((2, 4, 6, 6))
    assert nn.MaxPool1d(2)(x[:, :, 0]).shape == (2, 4, 3)
    assert nn.AvgPool1d(3, stride=1, padding=1)(x[:, :, 0]).shape == (2, 4, 6)
    assert nn.AdaptiveAvgPool2d((4, None))(x).shape == (2, 4, 4, 6)
    assert nn.Upsample(size=(3, 9), mode="bilinear", align_corners=True)(x).shape == (2, 4, 3, 9)
    ln = nn.LayerNorm((6, 6))
    assert ln.weight.shape == (6, 6) and np.all(ln.weight.numpy() == 1)
    assert np.all(ln.bias.numpy() == 0)
    y = ln(x).numpy()
    assert_allclose(y.mean(axis=(-2, -1)), 0, atol=1e-12)
    gn = nn.GroupNorm(2, 4)
    y = gn(x).numpy().reshape(2, 2, -1)
    assert_allclose(y.mean(-1), 0, atol=1e-12)
    assert_allclose(y.var(-1), 1, rtol=1e-3)
    assert len(list(nn.LayerNorm(5, elementwise_affine=False).parameters())) == 0


# --- bad input ---------------------------------------------------------------------------------

def test_channel_mismatch_names_expected_and_given_channels():
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"expected input with 3 channels.*got 5 channels"):
        conv(np.zeros((1, 5, 8, 8)))
    with pytest.raises(ValueError, match=r"expected input with 4 channels.*got 2 channels"):
        F.conv1d(np.zeros((1, 2, 8)), np.zeros((6, 2, 3)), groups=2)
    with pytest.raises(ValueError, match=r"expected input with 2 channels.*got 3 channels"):
        F.conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((2, 1, 3, 3)))


def test_groups_must_divide_the_channels():
    with pytest.raises(ValueError, match="groups=3 must divide in_channels 4"):
        nn.Conv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="groups=2 must divide out_channels 5"):
        nn.Conv2d(4, 5, 3, groups=2)
    with pytest.raises(ValueError, match="groups=3 must divide the input channels 4"):
        F.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((3, 1, 3, 3)), groups=3)
    with pytest.raises(ValueError, match="num_groups=3 must divide"):
        F.group_norm(np.zeros((2, 4, 3)), 3)


def test_kernel_larger_than_the_padded_input():
    with pytest.raises(ValueError, match=r"kernel size \(5, 5\).*larger than the padded input"):
        nn.Conv2d(1, 2, 5)(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"kernel size \(5,\) \(dilated\) is larger"):
        F.conv1d(np.zeros((1, 1, 4)), np.zeros((1, 1, 3)), dilation=2)
    F.conv2d(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 5, 5)), padding=1)  # fits once padded


def test_unbatched_input_and_other_argument_errors():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = rng.standard_normal((2, 5, 5))
    assert_allclose(conv(x).numpy(), conv(x[None]).numpy()[0], rtol=1e-13)
    with pytest.raises(ValueError, match="expected an input of 3 .unbatched. or 4 .batched."):
        conv(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=2, padding="same")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv1d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be"):
        F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), padding="full")
    with pytest.raises(ValueError, match="bias must have shape"):
        F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)), stride=2,
                           output_padding=2)
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(np.zeros((2, 3)), (4,))
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="bilinear.*4-D input"):
        F.interpolate(np.zeros((1, 1, 4)), size=8, mode="bilinear")


def test_float32_stays_float32_through_the_family():
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    outs = [F.conv2d(x, w, groups=2, padding="same"), F.conv_transpose2d(x, w[:, :1]),
            F.adaptive_avg_pool2d(x, 4), F.interpolate(x, scale_factor=1.5, mode="bilinear"),
            F.layer_norm(x, 6), F.group_norm(x, 2), F.max_pool1d(x[:, :, 0], 2)]
    assert all(np.asarray(o).dtype == np.float32 for o in outs)
    _, vjp = cr.vjp(lambda x, w: F.conv2d(x, w, groups=2), x, w)
    gx, gw = vjp(np.ones((2, 4, 4, 4), np.float32))
    assert gx.dtype == gw.dtype == np.float32


def test_array_api_backend_uses_the_shifted_gemm_path():
    xp = pytest.importorskip("array_api_strict")
    x = rng.standard_normal((2, 4, 5, 5))
    w = rng.standard_normal((6, 2, 3, 3))
    kw = dict(stride=2, padding=1, dilation=1, groups=2)
    expected = np.asarray(F.conv2d(x, w, **kw))
    got = F.conv2d(xp.asarray(x), xp.asarray(w), **kw)
    assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(expected.shape)
    _, vjp = cr.vjp(lambda x, w: F.conv2d(x, w, **kw), x, w)
    _, vjp_xp = cr.vjp(lambda x, w: F.conv2d(x, w, **kw), xp.asarray(x), xp.asarray(w))
    for a, b in zip(vjp_xp(xp.asarray(g)), vjp(g)):
        assert_allclose(np.asarray(a), b, rtol=1e-12, atol=1e-12)


# --- the example -------------------------------------------------------------------------------

def test_cnn_digits_example_fast_mode(tmp_path, capsys):
    path = os.path.join(HERE, os.pardir, "examples", "cnn_digits.py")
    spec = importlib.util.spec_from_file_location("cnn_digits", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    png = tmp_path / "curve.png"
    result = mod.main(["--fast", "--plot", str(png)])
    assert len(result["history"]) == 2
    assert result["final_accuracy"] > 0.5  # 400 images, 2 epochs: far above chance (0.1)
    assert "test accuracy" in capsys.readouterr().out
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.stat().st_size > 1000


# --- recycled buffers and the fast first-order paths ---------------------------------------------

def test_repeated_training_steps_reuse_buffers_without_mixing_them_up():
    nn.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 3, 3, padding=1), nn.Flatten())
    w1, w2 = model[0].weight, model[3].weight

    def plain_grads(x):  # plain arrays: no recording, nothing kept
        f = lambda a, b: (model[4](F.conv2d(F.max_pool2d(F.relu(F.conv2d(
            x, a, model[0].bias.numpy(), padding=1)), 2), b, model[3].bias.numpy(),
            padding=1)) ** 2).sum()
        return cr.grad(f, argnums=(0, 1))(w1.numpy(), w2.numpy())

    for _ in range(3):
        x = rng.standard_normal((2, 2, 6, 6))
        model.zero_grad()
        (model(x) ** 2).sum().backward()
        g1, g2 = plain_grads(x)
        assert_allclose(np.asarray(w1.grad), g1, rtol=1e-12, atol=1e-12)
        assert_allclose(np.asarray(w2.grad), g2, rtol=1e-12, atol=1e-12)


def test_max_pool_ties_in_overlapping_windows_follow_pytorch():
    torch = pytest.importorskip("torch")
    x = np.round(rng.standard_normal((2, 3, 7, 7)))  # many ties
    g = rng.standard_normal((2, 3, 4, 4))
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 3, stride=2, padding=1).backward(torch.tensor(g))
    _, vjp = cr.vjp(lambda x: F.max_pool2d(x, 3, stride=2, padding=1), x)
    assert_allclose(vjp(g)[0], xt.grad.numpy(), rtol=1e-12, atol=1e-12)


# --- cr.compile: convolutions compute into the program's reused buffers ------------------------

def test_compiled_training_step_reuses_conv_buffers_and_equals_the_eager_step(monkeypatch):
    x, c = rng.standard_normal((4, 16, 24, 24)), rng.standard_normal((4, 16, 24, 24))
    params = [rng.standard_normal((16, 3, 3, 3)) * 0.3, rng.standard_normal(16) * 0.1,
              rng.standard_normal((16, 16, 3, 3)) * 0.1, rng.standard_normal(16) * 0.1]

    def loss(w1, b1, w2, b2):  # im2col (3 channels) and shifted-GEMM (16 channels) layers
        a = F.relu(F.conv2d(x[:, :3], w1, b1, padding=1))
        h = F.relu(a + F.conv2d(a, w2, b2, padding=1))
        p = F.max_pool2d(h, 2) + F.avg_pool2d(h, 3, stride=2, padding=1)
        return (h * c).sum() + (p * c[:, :, :12, :12]).sum()

    eager = cr.value_and_grad(loss, argnums=(0, 1, 2, 3))
    step = cr.compile(eager)
    source = step.source(*params)
    for name in ("conv", "conv_input_grad", "max_pool2d", "avg_pool2d", "max_pool2d_grad"):
        assert f"_{name}_into(" in source, name
    assert all("out=_b" in ln for ln in source.splitlines() if "_conv_into(" in ln)

    fresh = []  # conv work arrays that had to be allocated (none recycled of that shape)
    take = CV._take

    def counting_take(shape, dtype):
        if not CV._SCRATCH.get((shape, np.dtype(dtype))):
            fresh.append(shape)
        return take(shape, dtype)

    monkeypatch.setattr(CV, "_take", counting_take)
    want_v, want_g = eager(*params)
    peaks = []
    for k in range(4):
        fresh.clear()
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            v, g = step(*params)
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
        finally:
            tracemalloc.stop()
        assert_allclose(v, np.asarray(want_v), rtol=1e-12)
        for mine, ref in zip(g, want_g):
            assert_allclose(mine, np.asarray(ref), rtol=1e-11, atol=1e-12)
        if k > 1:  # after the first buffered step: every conv work array is a recycled one
            assert fresh == [], f"step {k + 1} allocated conv work arrays {fresh}"
    # the first step runs without buffers (noting layouts), the second allocates the
    # program's buffers, later steps allocate none of them again
    assert peaks[2] < peaks[1] - x.nbytes
    assert abs(peaks[3] - peaks[2]) < 0.05 * peaks[2]
    # the convolutions' results live in channels-last buffers (no transposing copies)
    exe = step.lower(*params)
    assert any(len(s) > 2 and s[2] == (0, 2, 3, 1) for s in exe._specs)


# --- max pooling's reverse rule as a primitive (what a compiled backward pass runs) ------------

@pytest.mark.parametrize("shape, k, s, p", [
    ((2, 3, 8, 8), 2, 2, 0),      # windows tile the image
    ((2, 3, 7, 7), 3, 2, 1),      # overlapping windows, padding
])
def test_max_pool_grad_primitive_kernels_agree(shape, k, s, p):
    from chainrule.ops import nn as N

    x = np.round(rng.standard_normal(shape) * 2)  # ties: the first maximum takes g
    params = dict(kernel=(k, k), stride=(s, s), padding=(p, p))
    out = N.max_pool2d(x, k, stride=s, padding=p)
    g = rng.standard_normal(out.shape)
    want = N.max_pool2d_grad_p.impl(np, g, x, out, **params)  # the argmax mask, col2im
    assert_allclose(N.max_pool2d_grad_p(g, x, out, **params), want, rtol=0, atol=1e-15)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # channels last
    outl = N.max_pool2d(xl, k, stride=s, padding=p)
    for buf in (np.empty(shape), np.empty_like(xl)):
        got = N._max_pool_grad_into(g, xl, outl, out=buf, **params)
        assert got is buf
        assert_allclose(got, want, rtol=0, atol=1e-15)
    gb = np.stack([g, 2 * g])  # a leading batch axis on the cotangent
    assert_allclose(N.max_pool2d_grad_p(gb, x, out, **params), np.stack([want, 2 * want]),
                    rtol=0, atol=1e-14)


def test_compiled_max_pool_backward_is_one_primitive_and_follows_pytorch_on_ties():
    x = np.round(rng.standard_normal((2, 3, 7, 7)))  # many ties
    g = rng.standard_normal((2, 3, 4, 4))
    f = cr.compile(lambda x, g: cr.vjp(
        lambda x: F.max_pool2d(x, 3, stride=2, padding=1), x)[1](g)[0])
    source = f.source(x, g)
    assert "_max_pool2d_grad" in source and "col2im" not in source
    _, vjp = cr.vjp(lambda x: F.max_pool2d(x, 3, stride=2, padding=1), x)
    for _ in range(3):  # the first call (no buffers), then the buffered program
        assert_allclose(f(x, g), vjp(g)[0], rtol=0, atol=1e-15)
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 3, stride=2, padding=1).backward(torch.tensor(g))
    assert_allclose(f(x, g), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_compiled_convolution_keeps_its_im2col_matrix_only_for_a_weight_gradient(monkeypatch):
    x, w = rng.standard_normal((4, 3, 20, 20)), rng.standard_normal((8, 3, 5, 5))
    kept = []
    keep = CV._keep
    monkeypatch.setattr(CV, "_keep", lambda x, key, cols: (kept.append(key), keep(x, key, cols)))
    fwd = cr.compile(lambda x, w: F.relu(F.conv2d(x, w)))
    for _ in range(3):
        fwd(x, w)
    assert kept == [] and id(x) not in CV._KEPT  # a forward pass alone keeps nothing
    loss = lambda w, x: (F.conv2d(x, w) ** 2).sum()
    want = cr.grad(loss)(w, x)
    step = cr.compile(cr.grad(loss))
    step(w, x)  # traced
    for k in range(3):
        kept.clear()
        assert_allclose(step(w, x), want, rtol=1e-12)
        assert len(kept) == (1 if k else 0)  # (the first call runs without buffers)
        assert id(x) not in CV._KEPT  # the weight gradient used it up


def test_max_pool_grad_dependency_pattern_is_its_windows():
    pytest.importorskip("scipy")
    from chainrule.ops import nn as N

    x = np.round(rng.standard_normal((1, 2, 5, 5)) * 3)
    out = N.max_pool2d(x, 3, stride=2, padding=1)
    params = dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1))
    f = lambda g: N.max_pool2d_grad_p(g, x, out, **params)
    P = cr.sparse.jacobian_sparsity(f, np.zeros(out.shape)).toarray()
    J = cr.jacobian(f)(np.zeros(out.shape)).reshape(x.size, out.size)
    assert not (J != 0)[~P].any()  # the pattern covers every nonzero of the Jacobian
    # and is the windows: each g element reaches the entries of its 3x3 window (inside x)
    ones = N.avg_pool2d(np.ones(x.shape), 3, stride=2, padding=1, count_include_pad=True) * 9
    assert_allclose(P.sum(axis=0), ones.ravel())
