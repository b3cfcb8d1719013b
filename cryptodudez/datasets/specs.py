"""The datasets CryptoDudez receives, as converters from String fields to typed tables.

Every converter takes the parsed String fields of well-formed records (plus ``source`` and
``line``) and returns the table's columns plus ``_parse_error``: the reason a record whose
fields have text that does not parse must be quarantined.
"""

from collections.abc import Callable
from typing import cast

import polars as pl

from cryptodudez.checks import schemas
from cryptodudez.datasets import cryptomood
from cryptodudez.datasets.registry import DatasetSpec, TypedRead, parse_all

STOCK_HEADER = ("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume")
CRYPTO_HEADER = (
    "SNo", "Name", "Symbol", "Date", "High", "Low", "Open", "Close", "Volume", "Marketcap",
)
SYMBOLS_HEADER = (
    "Nasdaq Traded", "Symbol", "Security Name", "Listing Exchange", "Market Category", "ETF",
    "Round Lot Size", "Test Issue", "Financial Status", "CQS Symbol", "NASDAQ Symbol",
    "NextShares",
)
TWEETS_V1_HEADER = (
    "", "id", "conversation_id", "created_at", "date", "timezone", "place", "tweet",
    "language", "hashtags", "cashtags", "user_id", "user_id_str", "username", "name", "day",
    "hour", "link", "urls", "photos", "video", "thumbnail", "retweet", "nlikes", "nreplies",
    "nretweets", "quote_url", "search", "near", "geo", "source", "user_rt_id", "user_rt",
    "retweet_id", "reply_to", "retweet_date", "translate", "trans_src", "trans_dest",
)
TWEETS_V2_HEADER = (
    "id", "conversation_id", "created_at", "date", "time", "timezone", "user_id", "username",
    "name", "place", "tweet", "language", "mentions", "urls", "photos", "replies_count",
    "retweets_count", "likes_count", "hashtags", "cashtags", "link", "retweet", "quote_url",
    "video", "thumbnail", "near", "geo", "source", "user_rt_id", "user_rt", "retweet_id",
    "reply_to", "retweet_date", "translate", "trans_src", "trans_dest",
)

LINEAGE = ("_source", "_line")


def _float(col: str) -> pl.Expr:
    """A finite number, else null: the row is quarantined as unparseable.

    Polars' cast reads ``inf``, ``Infinity``, ``NaN`` and ``1e400`` (an overflow) as numbers.
    """
    value = pl.col(col).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def _int(col: str) -> pl.Expr:
    """Integers, exact up to 2**63 (tweet ids need all 64 bits, so never via a float).

    Integral floats such as ``17300.0`` (vendors write volumes that way) are accepted when
    they are small enough to be exact; anything else is null.
    """
    text = pl.col(col).str.strip_chars()
    exact = text.cast(pl.Int64, strict=False)
    as_float = text.cast(pl.Float64, strict=False)
    integral = (as_float == as_float.floor()) & (as_float.abs() < 2.0**53)
    return pl.coalesce(exact, pl.when(integral).then(as_float.cast(pl.Int64, strict=False)))


# Epoch milliseconds a datetime can hold (years 1 to 9999). Outside it polars' cast to a
# datetime panics (a ``BaseException`` no error handling catches) instead of giving null.
EPOCH_MS_RANGE = (-62_135_596_800_000, 253_402_300_799_999)


def _epoch_ms(col: str) -> pl.Expr:
    """Epoch milliseconds as a UTC datetime; null (a parse error) outside ``EPOCH_MS_RANGE``."""
    ms = _int(col)
    return (pl.when(ms.is_between(*EPOCH_MS_RANGE)).then(ms)
            .cast(pl.Datetime("ms")).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))


def _date(col: str, fmt: str = "%Y-%m-%d") -> pl.Expr:
    return pl.col(col).str.strptime(pl.Date, fmt, strict=False)


def _lineage() -> list[pl.Expr]:
    return [pl.col("__source").alias("_source"), pl.col("__line").alias("_line")]


def member_path(source: pl.Expr) -> pl.Expr:
    """Path of a member inside its archive (``zip://<member>::<archive>``), else the URI."""
    return pl.coalesce(source.str.extract(r"^zip://(.*?)::", 1), source)


def path_symbol(source: pl.Expr) -> pl.Expr:
    """Ticker from a member path like ``…/stocks/AAPL.csv``."""
    return member_path(source).str.extract(r"([^/]+)\.[^./]+$", 1)


