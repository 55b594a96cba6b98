"""``chainrule.numpy.fft``: values equal to ``numpy.fft``'s and derivatives in both modes.

Every function is a row of the table: values against NumPy over ``n`` / ``s`` padding and
truncation, ``axis`` / ``axes`` and the three normalisations; derivatives by
``check_grads(order=2, modes=("fwd", "rev"))`` on real and complex inputs (complex ones are
perturbed along the real and the imaginary direction, API section 11).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.ops import fft as F

_rng = np.random.default_rng(4242)


def rnd(*shape):
    return _rng.standard_normal(shape)


def crnd(*shape):
    return _rng.standard_normal(shape) + 1j * _rng.standard_normal(shape)


@dataclass
class Case:
    name: str                    # the cnp.fft / numpy.fft function
    args: tuple                  # arrays
    kw: dict
    id: str

    @property
    def fn(self) -> Callable[..., Any]:
        return lambda *a: getattr(cnp.fft, self.name)(*a, **self.kw)

    @property
    def ref(self) -> Callable[..., Any]:
        return lambda *a: getattr(np.fft, self.name)(*a, **self.kw)


CASES: list[Case] = []
NORMS = [{}, {"norm": "ortho"}, {"norm": "forward"}, {"norm": "backward"}]

for name in ("fft", "ifft"):
    for kw in NORMS:
        CASES.append(Case(name, (crnd(5),), kw, f"{name}-c5-{kw.get('norm')}"))
    CASES += [Case(name, (rnd(4),), {}, f"{name}-real"),
              Case(name, (crnd(2, 3),), {"axis": 0}, f"{name}-axis0"),
              Case(name, (crnd(3, 4),), {"n": 6}, f"{name}-pad"),
              Case(name, (crnd(3, 4),), {"n": 3, "axis": 0, "norm": "ortho"}, f"{name}-trunc")]
for name in ("fftn", "ifftn", "fft2", "ifft2"):
    for kw in NORMS[:3]:
        CASES.append(Case(name, (crnd(2, 3, 4),), kw, f"{name}-{kw.get('norm')}"))
    CASES += [Case(name, (rnd(3, 4),), {}, f"{name}-real"),
              Case(name, (crnd(2, 3, 4),), {"s": (4, 2)}, f"{name}-s"),
              Case(name, (crnd(2, 3, 4),), {"axes": (0, 2)}, f"{name}-axes"),
              Case(name, (crnd(2, 3, 4),), {"s": (3, 5), "axes": (2, 0), "norm": "ortho"},
                   f"{name}-s-axes")]
CASES += [Case("fftn", (crnd(2, 3),), {"axes": (1,)}, "fftn-one-axis"),
          Case("fftn", (crnd(2, 3, 4),), {"s": (-1, 5)}, "fftn-s-minus-one")]
for name in ("rfft",):
    for kw in NORMS:
        CASES += [Case(name, (rnd(6),), kw, f"{name}-even-{kw.get('norm')}"),
                  Case(name, (rnd(7),), kw, f"{name}-odd-{kw.get('norm')}")]
    CASES += [Case(name, (rnd(3, 4),), {"axis": 0}, f"{name}-axis0"),
              Case(name, (rnd(2, 5),), {"n": 8}, f"{name}-pad"),
              Case(name, (rnd(2, 5),), {"n": 3}, f"{name}-trunc"),
              Case(name, (rnd(1),), {}, f"{name}-n1"),
              Case(name, (rnd(2),), {}, f"{name}-n2")]
for name in ("irfft", "hfft"):
    for kw in NORMS:
        CASES.append(Case(name, (crnd(4),), kw, f"{name}-{kw.get('norm')}"))
    CASES += [Case(name, (crnd(4),), {"n": 7}, f"{name}-odd-n"),
              Case(name, (crnd(4),), {"n": 4}, f"{name}-trunc"),
              Case(name, (crnd(4),), {"n": 12, "norm": "ortho"}, f"{name}-pad"),
              Case(name, (crnd(3, 2),), {"axis": 0}, f"{name}-axis0"),
              Case(name, (rnd(4),), {}, f"{name}-real-input")]
for kw in NORMS:
    CASES += [Case("ihfft", (rnd(6),), kw, f"ihfft-{kw.get('norm')}"),
              Case("ihfft", (rnd(5),), kw, f"ihfft-odd-{kw.get('norm')}")]
CASES += [Case("ihfft", (rnd(2, 5),), {"n": 4, "axis": 1}, "ihfft-trunc")]
for name in ("rfftn", "rfft2"):
    for kw in NORMS[:3]:
        CASES += [Case(name, (rnd(2, 3, 4),), kw, f"{name}-{kw.get('norm')}"),
                  Case(name, (rnd(2, 3, 5),), kw, f"{name}-odd-{kw.get('norm')}")]
    CASES += [Case(name, (rnd(2, 3, 4),), {"s": (4, 3)}, f"{name}-s"),
              Case(name, (rnd(2, 3, 4),), {"axes": (2, 0)}, f"{name}-axes")]
for name in ("irfftn", "irfft2"):
    for kw in NORMS[:3]:
        CASES += [Case(name, (crnd(2, 3, 4),), kw, f"{name}-{kw.get('norm')}")]
    CASES += [Case(name, (crnd(2, 3, 4),), {"s": (4, 5)}, f"{name}-s-odd"),
              Case(name, (crnd(2, 3, 4),), {"s": (2, 6), "norm": "ortho"}, f"{name}-s-even"),
              Case(name, (crnd(2, 3, 4),), {"axes": (2, 0), "s": (3, 3)}, f"{name}-axes")]
for name in ("fftshift", "ifftshift"):
    CASES += [Case(name, (crnd(5),), {}, f"{name}-c"),
              Case(name, (rnd(3, 4),), {}, f"{name}-all"),
              Case(name, (rnd(3, 4),), {"axes": 0}, f"{name}-axis0"),
              Case(name, (crnd(3, 5),), {"axes": (1,)}, f"{name}-axes")]


@pytest.mark.filterwarnings("ignore:`axes` should not be `None`")  # NumPy 2, s without axes
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_values_equal_numpy_fft(case):
    want = case.ref(*case.args)
    got = case.fn(*case.args)
    assert isinstance(got, np.ndarray)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    out, _ = cr.vjp(case.fn, *case.args)          # the traced path too
    assert_allclose(out, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_derivatives_match_finite_differences(case):
    cr.check_grads(case.fn, case.args, order=2, modes=("fwd", "rev"))


def test_every_function_has_a_case():
    covered = {c.name for c in CASES} | {"fftfreq", "rfftfreq"}
    assert set(F.__all__) <= covered, set(F.__all__) - covered


def test_float32_stays_single_precision():
    x = rnd(8).astype(np.float32)
    y = cnp.fft.rfft(x)
    assert y.dtype == np.complex64
    g = cr.grad(lambda x: cnp.sum(cnp.abs(cnp.fft.rfft(x)) ** 2))(x)
    assert g.dtype == np.float32
    assert_allclose(g, 2 * 8 * x * 0 + cr.grad(
        lambda x: cnp.sum(cnp.abs(cnp.fft.rfft(x)) ** 2))(x.astype(np.float64)), rtol=1e-4)


def test_issue_example_and_parseval():
    g = cr.grad(lambda x: cnp.sum(cnp.abs(cnp.fft.fft(x)) ** 2))(np.ones(3))
    assert_allclose(g, [6.0, 6.0, 6.0])              # sum |fft x|^2 = n sum x^2
    x = rnd(9)
    assert_allclose(cr.grad(lambda x: cnp.sum(cnp.abs(cnp.fft.fft(x, norm="ortho")) ** 2))(x),
                    2 * x)
    z = crnd(6)    # real function of a complex input: df/dx - i df/dy = 2 n conj(z)
    assert_allclose(cr.grad(lambda z: cnp.sum(cnp.abs(cnp.fft.fft(z)) ** 2))(z),
                    2 * 6 * np.conj(z))


def test_holomorphic_derivative_of_a_linear_transform():
    z = crnd(4)
    J = cr.jacfwd(cnp.fft.fft, holomorphic=True)(z)
    assert_allclose(J, np.fft.fft(np.eye(4), axis=0))
    J = cr.jacrev(cnp.fft.ifft, holomorphic=True)(z)
    assert_allclose(J, np.fft.ifft(np.eye(4), axis=0))


def test_against_reference_libraries():
    torch = pytest.importorskip("torch")
    x = rnd(10)
    w = rnd(6)
    g = cr.grad(lambda x: cnp.sum(cnp.abs(cnp.fft.rfft(x)) ** 2 * w))(x)
    xt = torch.tensor(x, requires_grad=True)
    (torch.fft.rfft(xt).abs() ** 2 * torch.tensor(w)).sum().backward()
    assert_allclose(g, xt.grad.numpy(), rtol=1e-10)
    z = crnd(5)      # torch's complex gradient is the conjugate of this convention's
    g = cr.grad(lambda z: cnp.sum(cnp.real(cnp.fft.ifft(z)) * w[:5] + cnp.abs(cnp.fft.fft(z))))(z)
    zt = torch.tensor(z, requires_grad=True)
    (torch.fft.ifft(zt).real * torch.tensor(w[:5]) + torch.fft.fft(zt).abs()).sum().backward()
    assert_allclose(g, np.conj(zt.grad.numpy()), rtol=1e-10)


def test_large_transforms_form_no_dense_matrix():
    # a DFT matrix of this size would need 2^32 entries; the rules are FFTs
    x = rnd(2 ** 16)
    g = cr.grad(lambda x: cnp.sum(cnp.fft.irfft(cnp.fft.rfft(x) * 0.5)))(x)
    assert_allclose(g, np.full_like(x, 0.5))
    _, t = cr.jvp(lambda x: cnp.fft.fft(x), (x,), (x,))
    assert_allclose(t, np.fft.fft(x))


def test_errors():
    x = rnd(4, 4)
    for fn in (cnp.fft.fftn, cnp.fft.ifftn, cnp.fft.rfftn, cnp.fft.irfftn, cnp.fft.fft2):
        with pytest.raises(ValueError, match="repeated axes"):
            fn(x, axes=(0, 0))
        with pytest.raises(ValueError, match="repeated axes"):
            fn(x, axes=(1, -1))
    with pytest.raises(ValueError, match="norm"):
        cnp.fft.fft(x, norm="sideways")
    with pytest.raises(np.exceptions.AxisError):
        cnp.fft.fft(x, axis=2)
    with pytest.raises(TypeError, match="must be real"):
        cnp.fft.rfft(crnd(4))
    with pytest.raises(ValueError, match="invalid number"):
        cnp.fft.fft(x, n=0)
    with pytest.raises(ValueError, match="same length"):
        cnp.fft.fftn(x, s=(2, 2), axes=(0,))


def test_irfftn_of_an_odd_half_spectrum_needs_s():
    x = rnd(3, 5)

    def roundtrip(x, **kw):
        return cnp.fft.irfftn(cnp.fft.rfftn(x), **kw)

    with pytest.raises(ValueError, match="odd length 5"):
        cr.grad(lambda x: cnp.sum(roundtrip(x)))(x)
    with pytest.raises(ValueError, match="odd length 5"):
        cr.grad(lambda x: cnp.sum(cnp.fft.irfft(cnp.fft.rfft(x))))(x)
    g = cr.grad(lambda x: cnp.sum(roundtrip(x, s=x.shape) * x))(x)
    assert_allclose(g, 2 * x)
    even = rnd(3, 4)            # even lengths are not ambiguous
    assert_allclose(roundtrip(even), even)
    assert_allclose(cr.grad(lambda x: cnp.sum(roundtrip(x) * x))(even), 2 * even)


def test_frequencies_are_numpys():
    assert_allclose(cnp.fft.fftfreq(7, 0.1), np.fft.fftfreq(7, 0.1))
    assert_allclose(cnp.fft.rfftfreq(8, 2.0), np.fft.rfftfreq(8, 2.0))


@pytest.mark.parametrize("n,axis", [(6, -1), (7, -1), (4, -2), (1, -1), (2, -1)])
def test_weighted_conjugate_primitive(n, axis):
    shape = (n // 2 + 1, 2) if axis == -2 else (2, n // 2 + 1)
    g = crnd(*shape)
    for interior in (0.5, 2.0):
        out = F.conj_weighted(g, n=n, axis=axis, interior=interior)
        want = np.conj(g)
        idx = F._interior(n, axis)
        want[idx] *= interior
        assert_allclose(out, want)
        cr.check_grads(lambda g, w=interior: F.conj_weighted(g, n=n, axis=axis, interior=w),
                       (g,))
