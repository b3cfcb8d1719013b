"""The event lake's assets: landed event files into ``events``, then daily compaction and KPIs.

Thin: the engine is :mod:`cryptodudez.lake` (Dagster-free). Hundreds of event types x 24
hours a day are data partitions of the Delta table, never Dagster partitions: ``events`` is
partitioned by landed file (``event_files``, registered by the landing sensor like every
other landed file), and ``events_compacted`` and ``event_kpis`` by UTC day.
"""

import json
from datetime import UTC, date, datetime

import dagster as dg

from cryptodudez.archives import sha256_of
from cryptodudez.checks import events as event_checks
from cryptodudez.checks.tables import partitioned
from cryptodudez.lake import kpi
from cryptodudez.lake.compaction import compact_day
from cryptodudez.lake.event_ingest import ingest_event_file
from cryptodudez.lake.events import BATCH_BYTES, CREATED_AT_MIN
from cryptodudez.lake.layout import digest, raw_key_for
from cryptodudez.resources.compute import Compute
from cryptodudez.resources.lake import Lake
from cryptodudez.resources.metastore import Metastore

event_files = dg.DynamicPartitionsDefinition(name="event_files")
# From the first day an event may have (the validation's lower bound, 2000-01-01): until
# session 18 they started on 2019-01-01, so an older event was published but its day could
# never be compacted or backfilled.
event_days = dg.DailyPartitionsDefinition(
    start_date=datetime.fromtimestamp(CREATED_AT_MIN / 1000, tz=UTC).date().isoformat(),
    timezone="UTC", end_offset=1)
KPIS = "kpis"

EVENT_CHECKS = partitioned([
    dg.AssetCheckSpec(
        "events_lines_accounted", asset="events", blocking=True,
        description="Every non-blank line of the file (counted by the framing, before any "
                    "parsing) is either a valid event or a quarantined line, and the "
                    "published quarantine holds every rejected line."),
    dg.AssetCheckSpec(
        "events_rows_accounted", asset="events", blocking=True,
        description="The commit's files hold exactly the new events sent to it (the "
                    "writer's counts against the staged rows)."),
    dg.AssetCheckSpec(
        "events_ids_unique", asset="events", blocking=True,
        description="After the commit, no event id this file added is held twice on the "
                    "days the file touches (read from the table's id index; ids held twice "
                    "by earlier commits alone are counted in the metadata)."),
    dg.AssetCheckSpec(
        "events_no_lines_quarantined", asset="events",
        description="The file had no malformed line (WARN: a vendor or service fault)."),
], event_files)
COMPACTION_CHECKS = partitioned([
    dg.AssetCheckSpec(
        "events_compacted_rows_kept", asset="events_compacted", blocking=True,
        description="The rewritten day holds as many rows as the files it replaced (Delta "
                    "log statistics before, the writer's counts after) and every id once."),
    dg.AssetCheckSpec(
        "events_compacted_schema_conforms", asset="events_compacted",
        description="The day's rows, read back from the table, satisfy the events pandera "
                    "schema."),
], event_days)


class EventIngestConfig(dg.Config):
    """How a landed events file is read."""

    batch_bytes: int = BATCH_BYTES
    """Uncompressed bytes of JSON lines validated at a time (bounds memory)."""


