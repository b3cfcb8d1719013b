"""The run-status sensors read an ingest run's table changes the same way.

A stand-in ingest job (the real job's name, materialisations shaped like the lake's) feeds
the three sensors that follow ingest: each skips other jobs and runs that changed none of
its tables, and requests a run when one of its tables changed.
"""

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import dagster as dg
import pytest

from cryptodudez.definitions import build_definitions
from cryptodudez.jobs import INGEST_JOB
from cryptodudez.resources import build_resources
from cryptodudez.resources.lake import Lake
from cryptodudez.sensors.changes import changes_of, skip_unless_ingest
from cryptodudez.sensors.feature_store import feature_store_sensor
from cryptodudez.sensors.mood import mood_sensor
from cryptodudez.sensors.stock_pipeline import stock_pipeline_sensor
from cryptodudez.settings import Settings
from tests.conftest import SAMPLES
from tests.helpers import land_and_ingest

# Its tests stay on one xdist worker (./run test uses --dist loadgroup), so the module's
# lakes are built once.
pytestmark = pytest.mark.xdist_group("sensor_changes")


def _run_of(instance: dg.DagsterInstance, job_name: str,
            changed: dict[str, dict[str, Any]]) -> dg.DagsterRun:
    @dg.op
    def land(context: dg.OpExecutionContext) -> None:
        for table, meta in changed.items():
            context.log_event(dg.AssetMaterialization(asset_key=table, metadata=meta))

    @dg.job(name=job_name)
    def job() -> None:
        land()

    result = job.execute_in_process(instance=instance)
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    return run


def _ask(sensor: Any, instance: dg.DagsterInstance, run: dg.DagsterRun, lake: Lake) -> Any:
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_instance=instance, dagster_run=run,
        dagster_event=instance.get_records_for_run(run.run_id).records[-1].event_log_entry
        .dagster_event,  # type: ignore[arg-type]
        resources={"lake": lake})
    return sensor(context)


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Lake]:
    """A lake holding the feature store's inputs (coin prices and tweets), and an empty one."""
    root = tmp_path_factory.mktemp("lakes")
    full = Settings(lake=str(root / "full"), dagster_home=str(root / "dh"))
    with dg.instance_for_test() as instance:
        land_and_ingest(build_definitions(full), instance, {
            f"samples/{name}": SAMPLES / name
            for name in ("cryptocurrency_sample.zip", "elon_musk_tweets_sample.zip")})
    empty = Settings(lake=str(root / "empty"), dagster_home=str(root / "dh"))
    return {"full": build_resources(full)["lake"], "empty": build_resources(empty)["lake"]}


ROWS = {"dagster/row_count": 10, "date_min": "2021-03-01", "date_max": "2021-03-02"}
SENSORS: dict[str, tuple[Any, Callable[[Mapping[str, str]], bool]]] = {
    "coin_trades": (mood_sensor, lambda tags: tags["cryptodudez/changed"] == "coin_trades"),
    "stock_prices": (stock_pipeline_sensor,
                     lambda tags: tags["dagster/asset_partition_range_start"] == "2021"),
    "tweets": (feature_store_sensor,
               lambda tags: tags["dagster/asset_partition_range_start"] == "2021"),
}


@pytest.fixture(scope="module")
def runs() -> Iterator[tuple[dg.DagsterInstance, dict[str, dg.DagsterRun]]]:
    """One instance: an ingest run changing every sensor's table, and the runs to skip."""
    with dg.instance_for_test() as instance:
        yield instance, {
            "changed": _run_of(instance, INGEST_JOB, dict.fromkeys(SENSORS, ROWS)),
            "other_table": _run_of(instance, INGEST_JOB, {"unrelated_table": ROWS}),
            "unchanged": _run_of(instance, INGEST_JOB, {
                table: {**ROWS, "unchanged": True} for table in SENSORS}),
            "not_ingest": _run_of(instance, "some_other_job", dict.fromkeys(SENSORS, ROWS)),
        }


@pytest.mark.parametrize("table", sorted(SENSORS))
def test_each_sensor_requests_after_its_table_changed_and_skips_otherwise(
        table: str, runs: tuple[dg.DagsterInstance, dict[str, dg.DagsterRun]],
        lakes: dict[str, Lake]) -> None:
    sensor, tags_ok = SENSORS[table]
    instance, by_kind = runs
    request = _ask(sensor, instance, by_kind["changed"], lakes["full"])
    assert isinstance(request, dg.RunRequest), request
    assert tags_ok(request.tags), request.tags
    assert request.tags["cryptodudez/after_run"] == by_kind["changed"].run_id
    assert isinstance(_ask(sensor, instance, by_kind["other_table"], lakes["full"]), dg.SkipReason)
    assert isinstance(_ask(sensor, instance, by_kind["unchanged"], lakes["full"]), dg.SkipReason)
    skip = _ask(sensor, instance, by_kind["not_ingest"], lakes["full"])
    assert isinstance(skip, dg.SkipReason)
    assert "some_other_job is not an ingest run" in (skip.skip_message or "")


def test_a_sensor_ignores_the_tables_of_the_others(
        runs: tuple[dg.DagsterInstance, dict[str, dg.DagsterRun]],
        lakes: dict[str, Lake]) -> None:
    instance, _ = runs
    only_tweets, full = _run_of(instance, INGEST_JOB, {"tweets": ROWS}), lakes["full"]
    assert isinstance(_ask(mood_sensor, instance, only_tweets, full), dg.SkipReason)
    assert isinstance(_ask(stock_pipeline_sensor, instance, only_tweets, full), dg.SkipReason)
    assert isinstance(_ask(feature_store_sensor, instance, only_tweets, full), dg.RunRequest)


def test_the_feature_store_waits_for_coin_prices_and_tweets(
        runs: tuple[dg.DagsterInstance, dict[str, dg.DagsterRun]],
        lakes: dict[str, Lake]) -> None:
    instance, _ = runs
    only_stocks = _run_of(instance, INGEST_JOB, {"stock_prices": ROWS})
    full = lakes["full"]
    assert isinstance(_ask(feature_store_sensor, instance, only_stocks, full), dg.RunRequest)
    skip = _ask(feature_store_sensor, instance, only_stocks, lakes["empty"])
    assert isinstance(skip, dg.SkipReason)
    assert "needs crypto_prices, tweets" in (skip.skip_message or "")


def test_changes_of_keeps_only_the_named_tables_and_skip_names_the_job() -> None:
    with dg.instance_for_test() as instance:
        run = _run_of(instance, INGEST_JOB, {
            "tweets": ROWS, "coin_trades": {"dagster/row_count": 0, "rows_superseded": 3},
            "stock_prices": {"dagster/row_count": 0}})
        assert skip_unless_ingest(run) is None
        found = changes_of(instance, run.run_id, {"coin_trades", "stock_prices"})
        assert [(c.table, c.superseded) for c in found] == [("coin_trades", True)]
        assert changes_of(instance, run.run_id, set()) == []
