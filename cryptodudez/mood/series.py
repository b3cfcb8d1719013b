"""Per-coin price and sentiment series on a time grid, joined backward in time only.

The grid is chosen by a ``bucket`` (an ISO-8601 duration, :func:`parse_bucket`). Bucket ``k``
is the half-open interval ``[epoch + k*bucket, epoch + (k+1)*bucket)`` in UTC (aligned to the
Unix epoch, so the same bucket text always gives the same grid, whatever the data). An event
at ``ts`` belongs to the bucket ``floor((ts - epoch) / bucket)``.

Inputs are polars frames (the lake engine reads the raw JSON lines):

- trades: ``coin`` (String), ``ts`` (Datetime, UTC), ``price`` (Float64, finite and > 0);
- sentiments: ``coins`` (List[String], the coins a tweet mentions), ``ts`` (Datetime, UTC),
  ``polarity`` (Float64, -1..1; null or NaN rows are ignored).

Everything is per coin and never pooled: a tweet counts for coin ``C`` only if ``C`` is in its
``coins`` list, and a trade only for its own ``coin``. An optional date range ``[start, end)``
filters the raw events before anything is bucketed, so it narrows every series, every return
(the first bucket in range has no return) and every join.

Two functions reproduce the public solution's artefact (all coins' prices in one series, each
trade joined to the *nearest* tweet, later ones included) so tests can show the per-coin API
never produces those numbers.
"""

import math
import re
from datetime import datetime, timedelta

import polars as pl

MIN_BUCKET = timedelta(seconds=1)
MAX_BUCKET = timedelta(days=30)

_DURATION = re.compile(
    r"P(?!$)(?:(?P<d>[0-9]{1,9})D)?(?:T(?=[0-9])(?:(?P<h>[0-9]{1,9})H)?"
    r"(?:(?P<m>[0-9]{1,9})M)?(?:(?P<s>[0-9]{1,9})S)?)?")  # ASCII digits only, not \d
_UTC = pl.Datetime("us", "UTC")
_TRADES: dict[str, pl.DataType] = {"coin": pl.String(), "ts": _UTC, "price": pl.Float64()}
_SENTIMENTS: dict[str, pl.DataType] = {"coins": pl.List(pl.String), "ts": _UTC,
                                       "polarity": pl.Float64()}


def parse_bucket(text: str) -> timedelta:
    """The duration of an ISO-8601 bucket such as ``PT10S``, ``PT1M``, ``PT1H30M`` or ``P1D``.

    A strict subset of ISO-8601: ``P[nD][T[nH][nM][nS]]`` with whole non-negative numbers, upper
    case, at least one component, nothing around it. Years, months and weeks are rejected
    (months have no fixed length), as are fractions. The result must lie within
    ``MIN_BUCKET`` (1 s) .. ``MAX_BUCKET`` (30 days), both inclusive.

    Raises:
        ValueError: naming the value, when it is not such a duration or out of bounds.
    """
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    raw = str(text)  # shown cut short: the value may be a whole query string
    shown = repr(text) if len(raw) <= 40 else f"{raw[:40]!r}... ({len(raw)} characters)"
    if match is None:
        msg = (f"bucket {shown} is not an ISO-8601 duration of the form "
               "P[nD][T[nH][nM][nS]] (for example PT10S, PT1M, PT1H30M, P1D)")
        raise ValueError(msg)
    days, hours, minutes, seconds = (int(match.group(g) or 0) for g in "dhms")
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if not MIN_BUCKET.total_seconds() <= total <= MAX_BUCKET.total_seconds():
        msg = (f"bucket {shown} is {total} s; it must lie between {MIN_BUCKET} "
               f"and {MAX_BUCKET}")
        raise ValueError(msg)
    return timedelta(seconds=total)


