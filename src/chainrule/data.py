"""Mini-batch iteration over arrays.

Example:
    >>> import numpy as np
    >>> from chainrule.data import DataLoader
    >>> x, y = np.arange(10).reshape(5, 2), np.arange(5)
    >>> loader = DataLoader(x, y, batch_size=2)
    >>> len(loader)
    3
    >>> [yb.tolist() for _, yb in loader]
    [[0, 1], [2, 3], [4]]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over aligned arrays in mini-batches.

    Each pass (epoch) over the loader yields tuples ``(a_batch, b_batch, ...)``
    holding slices of every input array along axis 0; every sample appears
    exactly once per epoch (unless ``drop_last`` drops an incomplete final
    batch).

    Args:
        *arrays: one or more arrays (anything with ``shape``/``len`` and
            integer-array or slice indexing) sharing their first dimension.
        batch_size: samples per batch, at least 1.
        shuffle: draw a fresh random order every epoch.
        drop_last: drop the last batch if it is smaller than ``batch_size``.
        seed: seed for ``numpy.random.default_rng``; the generator persists
            across epochs, so epochs differ but the whole sequence is
            reproducible for a given seed.

    Example:
        >>> import numpy as np
        >>> from chainrule.data import DataLoader
        >>> loader = DataLoader(np.arange(6), batch_size=4, shuffle=True, seed=0)
        >>> sorted(int(v) for (b,) in loader for v in b)
        [0, 1, 2, 3, 4, 5]
    """

    def __init__(
        self,
        *arrays: Any,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
    ) -> None:
        if not arrays:
            raise ValueError("DataLoader needs at least one array")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        lengths = [_length(a) for a in arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"all arrays must have the same length along axis 0, got {lengths}")
        self.arrays = arrays
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.num_samples = lengths[0]
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        n, bs = self.num_samples, self.batch_size
        order = self._rng.permutation(n) if self.shuffle else None
        stop = (n // bs) * bs if self.drop_last else n
        for start in range(0, stop, bs):
            end = min(start + bs, n)
            index = slice(start, end) if order is None else order[start:end]
            yield tuple(a[index] for a in self.arrays)


def _length(array: Any) -> int:
    shape = getattr(array, "shape", None)
    if shape is not None:
        if len(shape) == 0:
            raise ValueError("DataLoader arrays must have at least one dimension")
        return int(shape[0])
    return len(array)
