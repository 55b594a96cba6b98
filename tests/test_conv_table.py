"""The convolution / pooling / normalisation family, row by row (issue 19).

Each row is a ``Case`` of the primitive table (tests/test_primitive_table.py):
``check_grads(order=2, modes=("fwd", "rev"))`` against central differences,
plus the batched-rule check (``jacfwd``/``jacrev``/``hessian`` against
unbatched ``jvp``/``hvp``).  Values and gradients are compared with a
direct-loop reference always, and with PyTorch when it is installed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.core.primitive import registry
from chainrule.ops import conv as CV
from test_primitive_table import Case, _check_batched

rng = np.random.default_rng(19)


def R(*shape):
    return rng.standard_normal(shape)


def distinct(*shape):  # no ties inside pooling windows
    n = int(np.prod(shape))
    return rng.permutation(n).reshape(shape) / n * 4.0 - 2.0


# --- direct-loop references --------------------------------------------------------------------

def loop_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Cross-correlation by explicit loops over output pixels (any number of spatial axes)."""
    d = w.ndim - 2
    unbatched = x.ndim == d + 1
    x = x[None] if unbatched else x
    st = (stride,) * d if isinstance(stride, int) else tuple(stride)
    dl = (dilation,) * d if isinstance(dilation, int) else tuple(dilation)
    K = w.shape[2:]
    if padding == "same":
        pads = [(q * (k - 1) // 2, q * (k - 1) - q * (k - 1) // 2) for k, q in zip(K, dl)]
    elif padding == "valid":
        pads = [(0, 0)] * d
    else:
        p = (padding,) * d if isinstance(padding, int) else tuple(padding)
        pads = [(a, a) for a in p]
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    N, C = x.shape[:2]
    O, Cg = w.shape[:2]
    Og = O // groups
    So = [(xp.shape[2 + i] - dl[i] * (K[i] - 1) - 1) // st[i] + 1 for i in range(d)]
    out = np.zeros((N, O) + tuple(So))
    for n, o in itertools.product(range(N), range(O)):
        g = o // Og
        for pos in itertools.product(*(range(s) for s in So)):
            acc = 0.0
            for kk in itertools.product(*(range(k) for k in K)):
                idx = tuple(p * s + k * q for p, s, k, q in zip(pos, st, kk, dl))
                acc += np.dot(xp[(n, slice(g * Cg, (g + 1) * Cg)) + idx], w[(o, slice(None)) + kk])
            out[(n, o) + pos] = acc + (0.0 if b is None else b[o])
    return out[0] if unbatched else out


def loop_conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                          dilation=1):
    """Scatter every input pixel times the kernel into the output (the definition)."""
    N, Cin, H, W = x.shape
    _, Og, kh, kw = w.shape
    Cg = Cin // groups
    s, p, op, dl = stride, padding, output_padding, dilation
    Ho = (H - 1) * s - 2 * p + dl * (kh - 1) + op + 1
    Wo = (W - 1) * s - 2 * p + dl * (kw - 1) + op + 1
    full = np.zeros((N, Og * groups, Ho + 2 * p + s, Wo + 2 * p + s))
    for n, c, i, j, a, bb in itertools.product(range(N), range(Cin), range(H), range(W),
                                               range(kh), range(kw)):
        g = c // Cg
        full[n, g * Og:(g + 1) * Og, i * s + a * dl, j * s + bb * dl] += \
            x[n, c, i, j] * w[c, :, a, bb]
    out = full[:, :, p:p + Ho, p:p + Wo]
    return out if b is None else out + b[:, None, None]


def loop_pool(x, k, s, p, reduce, fill, include_pad=True):
    """1-D or 2-D pooling over the trailing axes by loops (x: (N, C, L) or (N, C, H, W))."""
    d = x.ndim - 2
    k, s, p = ((v,) * d if isinstance(v, int) else tuple(v) for v in (k, s, p))
    xp = np.pad(x, [(0, 0), (0, 0)] + [(a, a) for a in p], constant_values=fill)
    ones = np.pad(np.ones(x.shape[2:]), [(a, a) for a in p])
    So = [(xp.shape[2 + i] - k[i]) // s[i] + 1 for i in range(d)]
    out = np.zeros(x.shape[:2] + tuple(So))
    for pos in itertools.product(*(range(v) for v in So)):
        sl = tuple(slice(q * st, q * st + kk) for q, st, kk in zip(pos, s, k))
        win = xp[(Ellipsis,) + sl].reshape(x.shape[:2] + (-1,))
        val = reduce(win, axis=-1)
        if reduce is np.mean and not include_pad:
            val = win.sum(-1) / ones[sl].sum()
        out[(Ellipsis,) + pos] = val
    return out


def loop_adaptive_avg_pool2d(x, size):
    oh, ow = (size, size) if isinstance(size, int) else size
    H, W = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (oh, ow))
    for i, j in itertools.product(range(oh), range(ow)):
        h0, h1 = i * H // oh, -(-(i + 1) * H // oh)
        w0, w1 = j * W // ow, -(-(j + 1) * W // ow)
        out[..., i, j] = x[..., h0:h1, w0:w1].mean(axis=(-2, -1))
    return out


def _src(i, n_in, n_out, mode, align_corners):
    if mode == "nearest":
        return min(int(np.floor(i * n_in / n_out)), n_in - 1)
    if align_corners:
        return i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return max((i + 0.5) * n_in / n_out - 0.5, 0.0)


def loop_interpolate(x, size, mode="nearest", align_corners=None):
    """Per output pixel: nearest source, or the (bi)linear blend of its neighbours."""
    S = x.shape[2:]
    out = np.zeros(x.shape[:2] + tuple(size))
    for pos in itertools.product(*(range(v) for v in size)):
        srcs = [_src(i, n, m, mode, align_corners) for i, n, m in zip(pos, S, size)]
        if mode == "nearest":
            out[(Ellipsis,) + pos] = x[(Ellipsis,) + tuple(srcs)]
            continue
        acc = 0.0
        for corner in itertools.product((0, 1), repeat=len(S)):
            wgt, idx = 1.0, []
            for c, sv, n in zip(corner, srcs, S):
                i0 = min(int(np.floor(sv)), n - 1)
                lam = sv - i0
                idx.append(min(i0 + c, n - 1))
                wgt *= lam if c else 1.0 - lam
            acc = acc + wgt * x[(Ellipsis,) + tuple(idx)]
        out[(Ellipsis,) + pos] = acc
    return out


def np_layer_norm(x, shape, w=None, b=None, eps=1e-5):
    axes = tuple(range(-len(shape), 0))
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


def np_group_norm(x, G, w=None, b=None, eps=1e-5):
    N, C = x.shape[:2]
    g = x.reshape(N, G, -1)
    y = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)).reshape(x.shape)
    bs = (C,) + (1,) * (x.ndim - 2)
    return y * (1 if w is None else w.reshape(bs)) + (0 if b is None else b.reshape(bs))


