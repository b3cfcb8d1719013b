"""The lake's assets: every landed file, catalogued, validated and converted to Parquet.

One dynamic partition per landed file (``landed_files``). Materialising a partition reads
the file once and produces the catalogue entry (``raw_files``) and the validated tables it
feeds, with their quarantine, in the same step, so an archive is never parsed twice.
"""

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import polars as pl

from cryptodudez.checks import tables as table_checks
from cryptodudez.datasets.merge import resolve_latest
from cryptodudez.datasets.specs import DATASETS, TABLES, attach_security_names
from cryptodudez.ingest import UNRECOGNISED_TABLE, IngestResult, ingest_members, unpack
from cryptodudez.resources.lake import (
    QUARANTINE,
    VALIDATED,
    Lake,
    fragment_name,
    raw_key_for,
)
from cryptodudez.resources.metastore import Metastore

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
    dg.AssetCheckSpec("raw_files_all_members_recognised", asset="raw_files",
                      description="Every member was recognised as a known dataset "
                                  "(rejects are quarantined with the columns found)."),
    *[spec for table in TABLES
      for spec in table_checks.check_specs(table, extra=_EXTRA_CHECKS.get(table, []))],
]


def _files_frame(result: IngestResult, *, partition_key: str, file_uri: str, sha: str,
                 size: int, landed_at: datetime) -> pl.DataFrame:
    now = datetime.now(tz=UTC)
    members = result.members
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


def _merge_into_table(lake: Lake, table: str, partition_key: str,
                      frame: pl.DataFrame) -> tuple[pl.DataFrame, int, pl.DataFrame]:
    """Write this file's fragment, the latest delivery winning on keys shared with others.

    Returns the fragment written, the rows of this file superseded by other files or by a
    later member of the same file, and the key columns of the whole table afterwards.
    """
    spec = SPEC_BY_TABLE[table]
    key = list(spec.key)
    order = ["_landed_at", "_partition", "_source", "_line"]
    own_path = lake.path(VALIDATED, table, fragment_name(partition_key))
    others = [p for p in lake.fragments(VALIDATED, table) if p != own_path]
    parts = [frame.select(*key, *order)]
    if others:
        parts.append(lake.read_parquet(others, columns=[*key, *order]))
    candidates = pl.concat(parts, how="vertical_relaxed")
    resolved = resolve_latest(candidates, key)
    own_resolved = resolved.head(frame.height)
    kept = frame.filter(own_resolved["_wins"])
    superseded = frame.height - kept.height
    # Rows of other files that this delivery now supersedes: rewrite just those fragments.
    losers = resolved.slice(frame.height).filter(~pl.col("_wins"))
    if losers.height:
        for partition in losers["_partition"].unique().to_list():
            path = lake.path(VALIDATED, table, fragment_name(partition))
            old = lake.read_parquet([path])
            drop = losers.filter(pl.col("_partition") == partition).select("_source", "_line")
            lake.write_parquet(path, old.join(drop, on=["_source", "_line"], how="anti"))
    lake.write_parquet(own_path, kept)
    table_keys = resolved.filter(pl.col("_wins")).select(key)
    return kept, superseded, table_keys


