"""SP1: sparse Jacobians and Hessians at scale (``cr.sparse``).

* sparse vs dense ``cr.jacfwd`` of a tridiagonal residual (a discretised 1-D
  boundary-value problem) for n = 10^3 .. 10^4 (dense only while the n x n
  Jacobian stays small: up to n = 4,000 here);
* the sparse Jacobian alone for n = 10^4 .. 10^6: time per Jacobian and per
  variable (linear growth = a flat time per variable);
* at n = 200,000: detection + colouring time (target < 20 s) and one ``J(x)``
  against one ``f(x)`` (target < 100x);
* ``minimize(method="newton", sparse=True)`` on a 10^5-variable convex energy
  with a tridiagonal Hessian (targets: gradient < 1e-7, <= 30 iterations, < 60 s).

Every sparse Jacobian is checked against the closed form first.
"""

from __future__ import annotations

import time

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp
from common import compare, row, skipped

NAME = "SP1"
TITLE = "sparse Jacobians / Hessians at scale"
DENSE_MAX = 4_000


def residual(x):
    inner = x[2:] - 2.0 * x[1:-1] + x[:-2] + 0.1 * cnp.exp(x[1:-1])
    return cnp.concatenate([x[:1], inner, x[-1:] ** 2])


def residual_numpy(x):
    inner = x[2:] - 2.0 * x[1:-1] + x[:-2] + 0.1 * np.exp(x[1:-1])
    return np.concatenate([x[:1], inner, x[-1:] ** 2])


def jacobian_closed_form(x):
    import scipy.sparse as sp

    n = x.size
    main = np.r_[1.0, -2.0 + 0.1 * np.exp(x[1:-1]), 2 * x[-1]]
    lower = np.r_[np.ones(n - 2), 0.0]
    upper = np.r_[0.0, np.ones(n - 2)]
    return sp.diags([lower, main, upper], [-1, 0, 1], format="csr")


def _check(J, x):
    diff = abs(J - jacobian_closed_form(x)).max()
    if diff > 1e-10:
        raise AssertionError(f"sparse Jacobian differs from the closed form by {diff}")


def run(repeats: int) -> dict:
    try:
        import scipy  # noqa: F401
    except ImportError:
        return skipped(NAME, TITLE, "SciPy (the optimize extra) is not installed")
    rows, notes, details = [], [], {}
    rng = np.random.default_rng(0)
    quick = repeats < 10

    for n in (1_000, 4_000, 10_000):
        x = rng.standard_normal(n)
        J = cr.sparse.jacobian_fn(residual, x)
        _check(J(x), x)
        cands = {"sparse": lambda J=J, x=x: J(x)}
        if n <= DENSE_MAX:
            dense = cr.jacfwd(residual)
            cands["dense"] = lambda dense=dense, x=x: dense(x)
        t = compare(cands, max(3, repeats // 4))
        base = t["dense"]["median"] * 1e3 if "dense" in t else None
        rows.append(row(f"J n={n:,} sparse (vs dense jacfwd)", t["sparse"]["median"] * 1e3,
                        base, unit="ms"))
        details[f"sparse_vs_dense_{n}"] = t

    sizes = (10_000, 100_000, 1_000_000) if not quick else (10_000, 100_000)
    per_var = {}
    for n in sizes:
        x = rng.standard_normal(n)
        J = cr.sparse.jacobian_fn(residual, x)
        _check(J(x), x)
        t = compare({"sparse": lambda J=J, x=x: J(x), "f": lambda x=x: residual_numpy(x)},
                    max(3, repeats // 4))
        s = t["sparse"]["median"]
        per_var[n] = s / n
        rows.append(row(f"J n={n:,} ({J.colors} colours), vs NumPy f(x)", s * 1e3,
                        t["f"]["median"] * 1e3, unit="ms"))
    growth = max(per_var.values()) / min(per_var.values())
    rows.append(row("time per variable, largest / smallest n", growth, unit="x",
                    target=3.0, on="value"))

    n = 200_000
    x = rng.standard_normal(n)
    t0 = time.perf_counter()
    J = cr.sparse.jacobian_fn(residual, x)
    setup = time.perf_counter() - t0
    rows.append(row("n=200,000 detection + colouring", setup, unit="s", target=20.0,
                    on="value"))
    t = compare({"J": lambda: J(x), "f": lambda: residual(x)}, max(3, repeats // 4))
    rows.append(row("n=200,000 one J(x) vs one f(x) (chainrule)", t["J"]["median"] * 1e3,
                    t["f"]["median"] * 1e3, unit="ms", target=100.0))

    n = 100_000
    b = np.linspace(0.5, 1.5, n)

    def energy(v):
        return cnp.sum((v[1:] - v[:-1]) ** 2) + cnp.sum(cnp.exp(v) - b * v)

    t0 = time.perf_counter()
    res = cr.optimize.minimize(energy, np.zeros(n), method="newton", sparse=True, tol=1e-8)
    wall = time.perf_counter() - t0
    gmax = float(np.abs(res.jac).max())
    if not (res.success and gmax < 1e-7):
        raise AssertionError(f"sparse Newton did not converge: {res.message}, |g| = {gmax}")
    rows.append(row("sparse Newton n=100,000: seconds", wall, unit="s", target=60.0,
                    on="value"))
    rows.append(row("sparse Newton n=100,000: iterations", res.nit, target=30, on="value"))
    notes.append(f"sparse Newton: max |gradient| = {gmax:.2e} after {res.nit} iterations")
    notes.append("baseline column: dense cr.jacfwd (first rows), NumPy f(x) (scaling rows), "
                 "chainrule f(x) (n=200,000 row)")
    details["time_per_variable_s"] = per_var
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "details": details}


if __name__ == "__main__":
    import json

    print(json.dumps(run(5), indent=2, default=str))
