"""The CryptoMood datasets: coin trades and tweet sentiments, delivered as JSON lines.

Each line is decoded strictly into a struct here (:mod:`cryptodudez.datasets.jsonl`), then a
converter turns the typed rows into the table's columns and names what is inconsistent
(``_parse_error``): a trade must name exactly one coin, and that coin must be the base of
its ``symbol_id`` (``COINBASE_SPOT_ETH_USD`` trades ETH in USD).
"""

import hashlib
from datetime import datetime
from typing import Annotated

import msgspec
import polars as pl

Coin = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{2,10}$")]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]  # RFC 3339 with a zone; never naive
# What an Int64 column holds: msgspec decodes any JSON integer, however large.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_UTC = pl.Datetime("us", "UTC")
SYMBOL_ID = r"^([A-Z0-9]+)_SPOT_([A-Z0-9]+)_([A-Z0-9]+)$"


class TradeLine(msgspec.Struct, forbid_unknown_fields=True):
    """One line of ``historical_coin_data.txt``."""

    coins: list[Coin]
    price: float
    sequence: Int64
    size: float
    symbol_id: str
    taker_side: str
    timestamp: Instant
    time_exchange: Instant
    type: str
    uuid: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


TRADE_FIELDS: dict[str, pl.DataType] = {
    "coins": pl.List(pl.String), "price": pl.Float64(), "sequence": pl.Int64(),
    "size": pl.Float64(), "symbol_id": pl.String(), "taker_side": pl.String(),
    "timestamp": _UTC, "time_exchange": _UTC, "type": pl.String(), "uuid": pl.String(),
}


class SentimentLine(msgspec.Struct, forbid_unknown_fields=True):
    """One line of ``historical_sentiment_data.txt``."""

    coins: list[Coin]
    sentiment_polarity: float
    text: str
    timestamp: Instant


SENTIMENT_FIELDS: dict[str, pl.DataType] = {
    "coins": pl.List(pl.String), "sentiment_polarity": pl.Float64(), "text": pl.String(),
    "timestamp": _UTC,
}


def _lineage() -> list[pl.Expr]:
    return [pl.col("__source").alias("_source"), pl.col("__line").alias("_line")]


def convert_trades(rows: pl.DataFrame) -> pl.DataFrame:
    """The ``coin_trades`` columns; ``coin`` is the one coin the trade names."""
    parts = pl.col("symbol_id").str.extract_groups(SYMBOL_ID)
    n_coins = pl.col("coins").list.len()
    coin = pl.when(n_coins == 1).then(pl.col("coins").list.first())
    error = (
        pl.when(n_coins != 1)
        .then(pl.format("a trade names exactly one coin, not {}",
                        pl.col("coins").list.join(",")))
        .when(parts.struct.field("2").is_null())
        .then(pl.format("unparseable symbol_id: '{}' (expected EXCHANGE_SPOT_BASE_QUOTE)",
                        pl.col("symbol_id").str.slice(0, 80)))
        .when(parts.struct.field("2") != coin)
        .then(pl.format("symbol_id {} trades {}, but the line names coin {}",
                        pl.col("symbol_id"), parts.struct.field("2"), coin))
    )
    return rows.select(
        "uuid",
        coin.alias("coin"),
        parts.struct.field("1").alias("exchange"),
        parts.struct.field("3").alias("quote"),
        pl.col("timestamp").cast(_UTC).alias("ts"),
        pl.col("time_exchange").cast(_UTC),
        "price", "size", "sequence", "taker_side", "type", "symbol_id",
        *_lineage(),
        error.alias("_parse_error"),
    )


def sentiment_id(rows: pl.DataFrame) -> pl.Series:
    """A stable id of a sentiment record: blake2b of its canonical JSON (fields in order).

    The lines carry no id; two lines with the same instant, coins, polarity and text are the
    same record (a re-delivery), whatever their whitespace or key order.
    """
    out = []
    for coins, polarity, text, ts in rows.select(
            "coins", "sentiment_polarity", "text", "timestamp").iter_rows():
        canonical = msgspec.json.encode([sorted(coins), polarity, text, ts.isoformat()])
        out.append(hashlib.blake2b(canonical, digest_size=8).hexdigest())
    return pl.Series("sentiment_id", out, dtype=pl.String)


def convert_sentiments(rows: pl.DataFrame) -> pl.DataFrame:
    """The ``tweet_sentiments`` columns: one row per tweet with the coins it mentions."""
    return rows.select(
        pl.lit(sentiment_id(rows)).alias("sentiment_id"),
        pl.col("timestamp").cast(_UTC).alias("ts"),
        pl.col("coins").list.unique(maintain_order=True).alias("coins"),
        pl.col("sentiment_polarity").alias("polarity"),
        "text",
        *_lineage(),
        pl.when(pl.col("coins").list.len() == 0)
        .then(pl.lit("a sentiment names no coin")).alias("_parse_error"),
    )
