"""CSV datasets into validated Parquet tables: stage a landed file's batches, then publish.

Dagster-free: the engine behind the ``lake_ingest`` asset (cryptodudez/assets/lake.py), typed
against :class:`cryptodudez.lake.store.TableStore`, which the Dagster ``Lake`` resource
satisfies. One landed file is one partition: :class:`PartitionWriter` stages each ingested
batch's valid rows and quarantine as fragments, and :meth:`PartitionWriter.publish` applies
"the latest delivery wins" across files (:func:`resolve_across_files`), commits every staged
fragment together, brings the stock rows' ``Security Name`` up to date with the symbol
directory (:func:`refresh_security_names`) and returns what it wrote (:class:`Published`).
:func:`files_frame` builds the file's catalogue rows.
"""

import logging
import posixpath
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from cryptodudez.datasets.merge import ORDER, key_hash, resolve_latest, rows_with_repeated_keys
from cryptodudez.datasets.specs import (
    DATASETS,
    TABLES,
    attach_security_names,
    security_names,
    stale_security_names,
)
from cryptodudez.ingest import UNRECOGNISED_TABLE, IngestResult
from cryptodudez.lake.layout import QUARANTINE, VALIDATED, fragment_name, of_partition
from cryptodudez.lake.store import FragmentWriter, TableStore

LOG = logging.getLogger(__name__)

SPEC_BY_TABLE = {spec.table: spec for spec in DATASETS}
# Rows removed from each partition's fragments, per table and per partition whose row won
# (``winner_key``): summed over winners, the metastore's ledger of superseded rows
# (cryptodudez.resources.metastore.SUPERSEDED_SCHEMA); the winners are what lets a partition
# replaced later give back the rows it had superseded (Metastore.beaten_by).
REMOVED_SCHEMA: dict[str, Any] = {
    "partition_key": pl.String, "winner_key": pl.String, "table_name": pl.String,
    "rows": pl.Int64}
# Stock rows whose ``Security Name`` publishing set from the symbol directory, per partition.
NAMED_SCHEMA: dict[str, Any] = {"partition_key": pl.String, "rows": pl.Int64}


def files_frame(members: pl.DataFrame, *, partition_key: str, file_uri: str, sha: str,
                size: int, landed_at: datetime) -> pl.DataFrame:
    """The catalogue rows of one landed file: the file itself, then each of its members.

    ``members`` are the ingest's member rows (with their ``sha256``); every row is stamped
    with the time it is built as ``recorded_at``.
    """
    now = datetime.now(tz=UTC)
    archive = pl.DataFrame([{
        "uri": file_uri, "partition_key": partition_key, "member": None,
        "dataset": "archive" if members["member"].null_count() == 0 and members.height
        and members["uri"][0] != file_uri else None,
        "table_name": None, "format": "zip" if file_uri.lower().endswith(".zip") else "csv",
        "sha256": sha, "size": size, "landed_at": landed_at,
        "rows_read": int(members["rows_read"].sum()),
        "rows_valid": int(members["rows_valid"].sum()),
        "rows_quarantined": int(members["rows_quarantined"].sum()),
        "status": "ingested", "reason": None, "recorded_at": now,
    }])
    member_rows = members.filter(pl.col("uri") != file_uri).select(
        "uri", pl.lit(partition_key).alias("partition_key"), "member", "dataset",
        pl.col("table").alias("table_name"), pl.lit("csv").alias("format"),
        pl.col("sha256"), "size", pl.lit(landed_at).alias("landed_at"),
        "rows_read", "rows_valid", "rows_quarantined", "status", "reason",
        pl.lit(now).alias("recorded_at"),
    )
    own = members.filter(pl.col("uri") == file_uri)
    if own.height:  # the landed file is itself the (only) member
        archive = archive.with_columns(
            dataset=pl.lit(own["dataset"][0]), table_name=pl.lit(own["table"][0]),
            status=pl.lit(own["status"][0]), reason=pl.lit(own["reason"][0]),
        )
    return pl.concat([archive, member_rows], how="diagonal_relaxed")


