"""The consumer's state: per-(coin, bucket) aggregates, applied keys and quarantine, in DuckDB.

One DuckDB file per consumer (per partition when the stream is split by coin). A batch of
messages is applied in one transaction: the aggregates are merged (``INSERT ... ON CONFLICT
DO UPDATE``), the keys of the applied records, the quarantined messages and the progress row
(highest stream sequence applied) are written, then the transaction commits; the consumer
acks the batch only after that. Every merge is commutative (last price by ``(ts, stream
sequence)``, sums, counts, maxima), so the state does not depend on delivery order.

Idempotence is by record key, checked against the keys already applied: a redelivered
message (same key, same stream sequence) is skipped; the same record under another stream
sequence (republished after the broker's dedupe window) is quarantined as a duplicate key,
as the lake quarantines a repeated key. The keys live in the file and, for speed, in memory
(loaded on open).

Timestamps are stored as microseconds since the epoch (UTC), exactly as polars holds them.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Self

import duckdb
import polars as pl

from cryptodudez.mood.series import parse_bucket, price_series

_UTC = pl.Datetime("us", "UTC")
_DDL = (
    """CREATE TABLE IF NOT EXISTS progress (
        consumer VARCHAR PRIMARY KEY, applied_seq BIGINT NOT NULL, messages BIGINT NOT NULL,
        applied BIGINT NOT NULL, quarantined BIGINT NOT NULL, skipped BIGINT NOT NULL,
        batches BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS price_agg (
        coin VARCHAR NOT NULL, bucket VARCHAR NOT NULL, bucket_start_us BIGINT NOT NULL,
        price DOUBLE NOT NULL, last_trade_us BIGINT NOT NULL, last_seq BIGINT NOT NULL,
        trades BIGINT NOT NULL, PRIMARY KEY (coin, bucket, bucket_start_us))""",
    """CREATE TABLE IF NOT EXISTS sentiment_agg (
        coin VARCHAR NOT NULL, bucket VARCHAR NOT NULL, bucket_start_us BIGINT NOT NULL,
        polarity_sum DOUBLE NOT NULL, tweets BIGINT NOT NULL, last_tweet_us BIGINT NOT NULL,
        PRIMARY KEY (coin, bucket, bucket_start_us))""",
    """CREATE TABLE IF NOT EXISTS applied_keys (
        kind VARCHAR NOT NULL, coin VARCHAR NOT NULL, key VARCHAR NOT NULL,
        seq BIGINT NOT NULL, PRIMARY KEY (kind, coin, key))""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        seq BIGINT PRIMARY KEY, subject VARCHAR NOT NULL, origin VARCHAR, raw VARCHAR,
        reason VARCHAR NOT NULL)""",
)
_NEWER = ("(excluded.last_trade_us > price_agg.last_trade_us OR (excluded.last_trade_us = "
          "price_agg.last_trade_us AND excluded.last_seq > price_agg.last_seq))")
_MERGE_PRICES = f"""
INSERT INTO price_agg SELECT coin, bucket, bucket_start_us, price, last_trade_us, last_seq,
    trades FROM batch_prices
ON CONFLICT (coin, bucket, bucket_start_us) DO UPDATE SET
    price = CASE WHEN {_NEWER} THEN excluded.price ELSE price_agg.price END,
    last_seq = CASE WHEN {_NEWER} THEN excluded.last_seq ELSE price_agg.last_seq END,
    last_trade_us = greatest(excluded.last_trade_us, price_agg.last_trade_us),
    trades = price_agg.trades + excluded.trades
"""
_MERGE_SENTIMENTS = """
INSERT INTO sentiment_agg SELECT coin, bucket, bucket_start_us, polarity_sum, tweets,
    last_tweet_us FROM batch_sentiments
ON CONFLICT (coin, bucket, bucket_start_us) DO UPDATE SET
    polarity_sum = sentiment_agg.polarity_sum + excluded.polarity_sum,
    tweets = sentiment_agg.tweets + excluded.tweets,
    last_tweet_us = greatest(excluded.last_tweet_us, sentiment_agg.last_tweet_us)
"""
_UPSERT_PROGRESS = """
INSERT INTO progress VALUES (?, ?, ?, ?, ?, ?, 1)
ON CONFLICT (consumer) DO UPDATE SET
    applied_seq = greatest(progress.applied_seq, excluded.applied_seq),
    messages = progress.messages + excluded.messages,
    applied = progress.applied + excluded.applied,
    quarantined = progress.quarantined + excluded.quarantined,
    skipped = progress.skipped + excluded.skipped,
    batches = progress.batches + 1
