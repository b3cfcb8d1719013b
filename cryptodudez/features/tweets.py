"""Tweet features per UTC day: activity, engagement and term frequencies.

Days are UTC calendar days of ``created_at`` (the validated table converts the 2021+ files'
local times to UTC, so about a quarter of those tweets move to another day than their local
date). Every day from the first tweet to the data watermark (the latest tweet) has a row:
a day without a tweet is a zero, not a missing row. Beyond the watermark nothing is known,
so there is no row (the point-in-time join's TTL turns that into null, never into zero).

Deduplication is exact within a UTC day: a tweet's id fixes its ``created_at``, so every
copy of a tweet falls on the same day, and each day can be computed alone (the whole table
is never needed at once). Of the copies, the last delivered snapshot wins.

Two availability times:

* activity, text and terms of day D are known when D ends (D+1 00:00 UTC);
* likes, retweets and replies are *snapshots taken when the file was scraped*, not counts as
  of the day, so they are available only from the delivery that brought them
  (``_landed_at``); in a backtest over history they are unknown (null), which is the honest
  answer: a count scraped in 2022 must not inform a 2019 decision.
"""

from datetime import date, timedelta

import polars as pl

# The brief's terms, matched case-insensitively on word boundaries (so "doge" does not
# match "dodge", and "eth" not "ethics"); each counts tweets that mention the term.
TERMS: dict[str, str] = {
    "doge": r"(?i)\b(?:doge|dogecoin)\b",
    "bitcoin": r"(?i)\b(?:bitcoin|btc)\b",
    "ethereum": r"(?i)\b(?:ethereum|eth|ether)\b",
    "crypto": r"(?i)\b(?:crypto|cryptocurrency|cryptocurrencies)\b",
    "tesla": r"(?i)\b(?:tesla|tsla)\b",
}
ACTIVITY = ("tweets", *(f"term_{t}" for t in TERMS))
ENGAGEMENT = ("likes", "retweets", "replies", "likes_per_tweet", "retweets_per_tweet",
              "replies_per_tweet")
DAY = timedelta(days=1)


def utc_day(created_at: pl.Expr) -> pl.Expr:
    """The UTC calendar day of a UTC timestamp."""
    return created_at.dt.convert_time_zone("UTC").dt.date()


def deduplicated(tweets: pl.LazyFrame) -> pl.LazyFrame:
    """One row per tweet id with its UTC ``day``: the last delivered snapshot wins.

    Exact within each day (a tweet's copies share its day), so a caller may run it on one
    day's rows at a time.
    """
    order = [c for c in ("_landed_at", "_source", "_line") if c in tweets.collect_schema()]
    return (tweets.filter(pl.col("tweet_id").is_not_null() & pl.col("created_at").is_not_null())
            .with_columns(day=utc_day(pl.col("created_at")))
            .sort(["day", "tweet_id", *order])
            .unique(["day", "tweet_id"], keep="last", maintain_order=True))


def _day_end(day: pl.Expr) -> pl.Expr:
    return (day.cast(pl.Datetime("us")) + pl.lit(DAY)).dt.replace_time_zone("UTC")


def daily_tweet_features(tweets: pl.LazyFrame, *, start: date, end: date,
                         watermark: date | None) -> pl.DataFrame:
    """Activity and engagement per UTC day for ``start <= day < end``.

    Args:
        tweets: the validated ``tweets`` table (or any part of it holding those days).
        start: first day.
        end: day after the last.
        watermark: the day of the latest tweet in the whole table: days after it get no row.

    Returns:
        ``day``, ``event_time`` and ``available_at`` (the day's end), the activity columns,
        and the engagement columns with their own ``engagement_available_at``.
    """
    last = min(end - DAY, watermark) if watermark is not None else None
    if last is None or last < start:
        return empty()
    rows = deduplicated(tweets.filter(
        pl.col("created_at") >= _day_end(pl.lit(start) - pl.lit(DAY)),
        pl.col("created_at") < _day_end(pl.lit(last)),
    ))
    text = pl.col("text").fill_null("")
    per_day = rows.group_by("day").agg(
        pl.len().cast(pl.Int64).alias("tweets"),
        *[text.str.contains(pattern).sum().cast(pl.Int64).alias(f"term_{name}")
          for name, pattern in TERMS.items()],
        *[pl.col(c).sum().cast(pl.Int64).alias(c) for c in ("likes", "retweets", "replies")],
        pl.col("_landed_at").max().alias("landed_at") if "_landed_at" in
        rows.collect_schema() else pl.lit(None, pl.Datetime("us", "UTC")).alias("landed_at"),
    )
    days = pl.LazyFrame(pl.date_range(start, last, "1d", eager=True).alias("day"))
    zero = [pl.col(c).fill_null(0) for c in ACTIVITY]
    joined = days.join(per_day, on="day", how="left", maintain_order="left")
    out = joined.with_columns(*zero).with_columns(
        event_time=_day_end(pl.col("day")),
        available_at=_day_end(pl.col("day")),
        **{f"{c}_per_tweet": pl.when(pl.col("tweets") > 0)
           .then(pl.col(c) / pl.col("tweets")) for c in ("likes", "retweets", "replies")},
    ).with_columns(
        # A day without tweets has zero engagement, known as soon as the day ends.
        *[pl.col(c).fill_null(0) for c in ("likes", "retweets", "replies")],
        engagement_available_at=pl.max_horizontal(
            "available_at", pl.col("landed_at").fill_null(pl.col("available_at"))),
    )
    return out.select("day", "event_time", "available_at", *ACTIVITY, *ENGAGEMENT,
                      "engagement_available_at").sort("day").collect()


def empty() -> pl.DataFrame:
    """The view's columns without rows (no tweets landed yet)."""
    stamp = pl.Datetime("us", "UTC")
    return pl.DataFrame(schema={
        "day": pl.Date, "event_time": stamp, "available_at": stamp,
        **dict.fromkeys(ACTIVITY, pl.Int64), "likes": pl.Int64, "retweets": pl.Int64,
        "replies": pl.Int64, "likes_per_tweet": pl.Float64, "retweets_per_tweet": pl.Float64,
        "replies_per_tweet": pl.Float64, "engagement_available_at": stamp,
    })
