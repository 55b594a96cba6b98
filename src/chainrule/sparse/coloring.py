"""Colourings of sparsity patterns: which columns (rows) one JVP (VJP) can share.

Column ``j`` and ``k`` may share a colour when no row has a nonzero in
both (a distance-2 colouring of the bipartite graph, i.e. a colouring of the
column-intersection graph ``P.T @ P``); rows likewise with ``P @ P.T``.
For symmetric Hessians, :func:`symmetric_coloring` returns a colouring in
which every nonzero ``H[i, j]`` can be read from the compressed product
either directly (column ``j`` is alone in row ``i`` among its colour) or by
symmetry (column ``i`` alone in row ``j``): the condition that star
colourings satisfy.

The greedy colouring is vectorised: a Jones-Plassmann sweep (every vertex
whose priority beats all its uncoloured neighbours takes the smallest colour
that none of its coloured neighbours has, all at once), which gives exactly
the sequential greedy colouring in priority order (largest degree first),
improved by iterated greedy passes.  Lattice colourings
``(j + s * (j // w)) mod k`` (optimal for banded patterns and 2-D stencils) are
tried first; the fewest colours win, and every colouring is verified.  Python
loops run over rounds, colours and candidates, never over vertices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._scipy import require_scipy

__all__ = ["column_coloring", "row_coloring", "symmetric_coloring", "intersection_graph",
           "is_symmetric_recoverable", "greedy_coloring", "n_colors"]

#: Intersection graphs with more entries than this are not formed (the side is left
#: uncompressed: one colour per column).
MAX_GRAPH_ENTRIES = 200_000_000
#: How many cyclic colourings past the lower bound are tried.
CYCLIC_TRIES = 6
#: Colour classes are merged (one verification per pair tried) only below this many.
MERGE_MAX_COLORS = 12
#: Most Jones-Plassmann rounds (dense graphs); later vertices get colours of their own.
MAX_ROUNDS = 256
#: Cyclic candidates and iterated passes only when this many colours might do.
CYCLIC_MAX_COLORS = 32
#: How many frequent index differences are tried as grid row lengths.
CYCLIC_WIDTHS = 6
#: Most passes of iterated greedy re-colouring (fewer on large graphs).
ITERATED_PASSES = 30


def intersection_graph(P: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Edges ``(r, c)`` (both directions, no loops) between columns of ``P`` sharing a row;
    ``None`` when the graph would be too large to form."""
    P = P.tocsr()
    counts = np.diff(P.indptr).astype(np.int64)
    if int((counts * counts).sum()) > MAX_GRAPH_ENTRIES:
        return None
    G = (P.T.tocsr() @ P).tocoo()
    keep = G.row != G.col
    return G.row[keep].astype(np.int64), G.col[keep].astype(np.int64)


def _smallest_missing(sel: np.ndarray, v: np.ndarray, c: np.ndarray) -> np.ndarray:
    """For each vertex in ``sel`` (sorted), the smallest colour not among the ``c`` paired
    with it in ``(v, c)``."""
    out = np.zeros(sel.size, dtype=np.int64)
    if v.size == 0:
        return out
    width = int(c.max()) + 1
    if sel.size * (width + 1) <= 50_000_000:  # a table of used colours: no sorting
        used = np.zeros((sel.size, width + 1), dtype=bool)
        used[np.searchsorted(sel, v), c] = True
        return np.argmin(used, axis=1).astype(np.int64)
    keys = np.unique(v * width + c)
    vu, cu = keys // width, keys % width
    starts = np.flatnonzero(np.r_[True, vu[1:] != vu[:-1]])
    counts = np.diff(np.r_[starts, vu.size])
    rank = np.arange(vu.size) - np.repeat(starts, counts)
    group = np.repeat(np.arange(starts.size), counts)
    answer = counts.copy()  # colours 0..count-1 all taken: the next one
    gap = cu != rank
    np.minimum.at(answer, group[gap], rank[gap])
    pos = np.searchsorted(sel, vu[starts])
    out[pos] = answer
    return out


