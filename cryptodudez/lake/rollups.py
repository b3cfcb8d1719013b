"""Hourly rollups of the ``events`` table: counts and mergeable distinct-count sketches.

Dagster-free. Written at ingest (one file per slice of a landed file's types and date) and
rewritten when a day is compacted (16 files by type hash), under
``rollups/events/date=YYYY-MM-DD/``, they let the KPI job read megabytes instead of the
day's events. Each row covers one (landed file, type, date, hour):

``events``
    rows the table holds (exact; the table holds each id once, so also the distinct ids).
``ids_hll``, ``users_hll``
    Apache DataSketches HyperLogLog sketches (``lg_k`` = 12, about 1.6 % standard error) of
    the ids and of ``attributes.user_id``, merged across hours, files and shards without
    double counting (a user active in two hours counts once). ``users_hll`` is null where no
    event of the row carries a user id.
``table_version``
    the Delta version the rows were committed against.

Like the id index (:mod:`cryptodudez.lake.id_index`), a rollup file is named after the tag
of the commit it describes, written before that commit, and read only while the table's
latest version holds files with that tag; a compaction writes the day's rollups under its
own tag and the superseded files are removed.
"""

import hashlib
import io
import posixpath
import re
from collections import deque

import datasketches as ds
import polars as pl

from cryptodudez.lake.layout import tag_of
from cryptodudez.lake.layout import tag_part as _part
from cryptodudez.storage import LakeStorage

ROLLUPS = "rollups"
LG_K = 12
SKETCH_SLICE = 4
"""Rollup rows (type x date x hour) whose ids are turned into Python objects at a time."""
TYPE_BUCKETS = 16
"""Files a compacted day's rollups are split into, by :func:`type_hash` modulo 16: a KPI
shard ``i/n`` with ``n`` dividing 16 reads only the files of its own types."""
_BUCKET_NAME = re.compile(r"-g(\d+)-of(\d+)\.parquet$")
ROLLUP_SCHEMA = {
    "_partition": pl.String, "event_type": pl.String, "date": pl.Date, "hour": pl.Int32,
    "events": pl.Int64, "ids_hll": pl.Binary, "users_hll": pl.Binary,
    "table_version": pl.Int64,
}


def type_hash(event_type: str) -> int:
    """A stable 64-bit hash of an event type's name (the first 8 bytes of its SHA-1)."""
    return int.from_bytes(hashlib.sha1(event_type.encode()).digest()[:8], "big")  # noqa: S324


def hll_of(values: list[str]) -> bytes:
    """A compact HLL sketch (``lg_k`` = :data:`LG_K`) of ``values``."""
    sketch = ds.hll_sketch(LG_K)
    # One C call per value with no Python loop around it: about 40 % less time than a for
    # loop (1 M values, by hand); the library has no update from an array.
    deque(map(sketch.update, values), maxlen=0)
    return bytes(sketch.serialize_compact())


def hll_union(sketches: list[bytes | None]) -> ds.hll_sketch | None:
    """The union of serialized sketches (None entries skipped); None when all are None."""
    union = ds.hll_union(LG_K)
    seen = False
    for blob in sketches:
        if blob is not None:
            union.update(ds.hll_sketch.deserialize(blob))
            seen = True
    return union.get_result() if seen else None


def rollup_rows(rows: pl.DataFrame, *, partition_key: str | None = None,
                table_version: int) -> pl.DataFrame:
    """Rollup rows of ``rows``, one per (file, type, date, hour).

    ``rows`` holds ``id``, ``event_type``, ``date``, ``hour``, ``user_id`` and, without
    ``partition_key``, ``_partition``.
    """
    if partition_key is not None:
        rows = rows.with_columns(_partition=pl.lit(partition_key, dtype=pl.String))
    keys = ["_partition", "event_type", "date", "hour"]
    grouped = (rows.group_by(keys)
               .agg(pl.len().cast(pl.Int64).alias("events"), pl.col("id"),
                    pl.col("user_id").drop_nulls().unique())
               .sort(keys))
    # The sketches are fed from Python objects: a few hours' ids at a time, never a whole
    # group's (one event type can hold millions of ids).
    ids_hll: list[bytes] = []
    users_hll: list[bytes | None] = []
    for part in grouped.select("id", "user_id").iter_slices(SKETCH_SLICE):
        ids_hll += [hll_of(v) for v in part["id"].to_list()]
        users_hll += [hll_of(v) if v else None for v in part["user_id"].to_list()]
    return pl.DataFrame({
        **{k: grouped[k] for k in keys},
        "events": grouped["events"],
        "ids_hll": pl.Series(ids_hll, dtype=pl.Binary),
        "users_hll": pl.Series(users_hll, dtype=pl.Binary),
        "table_version": pl.Series([table_version] * grouped.height, dtype=pl.Int64),
    }, schema=ROLLUP_SCHEMA)


