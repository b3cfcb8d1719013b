"""Daily coin prices from CoinGecko: coin lookup, response checks, moving averages, storage.

Pure functions of values and polars frames, plus the two DuckDB tables they are stored in,
defined once here (``TABLES_DDL``). No HTTP and no Dagster: the CoinGecko resource
(``cryptodudez.resources.coingecko``) fetches, these functions judge and shape what it fetched.

A job reads like this::

    coin = find_coin(coingecko.coins_list(), id="bitcoin")
    start, end = request_window(first_day, last_day, warmup_days=WARMUP_DAYS)
    points = coingecko.market_chart_range(coin.id, "usd", start, end)
    prices = validate_daily(points, start.date(), end.date())
    upsert_prices(con, prices, coin=coin.id, currency="usd", window_start=start,
                  window_end=end, fetched_at=now)
    stored = read_prices(con, coin=coin.id, currency="usd", first_day=start.date(),
                         last_day=end.date())
    upsert_moving_average(con, moving_average(stored), coin=coin.id, currency="usd")

Days are UTC calendar days. CoinGecko's daily points are stamped 00:00 UTC: the point of day
``D`` is the price at the start of ``D``.
"""

import contextlib
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta

import duckdb
import msgspec
import polars as pl

DAY_MS = 86_400_000
WINDOW = 5
# Days fetched before the first reported day, so that its trailing window is full.
WARMUP_DAYS = WINDOW - 1
# What a price must be, wherever it comes from: validate_daily (every answer, live or
# offline) and OfflineCoinGecko's reading of a recording apply it through valid_price.
PRICE_RULE = "positive and finite"
PRICES_TABLE = "coingecko_prices_daily"
MOVING_AVERAGE_TABLE = "coingecko_price_ma_daily"

PRICE_SCHEMA = pl.Schema({"day": pl.Date(), "price": pl.Float64()})
MOVING_AVERAGE_SCHEMA = pl.Schema({
    "day": pl.Date(), "price": pl.Float64(), "ma_5d_trailing": pl.Float64(),
    "ma_5d_window_count": pl.Int32(), "ma_5d_centred": pl.Float64()})

TABLES_DDL = """
CREATE TABLE IF NOT EXISTS coingecko_prices_daily (
    coin VARCHAR NOT NULL,
    currency VARCHAR NOT NULL,
    day DATE NOT NULL,
    price DOUBLE NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end TIMESTAMPTZ NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (coin, currency, day)
);
CREATE TABLE IF NOT EXISTS coingecko_price_ma_daily (
    coin VARCHAR NOT NULL,
    currency VARCHAR NOT NULL,
    day DATE NOT NULL,
    price DOUBLE,
    ma_5d_trailing DOUBLE,
    ma_5d_window_count INTEGER NOT NULL,
    ma_5d_centred DOUBLE,
    PRIMARY KEY (coin, currency, day)
);
"""

_INCOMING = "_coingecko_incoming"  # the frame being stored, registered for one statement
# A refetch that returns the same price leaves the row as it is (the window and time of the
# fetch that produced the stored value), so rerunning a job leaves the table identical.
_UPSERT_PRICES = """
INSERT INTO coingecko_prices_daily AS stored
    (coin, currency, day, price, window_start, window_end, fetched_at)
SELECT $coin, $currency, day, price, $window_start, $window_end, $fetched_at
FROM _coingecko_incoming
ON CONFLICT (coin, currency, day) DO UPDATE SET
    price = excluded.price,
    window_start = excluded.window_start,
    window_end = excluded.window_end,
    fetched_at = excluded.fetched_at
WHERE stored.price IS DISTINCT FROM excluded.price
"""
_CHANGED_PRICES = """
SELECT count(*) FROM _coingecko_incoming AS incoming
LEFT JOIN coingecko_prices_daily AS stored
    ON stored.coin = $coin AND stored.currency = $currency AND stored.day = incoming.day
WHERE stored.price IS DISTINCT FROM incoming.price
"""
_UPSERT_MOVING_AVERAGE = """
INSERT OR REPLACE INTO coingecko_price_ma_daily
    (coin, currency, day, price, ma_5d_trailing, ma_5d_window_count, ma_5d_centred)
SELECT $coin, $currency, day, price, ma_5d_trailing, ma_5d_window_count, ma_5d_centred
FROM _coingecko_incoming
"""


