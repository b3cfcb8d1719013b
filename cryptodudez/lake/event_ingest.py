"""One landed events file into the lake: validate, deduplicate, publish, roll up.

Dagster-free. The steps, each bounded by the batch size rather than the file's size:

1. **Read and validate** the file in batches of whole lines (:mod:`cryptodudez.lake.events`).
2. **Stage** the valid rows and the quarantined lines as Parquet under ``.staging/``; each
   valid row's id (a 128-bit hash) and line, and every id the table already holds on the
   dates the file touches, go to hash-range buckets on local disk
   (:mod:`cryptodudez.lake.id_buckets`).
3. **Deduplicate by ``data.id``** under the lake's publish lock, one bucket at a time (ids
   committed by others meanwhile count as held): the first occurrence wins and a held id
   wins over every line, so a replayed file, an overlapping delivery or a repeat within a
   file never adds a second row.
4. **Publish** under the same lock: the rows not dropped become one Delta commit
   (:class:`EventTable`), written a group of event types at a time, and the quarantine
   replaces the file's earlier quarantine.
   Before the commit, the new ids go to the id index and the new rows' rollups (events and
   HyperLogLog sketches of ids and users per type, date and hour: what the KPI job reads
   instead of the day's events), both named after the file version's tag and trusted only
   once the commit holds files with that tag.

What it returns is what publishing wrote, for the asset's checks.
"""

import io
import os
import posixpath
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from multiprocessing import get_context

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from cryptodudez.lake.event_table import EventTable, Written, groups_by_size, tags_by_date
from cryptodudez.lake.events import (
    BATCH_BYTES,
    QUARANTINE_COLUMNS,
    LineBatch,
    cut_note,
    file_reject,
    iter_line_batches,
    raw_text,
    validate_lines,
)
from cryptodudez.lake.id_buckets import HELD, IdBuckets, buckets_for, id_hashes
from cryptodudez.lake.id_index import day_folder as id_day_folder
from cryptodudez.lake.id_index import index_files, read_ids, write_index
from cryptodudez.lake.layout import QUARANTINE, STAGING, fragment_prefix, tag_of
from cryptodudez.lake.rollups import ROLLUP_SCHEMA, ROLLUPS, rollup_rows, write_rollups
from cryptodudez.lake.rollups import day_folder as rollup_day_folder
from cryptodudez.storage import LakeStorage

ROLLUP_COUNTS = ["_partition", "event_type", "date", "hour", "events"]
"""The rollup columns an ingest returns (the sketches stay in the rollup files)."""
GROUP_ROWS = 1_000_000
INLINE_BYTES = 128 << 20
"""Files up to this size are validated in the ingesting process, larger ones in workers."""
LINE_BYTES = 200
"""Bytes per line assumed to size the id buckets from the file's size (generated events
average about 230)."""


@dataclass(frozen=True)
class EventFileResult:
    """What ingesting one landed events file did."""

    partition_key: str
    source: str
    records: int
    """Non-blank lines the framing saw (counted before any parsing)."""
    valid: int
    quarantined: int
    duplicates: int
    """Valid lines not added: their id was earlier in the file or already in the table."""
    added_rows: int
    """Rows the commit's files hold (as their writer reported them)."""
    staged_rows: int
    """Rows sent to the commit (counted from the staged files, apart from the writer)."""
    repeated_ids: int
    """Ids this commit added that the index holds more than once on the dates the file
    touches, after the commit (must be 0: this commit's deduplication failed)."""
    repeated_ids_before: int
    """Ids held more than once on those dates by earlier commits alone: not this file's
    doing (the same id delivered again with a ``created_at`` on another day is kept on
    each day; see docs/events.md, "One row per event id")."""
    table_version: int | None
    dates: list[date]
    rollups: pl.DataFrame
    """The counts of the rollup rows of what this file added (per type, date and hour; the
    sketches are in the rollup files)."""
    quarantine: pl.DataFrame
    """The file's quarantine as published (read back)."""
    reasons: dict[str, int] = field(default_factory=dict)
    table_schema: pl.Schema | None = None
    """The table's columns at ``table_version`` (None while the table does not exist)."""


