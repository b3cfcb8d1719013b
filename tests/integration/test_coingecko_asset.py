"""The ``bitcoin_prices`` asset, its job, schedule and CLI command, offline and in process.

A temporary warehouse, the offline CoinGecko twin over the shipped recording and an
ephemeral Dagster instance; a range is one run, as a backfill of it would be.
"""

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from cryptodudez.assets.coingecko import (
    BITCOIN_PRICES,
    COINGECKO_JOB,
    bitcoin_prices,
    coingecko_job,
    coingecko_schedule,
)
from cryptodudez.coingecko import job
from cryptodudez.coingecko.cli_command import run_coingecko_cli
from cryptodudez.coingecko.prices import MOVING_AVERAGE_TABLE, PRICES_TABLE
from cryptodudez.resources import build_resources
from cryptodudez.resources.coingecko import OfflineCoinGecko
from cryptodudez.resources.warehouse import Warehouse
from cryptodudez.settings import Settings

CHECKS = {"bitcoin_prices_rows_accounted", "bitcoin_prices_moving_average_matches_sql",
          "bitcoin_prices_within_request_window"}


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(path=str(tmp_path / "warehouse.duckdb"))


def materialize(instance: dg.DagsterInstance, warehouse: Warehouse, first: str,
                last: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [bitcoin_prices], instance=instance, raise_on_error=False,
        resources={"coingecko": OfflineCoinGecko(), "warehouse": warehouse},
        tags={"dagster/asset_partition_range_start": first,
              "dagster/asset_partition_range_end": last})


def tables(warehouse: Warehouse) -> dict[str, list[tuple[object, ...]]]:
    with warehouse.reading() as con:
        return {name: con.execute(f"SELECT * FROM {name} ORDER BY coin, currency, day")
                .fetchall() for name in (PRICES_TABLE, MOVING_AVERAGE_TABLE)}


