"""The ``events`` Delta Lake table: append without duplicates, compact a day, vacuum.

Dagster-free. The table lives at ``validated/events/`` in the lake (a folder or S3), laid out
``event_type=<type>/date=YYYY-MM-DD/hour=HH/`` so Athena, DuckDB, polars and Spark prune by
type and time. Delta Lake (the ``deltalake`` package) gives readers atomic commits, time
travel and vacuum; this module writes the Parquet files itself (polars' partitioned sink,
streaming, one file per type x hour per landed file) and commits them with
``create_write_transaction``, so a landed file is one commit and a compacted day is one
commit that removes the day's small files and adds the rewritten ones.

Writers are serialised by the lake's publish lock (``Lake.publish_lock``), which is why the
S3 store may use Delta's plain (unsafe-rename) commits: two commits never race.
"""

import json
import os
import posixpath
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, Protocol
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Field
from deltalake.transaction import AddAction, RemoveAction

from cryptodudez.lake.layout import tag_of, tags_of
from cryptodudez.storage import LakeStorage

PARTITION_COLUMNS = ("event_type", "date", "hour")
TABLE = "events"
LAYER = "validated"
Codec = Literal["snappy", "zstd"]
COMPACT_GROUP_BYTES = 64 << 20
"""Compaction reads the day's files in groups of event types of about this many bytes of
Parquet, so its memory is bounded by the group, not by the day."""
INGEST_ROW_GROUP = 16_384
"""Rows per Parquet row group in the files an ingest writes.

polars' partitioned sink keeps one open writer per (type, date, hour) of a slice, and each
buffers a whole row group before it writes: with polars' default (512 x 512 rows) the
buffers of a big file's partitions grew with the input. Measured by hand with
``/usr/bin/time`` on the engine alone (docs/events.md, session 11): 805,556 KB at 2 M events
against 884,960 KB at 20 M with the default, 769,888 against 748,392 KB with 16,384.
Compaction keeps the default: its memory is bounded by the group of types
(:data:`COMPACT_GROUP_BYTES`) and its readers want large row groups."""


class DayWriter(Protocol):
    """How :meth:`EventTable.compact_day` rewrites a day's files (polars or Spark)."""

    def __call__(self, table: "EventTable", day: date, *, version: int | None,
                 groups: list[list[str]], prefix: str) -> list[AddAction]:
        """Rewrite ``day`` of ``table`` as of ``version``; return the files' AddActions.

        The files go under the table root, one per (type, hour) of ``day``, rows sorted
        by type, hour, ``created_at`` and id, named ``<prefix>-g<n>-<i>.parquet`` where
        ``n`` is the index of the type's group in ``groups``. Nothing is committed: the
        caller commits the AddActions with the day's RemoveActions.
        :func:`polars_day_writer` is the default;
        ``cryptodudez.spark.event_compaction.spark_writer`` is its Spark twin.
        """
        ...  # pragma: no cover


@dataclass(frozen=True)
class Written:
    """What one commit added (or one compaction rewrote), from the files' own footers."""

    version: int | None
    files: int
    rows: int
    partitions: int
    removed_files: int = 0
    removed_rows: int = 0


def storage_options(storage: LakeStorage) -> dict[str, str]:
    """Object-store options for polars and deltalake to reach the lake's S3 (or nothing).

    Credentials come from the usual ``AWS_*`` variables; a local S3 server (moto in tests)
    is reached over plain HTTP. Delta's unsafe-rename commit is safe here because every
    writer holds the lake's publish lock.
    """
    if not storage.is_s3:
        return {}
    options = {"aws_s3_allow_unsafe_rename": "true"}
    if storage.endpoint_url:
        options["aws_endpoint_url"] = storage.endpoint_url
        if storage.endpoint_url.startswith("http://"):
            options["aws_allow_http"] = "true"
    region = storage.region_name or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get(
        "AWS_REGION")
    if region:
        options["aws_region"] = region
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if os.environ.get(key):
            options[key.lower()] = os.environ[key]
    return options


EMPTY_FILES_SCHEMA = {"path": pl.String, "size": pl.Int64, "rows": pl.Int64,
                      "event_type": pl.String, "date": pl.Date, "hour": pl.Int32}


