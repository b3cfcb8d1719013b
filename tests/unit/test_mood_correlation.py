"""Per-coin price/sentiment correlation (issue 10, item 2): grid, backward joins, statistics.

References are independent of the implementation: plain-Python loops build the aligned
return/sentiment pairs, ``scipy.stats`` gives r, rho and p (the implementation computes them
itself), and Benjamini-Hochberg is checked against a brute-force minimum over ranks.
"""

import itertools
import json
import math
import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from cryptodudez.mood.series import (
    backward_pooled_r,
    merged,
    nearest_pooled_r,
    parse_bucket,
    price_buckets,
    sentiment_buckets,
)
from cryptodudez.mood.stats import (
    Stat,
    benjamini_hochberg,
    block_bootstrap_ci,
    correlate,
    correlation_table,
    default_block,
    fisher_ci,
    lagged,
)

CRYPTOMOOD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cryptomood"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a multiple of 10 s, 1 min, 1 h and 1 day
COINS = ("BTC", "ETH", "LTC")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def trades_frame(rows: Sequence[tuple[str, datetime, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"coin": pl.String, "ts": pl.Datetime("us", "UTC"),
                                      "price": pl.Float64}, orient="row")


def tweets_frame(rows: Sequence[tuple[list[str], datetime, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"coins": pl.List(pl.String),
                                      "ts": pl.Datetime("us", "UTC"),
                                      "polarity": pl.Float64}, orient="row")


# --- parse_bucket ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("PT1S", 1), ("PT10S", 10), ("PT1M", 60), ("PT90M", 5400), ("PT1H", 3600),
    ("PT1H30M", 5400), ("PT1H0M5S", 3605), ("P1D", 86400), ("P1DT12H", 129600),
    ("P30D", 30 * 86400), ("PT720H", 30 * 86400),
])
def test_parse_bucket_accepts_the_subset(text: str, seconds: int) -> None:
    assert parse_bucket(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", [
    "", "P", "PT", "P1DT", "T10S", "10S", "PT10", "pt10s", "PT10s", " PT10S", "PT10S ",
    "PT1.5S", "PT-1S", "PT1S1M", "P1W", "P1M", "P1Y", "P1Y2M", "PT0S", "P0D", "P31D",
    "PT720H1S", "P1D\n", "PT9999999999S",
])
def test_parse_bucket_rejects_and_names_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_bucket(text)


def test_parse_bucket_rejects_non_text() -> None:
    with pytest.raises(ValueError, match="10"):
        parse_bucket(10)  # type: ignore[arg-type]


# --- series ---------------------------------------------------------------------------------


def test_price_buckets_last_price_and_no_return_across_a_gap() -> None:
    trades = trades_frame([
        ("ETH", at(9), 102.0),   # bucket 0's last trade, given before an earlier one
        ("ETH", at(1), 100.0),
        ("BTC", at(2), 6000.0),  # another coin: never in ETH's series
        ("ETH", at(12), 110.0),
        ("ETH", at(15), 105.0),  # bucket 1: two trades at the same instant, input order wins
        ("ETH", at(15), 104.0),
        ("ETH", at(31), 120.0),  # bucket 3: bucket 2 is empty
        ("ETH", at(45), 126.0),
    ])
    out = price_buckets(trades, "ETH", "PT10S")
    assert out["coin"].to_list() == ["ETH"] * 4
    assert out["bucket_start"].to_list() == [at(0), at(10), at(30), at(40)]
    assert out["bucket_end"].to_list() == [at(10), at(20), at(40), at(50)]
    assert out["price"].to_list() == [102.0, 104.0, 120.0, 126.0]
    assert out["trades"].to_list() == [2, 3, 1, 1]
    assert out["last_trade_ts"].to_list() == [at(9), at(15), at(31), at(45)]
    returns = out["log_return"].to_list()
    assert returns[0] is None and returns[2] is None  # first bucket; across the empty bucket
    assert returns[1] == pytest.approx(math.log(104 / 102))
    assert returns[3] == pytest.approx(math.log(126 / 120))


def test_price_buckets_grid_is_epoch_aligned() -> None:
    trades = trades_frame([("BTC", EPOCH - timedelta(seconds=1), 1.0),
                           ("BTC", at(3601), 2.0)])
    out = price_buckets(trades, "BTC", "PT1H")
    assert out["bucket_start"].to_list() == [EPOCH - timedelta(hours=1), at(3600)]


@pytest.mark.parametrize("price", [0.0, -1.0, float("nan"), float("inf"), None])
def test_price_buckets_rejects_prices_without_a_log(price: float | None) -> None:
    with pytest.raises(ValueError, match="1 BTC trades"):
        price_buckets(trades_frame([("BTC", at(1), 1.0), ("BTC", at(2), price)]),
                      "BTC", "PT1S")


