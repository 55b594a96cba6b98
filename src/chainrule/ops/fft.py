"""``numpy.fft``, differentiable: ``chainrule.numpy.fft``.

Three primitives carry every transform:

* ``fft_c2c`` -- ``fftn`` / ``ifftn`` over some axes (complex to complex);
* ``rfftn`` -- real input, half spectrum along the last transformed axis;
* ``irfftn`` -- half spectrum in, real output of given lengths.

Their rules are FFTs themselves (O(n log n); no DFT matrix is ever formed).
With chainrule's complex convention (a cotangent ``g`` acts on a tangent
``t`` as ``Re(sum(g * t))``, API section 11) the reverse rule of a linear map
is its transpose, with no conjugation.  The DFT matrix is symmetric, so the
transpose of ``fftn``/``ifftn`` is the same transform; the transposes of
``rfft`` and ``irfft`` are each other's, conjugated and weighted by how often
each bin appears in the full spectrum (the interior bins twice), with the
normalisation swapped (``backward`` <-> ``forward``, ``ortho`` stays).

The public functions (NumPy's names and signatures) pad or truncate with
differentiable ``pad`` / indexing first, so the primitives always transform
arrays of exactly the lengths they produce.  As in JAX, repeated axes raise
``ValueError``.

>>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
>>> x = np.array([1.0, 2.0, 0.0, -1.0])
>>> bool(np.allclose(cnp.fft.rfft(x), np.fft.rfft(x)))
True
>>> cr.grad(lambda x: cnp.sum(cnp.abs(cnp.fft.fft(x)) ** 2))(np.ones(3))   # 2 n x
array([6., 6., 6.])
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.primitive import Box, Primitive, node_of, primitive
from .elementwise import conj, is_complex, real
from .indexing import getitem
from .shape import pad as _pad
from .shape import roll

__all__ = [
    "fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2",
    "rfftn", "irfftn", "hfft", "ihfft", "fftshift", "ifftshift", "fftfreq", "rfftfreq",
]

_NORMS = {None: "backward", "backward": "backward", "ortho": "ortho", "forward": "forward"}
#: the normalisation of the transpose: the scale moves to the other direction
_DUAL = {"backward": "forward", "ortho": "ortho", "forward": "backward"}


# --- the primitives ----------------------------------------------------------------------------

def _c2c_impl(xp, x, axes, norm, inverse):
    return (xp.fft.ifftn if inverse else xp.fft.fftn)(x, axes=axes, norm=norm)


def _c2c_np(x, axes, norm, inverse):
    if len(axes) == 1:
        return (np.fft.ifft if inverse else np.fft.fft)(x, axis=axes[0], norm=norm)
    return (np.fft.ifftn if inverse else np.fft.fftn)(x, axes=axes, norm=norm)


def _c2c_rule(t, out, x, axes, norm, inverse):
    # linear, and the DFT matrix is symmetric: the tangent map and its transpose are both the
    # transform itself
    return fft_c2c(t, axes=axes, norm=norm, inverse=inverse)


fft_c2c = primitive("fft_c2c", _c2c_impl, _c2c_np, vjp=(_c2c_rule,), jvp=(_c2c_rule,))


def _rfftn_impl(xp, x, axes, norm):
    return xp.fft.rfftn(x, axes=axes, norm=norm)


def _rfftn_np(x, axes, norm):
    if len(axes) == 1:
        return np.fft.rfft(x, axis=axes[0], norm=norm)
    return np.fft.rfftn(x, axes=axes, norm=norm)


def _interior(n: int, axis: int) -> tuple:
    """The index of the interior bins of a half spectrum of length ``n // 2 + 1`` along
    (negative) ``axis``: all but the zero-frequency bin and the Nyquist bin (even ``n``)."""
    m = n // 2 + 1
    return (Ellipsis, slice(1, m - 1 if n % 2 == 0 else m)) + (slice(None),) * (-axis - 1)


def _conj_weighted_np(g, n, axis, interior):
    out = np.conj(g)  # a new array: scaled in place
    out[_interior(n, axis)] *= interior
    return out


def _conj_weighted_impl(xp, g, n, axis, interior):
    m = n // 2 + 1
    w = np.full(m, interior)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    w = xp.asarray(w.reshape((m,) + (1,) * (-axis - 1)), dtype=xp.real(g).dtype)
    return xp.conj(g) * w


def _conj_weighted_rule(t, out, g, n, axis, interior):
    # real-linear, and its own transpose: Re(c conj(g) w) = Re(conj(c) w g)
    return conj_weighted(t, n=n, axis=axis, interior=interior)


#: ``conj(g)`` with the interior bins of a half spectrum scaled by ``interior`` (one pass)
conj_weighted = primitive("fft_conj_weighted", _conj_weighted_impl, _conj_weighted_np,
                          vjp=(_conj_weighted_rule,), jvp=(_conj_weighted_rule,))


def _rfftn_vjp(g, out, x, axes, norm):
    if len(axes) > 1:  # rfftn = (fft over the other axes) o (rfft along the last one)
        g = fft_c2c(g, axes=axes[:-1], norm=norm, inverse=False)
    n = x.shape[axes[-1]]
    # transpose of rfft: Re(sum_k g_k w^(jk)) over the half spectrum, which is irfft of
    # conj(g) with the interior bins halved (irfft counts them twice)
    h = conj_weighted(g, n=n, axis=axes[-1], interior=0.5)
    return irfftn_p(h, axes=axes[-1:], s=(n,), norm=_DUAL[norm])


rfftn_p: Primitive = primitive(
    "rfftn", _rfftn_impl, _rfftn_np,
    vjp=(_rfftn_vjp,),
    jvp=(lambda t, out, x, axes, norm: rfftn_p(t, axes=axes, norm=norm),),
)


def _irfftn_impl(xp, x, axes, s, norm):
    return xp.fft.irfftn(x, s=s, axes=axes, norm=norm)


def _irfftn_np(x, axes, s, norm):
    if len(axes) == 1:
        return np.fft.irfft(x, n=s[0], axis=axes[0], norm=norm)
    return np.fft.irfftn(x, s=s, axes=axes, norm=norm)


def _irfftn_vjp(g, out, x, axes, s, norm):
    if is_complex(g):  # the output is real: only the real part of its cotangent acts
        g = real(g)
    n = s[-1]
    # transpose of irfft: conj(rfft(g)) with the interior bins doubled (irfft reads each of them
    # twice, and the imaginary parts of the zero and Nyquist bins not at all)
    h = conj_weighted(rfftn_p(g, axes=axes[-1:], norm=_DUAL[norm]), n=n, axis=axes[-1],
                      interior=2.0)
    if len(axes) > 1:  # irfftn = (irfft along the last axis) o (ifft over the other axes)
        h = fft_c2c(h, axes=axes[:-1], norm=norm, inverse=True)
    return h


irfftn_p: Primitive = primitive(
    "irfftn", _irfftn_impl, _irfftn_np,
    vjp=(_irfftn_vjp,),
    jvp=(lambda t, out, x, axes, s, norm: irfftn_p(t, axes=axes, s=s, norm=norm),),
)


# --- arguments ----------------------------------------------------------------------------------

def _arr(a: Any) -> Any:
    if isinstance(a, Box) or (hasattr(a, "shape") and hasattr(a, "dtype")):
        return a
    return np.asarray(a)


def _norm(norm: Any, fname: str) -> str:
    try:
        return _NORMS[norm]
    except (KeyError, TypeError):
        raise ValueError(
            f'{fname}: invalid norm {norm!r}; use "backward" (the default), "ortho" or "forward"'
        ) from None


def _axis(ax: Any, ndim: int, fname: str) -> int:
    try:
        ax = operator.index(ax)
    except TypeError:
        raise TypeError(f"{fname}: an axis must be an int, got {ax!r}") from None
    if not -ndim <= ax < ndim:
        raise np.exceptions.AxisError(ax, ndim, fname)
    return ax % ndim - ndim  # negative: leading batch axes of tangents stay in front


def _plan(fname: str, a: Any, s: Any, axes: Any) -> tuple[tuple[int, ...], list[int] | None]:
    """NumPy's rules for ``s`` and ``axes``: the (negative) axes and the requested lengths."""
    ndim = len(a.shape)
    if s is not None:
        s = [operator.index(n) for n in (s if isinstance(s, Sequence) else (s,))]
    if axes is None:
        axes = range(ndim) if s is None else range(ndim - len(s), ndim)
        if s is not None and len(s) > ndim:
            raise ValueError(f"{fname}: s={tuple(s)} has more entries than the input has axes "
                             f"(shape {tuple(a.shape)})")
    elif not isinstance(axes, Sequence):
        axes = (axes,)
    axes = tuple(_axis(ax, ndim, fname) for ax in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(
            f"{fname}: repeated axes {axes} are not supported (the transform would be applied "
            "twice along one axis); transform once per call instead"
        )
    if s is not None:
        if len(s) != len(axes):
            raise ValueError(f"{fname}: s and axes must have the same length, got s={tuple(s)} "
                             f"and axes={axes}")
        s = [a.shape[ax] if n == -1 else n for n, ax in zip(s, axes)]
        for n in s:
            if n < 1:
                raise ValueError(f"{fname}: invalid number of FFT data points ({n}) in s")
    return axes, s


def _resize(fname: str, a: Any, axes: Sequence[int], sizes: Sequence[int]) -> Any:
    """Truncate or zero-pad ``a`` at the end of each axis to the given length."""
    ndim = len(a.shape)
    cut = [slice(None)] * ndim
    widths = [(0, 0)] * ndim
    for ax, n in zip(axes, sizes):
        if n < 1:
            raise ValueError(f"{fname}: invalid number of FFT data points ({n})")
        cur = a.shape[ax]
        if n < cur:
            cut[ax] = slice(0, n)
        elif n > cur:
            widths[ax] = (0, n - cur)
    if any(c != slice(None) for c in cut):
        a = getitem(a, tuple(cut)) if isinstance(a, Box) else a[tuple(cut)]
    if any(w != (0, 0) for w in widths):
        a = _pad(a, widths)
    return a


def _need_real(fname: str, a: Any, instead: str) -> None:
    if is_complex(a):
        raise TypeError(
            f"{fname}: the input must be real, got dtype {a.dtype}; use {instead} for complex "
            "input (or take cnp.real first)"
        )


# --- complex to complex --------------------------------------------------------------------------

def _c2c(fname: str, a: Any, s: Any, axes: Any, norm: Any, inverse: bool) -> Any:
    a = _arr(a)
    norm = _norm(norm, fname)
    axes, s = _plan(fname, a, s, axes)
    if s is not None:
        a = _resize(fname, a, axes, s)
    return fft_c2c(a, axes=axes, norm=norm, inverse=inverse)


def fft(a: Any, n: int | None = None, axis: int = -1, norm: str | None = None) -> Any:
    """One-dimensional discrete Fourier transform (``numpy.fft.fft``), differentiable.

    ``n`` pads with zeros or truncates ``a`` along ``axis`` first; ``norm``
    is ``"backward"`` (default), ``"ortho"`` or ``"forward"``.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.fft(np.array([1.0, 0.0, 0.0, 0.0]))
    array([1.+0.j, 1.+0.j, 1.+0.j, 1.+0.j])
    """
    return _c2c("fft", a, None if n is None else (n,), (axis,), norm, False)


def ifft(a: Any, n: int | None = None, axis: int = -1, norm: str | None = None) -> Any:
    """Inverse of :func:`fft` (``numpy.fft.ifft``), differentiable.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.ifft(np.array([4.0, 0.0, 0.0, 0.0])).real
    array([1., 1., 1., 1.])
    """
    return _c2c("ifft", a, None if n is None else (n,), (axis,), norm, True)


def fftn(a: Any, s: Sequence[int] | None = None, axes: Sequence[int] | None = None,
         norm: str | None = None) -> Any:
    """N-dimensional discrete Fourier transform (``numpy.fft.fftn``), differentiable.

    ``axes`` defaults to all axes (or the last ``len(s)``); ``s`` gives the
    lengths to pad or truncate to (``-1`` keeps an axis as it is).

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.fftn(np.ones((2, 2))).real
    array([[4., 0.],
           [0., 0.]])
    """
    return _c2c("fftn", a, s, axes, norm, False)


def ifftn(a: Any, s: Sequence[int] | None = None, axes: Sequence[int] | None = None,
          norm: str | None = None) -> Any:
    """Inverse of :func:`fftn` (``numpy.fft.ifftn``), differentiable.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.ifftn(np.array([[4.0, 0.0], [0.0, 0.0]])).real
    array([[1., 1.],
           [1., 1.]])
    """
    return _c2c("ifftn", a, s, axes, norm, True)


def fft2(a: Any, s: Sequence[int] | None = None, axes: Sequence[int] = (-2, -1),
         norm: str | None = None) -> Any:
    """Two-dimensional FFT over ``axes`` (``numpy.fft.fft2``), differentiable.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.fft2(np.ones((2, 2))).real
    array([[4., 0.],
           [0., 0.]])
    """
    return _c2c("fft2", a, s, axes, norm, False)


def ifft2(a: Any, s: Sequence[int] | None = None, axes: Sequence[int] = (-2, -1),
          norm: str | None = None) -> Any:
    """Inverse of :func:`fft2` (``numpy.fft.ifft2``), differentiable.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.ifft2(np.array([[4.0, 0.0], [0.0, 0.0]])).real
    array([[1., 1.],
           [1., 1.]])
    """
    return _c2c("ifft2", a, s, axes, norm, True)


# --- real input, half spectrum -------------------------------------------------------------------

def _r2c(fname: str, a: Any, s: Any, axes: Any, norm: Any) -> Any:
    a = _arr(a)
    norm = _norm(norm, fname)
    _need_real(fname, a, "fft" if fname == "rfft" else "fftn")
    axes, s = _plan(fname, a, s, axes)
    if not axes:
        raise ValueError(f"{fname}: at least one axis must be transformed")
    if s is not None:
        a = _resize(fname, a, axes, s)
    return rfftn_p(a, axes=axes, norm=norm)


def rfft(a: Any, n: int | None = None, axis: int = -1, norm: str | None = None) -> Any:
    """FFT of real input, the ``n // 2 + 1`` non-negative frequencies (``numpy.fft.rfft``).

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.rfft(np.array([1.0, 1.0, 1.0, 1.0])).real
    array([4., 0., 0.])
    """
    return _r2c("rfft", a, None if n is None else (n,), (axis,), norm)


def rfftn(a: Any, s: Sequence[int] | None = None, axes: Sequence[int] | None = None,
          norm: str | None = None) -> Any:
    """N-dimensional FFT of real input (``numpy.fft.rfftn``): half spectrum along the last axis.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.rfftn(np.ones((2, 4))).shape
    (2, 3)
    """
    return _r2c("rfftn", a, s, axes, norm)


def rfft2(a: Any, s: Sequence[int] | None = None, axes: Sequence[int] = (-2, -1),
          norm: str | None = None) -> Any:
    """Two-dimensional FFT of real input (``numpy.fft.rfft2``), differentiable.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.rfft2(np.ones((2, 2))).real
    array([[4., 0.],
           [0., 0.]])
    """
    return _r2c("rfft2", a, s, axes, norm)


def _odd_half_spectrum(a: Any, last: int) -> int | None:
    """The odd length ``n`` whose ``rfft`` along ``last`` made ``a`` (recorded values only)."""
    while isinstance(a, Box):
        node = node_of(a)  # the recorded operation (its inputs' values or their shapes)
        vals = getattr(node, "_vals", None)
        if node is not None and node._prim is rfftn_p and vals and \
                node._params["axes"][-1] == last:
            n = vals[0].shape[last]
            return n if n % 2 else None
        a = a.data
    return None


def _c2r(fname: str, a: Any, s: Any, axes: Any, norm: Any) -> Any:
    a = _arr(a)
    norm = _norm(norm, fname)
    given = s is not None
    axes, s = _plan(fname, a, s, axes)
    if not axes:
        raise ValueError(f"{fname}: at least one axis must be transformed")
    if not given:
        n_odd = _odd_half_spectrum(a, axes[-1])
        if n_odd is not None:
            raise ValueError(
                f"{fname}: the input is the half spectrum of an axis of odd length {n_odd}, "
                f"but without {'n' if fname in ('irfft', 'hfft') else 's'} the inverse "
                f"assumes the even length {2 * (a.shape[axes[-1]] - 1)}; pass "
                f"{'n' if fname in ('irfft', 'hfft') else 's'} with the length wanted"
            )
        s = [a.shape[ax] for ax in axes]
        s[-1] = 2 * (s[-1] - 1)
        if s[-1] < 1:
            raise ValueError(f"{fname}: invalid number of data points ({s[-1]}): the input has "
                             f"{a.shape[axes[-1]]} entries along axis {axes[-1]}; pass the "
                             "output length")
    # the half spectrum of an output of length n has n // 2 + 1 bins
    a = _resize(fname, a, axes, list(s[:-1]) + [s[-1] // 2 + 1])
    return irfftn_p(a, axes=axes, s=tuple(s), norm=norm)


def irfft(a: Any, n: int | None = None, axis: int = -1, norm: str | None = None) -> Any:
    """Inverse of :func:`rfft` (``numpy.fft.irfft``): a real signal of length ``n``
    (default ``2 * (m - 1)`` for ``m`` input bins; give ``n`` for an odd length).

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.irfft(np.array([4.0, 0.0, 0.0]))
    array([1., 1., 1., 1.])
    """
    return _c2r("irfft", a, None if n is None else (n,), (axis,), norm)


def irfftn(a: Any, s: Sequence[int] | None = None, axes: Sequence[int] | None = None,
           norm: str | None = None) -> Any:
    """Inverse of :func:`rfftn` (``numpy.fft.irfftn``), differentiable.

    Without ``s`` the last axis has ``2 * (m - 1)`` points; the half spectrum of an
    odd-length axis made by :func:`rfftn` then raises ``ValueError`` (pass ``s``).

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.irfftn(np.array([[8.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.]])
    """
    return _c2r("irfftn", a, s, axes, norm)


def irfft2(a: Any, s: Sequence[int] | None = None, axes: Sequence[int] = (-2, -1),
           norm: str | None = None) -> Any:
    """Inverse of :func:`rfft2` (``numpy.fft.irfft2``), differentiable.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.irfft2(np.array([[4.0, 0.0], [0.0, 0.0]]))
    array([[1., 1.],
           [1., 1.]])
    """
    return _c2r("irfft2", a, s, axes, norm)


def hfft(a: Any, n: int | None = None, axis: int = -1, norm: str | None = None) -> Any:
    """FFT of a signal with Hermitian symmetry given by its first half (``numpy.fft.hfft``):
    a real spectrum of length ``n`` (default ``2 * (m - 1)``).

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.hfft(np.array([1.0, 0.0, 0.0]))
    array([1., 1., 1., 1.])
    """
    norm = _DUAL[_norm(norm, "hfft")]
    return _c2r("hfft", conj(_arr(a)), None if n is None else (n,), (axis,), norm)


def ihfft(a: Any, n: int | None = None, axis: int = -1, norm: str | None = None) -> Any:
    """Inverse of :func:`hfft` (``numpy.fft.ihfft``): real input, half spectrum out.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.ihfft(np.array([1.0, 1.0, 1.0, 1.0])).real
    array([1., 0., 0.])
    """
    a = _arr(a)
    _need_real("ihfft", a, "ifft")
    norm = _DUAL[_norm(norm, "ihfft")]
    return conj(_r2c("ihfft", a, None if n is None else (n,), (axis,), norm))


# --- shifts and frequencies ----------------------------------------------------------------------

def _shift(fname: str, x: Any, axes: Any, sign: int) -> Any:
    x = _arr(x)
    ndim = len(x.shape)
    if axes is None:
        axes = tuple(range(ndim))
    elif not isinstance(axes, Sequence):
        axes = (axes,)
    axes = tuple(_axis(ax, ndim, fname) for ax in axes)
    if not axes:
        return x
    shifts = tuple(sign * (x.shape[ax] // 2) for ax in axes)
    return roll(x, shifts, axes)


def fftshift(x: Any, axes: int | Sequence[int] | None = None) -> Any:
    """Move the zero frequency to the centre (``numpy.fft.fftshift``), differentiable.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.fftshift(np.arange(5.0))
    array([3., 4., 0., 1., 2.])
    """
    return _shift("fftshift", x, axes, 1)


def ifftshift(x: Any, axes: int | Sequence[int] | None = None) -> Any:
    """Inverse of :func:`fftshift` (``numpy.fft.ifftshift``), differentiable.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> cnp.fft.ifftshift(np.array([3.0, 4.0, 0.0, 1.0, 2.0]))
    array([0., 1., 2., 3., 4.])
    """
    return _shift("ifftshift", x, axes, -1)


def fftfreq(n: int, d: float = 1.0) -> np.ndarray:
    """Sample frequencies of :func:`fft` (``numpy.fft.fftfreq``; a plain array).

    >>> import chainrule.numpy as cnp
    >>> cnp.fft.fftfreq(4)
    array([ 0.  ,  0.25, -0.5 , -0.25])
    """
    return np.fft.fftfreq(n, d)


def rfftfreq(n: int, d: float = 1.0) -> np.ndarray:
    """Sample frequencies of :func:`rfft` (``numpy.fft.rfftfreq``; a plain array).

    >>> import chainrule.numpy as cnp
    >>> cnp.fft.rfftfreq(4)
    array([0.  , 0.25, 0.5 ])
    """
    return np.fft.rfftfreq(n, d)
