"""W4: full 200x200 Jacobian with ``cr.jacfwd`` and ``cr.jacrev``.

``f(x) = tanh(A @ x) + x**2`` with A a random 200x200 matrix (normal, seed 0,
scaled by 1/sqrt(200) so that tanh is not saturated), next to the closed-form
Jacobian in NumPy ``(1 - tanh(A @ x)**2)[:, None] * A + 2 * diag(x)``.
Targets: <= 0.5 ms each (absolute).
"""

from __future__ import annotations

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp
import peers
from common import compare, row, skipped

NAME = "W4"
TITLE = "200x200 Jacobian of tanh(A@x) + x**2"
N = 200
TARGET_MS = 0.5


def make_problem(n: int = N):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    x = rng.standard_normal(n)
    return A, x


def jacobian_numpy(A: np.ndarray, x: np.ndarray) -> np.ndarray:
    t = np.tanh(A @ x)
    return (1 - t * t)[:, None] * A + 2 * np.diag(x)


def run(repeats: int) -> dict:
    missing = [name for name in ("jacfwd", "jacrev") if not hasattr(cr, name)]
    if len(missing) == 2:
        return skipped(NAME, TITLE, "cr.jacfwd / cr.jacrev not available yet")
    if not hasattr(cnp, "matmul"):
        return skipped(NAME, TITLE, "chainrule.numpy.matmul not available yet")

    A, x = make_problem()

    def f(x):
        return cnp.tanh(cnp.matmul(A, x)) + x**2

    J_np = jacobian_numpy(A, x)
    candidates = {}
    for name in ("jacfwd", "jacrev"):
        if name in missing:
            continue
        jac = getattr(cr, name)(f)
        J = jac(x)
        J = np.asarray(getattr(J, "data", J))
        np.testing.assert_allclose(J, J_np, rtol=1e-10, atol=1e-10, err_msg=name)
        candidates[name] = (lambda jac=jac: jac(x))
    candidates["numpy"] = lambda: jacobian_numpy(A, x)
    others = peers.w4(A, x)
    for mode, found in others.items():
        for peer, fn in found.items():
            np.testing.assert_allclose(fn(), J_np, rtol=1e-10, atol=1e-10, err_msg=peer)
            candidates[f"{peer} {mode}"] = fn

    t = compare(candidates, repeats)
    ms_np = t["numpy"]["median"] * 1e3
    rows = [
        row(f"cr.{name}", t[name]["median"] * 1e3, ms_np, unit="ms", target=TARGET_MS,
            on="value", peers={p: t[f"{p} {name}"]["median"] * 1e3 for p in others[name]})
        for name in ("jacfwd", "jacrev")
        if name in t
    ]
    rows += [
        row(f"cr.{name} / torch.func.{name}", t[name]["median"] * 1e3,
            t[f"torch {name}"]["median"] * 1e3, unit="ms", target=0.8)
        for name in ("jacfwd", "jacrev")
        if name in t and f"torch {name}" in t
    ]
    notes = ["Jacobians agree with the closed form (1e-10); baseline = closed-form NumPy",
             peers.note()]
    notes += [f"cr.{name} not available yet" for name in missing]
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes,
            "details": {"timings_s": t, "n": N}}


if __name__ == "__main__":
    import json

    print(json.dumps(run(5), indent=2, default=str))