# --- the table: (case, loop reference, torch function name, torch kwargs) -----------------------

ROWS = []


def row(prims, fn, args, id, ref, torch_fn=None, **kw):
    ROWS.append((Case(tuple(prims), fn, tuple(args), id, **kw), ref, torch_fn))


CONV = ("conv",)
row(CONV, lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), (R(2, 2, 7), R(3, 2, 3), R(3)),
    "conv1d-stride-pad-bias", lambda x, w, b: loop_conv(x, w, b, 2, 1),
    lambda t, x, w, b: t.nn.functional.conv1d(x, w, b, stride=2, padding=1))
row(CONV, lambda x, w: F.conv1d(x, w, padding="same", dilation=2, groups=2),
    (R(1, 4, 6), R(4, 2, 3)), "conv1d-same-dilation-groups",
    lambda x, w: loop_conv(x, w, None, 1, "same", 2, 2),
    lambda t, x, w: t.nn.functional.conv1d(x, w, padding="same", dilation=2, groups=2))
row(CONV, lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0)),
    (R(2, 2, 5, 4), R(3, 2, 3, 2), R(3)), "conv2d-tuple-stride-pad",
    lambda x, w, b: loop_conv(x, w, b, (2, 1), (1, 0)),
    lambda t, x, w, b: t.nn.functional.conv2d(x, w, b, stride=(2, 1), padding=(1, 0)))
