"""The stock-feature checks hold features to the spec's 30-row window, not to the transform's.

The checks must never read the window from the code they check: features built with any
other window fail both window checks, and features written out by hand to the spec pass.
"""

from pathlib import Path

import polars as pl
import pytest

from cryptodudez.assets.stocks import _FeatureChecks
from cryptodudez.resources.lake import VALIDATED, Lake
from cryptodudez.transforms.stock_features import FEATURES, POSITION, rolling_features

WINDOW_CHECKS = ("stock_features_nulls_are_first_29_rows",
                 "stock_features_match_independent_recomputation")


def _bars() -> pl.DataFrame:
    """Symbol A: 45 bars, B: 20 (never a full window); row i has Volume i+1, Adj Close 100+i."""
    rows = [(symbol, f"{date:%Y-%m-%d}", i + 1, 100.0 + i)
            for symbol, n in (("A", 45), ("B", 20))
            for i, date in enumerate(pl.date_range(pl.date(2020, 1, 1), pl.date(2020, 12, 31),
                                                   eager=True).head(n))]
    return pl.DataFrame(rows, schema={"Symbol": pl.String, "Date": pl.String,
                                      "Volume": pl.Int64, "Adj Close": pl.Float64},
                        orient="row")


def _by_hand(bars: pl.DataFrame) -> pl.DataFrame:
    """The spec written out: from row 29 on, the mean of Volume rows i-29..i is i - 13.5 and
    the median of Adj Close over them 100 + i - 14.5; null before."""
    i = pl.int_range(pl.len()).over("Symbol")
    return bars.with_columns(row_in_symbol=i).with_columns(
        pl.when(pl.col("row_in_symbol") >= 29).then(pl.col("row_in_symbol") - 13.5)
        .alias(FEATURES[0]),
        pl.when(pl.col("row_in_symbol") >= 29).then(pl.col("row_in_symbol") + 85.5)
        .alias(FEATURES[1]),
    )


def _verdicts(tmp_path: Path, bars: pl.DataFrame,
              features: pl.DataFrame) -> dict[str | None, bool]:
    lake = Lake(uri=str(tmp_path / "lake"))
    lake.write_parquet(lake.path(VALIDATED, "stock_prices", "part-0.parquet"), bars)
    checks = _FeatureChecks(["A", "B"])
    checks.add(features)
    return {r.check_name: r.passed for r in checks.results(lake)}


def test_features_written_by_hand_to_the_spec_pass_both_window_checks(tmp_path: Path) -> None:
    bars = _bars()
    assert _verdicts(tmp_path, bars, _by_hand(bars)) == dict.fromkeys(WINDOW_CHECKS, True)


def test_the_transforms_features_pass_both_window_checks(tmp_path: Path) -> None:
    bars = _bars()
    features = rolling_features(bars).rename({POSITION: "row_in_symbol"})
    assert _verdicts(tmp_path, bars, features) == dict.fromkeys(WINDOW_CHECKS, True)


@pytest.mark.parametrize("window", [20, 29, 31])
def test_features_of_another_window_fail_both_window_checks(tmp_path: Path,
                                                            window: int) -> None:
    bars = _bars()
    features = rolling_features(bars, window=window).rename({POSITION: "row_in_symbol"})
    assert _verdicts(tmp_path, bars, features) == dict.fromkeys(WINDOW_CHECKS, False)
