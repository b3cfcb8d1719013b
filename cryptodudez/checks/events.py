"""The event lake's asset checks and catalogue rows, from what publishing reported.

Pure functions of the engine's results (:mod:`cryptodudez.lake.event_ingest`,
:mod:`cryptodudez.lake.event_table`): no lake reads of their own. Each check compares two
numbers obtained apart: lines counted by the framing against the validator's outcomes and
the published quarantine; rows the writer put in the commit's files against rows staged
for it; ids read back from the table's index; rows before and after a compaction.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandera.errors as pa_errors
import pandera.polars as pa
import polars as pl

from cryptodudez.checks.tables import markdown_table
from cryptodudez.lake.compaction import Compacted
from cryptodudez.lake.event_ingest import EventFileResult
from cryptodudez.lake.events import CREATED_AT_MAX, CREATED_AT_MIN, RESERVED_TYPE, TYPE_PATTERN


class EventRows(pa.DataFrameModel):
    """The ``events`` table's key columns, as rows are published."""

    id: str = pa.Field(nullable=False, str_length={"min_value": 1})
    event_type: str = pa.Field(nullable=False, str_matches=TYPE_PATTERN, notin=[RESERVED_TYPE])
    hour: pl.Int32 = pa.Field(nullable=False, ge=0, le=23)
    created_at: pl.Datetime(time_unit="us", time_zone="UTC") = pa.Field(  # type: ignore[valid-type]
        nullable=False,
        ge=datetime.fromtimestamp(CREATED_AT_MIN / 1000, tz=UTC),
        lt=datetime.fromtimestamp(CREATED_AT_MAX / 1000, tz=UTC))

    @pa.dataframe_check(name="partition_matches_time")
    def partition_matches_time(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """Every row sits in the date and hour partition of its own ``created_at``."""
        return data.lazyframe.select(
            (pl.col("created_at").dt.date() == pl.col("date"))
            & (pl.col("created_at").dt.hour().cast(pl.Int32) == pl.col("hour")))


def _result(name: str, asset: str, passed: bool, *, severity: dg.AssetCheckSeverity =
            dg.AssetCheckSeverity.ERROR, **metadata: Any) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=name, asset_key=asset, passed=bool(passed),
                               severity=severity, metadata=metadata)


def ingest_checks(result: EventFileResult, quarantine_on_disk: int,
                  ) -> list[dg.AssetCheckResult]:
    """The ``events`` checks of one landed file."""
    lines_ok = (result.records == result.valid + result.quarantined
                and quarantine_on_disk == result.quarantined)
    # duplicates is valid - added (see EventFileResult), so only the writer's count against
    # the staged rows can fail here; comparing valid with added + duplicates could not.
    rows_ok = result.added_rows == result.staged_rows
    sample = result.quarantine.select("line", "reason").head(5)
    return [
        _result("events_lines_accounted", "events", lines_ok, lines=result.records,
                valid=result.valid, quarantined=result.quarantined,
                quarantine_on_disk=quarantine_on_disk,
                unaccounted=result.records - result.valid - result.quarantined),
        _result("events_rows_accounted", "events", rows_ok, added=result.added_rows,
                staged=result.staged_rows, duplicates=result.duplicates),
        _result("events_ids_unique", "events", result.repeated_ids == 0,
                repeated_ids=result.repeated_ids,
                repeated_ids_before=result.repeated_ids_before),
        _result("events_no_lines_quarantined", "events", result.quarantined == 0,
                severity=dg.AssetCheckSeverity.WARN, failing_count=result.quarantined,
                reasons=dg.MetadataValue.json(result.reasons),
                sample=dg.MetadataValue.md(markdown_table(sample))),
    ]


def schema_failures(rows: pl.DataFrame) -> pl.DataFrame:
    """Pandera's failure cases of ``rows`` (empty when every row conforms)."""
    try:
        EventRows.validate(rows, lazy=True)
    except pa_errors.SchemaErrors as exc:
        return exc.failure_cases.select(pl.all().cast(pl.String))
    return pl.DataFrame()


def compaction_checks(done: Compacted) -> list[dg.AssetCheckResult]:
    """The ``events_compacted`` checks of one day (a day without events passes).

    A day already compacted (nothing rewritten) is checked as it stands: its rows in the
    Delta log against the rows read back, and every id once.
    """
    written = done.written
    failures = done.failures
    schema_ok = _result("events_compacted_schema_conforms", "events_compacted",
                        failures.height == 0, failing_count=failures.height,
                        sample=dg.MetadataValue.md(markdown_table(failures.head(5))))
    if done.already_compacted:
        kept = done.rows_before == done.rows_after == done.distinct_ids_after
        return [_result("events_compacted_rows_kept", "events_compacted", kept,
                        already_compacted=True, compaction=done.tag,
                        rows_in_log=done.rows_before, rows_read_back=done.rows_after,
                        distinct_ids=done.distinct_ids_after, files=done.files,
                        table_version=done.table_version),
                schema_ok]
    if written is None:
        return [_result("events_compacted_rows_kept", "events_compacted", True, rows=0),
                _result("events_compacted_schema_conforms", "events_compacted", True, rows=0)]
    kept = (written.removed_rows == written.rows == done.rows_after == done.rows_before
            and done.distinct_ids_after == done.rows_after)
    return [
        _result("events_compacted_rows_kept", "events_compacted", kept,
                already_compacted=False, rows_before=written.removed_rows,
                rows_written=written.rows, rows_read_back=done.rows_after,
                distinct_ids=done.distinct_ids_after, files_before=written.removed_files,
                files_after=written.files),
        schema_ok,
    ]


def files_row(result: EventFileResult, *, sha: str, size: int,
              landed_at: datetime) -> pl.DataFrame:
    """The landed file's catalogue row (``files`` table of the metastore)."""
    return pl.DataFrame([{
        "uri": result.source, "partition_key": result.partition_key, "member": None,
        "dataset": "events", "table_name": "events", "format": "jsonl", "sha256": sha,
        "size": size, "landed_at": landed_at, "rows_read": result.records,
        "rows_valid": result.valid, "rows_quarantined": result.quarantined,
        "status": "ingested" if result.quarantined == 0 else "partially_quarantined",
        "reason": None, "recorded_at": datetime.now(tz=UTC),
    }], schema={"uri": pl.String, "partition_key": pl.String, "member": pl.String,
                "dataset": pl.String, "table_name": pl.String, "format": pl.String,
                "sha256": pl.String, "size": pl.Int64, "landed_at": pl.Datetime("us", "UTC"),
                "rows_read": pl.Int64, "rows_valid": pl.Int64, "rows_quarantined": pl.Int64,
                "status": pl.String, "reason": pl.String,
                "recorded_at": pl.Datetime("us", "UTC")})


def columns_rows(uri: str, sha: str) -> pl.DataFrame:
    """The landed file's required fields, as the catalogue's inferred columns."""
    fields = [("data.id", "VARCHAR"), ("data.type", "VARCHAR"), ("data.attributes", "JSON"),
              ("meta.created_at", "BIGINT")]
    return pl.DataFrame({"uri": [uri] * 4, "sha256": [sha] * 4,
                         "position": pl.Series(range(1, 5), dtype=pl.Int32),
                         "name": [f for f, _ in fields], "type": [t for _, t in fields]})
