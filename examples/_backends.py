"""The two libraries the examples run on: chainrule, or HIPS autograd for comparison.

Each example is written once against a small namespace (``lib.np``,
``lib.grad``, ``lib.stats``, ``lib.special``, ``lib.odeint``, ``lib.adam``),
so the same program, with the same seeds, runs on either library.
"""

from __future__ import annotations

from types import SimpleNamespace


def chainrule_lib() -> SimpleNamespace:
    """chainrule's ``numpy``, transforms, ``scipy`` and functional optimisers."""
    import chainrule as cr
    import chainrule.numpy as cnp
    import chainrule.scipy as crs

    return SimpleNamespace(name="chainrule", np=cnp, grad=cr.grad,
                           value_and_grad=cr.value_and_grad, stats=crs.stats,
                           special=crs.special, odeint=crs.integrate.odeint,
                           adam=cr.optimize.adam, args=tuple)


def autograd_lib() -> SimpleNamespace:
    """HIPS autograd's counterparts (for the comparison tests; not a dependency)."""
    import autograd
    import autograd.numpy as anp
    import autograd.scipy.special as asp
    import autograd.scipy.stats as ast
    from autograd.builtins import tuple as atuple
    from autograd.misc.optimizers import adam
    from autograd.scipy.integrate import odeint

    return SimpleNamespace(name="autograd", np=anp, grad=autograd.grad,
                           value_and_grad=autograd.value_and_grad, stats=ast, special=asp,
                           odeint=odeint, adam=adam, args=atuple)


def get(name: str) -> SimpleNamespace:
    """The library called ``name`` (``"chainrule"`` or ``"autograd"``)."""
    if name == "chainrule":
        return chainrule_lib()
    if name == "autograd":
        return autograd_lib()
    raise ValueError(f"unknown library {name!r}: use 'chainrule' or 'autograd'")


def plt_module():
    """matplotlib's pyplot on a non-interactive backend (examples only write files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