def day_folder(storage: LakeStorage, day: object) -> str:
    """Folder of one day's rollup files."""
    return storage.path(ROLLUPS, "events", f"date={day}")


def _put(storage: LakeStorage, path: str, rows: pl.DataFrame) -> str:
    """Write ``rows`` to ``path``, sorted as every rollup file is."""
    buf = io.BytesIO()
    rows.sort("_partition", "event_type", "hour").write_parquet(buf, compression="zstd")
    storage.fs.makedirs(posixpath.dirname(path), exist_ok=True)
    storage.fs.pipe_file(path, buf.getvalue())
    return path


def write_rollups(storage: LakeStorage, tag: str, rows: pl.DataFrame,
                  part: int | None = None) -> list[str]:
    """Write ``rows`` as one file per date named after ``tag``."""
    return [_put(storage, posixpath.join(day_folder(storage, day), f"{tag}{_part(part)}.parquet"),
                 of_day)
            for (day,), of_day in rows.group_by("date")]


def write_bucketed(storage: LakeStorage, tag: str, rows: pl.DataFrame) -> list[str]:
    """Write one day's ``rows`` as :data:`TYPE_BUCKETS` files by the type's hash.

    Named ``<tag>-g<bucket>-of<TYPE_BUCKETS>.parquet``; a bucket without rows has no file.
    """
    if rows.height == 0:
        return []
    (day,) = rows["date"].unique().to_list()
    types = rows["event_type"].unique().to_list()
    bucket = pl.DataFrame({"event_type": types,
                           "_bucket": [type_hash(t) % TYPE_BUCKETS for t in types]},
                          schema={"event_type": pl.String, "_bucket": pl.Int64})
    return sorted(
        _put(storage, posixpath.join(day_folder(storage, day),
                                     f"{tag}{_part(int(n))}-of{TYPE_BUCKETS}.parquet"),
             of_bucket.drop("_bucket"))
        for (n,), of_bucket in rows.join(bucket, on="event_type").group_by("_bucket"))


def rollup_files(storage: LakeStorage, day: object, live: set[str] | None,
                 shard: tuple[int, int] = (0, 1)) -> list[str]:
    """The day's trusted rollup files (their tag is live in the table) for shard ``(i, n)``.

    With ``live`` None, every file, trusted or not (the KPI job checks afterwards). Files of
    type buckets that hold none of the shard's types are left out: a file of bucket ``b`` of
    ``k`` (:func:`write_bucketed`) holds only types whose hash is ``b`` modulo ``k``, and
    when ``n`` divides ``k`` those types are in shard ``b`` modulo ``n``. Other files may
    hold any type: the reader still filters rows by type.
    """
    index, count = shard
    paths = []
    for path in storage.parquet_in(day_folder(storage, day)):
        if live is not None and tag_of(path) not in live:
            continue
        bucket = _BUCKET_NAME.search(path)
        if bucket and int(bucket[2]) % count == 0 and int(bucket[1]) % count != index:
            continue
        paths.append(path)
    return paths


def read_rollups(storage: LakeStorage, paths: list[str],
                 columns: list[str] | None = None) -> pl.DataFrame:
    """Rollup rows of ``paths`` (only ``columns`` when given), in one read.

    One ``read_parquet`` over every file's bytes: a call per file cost polars about 3 ms
    each, about half of reading a compacted day's 16 files (docs/events.md, session 15).
    """
    if not paths:
        return pl.DataFrame(schema=ROLLUP_SCHEMA).select(columns or list(ROLLUP_SCHEMA))
    fs = storage.fs
    return pl.read_parquet([fs.cat_file(p) for p in paths], columns=columns)


def prune_day(storage: LakeStorage, day: object, live: set[str]) -> list[str]:
    """Remove the day's rollup files whose tag is no longer live (after a compaction)."""
    stale = [p for p in storage.parquet_in(day_folder(storage, day)) if tag_of(p) not in live]
    for path in stale:
        storage.fs.rm(path)
    return stale