row(CONV, lambda x, w: F.conv2d(x, w, padding="same", dilation=(1, 2), groups=2),
    (R(1, 4, 4, 5), R(2, 2, 2, 3)), "conv2d-same-even-kernel-dilation-groups",
    lambda x, w: loop_conv(x, w, None, 1, "same", (1, 2), 2),
    lambda t, x, w: t.nn.functional.conv2d(x, w, padding="same", dilation=(1, 2), groups=2))
row(CONV, lambda x, w: F.conv2d(x, w, padding="valid", groups=3),
    (R(3, 4, 4), R(3, 1, 2, 2)), "conv2d-depthwise-unbatched",
    lambda x, w: loop_conv(x, w, None, 1, "valid", 1, 3),
    lambda t, x, w: t.nn.functional.conv2d(x, w, padding="valid", groups=3))
row(CONV, lambda x, w, b: F.conv3d(x, w, b, stride=(1, 2, 1), padding=1),
    (R(1, 2, 3, 4, 3), R(2, 2, 2, 2, 2), R(2)), "conv3d-stride-pad-bias",
    lambda x, w, b: loop_conv(x, w, b, (1, 2, 1), 1),
    lambda t, x, w, b: t.nn.functional.conv3d(x, w, b, stride=(1, 2, 1), padding=1))
row(("conv_input_grad",),
    lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
    (R(1, 2, 3, 3), R(2, 3, 3, 3), R(3)), "conv_transpose2d-stride-outpad-bias",
    lambda x, w, b: loop_conv_transpose2d(x, w, b, 2, 1, 1),
    lambda t, x, w, b: t.nn.functional.conv_transpose2d(x, w, b, stride=2, padding=1,
                                                        output_padding=1))
row(("conv_input_grad",), lambda x, w: F.conv_transpose2d(x, w, groups=2, dilation=2),
    (R(2, 4, 3, 2), R(4, 1, 2, 2)), "conv_transpose2d-groups-dilation",
    lambda x, w: loop_conv_transpose2d(x, w, None, 1, 0, 0, 2, 2),
    lambda t, x, w: t.nn.functional.conv_transpose2d(x, w, groups=2, dilation=2))
# Stride 1, one group: what the shifted-GEMM path takes (forced onto it below, whatever the size)
GRID = set()


def grid_row(prims, fn, args, id, ref, torch_fn=None):
    GRID.add(id)
    row(prims, fn, args, id, ref, torch_fn)


grid_row(CONV, lambda x, w, b: F.conv2d(x, w, b, padding=1), (R(2, 3, 5, 4), R(4, 3, 3, 3), R(4)),
         "conv2d-3x3-same-bias", lambda x, w, b: loop_conv(x, w, b, 1, 1),
         lambda t, x, w, b: t.nn.functional.conv2d(x, w, b, padding=1))
grid_row(CONV, lambda x, w: F.conv1d(x, w, padding=2, dilation=2), (R(2, 2, 7), R(3, 2, 3)),
         "conv1d-dilation-pad", lambda x, w: loop_conv(x, w, None, 1, 2, 2),
         lambda t, x, w: t.nn.functional.conv1d(x, w, padding=2, dilation=2))