def resolve_across_files(store: TableStore, table: str, partition_key: str,
                         own_hashes: pl.Series, staged: Sequence[str]) -> pl.DataFrame:
    """Apply "the latest delivery wins" between this file's staged rows and the table.

    ``own_hashes`` are the key hashes of the staged rows, in staging order (computed while
    staging), and ``staged`` the fragments that hold them, so only the other files'
    fragments are scanned for theirs, and nothing at all is read back when the table held
    nothing else. Only rows whose key repeats are ever held
    in memory. Every losing row is removed from the fragment that holds it: this file's staged
    fragments, or the published fragment of an earlier file it supersedes (rewritten whole,
    atomically).

    Returns:
        Rows removed, per partition and winning partition (``partition_key``,
        ``winner_key``, ``table_name``, ``rows``): this file's rows that lost (to later
        deliveries already in the table, or to a later member of the same file), and other
        files' rows this one superseded.
    """
    removed = pl.DataFrame(schema=REMOVED_SCHEMA)
    if own_hashes.len() == 0:
        # This file staged no row here: it can neither lose nor supersede one, and the other
        # files' rows were resolved when they were published. Nothing to list or read (the
        # whole table's keys otherwise, downloaded on S3, on every ingest of any file).
        return removed
    key = list(SPEC_BY_TABLE[table].key)
    published = store.fragments(VALIDATED, table)  # one listing for own and others
    own_old = set(of_partition(published, partition_key))
    others = [p for p in published if p not in own_old]
    if not staged and not others:
        return removed
    hashes = own_hashes
    if others:
        theirs = store.scan_parquet(others, key).select(key_hash(key))
        hashes = pl.concat([hashes, theirs.collect(engine="streaming").to_series()])
    rows = store.scan_parquet([*staged, *others], [*key, *ORDER], file_path_column="_file")
    contested = rows_with_repeated_keys(rows, key, hashes=hashes)
    if contested.height == 0:
        return removed
    resolved = resolve_latest(contested, key)
    winners = resolved.filter(pl.col("_wins")).select(*key, _winner=pl.col("_partition"))
    losers = resolved.filter(~pl.col("_wins")).join(winners, on=key, how="left",
                                                     nulls_equal=True)
    for (path,), drop in losers.group_by("_file"):
        kept = store.read_parquet([str(path)]).join(drop.select("_source", "_line"),
                                                     on=["_source", "_line"], how="anti")
        store.write_parquet(str(path), kept)
    return losers.group_by("_partition", "_winner").len().select(
        partition_key="_partition", winner_key="_winner", table_name=pl.lit(table),
        rows=pl.col("len").cast(pl.Int64))


def symbol_directory(store: TableStore) -> pl.DataFrame:
    """The published symbol directory's ``Symbol`` and ``Security Name`` (empty when none)."""
    fragments = store.fragments(VALIDATED, "symbols_meta")
    if not fragments:
        return pl.DataFrame()
    return store.scan_parquet(fragments, ["Symbol", "Security Name"]).collect()


def refresh_security_names(store: TableStore, fragments: Sequence[str],
                           symbols: pl.DataFrame) -> pl.DataFrame:
    """Give the stock rows of ``fragments`` the names the directory ``symbols`` gives them.

    The names of every fragment are compared with the directory in one scan; only the
    fragments holding a stale name (:func:`stale_security_names`) are read whole and
    rewritten in place, atomically, with the same rows in the same order. Run again, it
    finds nothing stale and writes nothing.

    Returns:
        Rows whose name was set, per partition (``partition_key``, ``rows``).
    """
    if not fragments:
        return pl.DataFrame(schema=NAMED_SCHEMA)
    names = store.scan_parquet(list(fragments), ["Symbol", "Security Name", "_partition"],
                               file_path_column="_file")
    stale = stale_security_names(names, symbols).group_by("_file", "_partition").len(
    ).collect()
    for path in stale["_file"].unique().sort():
        store.write_parquet(path, attach_security_names(store.read_parquet([path]), symbols))
    return stale.group_by("_partition").agg(pl.col("len").sum()).select(
        partition_key="_partition", rows=pl.col("len").cast(pl.Int64)).sort("partition_key")


