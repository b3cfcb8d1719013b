"""Rolling features against an independent pandas computation."""

import numpy as np
import pandas as pd
import polars as pl
import pytest

from cryptodudez.transforms.stock_features import (
    FEATURES,
    POSITION,
    features_by_period,
    features_for_range,
    rolling_features,
    rows_by_period,
    trailing_features,
    window_rows,
)


def _pandas_reference(frame: pl.DataFrame, window: int = 30) -> pd.DataFrame:
    pdf = frame.select("Symbol", "Date", "Volume", "Adj Close").to_pandas()
    pdf = pdf.sort_values(["Symbol", "Date"]).reset_index(drop=True)
    grouped = pdf.groupby("Symbol", sort=False)
    pdf["ref_vol"] = grouped["Volume"].transform(
        lambda s: s.astype(float).rolling(window, min_periods=window).mean())
    pdf["ref_med"] = grouped["Adj Close"].transform(
        lambda s: s.rolling(window, min_periods=window).median())
    return pdf


def _bars(rng: np.random.Generator, symbols: dict[str, int]) -> pl.DataFrame:
    rows = []
    for symbol, n in symbols.items():
        dates = pd.bdate_range("2019-12-02", periods=n * 2)[rng.permutation(n * 2)[:n]]
        for d in sorted(dates):
            rows.append((symbol, d.strftime("%Y-%m-%d"), int(rng.integers(0, 10**7)),
                         float(rng.lognormal(3, 1))))
    frame = pl.DataFrame(rows, schema={"Symbol": pl.String, "Date": pl.String,
                                       "Volume": pl.Int64, "Adj Close": pl.Float64},
                         orient="row")
    return frame.sample(fraction=1.0, shuffle=True, seed=1)  # any input order


def _compare(ours: pl.DataFrame, ref: pd.DataFrame) -> None:
    merged = ours.join(pl.from_pandas(ref[["Symbol", "Date", "ref_vol", "ref_med"]]),
                       on=["Symbol", "Date"], how="inner")
    assert merged.height == ours.height
    for col, ref_col in ((FEATURES[0], "ref_vol"), (FEATURES[1], "ref_med")):
        assert (merged[col].is_null() == merged[ref_col].is_null()).all()
        both = merged.drop_nulls([col, ref_col])
        np.testing.assert_allclose(both[col].to_numpy(), both[ref_col].to_numpy(), rtol=1e-12)


def test_matches_pandas_with_short_symbols_gaps_and_any_order() -> None:
    bars = _bars(np.random.default_rng(0), {"A": 200, "B": 29, "C": 30, "D": 31, "E": 1})
    ours = rolling_features(bars)
    assert ours.height == bars.height
    _compare(ours, _pandas_reference(bars))
    counts = ours.group_by("Symbol").agg(pl.col(FEATURES[0]).null_count()).sort("Symbol")
    assert counts[FEATURES[0]].to_list() == [29, 29, 29, 29, 1]
    assert (ours.filter(pl.col(POSITION) < 29)[FEATURES[0]].is_null()).all()


@pytest.mark.parametrize("boundary", ["2020-01-01", "2020-02-15", "2020-06-30"])
def test_a_range_is_exactly_the_full_computation_restricted(boundary: str) -> None:
    bars = _bars(np.random.default_rng(1), {"A": 150, "B": 40, "C": 12})
    full = rolling_features(bars).filter(pl.col("Date") >= boundary)
    part = features_for_range(bars.lazy(), start=boundary, end="2100-01-01")
    cols = ["Symbol", "Date", *FEATURES]
    assert part.select(cols).sort("Symbol", "Date").equals(full.select(cols).sort("Symbol",
                                                                                   "Date"))
    nulls = part.filter(pl.col(FEATURES[0]).is_null())
    assert (nulls[POSITION] < 29).all()


