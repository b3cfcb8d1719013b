"""The lake's assets: every landed file, catalogued, validated and converted to Parquet.

One dynamic partition per landed file (``landed_files``). Materialising a partition reads
the file once and produces the catalogue entry (``raw_files``) and the validated tables it
feeds, with their quarantine, in the same step, so an archive is never parsed twice.
"""

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import polars as pl

from cryptodudez.archives import BATCH_BYTES, iter_unpacked, sha256_of
from cryptodudez.checks import tables as table_checks
from cryptodudez.datasets.merge import (
    ORDER,
    key_hash,
    repeated_keys,
    resolve_latest,
    rows_with_repeated_keys,
)
from cryptodudez.datasets.specs import DATASETS, TABLES, attach_security_names
from cryptodudez.ingest import UNRECOGNISED_TABLE, IngestResult, ingest_members
from cryptodudez.resources.lake import (
    QUARANTINE,
    VALIDATED,
    BackgroundWriter,
    Lake,
    RawObject,
    fragment_name,
    fragment_prefix,
    raw_key_for,
)
from cryptodudez.resources.metastore import SUPERSEDED_SCHEMA, Metastore

landed_files = dg.DynamicPartitionsDefinition(name="landed_files")

SPEC_BY_TABLE = {spec.table: spec for spec in DATASETS}
_TABLE_DOCS = {
    "stock_prices": "Daily bars of every stock and ETF: Symbol, Security Name, Date "
                    "(YYYY-MM-DD), Open, High, Low, Close, Adj Close, Volume, asset_class.",
    "symbols_meta": "NASDAQ symbol directory (symbols_valid_meta.csv).",
    "crypto_prices": "Daily coin prices in USD, one row per coin and day.",
    "tweets": "Canonical tweets from every tweet archive schema, one row per tweet id; "
              "the latest delivery wins.",
}
_EXTRA_CHECKS = {
    "stock_prices": [("security_name_known", False,
                      "Every symbol has a Security Name in the symbol directory.")],
}

RAW_FILES_SPEC = dg.AssetSpec(
    "raw_files",
    partitions_def=landed_files,
    group_name="lake",
    description="Every file landed under raw/, catalogued in the metastore: location, size, "
                "sha256, archive members, recognised dataset, inferred columns and types.",
    kinds={"duckdb"},
)
TABLE_SPECS = [
    dg.AssetSpec(
        table, deps=["raw_files"], partitions_def=landed_files, group_name="validated",
        description=_TABLE_DOCS.get(table, ""), kinds={"parquet", "polars"},
    )
    for table in TABLES
]
CHECK_SPECS = [
    *table_checks.partitioned(
        [dg.AssetCheckSpec("raw_files_all_members_recognised", asset="raw_files",
                           description="Every member of this landed file was recognised as a "
                                       "known dataset (rejects are quarantined with the "
                                       "columns found).")],
        landed_files),
    *[spec for table in TABLES
      for spec in table_checks.check_specs(table, landed_files,
                                           extra=_EXTRA_CHECKS.get(table, []))],
]


def _files_frame(members: pl.DataFrame, *, partition_key: str, file_uri: str, sha: str,
                 size: int, landed_at: datetime) -> pl.DataFrame:
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