def _table_results(context: dg.AssetExecutionContext, lake: Lake, metastore: Metastore,
                   result: IngestResult, *, partition_key: str, landed_at: datetime,
                   ) -> Iterator[dg.MaterializeResult]:
    """Write (or clear) this file's fragment of every table and evaluate the table checks.

    Every table is materialised for every landed file: a table's partition is "the rows this
    file contributes", possibly none. A changed re-delivery that no longer feeds a table
    thereby clears what its earlier version wrote.
    """
    tables = dict(result.tables)
    if "stock_prices" in tables:
        symbols = tables.get("symbols_meta")
        if symbols is None:
            symbols = lake.read_table(VALIDATED, "symbols_meta")
        tables["stock_prices"] = attach_security_names(tables["stock_prices"], symbols)
    for table in TABLES:
        fragment = fragment_name(partition_key)
        quarantined = result.quarantine.get(table, pl.DataFrame(schema=_QSCHEMA))
        quarantine_path = lake.path(QUARANTINE, table, fragment)
        own_path = lake.path(VALIDATED, table, fragment)
        if quarantined.height:
            lake.write_parquet(quarantine_path,
                               quarantined.with_columns(_partition=pl.lit(partition_key)))
        else:
            lake.delete(quarantine_path)
        if table in tables:
            frame = tables[table].with_columns(
                _landed_at=pl.lit(landed_at, dtype=pl.Datetime("us", "UTC")),
                _partition=pl.lit(partition_key),
            )
            written, superseded, table_keys = _merge_into_table(lake, table, partition_key,
                                                                frame)
            metastore.register_table(table, lake.url(VALIDATED, table), written.schema)
            on_disk = lake.read_parquet([own_path])
        else:
            lake.delete(own_path)
            written, superseded = pl.DataFrame(), 0
            table_keys = on_disk = pl.DataFrame()
        if table in tables or quarantined.height:
            context.log.info(f"{table}: {written.height} rows written, "
                             f"{quarantined.height} quarantined, {superseded} superseded")
        yield _table_materialization(
            lake, table, partition_key, members=result.members, written=on_disk,
            quarantined=quarantined, superseded=superseded, table_keys=table_keys,
        )


def _table_materialization(lake: Lake, table: str, partition_key: str, *,
                           members: pl.DataFrame, written: pl.DataFrame,
                           quarantined: pl.DataFrame, superseded: int,
                           table_keys: pl.DataFrame, unchanged: bool = False,
                           ) -> dg.MaterializeResult:
    """The materialisation of one table's partition with every check evaluated on disk data."""
    spec = SPEC_BY_TABLE[table]
    fragment = fragment_name(partition_key)
    checks = [
        table_checks.rows_accounted(table, members, written, quarantined, superseded),
        table_checks.keys_unique(table, spec.key, table_keys),
        table_checks.no_rows_quarantined(table, quarantined),
        table_checks.schema_conforms(table, spec, written),
    ]
    if table == "stock_prices":
        checks.append(table_checks.security_name_known(written))
    preview = written.drop([c for c in written.columns if c.startswith("_")])
    metadata: dict[str, Any] = {
        "dagster/row_count": written.height,
        "rows_quarantined": quarantined.height,
        "rows_superseded": superseded,
        "path": lake.url(VALIDATED, table, fragment),
        "quarantine_path": lake.url(QUARANTINE, table, fragment),
        "preview": dg.MetadataValue.md(table_checks.markdown_table(preview)),
        "unchanged": unchanged,
    }
    if written.height and "Date" in written.columns:
        metadata["date_min"] = str(written["Date"].min())
        metadata["date_max"] = str(written["Date"].max())
    return dg.MaterializeResult(asset_key=table, metadata=metadata, check_results=checks)


def _unchanged_results(lake: Lake, metastore: Metastore,
                       partition_key: str) -> Iterator[dg.MaterializeResult]:
    """Re-evaluate every table's checks on what an identical earlier run already wrote."""
    files = metastore.files().filter(pl.col("partition_key") == partition_key)
    latest = files.filter(pl.col("recorded_at") == files["recorded_at"].max())
    members = latest.filter(pl.col("member").is_not_null() | pl.col("table_name").is_not_null())
    members = members.rename({"table_name": "table"})
    fragment = fragment_name(partition_key)
    for table in TABLES:
        spec = SPEC_BY_TABLE[table]
        paths = lake.fragments(VALIDATED, table)
        own = lake.path(VALIDATED, table, fragment)
        written = lake.read_parquet([own]) if own in paths else pl.DataFrame()
        qpath = lake.path(QUARANTINE, table, fragment)
        quarantined = (lake.read_parquet([qpath]).drop("_partition", strict=False)
                       if qpath in lake.fragments(QUARANTINE, table)
                       else pl.DataFrame(schema=_QSCHEMA))
        valid = int(members.filter(pl.col("table") == table)["rows_valid"].sum())
        keys = lake.read_parquet(paths, columns=list(spec.key)) if paths else pl.DataFrame()
        yield _table_materialization(
            lake, table, partition_key, members=members, written=written,
            quarantined=quarantined, superseded=valid - written.height, table_keys=keys,
            unchanged=True,
        )


