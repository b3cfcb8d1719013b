"""The ``bitcoin_prices`` asset, its job, schedule and CLI command, offline and in process.

A temporary warehouse, the offline CoinGecko twin over the shipped recording and an
ephemeral Dagster instance; a range is one run, as a backfill of it would be.
"""

import os
import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from cryptodudez import cli
from cryptodudez.assets.coingecko import (
    BITCOIN_PRICES,
    COINGECKO_JOB,
    bitcoin_prices,
    coingecko_job,
    coingecko_schedule,
)
from cryptodudez.coingecko import job
from cryptodudez.coingecko.cli_command import run_coingecko_cli
from cryptodudez.coingecko.prices import MOVING_AVERAGE_TABLE, PRICES_TABLE, CoinRef, PricePoint
from cryptodudez.resources import build_resources
from cryptodudez.resources.coingecko import CoinGecko, OfflineCoinGecko
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


def test_a_reversed_day_range_is_refused_naming_it(instance: dg.DagsterInstance,
                                                   warehouse: Warehouse) -> None:
    """Dagster accepts 2022-03-31...2022-01-01: it was the request builder's ValueError with a
    stack trace (QA); the CLI refused it in one line."""
    result = materialize(instance, warehouse, "2022-03-31", "2022-01-01")
    assert not result.success
    [failure] = result.get_step_failure_events()
    data = failure.step_failure_data
    assert data.user_failure_data is not None
    assert data.user_failure_data.description == (
        "the day range 2022-03-31...2022-01-01 is reversed: ask for 2022-01-01...2022-03-31")
    assert not Path(warehouse.path).exists()  # refused before the warehouse was opened


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


class Unknown(CoinGecko):
    """A source whose coverage is not known before asking (as the live API's): the recording
    behind it, but not an ``OfflineCoinGecko`` the CLI could check up front."""

    def __init__(self) -> None:
        self.recording = OfflineCoinGecko()

    def coins_list(self) -> list[CoinRef]:
        return self.recording.coins_list()

    def market_chart_range(self, coin_id: str, vs_currency: str, start: datetime,
                           end: datetime, *, interval: str | None = "daily") -> list[PricePoint]:
        return self.recording.market_chart_range(coin_id, vs_currency, start, end,
                                                 interval=interval)


def test_the_cli_reports_a_range_the_source_cannot_serve_in_one_line(
        tmp_path: Path, instance: dg.DagsterInstance,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dagster"))
    defs = dg.Definitions(assets=[bitcoin_prices], jobs=[coingecko_job],
                          resources={**build_resources(settings), "coingecko": Unknown()})
    code = run_coingecko_cli(settings, "bitcoin", "2022-03-20", "2022-04-05",
                             instance=instance, definitions=defs)
    out = capsys.readouterr().out
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("  error: ")]
    assert len(errors) == 1 and "CoinGeckoPlanError" in errors[0]
    assert "beyond the history" in errors[0]
    with pytest.raises(ValueError, match="no price asset"):
        run_coingecko_cli(settings, "btc", "2022-01-01", "2022-01-02", instance=instance,
                          definitions=cli_defs(settings))


def test_the_cli_refuses_days_the_offline_recording_does_not_cover_before_any_run(
        tmp_path: Path, instance: dg.DagsterInstance) -> None:
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dagster"))
    assert OfflineCoinGecko().recorded_days() == (date(2022, 1, 1), date(2022, 4, 2))
    for first, last in (("2023-01-01", "2023-01-05"), ("2022-03-20", "2022-04-03")):
        with pytest.raises(ValueError, match=rf"--from {first} --to {last}: the offline "
                           r"CoinGecko recording .* covers 2022-01-01\.\.2022-04-02 only"):
            run_coingecko_cli(settings, "bitcoin", first, last, instance=instance,
                              definitions=cli_defs(settings))
    assert instance.get_runs() == []


RECORDINGS = {"empty.csv": "", "columns.csv": "day,price\n2022-01-01,46319.6\n",
              "header.csv": "timestamp_ms,price_usd\n",
              "blank.csv": "timestamp_ms,price_usd\n1640995200000,\n",
              # they passed the check before a run and failed inside it (inf, nan: msgspec's
              # "Expected `float`, got `null`", naming no file or day) or after the fetch (QA)
              **{f"{name}.csv": "timestamp_ms,price_usd\n" + "".join(
                  f"{1640995200000 + d * 86_400_000},{price if d == 1 else 46319.6 + d}\n"
                  for d in range(7))  # 2022-01-01..07, covering the days asked for
                 for name, price in (("inf", "inf"), ("nan", "NaN"), ("minus-inf", "-inf"),
                                     ("zero", "0"), ("negative", "-1.5"))}}


@pytest.mark.parametrize(("recording", "said"), [
    ("absent.csv", "no recording at"),
    (".", "is a folder"),
    ("empty.csv", "empty.csv: empty CSV"),  # the advice first, then the path and polars' words
    ("columns.csv", "is not a CSV of timestamp_ms,price_usd"),
    ("header.csv", "holds no prices"),
    ("blank.csv", "has empty values"),
    *((f"{name}.csv", f"csv: line 3 (2022-01-02) has price {read}, not positive and finite")
      for name, read in (("inf", "inf"), ("nan", "nan"), ("minus-inf", "-inf"),
                         ("zero", "0.0"), ("negative", "-1.5"))),
])
def test_the_cli_refuses_an_unusable_recording_in_one_line_before_any_run(
        recording: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # a long path, as a CI's temporary folders give: the one line is cut at 400 characters,
    # and what to do about it must survive the cut
    folder = tmp_path / ("recordings-" * 8)
    folder.mkdir()
    for name, text in RECORDINGS.items():
        (folder / name).write_text(text)
    for var in [k for k in os.environ if k.startswith(("AWS_", "CRYPTODUDEZ_", "COINGECKO_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("COINGECKO_RECORDING", str(folder / recording))
    assert cli.main(["coingecko", "--from", "2022-01-01", "--to", "2022-01-05"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cryptodudez: error: CoinGecko (offline): ") and err.count("\n") == 1
    assert said in err and "COINGECKO_RECORDING" in err, err
    assert not (tmp_path / "dagster").exists(), "no run was recorded"
