"""Helpers shared by the stream tests: a consumer's aggregates against the batch path."""

from collections.abc import Sequence

import polars as pl
from polars.testing import assert_frame_equal

from cryptodudez.mood.series import price_buckets, sentiment_buckets
from cryptodudez.stream.state import StateStore, series_of


def assert_aggregates_are_batch(store: StateStore, trades: pl.DataFrame, tweets: pl.DataFrame,
                                *, coins: Sequence[str], buckets: Sequence[str]) -> None:
    """Every coin's price series and sentiment buckets from ``store`` equal the batch's."""
    prices, moods = store.price_aggregates(), store.sentiment_aggregates()
    for coin in coins:
        for bucket in buckets:
            price, mood = series_of(prices, moods, coin, bucket)
            assert_frame_equal(price, price_buckets(trades, coin, bucket))
            assert_frame_equal(mood, sentiment_buckets(tweets, coin, bucket),
                               check_exact=False, rel_tol=1e-12, abs_tol=1e-15)
