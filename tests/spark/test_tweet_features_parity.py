"""Spark's daily tweet features against polars': generated tweets, the sample, the real tweets.

Every column must be equal exactly (``assert_frame_equal``: values, nulls, dtypes, row
order). Planted faults (Java's own ``(?iU)`` word boundaries and case folding, no
deduplication) must fail the same comparison, and the Java term patterns must agree with
polars' next to code points of every Unicode version.
"""

import itertools
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cryptodudez.archives import unpack
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.features import tweets as polars_tweets
from cryptodudez.features.tweets import TERMS
from cryptodudez.ingest import ingest_members
from cryptodudez.spark import tweet_features as spark_tweets
from tests.conftest import SAMPLES, shared

pytestmark = pytest.mark.xdist_group("spark")

FIRST = date(2021, 2, 20)
LANDED = [datetime(2021, 6, 1, tzinfo=UTC) + timedelta(days=30 * k) for k in range(3)]
# Words around the terms: matches, near misses, Unicode case variants and word characters
# of every kind (marks, joiners, letters new in Unicode 14, supplementary letters, emoji).
TOKENS = [
    "ÉTH", "ÉETH", "ñeth", "Bitcoin!", "#BTC", "btc.", "BİTCOIN", "bıtcoin", "ethics", "ETH",
    "eth\ufe0f", "eth\u0301", "\u0870eth", "eth\u0870", "𝐀eth", "eth𝐀", "🚀eth", "ethⅠ", "x_eth",
    "1eth", "eth²", "日本eth", "Ether,", "ETHEREUM.", "dodge", "DOGE", "Dogecoin🚀", "doge-coin",
    "ɗoge", "Ｄｏｇｅ", "ᴅoge", "crypto\u200d", "Crypto", "Cryptocurrencies", "CRYPTOCURRENCİES",
    "teſla", "TSLA$", "Tesla's", "tesla\u200c", "kelvin", "to", "the", "moon", "🚀", "@elonmusk",
    "https://t.co/eth", "",
]
SEPARATORS = [" ", " ", " ", "", "\n", "-", "'"]


def _text(rng: np.random.Generator) -> str | None:
    if rng.random() < 0.05:
        return None
    words = [TOKENS[i] for i in rng.integers(0, len(TOKENS), int(rng.integers(0, 6)))]
    return "".join(w + SEPARATORS[int(rng.integers(0, len(SEPARATORS)))] for w in words)


def _created_at(rng: np.random.Generator) -> datetime:
    """An instant near a UTC midnight, from a local wall clock with a non-UTC offset."""
    day = FIRST + timedelta(days=int(rng.choice([*range(0, 20), *range(26, 50)])))
    offset = timedelta(hours=int(rng.choice([-8, -5, 0, 3, 4, 9])))
    near = [timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1),
            timedelta(seconds=int(rng.integers(-3600, 3600)))]
    local = datetime.combine(day, time()) + offset + near[int(rng.integers(0, len(near)))]
    return (local - offset).replace(tzinfo=UTC)


