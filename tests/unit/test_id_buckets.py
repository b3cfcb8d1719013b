"""The event engine's deduplication buckets (``IdBuckets``) against plain Python.

First hashes are drawn from a small set so that ids share one (the second hash must tell
them apart), several bucket counts spread them over hash ranges, and a tiny buffer forces
appends to the bucket files between additions.
"""

import os

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptodudez.lake import id_buckets
from cryptodudez.lake.id_buckets import HELD, IdBuckets, buckets_for, id_hashes

FIRST = st.sampled_from([0, 1, 2**62, 2**63 + 5, 2**64 - 1])
KEYS = st.tuples(FIRST, st.integers(0, 3))


def _arrays(keys: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([k[0] for k in keys], dtype=np.uint64),
            np.array([k[1] for k in keys], dtype=np.uint64))


@settings(max_examples=200, deadline=None)
@given(held=st.lists(KEYS, max_size=8), batches=st.lists(st.lists(KEYS, max_size=12),
                                                         max_size=6),
       buckets=st.sampled_from([1, 2, 8]), buffer=st.sampled_from([1, 5, 1 << 20]))
def test_dropped_lines_are_repeats_and_held_ids(held: list[tuple[int, int]],
                                                batches: list[list[tuple[int, int]]],
                                                buckets: int, buffer: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(id_buckets, "BUFFER_IDS", buffer)
        expected, lines = [], []
        seen = set(held)
        line = 1
        with IdBuckets(buckets) as ids:
            ids.add(*_arrays(held), HELD)
            for batch in batches:
                numbers = np.arange(line, line + len(batch), dtype=np.int64)
                ids.add(*_arrays(batch), numbers)
                for key, n in zip(batch, numbers.tolist(), strict=True):
                    if key in seen:
                        expected.append(n)
                    seen.add(key)
                lines += numbers.tolist()
                line += len(batch) + 3  # lines need not be contiguous (blank lines)
            assert ids.dropped_lines().tolist() == expected
            added = [k for b in batches for k in b]
            everything = held + added
            repeated = {k for k in everything if everything.count(k) > 1}
            assert ids.repeats_by_origin() == (len(repeated & set(added)),
                                               len(repeated - set(added)))


def test_bucket_files_are_removed_and_nothing_is_left() -> None:
    with IdBuckets(4) as ids:
        ids.add(*id_hashes(pl.Series(["a", "b", "c", "a"])), np.arange(1, 5))
        ids.flush()
        folder = ids.folder
        assert ids.dropped_lines().tolist() == [4]
    assert not os.path.exists(folder)


def test_an_id_held_by_the_table_wins_over_its_first_line() -> None:
    with IdBuckets(2) as ids:
        ids.add(*id_hashes(pl.Series(["x", "y"])), np.array([1, 2]))
        ids.add_held(pl.Series(["y"]))
        assert ids.dropped_lines().tolist() == [2]


@pytest.mark.parametrize(("ids", "buckets"), [(0, 1), (1, 1), (1 << 20, 1),
                                              ((1 << 20) + 1, 2), (20_000_000, 32)])
def test_bucket_count_is_a_power_of_two_sized_for_the_ids(ids: int, buckets: int) -> None:
    assert buckets_for(ids) == buckets


def test_bucket_count_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        IdBuckets(3)
