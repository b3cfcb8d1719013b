"""The point-in-time join against a brute-force reference (the way Feast tests its stores)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from cryptodudez.features.pit import PointInTimeError, point_in_time_join

T0 = datetime(2021, 1, 1, tzinfo=UTC)


def brute_force(spine: pl.DataFrame, view: pl.DataFrame, ttl: timedelta) -> list[tuple]:
    """Per spine row: the value of the latest event known at the decision time, or None."""
    rows = view.to_dicts()
    out = []
    for s in spine.to_dicts():
        known = [r for r in rows if r["entity"] == s["entity"] and r["available_at"] <= s["at"]]
        if not known:
            out.append((None, None))
            continue
        best = max(known, key=lambda r: (r["event_time"], r["available_at"], r["seq"]))
        if best["event_time"] < s["at"] - ttl:
            out.append((None, None))
        else:
            out.append((best["value"], best["event_time"]))
    return out


def generated(seed: int, n_view: int = 300, n_spine: int = 200) -> tuple[pl.DataFrame, ...]:
    """Coarse timestamps (many ties), late rows, corrections, unsorted order."""
    rng = np.random.default_rng(seed)
    hours = rng.integers(0, 60, n_view)
    delay = np.where(rng.random(n_view) < 0.3, rng.integers(0, 30, n_view), 0)  # late rows
    view = pl.DataFrame({
        "entity": rng.choice(["a", "b", "c"], n_view).tolist(),
        "event_time": [T0 + timedelta(hours=int(h)) for h in hours],
        "available_at": [T0 + timedelta(hours=int(h + d)) for h, d in zip(hours, delay,
                                                                          strict=True)],
        "value": rng.normal(size=n_view),
    }).with_row_index("seq").sample(fraction=1.0, shuffle=True, seed=seed)  # unsorted input
    spine = pl.DataFrame({
        "entity": rng.choice(["a", "b", "c", "d"], n_spine).tolist(),
        "at": [T0 + timedelta(hours=int(h)) for h in rng.integers(-5, 100, n_spine)],
        "row": np.arange(n_spine),
    })
    return spine, view


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("ttl_hours", [0, 3, 1000])
def test_matches_brute_force(seed: int, ttl_hours: int) -> None:
    spine, view = generated(seed)
    ttl = timedelta(hours=ttl_hours)
    # A unique tiebreak so the reference is well defined when two rows tie on both times:
    # the join keeps the row that came last in (available_at, event_time, input) order.
    view = view.sort("seq")
    got = point_in_time_join(spine, view.drop("seq"), at="at", event_time="event_time",
                             available_at="available_at", ttl=ttl, by=["entity"],
                             prefix="f_")
    assert got.height == spine.height
    assert got["row"].to_list() == spine["row"].to_list()  # the spine's order is kept
    expected = brute_force(spine, view, ttl)
    assert list(zip(got["f_value"].to_list(), got["f_event_time"].to_list(),
                    strict=True)) == expected


def test_equal_timestamps_match_and_one_microsecond_later_does_not() -> None:
    view = pl.DataFrame({"event_time": [T0], "available_at": [T0], "value": [1.0]})
    spine = pl.DataFrame({"at": [T0 - timedelta(microseconds=1), T0]})
    got = point_in_time_join(spine, view, at="at", event_time="event_time",
                             available_at="available_at", ttl=timedelta(days=1))
    assert got["value"].to_list() == [None, 1.0]


def test_late_row_does_not_replace_a_newer_event() -> None:
    # Event at 10:00 known at 10:00; an older event (08:00) arrives late, at 12:00.
    view = pl.DataFrame({
        "event_time": [T0 + timedelta(hours=10), T0 + timedelta(hours=8)],
        "available_at": [T0 + timedelta(hours=10), T0 + timedelta(hours=12)],
        "value": [10.0, 8.0],
    })
    spine = pl.DataFrame({"at": [T0 + timedelta(hours=h) for h in (9, 11, 13)]})
    got = point_in_time_join(spine, view, at="at", event_time="event_time",
                             available_at="available_at", ttl=timedelta(days=1))
    assert got["value"].to_list() == [None, 10.0, 10.0]


def test_a_correction_wins_once_known() -> None:
    view = pl.DataFrame({
        "event_time": [T0, T0],
        "available_at": [T0, T0 + timedelta(hours=5)],
        "value": [1.0, 2.0],
    })
    spine = pl.DataFrame({"at": [T0 + timedelta(hours=h) for h in (1, 5, 6)]})
    got = point_in_time_join(spine, view, at="at", event_time="event_time",
                             available_at="available_at", ttl=timedelta(days=1))
    assert got["value"].to_list() == [1.0, 2.0, 2.0]


def test_ttl_expires_old_rows() -> None:
    view = pl.DataFrame({"event_time": [T0], "available_at": [T0], "value": [1.0]})
    spine = pl.DataFrame({"at": [T0 + timedelta(days=2), T0 + timedelta(days=2, seconds=1)]})
    got = point_in_time_join(spine, view, at="at", event_time="event_time",
                             available_at="available_at", ttl=timedelta(days=2))
    assert got["value"].to_list() == [1.0, None]


def test_a_row_known_before_it_happened_is_refused() -> None:
    view = pl.DataFrame({"event_time": [T0], "available_at": [T0 - timedelta(seconds=1)],
                         "value": [1.0]})
    with pytest.raises(PointInTimeError, match="before their event time"):
        point_in_time_join(pl.DataFrame({"at": [T0]}), view, at="at", event_time="event_time",
                           available_at="available_at", ttl=timedelta(days=1))
