"""The CoinGecko price job without Dagster: golden averages, warm-up, reruns, audits, chart.

The golden values come from the shipped recording (samples/, 92 daily Bitcoin prices from
2022-01-01, the real CoinGecko answer); the rules are tested on small inline series.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cryptodudez.coingecko import job
from cryptodudez.coingecko.chart import moving_average_chart
from cryptodudez.coingecko.cli_command import parse_range
from cryptodudez.coingecko.prices import (
    DAY_MS,
    MOVING_AVERAGE_TABLE,
    PRICES_TABLE,
    TABLES_DDL,
    PricePoint,
    PriceValidationError,
)
from cryptodudez.resources.coingecko import (
    CoinGecko,
    CoinGeckoPlanError,
    OfflineCoinGecko,
)

Q1_FIRST, Q1_LAST = date(2022, 1, 1), date(2022, 3, 31)
FETCHED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
COIN, CURRENCY = "bitcoin", "usd"


def table(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[object, ...]]:
    """Every row of a table, every column, in key order."""
    return con.execute(f"SELECT * FROM {name} ORDER BY coin, currency, day").fetchall()


def run(con: duckdb.DuckDBPyConnection, coingecko: CoinGecko | None = None, *,
        first: date = Q1_FIRST, last: date = Q1_LAST,
        fetched_at: datetime = FETCHED) -> job.PriceRun:
    return job.run_prices(coingecko or OfflineCoinGecko(), con, coin=COIN, currency=CURRENCY,
                          first_day=first, last_day=last, fetched_at=fetched_at)


def recording(tmp_path: Path, first: date, prices: list[float]) -> Path:
    """A daily-price CSV in the recorded shape, from ``first``."""
    start_ms = int(datetime.combine(first, datetime.min.time(), UTC).timestamp() * 1000)
    path = tmp_path / "recording.csv"
    pl.DataFrame({"timestamp_ms": [start_ms + i * DAY_MS for i in range(len(prices))],
                  "price_usd": prices}).write_csv(path)
    return path


class Answering(OfflineCoinGecko):
    """The offline twin, with its answers bent by ``bend`` (a source misbehaving)."""

    def __init__(self, bend: Callable[[list[PricePoint]], list[PricePoint]]) -> None:
        super().__init__()
        self.bend = bend

    def market_chart_range(self, coin_id: str, vs_currency: str, start: datetime,
                           end: datetime, *, interval: str | None = "daily",
                           ) -> list[PricePoint]:
        return self.bend(super().market_chart_range(coin_id, vs_currency, start, end,
                                                    interval=interval))


class Refusing(OfflineCoinGecko):
    """Every range refused with CoinGecko's ``error_code``; counts the requests."""

    def __init__(self, error_code: int) -> None:
        super().__init__()
        self.error_code = error_code
        self.requests = 0

    def market_chart_range(self, coin_id: str, vs_currency: str, start: datetime,
                           end: datetime, *, interval: str | None = "daily",
                           ) -> list[PricePoint]:
        self.requests += 1
        raise CoinGeckoPlanError("refused", status_code=401, error_code=self.error_code)


# --- golden values of the shipped recording ----------------------------------------------------

