"""The engine's seed behaviours: eager tensors, the reverse sweep, errors, no_grad."""

import gc
import threading
import weakref

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp


def test_add_of_ones():
    a = cr.tensor(np.ones(3))
    b = cr.tensor(np.ones(3))
    c = a + b
    assert isinstance(c, cr.Tensor)
    assert_allclose(c.numpy(), [2.0, 2.0, 2.0])


def test_tape_seed_gradients_and_unconnected_source():
    with cr.GradientTape() as tape:
        a = cr.tensor([2.0, 5.0])
        b = cr.tensor([1.0, 2.0])
        unused = cr.tensor([3.0])
        e = (a + b) / (a * b)
    da, db, dn = tape.gradient(e, [a, b, unused])
    assert_allclose(da, [-0.25, -0.04])
    assert_allclose(db, [-1.0, -0.25])
    assert dn is None


def test_fan_out_sums_not_overwrites():
    x = cr.tensor(3.0, requires_grad=True)
    y = x**2
    z = y + y
    z.backward()
    assert float(x.grad) == 12.0  # d/dx 2x^2 = 4x, not 24 (double counting) nor 6 (overwrite)


def test_cube_by_products():
    x = cr.tensor(3.0, requires_grad=True)
    y = x * x * x
    assert float(y.numpy()) == 27.0
    y.backward()
    assert float(x.grad) == 27.0


def test_million_node_chain_has_no_recursion_error():
    x = cr.tensor(0.5, requires_grad=True)
    y = x
    for _ in range(500_000):  # two operations per step: 10^6 recorded nodes
        y = y * 1.0 + 0.0
    y.backward()
    assert float(x.grad) == 1.0


def test_dropping_a_deep_graph_without_backward_is_safe():
    x = cr.tensor(0.5, requires_grad=True)
    y = x
    for _ in range(200_000):
        y = cnp.sin(y) * 1.0001 + 0.1 * y
    del y  # freeing a deep chain must not overflow the C stack
    assert x.grad is None


def test_doubling_sixty_times_is_linear_not_exponential():
    x = cr.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(60):
        y = y + y
    y.backward()  # exponential-time path enumeration would never finish
    assert float(x.grad) == 2.0**60
    assert float(y.numpy()) == 2.0**60


def test_function_instance_reused_on_two_inputs():
    class Softmax(cr.Function):
        @staticmethod
        def forward(ctx, x):
            e = np.exp(x - x.max())
            s = e / e.sum()
            ctx.save_for_backward(s)
            return s

        @staticmethod
        def backward(ctx, g):
            (s,) = ctx.saved_tensors
            return (g - cnp.sum(g * s)) * s

    softmax = Softmax()
    a = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = cr.tensor([0.5, 0.5], requires_grad=True)
    sa = softmax(a)
    sb = softmax(b)
    (sa[0] + sb[1]).backward()
    s = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    assert_allclose(a.grad, s[0] * (np.eye(3)[0] - s))
    assert_allclose(b.grad, [-0.25, 0.25])
    assert_allclose(sb.numpy(), [0.5, 0.5])


def test_gradients_accumulate_across_backward_calls():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    assert_allclose(x.grad, [3.0 + 2.0, 3.0 + 4.0])
    x.zero_grad()
    assert x.grad is None


def test_backward_on_non_scalar_needs_grad():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(ValueError, match="shape"):
        y.backward()
    y.backward(np.array([1.0, 10.0]))
    assert_allclose(x.grad, [2.0, 20.0])


def test_second_backward_through_freed_graph_says_retain_graph():
    x = cr.tensor(2.0, requires_grad=True)
    y = cnp.sin(x) * x
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = cr.tensor(2.0, requires_grad=True)
    y = x * x
    y.backward(retain_graph=True)
    y.backward()
    assert float(x.grad) == 8.0


def test_create_graph_gives_differentiable_grad():
    x = cr.tensor(3.0, requires_grad=True)
    (x**3).backward(create_graph=True)
    g = x.grad
    assert isinstance(g, cr.Tensor) and g.requires_grad
    assert float(g) == 27.0
    x.grad = None
    g.backward(create_graph=True)
    h = x.grad
    assert float(h) == 18.0
    x.grad = None
    h.backward()
    assert float(x.grad) == 6.0


def test_requires_grad_on_integers_is_a_type_error_naming_dtype():
    with pytest.raises(TypeError, match="int64"):
        cr.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="bool"):
        cr.tensor([True], requires_grad=True)


def test_python_floats_become_float64_and_float32_is_kept():
    assert cr.tensor(1.0).dtype == np.float64
    assert cr.tensor([1.0, 2.0]).dtype == np.float64
    x = cr.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = (cnp.tanh(x) * 2.0 + x**2).sum()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_tensor_attributes():
    x = cr.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.dtype == np.float64
    assert x.is_leaf and not (x * 2).is_leaf
    assert_allclose(x.T.numpy(), np.arange(6.0).reshape(2, 3).T)
    assert x[1, 2].item() == 5.0
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf


def test_comparisons_give_plain_boolean_arrays():
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert isinstance(m, np.ndarray) and m.dtype == bool
    assert list(m) == [False, True, True]
    assert list(x == 2.0) == [False, True, False]


