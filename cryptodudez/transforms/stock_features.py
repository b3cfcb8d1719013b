"""Rolling features of daily bars: pure polars transforms, no I/O.

``vol_moving_avg`` is the mean of ``Volume`` over the symbol's 30 most recent trading rows
including the current one; ``adj_close_rolling_med`` the median of ``Adj Close`` over the same
rows. Both are null until a symbol has 30 rows.

Speed: the rolling kernels run once over the whole column in (symbol, date) order, and rows
whose window would reach into the previous symbol (a symbol's first 29 rows) are masked to
null. That is exactly the per-symbol result without a per-group window; only a narrow key
frame is sorted, with symbols as integer codes and dates as dates, in one lazy query so
intermediate columns are freed as soon as they are used.

Memory: ``features_by_period`` never holds a whole table. It reads consecutive periods (years)
a few million rows at a time and carries each symbol's last 29 rows from one read to the
next, so its peak is set by the largest read, not by the table.
"""

from collections.abc import Iterator, Sequence

import polars as pl

WINDOW = 30
FEATURES = ("vol_moving_avg", "adj_close_rolling_med")
POSITION = "_row_in_symbol"
# Published instead of the position: how many of the symbol's rows the trailing window
# holds (1..window). The position itself is counted from wherever a run's lookback starts,
# so a year's file depended on the range of years that wrote it (a QA walkthrough).
WINDOW_ROWS = "window_rows"
INPUTS = ("Symbol", "Date", "Volume", "Adj Close")
MAX_READ_ROWS = 4_000_000
_CARRIED = "_carried_position"
_LAST = "_last_of_symbol"


def rolling_features(bars: pl.DataFrame, *, window: int = WINDOW,
                     carried: str | None = None) -> pl.DataFrame:
    """``bars`` (any row order) plus the rolling columns and each row's position in its symbol.

    Args:
        bars: rows with at least ``Symbol``, ``Date`` (``YYYY-MM-DD``), ``Volume``,
            ``Adj Close``; at most one row per symbol and date.
        window: number of trading rows in the window.
        carried: optional column of ``bars`` giving, on rows carried over from an earlier
            computation, their position there; a symbol whose earliest row has one counts
            its positions on from it instead of from 0.
    """
    return bars.hstack(_computed(bars, window=window, carried=carried).drop(_LAST))


def _computed(bars: pl.DataFrame, *, window: int, carried: str | None) -> pl.DataFrame:
    """The feature columns, the position and ``_LAST``, in the row order of ``bars``.

    ``_LAST`` is true on each symbol's last ``window - 1`` rows: what the next read needs.
    """
    start = pl.lit(0, dtype=pl.Int64)
    if carried is not None:
        start = pl.col(carried).cast(pl.Int64).fill_null(0)
    position = pl.int_range(pl.len(), dtype=pl.Int64)
    first_of_symbol = (pl.col("_sym") != pl.col("_sym").shift(1)).fill_null(value=True)
    full = pl.col(POSITION) >= window - 1
    return (
        bars.lazy()
        .select(
            _sym=pl.col("Symbol").cast(pl.Categorical).to_physical(),
            _date=pl.col("Date").str.to_date("%Y-%m-%d", cache=False),
            _vol=pl.col("Volume").cast(pl.Float64),
            _adj=pl.col("Adj Close"),
            _start=start,
        )
        .with_row_index("_orig")
        .sort("_sym", "_date")
        .select(
            "_orig", "_vol", "_adj",
            (position - pl.when(first_of_symbol).then(position - pl.col("_start"))
             .forward_fill()).alias(POSITION),
            (pl.col("_sym").shift(-(window - 1)) != pl.col("_sym")).fill_null(value=True)
            .alias(_LAST),
        )
        .select(
            "_orig",
            pl.when(full).then(pl.col("_vol").rolling_mean(window)).alias(FEATURES[0]),
            pl.when(full).then(pl.col("_adj").rolling_median(window)).alias(FEATURES[1]),
            POSITION, _LAST,
        )
        .sort("_orig")
        .drop("_orig")
        .collect()
    )


def trailing_features(bars: pl.DataFrame, *, window: int = WINDOW) -> pl.DataFrame:
    """``bars`` with both features over the *previous* ``window`` rows (the row excluded).

    Not served and not written by any asset: the brief's features (:func:`rolling_features`)
    include the row's own ``Volume``, so a model of that row's volume from them is a nowcast.
    This variant, for benchmarks only, is :func:`rolling_features` of the symbol's previous
    row: a symbol's first ``window`` rows are null.

    Args:
        bars: rows with at least ``Symbol``, ``Date`` (``YYYY-MM-DD``), ``Volume`` and
            ``Adj Close``; at most one row per symbol and date; any row order.
        window: number of earlier trading rows in the window.

    Returns:
        ``bars`` in its own row order, with ``vol_moving_avg`` and ``adj_close_rolling_med``
        added (replaced if present).
    """
    brief = rolling_features(bars.drop(FEATURES, strict=False), window=window)
    return brief.with_columns(
        pl.col(feature).shift(1).over("Symbol", order_by=POSITION) for feature in FEATURES
    ).drop(POSITION)


