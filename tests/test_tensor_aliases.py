"""PyTorch's spellings of Tensor methods: values against NumPy, PyTorch's meaning of ``dim``
where it differs from NumPy's, gradients through the reshaping ones, and errors."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr

_rng = np.random.default_rng(0)
A = _rng.standard_normal((3, 4, 5))


def t(a=A, grad=False):
    return cr.tensor(a, requires_grad=grad)


def test_size_is_numpys_count_and_pytorchs_method():
    x = t()
    assert x.size == 60 and x.size + 1 == 61 and isinstance(x.size, int)
    assert x.size() == (3, 4, 5) and x.size(0) == 3 and x.size(-1) == 5
    assert x.numel() == 60 and x.dim() == 3
    assert np.zeros(x.size).shape == (60,)


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "all", "any"])
def test_reductions_take_dim_and_keepdim(name):
    got = getattr(t(), name)(dim=1, keepdim=True)
    assert_allclose(np.asarray(got.data if hasattr(got, "data") else got),
                    getattr(np, name)(A, axis=1, keepdims=True))
    assert_allclose(np.asarray(getattr(t(), name)(axis=(0, 2)).data),
                    getattr(np, name)(A, axis=(0, 2)))
    with pytest.raises(TypeError, match="dim or axis"):
        getattr(t(), name)(axis=1, dim=1)


def test_max_and_min_with_dim_return_values_and_indices_as_pytorch():
    values, indices = t().max(dim=2)
    assert_allclose(values.data, A.max(axis=2))
    assert_allclose(indices, A.argmax(axis=2))
    res = t().min(dim=0, keepdim=True)
    assert_allclose(res.values.data, A.min(axis=0, keepdims=True))
    assert_allclose(res.indices, A.argmin(axis=0, keepdims=True))
    # NumPy's meaning without dim: the maxima only
    assert_allclose(t().max(axis=2).data, A.max(axis=2))
    x = t(grad=True)
    x.max(dim=1).values.sum().backward()
    want = np.zeros_like(A)
    np.put_along_axis(want, A.argmax(axis=1)[:, None], 1.0, axis=1)
    assert_allclose(x.grad, want)


def test_var_and_std_with_dim_are_unbiased_like_pytorch():
    assert_allclose(t().var(dim=1).data, A.var(axis=1, ddof=1))
    assert_allclose(t().std(dim=1, unbiased=False).data, A.std(axis=1))
    assert_allclose(t().std(dim=0, correction=2).data, A.std(axis=0, ddof=2))
    assert_allclose(t().var().data, A.var())  # NumPy's meaning without dim


def test_arg_and_cumulative_reductions_take_dim():
    assert_allclose(t().argmax(dim=1), A.argmax(axis=1))
    assert_allclose(t().argmin(dim=2, keepdim=True), A.argmin(axis=2, keepdims=True))
    assert_allclose(t().cumsum(dim=1).data, A.cumsum(axis=1))
    assert_allclose(t().cumprod(1).data, A.cumprod(axis=1))


def test_shape_methods_and_their_gradients():
    x = t(grad=True)
    assert x.view_as(np.zeros((12, 5))).shape == (12, 5)
    assert x.permute(2, 0, 1).shape == (5, 3, 4) and x.permute((1, 0, 2)).shape == (4, 3, 5)
    assert x.unsqueeze(1).shape == (3, 1, 4, 5) and x.unsqueeze(1).squeeze(dim=1).shape == A.shape
    m = cr.tensor(A[0])
    assert_allclose(m.t().data, A[0].T)
    with pytest.raises(ValueError, match="at most 2"):
        x.t()
    w = _rng.standard_normal((5, 3, 4))
    y = (x.permute(2, 0, 1) * w).sum() + (x.unsqueeze(0) ** 2).sum()
    y.backward()
    assert_allclose(x.grad, w.transpose(1, 2, 0) + 2 * A)


def test_elementwise_spellings_are_differentiable():
    x = t(grad=True)
    y = x.clamp(min=-0.5, max=0.5).pow(2).sum() + x.masked_fill(A > 0, 0.0).sum()
    y.backward()
    inside = (A > -0.5) & (A < 0.5)
    assert_allclose(x.grad, 2 * A * inside + (A <= 0))
    with pytest.raises(ValueError, match="min and max"):
        x.clamp()
    s = t().softmax(dim=1)
    assert_allclose(s.data.sum(axis=1), 1.0)
    assert_allclose(t().log_softmax(-1).data, np.log(np.exp(A) / np.exp(A).sum(-1, keepdims=True)))
    assert_allclose(t().logsumexp(dim=2).data, np.log(np.exp(A).sum(axis=2)))


def test_comparisons_casts_and_copies():
    x = t()
    assert (x.eq(x)).all() and not x.ne(x).any()
    assert_allclose(x.gt(0), A > 0)
    assert_allclose(x.le(0), A <= 0)
    assert x.float().dtype == np.float32 and x.double().dtype == np.float64
    assert x.long().dtype == np.int64 and x.int().dtype == np.int32 and x.bool().dtype == bool
    assert x.cpu() is x and x.contiguous() is x and x.to("cpu") is x
    assert x.to(np.float32).dtype == np.float32
    c = x.clone()
    assert c is not x and np.shares_memory(c.data, x.data) is False
    assert x.new_zeros(2, 3).shape == (2, 3) and x.new_ones((4,)).dtype == x.dtype
    m = cr.tensor(A[0])
    assert_allclose(m.mm(m.t()).data, A[0] @ A[0].T)
    assert_allclose(m.matmul(A[0].T).data, A[0] @ A[0].T)