def path_asset_class(source: pl.Expr) -> pl.Expr:
    """``stock`` or ``etf`` from the member's folder, null when the folder says neither."""
    folder = member_path(source).str.extract(r"([^/]+)/[^/]+$", 1).str.to_lowercase()
    return pl.when(folder == "stocks").then(pl.lit("stock")).when(folder == "etfs").then(
        pl.lit("etf")
    )


def per_source(fields: pl.DataFrame, derive: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    """A per-member value (derived from its path once per member, not once per row).

    ``__sid`` numbers the members densely from 0, so the derived values are gathered by it.
    """
    sids = fields["__sid"]
    first = fields.select(pl.col("__sid", "__source").gather(sids.arg_unique()))
    derived = first.select(derive(pl.col("__source"))).to_series()
    size = cast("int", sids.max()) + 1 if sids.len() else 0
    lookup = pl.Series([None] * size, dtype=derived.dtype).scatter(first["__sid"], derived)
    return pl.lit(lookup.gather(sids))


def _stock_columns(fields: pl.DataFrame, values: pl.DataFrame) -> list[pl.Expr]:
    """The stock table's columns from typed ``values`` (and the member of each row)."""
    return [
        per_source(fields, path_symbol).alias("Symbol"),
        pl.lit(None, dtype=pl.String).alias("Security Name"),
        pl.when(pl.lit(values["Date"]).is_not_null()).then(pl.col("Date")).alias("Date"),
        *[pl.lit(values[c]).alias(c)
          for c in ("Open", "High", "Low", "Close", "Adj Close", "Volume")],
        per_source(fields, path_asset_class).alias("asset_class"),
        *_lineage(),
    ]


def convert_stock_prices(fields: pl.DataFrame) -> pl.DataFrame:
    """Stock or ETF daily bars; the symbol and asset class come from the member path."""
    parsed = {
        "Date": _date("Date"),
        "Open": _float("Open"),
        "High": _float("High"),
        "Low": _float("Low"),
        "Close": _float("Close"),
        "Adj Close": _float("Adj Close"),
        "Volume": _int("Volume"),
    }
    values, errors = parse_all(fields, parsed)
    return fields.select(*_stock_columns(fields, values), pl.lit(errors))


_PRICES = ("Open", "High", "Low", "Close", "Adj Close")
STOCK_TYPED_SCHEMA: dict[str, pl.DataType] = {
    "Date": pl.String(), **{c: pl.Float64() for c in _PRICES}, "Volume": pl.Float64(),
}


def assemble_stock_prices(typed: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """The typed read's rows as stock table rows, and which rows the String path agrees on.

    Volume is read as a float (vendors write ``17300.0``), so a row is clean only when it is
    integral and below 2**53, where the float is exact; every field must be present and the
    date must parse, exactly as ``convert_stock_prices`` requires.
    """
    volume = pl.col("Volume")
    parsed = typed.select(
        Date=_date("Date"),
        **{c: pl.col(c) for c in _PRICES},
        Volume=volume.cast(pl.Int64, strict=False),
        _integral=(volume == volume.floor()) & (volume.abs() < 2.0**53),
    ).with_columns(
        _clean=pl.all_horizontal(pl.col("Date", *_PRICES).is_not_null(), "_integral")
        .fill_null(value=False),
    )
    return typed.select(_stock_columns(typed, parsed)), parsed["_clean"]


def convert_symbols_meta(fields: pl.DataFrame) -> pl.DataFrame:
    """The NASDAQ symbol directory, kept as text except ``Round Lot Size``."""
    parsed = {"Round Lot Size": _int("Round Lot Size")}
    text_cols = [c for c in SYMBOLS_HEADER if c != "Round Lot Size"]
    values, errors = parse_all(fields, parsed)
    return fields.select(
        *[pl.col(c).str.strip_chars() for c in text_cols],
        pl.lit(values["Round Lot Size"]).alias("Round Lot Size"),
        *_lineage(),
        pl.lit(errors),
    )


def convert_crypto_prices(fields: pl.DataFrame) -> pl.DataFrame:
    """Daily coin prices; ``Date`` is the UTC day, ``timestamp`` the vendor's close time."""
    parsed = {
        "SNo": _int("SNo"),
        "Date": pl.col("Date").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False),
        "High": _float("High"),
        "Low": _float("Low"),
        "Open": _float("Open"),
        "Close": _float("Close"),
        "Volume": _float("Volume"),
        "Marketcap": _float("Marketcap"),
    }
    values, errors = parse_all(fields, parsed)
    stamp = values["Date"]
    return fields.select(
        pl.lit(values["SNo"]).alias("SNo"),
        pl.col("Name"),
        pl.col("Symbol"),
        pl.lit(stamp.dt.date().dt.to_string("%Y-%m-%d")).alias("Date"),
        pl.lit(stamp.dt.replace_time_zone("UTC")).alias("timestamp"),
        *[pl.lit(values[c]).alias(c)
          for c in ("High", "Low", "Open", "Close", "Volume", "Marketcap")],
        *_lineage(),
        pl.lit(errors),
    )


def _quoted_items(col: str) -> pl.Expr:
    """Items of a Python-repr list of strings such as ``['a', 'b']``."""
    return pl.col(col).fill_null("[]").str.extract_all(r"'([^']*)'").list.eval(
        pl.element().str.strip_chars("'")
    )


_TWEET_NUMBERS = ("likes", "retweets", "replies")


def _tweet_common(fields: pl.DataFrame, parsed: dict[str, pl.Expr],
                  counts: dict[str, str]) -> pl.DataFrame:
    """The canonical tweet columns; ``counts`` maps likes/retweets/replies to source fields."""
    values, errors = parse_all(fields, parsed)
    return fields.select(
        pl.lit(values["id"]).alias("tweet_id"),
        pl.lit(values["created_at"]).alias("created_at"),
        pl.col("tweet").alias("text"),
        *[pl.lit(values[counts[name]]).alias(name) for name in _TWEET_NUMBERS],
        pl.col("tweet").fill_null("").str.extract_all(r"@\w+").alias("mentions"),
        _quoted_items("hashtags").alias("hashtags"),
        _quoted_items("urls").alias("urls"),
        pl.col("language"),
        pl.lit(values["conversation_id"]).alias("conversation_id"),
        pl.col("reply_to").fill_null("[]").str.extract_all(r"'id': '\d+'")
        .list.eval(pl.element().str.extract(r"(\d+)", 1).cast(pl.Int64))
        .alias("reply_to_user_ids"),
        *_lineage(),
        pl.lit(errors),
    )


def convert_tweets_v1(fields: pl.DataFrame) -> pl.DataFrame:
    """Tweets scraped with ``created_at`` in epoch milliseconds (the 2010-2020 schema)."""
    counts = {"likes": "nlikes", "retweets": "nretweets", "replies": "nreplies"}
    parsed = {
        "id": _int("id"),
        "conversation_id": _int("conversation_id"),
        "created_at": _epoch_ms("created_at"),
        **{src: _int(src) for src in counts.values()},
    }
    return _tweet_common(fields, parsed, counts)


def convert_tweets_v2(fields: pl.DataFrame) -> pl.DataFrame:
    """Tweets with local ``created_at`` text and a ``timezone`` offset (the 2021+ schema)."""
    local = pl.col("created_at").str.slice(0, 19).str.strptime(
        pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False
    )
    offset = pl.col("timezone").str.extract(r"^([+-])(\d{2})(\d{2})$", 0)
    sign = pl.when(offset.str.slice(0, 1) == "-").then(-1).otherwise(1)
    minutes = sign * (
        offset.str.slice(1, 2).cast(pl.Int64, strict=False) * 60
        + offset.str.slice(3, 2).cast(pl.Int64, strict=False)
    )
    counts = {"likes": "likes_count", "retweets": "retweets_count",
              "replies": "replies_count"}
    parsed = {
        "id": _int("id"),
        "conversation_id": _int("conversation_id"),
        "created_at": (local - pl.duration(minutes=minutes)).dt.replace_time_zone("UTC"),
        **{src: _int(src) for src in counts.values()},
    }
    return _tweet_common(fields, parsed, counts)


DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="stock_market_daily",
        table="stock_prices",
        header=STOCK_HEADER,
        convert=convert_stock_prices,
        schema=schemas.StockPrices,
        key=("Symbol", "Date"),
        typed=TypedRead(STOCK_TYPED_SCHEMA, assemble_stock_prices),
        time_column="Date",
        description="Daily bars of one stock or ETF (stock market dataset).",
    ),
    DatasetSpec(
        name="nasdaq_symbols",
        table="symbols_meta",
        header=SYMBOLS_HEADER,
        convert=convert_symbols_meta,
        schema=schemas.SymbolsMeta,
        key=("Symbol",),
        reference=True,
        description="NASDAQ symbol directory (symbols_valid_meta.csv).",
    ),
    DatasetSpec(
        name="coin_daily_prices",
        table="crypto_prices",
        header=CRYPTO_HEADER,
        convert=convert_crypto_prices,
        schema=schemas.CryptoPrices,
        key=("Symbol", "Date"),
        time_column="Date",
        description="Daily prices of one coin (cryptocurrency historical prices).",
    ),
    DatasetSpec(
        name="tweets_twint_v1",
        table="tweets",
        header=TWEETS_V1_HEADER,
        convert=convert_tweets_v1,
        schema=schemas.Tweets,
        key=("tweet_id",),
        time_column="created_at",
        description="Tweets, epoch-millisecond schema (2010-2020 files).",
    ),
    DatasetSpec(
        name="tweets_twint_v2",
        table="tweets",
        header=TWEETS_V2_HEADER,
        convert=convert_tweets_v2,
        schema=schemas.Tweets,
        key=("tweet_id",),
        time_column="created_at",
        description="Tweets, local-time schema with timezone offset (2021+ files).",
    ),
    DatasetSpec(
        name="cryptomood_trades",
        table="coin_trades",
        header=tuple(cryptomood.TRADE_FIELDS),
        convert=cryptomood.convert_trades,
        schema=schemas.CoinTrades,
        key=("uuid",),
        record_type=cryptomood.TradeLine,
        record_schema=cryptomood.TRADE_FIELDS,
        time_column="ts",
        description="Coin trades, one JSON object a line (CryptoMood historical_coin_data).",
    ),
    DatasetSpec(
        name="cryptomood_sentiments",
        table="tweet_sentiments",
        header=tuple(cryptomood.SENTIMENT_FIELDS),
        convert=cryptomood.convert_sentiments,
        schema=schemas.TweetSentiments,
        key=("sentiment_id",),
        record_type=cryptomood.SentimentLine,
        record_schema=cryptomood.SENTIMENT_FIELDS,
        time_column="ts",
        description="Tweet sentiment scores with the coins each tweet mentions, one JSON "
                    "object a line (CryptoMood historical_sentiment_data).",
    ),
)

