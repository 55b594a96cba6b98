"""
A sparse PDE Jacobian
=====================

Sparse Jacobian of a 2-D nonlinear PDE residual, Newton's method, and a spy plot.

    python examples/sparse_pde_jacobian.py            # 300 x 300 grid: 90,000 unknowns
    python examples/sparse_pde_jacobian.py --fast     # 40 x 40 grid, a second or so
    python examples/sparse_pde_jacobian.py --out pattern.png

The Bratu problem ``-Laplace(u) = lam * exp(u)`` on the unit square with
``u = 0`` on the boundary, discretised with the 5-point stencil on an
``N x N`` grid of interior points, is written as a residual ``F(u)`` with
``chainrule.numpy`` (padding supplies the boundary values).  ``cr.sparse``
finds the Jacobian's sparsity from the traced program (no derivative is
evaluated for that), colours its columns (5 colours for the stencil, however
large the grid) and then computes each Jacobian with ONE batched
forward-mode pass of 5 tangents, straight into a SciPy CSR matrix.  Newton's
method solves ``F(u) = 0`` with SciPy's sparse direct solver; the sparsity
pattern (top-left corner) is drawn with matplotlib's ``spy`` into a PNG.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp


def bratu_residual(n: int, lam: float):
    """``F(u)`` for the Bratu problem on an ``n x n`` interior grid (u flattened)."""
    h2 = 1.0 / (n + 1) ** 2

    def residual(u):
        grid = cnp.pad(u.reshape(n, n), 1)  # zero Dirichlet boundary
        laplacian = (grid[:-2, 1:-1] + grid[2:, 1:-1] + grid[1:-1, :-2] + grid[1:-1, 2:]
                     - 4.0 * grid[1:-1, 1:-1]) / h2
        return (laplacian + lam * cnp.exp(grid[1:-1, 1:-1])).reshape(-1)

    return residual


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or '').strip().split('\n')[0])
    parser.add_argument("--n", type=int, default=300, help="interior points per side")
    parser.add_argument("--lam", type=float, default=5.0, help="Bratu parameter (< 6.8)")
    parser.add_argument("--fast", action="store_true", help="a 40 x 40 grid")
    parser.add_argument("--out", default="sparse_pde_pattern.png", help="spy plot PNG")
    args = parser.parse_args(argv)
    n = 40 if args.fast else args.n
    try:
        from scipy.sparse.linalg import spsolve
    except ImportError:
        print("this example needs SciPy: pip install 'chainrule[optimize]'")
        return 1

    F = bratu_residual(n, args.lam)
    u = np.zeros(n * n)
    t0 = time.perf_counter()
    J = cr.sparse.jacobian_fn(F, u)
    setup = time.perf_counter() - t0
    print(f"{n * n:,} unknowns: Jacobian {J.sparsity.shape}, {J.sparsity.nnz:,} nonzeros, "
          f"{J.colors} colours ({J.mode} mode), pattern + colouring in {setup:.2f} s")

    for it in range(20):
        r = np.asarray(F(u))
        norm = float(np.abs(r).max())
        print(f"Newton iteration {it}: max |F(u)| = {norm:.3e}")
        if norm < 1e-9:
            break
        t0 = time.perf_counter()
        Jx = J(u)
        t_jac = time.perf_counter() - t0
        u = u - spsolve(Jx.tocsc(), r)
        if it == 0:
            print(f"  one sparse Jacobian: {t_jac * 1e3:.1f} ms")
    print(f"max u = {u.max():.6f}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return 0
    corner = min(n * n, 3 * n)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.spy(J.sparsity[:corner, :corner], markersize=1)
    ax.set_title(f"Jacobian sparsity (first {corner} rows/columns), {J.colors} colours")
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(f"sparsity pattern drawn in {args.out}")
    return 0


if __name__ == "__main__":
    main()
