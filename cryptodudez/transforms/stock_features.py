"""Rolling features of daily bars: pure polars transforms, no I/O.

``vol_moving_avg`` is the mean of ``Volume`` over the symbol's 30 most recent trading rows
including the current one; ``adj_close_rolling_med`` the median of ``Adj Close`` over the same
rows. Both are null until a symbol has 30 rows.

Speed: the rolling kernels run once over the whole column in (symbol, date) order, and rows
whose window would reach into the previous symbol (a symbol's first 29 rows) are masked to
null. That is exactly the per-symbol result without a per-group window; only a narrow key
frame is sorted, with symbols as integer codes and dates as dates.
"""

import polars as pl

WINDOW = 30
FEATURES = ("vol_moving_avg", "adj_close_rolling_med")
POSITION = "_row_in_symbol"


def rolling_features(bars: pl.DataFrame, *, window: int = WINDOW) -> pl.DataFrame:
    """``bars`` (any row order) plus the rolling columns and each row's position in its symbol.

    Args:
        bars: rows with at least ``Symbol``, ``Date`` (``YYYY-MM-DD``), ``Volume``,
            ``Adj Close``; at most one row per symbol and date.
        window: number of trading rows in the window.
    """
    keys = (
        bars.select(
            _sym=pl.col("Symbol").cast(pl.Categorical).to_physical(),
            _date=pl.col("Date").str.to_date("%Y-%m-%d", cache=False),
            _vol=pl.col("Volume").cast(pl.Float64),
            _adj=pl.col("Adj Close"),
        )
        .with_row_index("_orig")
        .sort("_sym", "_date")
    )
    position = pl.int_range(pl.len(), dtype=pl.Int64)
    first_of_symbol = (pl.col("_sym") != pl.col("_sym").shift(1)).fill_null(value=True)
    full = pl.col(POSITION) >= window - 1
    computed = (
        keys.with_columns(
            (position - pl.when(first_of_symbol).then(position).forward_fill()).alias(POSITION)
        )
        .with_columns(
            pl.when(full).then(pl.col("_vol").rolling_mean(window)).alias(FEATURES[0]),
            pl.when(full).then(pl.col("_adj").rolling_median(window)).alias(FEATURES[1]),
        )
        .sort("_orig")
        .select(*FEATURES, POSITION)
    )
    return bars.hstack(computed)


def with_lookback(bars: pl.LazyFrame, *, start: str, end: str,
                  window: int = WINDOW) -> pl.LazyFrame:
    """The rows dated in ``[start, end)`` plus each symbol's ``window - 1`` earlier rows.

    Computing features for a date range from this frame gives exactly what computing them on
    the whole history gives, however far back a symbol's previous rows lie.
    """
    inside = bars.filter((pl.col("Date") >= start) & (pl.col("Date") < end))
    before = (
        bars.filter(pl.col("Date") < start)
        .sort("Symbol", "Date")
        .group_by("Symbol", maintain_order=True)
        .tail(window - 1)
    )
    return pl.concat([before, inside], how="diagonal_relaxed")


def features_for_range(bars: pl.LazyFrame, *, start: str, end: str,
                       window: int = WINDOW) -> pl.DataFrame:
    """Feature rows dated in ``[start, end)``, correct across the range's start boundary.

    ``_row_in_symbol`` is the row's position in its symbol's whole history when that is
    below ``window``, and at least ``window - 1`` otherwise (enough to decide nullness).
    """
    frame = with_lookback(bars, start=start, end=end, window=window).collect()
    out = rolling_features(frame, window=window)
    return out.filter((pl.col("Date") >= start) & (pl.col("Date") < end))
