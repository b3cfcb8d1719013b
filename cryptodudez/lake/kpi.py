"""Daily KPIs of the event lake, computed anywhere the lake's storage is reachable.

Dagster-free, no daemon, no cluster: the "only S3 is up and we have two laptops" job. For a
day and each event type: events, distinct ids, distinct users (where the attributes carry a
``user_id``) and events per hour.

Sources:

``rollups`` (default)
    the hourly rollups written at ingest (megabytes a day): counts are exact, distinct
    counts are HyperLogLog estimates (Apache DataSketches, ``lg_k`` = 12, about 1.6 %
    relative standard error), never above the events counted beside them.
``events``
    the day's events themselves (partition-pruned; ids and users read, events per hour from
    the Delta log's row counts once they add up to the rows read): every number exact
    per type; the distinct counts across all types are HLL estimates (exact sets of users
    would not merge in bounded size).

Shards: ``--shard i/n`` takes the event types whose stable hash (SHA-1 of the name) modulo
``n`` is ``i``, so two laptops share nothing; ``merge`` adds the parts' types (disjoint, so
per-type numbers are exact) and unions their sketches for the all-types totals. A merged
result equals the single-machine result exactly for counts and per-type distinct counts;
the all-types distinct counts are a union of the same sketches.
"""

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

import msgspec
import polars as pl

from cryptodudez.lake import delta_log
from cryptodudez.lake.event_table import EventTable, groups_by_size, plain_parquet, tags_by_date
from cryptodudez.lake.layout import tag_of
from cryptodudez.lake.rollups import hll_of, hll_union, read_rollups, rollup_files, type_hash
from cryptodudez.storage import LakeStorage

SOURCES = ("rollups", "events")
EVENTS_GROUP_BYTES = 64 << 20  # Parquet read at once by the events source (bounds memory)
FORMAT = "cryptodudez.kpi/2"
MAX_SHARDS = 1024
"""The most shards a day is split into: more than a day's event types is no use (a
reviewer's ``--shard 0/1000000000`` had the process killed for memory)."""

# ``i/n`` in ASCII digits only: ``\d`` and ``int`` take any script's digits.
_SHARD = re.compile(r"([0-9]+)/([0-9]+)")


class KpiError(ValueError):
    """A KPI request or part that cannot be answered (one clear line)."""


class KpiDataError(KpiError):
    """The day's data does not add up (its log and files disagree): no bad argument."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0/1`` is the whole day)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"i/n"`` with ``0 <= i < n``, both written in ASCII digits and nothing else.

        ``int`` alone would take ``" 0"``, ``"+0"``, ``"0_0"`` and other scripts' digits
        (``"١"`` as 1): a shard is typed the same way on every machine, or refused.
        """
        try:
            if (found := _SHARD.fullmatch(text)) is None:
                raise ValueError(text)
            i, n = int(found[1]), int(found[2])  # more than 4300 digits: a ValueError
        except ValueError:
            msg = f"--shard {text!r}: expected i/n, for example 0/2"
            raise KpiError(msg) from None
        if not 0 <= i < n:
            msg = f"--shard {text!r}: needs 0 <= i < n"
            raise KpiError(msg)
        if n > MAX_SHARDS:
            msg = f"--shard {text!r}: at most {MAX_SHARDS} shards"
            raise KpiError(msg)
        return cls(i, n)

    def holds(self, event_type: str) -> bool:
        """True when ``event_type`` belongs to this shard."""
        return type_hash(event_type) % self.count == self.index


def _b64(blob: bytes | None) -> str | None:
    return base64.b64encode(blob).decode() if blob is not None else None


