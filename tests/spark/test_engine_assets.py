"""``CRYPTODUDEZ_ENGINE=spark`` runs the same assets and checks through the Spark twins.

The event day's compaction, the daily tweet features and the stock features are
materialised through Dagster with each engine on the bundled samples: the checks pass with
both, the outputs are equal, and the Spark run really ran Spark jobs (the polars run none).
The stock features' engine is chosen per asset, in the run config.
"""

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pyspark.sql import SparkSession

from cryptodudez.assets import eth, stocks
from cryptodudez.definitions import build_definitions
from cryptodudez.jobs import EVENT_DAILY_JOB, EVENT_INGEST_JOB
from cryptodudez.lake.event_table import EventTable
from cryptodudez.lake.layout import partition_key_for
from cryptodudez.resources.lake import FEATURES, VALIDATED, Lake
from cryptodudez.settings import PROJECT_DIR, Settings
from tests.helpers import QUIET, land_and_ingest

pytestmark = pytest.mark.xdist_group("spark")
SAMPLES = PROJECT_DIR / "samples"
Engine = Literal["polars", "spark"]
ENGINES: tuple[Engine, ...] = ("polars", "spark")
DAY = date(2026, 10, 31)
TWEET_DAILY_CHECKS = ("tweet_daily_schema", "tweet_daily_every_day_present",
                      "tweet_daily_matches_sql_recount")


def _spark_jobs(spark: SparkSession) -> int:
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup())


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _settings(root: Path, engine: Engine) -> Settings:
    return Settings(lake=str(root / "lake"), dagster_home=str(root / "dh"), engine=engine)


def test_event_compaction_through_the_spark_engine(spark: SparkSession, tmp_path: Path) -> None:
    """The sample ingested once, the lake copied, and a day of each copy compacted by one engine.

    Two copies, because a day already compacted is left alone: compacting one lake's day
    with polars and then with Spark would run no Spark job. The day is the sample's second
    (22 events in 20 type-hours): Spark's writer costs tens of milliseconds per output file,
    and the busiest day has 2,093 of them. Larger days are compared in
    test_event_compaction_parity.py.
    """
    key = "events/events_sample.jsonl.gz"
    first = Lake(uri=_settings(tmp_path / "polars", "polars").lake)
    first.land(SAMPLES / "events_sample.jsonl.gz", key)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("event_files", [partition_key_for(key)])
        ingest = build_definitions(_settings(tmp_path / "polars", "polars")).resolve_job_def(
            EVENT_INGEST_JOB).execute_in_process(partition_key=partition_key_for(key),
                                                 instance=instance, run_config=QUIET)
    assert ingest.success
    assert EventTable(first.storage).files().filter(pl.col("date") == DAY)["rows"].sum() == 22
    shutil.copytree(tmp_path / "polars" / "lake", tmp_path / "spark" / "lake")  # same lineage
    out: dict[str, dict[str, Any]] = {}
    for engine in ENGINES:
        settings = _settings(tmp_path / engine, engine)
        lake = Lake(uri=settings.lake)
        table = EventTable(lake.storage)
        with dg.instance_for_test() as instance:
            before = _spark_jobs(spark)
            daily = build_definitions(settings).resolve_job_def(
                EVENT_DAILY_JOB).execute_in_process(partition_key=DAY.isoformat(),
                                                    instance=instance, run_config=QUIET,
                                                    raise_on_error=False)
            files = table.files().filter(pl.col("date") == DAY)
            kpis = Path(lake.path("kpis", "events", f"date={DAY}.json")).read_text()
            out[engine] = {
                "success": daily.success, "checks": _checks(daily),
                "ran": _spark_jobs(spark) - before, "files": files.height,
                "partitions": files.select("event_type", "hour").n_unique(),
                "rows": pl.scan_delta(table.uri).filter(pl.col("date") == DAY).collect(),
                "totals": json.loads(kpis)["totals"]}
    for engine, got in out.items():
        assert got["success"], engine
        assert got["checks"] == {"events_compacted_rows_kept": True,
                                 "events_compacted_schema_conforms": True}, engine
        assert got["files"] == got["partitions"], f"{engine}: one file per (type, hour)"
    assert out["polars"]["ran"] == 0
    assert out["spark"]["ran"] > 0, "the spark engine ran no Spark job"
    assert out["polars"]["rows"].height == 22
    assert_frame_equal(out["polars"]["rows"], out["spark"]["rows"])  # same rows, same order
    assert out["polars"]["totals"] == out["spark"]["totals"]