def _repeated(storage: LakeStorage, paths: list[str], buckets: int,
              tag: str) -> tuple[int, int]:
    """Ids held more than once in index files: ``(one copy is tag's, none is)``.

    One file, then one bucket, in memory.
    """
    with IdBuckets(buckets) as held:
        for path in paths:
            held.add(*id_hashes(read_ids(storage, [path])), 0 if tag_of(path) == tag else HELD)
        return held.repeats_by_origin()


@dataclass(frozen=True)
class _Prepared:
    """One batch validated, hashed and serialised (by a worker process, or inline).

    What crosses between processes is a few blocks of bytes and two arrays, never frames
    of Python objects: the main process only deduplicates the hashes and stores the bytes.
    """

    records: int
    valid: int
    quarantined: int
    days: list[date]
    h0: np.ndarray
    h1: np.ndarray
    """The 128-bit hash of each valid row's id, in row order (see :mod:`.id_buckets`)."""
    lines: np.ndarray
    """Each valid row's line number (``_line``: unique within the file), in row order."""
    rows: bytes
    """The valid rows with their lineage, as Parquet (or empty)."""
    quarantine: bytes
    """The quarantined lines as Parquet (or empty)."""


def prepare_batch(batch: LineBatch, *, source: str, partition_key: str,
                  landed_at: datetime) -> _Prepared:
    """Validate ``batch``; hash its ids; serialise its rows and its quarantine."""
    checked = validate_lines(batch, source=source)
    valid = checked.valid
    h0, h1 = id_hashes(valid["id"])
    rows = valid.with_columns(
        _partition=pl.lit(partition_key, dtype=pl.String),
        _landed_at=pl.lit(landed_at, dtype=pl.Datetime("us", "UTC")))
    return _Prepared(
        records=checked.records, valid=valid.height, quarantined=checked.quarantine.height,
        days=valid["date"].unique().to_list(), h0=h0, h1=h1, lines=valid["_line"].to_numpy(),
        rows=_parquet(rows) if valid.height else b"",
        quarantine=_parquet(checked.quarantine) if checked.quarantine.height else b"")


@dataclass
class _Staged:
    """What reading a file left in staging."""

    records: int = 0
    valid: int = 0
    quarantined: int = 0
    parts: list[str] = field(default_factory=list)
    part_lines: list[tuple[int, int, int]] = field(default_factory=list)
    """Per part, its first and last ``_line`` and its row count."""
    quarantine_parts: list[str] = field(default_factory=list)
    dates: set[date] = field(default_factory=set)
    unverified: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """Valid lines not to publish: read from a gzip member that failed its integrity check."""