grid_row(CONV, lambda x, w: F.conv3d(x, w, padding=(1, 0, 1)), (R(1, 2, 3, 4, 3), R(2, 2, 2, 2, 2)),
         "conv3d-stride1-pad", lambda x, w: loop_conv(x, w, None, 1, (1, 0, 1)),
         lambda t, x, w: t.nn.functional.conv3d(x, w, padding=(1, 0, 1)))
grid_row(CONV, lambda x, w: F.conv2d(x, w), (R(2, 3, 3, 4), R(5, 3, 1, 1)), "conv2d-1x1",
         lambda x, w: loop_conv(x, w), lambda t, x, w: t.nn.functional.conv2d(x, w))
grid_row(("conv_input_grad",), lambda x, w: F.conv_transpose2d(x, w, padding=1),
         (R(1, 3, 4, 4), R(3, 2, 3, 3)), "conv_transpose2d-stride1-pad",
         lambda x, w: loop_conv_transpose2d(x, w, None, 1, 1),
         lambda t, x, w: t.nn.functional.conv_transpose2d(x, w, padding=1))
_WG1 = dict(kernel=(3, 3), stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1,
            ns=1)
grid_row(("conv_weight_grad",), lambda x, g: CV.conv_weight_grad(x, g, **_WG1),
         (R(2, 3, 4, 5), R(2, 2, 4, 5)), "conv_weight_grad-stride1",
         lambda x, g: _unit_kernel_ref(x, g, (2, 3, 3, 3), 1))


_WG = dict(kernel=(2, 2), stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2), groups=2,
           ns=1)
row(("conv_weight_grad",), lambda x, g: CV.conv_weight_grad(x, g, **_WG),
    (R(2, 4, 4, 4), R(2, 4, 2, 3)), "conv_weight_grad", lambda x, g: _weight_grad_ref(x, g))
row(("max_pool2d",), lambda x: F.max_pool1d(x, 3, stride=2, padding=1), (distinct(2, 2, 7),),
    "max_pool1d-stride-pad", lambda x: loop_pool(x, 3, 2, 1, np.max, -np.inf),
    lambda t, x: t.nn.functional.max_pool1d(x, 3, stride=2, padding=1))
row(("avg_pool2d",), lambda x: F.avg_pool1d(x, 3, stride=2, padding=1), (R(2, 2, 7),),
    "avg_pool1d-stride-pad", lambda x: loop_pool(x, 3, 2, 1, np.mean, 0.0),
    lambda t, x: t.nn.functional.avg_pool1d(x, 3, stride=2, padding=1))
row(("max_pool2d",), lambda x: F.max_pool2d(x, 2), (distinct(2, 3, 6, 4),), "max_pool2d-tiles",
    lambda x: loop_pool(x, 2, 2, 0, np.max, -np.inf),
    lambda t, x: t.nn.functional.max_pool2d(x, 2))
row(("avg_pool2d",), lambda x: F.avg_pool2d(x, (3, 2), stride=(2, 1), padding=(1, 1)),
    (R(1, 2, 5, 4),), "avg_pool2d-stride-pad",
    lambda x: loop_pool(x, (3, 2), (2, 1), (1, 1), np.mean, 0.0),
    lambda t, x: t.nn.functional.avg_pool2d(x, (3, 2), stride=(2, 1), padding=(1, 1)))
row(("matmul",), lambda x: F.adaptive_avg_pool2d(x, (3, 2)), (R(2, 2, 7, 5),),
    "adaptive_avg_pool2d-uneven", lambda x: loop_adaptive_avg_pool2d(x, (3, 2)),
    lambda t, x: t.nn.functional.adaptive_avg_pool2d(x, (3, 2)))
row(("avg_pool2d",), lambda x: F.adaptive_avg_pool2d(x, 2), (R(1, 2, 4, 6),),
    "adaptive_avg_pool2d-tiles", lambda x: loop_adaptive_avg_pool2d(x, 2),
    lambda t, x: t.nn.functional.adaptive_avg_pool2d(x, 2))