def test_golden_trailing_means_of_q1_2022() -> None:
    con = duckdb.connect()
    result = run(con)
    averages = con.sql(f"SELECT day, price, ma_5d_trailing, ma_5d_window_count, ma_5d_centred "
                       f"FROM {MOVING_AVERAGE_TABLE} ORDER BY day").pl()
    assert averages.height == 90
    assert (averages["day"][0], averages["day"][-1]) == (Q1_FIRST, Q1_LAST)
    by_day = {r["day"]: r for r in averages.iter_rows(named=True)}
    golden = {date(2022, 1, 5): 46_798.42, date(2022, 1, 6): 46_263.92,
              date(2022, 1, 31): 37_643.04, date(2022, 2, 14): 42_992.00,
              date(2022, 2, 28): 38_389.12, date(2022, 3, 31): 46_548.69}
    assert {d: round(by_day[d]["ma_5d_trailing"], 2) for d in golden} == golden
    assert [by_day[date(2022, 1, d)]["ma_5d_trailing"] for d in range(1, 5)] == [None] * 4
    assert [by_day[date(2022, 1, d)]["ma_5d_window_count"] for d in range(1, 7)] == [
        1, 2, 3, 4, 5, 5]
    assert round(by_day[date(2022, 1, 3)]["ma_5d_centred"], 2) == 46_798.42
    assert (result.first_full_window, round(result.first_full_mean or 0, 2)) == (
        date(2022, 1, 5), 46_798.42)
    assert (result.served, result.changed, result.average_rows, result.days) == (90, 90, 90, 90)


# --- warm-up days --------------------------------------------------------------------------------

def test_warmup_days_the_recording_lacks_are_recorded_absent_not_filled() -> None:
    con = duckdb.connect()
    result = run(con)
    assert result.warmup_absent == tuple(date(2021, 12, d) for d in (28, 29, 30, 31))
    assert result.window_start == datetime(2022, 1, 1, tzinfo=UTC)
    assert result.window_end == datetime(2022, 3, 31, 23, 59, 59, tzinfo=UTC)
    stored = table(con, PRICES_TABLE)
    assert [r[2] for r in stored][:2] == [date(2022, 1, 1), date(2022, 1, 2)]
    assert {(r[4], r[5]) for r in stored} == {(result.window_start, result.window_end)}


def test_the_warmup_days_a_source_has_are_used_when_it_lacks_the_others() -> None:
    """From 2022-01-03 the recording has 01-01 and 01-02 of the four warm-up days; they were
    reported absent and the first trailing mean moved from 01-05 to 01-07 (a reviewer)."""
    con = duckdb.connect()
    result = run(con, first=date(2022, 1, 3), last=date(2022, 1, 31))
    assert result.warmup_absent == (date(2021, 12, 30), date(2021, 12, 31))
    assert result.window_start == datetime(2022, 1, 1, tzinfo=UTC)
    assert (result.first_full_window, round(result.first_full_mean or 0, 2)) == (
        date(2022, 1, 5), 46_798.42)  # as in the whole quarter's run


def test_warmup_days_a_source_serves_are_fetched_stored_and_fill_the_first_windows(
        tmp_path: Path) -> None:
    prices = [float(100 + i) for i in range(20)]  # 2021-12-25..2022-01-13
    source = OfflineCoinGecko(recording(tmp_path, date(2021, 12, 25), prices))
    con = duckdb.connect()
    result = run(con, source, first=date(2022, 1, 1), last=date(2022, 1, 10))
    assert result.warmup_absent == ()
    assert result.window_start == datetime(2021, 12, 28, tzinfo=UTC)
    assert result.served == 14
    assert (result.first_full_window, result.first_full_mean) == (date(2022, 1, 1), 105.0)
    assert con.execute(f"SELECT min(day), count(*) FROM {PRICES_TABLE}").fetchone() == (
        date(2021, 12, 28), 14)


def test_a_refusal_other_than_beyond_history_is_not_retried_without_warmup() -> None:
    source = Refusing(10005)
    with pytest.raises(CoinGeckoPlanError):
        run(duckdb.connect(), source)
    assert source.requests == 1


def test_beyond_history_for_the_reported_days_too_is_raised() -> None:
    source = Refusing(10012)
    with pytest.raises(CoinGeckoPlanError):
        run(duckdb.connect(), source)
    assert source.requests == 5  # 4, 3, 2, 1 warm-up days, then the reported days alone


