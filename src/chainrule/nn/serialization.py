"""Saving and loading state dicts as ``.npz`` files (no pickle, ever).

>>> import os, tempfile, chainrule as cr
>>> model = cr.nn.Linear(3, 2)
>>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
>>> model.save(path)
>>> state = cr.nn.load_state(path)
>>> sorted(state)
['bias', 'weight']
>>> model.load_state_dict(state)
LoadResult(missing_keys=[], unexpected_keys=[])
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["save_state", "load_state"]


def save_state(state: Mapping[str, Any], path: Any) -> None:
    """Write ``{name: array}`` to exactly ``path`` as an uncompressed ``.npz`` archive."""
    arrays = {str(k): np.asarray(v) for k, v in state.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise TypeError(f"save: entry {k!r} is not a numeric array (dtype object)")
    with open(os.fspath(path), "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # (names are entry keys)


def load_state(path: Any) -> dict[str, np.ndarray]:
    """Read a state dict written by :meth:`Module.save` (``np.load`` with ``allow_pickle=False``).

    A missing file raises ``FileNotFoundError``, a file that is not a valid
    ``.npz`` archive raises ``ValueError``; both messages name the file.
    """
    name = os.fspath(path)
    try:
        data = np.load(name, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"cannot read state file {name!r}: no such file") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"cannot read state file {name!r}: it is a directory") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"cannot read state file {name!r}: it is not a valid .npz archive "
                         f"({exc})") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"cannot read state file {name!r}: it holds a single array, not an "
                         ".npz archive of named arrays")
    try:
        with data:
            return {k: np.array(data[k]) for k in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"cannot read state file {name!r}: a corrupt or unreadable entry "
                         f"({exc})") from exc
