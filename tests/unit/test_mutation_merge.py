"""Latest-wins merge: behaviour the mutation run found untested (docs/mutation.md)."""

from datetime import UTC, datetime

import polars as pl

from cryptodudez.datasets.merge import resolve_latest


def test_when_no_key_repeats_every_row_wins() -> None:
    """The usual delivery (no shared key) keeps every row: none is dropped as a loser."""
    t = datetime(2026, 1, 1, tzinfo=UTC)
    rows = pl.DataFrame({
        "id": [1, 2, 3],
        "_landed_at": [t, t, t],
        "_partition": ["a", "a", "b"],
        "_source": ["s", "s", "s"],
        "_line": [2, 3, 4],
    })
    out = resolve_latest(rows, ["id"])
    assert out.schema["_wins"] == pl.Boolean
    assert out["_wins"].to_list() == [True, True, True]
    assert out.filter(~pl.col("_wins")).height == 0
    assert out.drop("_wins").equals(rows)
