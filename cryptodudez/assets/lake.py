"""The lake's assets: every landed file, catalogued, validated and converted to Parquet.

One dynamic partition per landed file (``landed_files``). Materialising a partition reads
the file once and produces the catalogue entry (``raw_files``) and the validated tables it
feeds, with their quarantine, in the same step, so an archive is never parsed twice.

The engine (staging, "the latest delivery wins", publishing, catalogue rows) is the
Dagster-free :mod:`cryptodudez.lake.tables`; this module reads the file, hands each batch to
it, records what it published and evaluates the checks on what the lake then holds.
"""

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import dagster as dg
import polars as pl

from cryptodudez.archives import BATCH_BYTES, iter_unpacked, sha256_of
from cryptodudez.checks import tables as table_checks
from cryptodudez.datasets.merge import repeated_keys
from cryptodudez.datasets.specs import DATASETS, TABLES
from cryptodudez.ingest import ingest_members
from cryptodudez.lake.tables import SPEC_BY_TABLE, PartitionWriter, Published, files_frame
from cryptodudez.resources.lake import (
    QUARANTINE,
    RAW,
    VALIDATED,
    Lake,
    RawObject,
    fragment_prefix,
    of_partition,
    raw_key_for,
)
from cryptodudez.resources.metastore import Metastore

landed_files = dg.DynamicPartitionsDefinition(name="landed_files")

_TABLE_DOCS = {
    "stock_prices": "Daily bars of every stock and ETF: Symbol, Security Name, Date "
                    "(YYYY-MM-DD), Open, High, Low, Close, Adj Close, Volume, asset_class.",
    "symbols_meta": "NASDAQ symbol directory (symbols_valid_meta.csv).",
    "crypto_prices": "Daily coin prices in USD, one row per coin and day.",
    "tweets": "Canonical tweets from every tweet archive schema, one row per tweet id; "
              "the latest delivery wins.",
    "coin_trades": "Coin trades (CryptoMood JSON lines), one row per trade uuid: coin, "
                   "exchange, quote, ts (UTC), price, size, sequence, taker side.",
    "tweet_sentiments": "Tweet sentiment scores (CryptoMood JSON lines): ts (UTC), the coins "
                        "the tweet mentions, polarity (-1..1), text; one row per record.",
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


def _published_stats(lake: Lake, table: str, validated: list[str],
                     quarantine: list[str]) -> table_checks.TableStats:
    """What the partition published in a table, read back fragment by fragment.

    ``validated`` and ``quarantine`` are the partition's fragments as listed after the run.
    The schema check validates these rows as they are on disk (bounded memory: one
    fragment at a time), not the frames the ingest produced.
    """
    stats = table_checks.TableStats()
    spec = SPEC_BY_TABLE[table]
    for path in validated:
        stats.add_written(lake.read_parquet([path]), spec.schema, spec.time_column)
    for path in quarantine:
        stats.add_quarantined(lake.read_parquet([path]))
    return stats


def _table_materialization(lake: Lake, table: str, partition_key: str, *,
                           members: pl.DataFrame, superseded: int, unchanged: bool,
                           restored: int = 0, named: int = 0) -> dg.MaterializeResult:
    """The materialisation of one table's partition with every check evaluated.

    Every check reads what the lake holds after the run: the partition's published
    fragments (rows from their footers, values validated), its published quarantine, and
    the whole table's keys. ``members`` are the file's catalogue rows as recorded, and
    ``superseded`` the partition's ledger of rows later deliveries replaced, and
    ``restored`` the rows of other partitions given back to the table because this file's
    previous version had superseded them (see :func:`_ingest_again`), and ``named`` the
    stock rows (of any partition) whose Security Name the run set from the symbol directory.
    Each layer of the table is listed once (on S3 every listing is a request).
    """
    spec = SPEC_BY_TABLE[table]
    table_fragments = lake.fragments(VALIDATED, table)
    fragments = of_partition(table_fragments, partition_key)
    quarantine = lake.partition_fragments(QUARANTINE, table, partition_key)
    stats = _published_stats(lake, table, fragments, quarantine)
    repeated = (repeated_keys(lake.scan_parquet(table_fragments, list(spec.key)), spec.key)
                if table_fragments else pl.DataFrame())
    rows_on_disk = lake.count_rows(fragments)
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
        "rows_restored": restored,
        "fragments": len(fragments),
        "path": lake.url(VALIDATED, table, fragment_prefix(partition_key) + "-*.parquet"),
        "quarantine_path": lake.url(QUARANTINE, table,
                                    fragment_prefix(partition_key) + "-*.parquet"),
        "preview": dg.MetadataValue.md(table_checks.markdown_table(stats.preview)),
        "unchanged": unchanged,
    }
    if table == "stock_prices":
        metadata["security_names_set"] = named
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
             sha: str, obj: RawObject, unchanged: bool,
             restored: Mapping[str, int] | None = None,
             named: int = 0) -> list[dg.MaterializeResult]:
    """Every asset's materialisation and checks, from what the lake and catalogue hold."""
    members = _recorded_members(metastore, partition_key)
    superseded = metastore.superseded_rows(partition_key)
    parts = members.filter(pl.col("member").is_not_null() | pl.col("table").is_not_null())
    return [
        _raw_files_materialization(members, file_uri=file_uri, sha=sha, obj=obj,
                                   unchanged=unchanged),
        *[_table_materialization(lake, table, partition_key, members=parts,
                                 superseded=superseded.get(table, 0), unchanged=unchanged,
                                 restored=(restored or {}).get(table, 0),
                                 named=named if table == "stock_prices" else 0)
          for table in TABLES],
    ]


