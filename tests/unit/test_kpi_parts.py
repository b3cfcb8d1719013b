"""``kpi.merge`` takes only parts as ``kpi --out`` writes them, and names a part it refuses."""

import base64
import copy
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import polars as pl
import pytest

from cryptodudez.lake import kpi
from cryptodudez.lake.rollups import hll_of


def _part(index: int, users: dict[str, list[str]]) -> dict[str, Any]:
    """Shard ``index`` of 2 of 2026-11-01: per event type, one event per user."""
    types = {name: {"events": len(ids), "distinct_ids": len(ids), "distinct_users": len(ids),
                    "events_per_hour": [len(ids)] + [0] * 23, "ids_hll": None,
                    "users_hll": base64.b64encode(hll_of(ids)).decode()}
             for name, ids in users.items()}
    return {"format": kpi.FORMAT, "date": "2026-11-01", "day_state": "0123456789abcdef",
            "source": "rollups",
            "shards": [index], "shard_count": 2, "complete": False,
            "method": {"events": "exact"}, "hll_lg_k": 12, "totals": {}, "types": types}


# Each type where compute would put it: type_hash(t) % 2 is 0 for signin, 1 for logout.
GOOD = [_part(0, {"signin": ["a", "b", "c"]}), _part(1, {"logout": ["c", "d"]})]


def test_good_parts_merge() -> None:
    merged = kpi.merge(GOOD, names=["p0.json", "p1.json"])
    assert merged["complete"]
    assert merged["totals"]["events"] == 5
    assert merged["totals"]["distinct_users"] == 4  # c in both types, counted once


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    """Change of the part: ``path`` (keys joined by '/') set to ``value``."""
    def change(part: dict[str, Any]) -> Any:
        *parents, last = path.split("/")
        holder = part
        for key in parents:
            holder = holder[key]
        holder[last] = value
        return part
    return change


