r"""The daily tweet features with Spark: the twin of ``cryptodudez.features.tweets``.

Same definition as the polars ``daily_tweet_features``: rows with a ``created_at`` in
``[start, last + 1 day)`` (``last`` is ``min(end - 1 day, watermark)``) and a ``tweet_id``,
one copy per (UTC day, ``tweet_id``): the last by ``(_landed_at, _source, _line)`` in polars'
ascending, nulls-first sort, so here the first by the same columns descending, nulls last.
Every day from ``start`` to ``last`` has a row, zero-filled; ``*_per_tweet`` is null on a day
without tweets; ``engagement_available_at`` is the later of the day's end and the latest
``_landed_at`` of the day's kept copies. Equivalence decisions:

* **Days and day ends are computed from epoch microseconds** (``unix_micros``,
  ``date_from_unix_date``, ``timestamp_micros``), never through the session time zone, so
  the result does not depend on ``spark.sql.session.timeZone`` (``SESSION_CONF`` sets UTC
  anyway).
* **A day's engagement sums are 0, not null, when every value is null**: polars' ``sum`` of
  nulls is 0 (and the per-tweet ratio then 0.0), Spark's is null, hence the ``coalesce``.
* **The term regexes are translated, not reused.** polars runs Rust's ``regex``: ``\b`` is
  Unicode-aware (its ``\w`` from the Unicode tables it was built with) and ``(?i)`` is
  Unicode *simple case folding*. Java's ``(?iU)`` comes close but differs in two ways, both
  measured on every code point: (1) Java's ``CASE_INSENSITIVE|UNICODE_CASE`` also folds the
  Turkish ``İ`` (U+0130) and ``ı`` (U+0131) to ``i``, so ``BİTCOIN`` and ``bıtcoin`` count as
  bitcoin in Java only; (2) Java 17 knows Unicode 13, the installed polars Unicode 16: 10,103 code
  points assigned since (e.g. U+0870..U+089F) are word characters for polars but not for
  Java, so a term right next to one of them counts in Java only. Plain ``(?i)`` on Java
  additionally misses ``ſ``/``K`` (U+017F, U+212A, which fold to ``s``/``k``) and treats
  U+200D and Roman numerals as non-word. So each ``(?i)\b(?:word|…)\b`` pattern becomes
  a flag-free Java pattern: every letter is the class of its simple-case-folding orbit (only
  ``s`` and ``k`` have a non-ASCII member), and ``\b`` is a look-behind/look-ahead on an
  explicit class of the code points polars' own ``\w`` matches (read from the installed
  polars, 796 ranges), so both engines use one Unicode version whatever the JDK. A cheap
  look-ahead on the terms' first letters keeps the look-behind off most positions. A
  pattern outside that grammar raises: the twin never silently diverges.
* **One shuffle**: the kept copies are hash-partitioned by day, which serves both the copies'
  window and the day's aggregate; the day spine joins the (small) per-day rows by broadcast;
  rows come back unordered and ``daily_tweet_features_of`` sorts them.
* **Ties**: ``daily_tweet_features_of`` adds the input position (``_input_order``) as the
  last ordering column. Copies that tie on every lineage column never occur in the validated
  table (``_source``/``_line`` identify a row); for them polars' choice is unspecified (its
  sort is not stable) and the twin keeps the later input row.
"""

import functools
import itertools
import re
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F  # noqa: N812  # the usual Spark spelling

from cryptodudez.features import tweets as polars_tweets
from cryptodudez.features.tweets import ACTIVITY, ENGAGEMENT, TERMS

DAY = timedelta(days=1)
DAY_MICROS = 86_400_000_000
COUNTS = ("likes", "retweets", "replies")
INPUT_ORDER = "_input_order"
ORDER = ("_landed_at", "_source", "_line", INPUT_ORDER)
"""Columns choosing the kept copy of a tweet, most significant first (those present)."""
COLUMNS = ("day", "event_time", "available_at", *ACTIVITY, *ENGAGEMENT,
           "engagement_available_at")

