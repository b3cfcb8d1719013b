"""After an ingest run changed prices or tweets, recompute the years it touched.

The feature views are computed by UTC day and partitioned by year. A landing that changed
tweets of days ``a..b`` changes exactly those days of ``tweet_daily``; one that changed
bars of days ``a..b`` changes the rolling windows up to 60 bars later too, so the range
runs to ``b + LOOKBACK``. One run covers the years of that range (single-run backfill),
then the ETH model job snapshots a training set and publishes the signal.
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from cryptodudez.assets.eth import FIRST_DAY, missing_inputs
from cryptodudez.features.build import LOOKBACK
from cryptodudez.jobs import (
    FEATURE_STORE_JOB,
    eth_model_job,
    feature_store_job,
    ingest_job,
)
from cryptodudez.resources.lake import Lake
from cryptodudez.sensors.changes import changes_of, skip_unless_ingest
from cryptodudez.sensors.stock_pipeline import RANGE_END, RANGE_START

FEATURE_TABLES = {"tweets": timedelta(0), "crypto_prices": LOOKBACK, "stock_prices": LOOKBACK}


def touched_days(instance: dg.DagsterInstance, run_id: str) -> tuple[date, date] | None:
    """The days of feature partitions an ingest run's changes reach, or None.

    A table change without a recorded date range (every row superseded, or an older
    record) counts from the first day: what it affected is no longer known.
    """
    lo: date | None = None
    hi: date | None = None
    for change in changes_of(instance, run_id, FEATURE_TABLES):
        reach = FEATURE_TABLES[change.table]
        if change.superseded:
            first, last = date.fromisoformat(FIRST_DAY), date.max
        else:
            first = date.fromisoformat(change.date_min or FIRST_DAY)
            last = date.fromisoformat(change.date_max) if change.date_max else date.max
        last = date.max if last > date.max - reach else last + reach
        lo = first if lo is None else min(lo, first)
        hi = last if hi is None else max(hi, last)
    if lo is None or hi is None:
        return None
    return lo, hi


def range_tags(days: tuple[date, date], now: datetime | None = None) -> dict[str, str]:
    """Run tags selecting the year partitions holding ``days`` (clipped to what exists)."""
    today = (now or datetime.now(tz=UTC)).date()
    first = max(days[0], date.fromisoformat(FIRST_DAY))
    last = min(days[1], today)
    first = min(first, last)
    return {RANGE_START: f"{first:%Y}", RANGE_END: f"{last:%Y}"}


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_job],
    request_job=feature_store_job, default_status=dg.DefaultSensorStatus.RUNNING,
    name="feature_store_sensor",
    description="Recomputes the feature days an ingest run touched (prices or tweets).",
)
def feature_store_sensor(context: dg.RunStatusSensorContext,
                         lake: Lake) -> dg.RunRequest | dg.SkipReason:
    """Request the feature store for the days an ingest run touched."""
    run = context.dagster_run
    if skip := skip_unless_ingest(run):
        return skip
    days = touched_days(context.instance, run.run_id)
    if days is None:
        return dg.SkipReason("the ingest run changed no prices or tweets")
    if missing := missing_inputs(lake):
        return dg.SkipReason(f"the feature store needs {', '.join(missing)}, "
                             "which the lake does not hold yet")
    return dg.RunRequest(run_key=f"feature_store:{run.run_id}",
                         tags={**range_tags(days), "cryptodudez/after_run": run.run_id})


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[feature_store_job],
    request_job=eth_model_job, default_status=dg.DefaultSensorStatus.RUNNING,
    name="eth_model_sensor",
    description="After the feature store changed, snapshot a training set and republish "
                "the ETH signal.",
)
def eth_model_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    """Request the ETH model job after each successful feature-store run."""
    run = context.dagster_run
    if run.job_name != FEATURE_STORE_JOB:
        return dg.SkipReason(f"{run.job_name} is not a feature-store run")
    return dg.RunRequest(run_key=f"eth_model:{run.run_id}",
                         tags={"cryptodudez/after_run": run.run_id})