def _resolve_across_files(lake: Lake, table: str, partition_key: str,
                          own_hashes: pl.Series) -> pl.DataFrame:
    """Apply "the latest delivery wins" between this file's staged rows and the table.

    ``own_hashes`` are the key hashes of the staged rows, in staging order (computed while
    staging), so only the other files' fragments are scanned for theirs, and nothing at all
    is read back when the table held nothing else. Only rows whose key repeats are ever held
    in memory. Every losing row is removed from the fragment that holds it: this file's staged
    fragments, or the published fragment of an earlier file it supersedes (rewritten whole,
    atomically).

    Returns:
        Rows removed, per partition (``partition_key``, ``table_name``, ``rows``): this
        file's rows that lost (to later deliveries already in the table, or to a later member
        of the same file), and other files' rows this one superseded.
    """
    removed = pl.DataFrame(schema=SUPERSEDED_SCHEMA)
    key = list(SPEC_BY_TABLE[table].key)
    own_old = set(lake.partition_fragments(VALIDATED, table, partition_key))
    staged = lake.staged(VALIDATED, table, partition_key)
    others = [p for p in lake.fragments(VALIDATED, table) if p not in own_old]
    if not staged and not others:
        return removed
    hashes = own_hashes
    if others:
        theirs = lake.scan_parquet(others, key).select(key_hash(key))
        hashes = pl.concat([hashes, theirs.collect(engine="streaming").to_series()])
    rows = lake.scan_parquet([*staged, *others], [*key, *ORDER], file_path_column="_file")
    contested = rows_with_repeated_keys(rows, key, hashes=hashes)
    if contested.height == 0:
        return removed
    losers = resolve_latest(contested, key).filter(~pl.col("_wins"))
    for (path,), drop in losers.group_by("_file"):
        kept = lake.read_parquet([str(path)]).join(drop.select("_source", "_line"),
                                                    on=["_source", "_line"], how="anti")
        lake.write_parquet(str(path), kept)
    return losers.group_by("_partition").len().select(
        partition_key="_partition", table_name=pl.lit(table),
        rows=pl.col("len").cast(pl.Int64))