def test_tweet_daily_through_the_spark_engine(spark: SparkSession, tmp_path: Path) -> None:
    """One lake: the sample's latest year materialised by polars, then by Spark."""
    written: dict[str, pl.DataFrame] = {}
    with dg.instance_for_test() as instance:
        defs = build_definitions(_settings(tmp_path, "polars"))
        lake = Lake(uri=_settings(tmp_path, "polars").lake)
        ingests = land_and_ingest(defs, instance, {
            "samples/elon_musk_tweets_sample.zip": SAMPLES / "elon_musk_tweets_sample.zip"})
        assert all(r.success for r in ingests.values())
        latest = lake.read_table(VALIDATED, "tweets")["created_at"].max()
        assert isinstance(latest, datetime)
        year = str(latest.astimezone(UTC).year)
        for engine in ENGINES:
            before = _spark_jobs(spark)
            result = dg.materialize(
                [eth.tweet_daily], instance=instance, partition_key=year, run_config=QUIET,
                resources=build_definitions(_settings(tmp_path, engine)).resources,
                raise_on_error=False)
            ran = _spark_jobs(spark) - before
            assert result.success, engine
            checks = _checks(result)
            assert checks == dict.fromkeys(TWEET_DAILY_CHECKS, True), (engine, checks)
            assert (ran > 0) is (engine == "spark"), (engine, ran)
            frame = lake.read_table(FEATURES, eth.TWEET_DAILY)
            assert frame.height > 300 and frame["tweets"].sum() > 0, engine
            written[engine] = frame.sort("date")
    assert_frame_equal(written["polars"], written["spark"])


STOCK_FEATURE_CHECKS = ("stock_features_nulls_are_first_29_rows",
                        "stock_features_match_independent_recomputation",
                        "stock_features_one_row_per_validated_bar")


def test_stock_features_through_the_spark_engine_chosen_per_asset(spark: SparkSession,
                                                                 tmp_path: Path) -> None:
    """The resource says polars for every asset; the run config says which engine computes
    ``stock_features`` alone (``engines``), for the sample's latest year.

    ``spark-job`` runs the job entry point in a child process (its own Spark, through Dagster
    Pipes, as on EMR Serverless): no job runs in this process's session, and its file holds
    the polars rows in (Symbol, Date) order.
    """
    settings = _settings(tmp_path, "polars")
    lake = Lake(uri=settings.lake)
    written: dict[str, pl.DataFrame] = {}
    with dg.instance_for_test() as instance:
        defs = build_definitions(settings)
        ingests = land_and_ingest(defs, instance, {
            "samples/stock_market_sample.zip": SAMPLES / "stock_market_sample.zip"})
        assert all(r.success for r in ingests.values())
        year = str(lake.read_table(VALIDATED, "stock_prices")["Date"].max())[:4]
        for engine in (*ENGINES, "spark-job"):
            before = _spark_jobs(spark)
            result = dg.materialize(
                [stocks.stock_features], instance=instance, partition_key=year,
                run_config={**QUIET, "resources": {"compute": {"config": {
                    "engines": {"stock_features": engine}}}}},
                resources=defs.resources, raise_on_error=False)
            ran = _spark_jobs(spark) - before
            assert result.success, engine
            assert _checks(result) == dict.fromkeys(STOCK_FEATURE_CHECKS, True), engine
            assert (ran > 0) is (engine == "spark"), (engine, ran)
            written[engine] = pl.read_parquet(stocks.feature_path(lake, year))
    assert written["polars"].height > 100
    assert_frame_equal(written["polars"], written["spark"])
    assert_frame_equal(written["polars"].sort("Symbol", "Date"), written["spark-job"])
    assert not lake.fs.exists(lake.path("features", "stock_features", ".jobs"))  # cleaned up
