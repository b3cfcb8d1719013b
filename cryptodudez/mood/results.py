"""Correlation results as tables keyed by what they were computed from.

A result is a pure function of its parameters (:class:`MoodParams`) and of the data (the
validated ``coin_trades`` and ``tweet_sentiments`` tables, summarised by
:func:`data_version`). So results are stored under ``(params_key, data_version)`` and
written at most once per key: recomputing the same key can only give the same rows, and a
new delivery (a new data version) gets new rows beside the old ones, never mixed with them.

Dagster-free: the ``mood_correlation`` asset writes these tables into the warehouse, and the
API reads them (and computes a key that is not there yet with the same functions).
"""

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import duckdb
import polars as pl

from cryptodudez.mood.series import merged, parse_bucket
from cryptodudez.mood.stats import METHODS, TABLE_SCHEMA, correlation_table

MAX_BUCKETS = 8  # grids per request: each costs 2*max_lag+1 joins and bootstraps per coin
MAX_LAG = 20  # lags -20..20 (41 joins per coin and bucket) is plenty for buckets of data
MAX_BOOT = 10_000

TABLES_DDL = """
CREATE TABLE IF NOT EXISTS mood_results (
    params_key VARCHAR NOT NULL, data_version VARCHAR NOT NULL, params VARCHAR NOT NULL,
    n_rows BIGINT NOT NULL, computed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (params_key, data_version)
);
CREATE TABLE IF NOT EXISTS mood_correlation (
    params_key VARCHAR NOT NULL, data_version VARCHAR NOT NULL,
    coin VARCHAR NOT NULL, bucket VARCHAR NOT NULL, lag BIGINT NOT NULL,
    tolerance_buckets BIGINT, n BIGINT, pearson_r DOUBLE, pearson_p DOUBLE,
    spearman_rho DOUBLE, spearman_p DOUBLE, fisher_lo DOUBLE, fisher_hi DOUBLE,
    bootstrap_lo DOUBLE, bootstrap_hi DOUBLE, block BIGINT, q_value DOUBLE,
    null_reason VARCHAR,
    PRIMARY KEY (params_key, data_version, coin, bucket, lag)
);
CREATE TABLE IF NOT EXISTS mood_merged (
    data_version VARCHAR NOT NULL, coin VARCHAR NOT NULL, bucket VARCHAR NOT NULL,
    tolerance_buckets BIGINT NOT NULL, range_start VARCHAR NOT NULL,
    range_end VARCHAR NOT NULL, bucket_start TIMESTAMPTZ NOT NULL,
    bucket_end TIMESTAMPTZ NOT NULL, price DOUBLE, last_trade_ts TIMESTAMPTZ, trades BIGINT,
    log_return DOUBLE, asof_at TIMESTAMPTZ, sentiment_end TIMESTAMPTZ, sentiment DOUBLE,
    tweets BIGINT, last_tweet_ts TIMESTAMPTZ,
    PRIMARY KEY (data_version, coin, bucket, tolerance_buckets, range_start, range_end,
                 bucket_start)
);
"""
MERGED_COLUMNS = ("bucket_start", "bucket_end", "price", "last_trade_ts", "trades",
                  "log_return", "asof_at", "sentiment_end", "sentiment", "tweets",
                  "last_tweet_ts")
_UTC = pl.Datetime("us", "UTC")


@functools.cache
def _columns_of_ddl() -> dict[str, list[str]]:
    """Each table's columns, in order, as :data:`TABLES_DDL` creates them (one home: the DDL)."""
    with duckdb.connect(":memory:") as con:
        con.execute(TABLES_DDL)
        out: dict[str, list[str]] = {}
        for table, column in con.sql("SELECT table_name, column_name FROM duckdb_columns() "
                                     "ORDER BY table_name, column_index").fetchall():
            out.setdefault(table, []).append(column)
    return out


