"""The platform's jobs."""

from datetime import timedelta

import dagster as dg

from cryptodudez.assets import eth, mood, stocks
from cryptodudez.assets import events as event_assets
from cryptodudez.assets import lake as lake_assets

INGEST_JOB = "ingest_landed_file"
STOCK_PIPELINE_JOB = "stock_pipeline"
EVENT_INGEST_JOB = "ingest_event_file"
EVENT_DAILY_JOB = "event_daily"
FEATURE_STORE_JOB = "feature_store"
ETH_MODEL_JOB = "eth_model"
MOOD_JOB = "mood"

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

event_ingest_job = dg.define_asset_job(
    EVENT_INGEST_JOB,
    selection=dg.AssetSelection.assets(event_assets.events),
    partitions_def=event_assets.event_files,
    description="Validate, deduplicate and publish one landed events file.",
)

event_daily_job = dg.define_asset_job(
    EVENT_DAILY_JOB,
    selection=dg.AssetSelection.assets(event_assets.events_compacted, event_assets.event_kpis),
    partitions_def=event_assets.event_days,
    description="Compact one UTC day of events, then compute its KPIs.",
)

@dg.schedule(name="event_daily_schedule", job=event_daily_job, cron_schedule="30 1 * * *",
             execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)
def event_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """At 01:30 UTC, the day before: compacted and counted once it is over.

    Not ``build_schedule_from_partitioned_job``: the days end one day ahead (``end_offset``
    1, so today's partial day can be run by hand), and that schedule asks for the last
    partition, today's 90 minutes, and never for yesterday (a review, session 23).
    """
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=day, partition_key=day)

feature_store_job = dg.define_asset_job(
    FEATURE_STORE_JOB,
    selection=dg.AssetSelection.assets(eth.tweet_daily, eth.market_daily, eth.eth_features,
                                       eth.eth_market_asof),
    partitions_def=eth.feature_years,
    description="Recompute the feature views and the ETH spine tables for a range of days.",
)

eth_model_job = dg.define_asset_job(
    ETH_MODEL_JOB,
    selection=dg.AssetSelection.assets(eth.eth_training_set, eth.eth_online_features,
                                       eth.eth_signal),
    description="Snapshot a training set, refresh the online row, evaluate and publish the "
                "ETH signal.",
)

mood_job = dg.define_asset_job(
    MOOD_JOB,
    selection=dg.AssetSelection.assets(mood.mood_correlation),
    description="Correlate each coin's bucketed returns with tweet sentiment into the warehouse.",
)
