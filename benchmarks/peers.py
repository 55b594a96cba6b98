"""The same workloads written with the libraries a user would pick instead.

HIPS autograd and PyTorch (CPU, one thread) are optional: ``pip install -e .[bench]``.
Each ``wN(...)`` returns ``{peer name: zero-argument callable}`` for the peers that are
installed; every callable returns the workload's result so that it can be checked
against the NumPy baseline before it is timed.  ``missing()`` says which are absent.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

PEERS = ("autograd", "torch")


def _try(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception:  # absent, or present but broken: either way not a peer today
        return None


_ag = _try("autograd")
_agnp = _try("autograd.numpy") if _ag is not None else None
_torch = _try("torch")
if _torch is not None:
    _torch.set_num_threads(1)  # the same single BLAS thread as the other candidates
    _tfunc = _try("torch.func")
else:
    _tfunc = None


def missing() -> list[str]:
    """The peers that are not installed."""
    return [n for n, m in (("autograd", _ag), ("torch", _torch)) if m is None]


def note() -> str:
    gone = missing()
    if not gone:
        return "peers: HIPS autograd and PyTorch (CPU, 1 thread), timed in the same run"
    return (f"peers column: {', '.join(gone)} not installed "
            "(pip install -e '.[bench]' adds HIPS autograd and PyTorch)")


def _t(a: np.ndarray) -> Any:
    return _torch.from_numpy(a)


Peers = dict[str, Callable[[], Any]]


# --- W1: scalar chain ----------------------------------------------------------------------

def w1(n: int) -> Peers:
    out: Peers = {}
    if _torch is not None:
        def chain_torch():
            x = _torch.tensor(0.5, dtype=_torch.float64, requires_grad=True)
            y = x
            for _ in range(n):
                y = _torch.sin(y) * 1.0001 + 0.1 * y
            y.backward()
            return y.item(), x.grad.numpy()

        out["torch"] = chain_torch
    if _ag is not None:
        def f(x):
            for _ in range(n):
                x = _agnp.sin(x) * 1.0001 + 0.1 * x
            return x

        vg = _ag.value_and_grad(f)
        out["autograd"] = lambda: vg(0.5)
    return out


# --- W2: MLP loss (maximum ReLU, max-shifted logsumexp cross-entropy) -----------------------

def w2(params: list, x: np.ndarray, y: np.ndarray) -> Peers:
    out: Peers = {}
    rows = np.arange(x.shape[0])
    if _ag is not None:
        anp = _agnp

        def loss(ps):
            W1, b1, W2, b2, W3, b3 = ps
            h = anp.maximum(anp.dot(x, W1) + b1, 0.0)
            h = anp.maximum(anp.dot(h, W2) + b2, 0.0)
            z = anp.dot(h, W3) + b3
            z = z - anp.max(z, axis=1, keepdims=True)
            return anp.mean(anp.log(anp.sum(anp.exp(z), axis=1)) - z[rows, y])

        vg = _ag.value_and_grad(loss)
        out["autograd"] = lambda: vg(list(params))
    if _torch is not None:
        tp = [_t(p).requires_grad_() for p in params]
        tx, ty = _t(x), _torch.from_numpy(y)
        zero = _torch.zeros((), dtype=tx.dtype)

        def step():
            W1, b1, W2, b2, W3, b3 = tp
            h = _torch.maximum(tx @ W1 + b1, zero)
            h = _torch.maximum(h @ W2 + b2, zero)
            z = h @ W3 + b3
            z = z - z.max(dim=1, keepdim=True).values
            loss = (_torch.logsumexp(z, dim=1) - z[_torch.arange(z.shape[0]), ty]).mean()
            grads = _torch.autograd.grad(loss, tp)
            return loss.item(), [g.numpy() for g in grads]

        out["torch"] = step
    return out


# --- W3: large elementwise expression --------------------------------------------------------

def w3(a: np.ndarray) -> Peers:
    out: Peers = {}
    if _ag is not None:
        anp = _agnp
        vg = _ag.value_and_grad(
            lambda x: anp.sum(anp.tanh(x) * anp.exp(-x**2) + anp.log1p(x**2)))
        out["autograd"] = lambda: vg(a)
    if _torch is not None:
        def vg_torch():
            x = _t(a).requires_grad_()
            y = (_torch.tanh(x) * _torch.exp(-x**2) + _torch.log1p(x**2)).sum()
            y.backward()
            return y.item(), x.grad.numpy()

        out["torch"] = vg_torch
    return out


# --- W4: Jacobians ---------------------------------------------------------------------------

def w4(A: np.ndarray, x: np.ndarray) -> dict[str, Peers]:
    """``{"jacfwd": peers, "jacrev": peers}``."""
    out: dict[str, Peers] = {"jacfwd": {}, "jacrev": {}}
    if _tfunc is not None:
        tA, tx = _t(A), _t(x)
        f = lambda v: _torch.tanh(tA @ v) + v**2  # noqa: E731
        fwd, rev = _tfunc.jacfwd(f), _tfunc.jacrev(f)
        out["jacfwd"]["torch"] = lambda: fwd(tx).numpy()
        out["jacrev"]["torch"] = lambda: rev(tx).numpy()
    if _ag is not None:
        anp = _agnp
        jac = _ag.jacobian(lambda v: anp.tanh(anp.dot(A, v)) + v**2)
        out["jacrev"]["autograd"] = lambda: jac(x)
    return out


# --- W5: Hessian-vector product --------------------------------------------------------------

def w5(A: np.ndarray, x: np.ndarray, v: np.ndarray) -> Peers:
    out: Peers = {}
    if _ag is not None:
        anp = _agnp
        hvp = _ag.hessian_vector_product(lambda u: anp.sum(anp.tanh(anp.dot(A, u)) ** 2))
        out["autograd"] = lambda: hvp(x, v)
    if _tfunc is not None:
        tA, tx, tv = _t(A), _t(x), _t(v)
        g = _tfunc.grad(lambda u: (_torch.tanh(tA @ u) ** 2).sum())
        out["torch"] = lambda: _tfunc.jvp(g, (tx,), (tv,))[1].numpy()
    return out