def _checked(frame: pl.DataFrame, schema: dict[str, pl.DataType], name: str) -> pl.DataFrame:
    """``frame`` restricted to ``schema``'s columns, timestamps in microseconds, UTC."""
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        msg = f"{name} frame lacks columns {missing}; it needs {list(schema)}"
        raise ValueError(msg)
    ts = frame.schema["ts"]
    if not isinstance(ts, pl.Datetime) or ts.time_zone != "UTC":
        msg = f"{name} column 'ts' must be Datetime in UTC, not {ts}"
        raise ValueError(msg)
    return frame.select(pl.col(c).cast(dtype) for c, dtype in schema.items())


def _in_range(frame: pl.DataFrame, start: datetime | None, end: datetime | None,
              ) -> pl.DataFrame:
    """Rows with ``start <= ts < end`` (either bound optional; bounds must carry a zone)."""
    for bound in (start, end):
        if bound is not None and bound.utcoffset() is None:
            msg = f"date range bound {bound} has no time zone; pass an aware (UTC) datetime"
            raise ValueError(msg)
    if start is not None:
        frame = frame.filter(pl.col("ts") >= pl.lit(start, dtype=_UTC))
    if end is not None:
        frame = frame.filter(pl.col("ts") < pl.lit(end, dtype=_UTC))
    return frame


