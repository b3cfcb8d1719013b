"""A day of the event lake compacted by Spark: the twin of the polars day writer.

Same result as ``cryptodudez.lake.event_table.polars_day_writer``, the default writer of
``EventTable.compact_day``: the day's rows as of one table version, rewritten as one Parquet
file per (type, hour) under the table root, rows sorted by ``event_type``, ``hour``,
``created_at`` and ``id``, named ``<prefix>-g<n>-000.parquet`` (``n``: the type's group, so
``tag_of`` finds the compaction's tag and the id index and rollups written under it stay
live), and one AddAction per file holding what the polars writer records: the relative path,
the size, the partition values (``hour`` without padding, as there) and ``{"numRecords": n}``
from the file's own footer (the polars writer records no min/max either). The caller commits
them with the day's RemoveActions through the same ``EventTable._commit``: one Delta commit.

How Spark does it, without delta-spark (its jars cannot be fetched here): the files the Delta
log lists for the day at that version are read as Parquet with the table's own schema
(Delta's schema JSON is Spark's ``StructType`` JSON), partition values taken from the
``event_type=…/date=…/hour=HH`` folders, checked first against the log's partition values.
The rows are hash-repartitioned by (type, hour), so each pair is in one task, sorted within
the tasks by type, date, hour, ``created_at`` and ``id`` (byte-wise strings, as polars; ids are
unique in the table, so the order is total) and written with ``partitionBy`` on the padded
hour, which Spark's writer needs no extra sort for: one file per pair, rows in order. Spark
names files ``part-…``, so it writes them to the lake's ``.staging/events-compaction/``
folder and they are moved into place under their final names (a rename locally; a server-side
copy on S3). The files hold the data columns only, in the table's order, zstd, timestamps as
``TIMESTAMP_MICROS`` adjusted to UTC (the session's ``SESSION_CONF``), every column optional:
the Parquet schema the polars writer writes.
"""

import json
import posixpath
import time
from collections.abc import Sequence
from datetime import date

import polars as pl
import pyarrow.parquet as pq
from deltalake.transaction import AddAction
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812  # the usual Spark spelling
from pyspark.sql.types import StructType

from cryptodudez.lake.event_table import (
    PARTITION_COLUMNS,
    DayWriter,
    EventTable,
    check_layout,
    folder_values,
)
from cryptodudez.lake.layout import STAGING as LAKE_STAGING

SORT = ("event_type", "date", "hour", "created_at", "id")
"""Order of the rows in each file (``date`` is one day here: the polars order exactly)."""
KEY = ("event_type", "hour")
"""Rows sharing these values go to one task, hence to one file."""
TIMESTAMP_CONF = "spark.sql.parquet.outputTimestampType"
STAGING = (LAKE_STAGING, "events-compaction")
"""Where Spark writes, under the lake's root, before the files are moved into the table."""


def day_files(table: EventTable, day: date, version: int | None) -> pl.DataFrame:
    """The files the log lists for ``day`` at ``version``: ``path``, partition values."""
    files = table.snapshot(version)[1]
    return files.select("path", *PARTITION_COLUMNS).filter(pl.col("date") == day).sort("path")


def table_schema(table: EventTable, version: int | None) -> StructType:
    """The table's schema at ``version`` as Spark's (partition columns included)."""
    return StructType.fromJson(json.loads(table.snapshot(version)[0].schema().to_json()))


def compacted(rows: DataFrame, *, sort: Sequence[str] = SORT) -> DataFrame:
    """``rows`` laid out for the write: one task per (type, hour), sorted, hour padded.

    ``hour`` becomes its two-digit string (the folder name ``hour=HH`` and an order equal to
    the number's for 0-23).
    """
    return (rows.repartition(*KEY)
            .withColumn("hour", F.lpad(F.col("hour").cast("string"), 2, "0"))
            .sortWithinPartitions(*sort))


def spark_uri(table: EventTable, path: str, *, s3_scheme: str = "s3a") -> str:
    """A path of the lake's filesystem (``storage.path(…)``) as Spark opens it."""
    return f"{s3_scheme}://{path}" if table.storage.is_s3 else f"file://{path}"