row(("matmul",), lambda x: F.interpolate(x, size=(5, 3)), (R(1, 2, 3, 4),),
    "interpolate-nearest-size", lambda x: loop_interpolate(x, (5, 3)),
    lambda t, x: t.nn.functional.interpolate(x, size=(5, 3)))
row(("matmul",), lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), (R(1, 2, 3, 3),),
    "interpolate-bilinear", lambda x: loop_interpolate(x, (6, 6), "bilinear", False),
    lambda t, x: t.nn.functional.interpolate(x, scale_factor=2, mode="bilinear"))
row(("matmul",), lambda x: F.interpolate(x, size=(4, 5), mode="bilinear", align_corners=True),
    (R(2, 1, 3, 2),), "interpolate-bilinear-align-corners",
    lambda x: loop_interpolate(x, (4, 5), "bilinear", True),
    lambda t, x: t.nn.functional.interpolate(x, size=(4, 5), mode="bilinear",
                                             align_corners=True))
row(("matmul",), lambda x: F.interpolate(x, size=7, mode="linear"), (R(1, 2, 4),),
    "interpolate-linear-1d", lambda x: loop_interpolate(x, (7,), "linear", False),
    lambda t, x: t.nn.functional.interpolate(x, size=7, mode="linear"))
row(("sqrt",), lambda x, w, b: F.layer_norm(x, (3, 4), w, b), (R(2, 3, 4), R(3, 4), R(3, 4)),
    "layer_norm-affine", lambda x, w, b: np_layer_norm(x, (3, 4), w, b),
    lambda t, x, w, b: t.nn.functional.layer_norm(x, (3, 4), w, b))
row(("sqrt",), lambda x: F.layer_norm(x, 5), (R(3, 5),), "layer_norm-plain",
    lambda x: np_layer_norm(x, (5,)), lambda t, x: t.nn.functional.layer_norm(x, (5,)))
row(("sqrt",), lambda x, w, b: F.group_norm(x, 2, w, b), (R(2, 4, 3, 2), R(4), R(4)),
    "group_norm-affine", lambda x, w, b: np_group_norm(x, 2, w, b),
    lambda t, x, w, b: t.nn.functional.group_norm(x, 2, w, b))


def _weight_grad_ref(x, g):
    """``d <g, conv(x, w)> / dw`` by unit kernels through the loop convolution."""
    out = np.zeros((4, 2, 2, 2))
    xp = np.pad(x, ((0, 0), (0, 0), (1, 0), (0, 1)))
    for idx in itertools.product(*(range(s) for s in out.shape)):
        e = np.zeros(out.shape)
        e[idx] = 1.0
        out[idx] = (g * loop_conv(xp, e, None, (2, 1), 0, (1, 2), 2)).sum()
    return out


def _unit_kernel_ref(x, g, w_shape, padding):
    """``d <g, conv(x, w)> / dw`` by unit kernels through the loop convolution."""
    out = np.zeros(w_shape)
    for idx in itertools.product(*(range(s) for s in w_shape)):
        e = np.zeros(w_shape)
        e[idx] = 1.0
        out[idx] = (g * loop_conv(x, e, None, 1, padding)).sum()
    return out


CASES = [c for c, _, _ in ROWS]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_derivatives_match_finite_differences(case):
    cr.check_grads(case.fn, case.args, order=case.order, modes=("fwd", "rev"), **case.tol)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_batched_rules_agree_with_unbatched_ones(case):
    _check_batched(case)


