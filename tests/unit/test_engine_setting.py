"""One setting chooses the engine per asset: ``CRYPTODUDEZ_ENGINE`` or the run config.

The asset names are written out here, not read from ``TWINS``: a renamed or forgotten
asset in the code must fail these tests.
"""

import sys
from datetime import date

import polars as pl
import pytest

from cryptodudez.definitions import build_definitions
from cryptodudez.resources.compute import Compute, PolarsEngine, SparkEngine
from cryptodudez.settings import Settings

TWINS = ("stock_features", "tweet_daily", "events_compacted")


@pytest.mark.parametrize(("text", "engine", "engines"), [
    ("polars", "polars", {}),
    ("spark", "spark", {}),
    ("stock_features=spark", "polars", {"stock_features": "spark"}),
    ("spark, events_compacted=polars", "spark", {"events_compacted": "polars"}),
    ("tweet_daily=spark,polars,events_compacted=spark", "polars",
     {"tweet_daily": "spark", "events_compacted": "spark"}),
])
def test_the_environment_names_a_default_and_per_asset_engines(text: str, engine: str,
                                                               engines: dict[str, str]) -> None:
    settings = Settings.from_env({"CRYPTODUDEZ_ENGINE": text})
    assert (settings.engine, dict(settings.engines)) == (engine, engines)
    assert isinstance(hash(settings), int)  # a frozen dataclass holding a dict stays hashable
    compute = build_definitions(settings).resources["compute"]
    for asset in TWINS:
        assert compute.engine_of(asset) == engines.get(asset, engine)


@pytest.mark.parametrize(("text", "says"), [
    ("Spark", "use polars or spark, optionally with asset=engine items"),
    ("polars,spark", "use polars or spark, optionally with asset=engine items"),
    ("", None),  # empty is the default
    ("stock_feature=spark", "'stock_feature' is no asset with a Spark twin; those are "
                            "stock_features, tweet_daily, events_compacted"),
    ("stock_features=duckdb", "stock_features='duckdb': use polars or spark"),
    ("tweet_daily=spark,tweet_daily=polars", "tweet_daily is given twice"),
    ("stock_features=", "stock_features='': use polars or spark"),
])
def test_a_bad_engine_setting_is_one_line_naming_it(text: str, says: str | None) -> None:
    if says is None:
        assert Settings.from_env({"CRYPTODUDEZ_ENGINE": text}).engine == "polars"
        return
    with pytest.raises(ValueError, match="CRYPTODUDEZ_ENGINE=") as caught:
        Settings.from_env({"CRYPTODUDEZ_ENGINE": text})
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_the_resource_hands_each_asset_its_engine() -> None:
    compute = Compute(engine="polars", engines={"stock_features": "spark"})
    assert isinstance(compute.chosen("stock_features"), SparkEngine)
    assert isinstance(compute.chosen("tweet_daily"), PolarsEngine)
    assert isinstance(Compute(engine="spark").chosen("events_compacted"), SparkEngine)
    with pytest.raises(ValueError, match="'stock' is no asset with a Spark twin"):
        Compute(engines={"stock": "spark"}).chosen("tweet_daily")
    with pytest.raises(ValueError, match="events_compacted='gpu': use polars or spark"):
        Compute(engines={"events_compacted": "gpu"}).chosen("events_compacted")


def test_every_asset_with_a_twin_asks_for_its_own_engine(tmp_path) -> None:
    """Each named asset exists and takes the compute resource (a rename would orphan its
    per-asset setting)."""
    defs = build_definitions(Settings(lake=str(tmp_path / "lake")))
    graph = defs.resolve_asset_graph()
    takes = {key.to_user_string() for key in graph.get_all_asset_keys()
             if "compute" in graph.get(key).assets_def.required_resource_keys}
    assert takes == set(TWINS)


def test_spark_without_its_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production image has no pyspark: engine spark there is one clear error."""
    for module in ("pyspark", "cryptodudez.spark.session", "cryptodudez.spark.stock_features",
                   "cryptodudez.spark.tweet_features", "cryptodudez.spark.event_compaction"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it fails, as without pyspark
    engine = Compute(engine="spark")
    says = r"engine spark needs the project.s spark extra .* `uv sync --extra spark`"
    with pytest.raises(RuntimeError, match=says):
        engine.chosen("tweet_daily").daily_tweet_features(
            pl.LazyFrame(), start=date(2021, 1, 1), end=date(2021, 1, 2), watermark=None)
    with pytest.raises(RuntimeError, match=says):
        list(engine.chosen("stock_features").stock_features_by_period(pl.LazyFrame(), []))
    with pytest.raises(RuntimeError, match=says):
        engine.chosen("events_compacted").day_writer()