# Unicode simple case folding (CaseFolding.txt, statuses C and S) maps exactly two non-ASCII
# code points to ASCII letters; tests check this against polars over every code point.
_FOLDS = {"k": "\u212a", "s": "\u017f"}
_POLARS_TERM = re.compile(r"\(\?i\)\\b\(\?:([a-z]+(?:\|[a-z]+)*)\)\\b")


@functools.cache
def word_class() -> str:
    r"""The body of a Java character class matching exactly polars' (Rust's) ``\w``.

    Characters are written literally (none of them is special inside a Java class), so a
    pattern using it holds supplementary characters and Java's look-behind steps back by code
    points rather than UTF-16 units.
    """
    every = "".join(map(chr, itertools.chain(range(0xD800), range(0xE000, 0x110000))))
    runs = pl.select(pl.lit(every).str.extract_all(r"\w+")).item().to_list()
    ranges = []
    for run in runs:
        lo, hi = run[0], run[-1]
        if ord(hi) - ord(lo) + 1 != len(run):  # a run across the surrogate gap
            raise ValueError(f"non-contiguous word run {ord(lo):#x}..{ord(hi):#x}")
        ranges.append(lo if lo == hi else f"{lo}-{hi}")
    return "".join(ranges)


def folded(letter: str) -> str:
    """The letters equal to ``letter`` under Unicode simple case folding."""
    return letter + letter.upper() + _FOLDS.get(letter, "")


def java_pattern(pattern: str) -> str:
    r"""The Java regex matching the same strings as the polars ``(?i)\b(?:w1|w2…)\b``."""
    found = _POLARS_TERM.fullmatch(pattern)
    if found is None:
        raise ValueError(f"no Java twin for {pattern!r}: only (?i)\\b(?:word|…)\\b patterns "
                         "of ASCII lowercase words are translated")
    words = found.group(1).split("|")
    word = f"[{word_class()}]"
    firsts = "".join(sorted({c for w in words for c in folded(w[0])}))
    alternatives = "|".join("".join(f"[{folded(c)}]" for c in w) for w in words)
    return f"(?=[{firsts}])(?<!{word})(?:{alternatives})(?!{word})"


@functools.cache
def term_patterns() -> dict[str, str]:
    """The Java twins of ``TERMS``, by term name."""
    return {name: java_pattern(pattern) for name, pattern in TERMS.items()}


def utc_day(created_at: Column) -> Column:
    """The UTC calendar day of a timestamp, whatever the session time zone."""
    micros = F.unix_micros(created_at)
    days = (micros - F.pmod(micros, F.lit(DAY_MICROS))) / F.lit(DAY_MICROS)  # exact
    return F.date_from_unix_date(days.cast("int"))


def day_end(day: Column) -> Column:
    """The instant a UTC day ends (the next day's 00:00 UTC)."""
    return F.timestamp_micros((F.unix_date(day).cast("long") + 1) * F.lit(DAY_MICROS))


def deduplicated(tweets: DataFrame) -> DataFrame:
    """One row per tweet id and UTC ``day`` (added): the last delivered copy wins.

    The rows are hash-partitioned by ``day``, which also serves a per-day aggregate (one
    shuffle for both).
    """
    order = [F.col(c).desc_nulls_last() for c in ORDER if c in tweets.columns]
    latest = Window.partitionBy("day", "tweet_id").orderBy(*order or [F.lit(0)])
    return (tweets.filter(F.col("tweet_id").isNotNull() & F.col("created_at").isNotNull())
            .withColumn("day", utc_day(F.col("created_at"))).repartition("day")
            .withColumn("_copy", F.row_number().over(latest))
            .filter(F.col("_copy") == 1).drop("_copy"))


