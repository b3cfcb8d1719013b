"""The CoinGecko price job without Dagster: fetch, validate, store, average, audit.

:func:`run_prices` is what the ``bitcoin_prices`` asset (and so the schedule, a backfill
and ``cryptodudez coingecko``) does for a range of UTC days::

    /coins/list -> the coin by id -> daily prices for the days plus the warm-up days
    -> validate_daily -> upsert into coingecko_prices_daily
    -> moving_average over every stored day -> upsert into coingecko_price_ma_daily

The ``audit_*`` functions judge the stored tables with DuckDB SQL, independently of the
polars code that wrote them; the asset turns each into an asset check.

**Warm-up days the source does not have.** A day's trailing 5-day mean needs the 4 days
before it, so the job asks for them too (``WARMUP_DAYS``). A source may not reach that far:
CoinGecko refuses a range beyond a plan's history as a whole (error 10012), and the
offline recording shipped with the project starts on 2022-01-01, so it cannot serve
2021-12-28..31 for a Q1 2022 run. The job then asks again with one warm-up day fewer at a
time, down to the reported days alone, validates that answer against that window (every
day present, midnight UTC, no duplicates), stores the window it actually asked for, and
reports the warm-up days it did not get as absent (``PriceRun.warmup_absent``). Nothing
is filled in: the moving average of a day whose 5-day window is not all priced stays
null, with its ``ma_5d_window_count`` saying how many of the 5 days were, which is why the
shipped data's first trailing mean is 2022-01-05's. Only a refusal for the range (10012)
is retried this way; an answer that is missing days inside the window it asked for still
fails validation.
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb
import polars as pl

from cryptodudez.coingecko.prices import (
    MOVING_AVERAGE_TABLE,
    PRICES_TABLE,
    WARMUP_DAYS,
    WINDOW,
    find_coin,
    moving_average,
    read_prices,
    request_window,
    upsert_moving_average,
    upsert_prices,
    validate_daily,
)
from cryptodudez.resources.coingecko import CoinGecko, CoinGeckoPlanError

log = logging.getLogger(__name__)

BEYOND_HISTORY = 10012  # CoinGecko's error code for a range beyond the plan's history
SAMPLE_ROWS = 10  # offending rows shown in an audit


@dataclass(frozen=True)
class Fetched:
    """A validated answer: one price per day of the window asked for.

    Attributes:
        prices: ``day``, ``price``, one row per day of the window.
        window_start: the first instant asked for (00:00 UTC).
        window_end: the last instant asked for (23:59:59 UTC of the last day).
        warmup_absent: the warm-up days the source would not serve (empty when it did).
    """

    prices: pl.DataFrame
    window_start: datetime
    window_end: datetime
    warmup_absent: tuple[date, ...]


@dataclass(frozen=True)
class PriceRun:
    """What one run of the job did.

    Attributes:
        coin: the CoinGecko id.
        currency: the quote currency.
        first_day: the first reported day.
        last_day: the last reported day.
        window_start: the first instant the prices were asked for.
        window_end: the last instant the prices were asked for.
        warmup_absent: warm-up days the source would not serve.
        served: price points served and stored (warm-up days included).
        changed: price rows inserted or changed (0 on a rerun).
        average_rows: moving-average rows written (every stored calendar day).
        first_full_window: the first reported day with a trailing mean, or None.
        first_full_mean: that day's trailing mean.
        fetched_at: when the prices were fetched.
    """

    coin: str
    currency: str
    first_day: date
    last_day: date
    window_start: datetime
    window_end: datetime
    warmup_absent: tuple[date, ...]
    served: int
    changed: int
    average_rows: int
    first_full_window: date | None
    first_full_mean: float | None
    fetched_at: datetime

    @property
    def days(self) -> int:
        """Reported days in the run."""
        return (self.last_day - self.first_day).days + 1


@dataclass(frozen=True)
class Audit:
    """The verdict of one audit of the stored tables.

    Attributes:
        passed: True when nothing offends.
        failing: how many rows offend.
        sample: the first offending rows (``day`` first), for the check's metadata.
        checked: how many rows were judged.
    """

    passed: bool
    failing: int
    sample: pl.DataFrame
    checked: int


def fetch_daily(coingecko: CoinGecko, coin_id: str, currency: str, first_day: date,
                last_day: date, *, warmup_days: int = WARMUP_DAYS) -> Fetched:
    """Daily prices from ``warmup_days`` before ``first_day`` to ``last_day``, validated.

    If the source refuses the window as beyond its history (error 10012) and there are
    warm-up days, it is asked again with one warm-up day fewer each time, down to the
    reported days alone, and the warm-up days it would not serve are reported absent (see
    the module docstring). Any other refusal, or one for the reported days alone, is
    raised.

    Raises:
        CoinGeckoError: the source refused or failed.
        PriceValidationError: the answer is not one price per day of the window asked for.
    """
    start, end = request_window(first_day, last_day, warmup_days=warmup_days)
    absent: tuple[date, ...] = ()
    try:
        points = coingecko.market_chart_range(coin_id, currency, start, end)
    except CoinGeckoPlanError as exc:
        if exc.error_code != BEYOND_HISTORY or warmup_days == 0:
            raise
        # Fewer warm-up days, one at a time, down to none: the source's history may start
        # inside the warm-up (the shipped recording starts on 2022-01-01, so a run from
        # 2022-01-03 still gets 01-01 and 01-02; all four were reported absent before).
        for kept in range(warmup_days - 1, -1, -1):
            absent = tuple(first_day - timedelta(days=k)
                           for k in range(warmup_days, kept, -1))
            log.info("CoinGecko refused %s..%s (%s); asking again with %d warm-up day(s)",
                     start.date(), end.date(), exc, kept)
            start, end = request_window(first_day, last_day, warmup_days=kept)
            try:
                points = coingecko.market_chart_range(coin_id, currency, start, end)
                break
            except CoinGeckoPlanError as again:
                if again.error_code != BEYOND_HISTORY or kept == 0:
                    raise
                exc = again
    prices = validate_daily(points, start.date(), end.date())
    return Fetched(prices=prices, window_start=start, window_end=end, warmup_absent=absent)


def run_prices(coingecko: CoinGecko, con: duckdb.DuckDBPyConnection, *, coin: str,
               currency: str, first_day: date, last_day: date, fetched_at: datetime,
               warmup_days: int = WARMUP_DAYS) -> PriceRun:
    """Fetch, validate and store the prices of a range of days; recompute the averages.

    The moving averages are recomputed over every stored day of the coin and currency
    (a few hundred rows a year), so the table is a function of the stored prices alone:
    ranges stored in any order, or again, give the same rows.

    Args:
        coingecko: the API (live or offline).
        con: a read-write connection to the warehouse.
        coin: the CoinGecko id (``bitcoin``); a symbol is not accepted here.
        currency: the quote currency (``usd``).
        first_day: the first day to report.
        last_day: the last day to report.
        fetched_at: when the fetch happens, timezone-aware.
        warmup_days: days before ``first_day`` fetched for the first windows.
    """
    ref = find_coin(coingecko.coins_list(), id=coin)
    fetched = fetch_daily(coingecko, ref.id, currency, first_day, last_day,
                          warmup_days=warmup_days)
    changed = upsert_prices(con, fetched.prices, coin=ref.id, currency=currency,
                            window_start=fetched.window_start, window_end=fetched.window_end,
                            fetched_at=fetched_at)
    stored = read_prices(con, coin=ref.id, currency=currency, first_day=date.min,
                         last_day=date.max)
    averages = moving_average(stored)
    upsert_moving_average(con, averages, coin=ref.id, currency=currency)
    defined = averages.filter(pl.col("day").is_between(first_day, last_day),
                              pl.col("ma_5d_trailing").is_not_null())
    return PriceRun(
        coin=ref.id, currency=currency, first_day=first_day, last_day=last_day,
        window_start=fetched.window_start, window_end=fetched.window_end,
        warmup_absent=fetched.warmup_absent, served=fetched.prices.height, changed=changed,
        average_rows=averages.height,
        first_full_window=defined["day"][0] if defined.height else None,
        first_full_mean=defined["ma_5d_trailing"][0] if defined.height else None,
        fetched_at=fetched_at)


def read_chart_rows(con: duckdb.DuckDBPyConnection, *, coin: str, currency: str,
                    first_day: date, last_day: date,
                    warmup_days: int = WARMUP_DAYS) -> pl.DataFrame:
    """``day``, ``price``, ``ma_5d_trailing`` of the stored averages, warm-up days included."""
    return _query(
        con, f"SELECT day, price, ma_5d_trailing FROM {MOVING_AVERAGE_TABLE} "
        "WHERE coin = $coin AND currency = $currency AND day BETWEEN $first AND $last "
        "ORDER BY day",
        coin=coin, currency=currency, first=first_day - timedelta(days=warmup_days),
        last=last_day)


# --- audits of the stored tables (DuckDB SQL, independent of the polars code) ---------------

# Every calendar day from the first to the last stored price has one average row carrying
# that day's stored price (null on a day without one), no average row lies outside that
# span, and every day of the run's range has a price.
_ROWS_ACCOUNTED = f"""
WITH prices AS (
    SELECT day, price FROM {PRICES_TABLE} WHERE coin = $coin AND currency = $currency
), averages AS (
    SELECT day, price FROM {MOVING_AVERAGE_TABLE} WHERE coin = $coin AND currency = $currency
), span AS (
    SELECT min(day) AS first, max(day) AS last FROM prices
), calendar AS (
    SELECT CAST(unnest(generate_series(
        least((SELECT first FROM span), CAST($first AS DATE)),
        greatest((SELECT last FROM span), CAST($last AS DATE)),
        INTERVAL 1 DAY)) AS DATE) AS day
), joined AS (
    SELECT coalesce(c.day, a.day) AS day, c.day IS NOT NULL AS on_calendar,
           p.day IS NOT NULL AS priced, a.day IS NOT NULL AS averaged,
           p.price AS stored_price, a.price AS average_row_price
    FROM calendar AS c
    LEFT JOIN prices AS p ON p.day = c.day
    FULL JOIN averages AS a ON a.day = c.day
)
SELECT day,
    CASE
        WHEN day BETWEEN $first AND $last AND NOT priced THEN 'no price for a day of the run'
        WHEN NOT on_calendar THEN 'average row outside the stored span'
        WHEN day BETWEEN (SELECT first FROM span) AND (SELECT last FROM span)
             AND NOT averaged THEN 'no average row'
        WHEN averaged AND stored_price IS DISTINCT FROM average_row_price
            THEN 'average row price differs from the stored price'
    END AS problem,
    stored_price, average_row_price,
    count(*) OVER () AS checked