def _rows_of(removed: pl.DataFrame, partition_key: str) -> dict[str, int]:
    """Rows ``removed`` from one partition's fragments, per table."""
    own = removed.filter(pl.col("partition_key") == partition_key)
    return dict(own.group_by("table_name").agg(pl.col("rows").sum()).iter_rows())


@dataclass(frozen=True)
class Committed:
    """What publishing put in one table of one layer for the partition.

    Attributes:
        fragments: paths of the fragments committed (they replace the partition's previous
            ones; the ``store``'s own paths, as its readers see them).
        rows: rows in them, from the writer's own counts: the rows it staged, less its rows
            that lost to later deliveries (never read back).
    """

    fragments: tuple[str, ...]
    rows: int


@dataclass(frozen=True)
class Published:
    """What :meth:`PartitionWriter.publish` wrote, so callers need not derive it again.

    Attributes:
        partition_key: the partition (landed file) published.
        removed: rows removed from each partition's fragments, per winning partition and
            table (``partition_key``, ``winner_key``, ``table_name``, ``rows``; see
            :func:`resolve_across_files`).
        validated: what was committed per table (each of ``TABLES`` and
            ``UNRECOGNISED_TABLE``, which never holds valid rows).
        quarantine: what was committed per table (the same tables).
        schemas: per table that received rows, the schema of its fragments.
        named: stock rows whose ``Security Name`` was set from the symbol directory after
            committing, per partition (``partition_key``, ``rows``): every partition's when
            this one changed the directory, else this one's when the directory changed
            while it staged (see :meth:`PartitionWriter.publish`).
    """

    partition_key: str
    removed: pl.DataFrame
    validated: Mapping[str, Committed]
    quarantine: Mapping[str, Committed]
    schemas: Mapping[str, pl.Schema]
    named: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=NAMED_SCHEMA))

    def own_removed(self) -> dict[str, int]:
        """This partition's rows that lost, per table (the ledger of its superseded rows)."""
        return _rows_of(self.removed, self.partition_key)

    def others_removed(self) -> pl.DataFrame:
        """Other partitions' rows this one superseded, per partition and table."""
        return self.removed.filter(pl.col("partition_key") != self.partition_key)

    def lost_to(self) -> pl.DataFrame:
        """Which partition's rows lost to which other's (``partition_key``, ``winner_key``).

        Distinct pairs: what the metastore keeps as ``lost_to``.
        """
        return self.removed.filter(pl.col("partition_key") != pl.col("winner_key")).select(
            "partition_key", "winner_key").unique()


