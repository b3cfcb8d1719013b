"""Correlation results keyed by parameters and data, and the SQL twin that checks them."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from cryptodudez.checks.mood import against_sql, lookahead_violations
from cryptodudez.mood import results

T0 = datetime(2018, 7, 16, 20, 0, tzinfo=UTC)


def _generated(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two coins' trades with gaps and tied timestamps, and tweets naming one or both."""
    rng = np.random.default_rng(seed)
    n = 400
    seconds = np.sort(rng.choice(np.arange(0, 600), size=n))  # ties and empty seconds
    coins = rng.choice(["BTC", "ETH"], size=n)
    prices = np.where(coins == "BTC", 6000.0, 430.0) * np.exp(rng.normal(0, 0.002, size=n))
    trades = pl.DataFrame({
        "coin": coins, "ts": [T0 + timedelta(seconds=int(s), milliseconds=int(m))
                              for s, m in zip(seconds, rng.integers(0, 3, size=n), strict=True)],
        "price": prices}).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    k = 150
    mentions = [["BTC"], ["ETH"], ["BTC", "ETH"], ["LTC"]]
    sentiments = pl.DataFrame({
        "coins": [mentions[i] for i in rng.integers(0, 4, size=k)],
        "ts": [T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 600, size=k))],
        "polarity": rng.uniform(-1, 1, size=k)}).with_columns(
        pl.col("ts").dt.cast_time_unit("us"))
    return trades, sentiments


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tolerance", [0, 2])
def test_the_sql_twin_agrees_with_polars_on_generated_data(seed: int, tolerance: int) -> None:
    trades, sentiments = _generated(seed)
    params = results.MoodParams(coins=("BTC", "ETH"), buckets=("PT1S", "PT5S", "PT30S"),
                                max_lag=3, tolerance_buckets=tolerance, n_boot=50)
    table = results.correlation(trades, sentiments, params)
    assert table["n"].max() >= 8
    assert against_sql(trades, sentiments, params, table).height == 0


def test_the_sql_twin_fails_a_planted_bug() -> None:
    trades, sentiments = _generated(0)
    params = results.MoodParams(coins=("BTC",), buckets=("PT5S",), max_lag=1, n_boot=50)
    table = results.correlation(trades, sentiments, params)
    shifted = table.with_columns(n=pl.when(pl.col("lag") == 0).then(pl.col("n") + 1)
                                 .otherwise("n"))
    wrong = against_sql(trades, sentiments, params, shifted)
    assert wrong["lag"].to_list() == [0]


def test_the_sql_twin_applies_the_date_range_half_open() -> None:
    trades, sentiments = _generated(0)
    # both bounds at a trade's instant inside a bucket: ts == start is kept, ts == end is not
    start = T0 + timedelta(seconds=98, milliseconds=1)
    end = T0 + timedelta(seconds=456, milliseconds=1)
    assert trades.filter(pl.col("ts").is_in([start, end])).height == 2
    params = results.MoodParams(coins=("BTC", "ETH"), buckets=("PT2S", "PT5S"), max_lag=2,
                                tolerance_buckets=1, start=start, end=end, n_boot=50)
    table = results.correlation(trades, sentiments, params)
    assert table["pearson_r"].is_not_null().sum() >= 15  # of 20: most rows have numbers
    assert against_sql(trades, sentiments, params, table).height == 0
    # a stored result computed on another range fails: a start that leaves out the trade at
    # ``start`` or comes a minute late, an end that keeps the trade at ``end``, no range
    tick = timedelta(microseconds=1)
    for wrong in (replace(params, start=start + tick), replace(params, end=end + tick),
                  replace(params, start=start + timedelta(minutes=1)),
                  replace(params, start=None, end=None)):
        planted = results.correlation(trades, sentiments, wrong)
        assert against_sql(trades, sentiments, params, planted).height > 0, wrong


def test_the_sql_twin_agrees_that_a_side_constant_up_to_rounding_has_no_r() -> None:
    trades = pl.DataFrame({"coin": "BTC", "ts": [T0 + timedelta(seconds=10 * k + 5)
                                                 for k in range(13)],
                           "price": [100.0 * (1.002 if k % 2 else 0.999) ** k
                                     for k in range(13)]}).with_columns(
        pl.col("ts").dt.cast_time_unit("us"))
    tweets = [(T0 + timedelta(seconds=10 * k + 1 + i), p) for k in range(1, 13)
              for i, p in enumerate([0.1, 0.2] if k % 2 else [0.15])]  # 0.15 on paper
    sentiments = pl.DataFrame({"coins": [["BTC"]] * len(tweets), "ts": [t for t, _ in tweets],
                               "polarity": [p for _, p in tweets]}).with_columns(
        pl.col("ts").dt.cast_time_unit("us"))
    params = results.MoodParams(coins=("BTC",), buckets=("PT10S",), max_lag=0, n_boot=50)
    table = results.correlation(trades, sentiments, params)
    assert table.select("n", "pearson_r").row(0) == (12, None)
    assert against_sql(trades, sentiments, params, table).height == 0


