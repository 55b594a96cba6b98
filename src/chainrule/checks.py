"""``check_grads``: derivatives from AD against central finite differences.

For each mode and each order up to ``order`` the directional derivative in a
random direction is compared with central differences
``(f(x + eps v) - f(x - eps v)) / (2 eps)``:

* ``"fwd"``: ``jvp(f, x, v)`` against the differences, output by output;
* ``"rev"``: with a random output cotangent ``u``, the inner product
  ``<vjp(u), v>`` against ``<u, differences>``.

Order 2 applies the same checks to the derivative functions, as JAX's
``check_grads`` does: the function ``(x, t) -> jvp(f, x, t)`` (forward over
forward, reverse over forward) and ``x -> vjp(f, x)(u)`` (forward over
reverse, reverse over reverse); order 3 goes one level deeper, and so on.

The comparison is two-sided (a derivative that is too large fails as surely
as one that is too small): ``|ad - fd| <= atol + rtol * scale + noise``
where ``scale`` is ``|fd|`` elementwise (forward) or the sum of the absolute
terms of the inner product (reverse), and ``noise`` is an estimate of the
rounding error of the differences (a few ulps of ``f`` divided by the step).

Complex arguments are perturbed along random complex directions (real and
imaginary parts both random), so the differences probe both the real and the
imaginary direction; the reverse check pairs cotangents with tangents as
``Re(sum(c * v))`` (the VJP is the transpose of the real-linear JVP, with no
conjugation: the convention of API section 11).

For float32 (or float16) arguments, when ``f`` follows the dtype of its
inputs the differences are taken in float64 at the same (exactly upcast)
point, which gives a far more accurate reference than float32 differences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .core.primitive import Box
from .pytree import tree_flatten, tree_unflatten
from .transforms import jvp, vjp

__all__ = ["check_grads"]

#: default (step eps, rtol, atol) by the least precise floating dtype involved.
_DEFAULTS = {
    np.dtype(np.float64): (1e-6, 1e-5, 1e-5),
    np.dtype(np.float32): (1e-3, 2e-3, 2e-3),
    np.dtype(np.float16): (1e-2, 5e-2, 5e-2),
}
_DESC = {"fwd": "JVP", "rev": "VJP"}


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _np(x: Any) -> np.ndarray:
    x = _raw(x)
    if hasattr(x, "get") and not isinstance(x, np.ndarray):  # CuPy
        x = x.get()
    return np.asarray(x)


def _is_float(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.inexact)


def _wide(a: np.ndarray) -> np.ndarray:
    """``a`` in double precision (complex128 for complex data)."""
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def _real_pairing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The terms of ``Re(sum(a * b))``: how a cotangent acts on a tangent."""
    return np.real(_wide(a) * _wide(b))


