"""W5: one Hessian-vector product of ``sum(tanh(A @ x)**2)``, A 1000x1000.

``cr.hvp(f, (x,), (v,))`` next to the closed-form NumPy HVP.  With
``u = A x`` and ``t = tanh(u)``::

    grad f = A^T (2 t (1 - t^2))
    H v    = A^T [ (2 (1 - t^2)^2 - 4 t^2 (1 - t^2)) * (A v) ]

(three matrix-vector products).  A is normal (seed 0) scaled by
1/sqrt(1000) so that tanh is not saturated.  Target: ratio <= 1.5.
"""

from __future__ import annotations

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp
import peers
from common import compare, pick, row, skipped

NAME = "W5"
TITLE = "Hessian-vector product of sum(tanh(A@x)**2), A 1000x1000"
N = 1000
TARGET_RATIO = 1.5


def make_problem(n: int = N):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    x = rng.standard_normal(n)
    v = rng.standard_normal(n)
    return A, x, v


def hvp_numpy(A: np.ndarray, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    t = np.tanh(A @ x)
    s = 1 - t * t
    return A.T @ ((2 * s * s - 4 * t * t * s) * (A @ v))


def run(repeats: int) -> dict:
    if not hasattr(cr, "hvp"):
        return skipped(NAME, TITLE, "cr.hvp not available yet")
    if not hasattr(cnp, "matmul"):
        return skipped(NAME, TITLE, "chainrule.numpy.matmul not available yet")

    A, x, v = make_problem()

    def f(x):
        return cnp.sum(cnp.tanh(cnp.matmul(A, x)) ** 2)

    def hvp_chainrule():
        return cr.hvp(f, (x,), (v,))

    Hv = pick(hvp_chainrule(), x.shape)
    if Hv is None:
        raise AssertionError("cr.hvp returned no array of the primal's shape")
    np.testing.assert_allclose(Hv, hvp_numpy(A, x, v), rtol=1e-9, atol=1e-10)

    others = peers.w5(A, x, v)
    for name, fn in others.items():
        np.testing.assert_allclose(np.asarray(fn()), hvp_numpy(A, x, v), rtol=1e-9, atol=1e-10,
                                   err_msg=name)
    t = compare({"chainrule": hvp_chainrule, "numpy": lambda: hvp_numpy(A, x, v), **others},
                repeats)
    ms_cr = t["chainrule"]["median"] * 1e3
    ms_np = t["numpy"]["median"] * 1e3
    return {
        "name": NAME,
        "title": TITLE,
        "rows": [row("cr.hvp", ms_cr, ms_np, unit="ms", target=TARGET_RATIO,
                     peers={k: t[k]["median"] * 1e3 for k in others})],
        "notes": ["HVP agrees with the closed form; baseline = closed-form NumPy (3 matvecs)",
                  peers.note()],
        "details": {"timings_s": t, "n": N},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(5), indent=2, default=str))