@pytest.mark.parametrize("boundary", ["2020-01-01", "2020-02-15", "2020-06-30"])
def test_the_published_window_rows_do_not_depend_on_the_range_computed(boundary: str) -> None:
    """A year's file is the same from a full build and from a backfill of later years.

    The position is counted from the run's lookback (a QA walkthrough found 135,608 rows of
    a year whose position changed with the backfill); the window's rows are counted here by
    pandas over each symbol's whole history.
    """
    bars = _bars(np.random.default_rng(1), {"A": 150, "B": 40, "C": 12})
    part = features_for_range(bars.lazy(), start=boundary, end="2100-01-01").with_columns(
        window_rows())
    pdf = bars.to_pandas().sort_values(["Symbol", "Date"])
    pdf["expected"] = (pdf.groupby("Symbol").cumcount() + 1).clip(upper=30)
    truth = pl.from_pandas(pdf[["Symbol", "Date", "expected"]]).filter(
        pl.col("Date") >= boundary)
    merged = part.join(truth, on=["Symbol", "Date"], how="full", coalesce=True)
    assert merged.height == part.height == truth.height
    assert (merged["window_rows"] == merged["expected"]).all()
    assert merged["window_rows"].max() == 30


@pytest.mark.parametrize("max_rows", [1, 60, 10**9])
@pytest.mark.parametrize("first", ["2019-01-01", "2020-02-01"])
def test_periods_read_in_pieces_equal_the_range_computed_at_once(max_rows: int,
                                                                 first: str) -> None:
    bars = _bars(np.random.default_rng(2), {"A": 150, "B": 40, "C": 12, "D": 31})
    bars = bars.with_columns(Extra=pl.int_range(pl.len()), _source=pl.lit("x"))
    bounds = [first, "2020-03-01", "2020-03-02", "2020-05-01", "2020-08-01", "2100-01-01"]
    whole = features_for_range(bars.lazy(), start=bounds[0], end=bounds[-1])
    periods = list(features_by_period(bars.lazy(), bounds, max_rows=max_rows))
    assert len(periods) == len(bounds) - 1
    assert [p.height for p in periods] == rows_by_period(bars.lazy(), bounds)
    assert pl.concat(periods).sort("Symbol", "Date").equals(whole.sort("Symbol", "Date"))
    for lo, hi, period in zip(bounds, bounds[1:], periods, strict=False):
        expected = whole.filter((pl.col("Date") >= lo) & (pl.col("Date") < hi))
        assert period.equals(expected)  # same rows, order, columns, values and positions


def _series(symbol: str, volumes: list[int]) -> pl.DataFrame:
    dates = pd.bdate_range("2020-01-01", periods=len(volumes)).strftime("%Y-%m-%d")
    return pl.DataFrame({"Symbol": symbol, "Date": list(dates), "Volume": volumes,
                         "Adj Close": [float(v) for v in volumes]})


def test_trailing_features_exclude_the_rows_own_volume() -> None:
    """The auditor's case: a spike on day 31 moves the brief's average, not the trailing one."""
    bars = _series("A", [100] * 30 + [3_100])
    assert rolling_features(bars)[FEATURES[0]][-1] == 200.0  # the brief's: sees the spike
    out = trailing_features(bars)
    assert out[FEATURES[0]].to_list() == [None] * 30 + [100.0]
    assert out[FEATURES[1]].to_list() == [None] * 30 + [100.0]


def test_trailing_features_by_hand_per_symbol_in_any_order() -> None:
    bars = pl.concat([_series("A", [1, 2, 3, 4, 50, 6]), _series("B", [10, 20, 30, 40, 70])])
    shuffled = bars.sample(fraction=1.0, shuffle=True, seed=3)
    out = trailing_features(shuffled, window=3)
    assert out.select("Symbol", "Date").equals(shuffled.select("Symbol", "Date"))
    got = out.sort("Symbol", "Date")
    assert got[FEATURES[0]].to_list() == [None, None, None, 2.0, 3.0, 19.0,
                                          None, None, None, 20.0, 30.0]
    assert got[FEATURES[1]].to_list() == [None, None, None, 2.0, 3.0, 4.0,
                                          None, None, None, 20.0, 30.0]
