"""The correlation table from the stream's aggregates, with the batch path's functions.

:func:`cryptodudez.mood.stats.correlation_table` reads raw trades and tweets; here the same
table is computed from per-(coin, bucket) aggregates: each coin's series come from
:func:`cryptodudez.stream.state.series_of` (which derives bucket ends and log returns with
:func:`cryptodudez.mood.series.price_series`), each lag is the batch's backward as-of join
(:func:`cryptodudez.mood.series.join_buckets`) and the statistics are
:func:`cryptodudez.mood.stats.correlate` with Benjamini-Hochberg q-values over all rows. Same
buckets in, same numbers out (the sentiment means differ from polars' only by float rounding).
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl

from cryptodudez.mood.series import parse_bucket
from cryptodudez.mood.stats import table_of
from cryptodudez.stream.state import series_of


def window_of(text: str) -> timedelta:
    """The duration of a correlation window (ISO-8601, as a bucket: 1 s to 30 days).

    Raises:
        ValueError: naming ``correlation_window`` and the value.
    """
    try:
        return parse_bucket(text)
    except ValueError as exc:
        msg = f"correlation_window: {str(exc).removeprefix('bucket ')}"
        raise ValueError(msg) from None


def window_starts(prices: pl.DataFrame, buckets: Sequence[str],
                  window: timedelta) -> dict[str, datetime]:
    """Per bucket, where the trailing ``window`` of event time starts on that bucket's grid.

    The window ends at the newest trade of any coin; each grid's start is its first bucket
    starting at or after ``newest - window``, so the first bucket is whole and the result
    equals the batch's over trades from that start (:func:`cryptodudez.mood.series.bucketed`
    with ``start``). Empty without prices.
    """
    newest = prices["last_trade_ts"].max()
    if not isinstance(newest, datetime):
        return {}
    since = (newest - window).astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    starts = {}
    for bucket in buckets:
        width = parse_bucket(bucket)
        steps = -((epoch - since) // width)  # ceil((since - epoch) / width)
        starts[bucket] = epoch + steps * width
    return starts


def trailing(prices: pl.DataFrame, sentiments: pl.DataFrame, starts: dict[str, datetime],
             ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The aggregates of buckets starting at or after their grid's entry of ``starts``."""
    keep = pl.lit(False)
    for bucket, start in starts.items():
        keep = keep | ((pl.col("bucket") == bucket) & (pl.col("bucket_start") >= start))
    return prices.filter(keep), sentiments.filter(keep)


def correlation_from_aggregates(prices: pl.DataFrame, sentiments: pl.DataFrame, *,
                                coins: Sequence[str], buckets: Sequence[str], max_lag: int,
                                tolerance_buckets: int, min_n: int = 8, seed: int = 0,
                                block: int | None = None, n_boot: int = 2000) -> pl.DataFrame:
    """Every coin x bucket x lag (``-max_lag..max_lag``), as ``correlation_table`` returns it.

    Args:
        prices: :meth:`~cryptodudez.stream.state.StateStore.price_aggregates`.
        sentiments: :meth:`~cryptodudez.stream.state.StateStore.sentiment_aggregates`.
        coins: the coins, in the table's order.
        buckets: the grids (each must be one the consumer aggregates on).
        max_lag: the largest lag, in buckets.
        tolerance_buckets: how many buckets older the joined sentiment may be.
        min_n: fewest complete pairs that give numbers.
        seed: bootstrap seed.
        block: bootstrap block length (default: ``n ** (1/3)`` rounded up).
        n_boot: bootstrap resamples.

    Raises:
        ValueError: empty or repeated coins or buckets, negative lag or tolerance.
    """
    def series(coin: str, bucket: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        return series_of(prices, sentiments, coin, bucket)

    return table_of(series, coins=coins, buckets=buckets, max_lag=max_lag,
                    tolerance_buckets=tolerance_buckets, min_n=min_n, seed=seed, block=block,
                    n_boot=n_boot)
