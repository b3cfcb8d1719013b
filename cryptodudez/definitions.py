"""The composition root: the one ``dg.Definitions`` of the platform."""

import dagster as dg

from cryptodudez.assets import lake as lake_assets
from cryptodudez.assets import stocks
from cryptodudez.resources import build_resources
from cryptodudez.sensors.landing import INGEST_JOB, landing_sensor
from cryptodudez.settings import Settings

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(lake_assets.lake_ingest),
    partitions_def=lake_assets.landed_files,
    description="Catalogue, validate and convert one landed file.",
)


stock_pipeline_job = dg.define_asset_job(
    "stock_pipeline",
    selection=dg.AssetSelection.assets(stocks.stock_features, stocks.volume_model),
    partitions_def=stocks.stock_years,
    description="Recompute stock features for a range of years, then retrain the volume model.",
)


def build_definitions(settings: Settings) -> dg.Definitions:
    """Definitions wired to the resource set ``settings`` selects."""
    return dg.Definitions(
        assets=[lake_assets.lake_ingest, stocks.stock_features, stocks.volume_model],
        jobs=[ingest_job, stock_pipeline_job],
        sensors=[landing_sensor],
        resources=build_resources(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Definitions for the environment (read here, at load time, never at import)."""
    return build_definitions(Settings.from_env())
