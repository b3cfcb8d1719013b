"""The event engine's deduplication state (``_SeenIds``) against a plain Python set.

First hashes are drawn from a tiny range so that many keys share one (the branch that
compares second hashes over a run of equal first hashes), queries are in any order and hold
repeats, and the state is filled in several batches so it holds several merged chunks.
"""

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptodudez.lake import event_ingest
from cryptodudez.lake.event_ingest import _SeenIds

keys = st.tuples(st.integers(0, 7), st.integers(0, 2**64 - 1))


def _state(batches: list[list[tuple[int, int]]]) -> _SeenIds:
    seen = _SeenIds()
    for batch in batches:
        if not batch:
            continue
        h0 = np.array([k[0] for k in batch], dtype=np.uint64)
        h1 = np.array([k[1] for k in batch], dtype=np.uint64)
        order = np.argsort(h0, kind="stable")
        seen.chunks.append((h0[order], h1[order]))
    return seen


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(keys, max_size=40), max_size=6), st.lists(keys, max_size=60))
def test_contains_is_set_membership(batches: list[list[tuple[int, int]]],
                                    queries: list[tuple[int, int]]) -> None:
    seen = _state(batches)
    held = {k for batch in batches for k in batch}
    h0 = np.array([q[0] for q in queries], dtype=np.uint64)
    h1 = np.array([q[1] for q in queries], dtype=np.uint64)
    assert seen.contains(h0, h1).tolist() == [q in held for q in queries]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abcdefghijklmnop"), max_size=12), max_size=8),
       st.sampled_from([1, 3, 1 << 22]))
def test_unseen_keeps_first_occurrences_only(batches: list[list[str]], cap: int) -> None:
    with pytest.MonkeyPatch.context() as patch:  # a small cap keeps many unmerged chunks
        patch.setattr(event_ingest, "MERGE_CAP", cap)
        _first_occurrences(batches)


def _first_occurrences(batches: list[list[str]]) -> None:
    seen = _SeenIds()
    kept: list[str] = []
    for n, ids in enumerate(batches):
        rows = pl.DataFrame({"id": pl.Series(ids, dtype=pl.String),
                             "n": pl.Series([n] * len(ids), dtype=pl.Int64)})
        fresh = seen.unseen(rows)
        seen.add(fresh["id"])
        kept += fresh["id"].to_list()
    expected = list(dict.fromkeys(i for ids in batches for i in ids))
    assert kept == expected
    assert sum(len(c[0]) for c in seen.chunks) == len(expected)


def test_merges_stop_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_ingest, "MERGE_CAP", 4)
    seen = _SeenIds()
    for batch in (["a", "b"], ["c", "d"], ["e", "f"], ["g", "h"]):
        seen.add(pl.Series(batch))
    assert [len(c[0]) for c in seen.chunks] == [4, 4]  # uncapped: one chunk of 8
    assert seen.contains(*_SeenIds._keys(pl.Series(["h", "z"]))).tolist() == [True, False]
