"""Pandera (polars backend) schemas of the validated tables.

These are the single source of truth for row rules: the ingest step quarantines every row a
schema rejects (with the rule's name as the reason), and the asset checks re-validate the
written tables against the same schemas. Validation always runs on collected DataFrames,
so value checks really run (on a LazyFrame pandera checks only dtypes).
"""

from datetime import date
from typing import Annotated, Any

import pandera.polars as pa
import polars as pl

from cryptodudez.datasets.registry import today_utc

TICKER_PATTERN = r"^[A-Z0-9^][A-Z0-9.$^=-]{0,19}$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


def _not_after_today(data: Any, column: str) -> pl.LazyFrame:
    return data.lazyframe.select(pl.col(column).is_null() | (pl.col(column) <= today_utc()))


# The earliest plausible dates: the first year of the stock features' partitions (a bar
# before it could be in no partition), and the Bitcoin network's first block (no coin was
# priced before it). A vendor's 1600-01-01 passed validation, then failed a blocking check.
FIRST_STOCK_DATE = "1960-01-01"
FIRST_COIN_DATE = "2009-01-03"
FIRST_TWEET_DATE = "2006-03-21"  # the first tweet: no sentiment of one is older


def _day_not_after_today(data: Any, column: str) -> pl.LazyFrame:
    """The day of timestamp ``column`` is not after today (UTC).

    Compared as dates: as text, year 10000 (``9999-12-31T23:59:59-01:00`` in UTC) sorted
    before today and passed (a reviewer).
    """
    return data.lazyframe.select(
        pl.col(column).dt.date() <= pl.lit(date.fromisoformat(today_utc())))


def _day_not_before(data: Any, column: str, first: str) -> pl.LazyFrame:
    """The day of timestamp ``column`` is ``first`` or later."""
    return data.lazyframe.select(pl.col(column).dt.date() >= pl.lit(date.fromisoformat(first)))


def _not_before(data: Any, column: str, first: str) -> pl.LazyFrame:
    return data.lazyframe.select(pl.col(column).is_null() | (pl.col(column) >= first))


def _finite(data: Any) -> pl.LazyFrame:
    """No infinity and no NaN (``ge=0`` alone lets +inf through: inf >= 0)."""
    return data.lazyframe.select(pl.col(data.key).is_finite())