class _Checker:
    def __init__(self, modes: Sequence[str], eps: float | None, rtol: float | None,
                 atol: float | None, seed: int) -> None:
        self.modes = tuple(modes)
        self.eps, self.rtol, self.atol = eps, rtol, atol
        self.rng = np.random.default_rng(seed)

    # --- helpers --------------------------------------------------------------------------
    def _tols(self, dtypes: list) -> tuple[float, float, float]:
        worst = np.dtype(np.float64)
        for d in dtypes:
            d = np.dtype(d)
            if np.issubdtype(d, np.inexact) and np.finfo(d).eps > np.finfo(worst).eps:
                worst = np.dtype(np.finfo(d).dtype)
        eps, rtol, atol = _DEFAULTS.get(worst, _DEFAULTS[np.dtype(np.float32)])
        return (self.eps if self.eps is not None else eps,
                self.rtol if self.rtol is not None else rtol,
                self.atol if self.atol is not None else atol)

    def _rand_like(self, leaves: list) -> list:
        out = []
        for x in leaves:
            a = _np(x)
            if not _is_float(a):
                out.append(np.zeros(a.shape, a.dtype))
            elif np.iscomplexobj(a):  # real and imaginary directions at once
                out.append((self.rng.standard_normal(a.shape)
                            + 1j * self.rng.standard_normal(a.shape)).astype(a.dtype))
            else:
                out.append(self.rng.standard_normal(a.shape).astype(a.dtype))
        return out

    def _numerical_jvp(self, f: Callable, args: tuple, direction: tuple, eps: float
                       ) -> tuple[list, list]:
        """Central differences of f at ``args`` along ``direction``: (fd leaves, noise)."""
        leaves, td = tree_flatten(args)
        dirs = tree_flatten(direction)[0]
        lo = [a for a in (_np(x) for x in leaves) if _is_float(a)]
        low_precision = any(np.finfo(a.dtype).eps > np.finfo(np.float64).eps for a in lo)
        if low_precision:
            up = self._try_float64(f, leaves, dirs, td)
            if up is not None:
                return up
        return self._differences(f, leaves, dirs, td, eps)

    def _try_float64(self, f, leaves, dirs, td):
        up = [_wide(_np(x)) if _is_float(_np(x)) else _np(x) for x in leaves]
        dup = [_wide(_np(d)) for d in dirs]
        try:
            outs = tree_flatten(f(*tree_unflatten(td, up)))[0]
        except Exception:  # f insists on its dtypes: fall back to differences in that dtype
            return None
        if not all(_np(o).dtype in (np.float64, np.complex128)
                   for o in outs if _is_float(_np(o))):
            return None
        eps = self.eps if self.eps is not None else _DEFAULTS[np.dtype(np.float64)][0]
        return self._differences(f, up, dup, td, eps)

    @staticmethod
    def _differences(f, leaves, dirs, td, eps):
        plus = [_np(x) + eps * _np(d) if _is_float(_np(x)) else _np(x)
                for x, d in zip(leaves, dirs)]
        minus = [_np(x) - eps * _np(d) if _is_float(_np(x)) else _np(x)
                 for x, d in zip(leaves, dirs)]
        fp = [_np(o) for o in tree_flatten(f(*tree_unflatten(td, plus)))[0]]
        fm = [_np(o) for o in tree_flatten(f(*tree_unflatten(td, minus)))[0]]
        fds, noises = [], []
        for a, b in zip(fp, fm):
            if not _is_float(a):
                fds.append(None)
                noises.append(None)
                continue
            a64, b64 = _wide(a), _wide(b)
            fds.append((a64 - b64) / (2 * eps))
            # Rounding in f(x +- eps v) is amplified by 1 / (2 eps) in the difference.
            noises.append(8 * np.finfo(a.dtype).eps * (np.abs(a64) + np.abs(b64)) / (2 * eps))
        return fds, noises

    # --- the checks -------------------------------------------------------------------------
    def check(self, f: Callable, args: tuple, order: int, path: tuple = ()) -> None:
        if "fwd" in self.modes:
            self.check_jvp(f, args, path + ("fwd",))
            if order > 1:
                tangent0 = tuple(tree_unflatten(tree_flatten(args)[1],
                                                self._rand_like(tree_flatten(args)[0])))

                def f_jvp(primals: Any, tangents: Any) -> Any:
                    return jvp(f, tuple(primals), tuple(tangents))

                self.check(f_jvp, (args, tangent0), order - 1, path + ("fwd",))
        if "rev" in self.modes:
            self.check_vjp(f, args, path + ("rev",))
            if order > 1:
                out_leaves, out_td = tree_flatten(f(*args))
                u = tree_unflatten(out_td, self._rand_like(out_leaves))

                def f_vjp(*primals: Any) -> Any:
                    return vjp(f, *primals)[1](u)

                self.check(f_vjp, args, order - 1, path + ("rev",))

    def _label(self, path: tuple) -> str:
        desc = " of ".join(_DESC[m] for m in reversed(path)) + " of f"
        return f"mode {path[-1]!r}, order {len(path)} ({desc})"

    def _check_values(self, got: list, want: list, rtol: float, atol: float, path: tuple) -> None:
        for i, (g, w) in enumerate(zip(got, want)):
            g, w = _np(g), _np(w)
            if g.shape != w.shape or not np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True):
                raise AssertionError(
                    f"check_grads: {self._label(path)}: the primal output {i} computed under "
                    f"the transform differs from f(*args): {_show(g)} vs {_show(w)}"
                )

    def check_jvp(self, f: Callable, args: tuple, path: tuple) -> None:
        leaves, td = tree_flatten(args)
        dirs = self._rand_like(leaves)
        direction = tree_unflatten(td, dirs)
        out, t_out = jvp(f, args, direction)
        out_leaves = tree_flatten(out)[0]
        ad = [_np(t) for t in tree_flatten(t_out)[0]]
        eps, rtol, atol = self._tols([_np(x).dtype for x in leaves] +
                                     [a.dtype for a in ad if _is_float(a)])
        self._check_values(out_leaves, tree_flatten(f(*args))[0], rtol, atol, path)
        fds, noises = self._numerical_jvp(f, args, direction, eps)
        for i, (a, fd, noise) in enumerate(zip(ad, fds, noises)):
            if fd is None:
                continue
            if a.shape != fd.shape:
                raise AssertionError(
                    f"check_grads: {self._label(path)}: output tangent {i} has shape {a.shape} "
                    f"but the output has shape {fd.shape}"
                )
            a64 = _wide(a)
            err = np.abs(a64 - fd)
            tol = atol + rtol * np.abs(fd) + noise
            bad = ~(err <= tol)  # NaN counts as a mismatch
            if np.any(bad):
                k = int(np.argmax(np.where(bad, err - tol, -np.inf))) if np.any(~np.isnan(err)) \
                    else 0
                raise AssertionError(
                    f"check_grads: {self._label(path)} mismatch in output {i} (shape "
                    f"{a.shape}): directional derivative by AD vs central differences "
                    f"(eps={eps:g}): {int(bad.sum())} of {bad.size} entries differ; worst at "
                    f"flat index {k}: AD {a64.ravel()[k]!r} vs numerical {fd.ravel()[k]!r} "
                    f"(|diff| {err.ravel()[k]:.3g} > tol {tol.ravel()[k]:.3g}; rtol={rtol:g}, "
                    f"atol={atol:g})\n  AD:        {_show(a64)}\n  numerical: {_show(fd)}"
                )

    def check_vjp(self, f: Callable, args: tuple, path: tuple) -> None:
        leaves, td = tree_flatten(args)
        out, pullback = vjp(f, *args)
        out_leaves, out_td = tree_flatten(out)
        eps, rtol, atol = self._tols([_np(x).dtype for x in leaves] +
                                     [_np(o).dtype for o in out_leaves if _is_float(_np(o))])
        self._check_values(out_leaves, tree_flatten(f(*args))[0], rtol, atol, path)
        dirs = self._rand_like(leaves)
        fds, noises = self._numerical_jvp(f, args, tree_unflatten(td, dirs), eps)
        us = self._rand_like(out_leaves)
        cts = [_np(c) for c in tree_flatten(pullback(tree_unflatten(out_td, us)))[0]]
        ip_ad = ip_fd = scale = noise = 0.0
        for c, v in zip(cts, dirs):
            if _is_float(v):
                if c.shape != v.shape:
                    raise AssertionError(
                        f"check_grads: {self._label(path)}: a cotangent has shape {c.shape} "
                        f"but its input has shape {v.shape}"
                    )
                terms = _real_pairing(c, v)
                ip_ad += float(np.sum(terms))
                scale += float(np.sum(np.abs(terms)))
        for u, fd, nz in zip(us, fds, noises):
            if fd is None:
                continue
            terms = _real_pairing(u, fd)
            ip_fd += float(np.sum(terms))
            scale += float(np.sum(np.abs(terms)))
            noise += float(np.sum(np.abs(_wide(u)) * nz))
        scale *= 0.5  # the two sums each estimate the size of the inner product's terms
        tol = atol + rtol * scale + noise
        err = abs(ip_ad - ip_fd)
        if not err <= tol:
            raise AssertionError(
                f"check_grads: {self._label(path)} mismatch: with a random output cotangent u "
                f"and input direction v, <u^T J, v> by AD = {ip_ad!r} but <u, J v> by central "
                f"differences (eps={eps:g}) = {ip_fd!r} (|diff| {err:.3g} > tol {tol:.3g}; "
                f"rtol={rtol:g}, atol={atol:g})"
            )


