"""CoinGecko daily prices: coin lookup, response checks, moving averages, idempotent storage.

The golden values come from the shipped recording (../shared/data/coingecko, 92 daily
Bitcoin prices from 2022-01-01); the rules are tested on small inline data.
"""

import re
import statistics
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cryptodudez.coingecko.prices import (
    DAY_MS,
    WARMUP_DAYS,
    CoinLookupError,
    CoinRef,
    PricePoint,
    PriceValidationError,
    find_coin,
    moving_average,
    read_prices,
    request_window,
    upsert_moving_average,
    upsert_prices,
    validate_daily,
)
from cryptodudez.resources.coingecko import (
    RECORDED_COINS,
    CoinGecko,
    CoinGeckoPlanError,
    CoinGeckoRequestError,
    OfflineCoinGecko,
)
from tests.conftest import shared

Q1_FIRST, Q1_LAST = date(2022, 1, 1), date(2022, 3, 31)
JAN_1_MS = 1_640_995_200_000  # 2022-01-01T00:00:00Z


def recording() -> Path:
    return shared("coingecko", "bitcoin_usd_daily_2022Q1.csv")


def points(prices: list[float], *, first_ms: int = JAN_1_MS) -> list[PricePoint]:
    return [PricePoint(first_ms + i * DAY_MS, p) for i, p in enumerate(prices)]


def q1_prices() -> pl.DataFrame:
    coingecko = OfflineCoinGecko(recording())
    start, end = request_window(Q1_FIRST, Q1_LAST)
    return validate_daily(coingecko.market_chart_range("bitcoin", "usd", start, end),
                          start.date(), end.date())


# --- find_coin -----------------------------------------------------------------------------

def test_bitcoin_is_found_by_id() -> None:
    assert find_coin(RECORDED_COINS, id="bitcoin") == CoinRef("bitcoin", "btc", "Bitcoin")


def test_a_symbol_several_coins_share_is_refused() -> None:
    with pytest.raises(CoinLookupError, match=r"symbol 'BTC' is ambiguous: 2 coins.*by id"):
        find_coin(RECORDED_COINS, symbol="BTC")


def test_a_unique_symbol_finds_its_coin() -> None:
    assert find_coin(RECORDED_COINS, symbol="eth").id == "ethereum"


def test_an_unknown_id_is_refused_not_guessed() -> None:
    with pytest.raises(CoinLookupError, match="no coin with id 'btc'"):
        find_coin(RECORDED_COINS, id="btc")