def test_a_missing_bootstrap_interval_keeps_its_reason_in_the_warehouse(tmp_path) -> None:
    trades, sentiments = _generated(1)
    params = results.MoodParams(coins=("BTC",), buckets=("PT5S",), max_lag=0, n_boot=50)
    table = results.correlation(trades, sentiments, params).with_columns(
        bootstrap_lo=None, bootstrap_hi=None, null_reason=pl.lit("no bootstrap interval: x"))
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute(results.TABLES_DDL)
        results.store_correlation(con, params, "v", table)
        back = results.read_correlation(con, params, "v")
    assert back is not None and back.equals(table)
    assert back.row(0, named=True)["pearson_r"] is not None


def test_merged_series_of_two_ranges_on_one_version_are_kept_apart(tmp_path) -> None:
    trades, sentiments = _generated(2)
    start = T0 + timedelta(seconds=270)  # inside the PT1M bucket starting at 20:04
    full = results.merged_rows(trades, sentiments, coin="BTC", bucket="PT1M",
                               tolerance_buckets=1)
    part = results.merged_rows(trades, sentiments, coin="BTC", bucket="PT1M",
                               tolerance_buckets=1, start=start)
    at_4 = pl.col("bucket_start") == T0 + timedelta(minutes=4)
    assert full.filter(at_4)["trades"].item() > part.filter(at_4)["trades"].item()
    assert part.filter(at_4)["log_return"].item() is None  # the first bucket in range
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute(results.TABLES_DDL)
        for frame, bounds in ((full, {}), (part, {"start": start})):
            results.store_merged(con, "v", frame, bucket="PT1M", tolerance_buckets=1, **bounds)
        results.store_merged(con, "v", full, bucket="PT1M", tolerance_buckets=1)  # a rerun
        assert con.execute("SELECT count(*) FROM mood_merged").fetchall() == [
            (full.height + part.height,)]
        for frame, bounds in ((full, {}), (part, {"start": start})):
            back = results.read_merged(con, "v", coin="BTC", bucket="PT1M",
                                       tolerance_buckets=1, **bounds)
            assert back.equals(frame.select(results.MERGED_COLUMNS)), bounds
        assert results.read_merged(con, "v", coin="BTC", bucket="PT1M", tolerance_buckets=1,
                                   end=start).height == 0  # a range never stored


def test_the_lookahead_check_reads_the_rows_of_its_own_range(tmp_path) -> None:
    trades, sentiments = _generated(2)
    start = T0 + timedelta(seconds=270)
    ranged = results.MoodParams(coins=("BTC",), buckets=("PT1M",), start=start)
    full = results.merged_rows(trades, sentiments, coin="BTC", bucket="PT1M",
                               tolerance_buckets=0)
    peeking = full.with_columns(sentiment_end=pl.col("bucket_end") + timedelta(minutes=1),
                                sentiment=pl.lit(0.5))  # a later bucket's sentiment
    part = results.merged_rows(trades, sentiments, coin="BTC", bucket="PT1M",
                               tolerance_buckets=0, start=start)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute(results.TABLES_DDL)
        results.store_merged(con, "v", peeking, bucket="PT1M", tolerance_buckets=0)
        results.store_merged(con, "v", part, bucket="PT1M", tolerance_buckets=0, start=start)
        assert lookahead_violations(con, "v", replace(ranged, start=None)) == full.height
        assert lookahead_violations(con, "v", ranged) == 0


OLD_MERGED = """CREATE TABLE mood_merged (
    data_version VARCHAR NOT NULL, coin VARCHAR NOT NULL, bucket VARCHAR NOT NULL,
    tolerance_buckets BIGINT NOT NULL, bucket_start TIMESTAMPTZ NOT NULL,
    bucket_end TIMESTAMPTZ NOT NULL, price DOUBLE, last_trade_ts TIMESTAMPTZ, trades BIGINT,
    log_return DOUBLE, asof_at TIMESTAMPTZ, sentiment_end TIMESTAMPTZ, sentiment DOUBLE,
    tweets BIGINT, last_tweet_ts TIMESTAMPTZ,
    PRIMARY KEY (data_version, coin, bucket, tolerance_buckets, bucket_start))"""


