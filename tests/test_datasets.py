"""Tests for chainrule.datasets (bundled digits, IDX/MNIST reader)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from chainrule.datasets import load_digits, load_mnist


def test_digits_shapes_and_dtypes():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8)
    assert images.dtype == np.float64
    assert labels.shape == (1797,)
    assert labels.dtype == np.int64


def test_digits_values():
    images, labels = load_digits()
    assert images.min() == 0.0 and images.max() == 16.0
    assert np.array_equal(images, np.round(images))
    assert set(np.unique(labels).tolist()) == set(range(10))
    counts = np.bincount(labels, minlength=10)
    assert counts.sum() == 1797
    assert counts.min() >= 170 and counts.max() <= 190
    # Digits are not blank, and the classes look different from each other.
    assert (images.reshape(1797, -1).sum(axis=1) > 0).all()
    means = np.stack([images[labels == k].mean(axis=0) for k in range(10)])
    assert np.abs(means[0] - means[1]).sum() > 50


def test_digits_returns_fresh_arrays():
    a, _ = load_digits()
    a[0, 0, 0] = 99.0
    b, _ = load_digits()
    assert b[0, 0, 0] != 99.0


def _idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def _write_mnist(directory: Path, gz: bool, n_train=5, n_test=3, side=28, seed=0):
    rng = np.random.default_rng(seed)
    data = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, arr in data.items():
        raw = _idx_bytes(arr)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / name).write_bytes(raw)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_roundtrip(tmp_path, gz):
    data = _write_mnist(tmp_path, gz)
    (x_train, y_train), (x_test, y_test) = load_mnist(tmp_path)
    assert x_train.shape == (5, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (3, 28, 28) and x_test.dtype == np.uint8
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    np.testing.assert_array_equal(x_train, data["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_train, data["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(x_test, data["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_test, data["t10k-labels-idx1-ubyte"])


def test_load_mnist_uses_stated_dims_and_str_path(tmp_path):
    _write_mnist(tmp_path, gz=False, n_train=4, n_test=2, side=7)
    (x_train, _), (x_test, _) = load_mnist(str(tmp_path))
    assert x_train.shape == (4, 7, 7)
    assert x_test.shape == (2, 7, 7)


def test_load_mnist_mixed_plain_and_gz(tmp_path):
    _write_mnist(tmp_path, gz=True)
    name = "t10k-labels-idx1-ubyte"
    gz_path = tmp_path / f"{name}.gz"
    (tmp_path / name).write_bytes(gzip.decompress(gz_path.read_bytes()))
    gz_path.unlink()
    (_, _), (_, y_test) = load_mnist(tmp_path)
    assert y_test.shape == (3,)


@pytest.mark.parametrize(
    "missing",
    [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ],
)
def test_load_mnist_missing_file_named(tmp_path, missing):
    _write_mnist(tmp_path, gz=False)
    (tmp_path / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        load_mnist(tmp_path)


def test_load_mnist_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path / "nowhere")


def test_load_mnist_bad_magic(tmp_path):
    _write_mnist(tmp_path, gz=False)
    bad = tmp_path / "train-labels-idx1-ubyte"
    bad.write_bytes(b"\x12\x34\x56\x78" + bad.read_bytes()[4:])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_load_mnist_truncated(tmp_path):
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-10]))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path)


def test_load_mnist_count_mismatch(tmp_path):
    _write_mnist(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(4)))
    with pytest.raises(ValueError, match="train"):
        load_mnist(tmp_path)
