"""The stock rolling features with Spark window functions: the twin of the polars transform.

Same definition as ``cryptodudez.transforms.stock_features``: over a symbol's 30 most recent
rows (``ROWS BETWEEN 29 PRECEDING AND CURRENT ROW`` ordered by ``Date``), ``vol_moving_avg``
is the mean of ``Volume`` and ``adj_close_rolling_med`` the exact median of ``Adj Close``
(``percentile(…, 0.5)``; ``percentile_approx`` returns a window member and differs on almost
every row). Like polars' ``rolling_mean``/``rolling_median`` with ``min_samples`` equal to the
window, a feature is null unless its window holds 30 non-null values (Spark's window gives
partial results at a symbol's start, hence the explicit count). ``_row_in_symbol`` is the
row's 0-based position among the rows given for its symbol.
"""

import itertools
from collections.abc import Iterator, Sequence

import polars as pl
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F  # noqa: N812  # the usual Spark spelling

from cryptodudez.transforms import stock_features as polars_features
from cryptodudez.transforms.stock_features import FEATURES, POSITION, WINDOW

_ORDER = "_input_order"


def rolling_features(bars: DataFrame, *, window: int = WINDOW) -> DataFrame:
    """``bars`` plus the two rolling columns and ``_row_in_symbol``.

    Args:
        bars: rows with at least ``Symbol``, ``Date`` (``YYYY-MM-DD``), ``Volume`` and
            ``Adj Close``; at most one row per symbol and date.
        window: number of trading rows in the window.
    """
    ordered = Window.partitionBy("Symbol").orderBy("Date")
    rows = ordered.rowsBetween(-(window - 1), Window.currentRow)
    volume = F.col("Volume").cast("double")
    adj_close = F.col("`Adj Close`")
    return bars.select(
        "*",
        F.when(F.count(volume).over(rows) == window, F.avg(volume).over(rows))
        .alias(FEATURES[0]),
        F.when(F.count(adj_close).over(rows) == window,
               F.percentile(adj_close, F.lit(0.5)).over(rows)).alias(FEATURES[1]),
        (F.row_number().over(ordered) - 1).cast("long").alias(POSITION),
    )


def with_lookback(bars: DataFrame, *, start: str, end: str, window: int = WINDOW) -> DataFrame:
    """The rows dated in ``[start, end)`` plus each symbol's ``window - 1`` earlier rows."""
    latest_first = Window.partitionBy("Symbol").orderBy(F.col("Date").desc())
    lookback = (
        bars.filter(F.col("Date") < start)
        .withColumn("_rank", F.row_number().over(latest_first))
        .filter(F.col("_rank") < window)
        .drop("_rank")
    )
    inside = bars.filter((F.col("Date") >= start) & (F.col("Date") < end))
    return lookback.unionByName(inside)


def features_for_range(bars: DataFrame, *, start: str, end: str,
                       window: int = WINDOW) -> DataFrame:
    """Feature rows dated in ``[start, end)``, correct across the range's start boundary.

    The same rows and values as the polars ``features_for_range`` (row order aside), with
    ``_row_in_symbol`` counted from the lookback's first row, as there.
    """
    frame = with_lookback(bars, start=start, end=end, window=window)
    out = rolling_features(frame, window=window)
    return out.filter((F.col("Date") >= start) & (F.col("Date") < end))


def features_for_range_of(spark: SparkSession, bars: pl.LazyFrame, *, start: str, end: str,
                          window: int = WINDOW) -> pl.DataFrame:
    """The polars ``features_for_range(bars, …)`` computed by Spark: same rows, order, types.

    The range and its lookback are selected with polars, computed in ``spark`` and brought
    back through Arrow; the input columns keep their polars types and the rows the order of
    ``bars``.
    """
    frame = (polars_features.with_lookback(bars, start=start, end=end, window=window)
             .collect().with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(_ORDER)))
    schema: dict[str, pl.DataType] = {**frame.schema, FEATURES[0]: pl.Float64(),
                                      FEATURES[1]: pl.Float64(), POSITION: pl.Int64()}
    if frame.height == 0:
        return pl.DataFrame(schema=schema).drop(_ORDER)
    computed = features_for_range(
        spark.createDataFrame(frame.to_arrow(compat_level=pl.CompatLevel.oldest())),
        start=start, end=end, window=window)
    out = pl.from_arrow(computed.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out.select(list(schema)).cast(pl.Schema(schema)).sort(_ORDER).drop(_ORDER)


def features_by_period_of(spark: SparkSession, bars: pl.LazyFrame, bounds: Sequence[str], *,
                          window: int = WINDOW) -> Iterator[pl.DataFrame]:
    """The polars ``features_by_period`` frames computed by Spark in one job.

    Unlike the polars version, the whole range ``[bounds[0], bounds[-1])`` is held in memory
    at once (in the driver, twice: polars and Arrow).
    """
    whole = features_for_range_of(spark, bars, start=bounds[0], end=bounds[-1], window=window)
    for lo, hi in itertools.pairwise(bounds):
        yield whole.filter((pl.col("Date") >= lo) & (pl.col("Date") < hi))
