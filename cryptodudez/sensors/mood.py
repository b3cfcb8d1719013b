"""The mood sensor: recompute the correlation results after trades or sentiments change."""

import dagster as dg

from cryptodudez.assets.mood import SENTIMENTS, TRADES
from cryptodudez.jobs import ingest_job, mood_job
from cryptodudez.sensors.changes import changes_of, skip_unless_ingest


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_job],
    request_job=mood_job, default_status=dg.DefaultSensorStatus.RUNNING,
    name="mood_sensor",
    description="Recomputes the price / sentiment correlation results (default parameters) "
                "after an ingest run changed coin trades or tweet sentiments.",
)
def mood_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    """Request the mood job after an ingest run that changed its input tables."""
    run = context.dagster_run
    if skip := skip_unless_ingest(run):
        return skip
    changed = sorted({c.table for c in changes_of(context.instance, run.run_id,
                                                  {TRADES, SENTIMENTS})})
    if not changed:
        return dg.SkipReason("the ingest run changed no trades or sentiments")
    return dg.RunRequest(run_key=f"mood:{run.run_id}",
                         tags={"cryptodudez/after_run": run.run_id,
                               "cryptodudez/changed": ",".join(changed)})
