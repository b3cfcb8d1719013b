"""Correlation results keyed by parameters and data, and the SQL twin that checks them."""

import json
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from cryptodudez.checks.mood import against_sql
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