def _micros(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY_MICROS


def daily_tweet_features(tweets: DataFrame, *, start: date, end: date,
                         watermark: date | None) -> DataFrame:
    """Activity and engagement per UTC day for ``start <= day < end``, one row a day.

    The columns, types and values of the polars ``daily_tweet_features`` (``day`` a date,
    the instants UTC timestamps, counts longs, ratios doubles), in no particular row order
    (the caller sorts: a global sort costs Spark a sampling job).

    Args:
        tweets: the validated ``tweets`` rows (``tweet_id``, ``created_at``, ``text``,
            ``likes``, ``retweets``, ``replies``; the lineage columns of ``ORDER`` if any).
        start: first day.
        end: day after the last.
        watermark: the day of the latest tweet in the whole table: days after it get no row.
    """
    last = min(end - DAY, watermark) if watermark is not None else None
    count = 0 if last is None else max((last - start).days + 1, 0)
    lo, hi = _micros(start), _micros(start) + count * DAY_MICROS
    stamp = F.unix_micros(F.col("created_at"))
    rows = deduplicated(tweets.filter((stamp >= lo) & (stamp < hi)))
    text = F.coalesce(F.col("text"), F.lit(""))
    landed = (F.max("_landed_at") if "_landed_at" in tweets.columns
              else F.lit(None).cast("timestamp"))
    per_day = rows.groupBy("day").agg(
        F.count(F.lit(1)).alias("tweets"),
        *[F.count_if(text.rlike(pattern)).alias(f"term_{name}")
          for name, pattern in term_patterns().items()],
        *[F.coalesce(F.sum(c), F.lit(0)).cast("long").alias(c) for c in COUNTS],
        landed.alias("landed_at"),
    )
    days = tweets.sparkSession.range(count).select(
        F.date_add(F.lit(start), F.col("id").cast("int")).alias("day"))
    ends = day_end(F.col("day"))
    # per_day has at most one row per day of the range: small enough to broadcast
    out = days.join(F.broadcast(per_day), on="day", how="left").select(
        "day", ends.alias("event_time"), ends.alias("available_at"),
        *[F.coalesce(F.col(c), F.lit(0)).cast("long").alias(c) for c in (*ACTIVITY, *COUNTS)],
        *[F.when(F.col("tweets") > 0, F.col(c) / F.col("tweets")).alias(f"{c}_per_tweet")
          for c in COUNTS],
        F.greatest(ends, F.coalesce(F.col("landed_at"), ends)).alias("engagement_available_at"),
    )
    return out.select(*COLUMNS)


def daily_tweet_features_of(spark: SparkSession, tweets: pl.LazyFrame, *, start: date,
                            end: date, watermark: date | None) -> pl.DataFrame:
    """The polars ``daily_tweet_features(tweets, …)`` computed by Spark: same rows, types.

    The range's rows and the needed columns are selected with polars, computed in ``spark``
    and brought back through Arrow, with the polars frame's schema and row order (by day).
    """
    last = min(end - DAY, watermark) if watermark is not None else None
    if last is None or last < start:
        return polars_tweets.empty()
    schema = tweets.collect_schema()
    lineage = [c for c in ORDER if c in schema]
    instant = pl.Datetime("us", "UTC")
    frame = (tweets.filter(
        pl.col("created_at") >= datetime.combine(start, time(), UTC),
        pl.col("created_at") < datetime.combine(last + DAY, time(), UTC),
        pl.col("tweet_id").is_not_null())
        .select("tweet_id", pl.col("created_at").dt.convert_time_zone("UTC").cast(instant),
                "text", *COUNTS, *[pl.col(c).cast(instant) if c == "_landed_at" else c
                                   for c in lineage])
        .collect()
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(INPUT_ORDER)))
    computed = daily_tweet_features(
        spark.createDataFrame(frame.to_arrow(compat_level=pl.CompatLevel.oldest())),
        start=start, end=end, watermark=watermark)
    out = pl.from_arrow(computed.toArrow())
    assert isinstance(out, pl.DataFrame)
    reference = polars_tweets.empty().schema
    return out.select(list(reference)).cast(reference).sort("day")