def with_lookback(bars: pl.LazyFrame, *, start: str, end: str,
                  window: int = WINDOW) -> pl.LazyFrame:
    """The rows dated in ``[start, end)`` plus each symbol's ``window - 1`` earlier rows.

    Computing features for a date range from this frame gives exactly what computing them on
    the whole history gives, however far back a symbol's previous rows lie.
    """
    inside = bars.filter((pl.col("Date") >= start) & (pl.col("Date") < end))
    return pl.concat([_lookback(bars, start, window), inside], how="diagonal_relaxed")


def _lookback(bars: pl.LazyFrame, start: str, window: int) -> pl.LazyFrame:
    """Each symbol's last ``window - 1`` rows dated before ``start``."""
    return (
        bars.filter(pl.col("Date") < start)
        .sort("Symbol", "Date")
        .group_by("Symbol", maintain_order=True)
        .tail(window - 1)
    )


def features_for_range(bars: pl.LazyFrame, *, start: str, end: str,
                       window: int = WINDOW) -> pl.DataFrame:
    """Feature rows dated in ``[start, end)``, correct across the range's start boundary.

    ``_row_in_symbol`` is the row's position in its symbol's whole history when that is
    below ``window``, and at least ``window - 1`` otherwise (enough to decide nullness).
    """
    frame = with_lookback(bars, start=start, end=end, window=window).collect()
    out = rolling_features(frame, window=window)
    return out.filter((pl.col("Date") >= start) & (pl.col("Date") < end))


def window_rows(window: int = WINDOW) -> pl.Expr:
    """``window_rows`` from the position: the same whichever run's lookback counted it.

    A row's position is exact below ``window - 1`` and at least ``window - 1`` otherwise
    (:func:`features_for_range`), so the rows its window holds are ``min(position + 1,
    window)`` in every run.
    """
    return pl.min_horizontal(pl.col(POSITION) + 1, pl.lit(window)).cast(pl.Int32).alias(
        WINDOW_ROWS)


def rows_by_period(bars: pl.LazyFrame, bounds: Sequence[str]) -> list[int]:
    """How many rows of ``bars`` fall in each period ``[bounds[i], bounds[i + 1])``."""
    counts = (
        bars.select("Date")
        .filter((pl.col("Date") >= bounds[0]) & (pl.col("Date") < bounds[-1]))
        .group_by(_period(bounds))
        .len()
        .collect()
    )
    by_period = dict(zip(counts["_period"].to_list(), counts["len"].to_list(), strict=True))
    return [by_period.get(i, 0) for i in range(1, len(bounds))]


def _reads(counts: Sequence[int], max_rows: int) -> list[range]:
    """Consecutive periods grouped into reads of at most ``max_rows`` rows (or one period)."""
    reads: list[range] = []
    first, rows = 0, 0
    for i, n in enumerate(counts):
        if i > first and rows + n > max_rows:
            reads.append(range(first, i))
            first, rows = i, 0
        rows += n
    reads.append(range(first, len(counts)))
    return reads


def features_by_period(bars: pl.LazyFrame, bounds: Sequence[str], *,
                       max_rows: int = MAX_READ_ROWS,
                       window: int = WINDOW) -> Iterator[pl.DataFrame]:
    """Feature rows of each period ``[bounds[i], bounds[i + 1])``, one frame per period.

    The frames are, period by period, exactly what ``features_for_range(bars,
    start=bounds[0], end=bounds[-1])`` gives (same rows, order, columns and values), but at
    most about ``max_rows`` rows of ``bars`` are in memory at once: consecutive periods are
    read together with one filtered scan (a period larger than ``max_rows`` alone), and each
    symbol's last ``window - 1`` rows (four columns) are carried from one read to the next.

    Args:
        bars: all rows of the table (the history before ``bounds[0]`` gives the lookback).
        bounds: increasing ``YYYY-MM-DD`` dates, at least two.
        max_rows: rows of ``bars`` read at once (whole periods).
        window: number of trading rows in the window.
    """
    counts = rows_by_period(bars, bounds)
    carry = (
        _lookback(bars.select(INPUTS), bounds[0], window)
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("Symbol").alias(_CARRIED))
        .collect()
    )
    for read in _reads(counts, max_rows):
        start, end = bounds[read.start], bounds[read.stop]
        rows = bars.filter((pl.col("Date") >= start) & (pl.col("Date") < end)).collect()
        frame = pl.concat([rows, carry], how="diagonal_relaxed")
        computed = _computed(frame, window=window, carried=_CARRIED)
        carry = (
            frame.select(INPUTS)
            .hstack([computed[POSITION].alias(_CARRIED)])
            .filter(computed[_LAST])
        )
        out = rows.hstack(computed.head(rows.height).drop(_LAST))
        period = out.select(_period(bounds)).to_series()
        del rows, frame, computed
        for i in read:
            yield out.filter(period == i + 1)


def _period(bounds: Sequence[str]) -> pl.Expr:
    """1 + the index of the period ``[bounds[i], bounds[i + 1])`` holding ``Date``."""
    edges = pl.Series(list(bounds), dtype=pl.String)
    return pl.lit(edges).search_sorted(pl.col("Date"), side="right").alias("_period")