def upgrade_layout(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Recreate the result tables that have another version's columns; rows dropped by table.

    ``CREATE TABLE IF NOT EXISTS`` keeps an older table as it is, and writing this version's
    rows into it would fail half-way or (``mood_merged`` before session 23, whose key had no
    date range) mix series. The tables hold derived rows only, each computed again by the
    next run that asks for its parameters, so an older table is dropped and created anew
    rather than refused (a demo or a warehouse kept across an upgrade runs on).
    """
    expected = _columns_of_ddl()
    found: dict[str, list[str]] = {}
    for table, column in con.sql(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main' "
            "ORDER BY table_name, column_index").fetchall():
        if table in expected:
            found.setdefault(table, []).append(column)
    dropped = {}
    for table in sorted(t for t, columns in found.items() if columns != expected[t]):
        ((rows,),) = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()
        con.execute(f'DROP TABLE "{table}"')
        dropped[table] = int(rows)
    if dropped:
        con.execute(TABLES_DDL)
    return dropped


@dataclass(frozen=True)
class MoodParams:
    """Everything a correlation result depends on, besides the data.

    Attributes:
        coins: the coins, each its own series (never pooled).
        buckets: ISO-8601 grids (``PT10S``, ``PT1M``, ``PT1H``, ``P1D``).
        max_lag: lags ``-max_lag..max_lag`` (in buckets).
        tolerance_buckets: how many whole buckets older the joined sentiment may be.
        method: whose p-values the Benjamini-Hochberg q-values adjust.
        start: keep events at or after this instant (UTC), or everything.
        end: keep events before this instant (UTC), or everything.
        min_n: fewest complete pairs that give numbers.
        n_boot: moving-block bootstrap resamples; ``seed`` makes them repeatable.
    """

    coins: tuple[str, ...]
    buckets: tuple[str, ...] = ("PT10S",)
    max_lag: int = 2
    tolerance_buckets: int = 0
    method: str = "pearson"
    start: datetime | None = None
    end: datetime | None = None
    min_n: int = 8
    n_boot: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse what the statistics would refuse, naming the field."""
        problems = []
        if not self.coins or len(set(self.coins)) != len(self.coins):
            problems.append(f"coins must be non-empty and without repeats, not {self.coins}")
        # the same grid spelled twice (PT60S, PT1M) is a repeat: it would count twice in the
        # q-values' number of tests
        widths = [parse_bucket(bucket) for bucket in self.buckets]  # raises naming the bucket
        if not self.buckets or len(set(widths)) != len(widths):
            problems.append(f"buckets must be non-empty and without repeats, not {self.buckets}")
        if len(self.buckets) > MAX_BUCKETS:
            problems.append(f"at most {MAX_BUCKETS} buckets, not {len(self.buckets)}")
        if not 0 <= self.max_lag <= MAX_LAG:
            problems.append(f"max_lag must lie in 0..{MAX_LAG}, not {self.max_lag}")
        if not 0 <= self.tolerance_buckets <= 1000:
            problems.append(f"tolerance_buckets must lie in 0..1000, not "
                            f"{self.tolerance_buckets}")
        if self.method not in METHODS:
            problems.append(f"method must be one of {list(METHODS)}, not {self.method!r}")
        for name in ("start", "end"):
            bound = getattr(self, name)
            if bound is not None and bound.utcoffset() is None:
                problems.append(f"{name} must carry a time zone, not {bound}")
        if self.start and self.end and self.start >= self.end:
            problems.append(f"start {self.start} must be before end {self.end}")
        if not 4 <= self.min_n <= 1_000_000:
            problems.append(f"min_n must lie in 4..1000000, not {self.min_n}")
        if not 1 <= self.n_boot <= MAX_BOOT:
            problems.append(f"n_boot must lie in 1..{MAX_BOOT}, not {self.n_boot}")
        if problems:
            raise ValueError("; ".join(problems))

    def as_json(self) -> str:
        """The canonical JSON of the parameters (sorted keys, UTC instants)."""
        data = asdict(self)
        for name in ("start", "end"):
            bound = data[name]
            data[name] = None if bound is None else bound.astimezone(UTC).isoformat()
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def key(self) -> str:
        """A short stable digest of :meth:`as_json`."""
        return hashlib.sha256(self.as_json().encode()).hexdigest()[:16]


def trades_frame(table: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The mood input of the ``coin_trades`` table: coin, ts, price, in a deterministic order.

    Rows are ordered by time, then by delivery and line, so "the last trade of a bucket"
    never depends on how fragments were listed.
    """
    return (table.lazy().select("coin", "ts", "price", "_source", "_line")
            .sort("ts", "_source", "_line").select("coin", "ts", "price").collect())


def sentiments_frame(table: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The mood input of the ``tweet_sentiments`` table: coins, ts, polarity (ordered)."""
    return (table.lazy().select("coins", "ts", "polarity", "_source", "_line")
            .sort("ts", "_source", "_line").select("coins", "ts", "polarity").collect())


def data_version(trades: pl.DataFrame, sentiments: pl.DataFrame) -> str:
    """A digest of the mood inputs' content (what every result is a function of)."""
    digest = hashlib.sha256()
    for frame in (trades, sentiments):
        digest.update(frame.write_ipc(None, compression="uncompressed").getvalue())
    return digest.hexdigest()[:16]


def correlation(trades: pl.DataFrame, sentiments: pl.DataFrame,
                params: MoodParams) -> pl.DataFrame:
    """The correlation table of ``params`` (``cryptodudez.mood.stats.correlation_table``)."""
    return correlation_table(trades, sentiments, coins=params.coins, buckets=params.buckets,
                             max_lag=params.max_lag,
                             tolerance_buckets=params.tolerance_buckets, start=params.start,
                             end=params.end, min_n=params.min_n, seed=params.seed,
                             n_boot=params.n_boot, method=params.method)


def merged_rows(trades: pl.DataFrame, sentiments: pl.DataFrame, *, coin: str, bucket: str,
                tolerance_buckets: int, start: datetime | None = None,
                end: datetime | None = None, lag: int = 0) -> pl.DataFrame:
    """The merged series of one coin (backward as-of join; see ``series.merged``)."""
    width = parse_bucket(bucket)
    return merged(trades, sentiments, coin, bucket, tolerance=width * tolerance_buckets,
                  start=start, end=end, lag=lag)


def stored_keys(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """``(params_key, data_version)`` of every stored result."""
    return {(k, v) for k, v in con.execute(
        "SELECT params_key, data_version FROM mood_results").fetchall()}


def store_correlation(con: duckdb.DuckDBPyConnection, params: MoodParams, version: str,
                      table: pl.DataFrame, *, now: datetime | None = None) -> bool:
    """Store one result unless its key is stored already; True when it was written.

    One transaction: the index row and the result rows appear together or not at all.
    """
    key = params.key()
    if (key, version) in stored_keys(con):
        return False
    rows = table.select(pl.lit(key).alias("params_key"), pl.lit(version).alias("data_version"),
                        *TABLE_SCHEMA)
    con.execute("BEGIN")
    con.register("result_rows", rows)
    con.execute("INSERT INTO mood_correlation SELECT * FROM result_rows")
    con.execute("INSERT INTO mood_results VALUES (?, ?, ?, ?, ?)",
                [key, version, params.as_json(), rows.height, now or datetime.now(tz=UTC)])
    con.execute("COMMIT")
    con.unregister("result_rows")
    return True


def range_key(start: datetime | None, end: datetime | None) -> tuple[str, str]:
    """``(range_start, range_end)`` as ``mood_merged`` keys them: UTC ISO-8601, ``""`` unbounded.

    The same text as :meth:`MoodParams.as_json` gives the bounds (a primary key holds no
    null, so "no bound" is the empty text, as in the asset's run config).
    """
    def text(bound: datetime | None) -> str:
        return "" if bound is None else bound.astimezone(UTC).isoformat()

    return text(start), text(end)


def store_merged(con: duckdb.DuckDBPyConnection, version: str, frame: pl.DataFrame, *,
                 bucket: str, tolerance_buckets: int, start: datetime | None = None,
                 end: datetime | None = None) -> int:
    """Upsert one coin's merged series (lag 0) of ``[start, end)``; rows written.

    Keyed by data version, coin, bucket, tolerance and the date range (:func:`range_key`), so
    runs over different ranges of one data version keep their own series side by side.
    """
    range_start, range_end = range_key(start, end)
    rows = frame.select(
        pl.lit(version).alias("data_version"), "coin", pl.lit(bucket).alias("bucket"),
        pl.lit(tolerance_buckets, dtype=pl.Int64).alias("tolerance_buckets"),
        pl.lit(range_start).alias("range_start"), pl.lit(range_end).alias("range_end"),
        *MERGED_COLUMNS)
    con.register("merged_rows", rows)
    con.execute("INSERT OR REPLACE INTO mood_merged SELECT * FROM merged_rows")
    con.unregister("merged_rows")
    return rows.height


def read_merged(con: duckdb.DuckDBPyConnection, version: str, *, coin: str, bucket: str,
                tolerance_buckets: int, start: datetime | None = None,
                end: datetime | None = None) -> pl.DataFrame:
    """The stored merged series of one coin and range, in time order (empty when none)."""
    range_start, range_end = range_key(start, end)
    columns = ", ".join(MERGED_COLUMNS)
    return con.sql(
        f"SELECT {columns} FROM mood_merged WHERE data_version = ? AND coin = ? "
        "AND bucket = ? AND tolerance_buckets = ? AND range_start = ? AND range_end = ? "
        "ORDER BY bucket_start",
        params=[version, coin, bucket, tolerance_buckets, range_start, range_end]).pl(
        ).with_columns(pl.col(pl.Datetime).dt.convert_time_zone("UTC"))


def read_correlation(con: duckdb.DuckDBPyConnection, params: MoodParams,
                     version: str) -> pl.DataFrame | None:
    """The stored result of ``params`` on ``version`` in the order asked, or None."""
    key = params.key()
    if (key, version) not in stored_keys(con):
        return None
    stored = con.sql(
        "SELECT * EXCLUDE (params_key, data_version) FROM mood_correlation "
        "WHERE params_key = ? AND data_version = ?", params=[key, version]).pl()
    order = pl.DataFrame(
        [(c, b, lag) for c in params.coins for b in params.buckets
         for lag in range(-params.max_lag, params.max_lag + 1)],
        schema={"coin": pl.String, "bucket": pl.String, "lag": pl.Int64}, orient="row")
    return order.join(stored, on=["coin", "bucket", "lag"], how="left",
                      maintain_order="left").select(
        [pl.col(c).cast(t) for c, t in TABLE_SCHEMA.items()])