FROM joined
QUALIFY problem IS NOT NULL OR row_number() OVER (ORDER BY day) = 1
ORDER BY day
"""

# The trailing and centred means and the window count, recomputed with SQL window
# functions over calendar days (RANGE frames on the date) and compared with the table.
_AVERAGE_RECOMPUTED = f"""
WITH prices AS (
    SELECT day, price FROM {PRICES_TABLE} WHERE coin = $coin AND currency = $currency
), calendar AS (
    SELECT CAST(unnest(generate_series(min(day), max(day), INTERVAL 1 DAY)) AS DATE) AS day
    FROM prices
), series AS (
    SELECT c.day, p.price FROM calendar AS c LEFT JOIN prices AS p USING (day)
), expected AS (
    SELECT day,
        CASE WHEN count(price) OVER w_trailing = {WINDOW} THEN avg(price) OVER w_trailing END
            AS ma_trailing,
        CAST(count(price) OVER w_trailing AS INTEGER) AS window_count,
        CASE WHEN count(price) OVER w_centred = {WINDOW} THEN avg(price) OVER w_centred END
            AS ma_centred
    FROM series
    WINDOW w_trailing AS (ORDER BY day RANGE BETWEEN INTERVAL {WINDOW - 1} DAYS PRECEDING
                                              AND CURRENT ROW),
           w_centred AS (ORDER BY day RANGE BETWEEN INTERVAL {WINDOW // 2} DAYS PRECEDING
                                              AND INTERVAL {WINDOW // 2} DAYS FOLLOWING)
), stored AS (
    SELECT day, ma_5d_trailing, ma_5d_window_count, ma_5d_centred FROM {MOVING_AVERAGE_TABLE}
    WHERE coin = $coin AND currency = $currency
), compared AS (
    SELECT coalesce(e.day, s.day) AS day, e.ma_trailing AS sql_trailing,
           s.ma_5d_trailing AS stored_trailing, e.window_count AS sql_window_count,
           s.ma_5d_window_count AS stored_window_count, e.ma_centred AS sql_centred,
           s.ma_5d_centred AS stored_centred
    FROM expected AS e FULL JOIN stored AS s USING (day)
)
SELECT *, count(*) OVER () AS checked,
    NOT (close_enough(sql_trailing, stored_trailing)
         AND close_enough(sql_centred, stored_centred)
         AND sql_window_count IS NOT DISTINCT FROM stored_window_count) AS differs
FROM compared
QUALIFY differs OR row_number() OVER (ORDER BY day) = 1
ORDER BY day
"""
_CLOSE_ENOUGH = """
CREATE OR REPLACE TEMP MACRO close_enough(a, b) AS
    CASE WHEN a IS NULL OR b IS NULL THEN a IS NULL AND b IS NULL
         ELSE abs(a - b) <= 1e-9 * greatest(abs(a), abs(b), 1.0) END
"""

# Each stored price of the range lies in the window of the request that stored it, and
# that window runs from 00:00:00 UTC of a day to 23:59:59 UTC of a day.
_WITHIN_WINDOW = f"""
SELECT day, window_start, window_end, price, count(*) OVER () AS checked,
    epoch_ms(window_start) % 86400000 <> 0 AS start_not_midnight,
    (epoch_ms(window_end) + 1000) % 86400000 <> 0 AS end_not_day_end,
    NOT epoch_ms(CAST(day AS TIMESTAMP)) BETWEEN epoch_ms(window_start)
        AND epoch_ms(window_end) AS outside,
    NOT (isfinite(price) AND price > 0) AS bad_price
FROM {PRICES_TABLE}
WHERE coin = $coin AND currency = $currency AND day BETWEEN $first AND $last
QUALIFY start_not_midnight OR end_not_day_end OR outside OR bad_price
    OR row_number() OVER (ORDER BY day) = 1
ORDER BY day
"""


def audit_rows_accounted(con: duckdb.DuckDBPyConnection, *, coin: str, currency: str,
                         first_day: date, last_day: date) -> Audit:
    """Every day of the run priced; one average row per stored calendar day, same price."""
    frame = _query(con, _ROWS_ACCOUNTED, coin=coin, currency=currency, first=first_day,
                   last=last_day)
    return _verdict(frame, pl.col("problem").is_not_null())


def audit_moving_average(con: duckdb.DuckDBPyConnection, *, coin: str,
                         currency: str) -> Audit:
    """The stored averages equal a DuckDB window-function recomputation from the prices."""
    con.execute(_CLOSE_ENOUGH)
    frame = _query(con, _AVERAGE_RECOMPUTED, coin=coin, currency=currency)
    return _verdict(frame, pl.col("differs"))


def audit_request_windows(con: duckdb.DuckDBPyConnection, *, coin: str, currency: str,
                          first_day: date, last_day: date) -> Audit:
    """The range's prices lie in midnight-aligned request windows and are positive."""
    frame = _query(con, _WITHIN_WINDOW, coin=coin, currency=currency, first=first_day,
                   last=last_day)
    flags = ["start_not_midnight", "end_not_day_end", "outside", "bad_price"]
    return _verdict(frame, pl.any_horizontal(flags))


def _query(con: duckdb.DuckDBPyConnection, sql: str, **params: object) -> pl.DataFrame:
    return con.sql(sql, params=params).pl()


def _verdict(frame: pl.DataFrame, offends: pl.Expr) -> Audit:
    """An audit from a query's offending rows (plus its first row, carrying ``checked``)."""
    checked = int(frame["checked"][0]) if frame.height else 0
    bad = frame.filter(offends.fill_null(True)).drop("checked") if frame.height else frame
    return Audit(passed=bad.height == 0, failing=bad.height, sample=bad.head(SAMPLE_ROWS),
                 checked=checked)
