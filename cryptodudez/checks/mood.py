"""The correlation results' checks: a DuckDB SQL twin of the series and counts of the store.

The SQL twin rebuilds each coin's bucketed returns and sentiment from the validated rows
with window functions and an ``ASOF JOIN`` (apart from polars and from the code that wrote
the results), and DuckDB's ``corr`` and ``count`` are compared with the stored Pearson r and
n. The store's own counts (rows per result key, look-ahead in the merged series) are read
back with SQL, never taken from the frames that were written.
"""

import math
from datetime import datetime

import dagster as dg
import duckdb
import polars as pl

from cryptodudez.checks.tables import markdown_table
from cryptodudez.mood.results import MoodParams, range_key
from cryptodudez.mood.series import parse_bucket

R_TOLERANCE = 1e-9

# The twin's own threshold, written here, not imported from the code it checks: a side is
# constant when its sum of squared deviations is at most this share of its sum of squares.
SQL_FLAT = 1e-10


def sql_series(con: duckdb.DuckDBPyConnection, *, coin: str, bucket: str, lag: int,
               tolerance_buckets: int, start: datetime | None = None,
               end: datetime | None = None) -> tuple[int, float | None]:
    """``(n, r)`` of ``coin``'s log returns against sentiment at ``lag``, in DuckDB SQL.

    Only trades and tweets with ``start <= ts < end`` count (either bound optional), before
    anything is bucketed. Buckets are ``floor(epoch_us / width)``; the last trade of a bucket
    is the latest by time (then input order); a return needs the previous bucket to hold
    trades; sentiment is the mean polarity of the bucket's tweets that mention ``coin``; the
    join takes the latest sentiment bucket ending at or before ``bucket_end - lag * width``,
    at most ``tolerance_buckets`` buckets older. r is null when a side is constant: its sum
    of squared deviations at most ``SQL_FLAT`` of its sum of squares. ``con`` has the trades as
    ``t`` (with the input order as ``i``) and the sentiments as ``s`` (see
    :func:`against_sql`).
    """
    width = int(parse_bucket(bucket).total_seconds() * 1_000_000)
    in_range = ("($start IS NULL OR ts >= CAST($start AS TIMESTAMPTZ)) "
                "AND ($end IS NULL OR ts < CAST($end AS TIMESTAMPTZ))")
    n, r = con.execute(f"""
            WITH tb AS (
                SELECT epoch_us(ts) // {width} AS k,
                       arg_max(price, (epoch_us(ts), i)) AS price
                FROM t WHERE coin = $coin AND {in_range} GROUP BY k),
            rets AS (
                SELECT k, CASE WHEN lag(k) OVER (ORDER BY k) = k - 1
                               THEN ln(price / lag(price) OVER (ORDER BY k)) END AS ret,
                       (k + 1) * {width} - {lag} * {width} AS asof_us
                FROM tb),
            sb AS (
                SELECT (epoch_us(ts) // {width} + 1) * {width} AS end_us,
                       avg(polarity) AS mood
                FROM s WHERE list_contains(coins, $coin) AND polarity IS NOT NULL
                       AND NOT isnan(polarity) AND {in_range}
                GROUP BY 1),
            j AS (
                SELECT r.ret, CASE WHEN r.asof_us - sb.end_us <= {tolerance_buckets * width}
                                   THEN sb.mood END AS mood
                FROM rets r ASOF LEFT JOIN sb ON r.asof_us >= sb.end_us),
            pairs AS (
                SELECT ret, mood FROM j
                WHERE ret IS NOT NULL AND mood IS NOT NULL AND isfinite(ret))
            SELECT count(*),
                   CASE WHEN regr_sxx(mood, ret) > {SQL_FLAT} * sum(ret * ret)
                             AND regr_syy(mood, ret) > {SQL_FLAT} * sum(mood * mood)
                        THEN corr(mood, ret) END
            FROM pairs""", {"coin": coin, "start": start, "end": end}).fetchone() or (0, None)
    return int(n), (None if r is None or math.isnan(r) else float(r))


