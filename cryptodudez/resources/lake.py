"""The lake: one root (a local folder or ``s3://bucket/prefix``) and all I/O under it.

Layout::

    raw/                     landed files, never modified by the platform
    validated/<table>/       Parquet fragments, one per ingested batch of a landed file
    quarantine/<table>/      Parquet rows (source, line, raw, reason) per batch
    features/, models/       later stages
    .staging/files/<hash>/<run>/  a run's fragments, per layer and table, until it publishes
    .staging/events/<tag>/   the event lake's (cryptodudez.lake.event_ingest)
    catalog.duckdb           local metastore (local lakes only)

Writes are atomic: a local fragment is written to a hidden temporary file in the same folder
and renamed into place; an S3 fragment is a single PUT, which S3 makes visible whole or not
at all. Readers only look at ``<table>/*.parquet`` names, so a killed run leaves nothing
half-written where they look; a run stages all its fragments and publishes them together.
"""

import dataclasses
import hashlib
import io
import logging
import os
import posixpath
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
from pydantic import PrivateAttr

from cryptodudez.lake.layout import (  # noqa: F401 - re-exported for the engine's users
    FEATURES,
    QUARANTINE,
    RAW,
    STAGING,
    VALIDATED,
    checked_raw_key,
    digest,
    fragment_name,
    fragment_prefix,
    is_utf8,
    of_partition,
    partition_key_for,
    raw_key_for,
)
from cryptodudez.lake.store import BackgroundWriter  # also re-exported from here
from cryptodudez.locks import file_lock, s3_lease
from cryptodudez.settings import nearest_existing
from cryptodudez.storage import MODELS, LakeStorage  # noqa: F401 - MODELS re-exported

LOG = logging.getLogger(__name__)

S3_KEY_BYTES = 1024  # the longest key S3 stores
# S3 user metadata (x-amz-meta-...) of a landed object: the instant `land` wrote it.
LANDED_AT_META = "cryptodudez-landed-at"
# Used only within this of LastModified: a wrong clock, or a copy, keeps LastModified.
LANDED_AT_SKEW = timedelta(seconds=60)


@dataclass(frozen=True)
class RawObject:
    """A file found under ``raw/``: its key, a version token and when it landed."""

    key: str
    version: str
    size: int
    landed_at: datetime