@dataclass
class PartitionWriter:
    """Stages one landed file's batches in every table, then publishes them together.

    Fragments are written by ``writer`` (a background thread, typically), so writing
    overlaps parsing of the next batch, into a staging folder of this run's own (``run``,
    the Dagster run id in the assets). The writer keeps the paths it staged and publishes
    exactly those: publishing never lists staging, and neither another run of the same
    partition (a re-landed version while this one stages) nor what a dead run left is ever
    mixed in; the last run to publish wins whole. After publishing, this run's staging and
    that of runs ``finished`` says have ended (failed, killed and marked so) are removed;
    a run still going keeps its own.
    """

    store: TableStore
    writer: FragmentWriter
    partition_key: str
    landed_at: datetime
    schemas: dict[str, pl.Schema] = field(default_factory=dict)
    rows: dict[tuple[str, str], int] = field(default_factory=dict)
    symbols: pl.DataFrame | None = None
    hashes: dict[str, list[pl.Series]] = field(default_factory=dict)
    staged: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    run: str = field(default_factory=lambda: uuid.uuid4().hex)
    finished: Callable[[str], bool] = lambda run: False

    def _stage(self, layer: str, table: str, frame: pl.DataFrame) -> None:
        paths = self.staged.setdefault((layer, table), [])
        self.rows[(layer, table)] = self.rows.get((layer, table), 0) + frame.height
        folder = self.store.staging_dir(layer, table, self.partition_key, self.run)
        paths.append(posixpath.join(folder, fragment_name(self.partition_key, len(paths))))
        self.writer.write(paths[-1], frame)

    def add(self, result: IngestResult) -> None:
        """Stage one batch's valid rows and quarantine."""
        if "symbols_meta" in result.tables:
            batch = result.tables["symbols_meta"]
            self.symbols = batch if self.symbols is None else pl.concat([self.symbols, batch])
        for table, rows in result.tables.items():
            if table == "stock_prices":
                if self.symbols is None:
                    self.symbols = symbol_directory(self.store)
                rows = attach_security_names(rows, self.symbols)  # noqa: PLW2901
            frame = rows.with_columns(
                _landed_at=pl.lit(self.landed_at, dtype=pl.Datetime("us", "UTC")),
                _partition=pl.lit(self.partition_key),
            )
            if frame.height:
                self.schemas[table] = frame.schema
            self.hashes.setdefault(table, []).append(
                frame.select(key_hash(SPEC_BY_TABLE[table].key)).to_series())
            self._stage(VALIDATED, table, frame)
        for table, rejects in result.quarantine.items():
            if rejects.height == 0:
                continue
            self._stage(QUARANTINE, table, rejects.with_columns(
                _partition=pl.lit(self.partition_key)))

    def publish(self) -> Published:
        """Resolve keys across files, then publish every staged fragment.

        The partition's earlier fragments that a changed file no longer feeds are removed.
        Then every stock row gets the name the symbol directory now gives it, whichever of
        the prices and the directory was published first: when this partition changed the
        directory (its rows, its previous version's, or others' it superseded), every
        published stock fragment is brought up to date; otherwise only its own, and only if
        the directory changed since it named its rows while staging.
        Call it holding the lake's publish lock.
        """
        self.writer.drain()
        # It changes the directory with rows of its own (and only then can it supersede
        # others'), or by replacing a version that had some (listed before they go).
        changed_directory = self.rows.get((VALIDATED, "symbols_meta"), 0) > 0 or bool(
            self.store.partition_fragments(VALIDATED, "symbols_meta", self.partition_key))
        removed = pl.concat([
            resolve_across_files(
                self.store, table, self.partition_key,
                pl.concat(self.hashes.get(table, [pl.Series("_key_hash", [], pl.UInt64)])),
                self.staged.get((VALIDATED, table), []))
            for table in TABLES])
        lost = _rows_of(removed, self.partition_key)
        committed: dict[str, dict[str, Committed]] = {VALIDATED: {}, QUARANTINE: {}}
        for layer in (VALIDATED, QUARANTINE):
            for table in (*TABLES, UNRECOGNISED_TABLE):
                paths = self.store.commit_staged(layer, table, self.partition_key,
                                                 self.staged.get((layer, table), []))
                rows = self.rows.get((layer, table), 0)
                if layer == VALIDATED:
                    rows -= lost.get(table, 0)
                committed[layer][table] = Committed(tuple(paths), rows)
        named = self._name_stocks(committed[VALIDATED]["stock_prices"],
                                  changed_directory=changed_directory)
        # This run's emptied folders (locally), and what finished runs left (a run that died
        # staging). The tables are published by now: a failure here is logged, not the run's.
        try:
            runs = self.store.staged_runs(self.partition_key)
            self.store.clear_staging(self.partition_key, {
                self.run: runs.get(self.run, []),  # its folders, even with nothing left
                **{run: paths for run, paths in runs.items() if self.finished(run)}})
        except Exception:  # storage or the run store: never the run's failure (published)
            LOG.warning("could not clear the staging of %s", self.partition_key, exc_info=True)
        return Published(self.partition_key, removed, committed[VALIDATED],
                         committed[QUARANTINE], dict(self.schemas), named)

    def _name_stocks(self, own: Committed, *, changed_directory: bool) -> pl.DataFrame:
        """Bring published stock names up to date with the directory (see :meth:`publish`)."""
        if not changed_directory and not own.rows:
            return pl.DataFrame(schema=NAMED_SCHEMA)
        symbols = symbol_directory(self.store)
        if changed_directory:
            fragments = self.store.fragments(VALIDATED, "stock_prices")
        elif self.symbols is not None and security_names(symbols).equals(
                security_names(self.symbols)):
            return pl.DataFrame(schema=NAMED_SCHEMA)  # named while staging by this directory
        else:
            fragments = list(own.fragments)
        return refresh_security_names(self.store, fragments, symbols)