@pytest.mark.parametrize("entry", ROWS, ids=[c.id for c, _, _ in ROWS])
def test_values_match_the_direct_loop_reference(entry):
    case, ref, _ = entry
    assert_allclose(np.asarray(case.fn(*case.args)), ref(*case.args), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("entry", [r for r in ROWS if r[2] is not None],
                         ids=[c.id for c, _, t in ROWS if t is not None])
def test_values_and_gradients_match_pytorch(entry):
    torch = pytest.importorskip("torch")
    case, _, tfn = entry
    targs = [torch.tensor(a, requires_grad=True) for a in case.args]
    tout = tfn(torch, *targs)
    out = case.fn(*case.args)
    assert_allclose(np.asarray(out), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    ct = rng.standard_normal(tout.shape)
    tgrads = torch.autograd.grad(tout, targs, torch.tensor(ct))
    _, vjp = cr.vjp(case.fn, *case.args)
    for mine, theirs in zip(vjp(ct), tgrads):
        assert_allclose(np.asarray(mine), theirs.numpy(), rtol=1e-9, atol=1e-11)


def test_layer_norm_hessian_matches_pytorch_autograd_functional():
    torch = pytest.importorskip("torch")
    x, w, b = R(2, 3), R(3), R(3)
    c = R(2, 3)

    def f_t(x, w):
        return (torch.nn.functional.layer_norm(x, (3,), w, torch.tensor(b)) ** 2
                * torch.tensor(c)).sum()

    Ht = torch.autograd.functional.hessian(f_t, (torch.tensor(x), torch.tensor(w)))
    H = cr.hessian(lambda x, w: cr.numpy.sum(F.layer_norm(x, 3, w, b) ** 2 * c),
                   argnums=(0, 1))(x, w)
    for i in range(2):
        for j in range(2):
            assert_allclose(np.asarray(H[i][j]), Ht[i][j].numpy(), rtol=1e-8, atol=1e-10)


def test_every_primitive_of_ops_conv_has_a_row():
    covered = {p for c in CASES for p in c.prims}
    mine = {name for name, prim in registry.items()
            if getattr(prim.impl, "__module__", None) == "chainrule.ops.conv"}
    assert mine and not mine - covered, f"add rows for {sorted(mine - covered)}"


# --- the shifted-GEMM path (stride 1), forced onto the small rows above --------------------------

GRID_ROWS = [r for r in ROWS if r[0].id in GRID]


@pytest.fixture(params=["blas", "numpy"])
def grid_path(request, monkeypatch):
    """Every stride-1 convolution takes the shifted GEMMs (SciPy's gemm or NumPy's matmul)."""
    monkeypatch.setattr(CV, "_GRID_WASTE_AT_MOST", float("inf"))
    monkeypatch.setattr(CV, "_GRID_MIN_CHANNELS", 1)
    if request.param == "numpy":
        monkeypatch.setattr(CV, "_blas_gemm", lambda dtype: None)
    taken = []
    grid, wgrid = CV._conv_grid, CV._weight_grad_grid
    monkeypatch.setattr(CV, "_conv_grid", lambda *a, **k: taken.append(1) or grid(*a, **k))
    monkeypatch.setattr(CV, "_weight_grad_grid",
                        lambda *a, **k: taken.append(2) or wgrid(*a, **k))
    return taken


@pytest.mark.parametrize("entry", GRID_ROWS, ids=[c.id for c, _, _ in GRID_ROWS])
def test_shifted_gemm_path_values_and_derivatives(entry, grid_path):
    case, ref, _ = entry
    assert_allclose(np.asarray(case.fn(*case.args)), ref(*case.args), rtol=1e-10, atol=1e-12)
    cr.check_grads(case.fn, case.args, order=case.order, modes=("fwd", "rev"), **case.tol)
    assert grid_path, "the shifted-GEMM path was not taken"


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_shifted_gemm_path_on_a_resnet_layer_equals_im2col(dtype, rtol, monkeypatch):
    """A layer the path takes by itself (16 channels, 3x3 "same") against the im2col path."""
    x, w = R(2, 16, 14, 14).astype(dtype), (R(16, 16, 3, 3) / 12).astype(dtype)
    c = R(2, 16, 14, 14).astype(dtype)

    def f(x, w):
        return cr.numpy.sum(F.conv2d(F.relu(F.conv2d(x, w, padding=1)), w, padding=1) * c)

    taken, shared = [], []
    grid, kept = CV._conv_grid, CV._kept
    monkeypatch.setattr(CV, "_conv_grid", lambda *a, **k: taken.append(1) or grid(*a, **k))

    def spy_kept(x, key):
        r = kept(x, key)
        if r is not None:
            shared.append(key[0])
        return r

    monkeypatch.setattr(CV, "_kept", spy_kept)
    got = cr.value_and_grad(f, argnums=(0, 1))(x, w)
    assert len(taken) == 4  # two layers and their input gradients
    # the weight gradients read the kept padded input and the padded g of the input gradient
    assert shared.count("grid") == 2 and shared.count("gpad") == 2
    monkeypatch.setattr(CV, "_GRID_WASTE_AT_MOST", 0.0)
    want = cr.value_and_grad(f, argnums=(0, 1))(x, w)
    assert len(taken) == 4
    assert_allclose(np.asarray(got[0]), np.asarray(want[0]), rtol=rtol)
    for a, b in zip(got[1], want[1]):
        assert np.asarray(a).dtype == dtype
        assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=rtol * np.abs(b).max())


# --- "into out=" kernels (cr.compile's reused buffers) --------------------------------------------

_INTO = [
    ("conv", (R(2, 16, 6, 6), R(16, 16, 3, 3)),
     dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1, ns=1)),
    ("conv", (R(2, 3, 6, 5), R(4, 3, 2, 2)),
     dict(stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 1), groups=1, ns=1)),
    ("conv", (R(2, 4, 6), R(4, 2, 3)),
     dict(stride=(1,), padding=((1, 1),), dilation=(2,), groups=2, ns=1)),
    ("conv_input_grad", (R(2, 16, 6, 6), R(16, 16, 3, 3)),
     dict(size=(6, 6), stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1,
          ns=1)),
    ("conv_input_grad", (R(2, 4, 3, 3), R(4, 3, 3, 3)),
     dict(size=(6, 6), stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1,
          ns=1)),
    ("conv_weight_grad", (R(2, 3, 5, 5), R(2, 4, 5, 5)),
     dict(kernel=(3, 3), stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1,
          ns=1)),
    ("max_pool2d", (R(2, 3, 6, 6),), dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0))),
    ("max_pool2d", (R(2, 3, 7, 6),), dict(kernel=(3, 3), stride=(2, 1), padding=(1, 1))),
    ("avg_pool2d", (R(2, 3, 7, 6),),
     dict(kernel=(3, 2), stride=(2, 1), padding=(1, 1), include_pad=False)),
    ("col2im", (R(2, 3, 2, 2, 3, 3),), dict(size=(6, 6), kernel=(2, 2), stride=(2, 2),
                                            padding=(0, 0))),
    ("col2im", (R(2, 3, 3, 3, 4, 4),), dict(size=(6, 6), kernel=(3, 3), stride=(1, 1),
                                            padding=(0, 0))),
]


@pytest.mark.parametrize("name, args, params", _INTO, ids=[f"{n}-{i}" for i, (n, _, _)
                                                           in enumerate(_INTO)])
def test_into_kernels_equal_np_impl_for_any_target(name, args, params):
    prim = registry[name]
    want = prim.np_impl(*args, **params)
    fresh = np.full(want.shape, np.nan)
    got = prim.np_out_impl(*args, out=fresh, **params)
    assert np.shares_memory(got, fresh)
    assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    strided = np.full(want.shape[::-1], np.nan).T  # not C-contiguous
    got = prim.np_out_impl(*args, out=strided, **params)
    assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    if args[0].shape == want.shape:  # the target is the input being read
        x = args[0].copy()
        got = prim.np_out_impl(x, *args[1:], out=x, **params)
        assert_allclose(got, want, rtol=1e-12, atol=1e-12)