TABLES: tuple[str, ...] = tuple(dict.fromkeys(spec.table for spec in DATASETS))


NAMES_SCHEMA = {"Symbol": pl.String, "_name": pl.String}


def security_names(symbols: pl.DataFrame) -> pl.DataFrame:
    """The symbol directory as ``Symbol`` -> ``_name``: one row a symbol, sorted by symbol.

    Sorted, so two directories naming every symbol alike are equal frames. A directory with
    no rows (nothing published yet, or no ``Security Name`` column) names no symbol.
    """
    if symbols.height == 0 or "Security Name" not in symbols.columns:
        return pl.DataFrame(schema=NAMES_SCHEMA)
    return (symbols.select("Symbol", pl.col("Security Name").alias("_name"))
            .unique("Symbol", keep="last", maintain_order=True).sort("Symbol")
            .cast(pl.String))


def attach_security_names(stocks: pl.DataFrame, symbols: pl.DataFrame) -> pl.DataFrame:
    """Set ``Security Name`` to the symbol directory's name (null where the symbol is unknown).

    The name depends on the symbol and the directory alone, never on the name a row had: rows
    named from an older directory (or from none) come out as fresh rows would, in the same
    order, which is what lets a published table be brought up to date with a later directory.
    """
    names = security_names(symbols)
    return stocks.join(names, on="Symbol", how="left", maintain_order="left").with_columns(
        pl.col("_name").alias("Security Name")
    ).drop("_name")


def stale_security_names(stocks: pl.LazyFrame, symbols: pl.DataFrame) -> pl.LazyFrame:
    """The rows of ``stocks`` whose ``Security Name`` is not the directory's name for them.

    A row is stale when the directory names its symbol otherwise, or names it no more, or
    names it now while the row has none (prices published before the directory).
    """
    names = security_names(symbols).lazy()
    return stocks.join(names, on="Symbol", how="left").filter(
        pl.col("Security Name").ne_missing(pl.col("_name"))
    ).drop("_name")
