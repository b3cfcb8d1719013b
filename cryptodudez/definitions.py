"""The composition root: the one ``dg.Definitions`` of the platform."""

import dagster as dg

from cryptodudez.assets import eth, mood, stocks
from cryptodudez.assets import events as event_assets
from cryptodudez.assets import lake as lake_assets
from cryptodudez.assets.coingecko import bitcoin_prices, coingecko_job, coingecko_schedule
from cryptodudez.jobs import (
    eth_model_job,
    event_daily_job,
    event_daily_schedule,
    event_ingest_job,
    feature_store_job,
    ingest_job,
    mood_job,
    stock_pipeline_job,
)
from cryptodudez.resources import build_resources
from cryptodudez.sensors.feature_store import eth_model_sensor, feature_store_sensor
from cryptodudez.sensors.landing import landing_sensor
from cryptodudez.sensors.mood import mood_sensor
from cryptodudez.sensors.stock_pipeline import stock_pipeline_sensor
from cryptodudez.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Definitions wired to the resource set ``settings`` selects."""
    return dg.Definitions(
        assets=[lake_assets.lake_ingest, stocks.stock_features, stocks.volume_model,
                event_assets.events, event_assets.events_compacted, event_assets.event_kpis,
                eth.tweet_daily, eth.market_daily, eth.eth_features, eth.eth_market_asof,
                eth.eth_training_set, eth.eth_online_features, eth.eth_signal,
                mood.mood_correlation, bitcoin_prices],
        jobs=[ingest_job, stock_pipeline_job, event_ingest_job, event_daily_job,
              feature_store_job, eth_model_job, mood_job, coingecko_job],
        sensors=[landing_sensor, stock_pipeline_sensor, feature_store_sensor,
                 eth_model_sensor, mood_sensor],
        schedules=[event_daily_schedule, coingecko_schedule],
        resources=build_resources(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Definitions for the environment (read here, at load time, never at import)."""
    return build_definitions(Settings.from_env())