def test_sentiment_buckets_count_only_tweets_that_mention_the_coin() -> None:
    tweets = tweets_frame([
        (["BTC", "ETH"], at(1), 0.5),
        (["ETH"], at(2), -1.0),        # not BTC
        (["BTC"], at(3), 0.1),
        (["BTC"], at(4), None),        # no polarity: neither mean nor count
        (["BTC"], at(5), float("nan")),
        (["LTC", "BTC"], at(14), -0.2),
        ([], at(16), 0.9),
    ])
    out = sentiment_buckets(tweets, "BTC", "PT10S")
    assert out["bucket_start"].to_list() == [at(0), at(10)]
    assert out["bucket_end"].to_list() == [at(10), at(20)]
    assert out["sentiment"].to_list() == pytest.approx([0.3, -0.2])
    assert out["tweets"].to_list() == [2, 1]
    assert out["last_tweet_ts"].to_list() == [at(3), at(14)]
    assert sentiment_buckets(tweets, "ETH", "PT10S")["sentiment"].to_list() == [-0.25]


def test_merged_never_matches_a_later_tweet() -> None:
    trades = trades_frame([("BTC", at(5), 100.0), ("BTC", at(15), 101.0)])
    later = tweets_frame([(["BTC"], at(20.5), 0.9), (["BTC"], at(21), 0.8)])
    out = merged(trades, later, "BTC", "PT10S", tolerance=timedelta(days=1))
    assert out["sentiment"].to_list() == [None, None]
    # A nearest join, as in the public solution, takes exactly those later tweets.
    nearest = trades.sort("ts").join_asof(later.sort("ts"), on="ts", strategy="nearest")
    assert nearest["polarity"].to_list() == [0.9, 0.9]

    same_bucket = tweets_frame([(["BTC"], at(19.999), -0.4), (["BTC"], at(20), 0.9)])
    out = merged(trades, same_bucket, "BTC", "PT10S", tolerance=timedelta(0))
    assert out["sentiment"].to_list() == [None, -0.4]
    assert out["sentiment_end"].to_list() == [None, at(20)]
    assert out["last_tweet_ts"].to_list() == [None, at(19.999)]


def test_merged_tolerance_bounds_how_old_the_sentiment_may_be() -> None:
    trades = trades_frame([("ETH", at(35), 1.0)])
    tweets = tweets_frame([(["ETH"], at(3), -0.5)])  # bucket ends at 10 s; price bucket at 40 s
    for seconds, expected in [(29, None), (30, -0.5), (600, -0.5)]:
        out = merged(trades, tweets, "ETH", "PT10S", tolerance=timedelta(seconds=seconds))
        assert out["sentiment"].to_list() == [expected], seconds
    with pytest.raises(ValueError, match="tolerance"):
        merged(trades, tweets, "ETH", "PT10S", tolerance=timedelta(seconds=-1))


def test_merged_lags_by_time_not_by_rows() -> None:
    # Trades in buckets 0, 1, 2, 5 and 6; a tweet in every bucket 0..9 with polarity k/10.
    trades = trades_frame([("LTC", at(10 * k + 1), 50.0 + k) for k in (0, 1, 2, 5, 6)])
    tweets = tweets_frame([(["LTC"], at(10 * k + 2), k / 10) for k in range(10)])
    zero = timedelta(0)
    lead = merged(trades, tweets, "LTC", "PT10S", tolerance=zero, lag=2)
    assert lead["sentiment"].to_list() == [None, None, 0.0, 0.3, 0.4]
    assert lead["asof_at"].to_list() == [at(-10), at(0), at(10), at(40), at(50)]
    assert (lead["sentiment_end"] <= lead["bucket_end"]).all()
    follow = merged(trades, tweets, "LTC", "PT10S", tolerance=zero, lag=-1)
    assert follow["sentiment"].to_list() == [0.1, 0.2, 0.3, 0.6, 0.7]
    assert set(lead["lag"].to_list()) == {2}


def test_merged_date_range_narrows_prices_returns_and_tweets() -> None:
    trades = trades_frame([("BTC", at(s), p) for s, p in [(5, 1.0), (10, 2.0), (25, 4.0),
                                                          (35, 8.0)]])
    tweets = tweets_frame([(["BTC"], at(6), 0.7), (["BTC"], at(36), -0.3)])
    out = merged(trades, tweets, "BTC", "PT10S", tolerance=timedelta(hours=1),
                 start=at(10), end=at(35))
    assert out["bucket_start"].to_list() == [at(10), at(20)]
    assert out["log_return"].to_list()[0] is None  # the bucket before start is out of range
    assert out["log_return"].to_list()[1] == pytest.approx(math.log(2))
    assert out["sentiment"].to_list() == [None, None]  # the tweet at 6 s is before start
    with pytest.raises(ValueError, match="time zone"):
        merged(trades, tweets, "BTC", "PT10S", tolerance=timedelta(0),
               start=datetime(2024, 1, 1))