def test_reflected_operators_with_scalars_and_arrays():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (2.0 - x) + (3.0 / x) + np.array([1.0, 1.0]) * x - (-x) + abs(-x) ** 2
    assert isinstance(y, cr.Tensor)
    y.sum().backward()
    v = np.array([1.0, 2.0])
    assert_allclose(x.grad, -1.0 - 3.0 / v**2 + 1.0 + 1.0 + 2 * v)


def test_matrix_power_operator_and_rpow():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (2.0**x).sum().backward()
    assert_allclose(x.grad, np.log(2.0) * 2.0 ** np.array([1.0, 2.0]))


def test_no_grad_and_enable_grad_as_context_and_decorator():
    x = cr.tensor(1.0, requires_grad=True)
    with cr.no_grad():
        y = x * 2
        with cr.enable_grad():
            z = x * 2
    assert not y.requires_grad and z.requires_grad

    @cr.no_grad()
    def f(v):
        return v * 3

    assert not f(x).requires_grad
    assert (x * 3).requires_grad


def test_no_grad_is_per_thread():
    x = cr.tensor(1.0, requires_grad=True)
    seen = {}

    def worker():
        seen["other"] = (x * 2).requires_grad

    with cr.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        seen["here"] = (x * 2).requires_grad
    assert seen == {"other": True, "here": False}


def test_graph_memory_released_after_backward():
    x = cr.tensor(np.ones(1000), requires_grad=True)
    y = x
    for _ in range(50):
        y = cnp.tanh(y) * 1.5
    mid = weakref.ref(y)
    loss = y.sum()
    del y
    loss.backward()
    assert loss._node._args is None  # saved inputs dropped as the sweep went
    del loss
    gc.collect()
    assert mid() is None


def test_gradient_flows_only_to_leaves_that_require_it():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    c = cr.tensor([5.0, 6.0])
    (x * c).sum().backward()
    assert_allclose(x.grad, [5.0, 6.0])
    assert c.grad is None


def test_backward_grad_shape_mismatch():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        (x * 2).backward(np.ones(3))


def test_backward_without_requires_grad_raises():
    with pytest.raises(RuntimeError, match="requires_grad"):
        cr.tensor(1.0).backward()


def test_maximum_ties_share_gradient_deterministically():
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    cnp.maximum(x, 2.0).sum().backward()
    assert_allclose(x.grad, [0.0, 0.5, 1.0])
    y = cr.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    cnp.max(y).backward()
    assert_allclose(y.grad, [[0.0, 0.5, 0.5]])


def test_prod_with_zeros():
    x = cr.tensor([2.0, 0.0, 3.0], requires_grad=True)
    cnp.prod(x).backward()
    assert_allclose(x.grad, [0.0, 6.0, 0.0])
    y = cr.tensor([0.0, 0.0, 3.0], requires_grad=True)
    cnp.prod(y).backward()
    assert_allclose(y.grad, [0.0, 0.0, 0.0])
    z = cr.tensor([[1.0, 0.0], [2.0, 4.0]], requires_grad=True)
    cnp.prod(z, axis=1).sum().backward()
    assert_allclose(z.grad, [[0.0, 1.0], [4.0, 2.0]])


def test_stable_logsumexp_and_logaddexp_at_1000():
    x = cr.tensor([1000.0, 1000.0, -1000.0], requires_grad=True)
    v = cnp.logsumexp(x)
    assert_allclose(float(v), 1000.0 + np.log(2.0))
    v.backward()
    assert_allclose(x.grad, [0.5, 0.5, 0.0])
    a = cr.tensor(1000.0, requires_grad=True)
    b = cr.tensor(-1000.0, requires_grad=True)
    w = cnp.logaddexp(a, b)
    assert_allclose(float(w), 1000.0)
    w.backward()
    assert_allclose([float(a.grad), float(b.grad)], [1.0, 0.0])


def test_plain_arrays_give_plain_arrays():
    a = np.array([1.0, 2.0])
    out = cnp.sin(a) + cnp.exp(a)
    assert type(out) is np.ndarray
    assert_allclose(out, np.sin(a) + np.exp(a))
    assert type(cnp.sum(a)) in (np.float64, np.ndarray)


def test_numpy_array_operands_defer_to_tensor():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, cr.Tensor)
    y.sum().backward()
    assert_allclose(x.grad, [3.0, 4.0])


def test_shape_errors_name_the_operation_and_the_inputs():
    a = cr.tensor(np.ones(2), requires_grad=True)
    b = cr.tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"add: .*\(2,\).*\(3,\)"):
        a + b
    with pytest.raises(ValueError, match="matmul"):
        a @ cr.tensor(np.ones((3, 3)))


def test_one_cotangent_reaching_two_leaves_gives_two_gradient_arrays():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cr.tensor([3.0, 4.0], requires_grad=True)
    cnp.sum(cnp.sin(x + y)).backward()  # add's rule hands the same cotangent to both
    assert not np.shares_memory(x.grad, y.grad)
    x.grad += 1.0
    np.testing.assert_allclose(y.grad, np.cos([4.0, 6.0]))