def _bucket_start(bucket: timedelta) -> pl.Expr:
    """The start of the epoch-aligned bucket holding ``ts`` (floor division, also before 1970)."""
    width = bucket // timedelta(microseconds=1)
    return (pl.col("ts").dt.epoch("us") // width * width).cast(_UTC)


def price_buckets(trades: pl.DataFrame, coin: str, bucket: str) -> pl.DataFrame:
    """One row per non-empty bucket of ``coin``'s trades: last price and log return.

    Columns: ``coin``, ``bucket_start``, ``bucket_end``, ``price`` (the last trade's price in
    the bucket: latest ``ts``, equal timestamps broken by input order), ``last_trade_ts``,
    ``trades`` (count) and ``log_return`` = ``ln(price / previous bucket's price)``.

    Empty buckets have no row and nothing is forward filled. The return of a bucket whose
    previous grid bucket is empty is null: it would span a gap, that is a longer horizon than
    the grid's, and mixing horizons in one correlation (against one bucket of sentiment) would
    make the statistic depend on trading activity. The first bucket's return is null too.

    Raises:
        ValueError: bad bucket text, missing columns, or a price that is not finite and > 0.
    """
    width = parse_bucket(bucket)
    rows = _checked(trades, _TRADES, "trades").filter(pl.col("coin") == coin)
    bad = rows.filter(~(pl.col("price").is_finite() & (pl.col("price") > 0))
                      | pl.col("price").is_null() | pl.col("ts").is_null()).height
    if bad:
        msg = f"{bad} {coin} trades have a null timestamp or a price that is not finite and > 0"
        raise ValueError(msg)
    per_bucket = (rows.sort("ts", maintain_order=True)
                  .group_by(_bucket_start(width).alias("bucket_start"), maintain_order=True)
                  .agg(pl.col("price").last(), pl.col("ts").last().alias("last_trade_ts"),
                       pl.len().cast(pl.Int64).alias("trades")))
    return price_series(per_bucket, coin, bucket)


def price_series(per_bucket: pl.DataFrame, coin: str, bucket: str) -> pl.DataFrame:
    """:func:`price_buckets`' output from trades already reduced to one row per bucket.

    ``per_bucket`` holds ``bucket_start`` (Datetime, UTC, on ``bucket``'s epoch-aligned grid),
    ``price`` (the bucket's last trade), ``last_trade_ts`` and ``trades``, one row per
    non-empty bucket in any order. The bucket end and the log return (null unless the
    previous grid bucket has a row) are derived here, so a frame reduced elsewhere (a stream
    consumer's incremental aggregates) gives exactly the batch series.
    """
    width = parse_bucket(bucket)
    adjacent = pl.col("bucket_start").shift(1) == pl.col("bucket_start") - pl.lit(width)
    return per_bucket.sort("bucket_start").select(
        pl.lit(coin, dtype=pl.String).alias("coin"),
        "bucket_start",
        (pl.col("bucket_start") + pl.lit(width)).alias("bucket_end"),
        "price", "last_trade_ts", "trades",
        pl.when(adjacent).then((pl.col("price") / pl.col("price").shift(1)).log())
        .alias("log_return"))


def sentiment_buckets(sentiments: pl.DataFrame, coin: str, bucket: str) -> pl.DataFrame:
    """One row per non-empty bucket of the tweets that mention ``coin``.

    Columns: ``bucket_start``, ``bucket_end``, ``sentiment`` (mean polarity), ``tweets``
    (count) and ``last_tweet_ts``. Only tweets whose ``coins`` list contains ``coin`` count;
    tweets with a null or NaN polarity or timestamp are left out (of the mean and the count).
    """
    width = parse_bucket(bucket)
    rows = (_checked(sentiments, _SENTIMENTS, "sentiments")
            .filter(pl.col("coins").list.contains(pl.lit(coin)).fill_null(value=False),
                    pl.col("polarity").is_not_null(), pl.col("polarity").is_not_nan(),
                    pl.col("ts").is_not_null()))
    return (rows.group_by(_bucket_start(width).alias("bucket_start"))
            .agg(pl.col("polarity").mean().alias("sentiment"),
                 pl.len().cast(pl.Int64).alias("tweets"),
                 pl.col("ts").max().alias("last_tweet_ts"))
            .sort("bucket_start")
            .select("bucket_start", (pl.col("bucket_start") + pl.lit(width)).alias("bucket_end"),
                    "sentiment", "tweets", "last_tweet_ts"))


def merged(trades: pl.DataFrame, sentiments: pl.DataFrame, coin: str, bucket: str, *,
           tolerance: timedelta, start: datetime | None = None, end: datetime | None = None,
           lag: int = 0) -> pl.DataFrame:
    """Each price bucket of ``coin`` with the sentiment known ``lag`` buckets before its end.

    For a price bucket ending at ``bucket_end`` the as-of instant is
    ``asof_at = bucket_end - lag * bucket``; the sentiment attached is that of the latest
    sentiment bucket whose end satisfies ``asof_at - tolerance <= sentiment_end <= asof_at``
    (a backward as-of join, equal instants match; null when there is none). With
    ``tolerance = 0`` that is exactly the bucket ``lag`` steps earlier; a larger tolerance
    falls back to older buckets when that one has no tweets.

    ``lag > 0``: sentiment leads price (sentiment at ``t - lag`` against the return at ``t``);
    every tweet used is then before ``asof_at``, itself before the price bucket's end.
    ``lag = 0`` is contemporaneous at the grid's resolution: a tweet inside the same bucket may
    come after that bucket's last trade (never after its end). ``lag < 0`` is the reverse
    question (price leading sentiment) and, by definition, pairs a return with later tweets.

    Args:
        trades: trades frame (see the module docstring).
        sentiments: sentiments frame (see the module docstring).
        coin: the one coin both sides are restricted to.
        bucket: the grid, an ISO-8601 duration (:func:`parse_bucket`).
        tolerance: how much older than ``asof_at`` the sentiment bucket's end may be (>= 0).
        start: keep events with ``ts >= start`` (UTC) before bucketing.
        end: keep events with ``ts < end`` (UTC) before bucketing.
        lag: the lag in buckets.

    Returns:
        The :func:`price_buckets` columns plus ``lag``, ``asof_at``, ``sentiment_end`` (the
        joined sentiment bucket's end), ``sentiment``, ``tweets`` and ``last_tweet_ts``, one
        row per non-empty price bucket, sorted by ``bucket_start``.
    """
    if tolerance < timedelta(0):
        msg = f"tolerance must be >= 0, not {tolerance}"
        raise ValueError(msg)
    prices, moods = bucketed(trades, sentiments, coin, bucket, start=start, end=end)
    return join_buckets(prices, moods, bucket, tolerance=tolerance, lag=lag)


def bucketed(trades: pl.DataFrame, sentiments: pl.DataFrame, coin: str, bucket: str, *,
             start: datetime | None = None, end: datetime | None = None,
             ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``coin``'s :func:`price_buckets` and :func:`sentiment_buckets` in ``[start, end)``."""
    prices = price_buckets(_in_range(_checked(trades, _TRADES, "trades"), start, end),
                           coin, bucket)
    moods = sentiment_buckets(_in_range(_checked(sentiments, _SENTIMENTS, "sentiments"),
                                        start, end), coin, bucket)
    return prices, moods


def join_buckets(prices: pl.DataFrame, moods: pl.DataFrame, bucket: str, *,
                 tolerance: timedelta, lag: int = 0) -> pl.DataFrame:
    """:func:`merged`'s join, from series already bucketed on ``bucket``'s grid.

    ``prices`` has :func:`price_buckets`' (or :func:`price_series`') columns and ``moods``
    :func:`sentiment_buckets`' columns, both for one coin. The batch path (:func:`merged`)
    and the stream consumer (incremental per-bucket aggregates) share this join, so the same
    buckets give the same rows (see :func:`merged` for the lag and tolerance semantics).
    """
    if tolerance < timedelta(0):
        msg = f"tolerance must be >= 0, not {tolerance}"
        raise ValueError(msg)
    width = parse_bucket(bucket)
    left = prices.with_columns(pl.lit(lag, dtype=pl.Int64).alias("lag"),
                               (pl.col("bucket_end") - pl.lit(width * lag)).alias("asof_at"),
                               ).sort("asof_at")
    right = moods.select(pl.col("bucket_end").alias("sentiment_end"), "sentiment", "tweets",
                         "last_tweet_ts").sort("sentiment_end")
    joined = left.join_asof(right, left_on="asof_at", right_on="sentiment_end",
                            strategy="backward", tolerance=tolerance)
    return joined.sort("bucket_start")


def _pooled_r(trades: pl.DataFrame, sentiments: pl.DataFrame, strategy: str) -> float | None:
    """Pearson r of raw prices (all coins in one series) and the as-of joined tweet polarity."""
    prices = _checked(trades, _TRADES, "trades").sort("ts")
    tweets = (_checked(sentiments, _SENTIMENTS, "sentiments")
              .select(pl.col("ts").alias("tweet_ts"), "polarity").sort("tweet_ts"))
    joined = prices.join_asof(tweets, left_on="ts", right_on="tweet_ts",
                              strategy="nearest" if strategy == "nearest" else "backward")
    value = joined.select(pl.corr("price", "polarity")).item()
    return None if value is None or math.isnan(value) else float(value)


def nearest_pooled_r(trades: pl.DataFrame, sentiments: pl.DataFrame) -> float | None:
    """The public solution's artefact: pooled prices, each trade joined to the nearest tweet.

    All coins' raw prices form one series (BTC near 6,000 USD next to LTC near 60), tweets are
    not filtered by coin, and "nearest" matches about half the trades to a *later* tweet.
    Kept only so tests can show that :func:`merged` never reproduces it.
    """
    return _pooled_r(trades, sentiments, "nearest")


def backward_pooled_r(trades: pl.DataFrame, sentiments: pl.DataFrame) -> float | None:
    """The same pooled artefact with a backward join (each trade's latest earlier tweet)."""
    return _pooled_r(trades, sentiments, "backward")


def bucket_start(bucket: str, ts: str = "ts") -> pl.Expr:
    """The start of the epoch-aligned ``bucket`` holding column ``ts`` (as :func:`price_buckets`).

    For code that buckets events itself (the stream consumer's incremental aggregates) and
    must land on exactly the batch grid.
    """
    width = parse_bucket(bucket) // timedelta(microseconds=1)
    return (pl.col(ts).dt.epoch("us") // width * width).cast(_UTC)
