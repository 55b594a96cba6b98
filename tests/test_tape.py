"""GradientTape: TensorFlow-style recording."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp


def test_watch_existing_tensor_and_second_call_raises():
    w = cr.tensor([1.0, 2.0])
    with cr.GradientTape() as tape:
        tape.watch(w)
        y = cnp.sum(w**2)
    assert_allclose(tape.gradient(y, w), [2.0, 4.0])
    with pytest.raises(RuntimeError, match="persistent"):
        tape.gradient(y, w)


def test_persistent_tape_answers_many_times():
    with cr.GradientTape(persistent=True) as tape:
        x = cr.tensor(3.0)
        y = x * x
        z = y * y
    assert float(tape.gradient(z, x)) == 4 * 27.0
    assert float(tape.gradient(y, x)) == 6.0
    assert float(tape.gradient(z, y)) == 18.0  # gradient with respect to an intermediate


def test_operations_outside_the_block_are_not_recorded():
    with cr.GradientTape(persistent=True) as tape:
        x = cr.tensor(2.0)
        y = x * 3.0
    z = y * y  # after the block
    assert float(tape.gradient(y, x)) == 3.0
    assert tape.gradient(z, x) is None


def test_non_scalar_target_is_summed_and_output_gradients():
    with cr.GradientTape(persistent=True) as tape:
        x = cr.tensor([1.0, 2.0, 3.0])
        y = x * x
    assert_allclose(tape.gradient(y, x), [2.0, 4.0, 6.0])
    assert_allclose(tape.gradient(y, x, output_gradients=np.array([1.0, 0.0, 2.0])),
                    [2.0, 0.0, 12.0])


def test_unconnected_zero():
    with cr.GradientTape() as tape:
        x = cr.tensor([1.0, 2.0])
        u = cr.tensor([[1.0]])
        y = cnp.sum(x)
    gx, gu = tape.gradient(y, [x, u], unconnected="zero")
    assert_allclose(gx, [1.0, 1.0])
    assert_allclose(gu, [[0.0]])


def test_nested_tapes_give_second_derivative():
    x = cr.tensor(2.0)
    with cr.GradientTape() as outer:
        outer.watch(x)
        with cr.GradientTape() as inner:
            inner.watch(x)
            y = x**3
        dy = inner.gradient(y, x)
    d2y = outer.gradient(dy, x)
    assert float(dy) == 12.0
    assert float(d2y) == 12.0


def test_jacobian_shape_and_values():
    with cr.GradientTape() as tape:
        x = cr.tensor([1.0, 2.0])
        y = cnp.stack([x[0] * x[1], cnp.sin(x[0]), x[1] ** 2])
    j = tape.jacobian(y, x)
    assert j.shape == (3, 2)
    assert_allclose(j, [[2.0, 1.0], [np.cos(1.0), 0.0], [0.0, 4.0]])


def test_jacobian_matrix_input():
    a = np.arange(6.0).reshape(2, 3)
    with cr.GradientTape() as tape:
        x = cr.tensor(a)
        y = x * 2.0
    j = tape.jacobian(y, x)
    assert j.shape == (2, 3, 2, 3)
    assert_allclose(np.asarray(j).reshape(6, 6), 2.0 * np.eye(6))


def test_watch_rejects_integers():
    with cr.GradientTape() as tape:
        with pytest.raises(TypeError, match="int"):
            tape.watch(cr.tensor([1, 2]))


def test_tapes_are_independent():
    with cr.GradientTape() as t1:
        a = cr.tensor(1.0)
        b = a * 2.0
    with cr.GradientTape() as t2:
        c = b * 5.0
    assert float(t1.gradient(b, a)) == 2.0
    assert t2.gradient(c, a) is None  # t2 did not record a -> b
