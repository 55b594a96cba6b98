"""``cr.optimize.minimize``: minimise a scalar function, chainrule supplying the derivatives.

Methods ``"gd"``, ``"momentum"`` and ``"adam"`` are implemented here (option
``lr``); ``"lbfgs"``, ``"bfgs"`` and ``"newton"`` hand the work to SciPy
(L-BFGS-B, BFGS, and trust-region Newton-CG fed with exact Hessian-vector
products from forward-over-reverse differentiation).  SciPy is optional:
those three methods raise ``ImportError`` without it.

>>> import chainrule.numpy as cnp
>>> from chainrule.optimize import minimize
>>> res = minimize(lambda v: (v[0] + 5) ** 2 + (v[1] + 3) ** 2, [10.0, 4.0], method="bfgs")
>>> res.x.round(6), res.success
(array([-5., -3.]), True)
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import numpy as cnp
from .batching import BatchTracer
from .core.primitive import Box, primitive
from .pytree import ravel_pytree, tree_map
from .sparse.evaluate import SparseHessian
from .transforms import jvp as _jvp
from .transforms import vjp as _vjp

__all__ = ["minimize", "OptimizeResult", "METHODS", "sgd", "rmsprop", "adam", "fixed_point"]

METHODS = ("gd", "momentum", "adam", "lbfgs", "bfgs", "newton")
_ALIASES = {"sgd": "gd", "l-bfgs-b": "lbfgs", "l-bfgs": "lbfgs", "lbfgsb": "lbfgs",
            "trust-ncg": "newton", "newton-cg": "newton"}
_DEFAULT_LR = {"gd": 0.1, "momentum": 0.01, "adam": 0.1}


class OptimizeResult(dict):
    """The outcome of :func:`minimize`: a dict whose keys are also attributes.

    ``x`` (the solution, shaped like ``x0``), ``fun`` (its value), ``jac``
    (the gradient there), ``nit`` (iterations), ``success``, ``message``,
    ``nfev`` (function evaluations) and ``method``.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __repr__(self) -> str:
        width = max(map(len, self)) if self else 0
        return "\n".join(f"{k.rjust(width)}: {v!r}" for k, v in self.items())


def _raw(x: Any) -> Any:
    while isinstance(x, Box):
        x = x.data
    return x


def _scalar(f: Any, where: str) -> float:
    a = np.asarray(_raw(f))
    if a.size != 1:
        raise ValueError(f"minimize: {where} must return a scalar, got shape {a.shape}")
    return float(a.reshape(()))


class _Objective:
    """``fun`` with its gradient and Hessian-vector products, counting evaluations."""

    def __init__(self, fun: Callable, jac: Any, shape: tuple, dtype: Any,
                 hessp: Callable | None) -> None:
        self.fun, self.jac, self.shape, self.dtype = fun, jac, shape, dtype
        self.user_hessp = hessp
        self.nfev = 0

    def _x(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=self.dtype).reshape(self.shape)

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        x = self._x(x)
        self.nfev += 1
        if self.jac is None:
            from .transforms import value_and_grad

            f, g = value_and_grad(self.fun)(x)
        elif self.jac is True:
            f, g = self.fun(x)
        elif callable(self.jac):
            f, g = self.fun(x), self.jac(x)
        else:
            raise TypeError(f"minimize: jac must be None, True or a callable, got {self.jac!r}")
        g = np.asarray(_raw(g), dtype=self.dtype)
        if g.shape != self.shape:
            g = g.reshape(self.shape)
        return _scalar(f, "fun"), g

    def hessp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        x, v = self._x(x), self._x(v)
        if self.user_hessp is not None:
            return np.asarray(_raw(self.user_hessp(x, v)), dtype=self.dtype)
        if self.jac is None:
            from .transforms import hvp

            return np.asarray(_raw(hvp(self.fun, (x,), (v,))), dtype=self.dtype)
        if callable(self.jac):
            try:  # differentiate the user's gradient forward along v
                from .transforms import jvp

                return np.asarray(_raw(jvp(self.jac, (x,), (v,))[1]), dtype=self.dtype)
            except Exception:  # noqa: BLE001 - not written with chainrule ops: differences
                pass
        # Central differences of the gradient (only when no exact derivative is available).
        eps = np.sqrt(np.finfo(self.dtype).eps) * max(1.0, float(np.linalg.norm(x)))
        eps /= max(float(np.linalg.norm(v)), 1e-300)
        return (self.value_and_grad(x + eps * v)[1] - self.value_and_grad(x - eps * v)[1]) \
            / (2 * eps)