_QSCHEMA = {"source": pl.String, "line": pl.Int64, "raw": pl.String, "reason": pl.String}


@dg.multi_asset(
    name="lake_ingest",
    specs=[RAW_FILES_SPEC, *TABLE_SPECS],
    check_specs=CHECK_SPECS,
    partitions_def=landed_files,
    can_subset=False,
)
def lake_ingest(
    context: dg.AssetExecutionContext, lake: Lake, metastore: Metastore
) -> Iterator[dg.MaterializeResult]:
    """Catalogue one landed file and convert what it holds into the validated tables."""
    partition_key = context.partition_key
    raw_key = raw_key_for(partition_key)
    obj = lake.stat_raw(raw_key)
    data = lake.read_raw(raw_key)
    sha = hashlib.sha256(data).hexdigest()
    file_uri = lake.url("raw", raw_key)
    if metastore.latest_sha(partition_key) == sha:
        context.log.info(f"{raw_key} is byte-identical to its last ingested version")
        yield dg.MaterializeResult(
            asset_key="raw_files",
            metadata={"uri": file_uri, "sha256": sha, "version": obj.version,
                      "unchanged": True},
            check_results=[dg.AssetCheckResult(
                check_name="raw_files_all_members_recognised", asset_key="raw_files",
                passed=True, metadata={"unchanged": True})],
        )
        yield from _unchanged_results(lake, metastore, partition_key)
        return
    unpacked = unpack(file_uri, data)
    result = ingest_members(unpacked, DATASETS)
    result.members = result.members.with_columns(
        sha256=pl.col("uri").replace_strict(unpacked.sha256, default="unreadable",
                                            return_dtype=pl.String)
    )
    files = _files_frame(result, partition_key=partition_key, file_uri=file_uri, sha=sha,
                         size=len(data), landed_at=obj.landed_at)
    columns = result.columns.join(files.select("uri", "sha256"), on="uri", how="left")
    unrecognised = result.quarantine.get(UNRECOGNISED_TABLE)
    if unrecognised is not None:
        lake.write_parquet(
            lake.path(QUARANTINE, UNRECOGNISED_TABLE, fragment_name(partition_key)),
            unrecognised.with_columns(_partition=pl.lit(partition_key)),
        )
    table_results = list(
        _table_results(context, lake, metastore, result, partition_key=partition_key,
                       landed_at=obj.landed_at)
    )
    # The catalogue entry is recorded after the tables are written, so an interrupted run is
    # not mistaken for an ingested version when it is retried.
    metastore.record_files(files, columns)
    rejected = result.members.filter(pl.col("status") == "rejected")
    yield dg.MaterializeResult(
        asset_key="raw_files",
        metadata={
            "uri": file_uri, "sha256": sha, "size": len(data), "version": obj.version,
            "landed_at": obj.landed_at.isoformat(),
            "members": result.members.height,
            "datasets": dg.MetadataValue.json(dict(
                result.members.filter(pl.col("dataset").is_not_null())
                .group_by("dataset").len().iter_rows())),
            "rows_read": int(result.members["rows_read"].sum()),
            "rows_valid": int(result.members["rows_valid"].sum()),
            "rows_quarantined": int(result.members["rows_quarantined"].sum()),
            "unchanged": False,
        },
        check_results=[dg.AssetCheckResult(
            check_name="raw_files_all_members_recognised", asset_key="raw_files",
            passed=rejected.height == 0, severity=dg.AssetCheckSeverity.WARN,
            metadata={"failing_count": rejected.height,
                      "sample": dg.MetadataValue.md(table_checks.markdown_table(
                          rejected.select("member", "reason")))},
        )],
    )
    yield from table_results