"""

PRICE_AGG_SCHEMA = {"coin": pl.String, "bucket": pl.String, "bucket_start_us": pl.Int64,
                    "price": pl.Float64, "last_trade_us": pl.Int64, "last_seq": pl.Int64,
                    "trades": pl.Int64}
SENTIMENT_AGG_SCHEMA = {"coin": pl.String, "bucket": pl.String, "bucket_start_us": pl.Int64,
                        "polarity_sum": pl.Float64, "tweets": pl.Int64,
                        "last_tweet_us": pl.Int64}
KEYS_SCHEMA = {"kind": pl.String, "coin": pl.String, "key": pl.String, "seq": pl.Int64}
QUARANTINE_SCHEMA = {"seq": pl.Int64, "subject": pl.String, "origin": pl.String,
                     "raw": pl.String, "reason": pl.String}

Key = tuple[str, str, str]  # (kind, coin, record key)


@dataclass
class Delta:
    """What one batch changes: aggregates to merge, keys applied, messages quarantined."""

    prices: pl.DataFrame  # PRICE_AGG_SCHEMA, one row per (coin, bucket, bucket_start_us)
    sentiments: pl.DataFrame  # SENTIMENT_AGG_SCHEMA, likewise
    keys: pl.DataFrame  # KEYS_SCHEMA
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA
    messages: int  # messages in the batch
    skipped: int  # redeliveries of messages already applied or quarantined
    max_seq: int  # highest stream sequence in the batch


@dataclass(frozen=True)
class Progress:
    """The progress row of a consumer."""

    applied_seq: int
    messages: int
    applied: int
    quarantined: int
    skipped: int
    batches: int


class StateStore:
    """A consumer's DuckDB state file (use as a context manager)."""

    def __init__(self, path: Path, consumer: str) -> None:
        self.path = path
        self.consumer = consumer
        self._con = duckdb.connect(str(path))
        for ddl in _DDL:
            self._con.execute(ddl)
        self.keys: dict[Key, int] = {
            (kind, coin, key): seq for kind, coin, key, seq in
            self._con.sql("SELECT kind, coin, key, seq FROM applied_keys").fetchall()}
        self.quarantined: set[int] = {
            seq for (seq,) in self._con.sql("SELECT seq FROM quarantine").fetchall()}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._con.close()

    def commit(self, delta: Delta) -> None:
        """Apply ``delta`` in one transaction; the in-memory key set follows only on commit."""
        con = self._con
        con.begin()
        try:
            if delta.prices.height:
                con.register("batch_prices", delta.prices.to_arrow())
                con.execute(_MERGE_PRICES)
                con.unregister("batch_prices")
            if delta.sentiments.height:
                con.register("batch_sentiments", delta.sentiments.to_arrow())
                con.execute(_MERGE_SENTIMENTS)
                con.unregister("batch_sentiments")
            if delta.keys.height:
                con.register("batch_keys", delta.keys.to_arrow())
                con.execute("INSERT INTO applied_keys SELECT kind, coin, key, seq "
                            "FROM batch_keys")
                con.unregister("batch_keys")
            if delta.quarantine.height:
                con.register("batch_quarantine", delta.quarantine.to_arrow())
                con.execute("INSERT INTO quarantine SELECT seq, subject, origin, raw, reason "
                            "FROM batch_quarantine")
                con.unregister("batch_quarantine")
            con.execute(_UPSERT_PROGRESS, [
                self.consumer, delta.max_seq, delta.messages, delta.keys.height,
                delta.quarantine.height, delta.skipped])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        self.keys.update(((k, c, r), s) for k, c, r, s in delta.keys.iter_rows())
        self.quarantined.update(delta.quarantine["seq"].to_list())

    def progress(self) -> Progress:
        """The progress row (zeros before the first batch)."""
        rows = self._con.sql(
            "SELECT applied_seq, messages, applied, quarantined, skipped, batches "
            "FROM progress WHERE consumer = ?", params=[self.consumer]).fetchall()
        return Progress(*(rows[0] if rows else (0, 0, 0, 0, 0, 0)))

    def price_aggregates(self) -> pl.DataFrame:
        """Every price aggregate (``bucket_start`` and ``last_trade_ts`` as UTC datetimes)."""
        frame = pl.DataFrame(self._con.sql(
            "SELECT * FROM price_agg ORDER BY coin, bucket, bucket_start_us").pl(),
        ).cast(PRICE_AGG_SCHEMA)  # type: ignore[arg-type]
        return frame.select(
            "coin", "bucket", pl.col("bucket_start_us").cast(_UTC).alias("bucket_start"),
            "price", pl.col("last_trade_us").cast(_UTC).alias("last_trade_ts"), "last_seq",
            "trades")

    def sentiment_aggregates(self) -> pl.DataFrame:
        """Every sentiment aggregate with its mean (``sentiment``) and count (``tweets``)."""
        frame = pl.DataFrame(self._con.sql(
            "SELECT * FROM sentiment_agg ORDER BY coin, bucket, bucket_start_us").pl(),
        ).cast(SENTIMENT_AGG_SCHEMA)  # type: ignore[arg-type]
        return frame.select(
            "coin", "bucket", pl.col("bucket_start_us").cast(_UTC).alias("bucket_start"),
            (pl.col("polarity_sum") / pl.col("tweets")).alias("sentiment"), "tweets",
            pl.col("last_tweet_us").cast(_UTC).alias("last_tweet_ts"))

    def quarantine(self) -> pl.DataFrame:
        """The quarantined messages (stream sequence, subject, origin, text, reason)."""
        return pl.DataFrame(self._con.sql(
            "SELECT * FROM quarantine ORDER BY seq").pl()).cast(
                QUARANTINE_SCHEMA)  # type: ignore[arg-type]


def series_of(prices: pl.DataFrame, sentiments: pl.DataFrame, coin: str, bucket: str,
              ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One coin's price series and sentiment buckets on ``bucket``, from the aggregates.

    The frames have :func:`cryptodudez.mood.series.price_buckets`' and
    :func:`~cryptodudez.mood.series.sentiment_buckets`' columns, ready for
    :func:`~cryptodudez.mood.series.join_buckets`.
    """
    mine = (pl.col("coin") == coin) & (pl.col("bucket") == bucket)
    price = price_series(prices.filter(mine).select(
        "bucket_start", "price", "last_trade_ts", "trades"), coin, bucket)
    width = pl.lit(parse_bucket(bucket))
    mood = sentiments.filter(mine).sort("bucket_start").select(
        "bucket_start", (pl.col("bucket_start") + width).alias("bucket_end"), "sentiment",
        "tweets", "last_tweet_ts")
    return price, mood