class _Progress:
    """A tqdm bar over iterations when tqdm is installed, else a line every few iterations."""

    def __init__(self, enabled: bool, total: int, method: str) -> None:
        self.bar = None
        self.enabled = enabled
        self.every = max(1, total // 20)
        self.count = 0
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=f"minimize ({method})", leave=False)
            except ImportError:
                self.bar = None

    def update(self, f: float | None = None) -> None:
        if not self.enabled:
            return
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)
            if f is not None:
                self.bar.set_postfix(fun=f, refresh=False)
        elif self.count % self.every == 0:
            print(f"minimize: iteration {self.count}" + (f", fun={f:.6g}" if f is not None
                                                         else ""), file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def minimize(fun: Callable, x0: Any, method: str = "lbfgs", jac: Any = None,
             tol: float = 1e-8, max_iter: int = 1000, callback: Callable | None = None,
             **options: Any) -> OptimizeResult:
    """Minimise the scalar function ``fun(x)`` starting from ``x0``.

    Parameters
    ----------
    fun: ``fun(x) -> scalar`` for an array ``x`` shaped like ``x0``, written with
        ``chainrule.numpy`` (so it can be differentiated) unless ``jac`` is given.
    x0: the starting point (any shape).  A complex ``x0`` is optimised over
        its real and imaginary parts (``fun`` real-valued; gradients in
        ``cr.grad``'s convention ``df/dx - i df/dy``, for ``jac`` and ``hessp``
        too); ``x`` and ``jac`` of the result are then complex.
    method: ``"gd"``, ``"momentum"``, ``"adam"`` (own implementations, option
        ``lr``; ``momentum`` also takes ``beta``, adam ``betas`` and ``eps``),
        ``"lbfgs"``, ``"bfgs"`` or ``"newton"`` (SciPy; ``newton`` is a
        trust-region Newton-CG with exact Hessian-vector products).
    jac: ``None`` (chainrule differentiates ``fun``), ``True`` (``fun`` returns
        ``(value, gradient)``) or a gradient function.
    tol: the gradient size (max-norm) at which to stop.
    max_iter: the most iterations.
    callback: ``callback(x)`` after every iteration.
    options: ``lr`` etc. for the own methods, ``progress=True`` for a progress
        bar (tqdm when installed), ``hessp`` for a user Hessian-vector product;
        ``sparse=True`` (``newton`` only): Newton steps solved with the sparse
        Hessian of ``cr.sparse.hessian_fn`` and SciPy's sparse direct solver, for
        problems with many variables and a sparse Hessian;
        any others are passed to SciPy's ``options`` (SciPy's own spelling,
        ``options={"maxiter": 50}``, is accepted too).

    Returns an :class:`OptimizeResult` with ``x fun jac nit success message``.

    >>> import chainrule.numpy as cnp
    >>> rosen = lambda v: (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2
    >>> res = minimize(rosen, [-1.2, 1.0], method="newton")
    >>> bool(abs(res.x - 1).max() < 1e-6), res.nit < 200
    (True, True)
    """
    name = _ALIASES.get(str(method).lower(), str(method).lower())
    if name not in METHODS:
        raise ValueError(f"minimize: unknown method {method!r}; choose one of {METHODS}")
    nested = options.pop("options", None)  # SciPy's spelling: options={"maxiter": ...}
    if nested is not None:
        if not isinstance(nested, dict):
            raise TypeError(f"minimize: options must be a dict, got {type(nested).__name__}")
        options = {**nested, **options}
    max_iter = int(options.pop("maxiter", max_iter))
    if max_iter < 0:
        raise ValueError(f"minimize: max_iter must be non-negative, got {max_iter}")
    x0_arr = np.asarray(_raw(x0))
    if x0_arr.dtype.kind == "c":
        return _minimize_complex(fun, x0_arr, method, jac, tol, max_iter, callback, options)
    progress = _Progress(bool(options.pop("progress", False)), max_iter, name)
    own = name in ("gd", "momentum", "adam")
    dtype = x0_arr.dtype if (own and x0_arr.dtype.kind == "f") else np.float64
    x0_arr = np.array(x0_arr, dtype=dtype)
    obj = _Objective(fun, jac, x0_arr.shape, dtype, options.pop("hessp", None))
    sparse = bool(options.pop("sparse", False))
    if sparse and name != "newton":
        raise ValueError(f"minimize: sparse=True needs method='newton' (got {method!r})")
    if sparse and jac is not None:
        raise ValueError("minimize: sparse=True finds the Hessian's sparsity by tracing fun "
                         "itself: leave jac=None and write fun with chainrule.numpy")
    try:
        if sparse:
            res = _sparse_newton(fun, obj, x0_arr, tol, max_iter, callback, progress, options)
        elif own:
            res = _first_order(name, obj, x0_arr, tol, max_iter, callback, progress, options)
        else:
            res = _scipy(name, obj, x0_arr, tol, max_iter, callback, progress, options)
    finally:
        progress.close()
    res["method"] = name
    res["nfev"] = obj.nfev
    return res


def _pairs(g: Any) -> Any:
    """A complex gradient ``df/dx - i df/dy`` as the real gradient ``(df/dx, df/dy)`` on the
    last axis (chainrule ops, so it stays differentiable)."""
    return cnp.stack([cnp.real(g), -cnp.imag(g)], axis=-1)


def _complex(r: Any) -> Any:
    """Real pairs on the last axis as complex numbers (differentiable)."""
    return r[..., 0] + 1j * r[..., 1]


def _minimize_complex(fun: Callable, z0: np.ndarray, method: str, jac: Any, tol: float,
                      max_iter: int, callback: Callable | None,
                      options: dict[str, Any]) -> OptimizeResult:
    """Minimise a real ``fun`` of complex ``z`` over the real pairs ``(Re z, Im z)``.

    Gradients follow chainrule's convention ``df/dx - i df/dy`` (what ``cr.grad``
    gives), for a user ``jac`` and ``hessp`` too; the result's ``x`` and ``jac``
    are complex again, shaped like ``x0``.
    """
    ctype = z0.dtype
    to_z = (lambda r: np.asarray(_complex(np.asarray(r)), dtype=ctype))
    if jac is None:
        fun_r = (lambda r: fun(_complex(r)))
        jac_r: Any = None
    elif jac is True:
        def fun_r(r: Any) -> Any:
            f, g = fun(_complex(r))
            return f, _pairs(g)

        jac_r = True
    else:
        fun_r = (lambda r: fun(_complex(r)))
        jac_r = (lambda r: _pairs(jac(_complex(r))))
    hessp = options.pop("hessp", None)
    if hessp is not None:
        options["hessp"] = (lambda r, v: np.asarray(_raw(_pairs(hessp(to_z(r), to_z(v))))))
    cb = None if callback is None else (lambda r: callback(to_z(r)))
    r0 = np.stack([z0.real, z0.imag], axis=-1)
    res = minimize(fun_r, r0, method, jac_r, tol, max_iter, cb, **options)
    res["x"] = to_z(res["x"])
    g = np.asarray(res["jac"])
    res["jac"] = (g[..., 0] - 1j * g[..., 1]).astype(ctype)
    return res


def _sparse_newton(fun: Callable, obj: _Objective, x: np.ndarray, tol: float, max_iter: int,
                   callback: Callable | None, progress: _Progress,
                   options: dict[str, Any]) -> OptimizeResult:
    """Newton's method with sparse Hessians (pattern and colouring found once) and a
    backtracking line search; the Hessian is shifted towards the identity where it is not
    positive definite enough to give a descent direction."""
    if options:
        raise TypeError(f"minimize: unknown options for sparse Newton: {sorted(options)}")
    sla = _sparse_linalg("minimize(method='newton', sparse=True)")
    hess = SparseHessian(fun, x)
    x = x.copy()
    f, g = obj.value_and_grad(x)
    nit = 0
    success = False
    while True:
        stop = _stop(f, g, tol, nit, max_iter, "")
        if stop is not None:
            message, success = stop
            break
        nit += 1
        H = hess(x).tocsc()
        gf = g.ravel()
        step = _newton_direction(sla, H, gf)
        slope = float(gf @ step)
        t = 1.0
        while True:  # backtracking (Armijo)
            trial = x + t * step.reshape(x.shape)
            ft, gt = obj.value_and_grad(trial)
            if math.isfinite(ft) and ft <= f + 1e-4 * t * slope:
                break
            t *= 0.5
            if t < 1e-12:
                break
        if t < 1e-12:
            message = "the line search found no decrease"
            break
        x, f, g = trial, ft, gt
        progress.update(f)
        if callback is not None:
            callback(x.copy())
    return OptimizeResult(x=x, fun=f, jac=g, nit=nit, success=success, message=message)


def _sparse_linalg(what: str) -> Any:
    try:
        from scipy.sparse import linalg as sla
    except ImportError as exc:
        raise ImportError(f"{what} needs SciPy: pip install 'chainrule[optimize]'") from exc
    return sla


def _newton_direction(sla: Any, H: Any, g: np.ndarray) -> np.ndarray:
    """``-H^{-1} g``, with ``H + lam I`` for growing ``lam`` until it points downhill."""
    n = g.size
    scale = float(np.max(np.abs(H.diagonal()))) if n else 1.0
    lam = 0.0
    ident = None
    for _ in range(60):
        A = H
        if lam:
            if ident is None:
                ident = type(H)((np.ones(n), np.arange(n), np.arange(n + 1)), shape=(n, n))
            A = (H + lam * ident).tocsc()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a singular matrix: handled by shifting
            d = -np.asarray(sla.spsolve(A, g)).ravel()
        if np.all(np.isfinite(d)) and float(g @ d) < 0:
            return d
        lam = max(2.0 * lam, 1e-8 * max(scale, 1.0))
    return -g


def _stop(f: float, g: np.ndarray, tol: float, nit: int, max_iter: int,
          hint: str) -> tuple[str, bool] | None:
    """Why an iteration stops here, as ``(message, success)``, or ``None`` to go on."""
    if not (math.isfinite(f) and np.all(np.isfinite(g))):
        return "the function or its gradient became non-finite" + hint, False
    if g.size == 0 or float(np.max(np.abs(g))) <= tol:
        return "gradient below tol", True
    if nit >= max_iter:
        return "maximum number of iterations reached", False
    return None


def _first_order(name: str, obj: _Objective, x: np.ndarray, tol: float, max_iter: int,
                 callback: Callable | None, progress: _Progress,
                 options: dict[str, Any]) -> OptimizeResult:
    lr = float(options.pop("lr", _DEFAULT_LR[name]))
    beta = float(options.pop("beta", options.pop("momentum", 0.9)))
    b1, b2 = options.pop("betas", (0.9, 0.999))
    eps = float(options.pop("eps", 1e-8))
    if options:
        raise TypeError(f"minimize: unknown options for method {name!r}: {sorted(options)}")
    if lr <= 0:
        raise ValueError(f"minimize: lr must be positive, got {lr}")
    x = x.copy()
    buf = np.zeros_like(x)
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    f, g = obj.value_and_grad(x)
    nit = 0
    while True:
        stop = _stop(f, g, tol, nit, max_iter, " (lower lr?)")
        if stop is not None:
            message, success = stop
            break
        nit += 1
        if name == "gd":
            x -= lr * g
        elif name == "momentum":  # heavy ball: b = beta b + g, x -= lr b
            buf *= beta
            buf += g
            x -= lr * buf
        else:  # Adam with bias correction
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            mhat = m / (1 - b1 ** nit)
            vhat = v / (1 - b2 ** nit)
            x -= lr * mhat / (np.sqrt(vhat) + eps)
        f, g = obj.value_and_grad(x)
        progress.update(f)
        if callback is not None:
            callback(x.copy())
    return OptimizeResult(x=x, fun=f, jac=g, nit=nit, success=success, message=message)


def _scipy(name: str, obj: _Objective, x0: np.ndarray, tol: float, max_iter: int,
           callback: Callable | None, progress: _Progress,
           options: dict[str, Any]) -> OptimizeResult:
    try:
        from scipy import optimize as sopt
    except ImportError as exc:
        raise ImportError(f"minimize(method={name!r}) needs SciPy, which is not installed: "
                          "pip install scipy (or use method 'gd', 'momentum' or 'adam')"
                          ) from exc
    shape = x0.shape

    def fg(xf):
        f, g = obj.value_and_grad(xf)
        return f, g.ravel()

    def cb(xk):
        progress.update()
        if callback is not None:
            callback(np.asarray(xk).reshape(shape).copy())

    opts: dict[str, Any] = {"maxiter": max_iter}
    if name == "lbfgs":
        scipy_method = "L-BFGS-B"
        opts.update(gtol=tol, ftol=tol * np.finfo(float).eps)
    elif name == "bfgs":
        scipy_method = "BFGS"
        opts.update(gtol=tol)
    else:
        scipy_method = "trust-ncg"
        opts.update(gtol=tol)
    opts.update(options)
    kwargs: dict[str, Any] = {}
    if name == "newton":
        kwargs["hessp"] = lambda xf, vf: obj.hessp(xf, vf.reshape(shape)).ravel()
    r = sopt.minimize(fg, x0.ravel(), jac=True, method=scipy_method, callback=cb,
                      options=opts, **kwargs)
    grad = np.asarray(r.jac).reshape(shape) if getattr(r, "jac", None) is not None \
        else obj.value_and_grad(r.x)[1]
    message = r.message.decode() if isinstance(r.message, bytes) else str(r.message)
    return OptimizeResult(x=np.asarray(r.x).reshape(shape), fun=float(r.fun), jac=grad,
                          nit=int(r.nit), success=bool(r.success), message=message)


# --- functional optimisers on pytrees (HIPS autograd's signatures) ----------------------------

def _on_flat(step: Callable) -> Callable:
    """Run ``step(grad, x, callback, ...)`` on the raveled ``x0`` and give back ``x0``'s
    structure: ``grad(x, i)`` and ``callback(x, i, g)`` see pytrees like ``x0``."""
    def optimiser(grad: Callable, x0: Any, callback: Callable | None = None,
                  *args: Any, **kwargs: Any) -> Any:
        flat0, unravel = ravel_pytree(_strip(x0))
        flat0 = np.asarray(flat0, dtype=np.result_type(flat0, np.float64))

        def flat_grad(x: np.ndarray, i: int) -> np.ndarray:
            g = np.asarray(_raw(ravel_pytree(_strip(grad(unravel(x), i)))[0]), dtype=x.dtype)
            if g.shape != x.shape:
                raise ValueError(f"{step.__name__}: grad(x, i) must have the structure and "
                                 f"shapes of x0 ({x.size} entries), got {g.size} entries")
            return g

        flat_cb = None
        if callback is not None:
            def flat_cb(x: np.ndarray, i: int, g: np.ndarray) -> None:
                callback(unravel(x), i, unravel(g))

        return unravel(step(flat_grad, flat0, flat_cb, *args, **kwargs))

    optimiser.__name__ = step.__name__
    optimiser.__qualname__ = step.__name__
    optimiser.__doc__ = step.__doc__
    return optimiser


def _strip(tree: Any) -> Any:
    """The NumPy data of every leaf (the optimisers work on plain arrays)."""
    return tree_map(_raw, tree)


@_on_flat
def sgd(grad: Callable, x: np.ndarray, callback: Callable | None = None, num_iters: int = 200,
        step_size: float = 0.1, mass: float = 0.9) -> np.ndarray:
    """Stochastic gradient descent with momentum (HIPS autograd's ``sgd``).

    ``grad(x, i)`` is the gradient at ``x`` in iteration ``i`` and
    ``callback(x, i, g)`` runs before each step; ``x0`` and the result are
    pytrees of the same structure.

    >>> import numpy as np
    >>> from chainrule.optimize import sgd
    >>> x = sgd(lambda x, i: 2 * (x - 3.0), np.array([0.0]), num_iters=300)
    >>> np.round(x, 4)
    array([3.])
    """
    velocity = np.zeros(len(x))
    for i in range(num_iters):
        g = grad(x, i)
        if callback is not None:
            callback(x, i, g)
        velocity = mass * velocity - (1.0 - mass) * g
        x = x + step_size * velocity
    return x


@_on_flat
def rmsprop(grad: Callable, x: np.ndarray, callback: Callable | None = None,
            num_iters: int = 100, step_size: float = 0.1, gamma: float = 0.9,
            eps: float = 1e-8) -> np.ndarray:
    """Root-mean-square propagation (HIPS autograd's ``rmsprop``; see :func:`sgd`)."""
    avg_sq_grad = np.ones(len(x))
    for i in range(num_iters):
        g = grad(x, i)
        if callback is not None:
            callback(x, i, g)
        avg_sq_grad = avg_sq_grad * gamma + g ** 2 * (1 - gamma)
        x = x - step_size * g / (np.sqrt(avg_sq_grad) + eps)
    return x


@_on_flat
def adam(grad: Callable, x: np.ndarray, callback: Callable | None = None, num_iters: int = 100,
         step_size: float = 0.001, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> np.ndarray:
    """Adam (HIPS autograd's ``adam``; see :func:`sgd`).

    >>> import numpy as np
    >>> from chainrule.optimize import adam
    >>> out = adam(lambda p, i: {"w": 2 * p["w"]}, {"w": np.ones(2)}, step_size=0.1)
    >>> sorted(out), out["w"].shape
    (['w'], (2,))
    """
    m = np.zeros(len(x))
    v = np.zeros(len(x))
    for i in range(num_iters):
        g = grad(x, i)
        if callback is not None:
            callback(x, i, g)
        m = (1 - b1) * g + b1 * m            # first moment
        v = (1 - b2) * (g ** 2) + b2 * v     # second moment
        mhat = m / (1 - b1 ** (i + 1))       # bias corrections
        vhat = v / (1 - b2 ** (i + 1))
        x = x - step_size * mhat / (np.sqrt(vhat) + eps)
    return x


# --- fixed points, differentiated by the implicit function theorem ------------------------------

_MAX_FIXED_POINT_ITERS = 100_000


def _converged(d: Any, tol: float) -> bool:
    """``d < tol``; a distance batched by ``vmap`` (the iterations of a derivative rule under
    ``vmap(grad(...))``) is below ``tol`` when it is for every example."""
    while isinstance(d, Box):
        d = d._bval if isinstance(d, BatchTracer) else d.data
    return bool(np.all(np.asarray(d) < tol))


def _iterate(step: Callable, x0: Any, distance: Callable, tol: float, what: str) -> Any:
    """``x = step(x)`` until ``distance(x, x_prev) < tol``."""
    x, prev = step(x0), x0
    for _ in range(_MAX_FIXED_POINT_ITERS):
        if _converged(distance(_raw(x), _raw(prev)), tol):
            return x
        x, prev = step(x), x
    raise RuntimeError(f"fixed_point: the {what} did not converge to tol={tol} within "
                       f"{_MAX_FIXED_POINT_ITERS} iterations")


def _fp_impl(a, x0, f, distance, tol):
    x = _iterate(lambda x: f(a, x), x0, distance, tol, "iteration")
    if isinstance(x, Box) and (x.requires_grad or x._tangent is not None):
        raise ValueError("fixed_point: f returned a value that depends on a variable being "
                         "differentiated through a closure; pass it in a (f(a, x)) so its "
                         "derivative is computed")
    return _raw(x)


def _batched(fn: Callable, v: Any, like: Any) -> Any:
    """``fn`` applied to ``v``, one entry of its leading batch axes at a time."""
    nb = np.ndim(_raw(v)) - np.ndim(_raw(like))
    if nb == 0:
        return fn(v)
    batch = np.shape(_raw(v))[:nb]
    flat = cnp.reshape(v, (-1,) + tuple(np.shape(_raw(v))[nb:]))
    rows = [fn(flat[k]) for k in range(flat.shape[0])]
    stacked = cnp.stack(rows)
    return cnp.reshape(stacked, batch + tuple(np.shape(_raw(rows[0]))))


def _fp_vjp(g, out, a, x0, f, distance, tol):
    # x* = f(a, x*)  =>  a_bar = (df/da)^T w  with  w = g + (df/dx)^T w (iterated like f)
    _, back = _vjp(lambda aa, xx: f(aa, xx), a, out)

    def one(gk):
        w = _iterate(lambda w: gk + back(w)[1], gk, distance, tol, "adjoint iteration")
        return back(w)[0]

    return _batched(one, g, out), None   # x* does not depend on x0


def _fp_jvp(tangents, out, a, x0, f, distance, tol):
    ta = tangents[0]
    if ta is None:   # only x0 moves: x* does not depend on it (None is a zero tangent)
        return None

    def one(tk):
        _, u = _jvp(lambda aa: f(aa, out), (a,), (tk,))        # df/da . ta
        return _iterate(lambda t: u + _jvp(lambda xx: f(a, xx), (out,), (t,))[1], u, distance,
                        tol, "tangent iteration")

    return _batched(one, ta, a)


class _Unraveled:
    """``f(unravel(flat_a), x)``: ``f`` of a pytree ``a`` seen through its raveled leaves."""

    def __init__(self, f: Callable, unravel: Callable) -> None:
        self.f, self.unravel = f, unravel

    def __call__(self, flat_a: Any, x: Any) -> Any:
        return self.f(self.unravel(flat_a), x)


_fixed_point_p = primitive("fixed_point", lambda xp, *args, **kw: _fp_impl(*args, **kw), _fp_impl,
                           vjp=_fp_vjp, jvp=_fp_jvp)


def fixed_point(f: Callable, a: Any, x0: Any, distance: Callable, tol: float) -> Any:
    """Iterate ``x = f(a, x)`` from ``x0`` until ``distance(x, x_prev) < tol``.

    The derivative with respect to ``a`` comes from the implicit function
    theorem at the fixed point ``x* = f(a, x*)`` -- reverse mode iterates the
    adjoint ``w = g + (df/dx)^T w``, forward mode the tangent
    ``t = (df/da) ta + (df/dx) t`` (each a contraction where the iteration
    itself converges) -- never by differentiating the iterations.  The result
    does not depend on ``x0`` (its derivative there is zero).  ``a`` may be a
    pytree (a dict of parameters, ...); ``x`` is an array.

    >>> import chainrule as cr
    >>> newton_sqrt = lambda a, x: 0.5 * (x + a / x)
    >>> dist = lambda x, y: abs(x - y)
    >>> round(float(fixed_point(newton_sqrt, 2.0, 1.0, dist, 1e-12)), 12)
    1.414213562373
    >>> round(float(cr.grad(lambda a: fixed_point(newton_sqrt, a, 1.0, dist, 1e-12))(4.0)), 12)
    0.25
    """
    if not callable(f) or not callable(distance):
        raise TypeError("fixed_point: f and distance must be callables")
    if isinstance(a, (dict, list, tuple)):   # a pytree: iterate on its raveled leaves
        flat, unravel = ravel_pytree(a)
        return _fixed_point_p(flat, x0 if hasattr(x0, "shape") else np.asarray(x0, float),
                              f=_Unraveled(f, unravel), distance=distance, tol=float(tol))
    if not isinstance(a, Box) and not hasattr(a, "shape"):
        a = np.asarray(a, dtype=float)
    if not isinstance(x0, Box) and not hasattr(x0, "shape"):
        x0 = np.asarray(x0, dtype=float)
    return _fixed_point_p(a, x0, f=f, distance=distance, tol=float(tol))