class CoinRef(msgspec.Struct, frozen=True):
    """One entry of CoinGecko's ``/coins/list``: the API id, the ticker symbol, the name."""

    id: str
    symbol: str
    name: str


class PricePoint(msgspec.Struct, frozen=True, array_like=True):
    """One ``[timestamp_ms, price]`` pair of a market chart's ``prices`` array."""

    timestamp_ms: int
    price: float


class CoinLookupError(LookupError):
    """No coin, or more than one, matches a lookup in ``/coins/list``."""


class PriceValidationError(ValueError):
    """A market chart response is not one price per day of the window.

    Attributes:
        reasons: every rule the response broke, one sentence each.
    """

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("; ".join(self.reasons))


def valid_price(price: float) -> bool:
    """Whether ``price`` can be a coin's price: finite (not inf, -inf or nan) and above 0.

    The one rule (``PRICE_RULE``) for the prices of an answer (``validate_daily``) and of an
    offline recording (``OfflineCoinGecko``).
    """
    return math.isfinite(price) and price > 0


def find_coin(coins: Iterable[CoinRef], *, id: str | None = None,
              symbol: str | None = None) -> CoinRef:
    """The one coin of ``coins`` with this API id, or else with this symbol.

    An id is unique in ``/coins/list``; a symbol is not (many tokens call themselves
    ``btc``), so a symbol that several coins share is refused rather than guessed.

    Args:
        coins: the ``/coins/list`` entries.
        id: the API id, matched exactly (``bitcoin``).
        symbol: the ticker symbol, matched ignoring case (``BTC``).

    Raises:
        CoinLookupError: nothing matches, or a symbol matches more than one coin.
        ValueError: neither or both of ``id`` and ``symbol`` are given.
    """
    if (id is None) == (symbol is None):
        msg = "find_coin: give exactly one of id= or symbol="
        raise ValueError(msg)
    listed = list(coins)
    if id is not None:
        matches = [c for c in listed if c.id == id]
        wanted = f"id {id!r}"
    else:
        assert symbol is not None
        matches = [c for c in listed if c.symbol.casefold() == symbol.casefold()]
        wanted = f"symbol {symbol!r}"
    if not matches:
        msg = f"no coin with {wanted} among the {len(listed)} coins of /coins/list"
        raise CoinLookupError(msg)
    if len(matches) > 1:
        shown = ", ".join(f"{c.id} ({c.name})" for c in matches[:10])
        more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
        msg = (f"{wanted} is ambiguous: {len(matches)} coins share it: {shown}{more}; "
               "look the coin up by id")
        raise CoinLookupError(msg)
    return matches[0]


def request_window(first_day: date, last_day: date, *,
                   warmup_days: int = 0) -> tuple[datetime, datetime]:
    """The UTC instants to ask for: ``warmup_days`` before ``first_day`` to the end of ``last_day``.

    The end is the last second of ``last_day`` (not its midnight), so the request includes
    that day's 00:00 point whether or not the API treats ``to`` as inclusive, and never the
    next day's.
    """
    if last_day < first_day:
        msg = f"request_window: last day {last_day} is before first day {first_day}"
        raise ValueError(msg)
    start = datetime.combine(first_day - timedelta(days=warmup_days), time(), tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), time(), tzinfo=UTC)
    return start, end - timedelta(seconds=1)