@pytest.mark.parametrize(("bend", "reason"), [
    (lambda ps: ps[:10] + ps[11:], "missing: 2022-01-11"),
    (lambda ps: [*ps[:5], ps[4], *ps[5:]], "more than once"),
    (lambda ps: [PricePoint(p.timestamp_ms + 3_600_000, p.price) for p in ps], "00:00 UTC"),
    (lambda ps: list(reversed(ps)), "backwards"),
])
def test_a_bad_answer_fails_validation_and_stores_nothing(
        bend: Callable[[list[PricePoint]], list[PricePoint]], reason: str) -> None:
    con = duckdb.connect()
    con.execute(TABLES_DDL)
    with pytest.raises(PriceValidationError, match=reason):
        run(con, Answering(bend))
    assert table(con, PRICES_TABLE) == []


# --- reruns --------------------------------------------------------------------------------------

def test_rerunning_the_job_gives_identical_tables_fetch_time_included(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        run(con)
        prices, averages = table(con, PRICES_TABLE), table(con, MOVING_AVERAGE_TABLE)
        again = run(con, fetched_at=FETCHED + timedelta(hours=5))
        assert again.changed == 0
        assert table(con, PRICES_TABLE) == prices
        assert table(con, MOVING_AVERAGE_TABLE) == averages
    assert {r[6] for r in prices} == {FETCHED}  # the fetch that stored each price


def test_ranges_stored_in_any_order_give_the_same_averages() -> None:
    whole, pieces = duckdb.connect(), duckdb.connect()
    run(whole)
    run(pieces, first=date(2022, 2, 10), last=Q1_LAST)
    run(pieces, first=Q1_FIRST, last=date(2022, 2, 9))
    assert table(pieces, MOVING_AVERAGE_TABLE) == table(whole, MOVING_AVERAGE_TABLE)
    prices = f"SELECT coin, currency, day, price FROM {PRICES_TABLE} ORDER BY day"
    assert pieces.execute(prices).fetchall() == whole.execute(prices).fetchall()


# --- audits of the stored tables -----------------------------------------------------------------

def audits(con: duckdb.DuckDBPyConnection, first: date = Q1_FIRST,
           last: date = Q1_LAST) -> dict[str, job.Audit]:
    days = {"first_day": first, "last_day": last}
    return {"rows": job.audit_rows_accounted(con, coin=COIN, currency=CURRENCY, **days),
            "average": job.audit_moving_average(con, coin=COIN, currency=CURRENCY),
            "window": job.audit_request_windows(con, coin=COIN, currency=CURRENCY, **days)}


def test_audits_pass_on_what_the_job_stored() -> None:
    con = duckdb.connect()
    run(con)
    verdicts = audits(con)
    assert {k: (a.passed, a.failing, a.checked) for k, a in verdicts.items()} == {
        "rows": (True, 0, 90), "average": (True, 0, 90), "window": (True, 0, 90)}


@pytest.mark.parametrize(("column", "value"), [
    ("ma_5d_trailing", "ma_5d_trailing * 1.001"),
    ("ma_5d_trailing", "NULL"),
    ("ma_5d_window_count", "4"),
    ("ma_5d_centred", "ma_5d_trailing"),
])
def test_a_wrong_average_row_fails_the_sql_recomputation(column: str, value: str) -> None:
    con = duckdb.connect()
    run(con)
    con.execute(f"UPDATE {MOVING_AVERAGE_TABLE} SET {column} = {value} "
                "WHERE day = DATE '2022-02-01'")
    verdict = audits(con)["average"]
    assert (verdict.passed, verdict.failing) == (False, 1)
    assert verdict.sample["day"].to_list() == [date(2022, 2, 1)]


def test_a_missing_or_stray_average_row_or_an_unpriced_day_fails_rows_accounted() -> None:
    con = duckdb.connect()
    run(con, last=date(2022, 1, 20))
    con.execute(f"DELETE FROM {MOVING_AVERAGE_TABLE} WHERE day = DATE '2022-01-10'")
    con.execute(f"INSERT INTO {MOVING_AVERAGE_TABLE} VALUES "
                "('bitcoin', 'usd', DATE '2022-02-15', 1.0, NULL, 1, NULL)")
    con.execute(f"UPDATE {MOVING_AVERAGE_TABLE} SET price = price + 1 "
                "WHERE day = DATE '2022-01-12'")
    verdict = audits(con, last=date(2022, 1, 21))["rows"]
    problems = dict(verdict.sample.select("day", "problem").iter_rows())
    assert problems == {
        date(2022, 1, 10): "no average row",
        date(2022, 1, 12): "average row price differs from the stored price",
        date(2022, 1, 21): "no price for a day of the run",
        date(2022, 2, 15): "average row outside the stored span"}
    assert not verdict.passed and verdict.failing == 4


def test_a_price_outside_its_request_window_fails_the_window_audit() -> None:
    con = duckdb.connect()
    run(con)
    con.execute(f"UPDATE {PRICES_TABLE} SET window_start = TIMESTAMPTZ "
                "'2022-01-03 00:00:00+00' WHERE day = DATE '2022-01-02'")
    con.execute(f"UPDATE {PRICES_TABLE} SET window_end = TIMESTAMPTZ "
                "'2022-03-31 12:00:00+00' WHERE day = DATE '2022-01-03'")
    verdict = audits(con)["window"]
    assert verdict.sample["day"].to_list() == [date(2022, 1, 2), date(2022, 1, 3)]
    assert verdict.sample.row(0, named=True)["outside"]
    assert verdict.sample.row(1, named=True)["end_not_day_end"]


# --- chart ---------------------------------------------------------------------------------------

def test_the_chart_is_a_reproducible_png_of_the_stored_rows() -> None:
    con = duckdb.connect()
    result = run(con)
    rows = job.read_chart_rows(con, coin=COIN, currency=CURRENCY, first_day=Q1_FIRST,
                               last_day=Q1_LAST)
    assert rows.height == 90 and rows.columns == ["day", "price", "ma_5d_trailing"]
    png = moving_average_chart(rows, first_day=Q1_FIRST, warmup_absent=result.warmup_absent)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert moving_average_chart(rows, first_day=Q1_FIRST,
                                warmup_absent=result.warmup_absent) == png
    assert moving_average_chart(rows, first_day=Q1_FIRST) != png  # the label says which
    with pytest.raises(ValueError, match="ma_5d_trailing"):
        moving_average_chart(rows.drop("ma_5d_trailing"), first_day=Q1_FIRST)


# --- the command's arguments -------------------------------------------------------------------

def test_a_good_range_is_parsed() -> None:
    assert parse_range("bitcoin", "2022-01-01", "2022-03-31") == (Q1_FIRST, Q1_LAST)


@pytest.mark.parametrize(("coin", "start", "end", "message"), [
    ("btc", "2022-01-01", "2022-01-02", "--coin 'btc': no price asset"),
    ("bitcoin", "2022-1-32", "2022-01-02", "--from '2022-1-32': not a date"),
    ("bitcoin", "2022-01-01", "March", "--to 'March': not a date"),
    # date.fromisoformat reads these too (a reviewer); the help promises YYYY-MM-DD
    ("bitcoin", "20220101", "2022-01-02", "--from '20220101': not a date"),
    ("bitcoin", "2022-01-01", "2022-W01-7", "--to '2022-W01-7': not a date"),
    ("bitcoin", "２０２２-01-01", "2022-01-02", "not a date"),
    ("bitcoin", "2022-01-03", "2022-01-02", "--to 2022-01-02 is before --from 2022-01-03"),
    ("bitcoin", "2021-12-31", "2022-01-02", "start on 2022-01-01"),
    ("bitcoin", "2022-01-01", "2999-01-01", "the last complete UTC day is"),
])
def test_bad_arguments_are_one_line_value_errors(coin: str, start: str, end: str,
                                                 message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_range(coin, start, end)
    assert "\n" not in str(caught.value)