def _show(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), precision=8, threshold=20, edgeitems=3,
                           max_line_width=200)


def check_grads(
    f: Callable,
    args: Sequence[Any],
    order: int = 2,
    modes: Sequence[str] = ("fwd", "rev"),
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> None:
    """Check the derivatives of ``f`` at ``args`` against central finite differences.

    For each mode in ``modes`` (``"fwd"``: JVPs, ``"rev"``: VJPs) and each
    order up to ``order``, the directional derivative along a random
    direction (reverse mode: contracted with a random output cotangent) is
    compared with ``(f(x + eps v) - f(x - eps v)) / (2 eps)``; order 2 checks
    the JVP and VJP functions themselves the same way (forward/reverse over
    forward/reverse).  ``args`` is a tuple of floating-point arrays (pytrees
    allowed), real or complex: complex arguments are perturbed along random
    complex directions, so both the real and the imaginary direction are
    checked (cotangents pair with tangents as ``Re(sum(c * v))``).  ``eps``,
    ``rtol`` and ``atol`` default by dtype (float64:
    ``1e-6, 1e-5, 1e-5``; float32: ``1e-3, 2e-3, 2e-3``); the test is
    ``|ad - fd| <= atol + rtol * |fd|`` (plus the rounding noise of the
    differences), so a derivative that is too large fails too.  Raises
    ``AssertionError`` naming the mode, the order and the mismatching values;
    returns ``None`` when everything agrees.  ``seed`` fixes the random
    directions.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> cr.check_grads(lambda x, y: cnp.sin(x) * y, (np.array([0.5, 1.0]), np.array(2.0)))
    >>> class Wrong(cr.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 2
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x * g          # should be 2 * x * g
    >>> cr.check_grads(Wrong.apply, (np.array([1.0, 2.0]),), order=1, modes=("rev",))
    Traceback (most recent call last):
    ...
    AssertionError: check_grads: mode 'rev', order 1 (VJP of f) mismatch: ...
    """
    if isinstance(modes, str):
        modes = (modes,)
    unknown = [m for m in modes if m not in ("fwd", "rev")]
    if unknown or not modes:
        raise ValueError(f"check_grads: modes must be a subset of ('fwd', 'rev'), got {modes!r}")
    if not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"check_grads: order must be a positive int, got {order!r}")
    if not isinstance(args, (tuple, list)):
        args = (args,)
    leaves, td = tree_flatten(tuple(args))
    fixed = []
    for i, x in enumerate(leaves):
        a = x if hasattr(x, "dtype") and not isinstance(x, np.generic) else np.asarray(x)
        if not np.issubdtype(np.dtype(a.dtype), np.inexact):
            raise TypeError(
                f"check_grads: argument leaf {i} has dtype {a.dtype}; derivatives are checked "
                "with respect to floating-point arguments only (close over the others)"
            )
        fixed.append(a)
    _Checker(modes, eps, rtol, atol, seed).check(f, tuple(tree_unflatten(td, fixed)), int(order))