def run_summary(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    mats = result.asset_materializations_for_node(BITCOIN_PRICES)
    return {k: v.value for k, v in mats[-1].metadata.items()}


def test_a_q1_range_is_one_run_storing_every_day_with_golden_averages(
        instance: dg.DagsterInstance, warehouse: Warehouse) -> None:
    result = materialize(instance, warehouse, "2022-01-01", "2022-03-31")
    assert result.success
    mats = result.asset_materializations_for_node(BITCOIN_PRICES)
    assert [m.partition for m in (mats[0], mats[-1])] == ["2022-01-01", "2022-03-31"]
    assert len(mats) == 90
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == dict.fromkeys(
        CHECKS, True)
    summary = run_summary(result)
    assert summary["first_trailing_mean"] == "2022-01-05: 46798.42"
    assert summary["warmup_days_absent"] == "2021-12-28, 2021-12-29, 2021-12-30, 2021-12-31"
    assert summary["request_window"] == "2022-01-01T00:00:00+00:00..2022-03-31T23:59:59+00:00"
    assert (summary["prices_served"], summary["prices_changed"]) == (90, 90)
    assert str(summary["chart"]).startswith("![Bitcoin price and trailing 5-day mean]"
                                            "(data:image/png;base64,iVBORw0KGgo")
    stored = tables(warehouse)
    assert len(stored[PRICES_TABLE]) == len(stored[MOVING_AVERAGE_TABLE]) == 90
    jan_5 = stored[MOVING_AVERAGE_TABLE][4]
    assert jan_5[2] == date(2022, 1, 5) and round(jan_5[4], 2) == 46_798.42  # type: ignore[call-overload]


def test_rerunning_gives_identical_tables(instance: dg.DagsterInstance,
                                          warehouse: Warehouse) -> None:
    assert materialize(instance, warehouse, "2022-01-01", "2022-03-31").success
    first = tables(warehouse)
    again = materialize(instance, warehouse, "2022-01-01", "2022-03-31")
    assert again.success and run_summary(again)["prices_changed"] == 0
    assert tables(warehouse) == first  # fetched_at included: an unchanged price keeps its row
    one_day = materialize(instance, warehouse, "2022-02-14", "2022-02-14")
    assert one_day.success and tables(warehouse) == first


def test_a_planted_moving_average_bug_fails_its_blocking_check(
        instance: dg.DagsterInstance, warehouse: Warehouse,
        monkeypatch: pytest.MonkeyPatch) -> None:
    honest = job.moving_average

    def off_by_one_day(prices: pl.DataFrame) -> pl.DataFrame:
        frame = honest(prices)
        wrong = pl.when(pl.col("day") == date(2022, 1, 8)).then(pl.col("ma_5d_trailing") * 1.01)
        return frame.with_columns(wrong.otherwise(pl.col("ma_5d_trailing"))
                                  .alias("ma_5d_trailing"))

    monkeypatch.setattr(job, "moving_average", off_by_one_day)
    result = materialize(instance, warehouse, "2022-01-01", "2022-01-15")
    assert not result.success
    verdicts = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {name: e.passed for name, e in verdicts.items()} == {
        **dict.fromkeys(CHECKS, True), "bitcoin_prices_moving_average_matches_sql": False}
    failed = verdicts["bitcoin_prices_moving_average_matches_sql"].metadata
    assert failed["failing_rows"].value == 1
    assert "2022-01-08" in str(failed["sample"].value)


def test_the_job_and_daily_schedule_load_with_the_platform_resources(
        tmp_path: Path) -> None:
    settings = Settings(lake=str(tmp_path / "lake"))
    defs = dg.Definitions(assets=[bitcoin_prices], jobs=[coingecko_job],
                          schedules=[coingecko_schedule], resources=build_resources(settings))
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def(COINGECKO_JOB).partitions_def == bitcoin_prices.partitions_def
    schedule = defs.resolve_schedule_def(coingecko_schedule.name)
    assert (schedule.name, schedule.cron_schedule, schedule.execution_timezone) == (
        "coingecko_prices_schedule", "0 1 * * *", "UTC")
    assert schedule.job_name == COINGECKO_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert bitcoin_prices.backfill_policy == dg.BackfillPolicy.single_run()


def cli_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[bitcoin_prices], jobs=[coingecko_job],
                          resources=build_resources(settings))


def test_the_cli_runs_the_range_as_one_recorded_run(
        tmp_path: Path, instance: dg.DagsterInstance,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dagster"))
    code = run_coingecko_cli(settings, "bitcoin", "2022-01-01", "2022-03-31",
                             instance=instance, definitions=cli_defs(settings))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "first trailing mean: 2022-01-05: 46798.42" in out
    assert "warmup days absent: 2021-12-28, 2021-12-29, 2021-12-30, 2021-12-31" in out
    assert re.search(r"check bitcoin_prices_moving_average_matches_sql: passed", out)
    runs = instance.get_runs()
    assert [r.job_name for r in runs] == [COINGECKO_JOB]
    assert runs[0].tags["dagster/asset_partition_range_end"] == "2022-03-31"
    with duckdb.connect(settings.warehouse_path, read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM {PRICES_TABLE}").fetchone() == (90,)


def test_the_cli_reports_a_range_the_source_cannot_serve_in_one_line(
        tmp_path: Path, instance: dg.DagsterInstance,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dagster"))
    code = run_coingecko_cli(settings, "bitcoin", "2022-03-20", "2022-04-05",
                             instance=instance, definitions=cli_defs(settings))
    out = capsys.readouterr().out
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("  error: ")]
    assert len(errors) == 1 and "CoinGeckoPlanError" in errors[0]
    assert "beyond the history" in errors[0]
    with pytest.raises(ValueError, match="no price asset"):
        run_coingecko_cli(settings, "btc", "2022-01-01", "2022-01-02", instance=instance,
                          definitions=cli_defs(settings))