def generated_tweets(seed: int = 5, ids: int = 700) -> pl.DataFrame:
    """Tweets delivered up to three times (edited text, new counts, nulls), shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for tweet_id in range(ids):
        created, text = _created_at(rng), _text(rng)
        deliveries = sorted(rng.choice(3, size=int(rng.integers(1, 4)), replace=False))
        for k in deliveries:
            if rng.random() < 0.2:
                text = _text(rng)  # a re-scraped, edited text
            if tweet_id % 97 == 0 and k > 0:
                created += timedelta(days=1)  # a corrected timestamp: another day's tweet
            copies = 2 if rng.random() < 0.1 else 1  # twice in a delivery: _source, _line
            for copy in range(copies):
                likes = None if rng.random() < 0.05 else int(rng.integers(0, 10**5))
                rows.append({
                    "tweet_id": tweet_id, "created_at": created, "text": text,
                    "likes": likes, "retweets": int(rng.integers(0, 10**4)),
                    "replies": None if tweet_id % 11 == 0 else int(rng.integers(0, 10**3)),
                    "_landed_at": None if (k == 0 and tweet_id % 13 == 0) else LANDED[k],
                    "_source": f"zip://d{k}/elon_musk_tweets.zip!/{2021 - copy}.csv",
                    "_line": int(rng.integers(1, 10**6)),
                })
    rows += [{"tweet_id": None, "created_at": LANDED[0], "text": "eth"},
             {"tweet_id": 10**6, "created_at": None, "text": "eth"}]
    frame = pl.DataFrame(rows, schema={
        "tweet_id": pl.Int64, "created_at": pl.Datetime("us", "UTC"), "text": pl.String,
        "likes": pl.Int64, "retweets": pl.Int64, "replies": pl.Int64,
        "_landed_at": pl.Datetime("us", "UTC"), "_source": pl.String, "_line": pl.Int64})
    return frame.sample(fraction=1.0, shuffle=True, seed=seed)


@pytest.fixture(scope="module")
def generated() -> pl.DataFrame:
    return generated_tweets()


def _same(spark: SparkSession, tweets: pl.DataFrame, start: date, end: date,
          watermark: date | None) -> pl.DataFrame:
    """Spark's frame, after checking it equals polars' exactly."""
    reference = polars_tweets.daily_tweet_features(tweets.lazy(), start=start, end=end,
                                                   watermark=watermark)
    ours = spark_tweets.daily_tweet_features_of(spark, tweets.lazy(), start=start, end=end,
                                                watermark=watermark)
    assert_frame_equal(ours, reference)
    return ours


def test_generated_tweets_match_polars(spark: SparkSession, generated: pl.DataFrame) -> None:
    # rows before start and after the watermark, days without tweets, a watermark before end
    out = _same(spark, generated, FIRST + timedelta(days=2), date(2021, 5, 1),
                watermark=date(2021, 4, 1))
    assert out.height == 39 and out.filter(pl.col("tweets") == 0).height >= 3
    assert out["likes_per_tweet"].null_count() == out.filter(pl.col("tweets") == 0).height
    assert (out["engagement_available_at"] > out["available_at"]).any()
    assert all(out[f"term_{t}"].sum() > 0 for t in TERMS)
    # copies deduplicated: fewer tweets than non-null rows in the range
    assert out["tweets"].sum() < generated.filter(
        pl.col("created_at").dt.date().is_between(FIRST + timedelta(days=2), date(2021, 4, 1))
    ).height


def test_generated_without_lineage_and_a_range_without_tweets(
        spark: SparkSession, generated: pl.DataFrame) -> None:
    once = generated.unique("tweet_id", keep="first", maintain_order=True).drop(
        "_landed_at", "_source", "_line")
    out = _same(spark, once, date(2021, 3, 10), date(2021, 3, 20), watermark=date(2021, 6, 1))
    assert (out["engagement_available_at"] == out["available_at"]).all()
    empty = _same(spark, once, date(2021, 5, 1), date(2021, 5, 4), watermark=date(2021, 6, 1))
    assert empty["tweets"].to_list() == [0, 0, 0] and empty["likes"].to_list() == [0, 0, 0]


def test_the_session_time_zone_does_not_move_days(spark: SparkSession,
                                                 generated: pl.DataFrame) -> None:
    zone = spark.conf.get("spark.sql.session.timeZone") or "UTC"
    spark.conf.set("spark.sql.session.timeZone", "Asia/Kolkata")  # +05:30: not UTC days
    try:
        _same(spark, generated, FIRST, date(2021, 3, 10), watermark=date(2021, 4, 1))
    finally:
        spark.conf.set("spark.sql.session.timeZone", zone)


@pytest.mark.parametrize(("start", "end", "watermark"), [
    (date(2021, 3, 1), date(2021, 3, 8), None),
    (date(2021, 3, 1), date(2021, 3, 8), date(2021, 2, 28)),
    (date(2021, 3, 8), date(2021, 3, 8), date(2021, 4, 1)),
])
def test_no_day_gives_the_empty_frame(spark: SparkSession, generated: pl.DataFrame,
                                      start: date, end: date, watermark: date | None) -> None:
    assert _same(spark, generated, start, end, watermark).equals(polars_tweets.empty())


def _fails_parity(spark: SparkSession, tweets: pl.DataFrame,
                  monkeypatch: pytest.MonkeyPatch, name: str, fault: Callable[..., object]
                  ) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(spark_tweets, name, fault)
        with pytest.raises(AssertionError):
            _same(spark, tweets, FIRST, date(2021, 5, 1), watermark=date(2021, 4, 1))


def test_java_unicode_flags_fail_the_parity_check(
        spark: SparkSession, generated: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """``(?iU)`` folds ``İ``/``ı`` to ``i`` (and on Java 17 misses Unicode 14+ letters)."""
    java_flags = {n: p.replace("(?i)", "(?iU)") for n, p in TERMS.items()}
    _fails_parity(spark, generated, monkeypatch, "term_patterns", lambda: java_flags)


def test_no_deduplication_fails_the_parity_check(
        spark: SparkSession, generated: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    def every_copy(tweets: DataFrame) -> DataFrame:
        return tweets.withColumn("day", spark_tweets.utc_day(F.col("created_at")))
    _fails_parity(spark, generated, monkeypatch, "deduplicated", every_copy)


def test_case_folding_is_rusts_for_every_letter_of_the_terms() -> None:
    """polars' ``(?i)x`` matches exactly the letters of ``folded(x)``, over every code point."""
    every = pl.Series(list(map(chr, itertools.chain(range(0xD800), range(0xE000, 0x110000)))))
    words = "".join(p.replace("(?i)", "").replace(r"\b", "") for p in TERMS.values())
    for letter in sorted(set(re.findall("[a-z]", words))):
        assert set(every.filter(every.str.contains(f"(?i)^{letter}$"))) == set(
            spark_tweets.folded(letter))