class StockPrices(pa.DataFrameModel):
    """Daily bars of stocks and ETFs, one row per symbol and date."""

    # The file's name: a ticker, never a path's leftovers ("..\\..\\WWW", "CVX a+b%20c#1?"
    # were published as symbols until a QA walkthrough); ^ and = for indices and FX pairs.
    Symbol: str = pa.Field(nullable=False, str_matches=TICKER_PATTERN)
    Security_Name: str = pa.Field(nullable=True, alias="Security Name")
    Date: str = pa.Field(nullable=False, str_matches=DATE_PATTERN)
    Open: float = pa.Field(nullable=False, ge=0)
    High: float = pa.Field(nullable=False, ge=0)
    Low: float = pa.Field(nullable=False, ge=0)
    Close: float = pa.Field(nullable=False, ge=0)
    Adj_Close: float = pa.Field(nullable=False, ge=0, alias="Adj Close")
    Volume: pl.Int64 = pa.Field(nullable=False, ge=0)

    @pa.check("Open", "High", "Low", "Close", "Adj Close", name="finite")
    def finite(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """A price is a finite number."""
        return _finite(data)

    @pa.dataframe_check(name="high_ge_low")
    def high_ge_low(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """The day's high is at least its low."""
        return data.lazyframe.select(pl.col("High") >= pl.col("Low"))

    @pa.dataframe_check(name="date_not_in_future")
    def date_not_in_future(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """No bar is dated after today (UTC)."""
        return _not_after_today(data, "Date")

    @pa.dataframe_check(name=f"date_not_before_{FIRST_STOCK_DATE}")
    def date_not_before_first(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """No bar is dated before 1960 (the stock features' first partition)."""
        return _not_before(data, "Date", FIRST_STOCK_DATE)

    class Config:
        """Extra columns (asset class, lineage) are allowed."""

        strict = False
        coerce = False


class SymbolsMeta(pa.DataFrameModel):
    """NASDAQ symbol directory: one row per symbol."""

    Symbol: str = pa.Field(nullable=False, str_length={"min_value": 1})
    Security_Name: str = pa.Field(nullable=True, alias="Security Name")
    ETF: str = pa.Field(nullable=True, isin=["Y", "N"])

    class Config:
        """The directory has many optional columns."""

        strict = False
        coerce = False


class CryptoPrices(pa.DataFrameModel):
    """Daily coin prices in USD, one row per coin symbol and date."""

    Name: str = pa.Field(nullable=False)
    Symbol: str = pa.Field(nullable=False, str_length={"min_value": 1})
    Date: str = pa.Field(nullable=False, str_matches=DATE_PATTERN)
    High: float = pa.Field(nullable=False, ge=0)
    Low: float = pa.Field(nullable=False, ge=0)
    Open: float = pa.Field(nullable=False, ge=0)
    Close: float = pa.Field(nullable=False, ge=0)
    Volume: float = pa.Field(nullable=False, ge=0)
    Marketcap: float = pa.Field(nullable=False, ge=0)

    @pa.check("High", "Low", "Open", "Close", "Volume", "Marketcap", name="finite")
    def finite(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """A price, volume or market cap is a finite number."""
        return _finite(data)

    @pa.dataframe_check(name="high_ge_low")
    def high_ge_low(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """The day's high is at least its low."""
        return data.lazyframe.select(pl.col("High") >= pl.col("Low"))

    @pa.dataframe_check(name="date_not_in_future")
    def date_not_in_future(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """No price is dated after today (UTC)."""
        return _not_after_today(data, "Date")

    @pa.dataframe_check(name=f"date_not_before_{FIRST_COIN_DATE}")
    def date_not_before_first(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """No coin price is dated before the Bitcoin network's first block."""
        return _not_before(data, "Date", FIRST_COIN_DATE)

    class Config:
        """Lineage columns are allowed."""

        strict = False
        coerce = False


# A count no tweet can have (the most liked tweets have about 10 million likes). Bounded so
# that a day's sum of a million such tweets still fits in an Int64: unbounded, two garbage
# counts of 2**62 made polars' daily sum wrap negative and the Spark twin abort on ANSI
# overflow (a review, session 23).
MAX_ENGAGEMENT = 10**12


class Tweets(pa.DataFrameModel):
    """Canonical tweets, one row per tweet id."""

    tweet_id: pl.Int64 = pa.Field(nullable=False, gt=0)
    created_at: Annotated[pl.Datetime, "us", "UTC"] = pa.Field(nullable=False)
    text: str = pa.Field(nullable=False)
    likes: pl.Int64 = pa.Field(nullable=False, ge=0, le=MAX_ENGAGEMENT)
    retweets: pl.Int64 = pa.Field(nullable=False, ge=0, le=MAX_ENGAGEMENT)
    replies: pl.Int64 = pa.Field(nullable=False, ge=0, le=MAX_ENGAGEMENT)
    conversation_id: pl.Int64 = pa.Field(nullable=True, gt=0)
    language: str = pa.Field(nullable=True)

    @pa.dataframe_check(name="created_at_not_in_future")
    def created_at_not_in_future(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """No tweet is dated after today (UTC)."""
        return _day_not_after_today(data, "created_at")

    @pa.dataframe_check(name=f"created_at_not_before_{FIRST_TWEET_DATE}")
    def created_at_not_before_first_tweet(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """No tweet is older than the first tweet.

        Epoch seconds read as milliseconds put a 2020 tweet in January 1970 (a review,
        session 23).
        """
        return _day_not_before(data, "created_at", FIRST_TWEET_DATE)

    class Config:
        """List columns and lineage columns are allowed."""

        strict = False
        coerce = False


TAKER_SIDES = ("BUY", "SELL", "BUY_ESTIMATED", "SELL_ESTIMATED", "UNKNOWN")


class CoinTrades(pa.DataFrameModel):
    """Coin trades (CryptoMood), one row per trade uuid."""

    uuid: str = pa.Field(nullable=False, str_length={"min_value": 1})
    coin: str = pa.Field(nullable=False, str_matches=r"^[A-Z0-9]{2,10}$")
    exchange: str = pa.Field(nullable=False)
    quote: str = pa.Field(nullable=False)
    ts: Annotated[pl.Datetime, "us", "UTC"] = pa.Field(nullable=False)
    time_exchange: Annotated[pl.Datetime, "us", "UTC"] = pa.Field(nullable=False)
    price: float = pa.Field(nullable=False, gt=0, lt=1e12)
    size: float = pa.Field(nullable=False, gt=0, lt=1e15)
    sequence: pl.Int64 = pa.Field(nullable=False, ge=0)
    taker_side: str = pa.Field(nullable=False, isin=TAKER_SIDES)
    type: str = pa.Field(nullable=False, isin=["trade"])

    @pa.dataframe_check(name="ts_not_in_future")
    def ts_not_in_future(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """No trade is dated after today (UTC)."""
        return _day_not_after_today(data, "ts")

    @pa.dataframe_check(name=f"ts_not_before_{FIRST_COIN_DATE}")
    def ts_not_before_first_coin(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """No trade before the Bitcoin network's first block (0001-01-01 was applied)."""
        return _day_not_before(data, "ts", FIRST_COIN_DATE)

    class Config:
        """Lineage and the vendor's symbol_id are allowed."""

        strict = False
        coerce = False


class TweetSentiments(pa.DataFrameModel):
    """Tweet sentiments (CryptoMood), one row per record."""

    sentiment_id: str = pa.Field(nullable=False, str_length={"min_value": 16, "max_value": 16})
    ts: Annotated[pl.Datetime, "us", "UTC"] = pa.Field(nullable=False)
    polarity: float = pa.Field(nullable=False, ge=-1.0, le=1.0)
    text: str = pa.Field(nullable=False)

    @pa.dataframe_check(name="ts_not_in_future")
    def ts_not_in_future(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """No sentiment is dated after today (UTC)."""
        return _day_not_after_today(data, "ts")

    @pa.dataframe_check(name=f"ts_not_before_{FIRST_TWEET_DATE}")
    def ts_not_before_first_tweet(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """No sentiment of a tweet older than the first tweet (1900-01-01 was applied)."""
        return _day_not_before(data, "ts", FIRST_TWEET_DATE)

    @pa.dataframe_check(name="names_a_coin")
    def names_a_coin(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """Every sentiment names at least one coin (it counts for those coins only)."""
        return data.lazyframe.select(pl.col("coins").list.len() > 0)

    class Config:
        """The coins list and lineage columns are allowed."""

        strict = False
        coerce = False
