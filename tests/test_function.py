"""cr.Function: custom operations."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core.primitive import registry


class Cube(cr.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * g

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * t


class MulAdd(cr.Function):
    """Two inputs, one of them optional in the gradient (None)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        ctx.note = "kept"
        return x * y + x

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        assert ctx.note == "kept"
        return g * (y + 1), g * x


def test_apply_and_instance_call():
    x = cr.tensor(2.0, requires_grad=True)
    y = Cube.apply(x)
    assert float(y) == 8.0
    y.backward()
    assert float(x.grad) == 12.0
    cube = Cube()
    x2 = cr.tensor([1.0, 3.0], requires_grad=True)
    cube(x2).sum().backward()
    assert_allclose(x2.grad, [3.0, 27.0])


def test_forward_receives_raw_arrays():
    seen = []

    class Spy(cr.Function):
        @staticmethod
        def forward(ctx, x):
            seen.append(type(x))
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    Spy.apply(cr.tensor([1.0], requires_grad=True))
    assert seen == [np.ndarray]


def test_backward_written_with_chainrule_is_differentiable_again():
    x = cr.tensor(2.0, requires_grad=True)
    Cube.apply(x).backward(create_graph=True)
    g = x.grad
    x.grad = None
    g.backward()
    assert float(x.grad) == 12.0  # d/dx 3x^2 = 6x


def test_two_inputs():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cr.tensor([3.0, 4.0], requires_grad=True)
    MulAdd.apply(x, y).sum().backward()
    assert_allclose(x.grad, [4.0, 5.0])
    assert_allclose(y.grad, [1.0, 2.0])


def test_registered_through_the_same_door():
    assert Cube._primitive.name in registry
    assert registry[Cube._primitive.name].vjp is not None


def test_without_jvp_forward_mode_raises_naming_the_op():
    from chainrule.core.trace import level_scope
    from chainrule.tensor import Tensor

    with level_scope(forward=True) as level:
        xb = Tensor(np.array(2.0), level, None, False, np.array(1.0))
        with pytest.raises(NotImplementedError, match="MulAdd"):
            MulAdd.apply(xb, np.array(1.0))
        y = Cube.apply(xb)
    assert float(y._tangent) == 12.0


def test_wrong_number_of_gradients_is_reported():
    class Bad(cr.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x + y

        @staticmethod
        def backward(ctx, g):
            return g

    x = cr.tensor(1.0, requires_grad=True)
    with pytest.raises(ValueError, match="Bad"):
        Bad.apply(x, x).backward()


def test_works_inside_chainrule_expressions():
    x = cr.tensor(np.linspace(-1, 1, 5), requires_grad=True)
    cnp.sum(cnp.sin(Cube.apply(x))).backward()
    xs = np.linspace(-1, 1, 5)
    assert_allclose(x.grad, np.cos(xs**3) * 3 * xs**2)