def ingest_event_file(storage: LakeStorage, raw_path: str, *, source: str,
                      partition_key: str, version_tag: str, landed_at: datetime,
                      publish_lock: Callable[[], AbstractContextManager[object]],
                      batch_bytes: int = BATCH_BYTES,
                      group_rows: int = GROUP_ROWS,
                      workers: int | None = None,
                      on_published: Callable[[pl.Schema], None] | None = None,
                      ) -> EventFileResult:
    """Ingest the events file at ``raw_path`` (see the module docstring).

    Args:
        storage: the lake.
        raw_path: the landed file's path in the lake's filesystem.
        source: its URI, recorded in every row's ``_source`` and quarantine ``source``.
        partition_key: the landed file's partition key (lineage ``_partition``).
        version_tag: names this version of the file's commit, index and rollups (a digest
            of the partition key and the file's sha256).
        landed_at: when the file landed (lineage ``_landed_at``).
        publish_lock: the lake's publish lock (serialises commits between processes).
        batch_bytes: uncompressed bytes read and validated at a time.
        group_rows: rows of new events written at a time (bounds the writer's memory).
        workers: validation processes (None: :func:`workers_for` the file's size).
        on_published: called with the table's columns as this ingest left it, still under
            the publish lock, so that catalogue registrations follow the commits' order (a
            later ingest's added column is never overwritten by an earlier one's schema).
    """
    table = EventTable(storage)
    staging = storage.path(STAGING, "events", version_tag)
    fs = storage.fs
    if fs.exists(staging):
        fs.rm(staging, recursive=True)
    fs.makedirs(staging, exist_ok=True)
    version_loaded = table.version()
    if workers is None:
        workers = workers_for(int(fs.size(raw_path)))
    with IdBuckets(buckets_for(int(fs.size(raw_path)) // LINE_BYTES)) as ids:
        # The live files as of version_loaded (a frame that never changes): the tags of a
        # day are looked up when the file first touches it, not for every day of the table.
        snapshot = table.files()
        staged = _read_and_stage(storage, raw_path, staging, ids, snapshot, source=source,
                                 partition_key=partition_key, landed_at=landed_at,
                                 batch_bytes=batch_bytes, workers=workers)
        with publish_lock():
            current = table.version()
            # The live tags before this commit, read at most once (a schema commit below
            # adds no file): for the commits since the ids were loaded, and for this tag.
            live: dict[date, set[str]] | None = None
            if staged.parts and current != version_loaded:
                # Commits since the ids were loaded (another delivery of the same events):
                # the ids of the files they added count as held too.
                before = tags_by_date(snapshot, staged.dates)
                live = table.live_tags(staged.dates)
                since = {d: tags - before[d] for d, tags in live.items()}
                for path in index_files(storage, staged.dates, since):
                    ids.add_held(read_ids(storage, [path]))
            dropped = ids.dropped_lines()
            if staged.unverified.size:  # a damaged gzip member only: no sort on every ingest
                dropped = np.union1d(dropped, staged.unverified)
            rows = _scan(storage, staged, dropped) if staged.parts else None
            if rows is not None and table.add_columns(rows.collect_schema()):
                current = table.version()  # the new columns were a commit of their own
            if rows is not None:
                _drop_earlier_attempt(storage, version_tag, staged.dates,
                                      table.live_tags(staged.dates) if live is None else live)
            written, rolled = (_commit(storage, table, rows, partition_key=partition_key,
                                       version_tag=version_tag, group_rows=group_rows,
                                       next_version=(current or 0) + 1)
                               if rows is not None else
                               (None, pl.DataFrame(schema=ROLLUP_SCHEMA).select(ROLLUP_COUNTS)))
            quarantine = _publish_quarantine(storage, partition_key, staged.quarantine_parts)
            version = table.version()
            schema = table.schema() if version is not None else None
            if schema is not None and on_published is not None:
                on_published(schema)
            held = index_files(storage, staged.dates, table.live_tags(staged.dates))
            repeated, repeated_before = _repeated(storage, held, ids.buckets, version_tag)
    if fs.exists(staging):
        fs.rm(staging, recursive=True)
    added = written.rows if written else 0
    reasons = (dict(quarantine.select(pl.col("reason").str.replace(r": .*$", ""))
                    .group_by("reason").len().iter_rows())
               if quarantine.height else {})
    return EventFileResult(
        partition_key=partition_key, source=source, records=staged.records,
        valid=staged.valid, quarantined=staged.quarantined,
        duplicates=staged.valid - added, added_rows=added,
        staged_rows=int(rolled["events"].sum()) if rolled.height else 0,
        repeated_ids=repeated, repeated_ids_before=repeated_before,
        table_version=version, dates=sorted(staged.dates),
        rollups=rolled, quarantine=quarantine, reasons=reasons, table_schema=schema)


def _drop_earlier_attempt(storage: LakeStorage, tag: str, dates: set[date],
                          live: dict[date, set[str]]) -> list[str]:
    """Remove the index and rollup files an earlier, uncommitted attempt wrote under ``tag``.

    They are not trusted while the tag has no live file on their day, but a retry that
    commits makes the tag live, and writes only the parts it has itself: an earlier
    attempt's extra parts (it cut the file into more slices, or added ids since taken by
    another delivery) would then be trusted, holding ids and counts twice (a review found
    this in session 23). A day where the tag is already live keeps its files.
    """
    removed = []
    for day in sorted(dates):
        if tag in live.get(day, ()):
            continue
        for folder in (id_day_folder(storage, day), rollup_day_folder(storage, day)):
            for path in storage.parquet_in(folder):
                if tag_of(path) == tag:
                    storage.fs.rm(path)
                    removed.append(path)
    return removed


def _prepared(batches: Iterator[LineBatch | str], prepare: Callable[[LineBatch], _Prepared], *,
              workers: int) -> Iterator[_Prepared | str]:
    """``prepare`` of each batch, in order (reasons for unreadable rests as they are).

    With ``workers`` > 1 in that many worker processes (validation is a per-line loop that
    holds the GIL), at most ``workers`` + 1 batches in flight, so memory stays bounded by the
    batch size.
    """
    if workers <= 1:
        for batch in batches:
            yield batch if isinstance(batch, str) else prepare(batch)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending: deque[Future[_Prepared] | str] = deque()
        for batch in batches:
            pending.append(batch if isinstance(batch, str)
                           else pool.submit(prepare, batch))
            while len(pending) > workers:
                done = pending.popleft()
                yield done if isinstance(done, str) else done.result()
        while pending:
            done = pending.popleft()
            yield done if isinstance(done, str) else done.result()


def workers_for(size: int) -> int:
    """Validation processes for a file of ``size`` bytes.

    One (inline) up to :data:`INLINE_BYTES`, since each worker is a fresh interpreter that
    imports polars and the validator before its first batch (a fixed cost a small file does
    not repay); else one per usable core, at most four.
    """
    if size <= INLINE_BYTES:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _read_and_stage(storage: LakeStorage, raw_path: str, staging: str, ids: IdBuckets,
                    snapshot: pl.DataFrame, *, source: str, partition_key: str,
                    landed_at: datetime, batch_bytes: int, workers: int) -> _Staged:
    """Validate the file batch by batch; stage its valid rows and its quarantine.

    Every valid row's id goes to ``ids`` with its line, and the ids the table holds on each
    date the file touches as held (the files of ``snapshot``, an ``EventTable.files``
    frame, whose tag is live on that date): which rows are new is decided once the file is
    read.
    """
    out = _Staged()
    fs = storage.fs
    unverified_from: int | None = None
    with fs.open(raw_path, "rb") as fh:
        batches = iter_line_batches(fh, batch_bytes=batch_bytes)
        prepare = partial(prepare_batch, source=source, partition_key=partition_key,
                          landed_at=landed_at)
        for n, ready in enumerate(_prepared(batches, prepare, workers=workers)):
            if isinstance(ready, str):
                out.quarantine_parts.append(_stage(storage, staging, f"q-{n:05d}",
                                                   _parquet(file_reject(source, ready))))
                out.quarantined += 1
                out.records += 1  # the unreadable rest counts as one record, quarantined
                unverified_from = getattr(ready, "unverified_from", None)
                continue
            out.records += ready.records
            out.valid += ready.valid
            out.quarantined += ready.quarantined
            if ready.quarantine:
                out.quarantine_parts.append(_stage(storage, staging, f"q-{n:05d}",
                                                   ready.quarantine))
            for day in sorted(set(ready.days) - out.dates):
                held = index_files(storage, [day], tags_by_date(snapshot, [day]))
                for path in held:  # one file at a time
                    ids.add_held(read_ids(storage, [path]))
                out.dates.add(day)
            if ready.valid:
                ids.add(ready.h0, ready.h1, ready.lines)
                out.parts.append(_stage(storage, staging, f"v-{n:05d}", ready.rows))
                out.part_lines.append((int(ready.lines.min()), int(ready.lines.max()),
                                       ready.valid))
    if unverified_from is not None:
        _quarantine_unverified(storage, raw_path, staging, out, source=source,
                               first=unverified_from)
    return out


def _quarantine_unverified(storage: LakeStorage, raw_path: str, staging: str, out: _Staged,
                           *, source: str, first: int) -> None:
    """Move the valid lines from ``first`` on (a damaged gzip member's) to the quarantine.

    They decoded, but their member failed its integrity check, so any of them may hold a
    flipped value: none is published (``out.unverified``), each is quarantined with its raw
    text (the file is read again up to the damage; a rare path) and the reason. Lines
    already quarantined keep their own reason.
    """
    held = [pl.read_parquet(storage.fs.cat_file(p), columns=["line"])["line"]
            for p in out.quarantine_parts]
    rejected = set(pl.concat(held).drop_nulls().to_list()) if held else set()
    reason = (f"not published: its gzip member (from line {first}) fails its integrity "
              "check, so what it decoded to is unverified")
    moved: list[np.ndarray] = []
    with storage.fs.open(raw_path, "rb") as fh:
        for n, batch in enumerate(iter_line_batches(fh)):
            if isinstance(batch, str) or batch.end_line <= first:
                continue
            lines, raws, notes = [], [], []
            for line_no, text in enumerate(batch.lines, batch.first_line):
                if (line_no >= first and text and not text.isspace()
                        and line_no not in rejected):
                    lines.append(line_no)
                    raws.append(raw_text(text))
                    notes.append(reason + cut_note(text))
            if lines:  # a part per batch: memory stays bounded by the batch
                part = pl.DataFrame({"source": [source] * len(lines), "line": lines,
                                     "raw": raws, "reason": notes}, schema=QUARANTINE_COLUMNS)
                out.quarantine_parts.append(
                    _stage(storage, staging, f"q-unverified-{n:05d}", _parquet(part)))
                moved.append(np.asarray(lines, dtype=np.int64))
    out.unverified = np.concatenate(moved) if moved else np.empty(0, dtype=np.int64)
    out.valid -= len(out.unverified)
    out.quarantined += len(out.unverified)


def _commit(storage: LakeStorage, table: EventTable, rows: pl.LazyFrame, *,
            partition_key: str, version_tag: str, group_rows: int,
            next_version: int) -> tuple[Written, pl.DataFrame]:
    """Index, roll up and commit ``rows``, a group of event types at a time.

    The staged parts are not partitioned by type, so every read of a group scans them all:
    streaming, so the filter runs batch by batch and only the group is ever held (the
    in-memory engine would read the projected columns of every staged row first).
    """
    per_hour = rows.group_by("event_type", "hour").len().collect(engine="streaming")
    sizes = per_hour.group_by("event_type").agg(pl.col("len").sum()).sort("event_type")
    groups = groups_by_size(sizes, group_rows)
    # One slice in memory at a time: a group of types, or a range of hours of a group bigger
    # than ``group_rows`` (a single frequent type: its size grows with the file), cut where
    # the group's own hourly counts reach the limit.
    slices = []
    for types in groups:
        counts = (per_hour.filter(pl.col("event_type").is_in(types))
                  .group_by("hour").agg(pl.col("len").sum()))
        hourly = [0] * 24
        for hour, n in counts.iter_rows():
            hourly[int(hour)] = int(n)
        slices += [pl.col("event_type").is_in(types) & pl.col("hour").is_between(lo, hi)
                   for lo, hi in hour_ranges(hourly, group_rows)]
    counted = []
    for part, where in enumerate(slices):
        group = (rows.filter(where).select("id", "event_type", "date", "hour", "user_id")
                 .collect(engine="streaming"))
        write_index(storage, version_tag, group.select("id", "date"), part=part)
        rolled = rollup_rows(group, partition_key=partition_key, table_version=next_version)
        del group
        # The slice's sketches go to its own rollup files at once: only the counts are kept
        # (a big file's sketches would otherwise pile up here until the commit: a few KB per
        # type x date x hour, thousands of them for a big file).
        write_rollups(storage, version_tag, rolled, part=part)
        counted.append(rolled.select(ROLLUP_COUNTS))
        del rolled
    written = table.append(rows, tag=version_tag, slices=slices,
                           metadata={"cryptodudez.partition": partition_key})
    return written, pl.concat(counted)


def hour_ranges(per_hour: list[int], limit: int) -> list[tuple[int, int]]:
    """The hours 0-23 as consecutive inclusive ranges of at most ``limit`` rows each.

    ``per_hour`` holds the rows of each hour (24 counts). A range closes before the hour that
    would take it over ``limit``; an hour holding more than ``limit`` rows alone is a range
    of its own (the finest cut there is).
    """
    ranges: list[tuple[int, int]] = []
    start = held = 0
    for hour, rows in enumerate(per_hour):
        if hour > start and held + rows > limit:
            ranges.append((start, hour - 1))
            start, held = hour, 0
        held += rows
    ranges.append((start, 23))
    return ranges


def _parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="lz4")
    return buf.getvalue()


def _stage(storage: LakeStorage, folder: str, name: str, data: bytes) -> str:
    path = posixpath.join(folder, f"{name}.parquet")
    storage.fs.pipe_file(path, data)
    return path


def _scan(storage: LakeStorage, staged: _Staged, dropped: np.ndarray) -> pl.LazyFrame | None:
    """The staged rows to publish, without the ``dropped`` lines; None when none is left.

    ``dropped`` is ascending. Parts whose every row is dropped are not read (a replayed
    file reads nothing), and only the dropped lines of the parts read go into the filter.
    """
    parts, filtered = [], []
    for path, (first, last, count) in zip(staged.parts, staged.part_lines, strict=True):
        lo, hi = np.searchsorted(dropped, [first, last + 1])
        if hi - lo < count:
            parts.append(path)
            filtered.append(dropped[lo:hi])
    if not parts:
        return None
    # Each batch's part has the meta_<field> columns of its own lines: the rows are read
    # with the union of the parts' columns (first seen first), null where a part lacks one.
    # (Footers only: polars' read_parquet_schema on a file object reads the whole file.)
    schema: dict[str, pl.DataType] = {}
    for path in parts:
        with storage.fs.open(path, "rb") as fh:
            footer = pq.read_schema(fh)
        for name, dtype in pl.DataFrame(footer.empty_table()).schema.items():
            schema.setdefault(name, dtype)
    if not storage.is_s3:
        rows = pl.scan_parquet(parts, schema=schema, missing_columns="insert")
    else:
        from cryptodudez.lake.event_table import storage_options  # noqa: PLC0415

        rows = pl.scan_parquet([f"s3://{p}" for p in parts], schema=schema,
                               missing_columns="insert",
                               storage_options=storage_options(storage) or None)
    drop = np.concatenate(filtered)
    return rows.filter(~pl.col("_line").is_in(pl.Series(drop))) if len(drop) else rows


def quarantine_prefix(partition_key: str) -> str:
    """Start of the names of a landed events file's quarantine fragments."""
    return fragment_prefix(partition_key)


def _publish_quarantine(storage: LakeStorage, partition_key: str,
                        staged: list[str]) -> pl.DataFrame:
    """Replace the file's published quarantine with ``staged``; return it as published."""
    fs = storage.fs
    folder = storage.path(QUARANTINE, "events")
    prefix = quarantine_prefix(partition_key)
    old = {p for p in storage.parquet_in(folder) if posixpath.basename(p).startswith(f"{prefix}-")}
    fs.makedirs(folder, exist_ok=True)
    published = []
    for n, path in enumerate(staged):
        dest = posixpath.join(folder, f"{prefix}-{n:05d}.parquet")
        fs.mv(path, dest)
        old.discard(dest)
        published.append(dest)
    for path in sorted(old):
        fs.rm(path)
    if not published:
        return pl.DataFrame(schema=QUARANTINE_COLUMNS)
    return pl.concat([pl.read_parquet(io.BytesIO(fs.cat_file(p))) for p in published])


__all__ = ["ROLLUPS", "EventFileResult", "ingest_event_file"]