@dataclass
class _PartitionWriter:
    """Stages one landed file's batches in every table, then publishes them together.

    Fragments are written by ``writer`` (a background thread), so writing overlaps parsing
    of the next batch.
    """

    lake: Lake
    writer: BackgroundWriter
    partition_key: str
    landed_at: datetime
    schemas: dict[str, pl.Schema] = field(default_factory=dict)
    parts: dict[tuple[str, str], int] = field(default_factory=dict)
    symbols: pl.DataFrame | None = None
    hashes: dict[str, list[pl.Series]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for layer in (VALIDATED, QUARANTINE):
            for table in (*TABLES, UNRECOGNISED_TABLE):
                self.lake.clear_staging(layer, table, self.partition_key)

    def _stage(self, layer: str, table: str, frame: pl.DataFrame) -> None:
        part = self.parts.get((layer, table), 0)
        self.parts[(layer, table)] = part + 1
        folder = self.lake.staging_dir(layer, table, self.partition_key)
        self.writer.write(posixpath.join(folder, fragment_name(self.partition_key, part)), frame)

    def add(self, result: IngestResult) -> None:
        """Stage one batch's valid rows and quarantine, accounting for them in the stats."""
        if "symbols_meta" in result.tables:
            batch = result.tables["symbols_meta"]
            self.symbols = batch if self.symbols is None else pl.concat([self.symbols, batch])
        for table, rows in result.tables.items():
            if table == "stock_prices":
                if self.symbols is None:
                    self.symbols = self.lake.read_table(VALIDATED, "symbols_meta")
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

    def publish(self) -> pl.DataFrame:
        """Resolve keys across files, then publish every staged fragment.

        The partition's earlier fragments that a changed file no longer feeds are removed.
        Call it holding the lake's publish lock. Returns the rows removed from each
        partition's fragments, per table (see :func:`_resolve_across_files`).
        """
        self.writer.drain()
        removed = pl.concat([
            _resolve_across_files(
                self.lake, table, self.partition_key,
                pl.concat(self.hashes.get(table, [pl.Series("_key_hash", [], pl.UInt64)])))
            for table in TABLES])
        for layer in (VALIDATED, QUARANTINE):
            for table in (*TABLES, UNRECOGNISED_TABLE):
                self.lake.commit_staged(layer, table, self.partition_key)
        return removed


def _published_stats(lake: Lake, table: str, partition_key: str) -> table_checks.TableStats:
    """What the partition published in a table, read back fragment by fragment.

    The schema check validates these rows as they are on disk (bounded memory: one
    fragment at a time), not the frames the ingest produced.
    """
    stats = table_checks.TableStats()
    for path in lake.partition_fragments(VALIDATED, table, partition_key):
        stats.add_written(lake.read_parquet([path]), SPEC_BY_TABLE[table].schema)
    for path in lake.partition_fragments(QUARANTINE, table, partition_key):
        stats.add_quarantined(lake.read_parquet([path]))
    return stats


def _table_materialization(lake: Lake, table: str, partition_key: str, *,
                           members: pl.DataFrame, superseded: int, unchanged: bool,
                           ) -> dg.MaterializeResult:
    """The materialisation of one table's partition with every check evaluated.

    Every check reads what the lake holds after the run: the partition's published
    fragments (rows from their footers, values validated), its published quarantine, and
    the whole table's keys. ``members`` are the file's catalogue rows as recorded, and
    ``superseded`` the partition's ledger of rows later deliveries replaced.
    """
    spec = SPEC_BY_TABLE[table]
    stats = _published_stats(lake, table, partition_key)
    repeated = (repeated_keys(lake.scan_table(VALIDATED, table, list(spec.key)), spec.key)
                if lake.fragments(VALIDATED, table) else pl.DataFrame())
    rows_on_disk = lake.count_rows(lake.partition_fragments(VALIDATED, table, partition_key))
    quarantine = lake.partition_fragments(QUARANTINE, table, partition_key)
    quarantine_on_disk = (
        lake.scan_parquet(quarantine, ["source", "line"]).filter(pl.col("line").is_not_null())
        .group_by("source").len().collect()
        if quarantine else pl.DataFrame(schema={"source": pl.String, "len": pl.UInt32})
    )
    checks = [
        table_checks.rows_accounted(table, members, rows_on_disk=rows_on_disk,
                                    quarantine_on_disk=quarantine_on_disk,
                                    superseded=superseded),
        table_checks.keys_unique(table, spec.key, repeated),
        table_checks.no_rows_quarantined(table, stats),
        table_checks.schema_conforms(table, stats),
    ]
    if table == "stock_prices":
        checks.append(table_checks.security_name_known(stats))
    metadata: dict[str, Any] = {
        "dagster/row_count": rows_on_disk,
        "rows_quarantined": stats.quarantined,
        "rows_superseded": superseded,
        "fragments": len(lake.partition_fragments(VALIDATED, table, partition_key)),
        "path": lake.url(VALIDATED, table, fragment_prefix(partition_key) + "-*.parquet"),
        "quarantine_path": lake.url(QUARANTINE, table,
                                    fragment_prefix(partition_key) + "-*.parquet"),
        "preview": dg.MetadataValue.md(table_checks.markdown_table(stats.preview)),
        "unchanged": unchanged,
    }
    if stats.date_range:
        metadata["date_min"], metadata["date_max"] = stats.date_range
    return dg.MaterializeResult(asset_key=table, metadata=metadata, check_results=checks)


def _recorded_members(metastore: Metastore, partition_key: str) -> pl.DataFrame:
    """The catalogue rows of the partition's latest recorded version (file and members)."""
    files = metastore.files().filter(pl.col("partition_key") == partition_key)
    latest = files.filter(pl.col("recorded_at") == files["recorded_at"].max())
    return latest.rename({"table_name": "table"})


def _raw_files_materialization(members: pl.DataFrame, *, file_uri: str, sha: str,
                               obj: RawObject, unchanged: bool) -> dg.MaterializeResult:
    """The catalogue entry's materialisation, its check evaluated on what was recorded."""
    parts = members.filter(pl.col("member").is_not_null() | pl.col("table").is_not_null())
    rejected = parts.filter(pl.col("status") == "rejected")
    return dg.MaterializeResult(
        asset_key="raw_files",
        metadata={
            "uri": file_uri, "sha256": sha, "size": obj.size, "version": obj.version,
            "landed_at": obj.landed_at.isoformat(),
            "members": parts.height,
            "datasets": dg.MetadataValue.json(dict(
                parts.filter(pl.col("dataset").is_not_null())
                .group_by("dataset").len().sort("dataset").iter_rows())),
            "rows_read": int(parts["rows_read"].sum()),
            "rows_valid": int(parts["rows_valid"].sum()),
            "rows_quarantined": int(parts["rows_quarantined"].sum()),
            "unchanged": unchanged,
        },
        check_results=[dg.AssetCheckResult(
            check_name="raw_files_all_members_recognised", asset_key="raw_files",
            passed=rejected.height == 0, severity=dg.AssetCheckSeverity.WARN,
            metadata={"failing_count": rejected.height,
                      "sample": dg.MetadataValue.md(table_checks.markdown_table(
                          rejected.select("member", "reason")))},
        )],
    )


def _results(lake: Lake, metastore: Metastore, partition_key: str, *, file_uri: str,
             sha: str, obj: RawObject, unchanged: bool) -> list[dg.MaterializeResult]:
    """Every asset's materialisation and checks, from what the lake and catalogue hold."""
    members = _recorded_members(metastore, partition_key)
    superseded = metastore.superseded_rows(partition_key)
    parts = members.filter(pl.col("member").is_not_null() | pl.col("table").is_not_null())
    return [
        _raw_files_materialization(members, file_uri=file_uri, sha=sha, obj=obj,
                                   unchanged=unchanged),
        *[_table_materialization(lake, table, partition_key, members=parts,
                                 superseded=superseded.get(table, 0), unchanged=unchanged)
          for table in TABLES],
    ]


class IngestConfig(dg.Config):
    """How a landed file is read."""

    batch_bytes: int = BATCH_BYTES
    """Uncompressed bytes of archive members ingested at a time (bounds memory: peak RSS is
    about 10x this plus a 64-bit hash per table row)."""


@dg.multi_asset(
    name="lake_ingest",
    specs=[RAW_FILES_SPEC, *TABLE_SPECS],
    check_specs=CHECK_SPECS,
    partitions_def=landed_files,
    can_subset=False,
    # A transient failure (an unreachable S3, a lock held too long) is retried in the run;
    # the landing sensor re-requests a file whose runs all failed (see sensors/landing.py).
    retry_policy=dg.RetryPolicy(max_retries=2, delay=1, backoff=dg.Backoff.EXPONENTIAL),
)
def lake_ingest(
    context: dg.AssetExecutionContext, config: IngestConfig, lake: Lake, metastore: Metastore
) -> Iterator[dg.MaterializeResult]:
    """Catalogue one landed file and convert what it holds into the validated tables.

    The file is streamed in batches of members (bounded memory whatever its size); each
    batch's rows are staged, and all of them are published together once the whole file has
    been read, so readers never see half an archive.
    """
    partition_key = context.partition_key
    raw_key = raw_key_for(partition_key)
    obj = lake.stat_raw(raw_key)
    file_uri = lake.url("raw", raw_key)
    with lake.open_raw(raw_key) as fh:
        sha = sha256_of(fh)
        if metastore.latest_sha(partition_key) == sha:
            context.log.info(f"{raw_key} is byte-identical to its last ingested version")
            # Nothing is written (not even a lock) unless the file was landed again.
            if metastore.ingested_versions().get(partition_key) != obj.version:
                metastore.record_ingested(partition_key, version=obj.version, sha256=sha,
                                          run_id=context.run_id)
            yield from _results(lake, metastore, partition_key, file_uri=file_uri, sha=sha,
                                obj=obj, unchanged=True)
            return
        members, columns = [], []
        with lake.background_writer(max_pending=4) as parquet_writer:
            writer = _PartitionWriter(lake, parquet_writer, partition_key, obj.landed_at)
            for batch in iter_unpacked(file_uri, fh, DATASETS, batch_bytes=config.batch_bytes):
                result = ingest_members(batch, DATASETS)
                writer.add(result)
                members.append(result.members.with_columns(
                    sha256=pl.col("uri").replace_strict(batch.sha256, default="unreadable",
                                                        return_dtype=pl.String)))
                columns.append(result.columns)
            with lake.publish_lock():
                removed = writer.publish()
                member_rows = pl.concat(members)
                files = _files_frame(member_rows, partition_key=partition_key,
                                     file_uri=file_uri, sha=sha, size=obj.size,
                                     landed_at=obj.landed_at)
                for table, schema in writer.schemas.items():
                    metastore.register_table(table, lake.url(VALIDATED, table), schema)
                # The catalogue entry is recorded after the tables are published, so an
                # interrupted run is not mistaken for an ingested version when retried.
                metastore.record_files(files, pl.concat(columns).join(
                    files.select("uri", "sha256"), on="uri", how="left"))
                own = removed.filter(pl.col("partition_key") == partition_key)
                metastore.record_ingested(
                    partition_key, version=obj.version, sha256=sha, run_id=context.run_id,
                    own_superseded=dict(own.select("table_name", "rows").iter_rows()),
                    others_superseded=removed.filter(pl.col("partition_key") != partition_key))
                results = _results(lake, metastore, partition_key, file_uri=file_uri,
                                   sha=sha, obj=obj, unchanged=False)
    yield from results