def validate_daily(points: Sequence[PricePoint], first_day: date,
                   last_day: date) -> pl.DataFrame:
    """``day``, ``price``: one row per day from ``first_day`` to ``last_day``, in order.

    Checks that the points are strictly increasing in time, stamped exactly 00:00 UTC, one
    per day (no duplicates, none missing, none outside the window, so exactly as many as
    the window has days) and that every price is positive and finite.

    Raises:
        PriceValidationError: listing every rule broken (not only the first).
    """
    expected = (last_day - first_day).days + 1
    if not points:
        raise PriceValidationError(
            [f"no price points; expected {expected} for {first_day}..{last_day}"])
    reasons: list[str] = []
    stamps = [p.timestamp_ms for p in points]
    backwards = [i for i in range(1, len(stamps)) if stamps[i] < stamps[i - 1]]
    if backwards:
        i = backwards[0]
        reasons.append(f"timestamps go backwards at {len(backwards)} place(s), first at "
                       f"point {i}: {_instant(stamps[i - 1])} then {_instant(stamps[i])}")
    off_midnight = [t for t in stamps if t % DAY_MS]
    if off_midnight:
        reasons.append(f"{len(off_midnight)} point(s) not at 00:00 UTC, first "
                       f"{_instant(off_midnight[0])}")
    days = [_day(t) for t in stamps]
    repeated = sorted((d, n) for d, n in Counter(days).items() if n > 1)
    if repeated:
        shown = ", ".join(f"{d} ({n}x)" for d, n in repeated[:5])
        reasons.append(f"{len(repeated)} day(s) appear more than once: {shown}")
    outside = [d for d in days if not first_day <= d <= last_day]
    if outside:
        reasons.append(f"{len(outside)} point(s) outside {first_day}..{last_day}, first "
                       f"{outside[0]}")
    present = set(days)
    missing = [first_day + timedelta(days=k) for k in range(expected)
               if first_day + timedelta(days=k) not in present]
    if missing:
        shown = ", ".join(str(d) for d in missing[:5])
        more = ", ..." if len(missing) > 5 else ""
        reasons.append(f"{len(missing)} day(s) missing: {shown}{more}")
    if len(points) != expected:
        reasons.append(f"{len(points)} point(s) where {first_day}..{last_day} has "
                       f"{expected} day(s)")
    bad_prices = [p for p in points if not valid_price(p.price)]
    if bad_prices:
        reasons.append(f"{len(bad_prices)} price(s) not {PRICE_RULE}, first "
                       f"{bad_prices[0].price!r} at {_instant(bad_prices[0].timestamp_ms)}")
    if reasons:
        raise PriceValidationError(reasons)
    return pl.DataFrame({"day": days, "price": [p.price for p in points]},
                        schema=PRICE_SCHEMA)