def plain_parquet(delta: DeltaTable) -> bool:
    """Whether ``delta``'s files hold its rows as they stand.

    True without reader features (deletion vectors, column mapping): the files can be read
    as Parquet, and the log's per-file row counts are the rows.
    """
    protocol = delta.protocol()
    return protocol.min_reader_version == 1 and not protocol.reader_features


def _file_frame(delta: DeltaTable) -> pl.DataFrame:
    """The live files of ``delta`` as :meth:`EventTable.files` gives them."""
    actions = pl.DataFrame(delta.get_add_actions(flatten=True))
    return actions.select(
        "path", pl.col("size_bytes").alias("size"), pl.col("num_records").alias("rows"),
        pl.col("partition.event_type").alias("event_type"),
        pl.col("partition.date").cast(pl.Date).alias("date"),
        pl.col("partition.hour").cast(pl.Int32).alias("hour"))


def tags_by_date(files: pl.DataFrame,
                 days: Iterable[date] | None = None) -> dict[date, set[str]]:
    """Per date of ``files`` (an :meth:`EventTable.files` frame), its files' tags.

    With ``days``, only those dates, each a key (an empty set for a date without files):
    the dates are filtered first, so asking for a day costs that day's files, not a tag
    per live file of the table (0.29 s at 221,877 files, by hand).
    """
    live: dict[date, set[str]] = {}
    if days is not None:
        wanted = sorted(set(days))
        files = files.filter(pl.col("date").is_in(wanted))
        live = {day: set() for day in wanted}
    # One (date, tag) per commit and day, found without a Python call per file.
    for on, tag in files.select("date", tags_of(pl.col("path"))).unique().iter_rows():
        live.setdefault(on, set()).add(tag)
    return live


def folder_values(path: str) -> dict[str, str]:
    """The ``key=value`` folders of a relative file path (values unescaped)."""
    return {key: unquote(value) for key, _, value in
            (seg.partition("=") for seg in posixpath.dirname(path).split("/")) if _}


def check_layout(files: pl.DataFrame) -> None:
    """Raise unless every file's folders name the partition values the log gives it.

    Readers that take the partition values from the folders (:meth:`EventTable.scan_days`,
    the Spark twin) rely on it; the log is the authority.
    """
    for path, event_type, on, hour in files.select("path", *PARTITION_COLUMNS).iter_rows():
        found = folder_values(path)
        try:
            same = (found["event_type"] == event_type and found["date"] == on.isoformat()
                    and int(found["hour"]) == hour)
        except (KeyError, ValueError):
            same = False
        if not same:
            msg = (f"{path}: folders {found} disagree with the log's partition values "
                   f"event_type={event_type}, date={on}, hour={hour}")
            raise ValueError(msg)


def _key_value_folder(uri: str) -> bool:
    """Whether a folder above the table is named like a partition (``env=prod``)."""
    return any("=" in part for part in uri.rsplit("://", maxsplit=1)[-1].split("/"))


def _partition_path(event_type: str, day: str, hour: int) -> str:
    return f"event_type={event_type}/date={day}/hour={hour:02d}"


def _stats(num_rows: int) -> str:
    return json.dumps({"numRecords": num_rows})


