"""The whole feature build from the validated tables, Dagster-free.

The assets call these functions on a range of days; the benchmark and the leakage guard
call :func:`build_all` on whole (or truncated) inputs. Inputs are lazy scans, so each step
reads only the columns and days it needs.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

import polars as pl

from cryptodudez.features import markets, tweets
from cryptodudez.features.store import eth_features, market_asof

# Rolling windows reach 60 bars back; 150 calendar days of history before a range covers
# 60 US trading days with holidays to spare (the partition test checks it on real data).
LOOKBACK = timedelta(days=150)


@dataclass(frozen=True)
class Inputs:
    """The validated tables the store reads."""

    crypto: pl.LazyFrame
    stocks: pl.LazyFrame
    tweets: pl.LazyFrame
    tweets_complete_until: datetime | None = None
    """The instant up to which the tweet feed is known to be complete (None: its latest
    tweet). Days after the latest tweet but before this instant had no tweets: zeros."""

    def until(self, cutoff: datetime) -> "Inputs":
        """Only what existed by ``cutoff`` (bars of days up to its date, tweets up to it)."""
        day = cutoff.date().isoformat()
        complete = self.tweets_complete_until or self.tweets.select(
            pl.col("created_at").max()).collect().item()
        return Inputs(
            crypto=self.crypto.filter(pl.col("Date").cast(pl.String).str.slice(0, 10) <= day),
            stocks=self.stocks.filter(pl.col("Date").cast(pl.String).str.slice(0, 10) <= day),
            tweets=self.tweets.filter(pl.col("created_at") <= cutoff),
            # the feed read at the cutoff is complete up to it, never beyond what it knew
            tweets_complete_until=min(cutoff, complete) if complete is not None else None,
        )

    def since(self, start: date) -> "Inputs":
        """Only rows from ``start`` on (a bounded window for the guard)."""
        day = start.isoformat()
        return Inputs(
            crypto=self.crypto.filter(pl.col("Date").cast(pl.String).str.slice(0, 10) >= day),
            stocks=self.stocks.filter(pl.col("Date").cast(pl.String).str.slice(0, 10) >= day),
            tweets=self.tweets.filter(
                pl.col("created_at") >= datetime.combine(start, time(), UTC)),
            tweets_complete_until=self.tweets_complete_until,
        )


def tweet_watermark(inputs: Inputs) -> date | None:
    """The last UTC day the tweet feed is complete for (later days: unknown, not zero).

    The day of the latest tweet, unless the inputs say the feed is complete to a later
    instant (a feed read at a cutoff: quiet days before the cutoff are zeros).
    """
    if inputs.tweets_complete_until is not None:
        return inputs.tweets_complete_until.astimezone(UTC).date()
    latest = inputs.tweets.select(pl.col("created_at").max()).collect().item()
    return None if latest is None else latest.astimezone(UTC).date()


def market_daily(inputs: Inputs, *, start: date | None = None,
                 end: date | None = None) -> pl.DataFrame:
    """Per-series (asset class, symbol) and index features for ``start <= date < end``.

    Reads ``LOOKBACK`` of history before ``start`` so every window is complete.
    """
    crypto, stocks = inputs.crypto, inputs.stocks
    if start is not None:
        since = (start - LOOKBACK).isoformat()
        crypto = crypto.filter(pl.col("Date").cast(pl.String).str.slice(0, 10) >= since)
        stocks = stocks.filter(pl.col("Date").cast(pl.String).str.slice(0, 10) >= since)
    per_symbol = markets.symbol_features(markets.bars(crypto, stocks))
    frame = pl.concat([per_symbol, markets.equal_weight_indices(per_symbol)])
    if start is not None:
        frame = frame.filter(pl.col("date") >= start)
    if end is not None:
        frame = frame.filter(pl.col("date") < end)
    return frame.sort("symbol", "asset_class", "date").collect()


def market_daily_by_year(inputs: Inputs, *, start: date, end: date) -> pl.DataFrame:
    """``market_daily`` for ``start <= date < end``, each year computed on its own window.

    Rolling sums in floating point depend (in the last bits) on where a window series
    starts, so a year recomputed alone would differ from the same year computed inside a
    longer range, and training sets would not rebuild byte for byte. Here every year is
    always computed from the same history (``LOOKBACK`` before its 1 January), whatever the
    run's range. The bars are read once for the whole range and sliced in memory.
    """
    years = list(range(start.year, (end - timedelta(days=1)).year + 1)) if end > start else []
    if not years:
        return markets.empty()
    since = (date(years[0], 1, 1) - LOOKBACK).isoformat()
    day = pl.col("Date").cast(pl.String).str.slice(0, 10)
    every = markets.bars(inputs.crypto.filter((day >= since) & (day < end.isoformat())),
                         inputs.stocks.filter((day >= since) & (day < end.isoformat()))
                         ).collect()
    frames = []
    for year in years:
        first, last = date(year, 1, 1), min(date(year + 1, 1, 1), end)
        window = every.lazy().filter((pl.col("date") >= first - LOOKBACK)
                                     & (pl.col("date") < last))
        per_symbol = markets.symbol_features(window)
        frame = pl.concat([per_symbol, markets.equal_weight_indices(per_symbol)])
        frames.append(frame.filter((pl.col("date") >= max(first, start))
                                   & (pl.col("date") < last)).collect())
    return pl.concat(frames).sort("symbol", "asset_class", "date")


class DailyTweetFeatures(Protocol):
    """``tweets.daily_tweet_features`` or an engine's twin of it."""

    def __call__(self, tweets: pl.LazyFrame, *, start: date, end: date,
                 watermark: date | None) -> pl.DataFrame:
        """Activity and engagement per UTC day."""
        ...  # pragma: no cover


