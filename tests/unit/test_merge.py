"""Latest delivery wins, deterministically."""

from datetime import UTC, datetime

import polars as pl

from cryptodudez.datasets.merge import resolve_latest


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