def against_sql(trades: pl.DataFrame, sentiments: pl.DataFrame, params: MoodParams,
                stored: pl.DataFrame) -> pl.DataFrame:
    """Stored rows whose n or Pearson r differ from the SQL twin's (empty when all agree)."""
    rows = []
    con = duckdb.connect()
    try:
        con.register("t", trades.with_row_index("i"))
        con.register("s", sentiments)
        for coin, bucket, lag, n, r in stored.select("coin", "bucket", "lag", "n",
                                                     "pearson_r").iter_rows():
            sql_n, sql_r = sql_series(con, coin=coin, bucket=bucket, lag=lag,
                                      tolerance_buckets=params.tolerance_buckets,
                                      start=params.start, end=params.end)
            same_r = (r is None) if (sql_n < params.min_n or sql_r is None) else (
                r is not None and abs(r - sql_r) <= R_TOLERANCE)
            if n != sql_n or not same_r:
                rows.append((coin, bucket, lag, n, sql_n, r, sql_r))
    finally:
        con.close()
    return pl.DataFrame(rows, schema={"coin": pl.String, "bucket": pl.String,
                                      "lag": pl.Int64, "n": pl.Int64, "sql_n": pl.Int64,
                                      "pearson_r": pl.Float64, "sql_r": pl.Float64},
                        orient="row")


def sql_check(wrong: pl.DataFrame, checked: int) -> dg.AssetCheckResult:
    """The result of :func:`against_sql` as an asset check."""
    return dg.AssetCheckResult(
        check_name="mood_correlation_matches_sql", passed=wrong.height == 0,
        metadata={"rows_checked": checked, "failing_count": wrong.height,
                  "sample": dg.MetadataValue.md(markdown_table(wrong.head(5)))})


def stored_rows(con: duckdb.DuckDBPyConnection, key: str, version: str) -> int:
    """Rows the store holds for one result key (counted by SQL)."""
    row = con.execute("SELECT count(*) FROM mood_correlation WHERE params_key = ? "
                      "AND data_version = ?", [key, version]).fetchone()
    return int(row[0]) if row else 0


def complete_check(params: MoodParams, held: int) -> dg.AssetCheckResult:
    """One stored row per coin x bucket x lag asked: nothing missing, nothing doubled."""
    expected = len(params.coins) * len(params.buckets) * (2 * params.max_lag + 1)
    return dg.AssetCheckResult(
        check_name="mood_correlation_complete", passed=held == expected,
        metadata={"rows_held": held, "rows_expected": expected})


def lookahead_violations(con: duckdb.DuckDBPyConnection, version: str,
                         params: MoodParams) -> int:
    """Merged rows of ``params`` whose sentiment was not known by the end of their bucket.

    Only the rows this run's parameters key (its coins, buckets, tolerance and date range on
    ``version``), read back by SQL.
    """
    range_start, range_end = range_key(params.start, params.end)
    row = con.execute("""
        SELECT count(*) FROM mood_merged
        WHERE data_version = ? AND list_contains(?, coin) AND list_contains(?, bucket)
          AND tolerance_buckets = ? AND range_start = ? AND range_end = ?
          AND sentiment IS NOT NULL
          AND NOT (sentiment_end <= asof_at AND asof_at <= bucket_end
                   AND last_tweet_ts < sentiment_end)""",
        [version, list(params.coins), list(params.buckets), params.tolerance_buckets,
         range_start, range_end]).fetchone()
    return int(row[0]) if row else 0


def lookahead_check(violations: int, rows: int) -> dg.AssetCheckResult:
    """The merged series never pairs a price bucket with a later sentiment."""
    return dg.AssetCheckResult(
        check_name="mood_merged_no_lookahead", passed=violations == 0,
        metadata={"violations": violations, "merged_rows": rows})
