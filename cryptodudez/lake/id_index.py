"""The ``events`` table's id index: which event ids the table holds, per day.

Dagster-free. Deduplicating a landed file against the table by reading the ``id`` column
of every data file of the days it touches would read thousands of small files (300 types x
24 hours a day, more before compaction). The index keeps, per day, one small Parquet file
of ids per landed file version (and one per compaction) under
``indexes/events/date=YYYY-MM-DD/<tag>.parquet``.

An index file is written *before* its commit and trusted only when the table's latest
version holds files with its tag (:meth:`EventTable.live_tags`): a run that died before
committing leaves an index file nobody trusts, and its retry rewrites it.
"""

import io
import posixpath
from collections.abc import Iterable
from datetime import date

import polars as pl

from cryptodudez.lake.layout import tag_of
from cryptodudez.lake.layout import tag_part as _part
from cryptodudez.storage import LakeStorage

INDEXES = "indexes"


def day_folder(storage: LakeStorage, day: object) -> str:
    """Folder of one day's index files."""
    return storage.path(INDEXES, "events", f"date={day}")


def index_files(storage: LakeStorage, days: Iterable[date],
                live: dict[date, set[str]]) -> list[str]:
    """Trusted index files of ``days`` (their tag is live in the table on that day)."""
    return [p for day in sorted(set(days)) for p in storage.parquet_in(day_folder(storage, day))
            if tag_of(p) in live.get(day, ())]


def read_ids(storage: LakeStorage, paths: list[str]) -> pl.Series:
    """The ids in index files (one column ``id``)."""
    if not paths:
        return pl.Series("id", [], dtype=pl.String)
    return pl.concat([pl.read_parquet(io.BytesIO(storage.fs.cat_file(p)), columns=["id"])
                      for p in paths])["id"]


def write_index(storage: LakeStorage, tag: str, rows: pl.DataFrame,
                part: int | None = None) -> list[str]:
    """Write the ids of ``rows`` (``id``, ``date``) as one index file per date for ``tag``."""
    written = []
    for (day,), of_day in rows.group_by("date"):
        path = posixpath.join(day_folder(storage, day), f"{tag}{_part(part)}.parquet")
        buf = io.BytesIO()
        of_day.select("id").write_parquet(buf, compression="zstd")
        storage.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        storage.fs.pipe_file(path, buf.getvalue())
        written.append(path)
    return written


def prune_day(storage: LakeStorage, day: date, live: set[str]) -> list[str]:
    """Remove the day's index files whose tag is no longer live (after a compaction)."""
    stale = [p for p in storage.parquet_in(day_folder(storage, day)) if tag_of(p) not in live]
    for path in stale:
        storage.fs.rm(path)
    return stale
