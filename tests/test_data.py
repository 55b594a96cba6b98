"""Tests for chainrule.data.DataLoader."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.data import DataLoader


def _epoch(loader):
    return [tuple(np.asarray(a) for a in batch) for batch in loader]


def test_sequential_batches_in_order():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    batches = _epoch(DataLoader(x, y, batch_size=4))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    for xb, yb in batches:
        np.testing.assert_array_equal(xb, x[yb])


def test_single_array_yields_one_tuple():
    batches = list(DataLoader(np.arange(5), batch_size=5))
    assert len(batches) == 1
    assert isinstance(batches[0], tuple) and len(batches[0]) == 1


@given(
    n=st.integers(0, 60),
    batch_size=st.integers(1, 70),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=100, deadline=None)
def test_every_sample_once_per_epoch(n, batch_size, shuffle, drop_last, seed):
    x = np.arange(n)
    y = np.arange(n) * 10
    loader = DataLoader(
        x, y, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed
    )
    for _ in range(2):
        batches = _epoch(loader)
        assert len(batches) == len(loader)
        for xb, yb in batches:
            assert len(xb) == batch_size or (not drop_last and xb is batches[-1][0])
            np.testing.assert_array_equal(yb, xb * 10)  # arrays stay aligned
        seen = np.concatenate([xb for xb, _ in batches]) if batches else np.array([], int)
        if drop_last:
            assert len(seen) == (n // batch_size) * batch_size
            assert len(np.unique(seen)) == len(seen)
        else:
            assert sorted(seen.tolist()) == list(range(n))


def test_drop_last():
    loader = DataLoader(np.arange(10), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [b.tolist() for (b,) in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    loader = DataLoader(np.arange(8), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert len(DataLoader(np.arange(3), batch_size=4, drop_last=True)) == 0
    assert list(DataLoader(np.arange(3), batch_size=4, drop_last=True)) == []


def test_len():
    assert len(DataLoader(np.arange(10), batch_size=3)) == 4
    assert len(DataLoader(np.arange(9), batch_size=3)) == 3
    assert len(DataLoader(np.arange(0), batch_size=3)) == 0
    assert len(DataLoader(np.arange(10), batch_size=100)) == 1


def test_shuffle_reproducible_for_seed():
    def run(seed):
        loader = DataLoader(np.arange(50), batch_size=7, shuffle=True, seed=seed)
        return [np.concatenate([b for (b,) in loader]).tolist() for _ in range(3)]

    assert run(123) == run(123)
    assert run(123) != run(124)


def test_shuffled_epochs_differ():
    loader = DataLoader(np.arange(100), batch_size=10, shuffle=True, seed=0)
    first = np.concatenate([b for (b,) in loader])
    second = np.concatenate([b for (b,) in loader])
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(100))
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(100))


def test_no_shuffle_epochs_identical():
    loader = DataLoader(np.arange(10), batch_size=3, seed=5)
    assert [b.tolist() for (b,) in loader] == [b.tolist() for (b,) in loader]


def test_multidimensional_rows_stay_together():
    x = np.random.default_rng(0).normal(size=(30, 3, 4))
    labels = np.arange(30)
    for xb, lb in DataLoader(x, labels, batch_size=8, shuffle=True, seed=1):
        assert xb.shape[1:] == (3, 4)
        np.testing.assert_array_equal(xb, x[lb])


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match=r"10.*9"):
        DataLoader(np.arange(10), np.arange(9), batch_size=2)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_batch_size_raises(bad):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(np.arange(10), batch_size=bad)


def test_no_arrays_raises():
    with pytest.raises(ValueError):
        DataLoader(batch_size=2)


def test_scalar_array_raises():
    with pytest.raises(ValueError):
        DataLoader(np.float64(1.0), batch_size=1)