def test_merged_rejects_naive_timestamps() -> None:
    naive = trades_frame([("BTC", at(1), 1.0)]).with_columns(
        pl.col("ts").dt.replace_time_zone(None))
    with pytest.raises(ValueError, match="UTC"):
        merged(naive, tweets_frame([]), "BTC", "PT10S", tolerance=timedelta(0))


# --- statistics -----------------------------------------------------------------------------


def test_correlate_equals_scipy_and_drops_incomplete_pairs() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=40)
    y = np.round(0.4 * x + rng.normal(size=40), 1)  # rounded: ties for the ranks
    xs: list[float | None] = [*x.tolist(), None, 1.0, float("nan")]
    ys: list[float | None] = [*y.tolist(), 2.0, None, 3.0]
    stat = correlate(xs, ys, n_boot=200)
    pearson, spearman = sps.pearsonr(x, y), sps.spearmanr(x, y)
    assert stat.n == 40 and stat.null_reason is None
    assert stat.pearson_r == pytest.approx(pearson.statistic, rel=1e-12)
    assert stat.pearson_p == pytest.approx(pearson.pvalue, rel=1e-9)
    assert stat.spearman_rho == pytest.approx(spearman.statistic, rel=1e-12)
    assert stat.spearman_p == pytest.approx(spearman.pvalue, rel=1e-9)


@pytest.mark.parametrize(("x", "y", "reason"), [
    ([1.0, 2.0, 3.0, None, 5.0, 6.0, 7.0, 8.0], [1.0, 3.0, 2.0, 4.0, 6.0, 5.0, 7.0, 9.0],
     "7 complete pairs, fewer than min_n=8"),
    ([], [], "0 complete pairs"),
    ([2.0] * 9, list(range(9)), "x is constant over the 9 complete pairs"),
    (list(range(9)), [0.5] * 9, "y is constant"),
])
def test_correlate_too_few_or_constant_is_null_with_a_reason(
        x: list[float | None], y: list[float], reason: str) -> None:
    stat = correlate(x, y)
    assert stat.null_reason is not None and reason in stat.null_reason
    numbers = {k: v for k, v in stat.as_dict().items() if k not in {"n", "null_reason"}}
    assert set(numbers.values()) == {None}
    assert stat.n == sum(1 for a, b in zip(x, y, strict=True) if a is not None and b is not None)


def test_correlate_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="min_n"):
        correlate([1.0] * 9, [1.0] * 9, min_n=3)
    with pytest.raises(ValueError, match="aligned"):
        correlate([1.0, 2.0], [1.0])


def test_fisher_ci_is_the_hand_formula() -> None:
    r, n = 0.5, 28
    z = 0.5 * math.log((1 + r) / (1 - r))
    half = 1.959963984540054 / math.sqrt(n - 3)
    hand = tuple((math.exp(2 * v) - 1) / (math.exp(2 * v) + 1) for v in (z - half, z + half))
    assert fisher_ci(r, n) == pytest.approx(hand, rel=1e-12)
    assert hand == pytest.approx((0.1560, 0.7358), abs=1e-4)
    x = np.arange(30.0)
    y = x + np.random.default_rng(1).normal(scale=8.0, size=30)
    stat = correlate(x, y, n_boot=50)
    assert stat.pearson_r is not None
    assert stat.fisher_ci == pytest.approx(fisher_ci(stat.pearson_r, 30), rel=1e-12)


def ar1(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + rng.normal()
    return out


def test_bootstrap_is_seeded_and_covers_a_strong_correlation() -> None:
    rng = np.random.default_rng(3)
    x = ar1(200, 0.7, rng)
    y = x + 0.3 * rng.normal(size=200)
    first, again = correlate(x, y, seed=11), correlate(x, y, seed=11)
    other = correlate(x, y, seed=12)
    assert first == again
    assert first.bootstrap_ci != other.bootstrap_ci
    assert first.block == default_block(200) == 6
    assert first.pearson_r is not None and first.pearson_r > 0.9
    lo, hi = first.bootstrap_ci or (2.0, -2.0)
    assert lo < first.pearson_r < hi and hi - lo < 0.1


def test_bootstrap_resamples_whole_blocks() -> None:
    x = np.arange(12.0)
    y = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 8.0, 7.0, 9.0, 12.0, 10.0, 11.0])
    r = float(np.corrcoef(x, y)[0, 1])
    # One block of length n can only start at 0: every resample is the series itself.
    assert block_bootstrap_ci(x, y, block=12, n_boot=50, seed=0) == pytest.approx((r, r))
    iid = block_bootstrap_ci(x, y, block=1, n_boot=500, seed=0)
    assert iid is not None and iid[0] < r - 0.01


