"""Compacting one day of the event lake: files, id index and rollups together.

Dagster-free. Under the lake's publish lock: the day's ids and rollups are written under
the compaction's tag, the day's files are rewritten in one Delta commit (one file per type
and hour, sorted), and the index and rollup files the commit superseded are removed; files
no version needs any more are vacuumed after the retention period.

A day already compacted, with no file added since (every live file of the day carries the
tag of one compaction of that day, whose id index and rollups are present), is left alone:
no commit and no data file written; its rows are read back for the checks. The vacuum still
runs (retention holds on a quiet lake), and index or rollup files a compaction that died
after its commit left are removed.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from cryptodudez.lake import id_index, rollups
from cryptodudez.lake.event_table import (
    COMPACT_GROUP_BYTES,
    DayWriter,
    EventTable,
    Written,
    compacted_by,
    compaction_tag,
    groups_by_size,
)
from cryptodudez.storage import LakeStorage

READ_BACK = ["id", "event_type", "date", "hour", "created_at"]


@dataclass(frozen=True)
class Compacted:
    """What a day's compaction did, and the day as read back after it."""

    written: Written | None
    rows_before: int
    rows_after: int = 0
    distinct_ids_after: int = 0
    """Distinct 64-bit hashes of the ids read back (a collision could only under-count)."""
    failures: pl.DataFrame = field(default_factory=pl.DataFrame)
    """What ``validate`` reported for the rows read back, group by group."""
    vacuumed: int = 0
    tag: str | None = None
    """The tag of the compaction whose files hold the day afterwards (None: no events)."""
    already_compacted: bool = False
    """Nothing was done: that compaction had already written every live file of the day.
    ``written`` is then None and ``rows_before`` the day's rows in the Delta log."""
    table_version: int | None = None
    """The table's version afterwards (unchanged when already compacted)."""
    files: int = 0
    """The day's live data files afterwards."""


def compact_day(storage: LakeStorage, day: date, *,
                publish_lock: Callable[[], AbstractContextManager[object]],
                retention_hours: int = 168,
                group_bytes: int = COMPACT_GROUP_BYTES,
                validate: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
                writer: DayWriter | None = None) -> Compacted:
    """Compact ``day`` (nothing to do for a day without events, or one already compacted).

    ``validate`` sees the rewritten day read back, a group of types at a time, and returns
    the failures it found (the asset passes the events pandera schema). ``writer`` rewrites
    the day's files (default: polars; ``cryptodudez.spark.event_compaction.spark_writer``
    for Spark); the commit, index, rollups and read-back are the same for both.

    A day whose live files were all written by one compaction of it, whose id index and
    rollups are in place, has had nothing added since: it is read back for the checks
    (``already_compacted``) and nothing is written or committed, except by the vacuum, which
    deletes (and commits) only files superseded more than ``retention_hours`` ago. Any other
    file on the day (a later delivery's, late events included) makes the whole day rewritten.
    """
    table = EventTable(storage)
    with publish_lock():
        if not table.exists():
            return Compacted(None, 0)
        files = table.files().filter(pl.col("date") == day)
        if files.height == 0:
            return Compacted(None, 0)
        version = table.version()
        sizes = files.group_by("event_type").agg(pl.col("size").sum()).sort("event_type")
        groups = groups_by_size(sizes, group_bytes)
        done = compacted_by(day, files["path"])
        written: Written | None = None
        if done is not None and _derived_in_place(storage, day, done):
            tag, rows_before = done, int(files["rows"].sum())  # nothing to rewrite
        else:
            tag = compaction_tag(day, version)
            rows_before = _index_and_roll_up(storage, table.scan_days([day], version), tag,
                                             groups, next_version=(version or 0) + 1)
            written = table.compact_day(day, tag=tag, group_bytes=group_bytes, writer=writer)
        # The day is now the files of one compaction, ``tag``: index and rollup files of other
        # tags are superseded (a no-op also finishes the clean-up of a run that died after
        # its commit; removing needs no commit).
        id_index.prune_day(storage, day, {tag})
        rollups.prune_day(storage, day, {tag})
        rows_after, distinct, failures = _read_back(table.scan_days([day]), groups, validate)
        # the table's retention holds on a quiet lake too: files superseded more than
        # retention_hours ago go (a vacuum commits only when it deletes something)
        vacuumed = table.vacuum(retention_hours=retention_hours)
        after = table.version()  # read after the vacuum, which may commit
    return Compacted(written, rows_before, rows_after, distinct, failures, len(vacuumed),
                     tag=tag, already_compacted=written is None, table_version=after,
                     files=written.files if written else files.height)


def _index_and_roll_up(storage: LakeStorage, before: pl.LazyFrame, tag: str,
                       groups: list[list[str]], *, next_version: int) -> int:
    """Write the day's id index and rollups under ``tag``; return the day's rows.

    A group of types at a time (memory bounded by the group, not the day); the rollups as
    one file per bucket of types (a KPI shard reads its own types' files only).
    """
    rows_before, rolled = 0, []
    for n, types in enumerate(groups):
        rows = (before.filter(pl.col("event_type").is_in(types))
                .select("id", "event_type", "date", "hour", "user_id", "_partition")
                .collect())
        rows_before += rows.height
        id_index.write_index(storage, tag, rows.select("id", "date"), part=n)
        rolled.append(rollups.rollup_rows(rows, table_version=next_version))
        del rows
    rollups.write_bucketed(storage, tag, pl.concat(rolled))
    return rows_before


def _derived_in_place(storage: LakeStorage, day: date, tag: str) -> bool:
    """True when the day's id index and rollups of compaction ``tag`` exist."""
    return bool(id_index.index_files(storage, [day], {day: {tag}})
                and rollups.rollup_files(storage, day, {tag}))


def _read_back(scan: pl.LazyFrame, groups: list[list[str]],
               validate: Callable[[pl.DataFrame], pl.DataFrame] | None,
               ) -> tuple[int, int, pl.DataFrame]:
    """Rows, distinct id hashes and ``validate``'s failures in ``scan`` (one day's rows).

    Read a group of types at a time (memory bounded by the group).
    """
    rows, hashes, failures = 0, [], []
    for types in groups:
        back = (scan.filter(pl.col("event_type").is_in(types))
                .select(READ_BACK).collect())
        rows += back.height
        hashes.append(back["id"].hash(seed=0))
        if validate is not None:
            failures.append(validate(back))
        del back
    distinct = pl.concat(hashes).n_unique() if hashes else 0
    return (rows, distinct,
            pl.concat(failures, how="diagonal_relaxed") if failures else pl.DataFrame())