@pytest.mark.parametrize("kwargs", [{}, {"id": "bitcoin", "symbol": "btc"}])
def test_exactly_one_of_id_and_symbol(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        find_coin(RECORDED_COINS, **kwargs)


# --- request window and validation ---------------------------------------------------------

def test_request_window_adds_warmup_days_and_ends_on_the_last_day() -> None:
    start, end = request_window(Q1_FIRST, Q1_LAST, warmup_days=WARMUP_DAYS)
    assert start == datetime(2021, 12, 28, tzinfo=UTC)
    assert end == datetime(2022, 3, 31, 23, 59, 59, tzinfo=UTC)


def test_a_good_response_becomes_one_row_per_day() -> None:
    frame = validate_daily(points([1.0, 2.0, 3.0]), date(2022, 1, 1), date(2022, 1, 3))
    assert frame.to_dicts() == [{"day": date(2022, 1, d), "price": float(d)} for d in (1, 2, 3)]
    assert frame.schema == pl.Schema({"day": pl.Date(), "price": pl.Float64()})


GOOD = points([10.0, 11.0, 12.0, 13.0])
BROKEN = [
    ("not midnight", [GOOD[0], PricePoint(GOOD[1].timestamp_ms + 3_600_000, 11.0), *GOOD[2:]],
     ["not at 00:00 UTC, first 2022-01-02T01:00:00+00:00"]),
    ("duplicate", [GOOD[0], GOOD[1], GOOD[1], GOOD[2], GOOD[3]],
     ["appear more than once: 2022-01-02 (2x)", "5 point(s) where"]),
    ("not monotonic", [GOOD[0], GOOD[2], GOOD[1], GOOD[3]],
     ["go backwards at 1 place(s), first at point 2"]),
    ("missing day", [GOOD[0], GOOD[1], GOOD[3]],
     ["1 day(s) missing: 2022-01-03", "3 point(s) where 2022-01-01..2022-01-04 has 4"]),
    ("outside window", [*GOOD, PricePoint(GOOD[3].timestamp_ms + DAY_MS, 14.0)],
     ["1 point(s) outside 2022-01-01..2022-01-04, first 2022-01-05"]),
    ("bad price", [GOOD[0], PricePoint(GOOD[1].timestamp_ms, float("nan")),
                   PricePoint(GOOD[2].timestamp_ms, 0.0), GOOD[3]],
     ["2 price(s) not positive and finite"]),
    ("empty", [], ["no price points; expected 4"]),
]


@pytest.mark.parametrize(("case", "given", "reasons"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_responses_are_rejected_with_every_reason(
        case: str, given: list[PricePoint], reasons: list[str]) -> None:
    with pytest.raises(PriceValidationError) as caught:
        validate_daily(given, date(2022, 1, 1), date(2022, 1, 4))
    message = str(caught.value)
    for reason in reasons:
        assert reason in message, case


# --- moving averages -------------------------------------------------------------------------

@pytest.mark.realdata
def test_golden_trailing_and_centred_means_of_q1_2022() -> None:
    averages = moving_average(q1_prices())
    assert averages.height == 90
    by_day = {row["day"]: row for row in averages.iter_rows(named=True)}
    first_defined = averages.filter(pl.col("ma_5d_trailing").is_not_null())["day"][0]
    assert first_defined == date(2022, 1, 5)
    golden = {date(2022, 1, 5): 46_798.42, date(2022, 1, 6): 46_263.92,
              date(2022, 1, 31): 37_643.04, date(2022, 2, 14): 42_992.00,
              date(2022, 2, 28): 38_389.12, date(2022, 3, 31): 46_548.69}
    assert {d: round(by_day[d]["ma_5d_trailing"], 2) for d in golden} == golden
    assert [by_day[date(2022, 1, d)]["ma_5d_window_count"] for d in range(1, 7)] == [
        1, 2, 3, 4, 5, 5]
    # The centred mean of 2022-01-03 covers the trailing window of 2022-01-05.
    assert round(by_day[date(2022, 1, 3)]["ma_5d_centred"], 2) == 46_798.42
    assert by_day[date(2022, 3, 29)]["ma_5d_centred"] == pytest.approx(
        by_day[date(2022, 3, 31)]["ma_5d_trailing"], rel=1e-12)
    assert averages["ma_5d_centred"].null_count() == 4  # two days at each end


@pytest.mark.realdata
def test_trailing_mean_equals_a_plain_mean_of_the_five_days_on_every_day() -> None:
    prices = q1_prices()["price"].to_list()
    averages = moving_average(q1_prices())["ma_5d_trailing"].to_list()
    for i, value in enumerate(averages):
        if i < 4:
            assert value is None
        else:
            assert value == pytest.approx(statistics.fmean(prices[i - 4:i + 1]), rel=1e-12)


def test_a_missing_day_nulls_every_window_that_covers_it_and_lowers_the_count() -> None:
    days = [date(2022, 1, d) for d in (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13)]
    frame = pl.DataFrame({"day": days, "price": [float(d.day) for d in days]})
    averages = moving_average(frame)
    assert averages["day"].to_list() == [date(2022, 1, d) for d in range(1, 14)]
    rows = {r["day"].day: r for r in averages.iter_rows(named=True)}
    assert rows[7]["price"] is None
    assert [rows[d]["ma_5d_window_count"] for d in range(5, 14)] == [5, 5, 4, 4, 4, 4, 4, 5, 5]
    assert [rows[d]["ma_5d_trailing"] for d in range(5, 14)] == [
        3.0, 4.0, None, None, None, None, None, 10.0, 11.0]
    assert [rows[d]["ma_5d_centred"] for d in range(3, 12)] == [
        3.0, 4.0, None, None, None, None, None, 10.0, 11.0]


def test_the_centred_mean_is_its_own_column_not_a_shifted_trailing_one() -> None:
    frame = pl.DataFrame({"day": [date(2022, 1, d) for d in range(1, 8)],
                          "price": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]})
    averages = moving_average(frame)
    assert averages.columns == ["day", "price", "ma_5d_trailing", "ma_5d_window_count",
                                "ma_5d_centred"]
    assert averages["ma_5d_trailing"].to_list() == [None] * 4 + [6.2, 12.4, 24.8]
    assert averages["ma_5d_centred"].to_list() == [None, None, 6.2, 12.4, 24.8, None, None]


def test_duplicate_days_are_refused() -> None:
    frame = pl.DataFrame({"day": [date(2022, 1, 1)] * 2, "price": [1.0, 2.0]})
    with pytest.raises(ValueError, match="more than one price"):
        moving_average(frame)


# --- storage ---------------------------------------------------------------------------------

def table(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[object, ...]]:
    """Every row of a table, every column, in key order."""
    return con.execute(f"SELECT * FROM {name} ORDER BY coin, currency, day").fetchall()


FIRST_FETCH = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
WINDOW = (datetime(2022, 1, 1, tzinfo=UTC), datetime(2022, 1, 3, 23, 59, 59, tzinfo=UTC))


def test_storing_the_same_prices_again_leaves_the_table_identical() -> None:
    con = duckdb.connect()
    frame = validate_daily(points([1.5, 2.5, 3.5]), date(2022, 1, 1), date(2022, 1, 3))
    assert upsert_prices(con, frame, coin="bitcoin", currency="usd", window_start=WINDOW[0],
                         window_end=WINDOW[1], fetched_at=FIRST_FETCH) == 3
    before = table(con, "coingecko_prices_daily")
    assert before[0] == ("bitcoin", "usd", date(2022, 1, 1), 1.5, WINDOW[0], WINDOW[1],
                         FIRST_FETCH)
    later = FIRST_FETCH + timedelta(days=1)
    assert upsert_prices(con, frame, coin="bitcoin", currency="usd", window_start=WINDOW[0],
                         window_end=WINDOW[1], fetched_at=later) == 0
    assert table(con, "coingecko_prices_daily") == before


def test_a_changed_price_replaces_its_row_with_the_new_fetch() -> None:
    con = duckdb.connect()
    frame = validate_daily(points([1.5, 2.5, 3.5]), date(2022, 1, 1), date(2022, 1, 3))
    upsert_prices(con, frame, coin="bitcoin", currency="usd", window_start=WINDOW[0],
                  window_end=WINDOW[1], fetched_at=FIRST_FETCH)
    later = FIRST_FETCH + timedelta(days=1)
    revised = frame.with_columns(price=pl.Series([1.5, 2.75, 3.5]))
    assert upsert_prices(con, revised, coin="bitcoin", currency="usd",
                         window_start=WINDOW[0], window_end=WINDOW[1], fetched_at=later) == 1
    rows = table(con, "coingecko_prices_daily")
    assert [(r[3], r[6]) for r in rows] == [(1.5, FIRST_FETCH), (2.75, later),
                                            (3.5, FIRST_FETCH)]
    # Another coin or currency is another key.
    upsert_prices(con, frame, coin="bitcoin", currency="eur", window_start=WINDOW[0],
                  window_end=WINDOW[1], fetched_at=later)
    assert len(table(con, "coingecko_prices_daily")) == 6


def test_naive_instants_are_refused() -> None:
    frame = validate_daily(points([1.0]), date(2022, 1, 1), date(2022, 1, 1))
    with pytest.raises(ValueError, match="fetched_at must be timezone-aware"):
        upsert_prices(duckdb.connect(), frame, coin="bitcoin", currency="usd",
                      window_start=WINDOW[0], window_end=WINDOW[1],
                      fetched_at=datetime(2026, 1, 1))


# --- the job, offline --------------------------------------------------------------------------

def run_job(con: duckdb.DuckDBPyConnection, coingecko: CoinGecko, *, fetched_at: datetime,
            warmup_days: int) -> None:
    """What the Dagster asset does, in the same order (the lead wires the real one)."""
    coin = find_coin(coingecko.coins_list(), id="bitcoin")
    start, end = request_window(Q1_FIRST, Q1_LAST, warmup_days=warmup_days)
    prices = validate_daily(coingecko.market_chart_range(coin.id, "usd", start, end),
                            start.date(), end.date())
    upsert_prices(con, prices, coin=coin.id, currency="usd", window_start=start,
                  window_end=end, fetched_at=fetched_at)
    stored = read_prices(con, coin=coin.id, currency="usd", first_day=start.date(),
                         last_day=end.date())
    upsert_moving_average(con, moving_average(stored), coin=coin.id, currency="usd")


@pytest.mark.realdata
def test_rerunning_the_job_gives_identical_tables(tmp_path: Path) -> None:
    coingecko = OfflineCoinGecko(recording())
    with duckdb.connect(str(tmp_path / "prices.duckdb")) as con:
        run_job(con, coingecko, fetched_at=FIRST_FETCH, warmup_days=0)
        prices, averages = table(con, "coingecko_prices_daily"), table(
            con, "coingecko_price_ma_daily")
        run_job(con, coingecko, fetched_at=FIRST_FETCH + timedelta(hours=1), warmup_days=0)
        assert table(con, "coingecko_prices_daily") == prices
        assert table(con, "coingecko_price_ma_daily") == averages
    assert len(prices) == 90 and len(averages) == 90
    assert prices[0][2:] == (date(2022, 1, 1), 46319.65108805251, WINDOW[0],
                             datetime(2022, 3, 31, 23, 59, 59, tzinfo=UTC), FIRST_FETCH)
    day, trailing, count = averages[4][2], averages[4][4], averages[4][5]
    assert isinstance(trailing, float)
    assert (day, round(trailing, 2), count) == (date(2022, 1, 5), 46_798.42, 5)


@pytest.mark.realdata
def test_the_recording_has_no_warmup_days_so_asking_for_them_is_a_plan_error() -> None:
    coingecko = OfflineCoinGecko(recording())
    with pytest.raises(CoinGeckoPlanError, match="outside the recording") as caught:
        run_job(duckdb.connect(), coingecko, fetched_at=FIRST_FETCH, warmup_days=WARMUP_DAYS)
    assert caught.value.error_code == 10012


# --- the offline implementation ----------------------------------------------------------------

@pytest.mark.realdata
def test_offline_serves_the_recorded_days_of_the_window_only() -> None:
    coingecko = OfflineCoinGecko(recording())
    start, end = request_window(date(2022, 3, 30), date(2022, 4, 2))
    served = coingecko.market_chart_range("bitcoin", "usd", start, end)
    assert [p.timestamp_ms for p in served] == [
        int(datetime(2022, m, d, tzinfo=UTC).timestamp() * 1000)
        for m, d in ((3, 30), (3, 31), (4, 1), (4, 2))]
    assert served[0] == PricePoint(1_648_598_400_000, served[0].price)


@pytest.mark.realdata
@pytest.mark.parametrize(("coin", "currency", "interval", "status"), [
    ("dogecoin", "usd", "daily", 404),        # not listed
    ("ethereum", "usd", "daily", 404),        # listed, not recorded
    ("bitcoin", "eur", "daily", 404),
    ("bitcoin", "usd", "hourly", 404),
])
def test_offline_refuses_what_it_did_not_record(coin: str, currency: str, interval: str,
                                                status: int) -> None:
    start, end = request_window(Q1_FIRST, Q1_LAST)
    with pytest.raises(CoinGeckoRequestError) as caught:
        OfflineCoinGecko(recording()).market_chart_range(coin, currency, start, end,
                                                         interval=interval)
    assert caught.value.status_code == status


def test_offline_without_its_recording_says_where_it_looked(tmp_path: Path) -> None:
    coingecko = OfflineCoinGecko(tmp_path / "absent.csv")
    assert find_coin(coingecko.coins_list(), id="bitcoin").name == "Bitcoin"
    start, end = request_window(Q1_FIRST, Q1_LAST)
    with pytest.raises(FileNotFoundError, match=r"absent\.csv"):
        coingecko.market_chart_range("bitcoin", "usd", start, end)


# A recording with one bad price on line 4 (2022-01-03), written as a CSV may hold it. inf and
# nan passed the check before a run and failed in msgspec ("Expected `float`, got `null` - at
# `$.prices[2][1]`", no file, no day); 0 and -1 failed validation after the fetch (QA).
BAD_RECORDED = [("inf", "inf"), ("nan", "nan"), ("-inf", "-inf"), ("1e999", "inf"),
                ("0", "0.0"), ("-0.0", "-0.0"), ("-46000.5", "-46000.5")]


def bad_recording(tmp_path: Path, written: str) -> Path:
    path = tmp_path / "bad.csv"
    days = [f"{JAN_1_MS + i * DAY_MS},{46000 + i}" for i in range(6)]
    days[2] = f"{JAN_1_MS + 2 * DAY_MS},{written}"
    path.write_text("timestamp_ms,price_usd\n" + "\n".join(days) + "\n")
    return path


@pytest.mark.parametrize(("written", "read"), BAD_RECORDED)
def test_a_recorded_price_that_is_not_positive_and_finite_is_named_with_file_line_and_day(
        tmp_path: Path, written: str, read: str) -> None:
    coingecko = OfflineCoinGecko(bad_recording(tmp_path, written))
    said = (f"CoinGecko (offline): the recording {tmp_path / 'bad.csv'}: line 4 (2022-01-03) "
            f"has price {read}, not positive and finite (set COINGECKO_RECORDING")
    with pytest.raises(ValueError, match="line 4") as caught:
        coingecko.recorded_days()  # the CLI's check before a run
    assert str(caught.value).startswith(said), caught.value
    assert "\n" not in str(caught.value)
    start, end = request_window(date(2022, 1, 1), date(2022, 1, 2))  # the bad day not asked
    with pytest.raises(ValueError, match="line 4") as again:  # a run started otherwise
        coingecko.market_chart_range("bitcoin", "usd", start, end)
    assert str(again.value).startswith(said)
    # one rule: what a recording may not hold, an answer may not either (validate_daily)
    with pytest.raises(PriceValidationError, match=rf"1 price\(s\) not positive and finite, "
                       rf"first {re.escape(read)} at 2022-01-01"):
        validate_daily(points([float(written)]), date(2022, 1, 1), date(2022, 1, 1))


def test_every_bad_recorded_price_is_counted_and_the_first_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"timestamp_ms,price_usd\n{JAN_1_MS},1.5\n{JAN_1_MS + DAY_MS},-1\n"
                    f"{JAN_1_MS + 2 * DAY_MS},nan\n{JAN_1_MS + 3 * DAY_MS},0\n")
    with pytest.raises(ValueError, match=r": line 3 \(2022-01-02\) has price -1\.0, not positive "
                       r"and finite \(and 2 more\) \(set COINGECKO_RECORDING"):
        OfflineCoinGecko(path).recorded_days()