class Lake(dg.ConfigurableResource):
    """The data lake rooted at ``uri``: local folder or ``s3://bucket/prefix``."""

    uri: str
    endpoint_url: str | None = None
    region_name: str | None = None

    _storage: LakeStorage | None = PrivateAttr(default=None)

    @property
    def storage(self) -> LakeStorage:
        """The Dagster-free view of the lake that owns its paths and filesystem."""
        if self._storage is None:
            self._storage = LakeStorage(self.uri, self.endpoint_url, self.region_name)
        return self._storage

    @property
    def is_s3(self) -> bool:
        """True for an S3 lake."""
        return self.storage.is_s3

    @property
    def fs(self) -> Any:
        """The fsspec filesystem behind the lake."""
        return self.storage.fs

    @property
    def root(self) -> str:
        """Root path as fsspec sees it (no scheme for local lakes)."""
        return self.storage.root

    def path(self, *parts: str) -> str:
        """Path of ``parts`` under the root."""
        return self.storage.path(*parts)

    def url(self, *parts: str) -> str:
        """Full URI (``s3://…`` or ``file://…``) of ``parts`` under the root."""
        return self.storage.url(*parts)

    # -- raw layer --------------------------------------------------------------------------

    def list_raw(self) -> list[RawObject]:
        """Every landed file under ``raw/`` in one listing.

        Hidden paths are excluded, and so are S3 folder markers (zero-byte ``…/`` keys such
        as the S3 console's "Create folder" makes), which are no files.
        """
        base = self.path(RAW)
        try:  # no existence check first: on S3 that is two more requests on every tick
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:  # a missing bucket
            return []
        out = []
        for path, info in found.items():
            key = posixpath.relpath(path, base)
            if (info.get("type") == "directory" or path.endswith("/")
                    or any(p.startswith(".") for p in key.split("/"))):
                continue
            if not is_utf8(key):  # copied in by hand: `land` refuses such a name
                LOG.warning("raw/%r is not ingested: its name is not UTF-8 text; rename it",
                            key)
                continue
            out.append(_raw_object(key, info))
        return sorted(out, key=lambda o: o.key)

    def stat_raw(self, key: str) -> RawObject:
        """Current version of one raw object, with its landing time as exact as known.

        Locally the file's mtime (nanoseconds). On S3, ``LastModified`` has whole seconds, so
        the instant ``land`` wrote into the object's metadata is used when it lies within
        :data:`LANDED_AT_SKEW` of it (one more request per ingested file): two deliveries
        landed within one second then keep their order, which ``LastModified`` alone turned
        into a tie decided by key names (a review, session 23). An object put by another
        tool has no such metadata and keeps ``LastModified``.
        """
        path = self.path(RAW, key)
        obj = _raw_object(key, self.fs.info(path))
        if not self.is_s3:
            return obj
        stamped = _landed_at_of(self.fs.metadata(path))
        if stamped is None or abs(stamped - obj.landed_at) > LANDED_AT_SKEW:
            return obj
        return dataclasses.replace(obj, landed_at=stamped)

    def read_raw(self, key: str) -> bytes:
        """Bytes of a landed file."""
        return self.fs.cat_file(self.path(RAW, key))

    @contextmanager
    def open_raw(self, key: str) -> Iterator[BinaryIO]:
        """A landed file opened for seekable binary reading, never read whole into memory.

        An S3 object is first downloaded to a local temporary file: an archive's central
        directory is at its end and members are read in any order, which over HTTP would be
        one ranged request per member.
        """
        if not self.is_s3:
            with open(self.path(RAW, key), "rb") as fh:
                yield fh
            return
        with tempfile.TemporaryDirectory(prefix="cryptodudez-raw-") as tmp:
            local = os.path.join(tmp, "landed")
            self.fs.get_file(self.path(RAW, key), local)
            with open(local, "rb") as fh:
                yield fh

    def land(self, source: Path, key: str) -> str:
        """Copy a local file into ``raw/<key>`` (atomically); returns its URI.

        A different file already at that key is first kept under ``raw/.versions/``
        (S3 lakes rely on bucket versioning instead), so landing never destroys a delivery.
        A key that would leave ``raw/`` or cannot be written is refused
        (:meth:`check_land_keys`).
        """
        self.check_land_keys([key])
        dest = self.path(RAW, key)
        if not self.is_s3 and self.fs.exists(dest):
            if _sha256_file(Path(dest)) == _sha256_file(source):
                return self.url(RAW, key)
            kept = self.path(RAW, ".versions", key, f"{self.stat_raw(key).version}")
            self.fs.makedirs(posixpath.dirname(kept), exist_ok=True)
            self.fs.mv(dest, kept)
        # On S3 the landing instant to the microsecond goes with the object: its
        # LastModified has whole seconds, and two deliveries landed within one second
        # would tie (:meth:`stat_raw`).
        metadata = ({LANDED_AT_META: datetime.now(tz=UTC).isoformat()} if self.is_s3
                    else None)
        self._put_bytes(dest, source.read_bytes(), metadata=metadata)
        return self.url(RAW, key)

    def check_land_keys(self, keys: Sequence[str]) -> None:
        """Refuse keys that could not all be landed, before anything is copied.

        Each key must be a safe raw key (:func:`checked_raw_key`) that no other key of the
        batch lands at or uses as a folder. On a local lake it must not be an existing
        folder nor lie below an existing file, and its names must fit the file system (also
        under ``raw/.versions/``, where a replaced file is kept); on S3 it must fit the
        1024-byte limit of a key. Checking up front is what keeps a refused ``land`` from
        landing the files before the bad one.

        Raises:
            ValueError: the first key refused, and why.
        """
        batch = set()
        for key in keys:
            checked_raw_key(key)
            if key in batch:
                msg = f"refusing raw key {key!r}: two of the files would land there"
                raise ValueError(msg)
            batch.add(key)
        for key in keys:
            folder = posixpath.dirname(key)
            while folder and folder not in batch:
                folder = posixpath.dirname(folder)
            problem = (f"raw/{folder} is one of the files landed" if folder else
                       self._s3_key_problem(key) if self.is_s3 else self._local_key_problem(key))
            if problem:
                msg = f"refusing raw key {key!r}: {problem}"
                raise ValueError(msg)

    def _local_key_problem(self, key: str) -> str | None:
        """Why a local file cannot be written at ``raw/<key>``, or None."""
        # Lengths first: looking up a name that is too long fails instead of answering.
        limits = nearest_existing(Path(self.root))
        name_max = os.pathconf(limits, "PC_NAME_MAX")
        longest = max(len(os.fsencode(part)) for part in key.split("/"))
        if longest > name_max:
            return (f"a name of {longest} bytes, more than the {name_max} the lake's file "
                    "system takes")
        # A replaced file moves to raw/.versions/<key>/<size>-<nanoseconds>.
        kept = os.fsencode(self.path(RAW, ".versions", key, "9" * 40))
        path_max = os.pathconf(limits, "PC_PATH_MAX")
        if len(kept) >= path_max:
            return f"paths of {len(kept)} bytes, more than the {path_max - 1} the lake takes"
        dest = Path(self.path(RAW, key))
        if dest.is_dir():
            return f"raw/{key} is a folder"
        folder = nearest_existing(dest.parent)
        return None if folder.is_dir() else f"{folder} is a file, not a folder"

    def _s3_key_problem(self, key: str) -> str | None:
        """Why S3 cannot hold ``raw/<key>`` under the lake's prefix, or None."""
        size = len(self.path(RAW, key).split("/", 1)[1].encode())
        return f"an S3 key of {size} bytes, more than 1024" if size > S3_KEY_BYTES else None

    # -- tables -----------------------------------------------------------------------------

    def table_dir(self, layer: str, table: str) -> str:
        """Folder of a table in a layer."""
        return self.path(layer, table)

    def fragments(self, layer: str, table: str) -> list[str]:
        """Paths of a table's Parquet fragments (hidden temporaries excluded)."""
        return self.storage.parquet_in(self.table_dir(layer, table))

    @contextmanager
    def background_writer(self, *, max_pending: int = 2) -> Iterator[BackgroundWriter]:
        """A ``BackgroundWriter`` whose writes have all finished when the block exits."""
        writer = BackgroundWriter(self, max_pending=max_pending)
        try:
            yield writer
            writer.drain()
        finally:
            writer.close()

    def partition_fragments(self, layer: str, table: str, partition_key: str) -> list[str]:
        """The visible fragments a partition wrote in a table."""
        return of_partition(self.fragments(layer, table), partition_key)

    def staging_dir(self, layer: str, table: str, partition_key: str, run: str) -> str:
        """Hidden folder where run ``run``'s new fragments of one table wait to be committed.

        Under the partition's staging root (:meth:`partition_staging`), one folder per run:
        two runs of one landed file (a re-landed version while the older one's run is still
        staging) never stage over each other, and one listing finds what every run left.
        """
        return posixpath.join(self.partition_staging(partition_key), run, layer, table)

    def partition_staging(self, partition_key: str) -> str:
        """``.staging/files/<hash>/``: every run's staging of one partition (landed file)."""
        return self.path(STAGING, "files", digest(partition_key)[:16])

    def staged_runs(self, partition_key: str) -> dict[str, list[str]]:
        """Per run, the files it has in the partition's staging.

        One listing: on S3 a prefix listing of the parent, one request (s3fs's ``find`` of
        the folder itself asks again, a HEAD and a listing, whenever it is empty, as it
        usually is). Before session 21 staging was a folder per table and layer, cleared
        before and after a run and listed once more to publish: 42 listings, two requests
        each for a missing one.
        """
        folder = self.partition_staging(partition_key)
        runs: dict[str, list[str]] = {}
        if self.is_s3:
            parent, name = posixpath.split(folder)
            found = self.fs.find(parent, prefix=f"{name}/")
        elif self.fs.exists(folder):
            found = self.fs.find(folder)
            # locally a run's folders outlive its files (published, then a failed clear)
            runs = {posixpath.basename(p): [] for p in self.fs.ls(folder, detail=False)}
        else:
            return {}
        for path in found:
            runs.setdefault(path[len(folder) + 1:].split("/", 1)[0], []).append(path)
        return runs

    def clear_staging(self, partition_key: str, runs: dict[str, list[str]]) -> None:
        """Remove ``runs``' staging of the partition (files as :meth:`staged_runs` lists)."""
        if self.is_s3:
            if doomed := [path for paths in runs.values() for path in paths]:
                self.fs.rm(doomed)
            return
        # The partition's own folder stays (empty), so a run staging beside this one never
        # finds the folder it is writing into gone.
        folder = self.partition_staging(partition_key)
        for run in runs:
            if self.fs.exists(posixpath.join(folder, run)):
                self.fs.rm(posixpath.join(folder, run), recursive=True)

    def staged(self, layer: str, table: str, partition_key: str) -> list[str]:
        """Fragments of one table the partition's runs have waiting in staging."""
        return sorted(p for paths in self.staged_runs(partition_key).values() for p in paths
                      if p.endswith(".parquet") and f"/{layer}/{table}/" in p)

    def commit_staged(self, layer: str, table: str, partition_key: str,
                      staged: Sequence[str]) -> list[str]:
        """Publish the partition's ``staged`` fragments in place of its previous ones.

        ``staged`` are the paths the run wrote in :meth:`staging_dir` (its writer knows them,
        so staging is not listed again). Each is renamed (locally) or copied (on S3) into
        the table folder whole, then the partition's previous fragments that were not
        replaced are removed. Returns the paths of the fragments committed.
        """
        old = set(self.partition_fragments(layer, table, partition_key))
        committed = []
        if staged and not self.is_s3:  # a rename needs its folder (S3 has no folders)
            self.fs.makedirs(self.path(layer, table), exist_ok=True)
        for path in staged:
            dest = self.path(layer, table, posixpath.basename(path))
            self.fs.mv(path, dest)
            old.discard(dest)
            committed.append(dest)
        for path in sorted(old):
            self.fs.rm(path)
        return committed

    @contextmanager
    def publish_lock(self, *, timeout: float = 3600.0) -> Iterator[None]:
        """Serialise publishing between runs and processes (CLI, daemon, backfills).

        "The latest delivery wins" may rewrite other files' fragments, so two runs must
        not publish at once; parsing and staging, the expensive part, still run in
        parallel, except when a replaced file's run ingests again the files its previous
        version had beaten (``assets/lake.py``, ``_ingest_again``): those are parsed and
        staged under the lock, one after another. Locally an OS lock on
        ``.locks/publish.lock`` (released if the holder dies); on S3 a lease object created
        only if absent, taken as abandoned after 2 h (never renewed: a holder that keeps it
        longer, many beaten files of a big table, can be overtaken).
        """
        if self.is_s3:
            with s3_lease(self.fs, self.path(".locks", "publish"), timeout=timeout,
                          lease=7200.0):
                yield
        else:
            with file_lock(self.path(".locks", "publish.lock"), timeout=timeout):
                yield

    def count_rows(self, paths: list[str]) -> int:
        """Rows in Parquet files, from their footers (no column is read)."""
        total = 0
        for path in paths:
            with self.fs.open(path, "rb") as fh:
                total += pq.ParquetFile(fh).metadata.num_rows
        return total

    def scan_parquet(self, paths: list[str], columns: list[str] | None = None, *,
                     file_path_column: str | None = None) -> pl.LazyFrame:
        """Parquet files as one LazyFrame: a streaming multi-file scan locally.

        From S3 the wanted columns are read file by file (through fsspec, which knows the
        lake's endpoint); ``file_path_column`` names a column holding each row's file path.
        """
        if not paths:
            return pl.LazyFrame()
        if not self.is_s3:
            scan = pl.scan_parquet(paths, missing_columns="insert",
                                   include_file_paths=file_path_column)
            if columns is not None:
                scan = scan.select(*columns, *([file_path_column] if file_path_column else []))
            return scan
        frames = []
        for path in paths:
            frame = pl.read_parquet(io.BytesIO(self.fs.cat_file(path)), columns=columns)
            if file_path_column:
                frame = frame.with_columns(pl.lit(path).alias(file_path_column))
            frames.append(frame)
        return pl.concat(frames, how="diagonal_relaxed").lazy()

    def write_parquet(self, path: str, frame: pl.DataFrame) -> None:
        """Write a Parquet file atomically (temporary + rename locally; one PUT on S3)."""
        buf = io.BytesIO()
        frame.write_parquet(buf, compression="zstd", compression_level=1, statistics=True)
        self._put_bytes(path, buf.getvalue())

    def read_parquet(self, paths: list[str], columns: list[str] | None = None) -> pl.DataFrame:
        """Read Parquet files in one multi-file scan."""
        return self.scan_parquet(paths, columns).collect()

    def read_table(self, layer: str, table: str) -> pl.DataFrame:
        """A whole table (all fragments)."""
        return self.read_parquet(self.fragments(layer, table))

    def scan_table(self, layer: str, table: str,
                   columns: list[str] | None = None) -> pl.LazyFrame:
        """A whole table as a LazyFrame (a pushdown scan locally; read eagerly from S3)."""
        return self.scan_parquet(self.fragments(layer, table), columns)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a file atomically."""
        self._put_bytes(path, data)

    def read_bytes(self, path: str) -> bytes:
        """Bytes of a file under the lake."""
        return self.storage.read_bytes(path)

    def exists(self, path: str) -> bool:
        """True when ``path`` exists."""
        return self.storage.exists(path)

    def delete(self, path: str) -> None:
        """Remove a file if it exists."""
        if self.fs.exists(path):
            self.fs.rm(path)

    def _put_bytes(self, path: str, data: bytes, *,
                   metadata: dict[str, str] | None = None) -> None:
        if self.is_s3:
            self.fs.pipe_file(path, data, **({"Metadata": metadata} if metadata else {}))
            return
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def _landed_at_of(metadata: dict[str, Any]) -> datetime | None:
    """The landing instant ``land`` stored in an S3 object's metadata, or None."""
    raw = metadata.get(LANDED_AT_META)
    try:
        stamped = datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None
    return stamped if stamped is not None and stamped.tzinfo is not None else None


def _raw_object(key: str, info: dict[str, Any]) -> RawObject:
    modified = info.get("LastModified") or info.get("mtime") or info.get("created")
    if isinstance(modified, (int, float)):
        landed = datetime.fromtimestamp(modified, tz=UTC)
    elif isinstance(modified, datetime):
        landed = modified if modified.tzinfo else modified.replace(tzinfo=UTC)
    else:
        landed = datetime.now(tz=UTC)
    etag = str(info.get("ETag", "")).strip('"')
    version = etag or f"{info.get('size', 0)}-{int(landed.timestamp() * 1e9)}"
    return RawObject(key=key, version=version, size=int(info.get("size", 0)), landed_at=landed)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