def reference_bootstrap(x: np.ndarray, y: np.ndarray, block: int, n_boot: int,
                        seed: int) -> tuple[float, float] | None:
    """The documented algorithm by loops: the same draws, runs cut to n, constant ones out."""
    n = len(x)
    runs = math.ceil(n / block)
    starts = np.random.default_rng(seed).integers(0, n - block + 1, size=(n_boot, runs))
    replicates = []
    for draw in starts:
        index = [int(start) + offset for start in draw for offset in range(block)][:n]
        if len(set(x[index])) > 1 and len(set(y[index])) > 1:
            replicates.append(np.corrcoef(x[index], y[index])[0, 1])
    if len(replicates) * 2 < n_boot:
        return None
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return (float(lo), float(hi))


def test_bootstrap_is_the_documented_moving_block_percentile_interval() -> None:
    rng = np.random.default_rng(4)
    x = ar1(23, 0.5, rng)
    y = 0.5 * x + rng.normal(size=23)
    got = block_bootstrap_ci(x, y, block=3, n_boot=300, seed=9)
    assert got == pytest.approx(reference_bootstrap(x, y, 3, 300, 9), rel=1e-12)


def test_bootstrap_leaves_out_constant_resamples_and_gives_up_past_half() -> None:
    x = np.array([1.0] + [0.0] * 9)  # a resample without x[0] is constant
    y = np.arange(10.0)
    # Block 1: about 35 % of resamples are constant; they are left out, not counted as r = 0.
    kept = block_bootstrap_ci(x, y, block=1, n_boot=400, seed=0)
    assert kept is not None
    assert kept == pytest.approx(reference_bootstrap(x, y, 1, 400, 0), rel=1e-12)
    # Block 5: a run starts at 0 with probability 1/6, so about 70 % are constant.
    assert reference_bootstrap(x, y, 5, 400, 0) is None
    assert block_bootstrap_ci(x, y, block=5, n_boot=400, seed=0) is None


