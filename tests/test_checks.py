"""cr.check_grads: it must pass on correct derivatives and catch wrong rules in every mode."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core.primitive import Box, Primitive

rng = np.random.default_rng(1)


def _raw(x):
    while isinstance(x, Box):
        x = x.data
    return x


def _square_prim(name, vjp_factor=2.0, jvp_factor=2.0, constant_rule=False):
    """x**2 with rules scaled by the given factors (2.0 = correct).

    ``constant_rule`` writes the rules with the raw array of x (NumPy, not chainrule ops):
    right at first order, but the rule itself is then not differentiable, so second-order
    derivatives come out wrong (zero).
    """
    def d(x, factor):
        return factor * (np.asarray(_raw(x)) if constant_rule else x)

    return Primitive(
        name, lambda xp, x: x * x,
        vjp=(lambda g, out, x: g * d(x, vjp_factor),),
        jvp=(lambda t, out, x: t * d(x, jvp_factor),),
        register=False,  # test-only: stays out of the registry walk
    )


good_square = _square_prim("test_good_square")
bad_vjp_square = _square_prim("test_bad_vjp_square", vjp_factor=2.5)
small_vjp_square = _square_prim("test_small_vjp_square", vjp_factor=1.9)
bad_jvp_square = _square_prim("test_bad_jvp_square", jvp_factor=3.0)
first_order_only_square = _square_prim("test_first_order_only", constant_rule=True)


X = np.array([0.5, -1.2, 2.0])


# --- passing cases ---------------------------------------------------------------------------

def test_passes_on_correct_functions():
    cr.check_grads(good_square, (X,))
    cr.check_grads(lambda x, y: cnp.sin(x) * cnp.exp(y), (X, np.array(0.3)))
    cr.check_grads(lambda x: cnp.sum(cnp.tanh(x) ** 3, axis=0), (rng.standard_normal((3, 2)),),
                   order=3)
    # several outputs (a pytree) and pytree arguments
    cr.check_grads(lambda p: {"a": p["w"] * p["b"], "b": (cnp.log(p["w"] ** 2),)},
                   ({"w": X, "b": np.array(1.5)},))


def test_passes_on_float32_arguments():
    x32 = X.astype(np.float32)
    cr.check_grads(lambda x: cnp.exp(x) * cnp.sin(x), (x32,))
    cr.check_grads(lambda x: cnp.sum(x * x), (x32,), modes=("rev",))


def test_single_mode_and_order_one():
    cr.check_grads(bad_jvp_square, (X,), modes=("rev",), order=1)   # fwd rule not looked at
    cr.check_grads(bad_vjp_square, (X,), modes=("fwd",), order=1)   # rev rule not looked at
    cr.check_grads(cnp.cos, (X,), modes="fwd")


# --- catching wrong rules -----------------------------------------------------------------------

def test_wrong_vjp_is_caught_in_reverse_mode():
    with pytest.raises(AssertionError, match=r"mode 'rev', order 1 \(VJP of f\)") as info:
        cr.check_grads(bad_vjp_square, (X,), modes=("rev",))
    assert "by AD" in str(info.value) and "central" in str(info.value)


def test_too_small_and_too_large_gradients_both_fail():
    # two-sided: 0.95x and 1.25x the true derivative are both rejected
    with pytest.raises(AssertionError, match="mode 'rev'"):
        cr.check_grads(small_vjp_square, (X,), modes=("rev",), order=1)
    with pytest.raises(AssertionError, match="mode 'rev'"):
        cr.check_grads(bad_vjp_square, (X,), modes=("rev",), order=1)


def test_wrong_jvp_is_caught_in_forward_mode():
    with pytest.raises(AssertionError, match=r"mode 'fwd', order 1 \(JVP of f\)") as info:
        cr.check_grads(bad_jvp_square, (X,), modes=("fwd",))
    msg = str(info.value)
    assert "AD" in msg and "numerical" in msg and "|diff|" in msg


def test_rule_that_is_not_differentiable_fails_at_order_two_only():
    cr.check_grads(first_order_only_square, (X,), order=1)
    with pytest.raises(AssertionError, match=r"mode 'rev', order 2 \(VJP of VJP of f\)"):
        cr.check_grads(first_order_only_square, (X,), order=2, modes=("rev",))
    with pytest.raises(AssertionError, match=r"mode 'fwd', order 2 \(JVP of JVP of f\)"):
        cr.check_grads(first_order_only_square, (X,), order=2, modes=("fwd",))


class WrongBackward(cr.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * g               # should be 3 x^2 g

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return 3 * x * x * t


class WrongJvp(cr.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return cnp.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return cnp.cos(x) * g

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return -cnp.cos(x) * t          # wrong sign


def test_wrong_custom_function_rules_are_caught():
    with pytest.raises(AssertionError, match="mode 'rev', order 1"):
        cr.check_grads(WrongBackward.apply, (X,), modes=("rev",))
    cr.check_grads(WrongBackward.apply, (X,), modes=("fwd",), order=1)
    # at order 2 the reverse derivative of the JVP function runs the wrong backward too
    with pytest.raises(AssertionError, match=r"mode 'rev', order 2 \(VJP of JVP of f\)"):
        cr.check_grads(WrongBackward.apply, (X,), modes=("fwd", "rev"))
    with pytest.raises(AssertionError, match="mode 'fwd', order 1"):
        cr.check_grads(WrongJvp.apply, (X,))
    cr.check_grads(WrongJvp.apply, (X,), modes=("rev",), order=1)


def test_nan_derivative_fails():
    nan_rule = Primitive("test_nan_rule", lambda xp, x: x * 2,
                         vjp=(lambda g, out, x: g * np.nan,), jvp=(lambda t, out, x: t * np.nan,),
                         register=False)
    for mode in ("fwd", "rev"):
        with pytest.raises(AssertionError, match=f"mode '{mode}'"):
            cr.check_grads(nan_rule, (X,), modes=(mode,), order=1)


def test_tolerances_can_be_loosened_and_tightened():
    slightly_off = _square_prim("test_slightly_off", vjp_factor=2.0 * (1 + 1e-3))
    with pytest.raises(AssertionError):
        cr.check_grads(slightly_off, (X,), modes=("rev",), order=1)
    cr.check_grads(slightly_off, (X,), modes=("rev",), order=1, rtol=1e-2, atol=1e-2)
    cr.check_grads(cnp.exp, (X,), order=1, eps=1e-5, rtol=1e-8, atol=1e-8)


def test_argument_errors():
    with pytest.raises(ValueError, match="modes"):
        cr.check_grads(cnp.sin, (X,), modes=("sideways",))
    with pytest.raises(ValueError, match="order"):
        cr.check_grads(cnp.sin, (X,), order=0)
    with pytest.raises(TypeError, match="int64"):
        cr.check_grads(cnp.sin, (np.array([1, 2]),))