def test_unsupported_patterns_are_refused() -> None:
    with pytest.raises(ValueError, match="no Java twin"):
        spark_tweets.java_pattern(r"(?i)\bdoge\w*")


def test_term_boundaries_agree_next_to_code_points_of_every_unicode_version(
        spark: SparkSession) -> None:
    """``eth`` preceded or followed by each sampled code point matches alike in both engines.

    The sample holds every 29th code point of planes 0-3, all of two blocks added in Unicode
    14 (U+0870-U+089F, U+1E290-U+1E2FF: letters and marks Java 17 does not know) and the
    variation selectors supplement (marks, so word characters).
    """
    points = itertools.chain(range(0, 0xD800, 29), range(0xE000, 0x40000, 29),
                             range(0x0870, 0x08A0), range(0x1E290, 0x1E300),
                             range(0xE0100, 0xE01F0))
    chars = pl.Series("ch", list(map(chr, points)))
    texts = pl.DataFrame({"text": pl.concat([chars + "eth", "ETH" + chars])})
    expected = texts.select(pl.col("text").str.contains(TERMS["ethereum"]).alias("hit"))
    frame = spark.createDataFrame(texts.to_arrow(compat_level=pl.CompatLevel.oldest()))
    pattern = spark_tweets.term_patterns()["ethereum"]
    found = pl.from_arrow(frame.select(F.col("text").rlike(pattern).alias("hit")).toArrow())
    assert isinstance(found, pl.DataFrame)
    assert_frame_equal(found, expected)
    assert 0 < expected["hit"].sum() < expected.height


def _ingested(*archives: tuple[str, bytes]) -> pl.DataFrame:
    """The validated tweets of each archive, delivered in turn (later ``_landed_at``)."""
    frames = [ingest_members(unpack(uri, data), DATASETS).tables["tweets"]
              .with_columns(_landed_at=pl.lit(landed, dtype=pl.Datetime("us", "UTC")))
              for (uri, data), landed in zip(archives, LANDED, strict=False)]
    return pl.concat(frames, how="diagonal_relaxed")


def _whole_range(spark: SparkSession, tweets: pl.DataFrame) -> pl.DataFrame:
    days = tweets.select(polars_tweets.utc_day(pl.col("created_at")))["created_at"]
    first, last = days.min(), days.max()
    assert isinstance(first, date) and isinstance(last, date)
    return _same(spark, tweets, first, last + timedelta(days=1), watermark=last)


def test_the_sample_tweets_give_the_same_features(spark: SparkSession) -> None:
    path = SAMPLES / "elon_musk_tweets_sample.zip"
    once = _ingested((path.as_uri(), path.read_bytes()))
    # a redelivery of every third tweet with new counts: the later snapshot must win
    again = once.gather_every(3).with_columns(
        pl.col("likes") + 1, _landed_at=pl.lit(LANDED[1], dtype=pl.Datetime("us", "UTC")))
    tweets = pl.concat([once, again])
    out = _whole_range(spark, tweets)
    assert out["tweets"].sum() == once.height > 4000
    assert all(out[f"term_{t}"].sum() > 0 for t in TERMS)


@pytest.mark.realdata
def test_the_real_tweets_give_the_same_features(spark: SparkSession) -> None:
    archives = [shared("teraflow", d, "elon_musk_tweets.zip")
                for d in ("first-delivery", "redelivery")]
    tweets = _ingested(*[(p.as_uri(), p.read_bytes()) for p in archives])
    out = _whole_range(spark, tweets)
    assert out["tweets"].sum() == tweets["tweet_id"].n_unique() == 15_346
    assert tweets.height > 40_000 and out.height > 4000
    assert all(out[f"term_{t}"].sum() > 0 for t in TERMS)