def greedy_coloring(n: int, r: np.ndarray, c: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Greedy colouring of the graph with edges ``(r, c)`` in decreasing ``priority``."""
    colors = np.full(n, -1, dtype=np.int64)
    uncolored = np.ones(n, dtype=bool)
    rounds = int(max(16, min(MAX_ROUNDS, 2e8 // max(r.size, 1))))
    for _ in range(rounds):
        if not uncolored.any():
            break
        keep = uncolored[r]
        r, c = r[keep], c[keep]
        both = uncolored[c]
        blocked = np.zeros(n, dtype=bool)
        beaten = both & (priority[c] > priority[r])
        blocked[r[beaten]] = True
        sel_mask = uncolored & ~blocked
        sel = np.flatnonzero(sel_mask)
        nb = sel_mask[r] & ~both
        colors[sel] = _smallest_missing(sel, r[nb], colors[c[nb]])
        uncolored[sel] = False
    # dense graphs make long chains of rounds: what is left gets colours of its own
    rest = np.flatnonzero(uncolored)
    colors[rest] = int(colors.max()) + 1 + np.arange(rest.size)
    return colors


def _valid(colors: np.ndarray, r: np.ndarray, c: np.ndarray) -> bool:
    return not np.any(colors[r] == colors[c])


def _best_coloring(n: int, edges: tuple | None, lower: int, seed: int = 0) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if edges is None or lower >= n:  # (every column needs its own colour anyway)
        return np.arange(n, dtype=np.int64)
    r, c = edges
    degree = np.bincount(r, minlength=n)
    rng = np.random.default_rng(seed)
    # largest degree first, ties in random order; distinct priorities (no two neighbours
    # may ever be chosen in the same round)
    priority = np.empty(n, dtype=np.float64)
    priority[np.lexsort((rng.random(n), degree))] = np.arange(n)
    # the lattice candidates are cheap and optimal when they reach the lower bound
    cyclic = _cyclic_coloring(n, r, c, lower, lower + CYCLIC_TRIES, rng)
    if cyclic is not None and n_colors(cyclic) <= lower:
        return cyclic
    best = greedy_coloring(n, r, c, priority)
    if cyclic is not None and n_colors(cyclic) <= n_colors(best):
        return cyclic
    return _iterated_greedy(n, r, c, best, lower, rng)


def _cyclic_coloring(n: int, r: np.ndarray, c: np.ndarray, lower: int, above: int,
                     rng: np.random.Generator) -> np.ndarray | None:
    """A valid colouring ``(j + s * (j // w)) mod k`` with ``k < above`` colours, or None.

    Patterns of stencils and banded operators are shift-invariant: ``w = 1`` (plain
    ``j mod k``) is optimal for banded ones, and ``w`` = a row length of a grid (found among
    the most frequent index differences of the graph) with a shift ``s`` gives the
    optimal lattice colourings of 2-D stencils (``col + 2 row mod 5`` for 5 points).
    """
    if lower > CYCLIC_MAX_COLORS:
        return None
    j = np.arange(n, dtype=np.int64)
    diffs, counts = np.unique(np.abs(r - c), return_counts=True)
    widths = [1] + [int(d) for d in diffs[np.argsort(-counts)][:CYCLIC_WIDTHS] if d > 2]
    # a random sample of edges rejects most candidates cheaply
    sample = rng.integers(0, r.size, size=min(r.size, 100_000)) if r.size else r
    rs, cs = r[sample], c[sample]
    for k in range(max(lower, 1), min(above, lower + CYCLIC_TRIES)):
        for w in widths:
            for shift in range(k if w > 1 else 1):
                colors = (j + shift * (j // w)) % k
                if _valid(colors, rs, cs) and _valid(colors, r, c):
                    return colors
    return None


def _iterated_greedy(n: int, r: np.ndarray, c: np.ndarray, colors: np.ndarray, lower: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Re-colour greedily with each colour class kept together (never more colours;
    often fewer).  Each pass is cheap: the vertices of one class are independent, so the
    Jones-Plassmann sweep takes one round per class."""
    if int(colors.max()) + 1 > CYCLIC_MAX_COLORS:  # each pass costs a round per colour
        return colors
    passes = int(max(2, min(ITERATED_PASSES, 1e7 // max(r.size, 1))))
    for p in range(passes):
        k = int(colors.max()) + 1
        if k <= lower:
            break
        sizes = np.bincount(colors, minlength=k)
        if p % 3 == 0:
            order = np.arange(k)[::-1]  # reverse: the last classes go first
        elif p % 3 == 1:
            order = np.argsort(-sizes, kind="stable")  # largest classes first
        else:
            order = rng.permutation(k)
        rank = np.empty(k, dtype=np.float64)
        rank[order] = np.arange(k, 0, -1)
        trial = greedy_coloring(n, r, c, rank[colors])
        if int(trial.max()) + 1 <= k:
            colors = trial
    return colors


def column_coloring(pattern: Any) -> np.ndarray:
    """Colours of the columns of ``pattern`` (``(m, n)``) so that columns of one colour
    share no row: one JVP per colour recovers the Jacobian.

    >>> import numpy as np, scipy.sparse as sp
    >>> from chainrule.sparse import column_coloring
    >>> P = sp.csr_array(np.eye(4, dtype=bool) | np.eye(4, k=1, dtype=bool))
    >>> column_coloring(P)
    array([0, 1, 0, 1])
    """
    require_scipy("cr.sparse.column_coloring")
    P = pattern.tocsr()
    lower = int(np.diff(P.indptr).max()) if P.shape[0] and P.nnz else 1
    edges = intersection_graph(P)
    colors = _best_coloring(P.shape[1], edges, lower)
    if edges is not None and not _valid(colors, *edges):  # never hand out a bad colouring
        raise AssertionError("column colouring failed its verification")
    return colors


def row_coloring(pattern: Any) -> np.ndarray:
    """Colours of the rows of ``pattern`` so that rows of one colour share no column:
    one VJP per colour recovers the Jacobian."""
    require_scipy("cr.sparse.row_coloring")
    return column_coloring(pattern.T.tocsr())


def is_symmetric_recoverable(pattern: Any, colors: np.ndarray) -> bool:
    """Whether every nonzero of symmetric ``pattern`` can be read from the products with
    the colour classes, directly or by symmetry."""
    return bool(np.all(_direct_mask(pattern, colors) | _direct_mask(pattern, colors, True)))


def _direct_mask(pattern: Any, colors: np.ndarray, transposed: bool = False) -> np.ndarray:
    """For each stored entry ``(i, j)`` (CSR order), whether column ``j`` is the only one of
    its colour in row ``i`` (``transposed``: whether column ``i`` is alone in row ``j``)."""
    P = pattern.tocsr()
    P.sort_indices()
    rows = np.repeat(np.arange(P.shape[0], dtype=np.int64), np.diff(P.indptr))
    cols = P.indices.astype(np.int64)
    if rows.size == 0:
        return np.zeros(0, dtype=bool)
    k = int(colors.max()) + 1
    keys = rows * k + colors[cols]
    wanted = cols * k + colors[rows] if transposed else keys
    if P.shape[0] * k <= 8 * keys.size + 1_000_000:  # a table of counts fits: no sorting
        table = np.bincount(keys, minlength=P.shape[0] * k)
        return table[wanted] == 1
    keys, counts = np.unique(keys, return_counts=True)
    pos = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return (keys[pos] == wanted) & (counts[pos] == 1)


def symmetric_coloring(pattern: Any) -> np.ndarray:
    """Colours of the columns of symmetric ``pattern`` for Hessians: one HVP per colour;
    entries are read directly or, through symmetry, from their mirror image.

    Two candidates, the one with fewer colours wins: the distance-2 colouring, and a
    *hub* colouring that picks an independent set of high-degree vertices (hubs, as
    the centres of the stars of a star colouring) and lets the neighbours of a hub share
    colours: an entry ``(hub, j)`` is then read by symmetry from row ``j``, whose columns
    all differ.  Colour classes are then merged while every entry stays recoverable.
    Every result is verified (:func:`is_symmetric_recoverable`).

    >>> import numpy as np, scipy.sparse as sp
    >>> from chainrule.sparse import symmetric_coloring
    >>> arrow = np.eye(6, dtype=bool); arrow[0] = arrow[:, 0] = True
    >>> symmetric_coloring(sp.csr_array(arrow))
    array([0, 1, 1, 1, 1, 1])
    """
    require_scipy("cr.sparse.symmetric_coloring")
    P = pattern.tocsr()
    P.sort_indices()
    best = column_coloring(P)
    hub = _hub_coloring(P)
    if hub is not None and n_colors(hub) < n_colors(best) and is_symmetric_recoverable(P, hub):
        best = hub
    merged = _merge_classes(P, best)
    if not is_symmetric_recoverable(P, merged):  # cannot happen; never return a bad one
        raise AssertionError("symmetric colouring failed its verification")
    return merged


def _hub_coloring(P: Any) -> np.ndarray | None:
    """The hub colouring of :func:`symmetric_coloring` (None when there are no hubs)."""
    n = P.shape[0]
    degree = np.diff(P.indptr)
    if n == 0 or P.nnz == 0:
        return None
    threshold = max(8.0, 4.0 * float(np.median(degree)))
    candidates = degree > threshold
    if not candidates.any():
        return None
    # an independent set of hubs: a candidate joins unless a candidate neighbour has a
    # higher degree (ties: the higher index)
    rows = np.repeat(np.arange(n), degree)
    cols = P.indices.astype(np.int64)
    both = candidates[rows] & candidates[cols] & (rows != cols)
    key = degree.astype(np.float64) + np.arange(n) / (n + 1.0)
    beaten = np.zeros(n, dtype=bool)
    beaten[rows[both & (key[cols] > key[rows])]] = True
    hubs = candidates & ~beaten
    keep = ~hubs
    Pn = P[np.flatnonzero(keep)]
    counts = np.diff(Pn.indptr).astype(np.int64)
    if int((counts * counts).sum()) > MAX_GRAPH_ENTRIES:
        return None
    G = ((Pn.T.tocsr() @ Pn) + P).tocoo()
    off = G.row != G.col
    r, c = G.row[off].astype(np.int64), G.col[off].astype(np.int64)
    lower = int(counts.max()) if counts.size else 1
    return _best_coloring(n, (r, c), lower)


def _merge_classes(P: Any, colors: np.ndarray) -> np.ndarray:
    """Greedily fold colour classes into earlier ones while the colouring stays valid for
    symmetric recovery (one check per attempted pair of classes; few classes)."""
    k = int(colors.max()) + 1 if colors.size else 0
    if k <= 2 or k > MERGE_MAX_COLORS:
        return colors
    for src in range(k - 1, 0, -1):
        for dst in range(src):
            trial = np.where(colors == src, dst, colors)
            if is_symmetric_recoverable(P, trial):
                colors = trial
                break
    _, colors = np.unique(colors, return_inverse=True)
    return colors.astype(np.int64)


def n_colors(colors: np.ndarray) -> int:
    return int(colors.max()) + 1 if colors.size else 0