def test_a_warehouse_with_the_old_merged_layout_is_upgraded(tmp_path) -> None:
    path = str(tmp_path / "old.duckdb")
    with duckdb.connect(path) as con:
        con.execute(OLD_MERGED)
        con.execute("INSERT INTO mood_merged (data_version, coin, bucket, tolerance_buckets, "
                    "bucket_start, bucket_end) VALUES ('v', 'BTC', 'PT1M', 1, "
                    "TIMESTAMPTZ '2018-07-16 20:00:00+00', TIMESTAMPTZ '2018-07-16 20:01:00+00')")
        con.execute(results.TABLES_DDL)  # what a writer runs first: keeps the old table
        assert results.upgrade_layout(con) == {"mood_merged": 1}
        columns = [c for (c,) in con.sql("SELECT column_name FROM duckdb_columns() WHERE "
                                         "table_name = 'mood_merged'").fetchall()]
        assert {"range_start", "range_end"} <= set(columns)
        assert con.execute("SELECT count(*) FROM mood_merged").fetchall() == [(0,)]
        assert results.upgrade_layout(con) == {}  # this version's tables stay as they are


def test_row_counts_tell_a_row_without_its_interval_from_a_row_without_numbers() -> None:
    from cryptodudez.assets.mood import row_counts  # noqa: PLC0415

    stored = pl.DataFrame({"pearson_r": [0.3, None, 0.1, 0.2],
                           "bootstrap_lo": [-0.1, None, None, 0.0],
                           "null_reason": [None, "5 complete pairs, fewer than min_n=8",
                                           "no bootstrap interval: ...", None]})
    assert row_counts(stored) == {"numeric_rows": 3, "null_rows": 1, "no_bootstrap_rows": 1}


def test_results_are_stored_once_per_key_and_read_back_in_the_order_asked(tmp_path) -> None:
    trades, sentiments = _generated(1)
    params = results.MoodParams(coins=("ETH", "BTC"), buckets=("PT5S",), max_lag=1, n_boot=50)
    version = results.data_version(trades, sentiments)
    table = results.correlation(trades, sentiments, params)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute(results.TABLES_DDL)
        assert results.store_correlation(con, params, version, table)
        assert not results.store_correlation(con, params, version, table)
        assert con.execute("SELECT count(*) FROM mood_correlation").fetchone() == (6,)
        back = results.read_correlation(con, params, version)
        assert back is not None
        assert back.equals(table)
        assert results.read_correlation(con, params, "another-version") is None


def test_the_key_and_the_data_version_change_with_what_they_summarise() -> None:
    trades, sentiments = _generated(2)
    base = results.MoodParams(coins=("BTC",))
    assert base.key() == results.MoodParams(coins=("BTC",)).key()
    assert base.key() != results.MoodParams(coins=("BTC",), method="spearman").key()
    assert base.key() != results.MoodParams(coins=("BTC",), start=T0).key()
    version = results.data_version(trades, sentiments)
    assert version == results.data_version(trades.clone(), sentiments.clone())
    moved = trades.with_columns(price=pl.col("price") * (1 + 1e-12))
    assert results.data_version(moved, sentiments) != version


@pytest.mark.parametrize(("changes", "message"), [
    ({"coins": ()}, "coins must be non-empty"),
    ({"coins": ("BTC", "BTC")}, "without repeats"),
    ({"buckets": ("P1M",)}, "is not an ISO-8601 duration"),
    ({"buckets": ("PT1M", "PT60S")}, "buckets must be non-empty and without repeats"),
    ({"buckets": tuple(f"PT{s}S" for s in range(1, 10))}, "at most 8 buckets, not 9"),
    ({"buckets": ("PT\u0661\u0660S",)}, "is not an ISO-8601 duration"),  # Arabic-Indic 10
    ({"max_lag": 21}, "max_lag must lie in 0..20"),
    ({"method": "kendall"}, "method must be one of"),
    ({"start": datetime(2018, 1, 1)}, "start must carry a time zone"),
    ({"start": T0, "end": T0}, "must be before end"),
])
def test_bad_parameters_are_refused_naming_the_field(changes: dict[str, object],
                                                      message: str) -> None:
    with pytest.raises(ValueError, match=message):
        results.MoodParams(**{"coins": ("BTC",), **changes})  # type: ignore[arg-type]


def test_the_committed_real_data_report_is_current() -> None:
    from scripts.mood_report import OUT, report  # noqa: PLC0415

    assert json.loads(OUT.read_text()) == json.loads(json.dumps(report())), \
        "run: .venv/bin/python scripts/mood_report.py"
