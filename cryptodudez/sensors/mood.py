"""The mood sensor: recompute the correlation results after trades or sentiments change."""

import dagster as dg

from cryptodudez.assets.mood import SENTIMENTS, TRADES
from cryptodudez.jobs import INGEST_JOB, ingest_job, mood_job
from cryptodudez.sensors.changes import table_changes


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
    if run.job_name != INGEST_JOB:
        return dg.SkipReason(f"{run.job_name} is not an ingest run")
    changed = sorted({c.table for c in table_changes(context.instance, run.run_id)}
                     & {TRADES, SENTIMENTS})
    if not changed:
        return dg.SkipReason("the ingest run changed no trades or sentiments")
    return dg.RunRequest(run_key=f"mood:{run.run_id}",
                         tags={"cryptodudez/after_run": run.run_id,
                               "cryptodudez/changed": ",".join(changed)})