class EventTable:
    """The ``events`` table of one lake."""

    def __init__(self, storage: LakeStorage, name: str = TABLE) -> None:
        self.storage = storage
        self.name = name
        self.root = storage.path(LAYER, name)
        self.uri = storage.url(LAYER, name) if storage.is_s3 else self.root
        self.options = storage_options(storage)
        self._loaded: DeltaTable | None = None
        self._files: tuple[int, pl.DataFrame] | None = None
        self._pinned: tuple[int, DeltaTable, pl.DataFrame] | None = None

    # -- reading ---------------------------------------------------------------------------

    def exists(self) -> bool:
        """True once the table has a first commit."""
        return self._loaded is not None or bool(
            DeltaTable.is_deltatable(self.uri, storage_options=self.options or None))

    def table(self) -> DeltaTable:
        """The table at its latest version.

        Loaded once per ``EventTable``; later calls look for the log's next commit file and,
        only when there is one, read the commits made since (``update_incremental``). A
        load reads every live file's action, which grows with the table's age (0.57 to
        0.73 s at 217,876 files, thirty compacted days, docs/events.md), and one ingest or
        compaction asks for the latest version many times.
        """
        if self._loaded is None:
            self._loaded = DeltaTable(self.uri, storage_options=self.options or None)
        elif self.storage.fs.exists(posixpath.join(
                self.root, "_delta_log", f"{self._loaded.version() + 1:020d}.json")):
            self._loaded.update_incremental()
        return self._loaded

    def version(self) -> int | None:
        """Latest version, or None before the first commit."""
        return self.table().version() if self.exists() else None

    def schema(self) -> pl.Schema:
        """The latest version's columns as polars reads them (no scan, no second load)."""
        return pl.Schema(self.table().schema())

    def scan(self, version: int | None = None) -> pl.LazyFrame:
        """The table (at ``version``, default the latest) as a LazyFrame.

        Partition columns are included and filters prune files. polars resolves the Delta
        log on the first collect and keeps it: reuse one scan for several filtered reads of
        one version instead of resolving the log for each. Scans of one ``version`` share
        one load of it (a version never changes; the latest one is not held, it moves).
        """
        # Under a folder named like a partition (``env=prod``), polars' own reader takes it
        # for one and fails (see :meth:`scan_days`); deltalake's reader, through pyarrow,
        # takes the partition values from the log.
        via_arrow = _key_value_folder(self.uri)
        if version is None:
            return pl.scan_delta(self.uri, storage_options=self.options or None,
                                 use_pyarrow=via_arrow)
        return pl.scan_delta(self._at(version)[0], use_pyarrow=via_arrow)

    def scan_days(self, days: Iterable[date], version: int | None = None,
                  types: Iterable[str] | None = None) -> pl.LazyFrame:
        """The rows dated ``days`` (at ``version``, default the latest), from their files only.

        With ``types``, only those event types' rows (their files only are read).

        The rows of ``scan(version).filter(date in days)``, columns in the same order, but
        polars' Delta reader lists every live file of the table for each scan (2.6 to 3.2 s
        for one small day's read at 217,876 files, docs/events.md), where this reads the days'
        files the log lists: as Parquet with the table's schema (columns a file lacks are
        nulls), partition values from the folders, which must agree with the log
        (:func:`check_layout`), as the Spark twin reads them (under a folder named like a
        partition, ``env=prod``, from the log). A table with reader features
        (deletion vectors, column mapping) is read through :meth:`scan` instead.
        """
        wanted = sorted(set(days))
        if not self.exists():
            return pl.LazyFrame(schema={c: EMPTY_FILES_SCHEMA[c] for c in PARTITION_COLUMNS})
        delta, files = self.snapshot(version)
        schema = pl.Schema(delta.schema())
        kept = pl.col("date").is_in(wanted)
        if types is not None:
            kept &= pl.col("event_type").is_in(sorted(set(types)))
        if not plain_parquet(delta):
            return self.scan(version).filter(kept)
        files = files.filter(kept)
        if files.height == 0:
            return pl.LazyFrame(schema=schema)
        check_layout(files)
        paths = [posixpath.join(self.uri, path) for path in files["path"]]
        if not _key_value_folder(self.uri):
            return pl.scan_parquet(
                paths, schema=schema, hive_partitioning=True,
                hive_schema={c: schema[c] for c in PARTITION_COLUMNS},
                missing_columns="insert", extra_columns="ignore",
                storage_options=self.options or None)
        # polars takes every ``k=v`` folder of a path for a partition, the table's own
        # ancestors too (``s3://bucket/env=prod/lake``: "column not present in the given
        # Hive schema: env"). There, each file's partition values come from the log.
        values = files.select(pl.Series("_file", paths), *(
            pl.col(c).cast(schema[c]) for c in PARTITION_COLUMNS))
        return pl.scan_parquet(
            paths, schema={c: t for c, t in schema.items() if c not in PARTITION_COLUMNS},
            hive_partitioning=False, missing_columns="insert", extra_columns="ignore",
            include_file_paths="_file", storage_options=self.options or None,
        ).join(values.lazy(), on="_file", how="left", maintain_order="left").select(
            list(schema))

    def files(self) -> pl.DataFrame:
        """Every live data file: ``path`` (relative), ``size``, ``rows``, partition values.

        Built once per table version (the same frame is returned until the next commit).
        """
        if not self.exists():
            return pl.DataFrame(schema=EMPTY_FILES_SCHEMA)
        table = self.table()
        if self._files is None or self._files[0] != table.version():
            self._files = (table.version(), _file_frame(table))
        return self._files[1]

    def snapshot(self, version: int | None = None) -> tuple[DeltaTable, pl.DataFrame]:
        """The table at ``version`` (default the latest) and its :meth:`files` frame.

        The loaded table when it is at that version (no second load of the same version, as
        a compaction that pinned the latest would otherwise pay), else one pinned load.
        Callers take what they need from it at once: the loaded table moves on with the
        next call for the latest version, so it is never handed to a lazy reader.
        """
        if version is None:
            return self.table(), self.files()
        if self._loaded is not None and self._loaded.version() == version:
            if self._files is None or self._files[0] != version:
                self._files = (version, _file_frame(self._loaded))
            return self._loaded, self._files[1]
        return self._at(version)

    def _at(self, version: int) -> tuple[DeltaTable, pl.DataFrame]:
        """The table pinned at ``version`` and its files (one load per version in a row)."""
        if self._pinned is None or self._pinned[0] != version:
            delta = DeltaTable(self.uri, version=version, storage_options=self.options or None)
            self._pinned = (version, delta, _file_frame(delta))
        return self._pinned[1], self._pinned[2]

    def ids_on(self, days: Iterable[date]) -> pl.DataFrame:
        """``id``, ``_partition`` and partition columns of every row dated ``days``."""
        wanted = sorted(set(days))
        if not wanted or not self.exists():
            return pl.DataFrame(schema={"id": pl.String, "_partition": pl.String,
                                        "event_type": pl.String, "date": pl.Date,
                                        "hour": pl.Int32})
        return (self.scan_days(wanted)
                .select("id", "_partition", "event_type", "date", "hour").collect())

    # -- writing ---------------------------------------------------------------------------

    def add_columns(self, schema: pl.Schema) -> bool:
        """Add the columns of ``schema`` the table lacks (nullable; a commit of its own).

        A Delta append commits files, not a schema: a column first seen in a later delivery
        (a new ``meta_<field>``) would be written in its files and never read. Earlier files
        read as nulls in it. Returns True when it committed.
        """
        if not self.exists():
            return False  # the first commit creates the table with the delivery's columns
        have = set(pa.schema(self.table().schema().to_arrow()).names)
        new = [name for name in schema if name not in have]
        if not new:
            return False
        arrow = pl.DataFrame(schema={n: schema[n] for n in new}).to_arrow().schema
        self.table().alter.add_columns([Field.from_arrow(f) for f in arrow])
        return True

    def append(self, rows: pl.LazyFrame, *, tag: str, slices: list[pl.Expr] | None = None,
               metadata: dict[str, str] | None = None) -> Written:
        """Write ``rows`` as one file per (type, date, hour) and commit them in one version.

        ``tag`` starts every file name, so the files of one landed file version can be told
        apart (and its id index and rollups trusted: see :meth:`live_tags`). ``slices``
        (disjoint filters: groups of event types, or hours of them) are written one at a
        time, bounding memory by the slice, not the input. Nothing is visible until the
        commit; files of an interrupted call are never referenced by the log (``vacuum``
        removes them).
        """
        added: list[AddAction] = []
        for n, where in enumerate(slices or [pl.lit(value=True)]):
            added += self._write_partitioned(rows.filter(where), prefix=f"{tag}-g{n:03d}",
                                             row_group_size=INGEST_ROW_GROUP)
        if not added:
            return Written(version=self.version(), files=0, rows=0, partitions=0)
        self._commit(added, removes=[], schema=self._schema_of(added[0]), metadata=metadata)
        return Written(version=self.version(), files=len(added),
                       rows=sum(json.loads(a.stats)["numRecords"] for a in added),
                       partitions=len({tuple(a.partition_values.values()) for a in added}))

    def live_tags(self, days: date | Iterable[date] | None = None) -> dict[date, set[str]]:
        """Per date (only ``days`` when given), the tags of the files the latest version holds.

        A file is ``<tag>-g<n>-<i>.parquet``. Per date, because one landed file's events
        span days (late events) and a compaction replaces one day's files only. See
        :func:`tags_by_date`.
        """
        return tags_by_date(self.files(), [days] if isinstance(days, date) else days)

    def compact_day(self, day: date, *, tag: str | None = None,
                    group_bytes: int = COMPACT_GROUP_BYTES,
                    writer: DayWriter | None = None) -> Written:
        """Rewrite one day as one file per (type, hour), sorted, in a single commit.

        Types are read in groups of about ``group_bytes`` of Parquet (bounded memory). Rows
        are written sorted by type, hour, time and id; every row and id is kept exactly
        once (the rewrite reads the day as of one version and commits against it).
        ``writer`` writes the files (default :func:`polars_day_writer`; the Spark twin is
        ``cryptodudez.spark.event_compaction.spark_writer``).
        """
        files = self.files().filter(pl.col("date") == day)
        if files.height == 0:
            return Written(version=self.version(), files=0, rows=0, partitions=0)
        per_type = files.group_by("event_type").agg(pl.col("size").sum())
        version = self.version()
        groups = groups_by_size(per_type.sort("event_type"), group_bytes)
        prefix = tag or compaction_tag(day, version)
        added = (writer or polars_day_writer)(self, day, version=version, groups=groups,
                                              prefix=prefix)
        removes = [RemoveAction(path=p, data_change=False,
                                deletion_timestamp=int(time.time() * 1000), size=s,
                                partition_values={"event_type": t, "date": day.isoformat(),
                                                  "hour": str(h)})
                   for p, s, t, h in files.select("path", "size", "event_type", "hour")
                   .iter_rows()]
        schema = self.table().schema()
        self._commit(added, removes=removes, schema=schema,
                     metadata={"cryptodudez.operation": "compact_day",
                               "cryptodudez.day": day.isoformat()})
        # A compacted day is where readers start: a checkpoint lets them (the KPI job,
        # polars, Spark, Athena) load one Parquet file of live actions instead of replaying
        # every JSON commit (docs/events.md, session 8).
        self.table().create_checkpoint()
        return Written(version=self.version(), files=len(added),
                       rows=sum(json.loads(a.stats)["numRecords"] for a in added),
                       partitions=len({tuple(a.partition_values.values()) for a in added}),
                       removed_files=files.height, removed_rows=int(files["rows"].sum()))

    def vacuum(self, *, retention_hours: int = 168) -> list[str]:
        """Delete files no version within ``retention_hours`` references.

        Readers of older versions keep working for that long.
        """
        if not self.exists():
            return []
        return list(self.table().vacuum(retention_hours=retention_hours, dry_run=False,
                                        enforce_retention_duration=False))

    # -- internals -------------------------------------------------------------------------

    def _write_partitioned(self, rows: pl.LazyFrame, *, prefix: str,
                           compression: Codec = "zstd",
                           row_group_size: int | None = None) -> list[AddAction]:
        """One Parquet file per (type, date, hour) of ``rows`` under the table root.

        ``compression`` is zstd for the table; ``benchmarks/bench_event_stages.py`` compares.
        ``row_group_size`` (rows) bounds what each open partition writer buffers; ``None``
        is polars' default.
        """
        written: list[Any] = []
        now = int(time.time() * 1000)

        def provider(args: pl.FileProviderArgs) -> str:
            event_type, day, hour = args.partition_keys.row(0)
            return (f"event_type={event_type}/date={day}/hour={hour}/"
                    f"{prefix}-{args.index_in_partition:03d}.parquet")

        target = self.root if not self.storage.is_s3 else self.uri
        rows.sink_parquet(
            pl.PartitionBy(target, key={
                "event_type": pl.col("event_type"),
                "date": pl.col("date").cast(pl.String),
                "hour": pl.col("hour").cast(pl.String).str.zfill(2),
            }, include_key=False, file_path_provider=provider),
            # zstd (polars' default): snappy wrote the same 9,342 files no faster and 1.5x
            # larger (benchmarks/bench_event_stages.py); a higher level or larger files
            # measured slower.
            compression=compression, row_group_size=row_group_size,
            mkdir=not self.storage.is_s3, statistics=True,
            storage_options=self.options or None,
            sinked_paths_callback=lambda out: written.extend(out.paths),
        )
        base = target.rstrip("/") + "/"
        actions = []
        for item in written:
            rel = str(item.path).removeprefix(base).removeprefix(self.root.rstrip("/") + "/")
            parts = dict(seg.split("=", 1) for seg in posixpath.dirname(rel).split("/"))
            actions.append(AddAction(
                path=rel, size=int(item.num_bytes), modification_time=now, data_change=True,
                partition_values={"event_type": parts["event_type"], "date": parts["date"],
                                  "hour": str(int(parts["hour"]))},
                stats=_stats(int(item.num_rows))))
        return actions

    def _schema_of(self, action: AddAction) -> pa.Schema:
        """The table schema: a written file's columns plus the partition columns."""
        path = posixpath.join(self.root, action.path)
        with self.storage.fs.open(path, "rb") as fh:
            data_schema = pq.read_schema(fh)
        fields = [f for f in data_schema if f.name not in PARTITION_COLUMNS]
        return pa.schema([pa.field("event_type", pa.string()), pa.field("date", pa.date32()),
                          pa.field("hour", pa.int32()), *fields])

    def _commit(self, adds: Sequence[AddAction], *, removes: Sequence[RemoveAction],
                schema: Any, metadata: dict[str, str] | None) -> None:
        from deltalake import CommitProperties, write_deltalake  # noqa: PLC0415

        properties = CommitProperties(custom_metadata=metadata) if metadata else None
        if not self.exists():
            # The first commit creates the table (empty), then the files are added to it.
            empty = pa.schema(schema) if isinstance(schema, pa.Schema) else schema
            write_deltalake(self.uri, pa.Table.from_pylist([], schema=empty),
                            partition_by=list(PARTITION_COLUMNS), mode="append",
                            storage_options=self.options or None)
        table = self.table()
        current = table.schema()
        if isinstance(schema, pa.Schema):
            # An append commits files, not a schema: a column the table lacks would be
            # written and never read (the caller adds it first, see add_columns).
            missing = set(schema.names) - set(pa.schema(current.to_arrow()).names)
            if missing:
                msg = (f"columns {sorted(missing)} are not in the events table: "
                       "add_columns before committing files that hold them")
                raise ValueError(msg)
        table.create_write_transaction(
            [*adds, *removes], mode="append", schema=current,
            partition_by=list(PARTITION_COLUMNS), commit_properties=properties)