def _record(lake: Lake, metastore: Metastore, published: Published, members: pl.DataFrame,
            columns: pl.DataFrame, *, file_uri: str, sha: str, obj: RawObject,
            run_id: str) -> None:
    """Catalogue what a run published: table schemas, the file and its members, the ledger.

    The catalogue entry is recorded after the tables are published, so an interrupted run
    is not mistaken for an ingested version when retried.
    """
    files = files_frame(members, partition_key=published.partition_key, file_uri=file_uri,
                        sha=sha, size=obj.size, landed_at=obj.landed_at)
    for table, schema in published.schemas.items():
        metastore.register_table(table, lake.url(VALIDATED, table), schema)
    metastore.record_files(files, columns.join(files.select("uri", "sha256"), on="uri",
                                               how="left"))
    metastore.record_ingested(
        published.partition_key, version=obj.version, sha256=sha, run_id=run_id,
        own_superseded=published.own_removed(), others_superseded=published.others_removed(),
        lost_to=published.lost_to())


def _finished(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether run ``run_id`` has ended, so its staging can go.

    A run this instance does not know (another Dagster home on the same lake) may still be
    staging: it is left alone.
    """
    run = instance.get_run_by_id(run_id)
    return run is not None and run.is_finished


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
        previous = metastore.latest_sha(partition_key)
        if previous == sha:
            context.log.info(f"{raw_key} is byte-identical to its last ingested version")
            # Nothing is written (not even a lock) unless the file was landed again.
            if metastore.ingested_versions().get(partition_key) != obj.version:
                metastore.record_ingested(partition_key, version=obj.version, sha256=sha,
                                          run_id=context.run_id)
            yield from _results(lake, metastore, partition_key, file_uri=file_uri, sha=sha,
                                obj=obj, unchanged=True)
            return
        with lake.background_writer(max_pending=4) as parquet_writer:
            writer = PartitionWriter(lake, parquet_writer, partition_key, obj.landed_at,
                                     run=context.run_id,
                                     finished=lambda run: _finished(context.instance, run))
            members, columns = _stage(writer, fh, file_uri, config)
            with lake.publish_lock():
                # Rows of other files that this file's previous version superseded: once it is
                # replaced they may win again, so those files are ingested again (below).
                beaten = metastore.beaten_by(partition_key) if previous else []
                _refuse_gone(lake, partition_key, beaten)
                published = writer.publish()
                again = _ingest_again(context, config, lake, metastore, beaten,
                                      done={partition_key})
                # Recorded last, so a run killed before the files above were ingested again
                # is retried whole (its version is not yet recorded as ingested).
                _record(lake, metastore, _with_later_removals(published, again),
                        members, columns, file_uri=file_uri, sha=sha, obj=obj,
                        run_id=context.run_id)
                results = _results(lake, metastore, partition_key, file_uri=file_uri,
                                   sha=sha, obj=obj, unchanged=False,
                                   restored=_restored(again),
                                   named=_named(context, published, again))
    yield from results


def _stage(writer: PartitionWriter, fh: BinaryIO, file_uri: str,
           config: IngestConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stage every batch of a landed file; returns its member rows and inferred columns."""
    members, columns = [], []
    for batch in iter_unpacked(file_uri, fh, DATASETS, batch_bytes=config.batch_bytes):
        result = ingest_members(batch, DATASETS)
        writer.add(result)
        members.append(result.members.with_columns(
            sha256=pl.col("uri").replace_strict(batch.sha256, default="unreadable",
                                                return_dtype=pl.String)))
        columns.append(result.columns)
    return pl.concat(members), pl.concat(columns)


def _refuse_gone(lake: Lake, partition_key: str, beaten: list[str]) -> None:
    """Fail before publishing when a file whose rows may win again is gone from raw/.

    Publishing this version removes its previous version's rows, and the rows that version
    beat come back only by ingesting their files again: with a file deleted from raw/ they
    would be lost, with every check passing (a QA walkthrough). Nothing is published; the
    run fails naming the files (not retried: asking again finds them gone again).
    """
    gone = [key for key in beaten if not lake.exists(lake.path(RAW, raw_key_for(key)))]
    if gone:
        names = ", ".join(f"raw/{raw_key_for(key)}" for key in gone)
        msg = (f"{names}: gone from the lake, though this file's previous version beat rows "
               f"of {'it' if len(gone) == 1 else 'them'} that must win again once it is "
               f"replaced; nothing was published. Land {'it' if len(gone) == 1 else 'them'} "
               f"again (the same bytes), then ingest raw/{raw_key_for(partition_key)} again")
        raise dg.Failure(description=msg, allow_retries=False)


@dataclasses.dataclass(frozen=True)
class _Again:
    """A partition ingested again in another's run: what it published, and its ledger before."""

    published: Published
    superseded_before: dict[str, int]


def _ingest_again(context: dg.AssetExecutionContext, config: IngestConfig, lake: Lake,
                  metastore: Metastore, keys: list[str], *, done: set[str]) -> list[_Again]:
    """Ingest ``keys`` again from raw/, in this run, holding the publish lock.

    Called once a file whose previous version had superseded rows of these partitions has
    been published in its place: their rows are staged again whole and "the latest delivery
    wins" is applied anew, so a row the previous version had removed comes back unless
    another delivery still beats it. A partition whose raw file has changed since it was
    ingested is a new version: the partitions its own previous version had beaten follow it.
    Each partition is ingested at most once (``done``); a raw file since removed is skipped.
    """
    again: list[_Again] = []
    queue = list(keys)
    while queue:
        key = queue.pop(0)
        if key in done:
            continue
        done.add(key)
        raw_key = raw_key_for(key)
        try:
            obj = lake.stat_raw(raw_key)
        except FileNotFoundError:
            context.log.warning(f"raw/{raw_key} is gone: its rows cannot be resolved again")
            continue
        context.log.info(f"ingesting raw/{raw_key} again: a file that superseded rows of it "
                         "was replaced, so they may win again")
        file_uri = lake.url("raw", raw_key)
        with lake.open_raw(raw_key) as fh:
            sha = sha256_of(fh)
            if metastore.latest_sha(key) != sha:
                queue.extend(metastore.beaten_by(key))
            before = metastore.superseded_rows(key)
            with lake.background_writer(max_pending=4) as parquet_writer:
                writer = PartitionWriter(lake, parquet_writer, key, obj.landed_at,
                                         run=context.run_id,
                                         finished=lambda run: _finished(context.instance, run))
                members, columns = _stage(writer, fh, file_uri, config)
                published = writer.publish()
        _record(lake, metastore, published, members, columns, file_uri=file_uri, sha=sha,
                obj=obj, run_id=context.run_id)
        again.append(_Again(published, before))
    return again


def _with_later_removals(published: Published, again: list[_Again]) -> Published:
    """``published`` as its ledger must be recorded after the partitions ingested ``again``.

    Its removals of their rows are dropped (each recorded its own ledger, every row staged
    again, after this file was published), and their removals of its rows are added.
    """
    redone = [a.published.partition_key for a in again]
    removed = pl.concat([
        published.removed.filter(~pl.col("partition_key").is_in(redone)),
        *[a.published.removed.filter(pl.col("partition_key") == published.partition_key)
          for a in again]])
    return dataclasses.replace(published, removed=removed)


def _named(context: dg.AssetExecutionContext, published: Published,
           again: list[_Again]) -> int:
    """Stock rows whose Security Name the run set from the symbol directory (logged).

    Publishing a symbol directory names the stock rows published before it, whatever file
    they came from (see :meth:`PartitionWriter.publish`).
    """
    named = pl.concat([published.named, *[a.published.named for a in again]])
    rows = int(named["rows"].sum())
    if rows:
        context.log.info(f"Security Name set from the symbol directory on {rows} stock rows "
                         f"of {named['partition_key'].n_unique()} landed files")
    return rows


def _restored(again: list[_Again]) -> dict[str, int]:
    """Per table, rows of the partitions ingested ``again`` that are back in the table."""
    restored: dict[str, int] = {}
    for a in again:
        after = a.published.own_removed()
        for table, rows in a.superseded_before.items():
            restored[table] = restored.get(table, 0) + max(0, rows - after.get(table, 0))
    return restored
