"""Latest delivery wins, deterministically."""

from datetime import UTC, datetime

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from cryptodudez.checks.tables import keys_unique
from cryptodudez.datasets.merge import (
    repeated_keys,
    repeated_values,
    resolve_latest,
    rows_with_repeated_keys,
)


def test_latest_landed_wins_then_last_read() -> None:
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    rows = pl.DataFrame({
        "id": [1, 1, 2, 2, 3],
        "_landed_at": [t1, t2, t2, t2, t1],
        "_partition": ["a", "b", "b", "b", "a"],
        "_source": ["s1", "s2", "s2", "s3", "s1"],
        "_line": [2, 2, 3, 2, 4],
    })
    wins = resolve_latest(rows, ["id"])["_wins"].to_list()
    assert wins == [False, True, False, True, True]
    shuffled = resolve_latest(rows.reverse(), ["id"])["_wins"].to_list()
    assert shuffled == list(reversed(wins))


def test_repeated_keys_finds_every_repeat_and_nothing_else() -> None:
    rows = pl.LazyFrame({
        "Symbol": ["A", "A", "B", "B", "B", "C"],
        "Date": ["d1", "d2", "d1", "d1", "d1", "d1"],
        "Volume": [1, 2, 3, 4, 5, 6],
    })
    assert repeated_keys(rows, ("Symbol", "Date")).rows() == [("B", "d1", 3)]
    repeats = rows_with_repeated_keys(rows, ("Symbol", "Date"))
    assert sorted(repeats["Volume"].to_list()) == [3, 4, 5]
    assert repeated_keys(rows, ("Symbol", "Date", "Volume")).height == 0


def test_keys_unique_check_fails_and_names_the_repeated_keys() -> None:
    repeated = repeated_keys(pl.LazyFrame({"tweet_id": [1, 2, 2]}), ("tweet_id",))
    result = keys_unique("tweets", ("tweet_id",), repeated)
    assert not result.passed
    assert result.metadata["failing_count"].value == 1


def test_landed_time_decides_even_when_partition_names_sort_the_other_way() -> None:
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    rows = pl.DataFrame({
        "id": [1, 1, 2, 2, 3, 3, 3],
        # The later landing has the alphabetically earlier partition (and source) every time.
        "_landed_at": [late, early, early, late, early, late, early],
        "_partition": ["a.zip", "b.zip", "z.zip", "m.zip", "c.zip", "b.zip", "a.zip"],
        "_source": ["s-a", "s-b", "s-z", "s-m", "s-c", "s-b", "s-a"],
        "_line": [2, 9, 9, 2, 9, 2, 9],
    })
    assert resolve_latest(rows, ["id"])["_wins"].to_list() == [
        True, False, False, True, False, True, False]
    assert resolve_latest(rows.reverse(), ["id"])["_wins"].to_list() == [
        False, True, False, True, False, False, True]


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1) | st.sampled_from([0, 7, 2**64 - 1]),
                max_size=60))
def test_repeated_values_are_exactly_the_values_seen_twice(values: list[int]) -> None:
    expected = {v for v in values if values.count(v) > 1}
    found = repeated_values(pl.Series(values, dtype=pl.UInt64))
    assert found.len() == len(expected)
    assert set(found.to_list()) == expected