def moving_average(prices: pl.DataFrame, *, window: int = WINDOW) -> pl.DataFrame:
    """Per calendar day from the first to the last day of ``prices``: the moving averages.

    Columns: ``day``; ``price`` (null on a day without one); ``ma_{w}d_trailing``, the mean
    of the prices of the ``window`` calendar days ending on ``day``;
    ``ma_{w}d_window_count``, how many of those days have a price; ``ma_{w}d_centred``, the
    mean over the ``window`` days centred on ``day``, a different statistic kept in its own
    column. Both means are null unless all ``window`` days have a price, so a gap in the
    data never shrinks a window silently.

    Args:
        prices: ``day`` (date) and ``price``, at most one row per day, in any order.
        window: the number of calendar days in a window (odd, for the centred mean).
    """
    if window < 1 or window % 2 == 0:
        msg = f"moving_average: window must be odd and positive, got {window}"
        raise ValueError(msg)
    names = (f"ma_{window}d_trailing", f"ma_{window}d_window_count", f"ma_{window}d_centred")
    schema = pl.Schema({"day": pl.Date(), "price": pl.Float64(), names[0]: pl.Float64(),
                        names[1]: pl.Int32(), names[2]: pl.Float64()})
    if prices.height == 0:
        return pl.DataFrame(schema=schema)
    if prices["day"].is_duplicated().any():
        msg = "moving_average: more than one price for a day"
        raise ValueError(msg)
    first, last = prices["day"].min(), prices["day"].max()
    if not (isinstance(first, date) and isinstance(last, date)):
        msg = f"moving_average: 'day' must be dates, got {prices.schema['day']}"
        raise TypeError(msg)
    calendar = pl.DataFrame({"day": pl.date_range(first, last, "1d", eager=True)})
    priced = pl.col("price").cast(pl.Float64)
    return (
        calendar.join(prices.select("day", "price"), on="day", how="left")
        .sort("day")
        .select(
            "day",
            priced.alias("price"),
            priced.rolling_mean(window, min_samples=window).alias(names[0]),
            priced.is_not_null().cast(pl.Int32).rolling_sum(window, min_samples=1)
            .cast(pl.Int32).alias(names[1]),
            priced.rolling_mean(window, min_samples=window, center=True).alias(names[2]),
        )
        .cast(schema)
    )


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the price and moving-average tables if they do not exist."""
    con.execute(TABLES_DDL)


def upsert_prices(con: duckdb.DuckDBPyConnection, prices: pl.DataFrame, *, coin: str,
                  currency: str, window_start: datetime, window_end: datetime,
                  fetched_at: datetime) -> int:
    """Insert or update ``prices`` (``day``, ``price``) keyed by (coin, currency, day).

    A row whose price is unchanged is left as it was, with the window and fetch time of the
    request that first stored that price: storing the same prices again changes nothing,
    so reruns leave the table identical. A changed price replaces the row, window and
    fetch time included. One transaction; the tables are created when missing.

    Returns:
        The number of rows inserted or changed.
    """
    for name, instant in (("window_start", window_start), ("window_end", window_end),
                          ("fetched_at", fetched_at)):
        if instant.tzinfo is None:
            msg = f"upsert_prices: {name} must be timezone-aware, got {instant!r}"
            raise ValueError(msg)
    params = {"coin": coin, "currency": currency}
    with _registered(con, prices.select("day", "price").cast(PRICE_SCHEMA)):
        changed = con.execute(_CHANGED_PRICES, params).fetchone()
        con.execute(_UPSERT_PRICES, {**params, "window_start": window_start,
                                     "window_end": window_end, "fetched_at": fetched_at})
    return int(changed[0]) if changed else 0


def read_prices(con: duckdb.DuckDBPyConnection, *, coin: str, currency: str,
                first_day: date, last_day: date) -> pl.DataFrame:
    """``day``, ``price`` of the stored prices from ``first_day`` to ``last_day``, by day."""
    create_tables(con)
    frame = con.sql(
        "SELECT day, price FROM coingecko_prices_daily "
        "WHERE coin = $coin AND currency = $currency AND day BETWEEN $first AND $last "
        "ORDER BY day",
        params={"coin": coin, "currency": currency, "first": first_day,
                "last": last_day}).pl()
    return frame.cast(PRICE_SCHEMA)


def upsert_moving_average(con: duckdb.DuckDBPyConnection, averages: pl.DataFrame, *,
                          coin: str, currency: str) -> None:
    """Insert or replace the rows of ``moving_average(...)`` (5-day window) by day.

    The rows are a function of the stored prices alone (no timestamps), so rerunning gives
    an identical table.
    """
    missing = [c for c in MOVING_AVERAGE_SCHEMA if c not in averages.columns]
    if missing:
        msg = f"upsert_moving_average: columns {missing} missing (a {WINDOW}-day window?)"
        raise ValueError(msg)
    with _registered(con, averages.select(list(MOVING_AVERAGE_SCHEMA))
                     .cast(MOVING_AVERAGE_SCHEMA)):
        con.execute(_UPSERT_MOVING_AVERAGE, {"coin": coin, "currency": currency})


@contextlib.contextmanager
def _registered(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> Iterator[None]:
    """``frame`` visible to SQL as ``_coingecko_incoming``, inside one transaction."""
    create_tables(con)
    con.register(_INCOMING, frame.to_arrow())
    con.begin()
    try:
        yield
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.unregister(_INCOMING)


def _day(timestamp_ms: int) -> date:
    return date(1970, 1, 1) + timedelta(days=timestamp_ms // DAY_MS)


def _instant(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat()