def tweet_daily(inputs: Inputs, *, start: date, end: date, watermark: date | None,
                with_text: bool = True,
                activity_of: DailyTweetFeatures = tweets.daily_tweet_features) -> pl.DataFrame:
    """The tweet views per UTC day for ``start <= day < end`` (one table, one row a day).

    Activity and engagement (computed by ``activity_of``: polars by default, or the
    engine's twin), and (``with_text``) each day's sentiment and hashed words; a day
    without tweets has zero tokens and words, and no sentiment (null, not neutral).
    """
    activity = activity_of(inputs.tweets, start=start, end=end, watermark=watermark)
    if not with_text or activity.height == 0:
        return activity
    from cryptodudez.features import text  # noqa: PLC0415 - VADER loads its lexicon

    last: date = activity["day"].max()  # type: ignore[assignment]
    rows = tweets.deduplicated(inputs.tweets.filter(
        pl.col("created_at") >= datetime.combine(start, time(), UTC),
        pl.col("created_at") < datetime.combine(last + timedelta(days=1), time(), UTC),
    )).select("day", "text").collect()
    daily = text.daily_text_features(rows)
    zero = [pl.col(c).fill_null(0) for c in ("clean_tokens", *text.BOW_COLUMNS)]
    return activity.join(daily, on="day", how="left", maintain_order="left").with_columns(zero)
@dataclass(frozen=True)
class Built:
    """Everything the store derives from its inputs."""

    spine: pl.DataFrame
    tweet_daily: pl.DataFrame
    market_daily: pl.DataFrame
    features: pl.DataFrame


def build_all(inputs: Inputs, *, with_text: bool = True) -> Built:
    """The spine and every view over all the inputs, and the model's feature rows."""
    spine = markets.eth_spine(inputs.crypto)
    watermark = tweet_watermark(inputs)
    first = inputs.tweets.select(pl.col("created_at").min()).collect().item()
    start = first.astimezone(UTC).date() if first is not None else date(2010, 1, 1)
    end = (watermark or start) + timedelta(days=1)
    tw = tweet_daily(inputs, start=start, end=end, watermark=watermark, with_text=with_text)
    mk = market_daily(inputs)
    return Built(spine, tw, mk, eth_features(spine, tw, mk))


def all_market_asof(built: Built) -> pl.DataFrame:
    """Every symbol on every spine day (the long market table)."""
    return market_asof(built.spine, built.market_daily)