def _drop(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda part: {k: v for k, v in part.items() if k != key}


BAD: list[tuple[Callable[[dict[str, Any]], Any], str]] = [
    (lambda part: [part], "not a KPI part: Expected `object`, got `array`"),
    (lambda part: "part", "not a KPI part: Expected `object`, got `str`"),
    (lambda part: None, "not a KPI part: Expected `object`, got `null`"),
    (_set("format", "other/1"), "not a KPI part (format 'other/1')"),
    (_drop("types"), "not a KPI part: Object missing required field `types`"),
    (_drop("shard_count"), "not a KPI part: Object missing required field `shard_count`"),
    (_set("date", "2026-13-01"), "not a KPI part: Invalid RFC3339 encoded date - at `$.date`"),
    (_set("source", "guess"), "not a KPI part: Invalid enum value 'guess' - at `$.source`"),
    (_set("shard_count", "2"), "not a KPI part: Expected `int`, got `str` - at `$.shard_count`"),
    (_set("shard_count", True), "not a KPI part: Expected `int`, got `bool` - at `$.shard_count`"),
    (_set("shards", "1"), "not a KPI part: Expected `array`, got `str` - at `$.shards`"),
    (_set("shards", [1, 1]), "shards [1, 1]: expected distinct shard numbers below 2"),
    (_set("shards", [2]), "shards [2]: expected distinct shard numbers below 2"),
    (_set("shards", [[1]]), "not a KPI part: Expected `int`, got `array` - at `$.shards[0]`"),
    (_set("method", None), "not a KPI part: Expected `object`, got `null` - at `$.method`"),
    (_set("types", []), "not a KPI part: Expected `object`, got `array` - at `$.types`"),
    (_set("types/logout", 7), "not a KPI part: Expected `object`, got `int` - at `$.types[...]`"),
    (_set("types/logout", {}),
     "not a KPI part: Object missing required field `events` - at `$.types[...]`"),
    (_set("types/logout/events", "7"),
     "not a KPI part: Expected `int`, got `str` - at `$.types[...].events`"),
    (_set("types/logout/events", None),
     "not a KPI part: Expected `int`, got `null` - at `$.types[...].events`"),
    (_set("types/logout/distinct_users", -1),
     "not a KPI part: Expected `int` >= 0 - at `$.types[...].distinct_users`"),
    (_set("types/logout/events_per_hour", [1] * 23),
     "not a KPI part: Expected `array` of length >= 24 - at `$.types[...].events_per_hour`"),
    (_set("types/logout/users_hll", 12),
     "not a KPI part: Expected `str | null`, got `int` - at `$.types[...].users_hll`"),
    (_set("types/logout/users_hll", "!!"), "types['logout'].users_hll is no HLL sketch in "
                                           "base64 (Only base64 data is allowed)"),
    (_set("types/logout/ids_hll", "AAAA"), "types['logout'].ids_hll is no HLL sketch in "
                                           "base64 (Attempt to deserialize unknown object"),
    (_set("types/logout/ids_hll", "AgEHDAMIAQ=="), "types['logout'].ids_hll is no HLL sketch"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_a_malformed_part_is_refused_by_name(change: Callable[[dict[str, Any]], Any],
                                             message: str) -> None:
    bad = change(copy.deepcopy(GOOD[1]))
    with pytest.raises(kpi.KpiError) as err:
        kpi.merge([GOOD[0], bad], names=["p0.json", "p1.json"])
    assert str(err.value).startswith(f"p1.json: {message}")
    with pytest.raises(kpi.KpiError, match=r"^part 2: "):  # by position without names
        kpi.merge([GOOD[0], bad])


def test_a_type_in_a_part_of_another_shard_is_refused() -> None:
    """Two parts of distinct shards counting one type would be merged by overwriting one."""
    stray = copy.deepcopy(GOOD[1])
    stray["types"]["signin"] = copy.deepcopy(GOOD[0]["types"]["signin"]) | {"events": 5}
    with pytest.raises(kpi.KpiError, match=re.escape(
            "p1.json: types['signin'] belongs to shard 0 of 2, not to this part's shards [1]")):
        kpi.merge([GOOD[0], stray], names=["p0.json", "p1.json"])
    whole = {**copy.deepcopy(GOOD[0]), "shards": [0, 1]}  # one part of both shards: fine
    whole["types"] |= GOOD[1]["types"]
    assert kpi.merge([whole])["totals"]["events"] == 5


def test_parts_that_do_not_belong_together_are_named() -> None:
    with pytest.raises(kpi.KpiError, match=r"^p1\.json: parts overlap: shard 0 is in p0\.json"):
        kpi.merge([GOOD[0], GOOD[0]], names=["p0.json", "p1.json"])
    other_day = {**GOOD[1], "date": "2026-11-02"}
    with pytest.raises(kpi.KpiError, match=r"^p1\.json: parts disagree on date: '2026-11-02' "
                                           r"here, '2026-11-01' in p0\.json"):
        kpi.merge([GOOD[0], other_day], names=["p0.json", "p1.json"])


def _files(rows: dict[tuple[str, int], int | None]) -> pl.DataFrame:
    return pl.DataFrame([{"event_type": t, "hour": h, "rows": n} for (t, h), n in rows.items()],
                        schema={"event_type": pl.String, "hour": pl.Int32, "rows": pl.Int64})


def _counted(events: dict[str, int]) -> pl.DataFrame:
    return pl.DataFrame({"event_type": list(events), "events": list(events.values())},
                        schema={"event_type": pl.String, "events": pl.UInt32})


def test_hours_come_from_the_log_when_they_add_up_to_the_rows() -> None:
    files = _files({("a", 0): 3, ("a", 23): 4, ("b", 5): 1})
    files = pl.concat([files, _files({("a", 0): 3, ("a", 23): 2})])  # two files of an hour
    hours = kpi.hours_from_log(files, _counted({"a": 12, "b": 1}), date(2026, 11, 1))
    assert hours == {"a": [6] + [0] * 22 + [6], "b": [0] * 5 + [1] + [0] * 18}


@pytest.mark.parametrize(("events", "says"), [
    ({"a": 11, "b": 1}, "log counts 12 events of type a in its files, which hold 11 (1 types"),
    ({"a": 12}, "log counts 1 events of type b in its files, which hold 0"),
    ({"a": 12, "b": 1, "c": 5}, "log counts 0 events of type c in its files, which hold 5"),
])
def test_a_log_that_disagrees_with_the_rows_is_refused(events: dict[str, int], says: str) -> None:
    files = _files({("a", 0): 3, ("a", 23): 9, ("b", 5): 1})
    with pytest.raises(kpi.KpiError, match=re.escape(says)):
        kpi.hours_from_log(files, _counted(events), date(2026, 11, 1))


def test_distinct_ids_are_counted_again_where_the_hashes_cannot_tell() -> None:
    """Fewer distinct hashes than rows: the ids themselves are counted (2 of 3 here); as
    many: the rows. The ``id_hashes`` below are set by hand, not computed."""
    events = pl.LazyFrame({"event_type": ["a", "a", "a", "b", "b"],
                           "id": ["x", "y", "x", "p", "q"]})
    stats = pl.DataFrame({"event_type": ["a", "b"], "events": [3, 2], "id_hashes": [1, 2]},
                         schema={"event_type": pl.String, "events": pl.UInt32,
                                 "id_hashes": pl.UInt32})
    counted = kpi.with_distinct_ids(events, stats)
    assert dict(counted.select("event_type", "distinct_ids").iter_rows()) == {"a": 2, "b": 2}
    assert counted.columns == ["event_type", "events", "distinct_ids"]


def test_an_hll_estimate_above_the_events_is_capped_at_them() -> None:
    # 470 distinct ids, one per event: the sketch says 473 (checked first), more distinct
    # ids than events, which cannot be.
    sketch = hll_of([f"id-{i}" for i in range(470)])
    assert round(kpi.hll_union([sketch]).get_estimate()) == 473
    rows = pl.DataFrame({"event_type": ["signin"], "hour": [3], "events": [470],
                         "ids_hll": [sketch], "users_hll": [sketch]})
    types = kpi._sum_rollups(rows, kpi.Shard())
    assert (types["signin"]["distinct_ids"], types["signin"]["distinct_users"]) == (470, 470)
    totals = kpi._result(date(2026, 11, 1), [kpi.Shard()], "rollups", {}, types, state="")["totals"]
    assert (totals["events"], totals["distinct_ids"], totals["distinct_users"]) == (470, 470,
                                                                                    470)
    assert totals["distinct_method"].startswith("hll")


def test_the_totals_say_how_distinct_ids_were_counted_without_sketches() -> None:
    # The events source counts ids exactly per type and keeps no id sketch: the total is a sum.
    types = {name: {**part["types"][name], "distinct_ids": 2} for part, name in
             zip(GOOD, ["signin", "logout"], strict=True)}
    totals = kpi._result(date(2026, 11, 1), [kpi.Shard()], "events", {}, types, state="")["totals"]
    assert totals["distinct_ids"] == 4
    assert totals["distinct_method"].startswith("ids: the sum of the exact per-type counts")
