"""The composition root: the one ``dg.Definitions`` of the platform."""

import dagster as dg

from cryptodudez.assets import events as event_assets
from cryptodudez.assets import lake as lake_assets
from cryptodudez.assets import stocks
from cryptodudez.jobs import (
    event_daily_job,
    event_daily_schedule,
    event_ingest_job,
    ingest_job,
    stock_pipeline_job,
)
from cryptodudez.resources import build_resources
from cryptodudez.sensors.landing import landing_sensor
from cryptodudez.sensors.stock_pipeline import stock_pipeline_sensor
from cryptodudez.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Definitions wired to the resource set ``settings`` selects."""
    return dg.Definitions(
        assets=[lake_assets.lake_ingest, stocks.stock_features, stocks.volume_model,
                event_assets.events, event_assets.events_compacted, event_assets.event_kpis],
        jobs=[ingest_job, stock_pipeline_job, event_ingest_job, event_daily_job],
        sensors=[landing_sensor, stock_pipeline_sensor],
        schedules=[event_daily_schedule],
        resources=build_resources(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Definitions for the environment (read here, at load time, never at import)."""
    return build_definitions(Settings.from_env())
