"""SP2: cr.sparse next to asdex (sparse Jacobians/Hessians on JAX), same problems, same run.

Problems: a banded residual (tridiagonal, n = 10^4), a 5-point stencil with a
cubic term on a 100 x 100 grid, and the Hessian of a tridiagonal energy
(n = 10^4).  For each: colours found by both, and the time of one sparse
Jacobian (Hessian) at a point, with the pattern and colouring computed
beforehand: chainrule's default ``J(x)`` (which replays its recorded pass
while ``f``'s environment is unchanged, checked on every call) and with
``compile=True`` (``cr.compile``, numba fusion when installed, closed-over
values frozen); asdex eagerly and under ``jax.jit``.  Both sides are timed
in their steady state (after warm-up calls: chainrule's first call runs
eagerly and its second records; jit compiles on its first).
Targets: no more colours than asdex; the default ``J(x)`` within 2x of
asdex-under-jit; ahead of asdex eagerly.  Skipped when asdex (or JAX) is
not installed.
"""

from __future__ import annotations

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp
from common import compare, row, skipped

NAME = "SP2"
TITLE = "cr.sparse vs asdex (JAX)"
N_BAND = 10_000
GRID = 100


def _problems(xp):
    """(name, kind, f, n) for one array namespace (chainrule.numpy or jax.numpy)."""

    def banded(x):
        inner = x[2:] - 2.0 * x[1:-1] + x[:-2] + 0.1 * xp.exp(x[1:-1])
        return xp.concatenate([x[:1], inner, x[-1:] ** 2])

    def stencil(x):
        u = x.reshape(GRID, GRID)
        up = xp.pad(u, 1)
        lap = up[:-2, 1:-1] + up[2:, 1:-1] + up[1:-1, :-2] + up[1:-1, 2:] - 4.0 * u
        return (lap + u ** 3).reshape(-1)

    def energy(x):
        return xp.sum((x[1:] - x[:-1]) ** 2) + xp.sum(xp.cosh(x))

    return [("banded", "jac", banded, N_BAND), ("stencil", "jac", stencil, GRID * GRID),
            ("tridiagonal Hessian", "hess", energy, N_BAND)]


def run(repeats: int) -> dict:
    try:
        import asdex
        import jax
        import jax.numpy as jnp
    except ImportError:
        return skipped(NAME, TITLE, "asdex / JAX not installed")
    try:
        import scipy  # noqa: F401
    except ImportError:
        return skipped(NAME, TITLE, "SciPy (the optimize extra) is not installed")
    jax.config.update("jax_enable_x64", True)
    rows, notes, details = [], [], {}
    rng = np.random.default_rng(0)
    for (name, kind, f_cr, n), (_, _, f_jax, _) in zip(_problems(cnp), _problems(jnp)):
        x = rng.uniform(-0.5, 0.5, n)
        xj = jnp.asarray(x)
        if kind == "jac":
            ours = cr.sparse.jacobian_fn(f_cr, x)
            ours_c = cr.sparse.jacobian_fn(f_cr, x, compile=True)
            coloring = asdex.jacobian_coloring(f_jax, xj)
            theirs = asdex.jacobian_from_coloring(f_jax, coloring)
        else:
            ours = cr.sparse.hessian_fn(f_cr, x)
            ours_c = cr.sparse.hessian_fn(f_cr, x, compile=True)
            coloring = asdex.hessian_coloring(f_jax, xj)
            theirs = asdex.hessian_from_coloring(f_jax, coloring)
        jitted = jax.jit(theirs)
        ref = theirs(xj).todense().reshape(ours.sparsity.shape)
        diff = max(float(np.abs(ours(x).toarray() - np.asarray(ref)).max()),
                   float(np.abs(ours_c(x).toarray() - np.asarray(ref)).max()))
        if diff > 1e-9:
            raise AssertionError(f"{name}: chainrule and asdex differ by {diff}")
        jitted(xj).data.block_until_ready()
        t = compare({
            "chainrule": lambda ours=ours, x=x: ours(x),
            "chainrule_compiled": lambda ours_c=ours_c, x=x: ours_c(x),
            "asdex_eager": lambda theirs=theirs, xj=xj: theirs(xj).data.block_until_ready(),
            "asdex_jit": lambda jitted=jitted, xj=xj: jitted(xj).data.block_until_ready(),
        }, max(3, repeats // 3))
        ms = {k: v["median"] * 1e3 for k, v in t.items()}
        rows.append(row(f"{name}: colours (vs asdex)", ours.colors, coloring.num_colors,
                        target=1.0))
        rows.append(row(f"{name}: ms per call, default vs asdex jit", ms["chainrule"],
                        ms["asdex_jit"], unit="ms", target=2.0))
        rows.append(row(f"{name}: ms per call, compile=True vs asdex jit",
                        ms["chainrule_compiled"], ms["asdex_jit"], unit="ms"))
        rows.append(row(f"{name}: ms per call, default vs asdex eager", ms["chainrule"],
                        ms["asdex_eager"], unit="ms", target=1.0))
        details[name] = {"timings_s": t, "colors": ours.colors,
                         "asdex_colors": coloring.num_colors,
                         "replayed_calls": ours.replay.replays if ours.replay else 0}
    notes.append("patterns and colourings computed before timing, on both sides; results "
                 "agree to 1e-9; 'default' is cr.sparse.jacobian_fn(f, x)(x) (replayed, "
                 "environment checked per call)")
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "details": details}


if __name__ == "__main__":
    import json

    print(json.dumps(run(5), indent=2, default=str))