def paper_constant_mood() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Twelve 10 s buckets of BTC whose tweets average exactly 0.15 on paper.

    Odd buckets hold 0.1 and 0.2, even ones 0.15: in floats the first mean is
    0.15000000000000002, the second 0.15. Returns alternate with the two kinds of bucket, so
    a rule blind to rounding finds a strong, "significant" r in sentiment that never moves.
    """
    rng = np.random.default_rng(1)
    tweets, returns = [], []
    for k in range(1, 13):
        polarities = [0.1, 0.2] if k % 2 else [0.15]
        tweets += [(["BTC"], at(10 * k + 1 + i), p) for i, p in enumerate(polarities)]
        returns.append((0.002 if k % 2 else -0.002) + rng.normal(0, 2e-4))
    log_prices = np.concatenate([[0.0], np.cumsum(returns)])
    trades = [("BTC", at(10 * k + 5), 100 * math.exp(float(v)))
              for k, v in enumerate(log_prices)]
    return trades_frame(trades), tweets_frame(tweets)


def test_a_side_equal_up_to_rounding_is_constant() -> None:
    trades, tweets = paper_constant_mood()
    on_paper = [0.15] * 12  # every bucket's mean polarity, by hand
    sentiment = merged(trades, tweets, "BTC", "PT10S", tolerance=timedelta(0))["sentiment"]
    assert sentiment.drop_nulls().to_list() == pytest.approx(on_paper, abs=1e-15)
    assert sentiment.drop_nulls().n_unique() == 2  # ...but not equal in floats
    table = correlation_table(trades, tweets, coins=["BTC"], buckets=["PT10S"], max_lag=0,
                              tolerance_buckets=0, n_boot=200)
    row = table.row(0, named=True)
    assert row["n"] == 12
    assert row["null_reason"] == "sentiment is constant over the 12 complete pairs"
    assert {row[k] for k in ("pearson_r", "pearson_p", "spearman_rho", "fisher_lo",
                             "bootstrap_lo", "q_value")} == {None}


@pytest.mark.parametrize("scale", [1e-9, 1.0, 1e9])
def test_the_constant_rule_is_relative_to_the_side_itself(scale: float) -> None:
    x = np.array([0.3, -0.1, 0.2, -0.4, 0.1, 0.5, -0.2, 0.05, 0.0, -0.3])
    y = 0.15 + np.array([1, -1, 2, 0, -2, 1, 0, 3, -1, 1]) * 1e-4  # small, real variation
    stat = correlate(x * scale, y * scale, n_boot=200)
    assert stat.null_reason is None
    assert stat.pearson_r == pytest.approx(sps.pearsonr(x, y).statistic, rel=1e-9)
    flat = correlate(x * scale, (0.15 + 1e-17 * np.arange(10)) * scale, n_boot=200)
    assert flat.null_reason == "y is constant over the 10 complete pairs"


def test_a_bootstrap_that_gives_up_keeps_the_numbers_and_says_why() -> None:
    x = np.array([0.3, -0.1, 0.2, -0.4, 0.1, 0.5, -0.2, 0.05])
    y = np.array([0.9, 0, 0, 0, 0, 0, 0, 0.0])  # one bucket with sentiment: most resamples miss it
    stat = correlate(x, y)
    assert reference_bootstrap(x, y, 2, 2000, 0) is None  # the loops give up too
    assert stat.bootstrap_ci is None and stat.block == 2
    assert stat.null_reason == ("no bootstrap interval: more than half of the 2000 resamples "
                                "(block 2) have x or y constant")
    assert stat.pearson_r == pytest.approx(sps.pearsonr(x, y).statistic, rel=1e-12)
    assert stat.pearson_p == pytest.approx(sps.pearsonr(x, y).pvalue, rel=1e-9)
    half = 1.959963984540054 / math.sqrt(8 - 3)  # z_0.975 / sqrt(n - 3), written out
    z = math.atanh(sps.pearsonr(x, y).statistic)
    assert stat.fisher_ci == pytest.approx((math.tanh(z - half), math.tanh(z + half)),
                                           rel=1e-9)


def test_no_number_is_missing_without_a_reason() -> None:
    rng = np.random.default_rng(5)
    gave_up = 0
    for _ in range(300):
        n = int(rng.integers(6, 30))
        x = rng.normal(size=n)
        y = np.zeros(n)  # sentiment in one to three buckets only, the rest neutral
        k = int(rng.integers(1, 4))
        y[rng.choice(n, size=k, replace=False)] = rng.normal(size=k)
        stat = correlate(x, y, n_boot=100, block=int(rng.integers(1, 6)))
        flat = stat.as_dict()
        missing = [k for k, v in flat.items() if v is None and k not in {"q_value",
                                                                          "null_reason"}]
        assert not missing or stat.null_reason, (x, y, flat)
        gave_up += stat.pearson_r is not None and stat.bootstrap_ci is None
    assert gave_up >= 10  # the case is exercised, not only the all-null one


@pytest.mark.parametrize(("n", "block"), [(1, 1), (8, 2), (9, 3), (27, 3), (28, 4), (64, 4)])
def test_default_block_is_the_cube_root_rounded_up(n: int, block: int) -> None:
    assert default_block(n) == block


def brute_force_bh(pvalues: list[float | None]) -> list[float | None]:
    present = sorted(p for p in pvalues if p is not None)
    m = len(present)
    out: list[float | None] = []
    for p in pvalues:
        if p is None:
            out.append(None)
            continue
        # q(p) = min over the ranked p_(j) >= p of m p_(j) / j (j the 1-based rank).
        out.append(min(1.0, *(m * pj / j for j, pj in enumerate(present, 1) if pj >= p)))
    return out


def test_benjamini_hochberg_by_hand_and_by_brute_force() -> None:
    assert benjamini_hochberg([0.01, 0.04, None, 0.03, 0.005]) == pytest.approx(
        [0.02, 0.04, None, 0.04, 0.02])
    assert benjamini_hochberg([0.5, 0.7]) == pytest.approx([0.7, 0.7])
    assert benjamini_hochberg([1.0, 1.0, 0.0]) == pytest.approx([1.0, 1.0, 0.0])
    assert benjamini_hochberg([]) == []
    generator = random.Random(5)
    for _ in range(200):
        pvalues = [None if generator.random() < 0.1 else
                   round(generator.random() ** 2, generator.choice([1, 2, 6]))
                   for _ in range(generator.randint(1, 25))]
        q = benjamini_hochberg(pvalues)
        expected = brute_force_bh(pvalues)
        assert [v is None for v in q] == [v is None for v in expected]
        assert [v for v in q if v is not None] == pytest.approx(
            [v for v in expected if v is not None], rel=1e-12)
        pairs = sorted((p, v) for p, v in zip(pvalues, q, strict=True) if p is not None)
        assert all(a[1] <= b[1] for a, b in itertools.pairwise(pairs))  # type: ignore[operator]
        assert all(v is None or (p <= v * (1 + 1e-12) and v <= 1)  # type: ignore[operator]
                   for p, v in zip(pvalues, q, strict=True))


@pytest.mark.parametrize("bad", [1.2, -0.1, float("nan")])
def test_benjamini_hochberg_rejects_values_that_are_not_p(bad: float) -> None:
    with pytest.raises(ValueError, match="p-values"):
        benjamini_hochberg([0.1, bad])


def synthetic(n_buckets: int = 60, seed: int = 2) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two coins; ETH's return follows the previous bucket's ETH sentiment, BTC's is noise."""
    rng = np.random.default_rng(seed)
    mood = rng.uniform(-1, 1, size=n_buckets)
    trades, tweets = [], []
    price = {"ETH": 400.0, "BTC": 6000.0}
    for k in range(n_buckets):
        tweets.append((["ETH"], at(10 * k + 1), float(mood[k])))
        tweets.append((["BTC"], at(10 * k + 2), float(rng.uniform(-1, 1))))
        price["ETH"] *= math.exp(0.01 * (mood[k - 1] if k else 0.0) + 0.001 * rng.normal())
        price["BTC"] *= math.exp(0.01 * rng.normal())
        trades += [("ETH", at(10 * k + 5), price["ETH"]), ("BTC", at(10 * k + 6), price["BTC"])]
    return trades_frame(trades), tweets_frame(tweets)