def polars_day_writer(table: EventTable, day: date, *, version: int | None,
                      groups: list[list[str]], prefix: str) -> list[AddAction]:
    """The default :class:`DayWriter`: polars, one group of types in memory at a time."""
    added: list[AddAction] = []
    source = table.scan_days([day], version)
    for n, types in enumerate(groups):
        rows = (source.filter(pl.col("event_type").is_in(types))
                .sort("event_type", "hour", "created_at", "id"))
        added += table._write_partitioned(rows, prefix=f"{prefix}-g{n:03d}")
    return added


def compaction_tag(day: date, version: int | None) -> str:
    """Tag of the files (and id index and rollups) a compaction of ``day`` writes."""
    return f"{_compaction_prefix(day)}v{version}_{uuid.uuid4().hex[:8]}"


def _compaction_prefix(day: date) -> str:
    return f"compact_{day.isoformat()}_"


def compacted_by(day: date, paths: Iterable[str]) -> str | None:
    """The tag of the compaction that wrote every one of ``day``'s live files, if one did.

    ``paths`` are the day's live data files. None when the day has no file, or any file
    carries another tag (a landed file's, late events included, or an older compaction's):
    the day then holds rows its last compaction did not rewrite.
    """
    tags = {tag_of(path) for path in paths}
    if len(tags) != 1:
        return None
    (tag,) = tags
    return tag if tag.startswith(_compaction_prefix(day)) else None


def groups_by_size(per_type: pl.DataFrame, limit: int) -> list[list[str]]:
    """Event types (sorted) in consecutive groups whose sizes add up to about ``limit``.

    ``per_type`` holds ``event_type`` and one size column (bytes or rows).
    """
    groups: list[list[str]] = [[]]
    size = 0
    for event_type, type_bytes in per_type.sort("event_type").iter_rows():
        if groups[-1] and size + type_bytes > limit:
            groups.append([])
            size = 0
        groups[-1].append(event_type)
        size += type_bytes
    return groups
