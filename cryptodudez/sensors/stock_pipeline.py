"""After an ingest run that changed stock prices, recompute features and retrain the model."""

from datetime import UTC, datetime

import dagster as dg

from cryptodudez.assets.stocks import FIRST_YEAR
from cryptodudez.jobs import ingest_job, stock_pipeline_job
from cryptodudez.sensors.changes import changes_of, skip_unless_ingest

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def changed_stock_dates(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """Earliest date of the stock rows an ingest run changed, or None if it changed none.

    A file whose rows were all superseded or removed counts from the first year, since the
    dates it affected are no longer known from what it wrote.
    """
    earliest: str | None = None
    for change in changes_of(instance, run_id, {"stock_prices"}):
        first = f"{FIRST_YEAR}-01-01" if change.superseded or not change.date_min \
            else change.date_min
        earliest = first if earliest is None else min(earliest, first)
    return earliest


def pipeline_tags(earliest: str, now: datetime | None = None) -> dict[str, str]:
    """Run tags selecting the feature years from ``earliest`` to the current year.

    Every later year is included: a symbol's first rows of a year depend on the previous
    year's last 29 rows.
    """
    year = (now or datetime.now(tz=UTC)).year
    return {RANGE_START: max(earliest[:4], FIRST_YEAR), RANGE_END: str(year)}


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[ingest_job],
    request_job=stock_pipeline_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    name="stock_pipeline_sensor",
    description="Recomputes the affected feature years and retrains the volume model after "
                "an ingest run changed stock prices.",
)
def stock_pipeline_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    """Request the stock pipeline for the years an ingest run touched."""
    run = context.dagster_run
    if skip := skip_unless_ingest(run):
        return skip
    earliest = changed_stock_dates(context.instance, run.run_id)
    if earliest is None:
        return dg.SkipReason("the ingest run changed no stock prices")
    return dg.RunRequest(run_key=f"stock_pipeline:{run.run_id}",
                         tags={**pipeline_tags(earliest), "cryptodudez/after_run": run.run_id})
