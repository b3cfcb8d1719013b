"""Rollup rows: counts and sketches per (type, date, hour), fed a few rows at a time."""

import itertools
from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptodudez.lake import rollups
from cryptodudez.lake.event_ingest import hour_ranges
from cryptodudez.lake.rollups import hll_union, rollup_rows


def _estimate(blob: bytes | None) -> int | None:
    sketch = hll_union([blob])
    return round(sketch.get_estimate()) if sketch is not None else None


@pytest.mark.parametrize("slice_rows", [1, 3, 100])
def test_each_rollup_row_sketches_its_own_ids_and_users(
        slice_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollups, "SKETCH_SLICE", slice_rows)  # 3: a partial last slice
    frames = []
    for hour in range(7):  # hour h holds h + 1 events, h + 1 ids, and h // 2 users (or none)
        n = hour + 1
        frames.append(pl.DataFrame({
            "id": [f"id-{hour}-{i}" for i in range(n)],
            "event_type": ["t"] * n, "date": [date(2026, 11, 1)] * n, "hour": [hour] * n,
            "user_id": [f"u{i % (hour // 2)}" if hour >= 2 else None for i in range(n)],
        }, schema_overrides={"hour": pl.Int32, "user_id": pl.String}))
    rows = pl.concat(frames).sample(fraction=1.0, shuffle=True, seed=1)
    out = rollup_rows(rows, partition_key="events/a", table_version=3)
    assert out["hour"].to_list() == list(range(7))
    assert out["events"].to_list() == [h + 1 for h in range(7)]
    assert [_estimate(b) for b in out["ids_hll"]] == [h + 1 for h in range(7)]
    assert [_estimate(b) for b in out["users_hll"]] == [None, None, 1, 1, 2, 2, 3]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=24, max_size=24), st.integers(1, 120))
def test_hour_ranges_cover_the_day_once_within_the_limit(per_hour: list[int],
                                                         limit: int) -> None:
    ranges = hour_ranges(per_hour, limit)
    assert [h for lo, hi in ranges for h in range(lo, hi + 1)] == list(range(24))
    for lo, hi in ranges:
        held = sum(per_hour[lo:hi + 1])
        assert held <= limit or lo == hi  # over the limit only as a single hour
    # Greedy: no two neighbouring ranges would fit in one.
    for (lo, _), (_, hi) in itertools.pairwise(ranges):
        assert sum(per_hour[lo:hi + 1]) > limit


def test_a_skewed_day_is_cut_where_its_rows_are() -> None:
    per_hour = [0] * 24
    per_hour[20], per_hour[21] = 900, 900  # evening-heavy: equal-length ranges would not do
    assert hour_ranges(per_hour, 1000) == [(0, 20), (21, 23)]
    assert hour_ranges([10] * 24, 1000) == [(0, 23)]