@dg.asset(
    name="events", partitions_def=event_files, group_name="events", check_specs=EVENT_CHECKS,
    kinds={"delta", "polars"},
    description="Domain events, one row per event id, in the Delta table validated/events "
                "(event_type=<type>/date=YYYY-MM-DD/hour=HH/); malformed lines in "
                "quarantine/events (source, line, raw, reason).",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=1, backoff=dg.Backoff.EXPONENTIAL),
)
def events(context: dg.AssetExecutionContext, config: EventIngestConfig, lake: Lake,
           metastore: Metastore) -> dg.MaterializeResult:
    """Validate, deduplicate and publish one landed events file (one Delta commit)."""
    partition_key = context.partition_key
    raw_key = raw_key_for(partition_key)
    obj = lake.stat_raw(raw_key)
    with lake.open_raw(raw_key) as fh:
        sha = sha256_of(fh)
    result = ingest_event_file(
        lake.storage, lake.path("raw", raw_key), source=lake.url("raw", raw_key),
        partition_key=partition_key, version_tag=digest(f"{partition_key}@{sha}")[:16],
        landed_at=obj.landed_at, publish_lock=lake.publish_lock,
        batch_bytes=config.batch_bytes,
        # the table as this ingest left it (no reload), registered in commit order
        on_published=lambda schema: metastore.register_table(
            "events", lake.url("validated", "events"), schema, table_format="delta"))
    quarantine_on_disk = result.quarantine.height
    metastore.record_files(event_checks.files_row(result, sha=sha, size=obj.size,
                                                  landed_at=obj.landed_at),
                           event_checks.columns_rows(lake.url("raw", raw_key), sha))
    metastore.record_ingested(partition_key, version=obj.version, sha256=sha,
                              run_id=context.run_id)
    return dg.MaterializeResult(
        metadata={
            "lines": result.records, "valid": result.valid,
            "quarantined": quarantine_on_disk, "duplicates": result.duplicates,
            "dagster/row_count": result.added_rows, "table_version": result.table_version,
            "dates": [d.isoformat() for d in result.dates],
            "quarantine_reasons": dg.MetadataValue.json(result.reasons),
            "table": lake.url("validated", "events"),
        },
        check_results=event_checks.ingest_checks(result, quarantine_on_disk),
    )


@dg.asset(
    name="events_compacted", partitions_def=event_days, group_name="events",
    deps=[dg.AssetDep("events", partition_mapping=dg.AllPartitionMapping())],
    check_specs=COMPACTION_CHECKS, kinds={"delta"},
    description="One UTC day of events rewritten as one file per (type, hour), sorted, in a "
                "single Delta commit; its id index and rollups rewritten; files no version "
                "needs any more vacuumed. A day already compacted with nothing added since "
                "is left as it is (no commit).",
)
def events_compacted(context: dg.AssetExecutionContext, lake: Lake,
                     compute: Compute) -> dg.MaterializeResult:
    """Compact one day with the chosen engine.

    A no-op for a day without events, and for a day already compacted with no file added
    since (then only read back for the checks).
    """
    done = compact_day(lake.storage, date.fromisoformat(context.partition_key),
                       publish_lock=lake.publish_lock, validate=event_checks.schema_failures,
                       writer=compute.chosen("events_compacted").day_writer())
    written = done.written
    return dg.MaterializeResult(
        metadata={"rows": written.rows if written else done.rows_after,
                  "files": done.files,
                  "removed_files": written.removed_files if written else 0,
                  "vacuumed_files": done.vacuumed,
                  "already_compacted": done.already_compacted,
                  "compaction": done.tag,
                  "table_version": done.table_version},
        check_results=event_checks.compaction_checks(done))


@dg.asset(
    name="event_kpis", partitions_def=event_days, group_name="events",
    deps=["events_compacted"], kinds={"json"},
    description="The day's KPIs per event type (events, distinct ids, distinct users, "
                "events per hour) from the hourly rollups, as kpis/events/date=<day>.json: "
                "what `cryptodudez kpi --date <day>` computes without Dagster.",
)
def event_kpis(context: dg.AssetExecutionContext, lake: Lake) -> dg.MaterializeResult:
    """Compute and store the day's KPIs."""
    day = date.fromisoformat(context.partition_key)
    result = kpi.compute(lake.storage, day)
    path = lake.path(KPIS, "events", f"date={day.isoformat()}.json")
    lake.write_bytes(path, kpi.dumps(result).encode())
    top = sorted(result["types"].items(), key=lambda kv: -kv[1]["events"])[:10]
    return dg.MaterializeResult(metadata={
        **{k: v for k, v in result["totals"].items() if isinstance(v, int)},
        "path": lake.url(KPIS, "events", f"date={day.isoformat()}.json"),
        "computed_at": datetime.now(tz=UTC).isoformat(),
        "top_types": dg.MetadataValue.json({k: v["events"] for k, v in top}),
        "method": dg.MetadataValue.json(json.loads(json.dumps(result["method"]))),
    })
