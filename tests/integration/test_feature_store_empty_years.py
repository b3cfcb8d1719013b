"""The feature store on the bundled samples where the data is not: years, coins and files.

One lake for the module (the coin sample with ETH from 2015-08-08 to 2021-07-06, the tweet
sample up to 2021-12-30), its store built from the first year to 2021: a year before ETH,
a range of years after the data, a year file moved away, and a lake of coins without ETH.
"""

import shutil
import zipfile
from pathlib import Path

import dagster as dg
import pytest

from cryptodudez import commands
from cryptodudez.assets import eth
from cryptodudez.definitions import build_definitions
from cryptodudez.sensors.feature_store import feature_store_sensor
from cryptodudez.sensors.stock_pipeline import RANGE_END, RANGE_START
from cryptodudez.settings import Settings
from tests.conftest import SAMPLES
from tests.helpers import QUIET, land_and_ingest

# One lake for the module: its tests stay on one xdist worker (./run test uses loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("feature_store_empty_years")]

COINS, TWEETS = SAMPLES / "cryptocurrency_sample.zip", SAMPLES / "elon_musk_tweets_sample.zip"


class Store:
    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance = defs, instance
        self.lake = defs.resources["lake"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("empty_years")
    defs = build_definitions(Settings(lake=str(root / "lake"), dagster_home=str(root / "dh")))
    with dg.instance_for_test() as instance:
        ingests = land_and_ingest(defs, instance, {"samples/coins.zip": COINS,
                                                   "samples/tweets.zip": TWEETS})
        assert all(r.success for r in ingests.values())
        run = defs.resolve_job_def("feature_store").execute_in_process(
            instance=instance, run_config=QUIET, raise_on_error=False,
            tags={RANGE_START: eth.FIRST_YEAR, RANGE_END: "2021"})
        assert run.success
        yield Store(defs, instance)


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_year_before_eth_is_an_empty_partition_whose_checks_pass(built: Store) -> None:
    """2012: no ETH close yet. It crashed on a frame without columns (``"date" not found``)."""
    result = dg.materialize(
        [eth.eth_features, eth.eth_market_asof], partition_key="2012",
        resources=built.defs.resources, instance=built.instance, raise_on_error=False,
        selection=["eth_features", "eth_market_asof"])
    assert result.success
    checks = _evaluations(result)
    assert set(checks) == {"eth_features_spine_complete", "eth_features_schema",
                           "eth_features_no_lookahead", "eth_market_asof_schema"}
    assert all(c.passed for c in checks.values()), checks
    assert checks["eth_features_schema"].metadata["rows"].value == 0
    assert "ETH's closes run 2015-08-08..2021-07-06, outside 2012-01-01..2012-12-31" in (
        checks["eth_features_schema"].description or "")
    for event in result.get_asset_materialization_events():
        assert event.materialization.metadata["dagster/row_count"].value == 0
    assert not built.lake.exists(eth.year_path(built.lake, eth.ETH_FEATURES, "2012"))


def test_years_after_the_data_pass_alone_as_inside_a_range(built: Store) -> None:
    """2025-2026 alone failed 'no rows were written' while 2020-2026 passed."""
    for first in ("2025", "2020"):
        result = built.defs.resolve_job_def("feature_store").execute_in_process(
            instance=built.instance, run_config=QUIET, raise_on_error=False,
            tags={RANGE_START: first, RANGE_END: "2026"})
        checks = _evaluations(result)
        assert result.success, first
        assert len(checks) == 9 and all(c.passed for c in checks.values()), (first, checks)
        alone = first == "2025"
        for name in ("tweet_daily_schema", "market_daily_schema", "eth_features_schema",
                     "eth_market_asof_schema"):
            assert (checks[name].metadata["rows"].value == 0) is alone, (first, name)
    assert not built.lake.exists(eth.year_path(built.lake, eth.TWEET_DAILY, "2025"))


def test_a_missing_feature_year_is_named_not_called_irreproducible(
        built: Store, tmp_path: Path) -> None:
    """Moving year-2018 away failed eth_training_set_reproducible, naming no year."""
    path = Path(eth.year_path(built.lake, eth.ETH_FEATURES, "2018"))
    moved = tmp_path / path.name
    shutil.move(path, moved)
    try:
        result = built.defs.resolve_job_def("eth_model").execute_in_process(
            instance=built.instance, run_config=QUIET, raise_on_error=False,
            asset_selection=[dg.AssetKey(eth.ETH_TRAINING_SET)])
    finally:
        shutil.move(moved, path)
    assert not result.success
    failure = result.failure_data_for_node(eth.ETH_TRAINING_SET)
    assert failure is not None and failure.user_failure_data is not None
    message = failure.user_failure_data.description or ""
    assert f"2018 (365 days; {path} is absent)" in message, message
    assert "partition(s) 2018" in message
    assert "eth_training_set_reproducible" not in _evaluations(result)
    assert not built.lake.exists(eth.snapshot_folder(built.lake, "LATEST"))


def test_coins_without_eth_skip_the_feature_store_and_say_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only Bitcoin landed: ingest failed on ``"date" not found``; it is a skip, exit 0."""
    btc_only = tmp_path / "btc_only.zip"
    ada_only = tmp_path / "ada_only.zip"
    for path, coin in ((btc_only, "Bitcoin"), (ada_only, "Cardano")):
        with zipfile.ZipFile(COINS) as src, zipfile.ZipFile(path, "w") as out:
            member = f"cryptocurrency_historical_prices/coin_{coin}.csv"
            out.writestr(member, src.read(member))
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dh"))
    commands.land([btc_only, TWEETS], settings=settings, prefix="x")
    counts = commands.ingest(settings=settings)
    out = capsys.readouterr().out
    assert counts["failed"] == 0, out
    assert counts["feature_store_runs"] == 0
    assert "feature store: skipped, the lake holds no ETH prices in crypto_prices yet" in out
    lake = build_definitions(settings).resources["lake"]
    assert eth.missing_inputs(lake) == [eth.ETH_PRICES]
    # the sensor, after an ingest run that changed coin prices (another coin, still no ETH)
    with dg.instance_for_test() as instance:
        run = land_and_ingest(build_definitions(settings), instance,
                              {"x/ada_only.zip": ada_only})["x/ada_only.zip"]
        context = dg.build_run_status_sensor_context(
            sensor_name=feature_store_sensor.name, dagster_instance=instance,
            dagster_run=instance.get_run_by_id(run.run_id),  # type: ignore[arg-type]
            dagster_event=instance.get_records_for_run(run.run_id).records[-1]
            .event_log_entry.dagster_event,  # type: ignore[arg-type]
            resources={"lake": lake})
        skip = feature_store_sensor(context)
    assert isinstance(skip, dg.SkipReason)
    assert skip.skip_message == ("the feature store needs ETH prices in crypto_prices, "
                                 "which the lake does not hold yet")


def test_a_reversed_year_range_is_refused_naming_it(built: Store) -> None:
    """2021...2019 gave a window that ends before it starts: the year assets found no year
    to build (the stock features and CoinGecko were refused by copies of this check)."""
    result = dg.materialize(
        [eth.eth_features], resources=built.defs.resources, instance=built.instance,
        raise_on_error=False, selection=["eth_features"],
        tags={"dagster/asset_partition_range_start": "2021",
              "dagster/asset_partition_range_end": "2019"})
    assert not result.success
    [failure] = result.get_step_failure_events()
    data = failure.step_failure_data.user_failure_data
    assert data is not None
    assert data.description == "the year range 2021...2019 is reversed: ask for 2019...2021"
    assert not result.get_asset_materialization_events()