def _unb64(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text is not None else None


def compute(storage: LakeStorage, day: date, *, shard: Shard = Shard(),
            source: str = "rollups", group_bytes: int = EVENTS_GROUP_BYTES) -> dict[str, Any]:
    """One machine's part of the day's KPIs (the whole day with the default shard).

    ``group_bytes`` bounds what the ``events`` source reads at once (:func:`_from_events`).
    """
    if source not in SOURCES:
        msg = f"--source {source!r}: expected one of {', '.join(SOURCES)}"
        raise KpiError(msg)
    table = EventTable(storage)
    types: dict[str, dict[str, Any]] = {}
    if source == "rollups":
        types, tags = _from_rollups(storage, table, day, shard)
        method = {"events": "exact", "distinct_ids": "hll, at most the type's events",
                  "distinct_users": "hll, at most the type's events"}
    else:
        types, tags = _from_events(table, day, shard, group_bytes)
        method = {"events": "exact",
                  "distinct_ids": "exact per type; the total sums them (one type per id)",
                  "distinct_users": "exact per type, hll across types (at most the events)"}
    return _result(day, [shard], source, method, types, state=day_state(tags))


def day_state(tags: Iterable[str]) -> str:
    """The day's state in the table: a digest of the tags of the commits its files came from.

    Parts computed while a delivery or a compaction changed the day have different states
    (each commit's tag is its own), as have parts of two lakes; another day's commits leave
    it as it is.
    """
    return hashlib.sha256("\n".join(sorted(tags)).encode()).hexdigest()[:16]


def _from_events(table: EventTable, day: date, shard: Shard,
                 group_bytes: int) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Per type of ``shard``, exact KPIs from the day's events, a group of types at a time.

    The shard's types come from the Delta log (no data read); each group of about
    ``group_bytes`` of Parquet is one pruned read of the three columns the KPIs need, at one
    pinned version. A type's rows are all in its group, so its numbers come from that group
    alone, and memory is set by the group, not the day (the whole day of 19.5 M events in
    one read peaked at 3.5 GB; docs/events.md, session 16). Events per hour come from the
    log's row count of each (type, hour) file, each type's total held against the rows read
    (:func:`hours_from_log`); without such counts, or with deletion vectors, from the rows.
    """
    if not table.exists():
        return {}, set()
    delta, files = table.snapshot()
    version = delta.version()
    counts_usable = plain_parquet(delta)  # deletion vectors leave the counts above the rows
    day_files = files.filter(pl.col("date") == day)
    per_type = day_files.group_by("event_type").agg(pl.col("size").sum())
    per_type = per_type.filter(pl.col("event_type").is_in(
        [t for t in per_type["event_type"].to_list() if shard.holds(t)]))
    types: dict[str, dict[str, Any]] = {}

    def read(group: list[str]) -> tuple[pl.DataFrame, dict[str, list[int]]]:
        events = table.scan_days([day], version, types=group)
        counted = events.group_by("event_type").agg(
            pl.len().alias("events"), pl.col("id").hash().n_unique().alias("id_hashes"),
            pl.col("user_id").drop_nulls().unique().sort().alias("users"))
        logged = day_files.filter(pl.col("event_type").is_in(group))
        if not counts_usable or logged["rows"].null_count():  # the rows' hours, then
            stats, hour_rows = pl.collect_all([counted, events.group_by(
                "event_type", "hour").agg(pl.col("id").len().alias("rows"))])
            return with_distinct_ids(events, stats), _hours(hour_rows)
        stats = counted.collect()
        return (with_distinct_ids(events, stats),
                hours_from_log(logged, stats.select("event_type", "events"), day))

    groups = groups_by_size(per_type, group_bytes)
    # The next group is read (polars, without the GIL) while this one's users are sketched
    # (Python): two groups in memory at most.
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, groups[0])
        for following in [*groups[1:], None]:
            stats, hours = pending.result()
            if following is not None:
                pending = reader.submit(read, following)
            for row in stats.iter_rows(named=True):
                types[row["event_type"]] = {
                    "events": row["events"], "distinct_ids": row["distinct_ids"],
                    "distinct_users": len(row["users"]) if row["users"] else None,
                    "events_per_hour": hours[row["event_type"]],
                    # ids are disjoint across types (the table holds each id once): no sketch
                    "ids_hll": None,
                    "users_hll": _b64(hll_of(row["users"])) if row["users"] else None,
                }
    return types, tags_by_date(day_files, [day])[day]


def with_distinct_ids(events: pl.LazyFrame, stats: pl.DataFrame) -> pl.DataFrame:
    """``stats`` with each type's exact ``distinct_ids``, counted cheaply where possible.

    Hashes of equal ids are equal, so a type has as many distinct ids as rows exactly when
    it has as many distinct id hashes (``id_hashes``): the usual case, a deduplicated table,
    is decided on 64-bit integers. A type with fewer hashes than rows (duplicates, or two
    ids sharing a hash) has its ids counted again as strings, from ``events``.
    """
    unsure = stats.filter(pl.col("id_hashes") < pl.col("events"))["event_type"].to_list()
    exact = pl.DataFrame(schema={"event_type": pl.String, "exact": pl.UInt32})
    if unsure:
        exact = (events.filter(pl.col("event_type").is_in(unsure)).group_by("event_type")
                 .agg(pl.col("id").n_unique().alias("exact")).collect())
    return (stats.join(exact, on="event_type", how="left")
            .with_columns(distinct_ids=pl.coalesce(
                pl.col("exact").cast(pl.UInt32),
                pl.when(pl.col("id_hashes") == pl.col("events")).then(pl.col("events"))
                .cast(pl.UInt32)))
            .drop("exact", "id_hashes"))


def _hours(rows: pl.DataFrame) -> dict[str, list[int]]:
    """Per type, its 24 hourly counts from ``event_type``, ``hour``, ``rows`` rows."""
    hours: dict[str, list[int]] = {}
    for event_type, hour, n in rows.select("event_type", "hour", "rows").iter_rows():
        hours.setdefault(event_type, [0] * 24)[int(hour)] += int(n)
    return hours


def hours_from_log(files: pl.DataFrame, counted: pl.DataFrame,
                   day: date) -> dict[str, list[int]]:
    """Per type, events per hour from the log's row count of each file, checked first.

    A (type, hour) partition holds one type's rows of one hour, so its files' row counts in
    the log are the hour's events, once each type's add up to ``counted``. The check is per
    type: counts moved between two hours of one type would pass it (this repository's own
    writers record the counts).

    Args:
        files: the day's live files of the types (``event_type``, ``hour``, ``rows``).
        counted: ``event_type`` and ``events`` counted in those files' rows.
        day: the day, for the error.

    Raises:
        KpiError: a type whose files the log counts otherwise than its rows were counted.
    """
    logged = files.group_by("event_type").agg(pl.col("rows").sum())
    both = logged.join(counted, on="event_type", how="full", coalesce=True).filter(
        pl.col("rows").fill_null(0) != pl.col("events").fill_null(0))
    if both.height:
        event_type, rows, events = both.sort("event_type").row(0)
        msg = (f"{day}: the table's log counts {rows or 0} events of type {event_type} in its "
               f"files, which hold {events or 0} ({both.height} types disagree): the table "
               f"needs a look before its KPIs are trusted")
        raise KpiDataError(msg)
    return _hours(files)


ROLLUP_COLUMNS = ["event_type", "hour", "events", "ids_hll", "users_hll"]


def _from_rollups(storage: LakeStorage, table: EventTable, day: date,
                  shard: Shard) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Per type, the shard's KPIs from the day's trusted rollup files.

    Which files are trusted comes from the Delta log: only the day's live paths are read
    from it (:func:`delta_log.live_tags_of_day`), or the whole table is loaded when that
    reader declines the log. It runs in a thread (polars and delta-rs do not hold the GIL)
    while the shard's files are read and summed, so a run pays for the slower of the two,
    not both. A file that turns out untrusted (a run that died before its commit) is left
    out and the trusted files read and summed again.
    """
    paths = rollup_files(storage, day, None, (shard.index, shard.count))
    with ThreadPoolExecutor(1) as pool:
        trusting = pool.submit(lambda: _live_tags(storage, table, day))
        types = _sum_rollups(read_rollups(storage, paths, columns=ROLLUP_COLUMNS), shard)
        trusted = trusting.result()
    kept = [p for p in paths if tag_of(p) in trusted]
    if len(kept) == len(paths):
        return types, trusted
    return _sum_rollups(read_rollups(storage, kept, columns=ROLLUP_COLUMNS), shard), trusted


def _live_tags(storage: LakeStorage, table: EventTable, day: date) -> set[str]:
    """Tags of the commits whose files ``day`` holds at the table's latest version."""
    tags = delta_log.live_tags_of_day(storage, table.root, day)
    return tags if tags is not None else table.live_tags(day).get(day, set())


def _sum_rollups(rows: pl.DataFrame, shard: Shard) -> dict[str, dict[str, Any]]:
    """Per type of ``shard``: events, per-hour events and unions of the rows' sketches."""
    if rows.height == 0:
        return {}
    if shard.count > 1:
        # The shard's types by name (a few hundred hashes), then one vectorised filter.
        mine = [t for t in rows["event_type"].unique().to_list() if shard.holds(t)]
        rows = rows.filter(pl.col("event_type").is_in(mine))
    # One vectorised pass for the counts; Python only for the sketch unions.
    per_type = rows.group_by("event_type").agg(
        pl.col("events").sum(), pl.col("ids_hll"), pl.col("users_hll"),
        pl.col("hour"), pl.col("events").alias("hour_events")).sort("event_type")
    types: dict[str, dict[str, Any]] = {}
    for row in per_type.iter_rows(named=True):
        ids = hll_union(row["ids_hll"])
        users = hll_union(row["users_hll"])
        per_hour = [0] * 24
        for hour, n in zip(row["hour"], row["hour_events"], strict=True):
            per_hour[int(hour)] += int(n)
        events = int(row["events"])
        types[str(row["event_type"])] = {
            "events": events,
            "distinct_ids": estimate(ids, at_most=events),
            "distinct_users": estimate(users, at_most=events),
            "events_per_hour": per_hour,
            "ids_hll": _b64(bytes(ids.serialize_compact()) if ids else None),
            "users_hll": _b64(bytes(users.serialize_compact()) if users else None),
        }
    return types


def estimate(sketch: Any, *, at_most: int) -> int | None:
    """A sketch's distinct count, never above ``at_most`` (None without a sketch).

    Each event has one id and at most one user, so neither can have more distinct values
    than the events counted exactly beside it; an HLL estimate can exceed that count (about
    1.6 % relative error), and the known bound is the better answer then.
    """
    return None if sketch is None else min(round(sketch.get_estimate()), at_most)


def _result(day: date, shards: Sequence[Shard], source: str, method: dict[str, str],
            types: dict[str, dict[str, Any]], *, state: str) -> dict[str, Any]:
    ids = hll_union([_unb64(t["ids_hll"]) for t in types.values()])
    users = hll_union([_unb64(t["users_hll"]) for t in types.values()])
    count = shards[0].count
    events = sum(t["events"] for t in types.values())
    return {
        "format": FORMAT, "date": day.isoformat(), "day_state": state, "source": source,
        "shards": sorted(s.index for s in shards), "shard_count": count,
        "complete": len(shards) == count and sorted(s.index for s in shards) == list(
            range(count)),
        "method": method, "hll_lg_k": 12,
        "totals": {
            "event_types": len(types),
            "events": events,
            "distinct_ids": (estimate(ids, at_most=events) if ids else
                             sum(t["distinct_ids"] or 0 for t in types.values())),
            "distinct_users": estimate(users, at_most=events) or 0,
            "distinct_method": (
                "hll (union of the per-type sketches), at most the events" if ids else
                "ids: the sum of the exact per-type counts (one type per id); users: hll "
                "(union of the per-type sketches), at most the events"),
        },
        "types": dict(sorted(types.items())),
    }


def merge(parts: Sequence[Any], *, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Merge shard parts of one day into the day's KPIs (exact for counts).

    Each part is checked first for everything the merge reads, so a damaged or foreign file
    is refused in one line that names it: by its entry in ``names`` (the files the parts
    came from), else by its position.
    """
    if not parts:
        msg = "kpi --merge needs at least one part"
        raise KpiError(msg)
    names = list(names) if names is not None else [f"part {i + 1}" for i in range(len(parts))]
    for name, part in zip(names, parts, strict=True):
        if problem := _part_problem(part):
            msg = f"{name}: {problem}"
            raise KpiError(msg)
    first = parts[0]
    holder: dict[int, str] = {}
    for name, part in zip(names, parts, strict=True):
        for key in ("date", "source", "shard_count", "day_state"):
            if part[key] != first[key]:
                msg = (f"{name}: parts disagree on {key}: {part[key]!r} here, "
                       f"{first[key]!r} in {names[0]}")
                if key == "day_state":
                    msg += (" (the day changed between them: a delivery or a compaction, or "
                            "another lake; compute every part again)")
                raise KpiError(msg)
        for index in part["shards"]:
            if index in holder:
                msg = (f"{name}: parts overlap: shard {index} is in {holder[index]} too "
                       "(each shard must appear once)")
                raise KpiError(msg)
            holder[index] = name
    types: dict[str, dict[str, Any]] = {}
    for part in parts:
        types.update(part["types"])
    shards = [Shard(i, first["shard_count"]) for i in holder]
    return _result(date.fromisoformat(first["date"]), shards, first["source"],
                   first["method"], types, state=first["day_state"])


Count = Annotated[int, msgspec.Meta(ge=0)]


class _TypeKpis(msgspec.Struct):
    """One event type's KPIs in a part, as :func:`compute` writes them."""

    events: Count
    distinct_ids: Count | None
    distinct_users: Count | None
    events_per_hour: Annotated[list[Count], msgspec.Meta(min_length=24, max_length=24)]
    ids_hll: str | None
    users_hll: str | None


class _Part(msgspec.Struct):
    """What :func:`merge` reads of a part (other fields are ignored)."""

    format: str
    date: date
    day_state: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{16}$")]
    source: Literal["rollups", "events"]
    shard_count: Annotated[int, msgspec.Meta(ge=1, le=MAX_SHARDS)]
    shards: Annotated[list[Count], msgspec.Meta(min_length=1, max_length=MAX_SHARDS)]
    method: dict[str, Any]
    types: dict[str, _TypeKpis]


def _part_problem(part: Any) -> str | None:
    """What makes ``part`` no KPI part as :func:`compute` writes it, or None.

    The structure and types are msgspec's to check (its message names the JSON path); what
    a type cannot say is checked here: the format, the shard numbers, each type's shard
    (so no two parts of distinct shards can both count a type), the sketches.
    """
    if isinstance(part, dict) and part.get("format") != FORMAT:
        return f"not a KPI part (format {part.get('format')!r})"
    try:
        checked = msgspec.convert(part, _Part)
    except msgspec.ValidationError as exc:
        return f"not a KPI part: {exc}"
    shards = checked.shards
    if max(shards) >= checked.shard_count or len(set(shards)) < len(shards):
        return f"shards {shards!r}: expected distinct shard numbers below {checked.shard_count}"
    for name, kpis in checked.types.items():
        if (owner := type_hash(name) % checked.shard_count) not in shards:
            return (f"types[{name!r}] belongs to shard {owner} of {checked.shard_count}, "
                    f"not to this part's shards {shards!r}")
        for key in ("ids_hll", "users_hll"):
            text = getattr(kpis, key)
            try:
                if text is not None:
                    hll_union([base64.b64decode(text, validate=True)])
            except (ValueError, IndexError, RuntimeError) as exc:  # binascii.Error: ValueError
                return f"types[{name!r}].{key} is no HLL sketch in base64 ({exc})"
    return None


def dumps(result: dict[str, Any]) -> str:
    """The result as JSON text."""
    return json.dumps(result, indent=1, sort_keys=False)