def test_lagged_finds_a_planted_lead_at_the_right_lag() -> None:
    trades, tweets = synthetic()
    out = lagged(trades, tweets, "ETH", "PT10S", tolerance_buckets=0, max_lag=2, n_boot=200)
    assert list(out) == [-2, -1, 0, 1, 2]
    assert out[1].pearson_r is not None and out[1].pearson_r > 0.95
    assert all(abs(out[lag].pearson_r or 1.0) < 0.5 for lag in (-2, -1, 0, 2))


def test_correlation_table_q_values_span_everything_asked() -> None:
    trades, tweets = synthetic()
    table = correlation_table(trades, tweets, coins=["ETH", "BTC"], buckets=["PT10S", "PT20S"],
                              max_lag=2, tolerance_buckets=1, n_boot=100)
    assert table.height == 2 * 2 * 5
    assert table.select("coin", "bucket", "lag").rows()[:6] == [
        ("ETH", "PT10S", -2), ("ETH", "PT10S", -1), ("ETH", "PT10S", 0), ("ETH", "PT10S", 1),
        ("ETH", "PT10S", 2), ("ETH", "PT20S", -2)]
    assert table["q_value"].to_list() == pytest.approx(
        brute_force_bh(table["pearson_p"].to_list()), rel=1e-12)
    alone = correlation_table(trades, tweets, coins=["ETH"], buckets=["PT10S"], max_lag=2,
                              tolerance_buckets=1, n_boot=100)
    eth = table.filter(pl.col("bucket") == "PT10S", pl.col("coin") == "ETH")
    assert eth["pearson_p"].to_list() == alone["pearson_p"].to_list()
    assert all(a >= b for a, b in zip(eth["q_value"], alone["q_value"], strict=True))
    json.dumps(table.to_dicts(), allow_nan=False)
    with pytest.raises(ValueError, match="repeats"):
        correlation_table(trades, tweets, coins=["ETH", "ETH"], buckets=["PT10S"], max_lag=0,
                          tolerance_buckets=0)


def test_stat_as_dict_is_json_ready() -> None:
    stat = Stat(n=9, pearson_r=0.1, fisher_ci=(-0.5, 0.6), bootstrap_ci=None)
    flat = stat.as_dict()
    assert flat["fisher_lo"] == -0.5 and flat["fisher_hi"] == 0.6
    assert flat["bootstrap_lo"] is None and "fisher_ci" not in flat
    json.dumps(flat, allow_nan=False)


# --- the real CryptoMood files --------------------------------------------------------------


def real_rows() -> tuple[list[tuple[str, datetime, float]],
                         list[tuple[list[str], datetime, float]]]:
    if not CRYPTOMOOD.is_dir():
        pytest.skip(f"real data not available: {CRYPTOMOOD}")
    trades = []
    for line in (CRYPTOMOOD / "historical_coin_data.txt").read_text().splitlines():
        row = json.loads(line)
        coin = row["symbol_id"].split("_")[2]
        assert row["coins"] == [coin]
        trades.append((coin, datetime.fromisoformat(row["timestamp"]), float(row["price"])))
    tweets = [(row["coins"], datetime.fromisoformat(row["timestamp"]),
               float(row["sentiment_polarity"]))
              for row in map(json.loads,
                             (CRYPTOMOOD / "historical_sentiment_data.txt").read_text()
                             .splitlines())]
    assert (len(trades), len(tweets)) == (308, 94)
    return trades, tweets


