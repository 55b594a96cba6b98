"""Small bundled data sets and readers for standard data files.

``load_digits`` returns the UCI "Optical Recognition of Handwritten Digits"
data set (E. Alpaydin and C. Kaynak, 1998; UCI Machine Learning Repository,
https://doi.org/10.24432/C50P49, licensed CC BY 4.0): 1,797 grey-scale 8x8
images of the digits 0-9 with pixel values 0..16. The data ships inside the
package (``digits.npz``, extracted once from scikit-learn's bundled copy), so
no network access is needed.

``load_mnist`` reads the four standard MNIST IDX files from a directory you
supply (plain or gzipped); nothing is downloaded.

Example:
    >>> from chainrule.datasets import load_digits
    >>> images, labels = load_digits()
    >>> images.shape, labels.shape
    ((1797, 8, 8), (1797,))
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

__all__ = ["load_digits", "load_mnist"]

_HERE = Path(__file__).resolve().parent

# IDX type codes (third byte of the magic number) -> big-endian dtype.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return the bundled 8x8 handwritten digits.

    Returns:
        ``(images, labels)``: ``images`` is a float64 array of shape
        ``(1797, 8, 8)`` with values in ``0..16``; ``labels`` is an int64
        array of shape ``(1797,)`` with values in ``0..9``.

    Example:
        >>> from chainrule.datasets import load_digits
        >>> x, y = load_digits()
        >>> float(x.max()), int(y.max())
        (16.0, 9)
    """
    with np.load(_HERE / "digits.npz", allow_pickle=False) as data:
        images = data["images"].astype(np.float64)
        labels = data["labels"].astype(np.int64)
    return images, labels


def _read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (plain or gzipped) into an array of its stated shape."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read IDX file {path.name!r}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        magic = raw[:4].hex() if raw else "empty file"
        raise ValueError(f"{path.name!r} is not an IDX file (bad magic number: {magic})")
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {path.name!r} is truncated (incomplete header)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(
            f"IDX file {path.name!r} has {len(raw) - header} data bytes, "
            f"expected {count * dtype.itemsize} for shape {dims}"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"MNIST file {name!r} (or {name + '.gz'!r}) not found in {directory}")


def load_mnist(
    path: str | Path,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Read MNIST (or any data set in the same layout) from IDX files.

    ``path`` must hold ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each either
    plain or with a ``.gz`` suffix.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: images as uint8 arrays of the
        shape the files state (``(N, 28, 28)`` for MNIST), labels as int64.

    Raises:
        FileNotFoundError: a file is missing (the message names it).
        ValueError: a file is not a valid IDX file, or image and label
            counts disagree.

    Example:
        >>> from chainrule.datasets import load_mnist
        >>> (x_train, y_train), (x_test, y_test) = load_mnist("~/data/mnist")  # doctest: +SKIP
    """
    directory = Path(path).expanduser()
    arrays = [_read_idx(_find(directory, name)) for name in _MNIST_FILES]
    x_train, y_train, x_test, y_test = arrays
    out = []
    for split, x, y in (("train", x_train, y_train), ("t10k", x_test, y_test)):
        if y.ndim != 1:
            raise ValueError(f"{split} labels must be 1-D, got shape {y.shape}")
        if x.ndim < 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{split} images ({x.shape[0] if x.ndim else 0}) and labels ({y.shape[0]}) "
                "differ in number"
            )
        out.append((x.astype(np.uint8, copy=False), y.astype(np.int64)))
    return out[0], out[1]
