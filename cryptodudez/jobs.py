"""The platform's jobs."""

import dagster as dg

from cryptodudez.assets import lake as lake_assets
from cryptodudez.assets import stocks

INGEST_JOB = "ingest_landed_file"
STOCK_PIPELINE_JOB = "stock_pipeline"

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(lake_assets.lake_ingest),
    partitions_def=lake_assets.landed_files,
    description="Catalogue, validate and convert one landed file.",
)

stock_pipeline_job = dg.define_asset_job(
    STOCK_PIPELINE_JOB,
    selection=dg.AssetSelection.assets(stocks.stock_features, stocks.volume_model),
    partitions_def=stocks.stock_years,
    description="Recompute stock features for a range of years, then retrain the volume model.",
)