@pytest.fixture(scope="module")
def real() -> tuple[pl.DataFrame, pl.DataFrame, list, list]:
    trades, tweets = real_rows()
    return trades_frame(trades), tweets_frame(tweets), trades, tweets


def reference_pairs(trades: list[tuple[str, datetime, float]],
                    tweets: list[tuple[list[str], datetime, float]], coin: str, bucket_s: int,
                    tolerance_buckets: int, lag: int) -> tuple[list[float], list[float]]:
    """Aligned (return, sentiment) pairs, by loops: floor buckets, last price, backward."""
    width = bucket_s * 1_000_000

    def index(ts: datetime) -> int:
        return ((ts - EPOCH) // timedelta(microseconds=1)) // width

    last: dict[int, tuple[datetime, float]] = {}
    for trade_coin, ts, price in trades:
        if trade_coin == coin and (index(ts) not in last or ts >= last[index(ts)][0]):
            last[index(ts)] = (ts, price)
    moods: dict[int, list[float]] = {}
    for coins, ts, polarity in tweets:
        if coin in coins:
            moods.setdefault(index(ts), []).append(polarity)
    returns, sentiment = [], []
    for k in sorted(last):
        if k - 1 not in last:
            continue
        # Sentiment buckets j ending no later than bucket k - lag's end, at most tol older.
        usable = [j for j in moods if j <= k - lag and (k - lag) - j <= tolerance_buckets]
        if usable:
            returns.append(math.log(last[k][1] / last[k - 1][1]))
            sentiment.append(sum(moods[max(usable)]) / len(moods[max(usable)]))
    return returns, sentiment


@pytest.mark.realdata
@pytest.mark.parametrize("coin", COINS)
@pytest.mark.parametrize(("bucket", "seconds", "min_n"), [
    ("PT5S", 5, 8), ("PT10S", 10, 8), ("PT20S", 20, 8), ("PT30S", 30, 4)])
@pytest.mark.parametrize(("tolerance", "lag"), [(0, 0), (1, 0), (2, 1), (0, -2)])
def test_real_per_coin_statistics_equal_scipy_on_loop_built_pairs(
        real: tuple, coin: str, bucket: str, seconds: int, min_n: int, tolerance: int,
        lag: int) -> None:
    trades, tweets, trade_rows, tweet_rows = real
    x, y = reference_pairs(trade_rows, tweet_rows, coin, seconds, tolerance, lag)
    frame = merged(trades, tweets, coin, bucket, tolerance=timedelta(seconds=seconds) * tolerance,
                   lag=lag)
    pairs = frame.drop_nulls(["log_return", "sentiment"])
    assert pairs["log_return"].to_list() == pytest.approx(x, rel=1e-12)
    assert pairs["sentiment"].to_list() == pytest.approx(y, rel=1e-12)
    stat = lagged(trades, tweets, coin, bucket, tolerance_buckets=tolerance, max_lag=abs(lag),
                  min_n=min_n, n_boot=200)[lag]
    assert stat.n == len(x)
    if len(x) < min_n:  # PT20S at lag -2 keeps 7 pairs
        assert stat.pearson_r is None
        assert stat.null_reason == f"{len(x)} complete pairs, fewer than min_n={min_n}"
        return
    pearson, spearman = sps.pearsonr(x, y), sps.spearmanr(x, y)
    assert stat.pearson_r == pytest.approx(pearson.statistic, rel=1e-9)
    assert stat.pearson_p == pytest.approx(pearson.pvalue, rel=1e-9)
    assert stat.spearman_rho == pytest.approx(spearman.statistic, rel=1e-9)
    assert stat.spearman_p == pytest.approx(spearman.pvalue, rel=1e-9)


@pytest.mark.realdata
@pytest.mark.parametrize("coin", COINS)
def test_real_one_minute_buckets_are_too_few_for_a_number(real: tuple, coin: str) -> None:
    trades, tweets, trade_rows, tweet_rows = real
    x, _ = reference_pairs(trade_rows, tweet_rows, coin, 60, 1, 0)
    stat = lagged(trades, tweets, coin, "PT1M", tolerance_buckets=1, max_lag=0, min_n=4)[0]
    assert stat.n == len(x) == 3
    assert stat.pearson_r is None and stat.null_reason == "3 complete pairs, fewer than min_n=4"


@pytest.mark.realdata
def test_real_pinned_per_coin_numbers_and_q_values(real: tuple) -> None:
    trades, tweets, _, _ = real
    table = correlation_table(trades, tweets, coins=list(COINS), buckets=["PT10S", "PT1M"],
                              max_lag=0, tolerance_buckets=1)
    got = {(row["coin"], row["bucket"]): row for row in table.to_dicts()}
    print(table.select("coin", "bucket", "n", "pearson_r", "pearson_p", "spearman_rho",
                       "spearman_p", "bootstrap_lo", "bootstrap_hi", "q_value", "null_reason"))
    pinned = {  # n, r, p, rho, q (q across these six questions, three of them null)
        "BTC": (18, 0.009, 0.972, 0.038, 0.972),
        "ETH": (18, 0.563, 0.015, 0.370, 0.045),
        "LTC": (18, -0.465, 0.052, -0.302, 0.077),
    }
    for coin, (n, r, p, rho, q) in pinned.items():
        row = got[(coin, "PT10S")]
        assert (row["n"], round(row["pearson_r"], 3), round(row["pearson_p"], 3),
                round(row["spearman_rho"], 3), round(row["q_value"], 3)) == (n, r, p, rho, q)
        assert got[(coin, "PT1M")]["null_reason"] == "3 complete pairs, fewer than min_n=8"
        assert got[(coin, "PT1M")]["pearson_r"] is None


@pytest.mark.realdata
def test_real_full_table_has_no_evidence_once_tests_are_counted(real: tuple) -> None:
    trades, tweets, _, _ = real
    table = correlation_table(trades, tweets, coins=list(COINS),
                              buckets=["PT10S", "PT30S", "PT1M", "PT1H"], max_lag=5,
                              tolerance_buckets=1)
    assert table.height == 3 * 4 * 11
    numbers = table.filter(pl.col("null_reason").is_null())
    print(numbers.sort("pearson_p").head(5))
    assert numbers.height == 33  # only PT10S has at least 8 pairs, at every lag
    assert set(numbers["bucket"]) == {"PT10S"}
    smallest_p, smallest_q = numbers["pearson_p"].to_list(), numbers["q_value"].to_list()
    assert round(min(smallest_p), 4) == 0.0034  # BTC, lag -3: q 0.113
    assert min(smallest_q) > 0.1
    json.dumps(table.to_dicts(), allow_nan=False)


def nearest_time(times: list[datetime], ts: datetime) -> datetime:
    return min(times, key=lambda t: abs(t - ts))


@pytest.mark.realdata
def test_real_pooled_nearest_artefact_and_its_backward_variant(real: tuple) -> None:
    trades, tweets, trade_rows, tweet_rows = real
    nearest, backward = nearest_pooled_r(trades, tweets), backward_pooled_r(trades, tweets)
    print(f"pooled nearest r = {nearest}, pooled backward r = {backward}")
    assert nearest is not None and round(nearest, 3) == 0.107
    assert backward is not None and round(backward, 3) == -0.006
    tweet_times = [ts for _, ts, _ in tweet_rows]
    later = sum(1 for _, ts, _ in trade_rows if nearest_time(tweet_times, ts) > ts)
    assert later == 153  # of 308 trades: half take a tweet from their future
    # By loops: pool all prices with each trade's nearest tweet; r must agree.
    polarity = {ts: p for _, ts, p in tweet_rows}
    prices = [price for _, _, price in trade_rows]
    moods = [polarity[nearest_time(tweet_times, ts)] for _, ts, _ in trade_rows]
    assert nearest == pytest.approx(sps.pearsonr(prices, moods).statistic, rel=1e-9)


@pytest.mark.realdata
@pytest.mark.parametrize("coin", COINS)
@pytest.mark.parametrize("bucket", ["PT5S", "PT10S", "PT30S"])
def test_real_merged_is_one_coin_and_never_looks_ahead(real: tuple, coin: str,
                                                       bucket: str) -> None:
    trades, tweets, trade_rows, _ = real
    own = [p for c, _, p in trade_rows if c == coin]
    others = [p for c, _, p in trade_rows if c != coin]
    for lag in (0, 1, 3):
        frame = merged(trades, tweets, coin, bucket, tolerance=parse_bucket(bucket) * 2, lag=lag)
        assert frame["coin"].unique().to_list() == [coin]
        assert min(own) <= frame["price"].min() and frame["price"].max() <= max(own)
        assert frame["price"].is_in(own).all() and not frame["price"].is_in(others).any()
        used = frame.drop_nulls("sentiment")
        assert used.height > 0
        assert (used["sentiment_end"] <= used["asof_at"]).all()
        assert (used["last_tweet_ts"] < used["bucket_end"]).all()
        assert (used["asof_at"] <= used["bucket_end"]).all()