def write_day(spark: SparkSession, table: EventTable, day: date, *, version: int | None,
              groups: list[list[str]], prefix: str, s3_scheme: str = "s3a",
              sort: Sequence[str] = SORT) -> list[AddAction]:
    """Rewrite ``day`` of ``table`` as of ``version`` with Spark (see the module docstring).

    Args:
        spark: the session (``SESSION_CONF`` applied: UTC, microsecond timestamps).
        table: the events table.
        day: the day rewritten.
        version: the table version read (the caller commits against it).
        groups: the day's event types in groups; a type's group numbers its file.
        prefix: the compaction's tag, the start of every file name.
        s3_scheme: how Spark names S3 (``s3a`` for open-source Spark, ``s3`` on EMR).
        sort: the rows' order in each file (a parameter for the tests' planted faults).
    """
    if spark.conf.get(TIMESTAMP_CONF, None) != "TIMESTAMP_MICROS":
        msg = (f"{TIMESTAMP_CONF} must be TIMESTAMP_MICROS (the table's timestamps), not "
               f"{spark.conf.get(TIMESTAMP_CONF, None)}: build the session with SESSION_CONF")
        raise ValueError(msg)
    files = day_files(table, day, version)
    if files.height == 0:
        return []
    check_layout(files)
    group_of = {event_type: n for n, types in enumerate(groups) for event_type in types}
    missing = set(files["event_type"].unique()) - set(group_of)
    if missing:
        msg = f"event types without a group: {sorted(missing)}"
        raise ValueError(msg)
    schema = table_schema(table, version)
    data_columns = [f.name for f in schema.fields if f.name not in PARTITION_COLUMNS]
    base = spark_uri(table, table.root, s3_scheme=s3_scheme)
    rows = (spark.read.schema(schema).option("basePath", base)
            .parquet(*[f"{base}/{path}" for path in files["path"]])
            .filter(F.col("date") == F.lit(day)))
    fs = table.storage.fs
    staging = table.storage.path(*STAGING, prefix)
    try:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)
        (compacted(rows, sort=sort).select(*PARTITION_COLUMNS, *data_columns)
         .write.mode("errorifexists").partitionBy(*PARTITION_COLUMNS)
         .option("compression", "zstd").option("maxRecordsPerFile", 0)
         .parquet(spark_uri(table, staging, s3_scheme=s3_scheme)))
        # Files moved in but never committed (a failure below) are vacuumed like any other.
        return _move_into_table(table, staging, prefix=prefix, group_of=group_of)
    finally:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)


def _move_into_table(table: EventTable, staging: str, *, prefix: str,
                     group_of: dict[str, int]) -> list[AddAction]:
    """Move Spark's files to their final names; their AddActions (stats from footers)."""
    fs = table.storage.fs
    written: dict[tuple[str, str, int], list[str]] = {}
    for found in sorted(fs.find(staging)):
        rel = str(found).removeprefix(staging.rstrip("/") + "/")
        name = posixpath.basename(rel)
        if not name.endswith(".parquet") or name.startswith((".", "_")):
            continue  # _SUCCESS, .crc checksums
        values = folder_values(rel)
        if set(values) != set(PARTITION_COLUMNS):
            continue  # Spark's empty file for an empty result
        key = (values["event_type"], values["date"], int(values["hour"]))
        written.setdefault(key, []).append(str(found))
    now = int(time.time() * 1000)
    actions = []
    for (event_type, on, hour), sources in sorted(written.items()):
        for i, source in enumerate(sources):  # one, unless Spark rolled a file over
            rel = (f"event_type={event_type}/date={on}/hour={hour:02d}/"
                   f"{prefix}-g{group_of[event_type]:03d}-{i:03d}.parquet")
            target = posixpath.join(table.root, rel)
            if not table.storage.is_s3:
                fs.makedirs(posixpath.dirname(target), exist_ok=True)
            fs.mv(source, target)
            with fs.open(target, "rb") as fh:
                num_rows = pq.read_metadata(fh).num_rows
            actions.append(AddAction(
                path=rel, size=int(fs.size(target)), modification_time=now, data_change=True,
                partition_values={"event_type": event_type, "date": on, "hour": str(hour)},
                stats=json.dumps({"numRecords": num_rows})))
    return actions


def spark_writer(spark: SparkSession, *, s3_scheme: str = "s3a") -> DayWriter:
    """A ``writer`` for ``compact_day`` that rewrites the day with ``spark``.

    ``compaction.compact_day(storage, day, publish_lock=…, writer=spark_writer(spark))``.
    """
    def writer(table: EventTable, day: date, *, version: int | None,
               groups: list[list[str]], prefix: str) -> list[AddAction]:
        return write_day(spark, table, day, version=version, groups=groups, prefix=prefix,
                         s3_scheme=s3_scheme)

    return writer
