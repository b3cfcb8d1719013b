"""The feature store's asset checks: schemas and independent recounts.

Each check compares what an asset wrote with a number obtained apart from the code that
wrote it: DuckDB SQL over the validated tables (tweets per UTC day and the latest tweet's
day, each sample symbol's bars with returns and volatility by window functions), the
calendar (spine days), a rebuild from truncated inputs (no look-ahead), the stored
snapshot's bytes (reproducibility), the served baseline's rule by SQL over the training set
or the served model refitted (the published signal).
"""

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg
import duckdb
import pandera.errors as pa_errors
import pandera.polars as pa
import polars as pl

from cryptodudez.checks.tables import markdown_table
from cryptodudez.features import evaluation as ev
from cryptodudez.features.tweets import ACTIVITY

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cryptodudez.features.labels import LabelConfig
    from serving.signal_store import ServedSignals

UTC_STAMP = pl.Datetime(time_unit="us", time_zone="UTC")


class TweetDaily(pa.DataFrameModel):
    """One row per UTC day: counts are non-negative, terms never exceed tweets."""

    day: pl.Date = pa.Field(nullable=False, unique=True)
    tweets: pl.Int64 = pa.Field(nullable=False, ge=0)
    likes: pl.Int64 = pa.Field(nullable=True, ge=0)
    retweets: pl.Int64 = pa.Field(nullable=True, ge=0)
    replies: pl.Int64 = pa.Field(nullable=True, ge=0)

    @pa.dataframe_check(name="terms_at_most_tweets")
    def terms_at_most_tweets(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """A term is counted in at most every tweet of the day."""
        terms = [c for c in ACTIVITY if c.startswith("term_")]
        return data.lazyframe.select(pl.all_horizontal(
            [(pl.col(c) >= 0) & (pl.col(c) <= pl.col("tweets")) for c in terms]))

    @pa.dataframe_check(name="known_after_it_happened")
    def known_after_it_happened(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """No value is available before the end of its day."""
        return data.lazyframe.select(
            (pl.col("available_at") >= pl.col("event_time"))
            & (pl.col("engagement_available_at") >= pl.col("available_at")))


class MarketDaily(pa.DataFrameModel):
    """One row per series (asset class and symbol) and bar date, features in their ranges."""

    asset_class: str = pa.Field(nullable=False)
    symbol: str = pa.Field(nullable=False)
    date: pl.Date = pa.Field(nullable=False)
    vol_20d: float = pa.Field(nullable=True, ge=0)
    corr_eth_60d: float = pa.Field(nullable=True, ge=-1 - 1e-9, le=1 + 1e-9)

    @pa.dataframe_check(name="one_row_per_series_and_date")
    def one_row_per_series_and_date(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """Asset class, symbol and date are a key (a coin and a stock may share a ticker)."""
        return data.lazyframe.select(
            ~pl.struct("asset_class", "symbol", "date").is_duplicated())

    @pa.dataframe_check(name="known_after_it_happened")
    def known_after_it_happened(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """A bar's features are available no earlier than its close."""
        return data.lazyframe.select(pl.col("available_at") >= pl.col("event_time"))


class EthFeatures(pa.DataFrameModel):
    """The model's rows: one per spine day, nothing from after the decision."""

    date: pl.Date = pa.Field(nullable=False, unique=True)
    close: float = pa.Field(nullable=True, gt=0)

    @pa.dataframe_check(name="no_value_from_after_the_decision")
    def no_value_from_after_the_decision(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """Every attached row's event time is at or before the decision time."""
        cols = [c for c in data.lazyframe.collect_schema().names() if c.endswith("event_time")]
        return data.lazyframe.select(pl.all_horizontal(
            [pl.col(c).is_null() | (pl.col(c) <= pl.col("at")) for c in cols] or [pl.lit(True)]))


class EthMarketAsof(pa.DataFrameModel):
    """Every series on the spine: nothing from after the decision, ages non-negative."""

    date: pl.Date = pa.Field(nullable=False)
    asset_class: str = pa.Field(nullable=False)
    symbol: str = pa.Field(nullable=False)
    age_hours: float = pa.Field(nullable=True, ge=0)

    @pa.dataframe_check(name="one_row_per_day_and_series")
    def one_row_per_day_and_series(cls, data: Any) -> pl.LazyFrame:  # noqa: N805
        """Day, asset class and symbol are a key."""
        return data.lazyframe.select(
            ~pl.struct("date", "asset_class", "symbol").is_duplicated())


def schema_failures(frame: pl.DataFrame, schema: type[pa.DataFrameModel]) -> pl.DataFrame:
    """Pandera's failure cases of ``frame`` (empty when every row conforms)."""
    try:
        schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as exc:
        return exc.failure_cases.select(pl.all().cast(pl.String))
    return pl.DataFrame()


def schema_check(name: str, frame: pl.DataFrame, schema: type[pa.DataFrameModel], *,
                 none_expected: str | None = None) -> dg.AssetCheckResult:
    """A pandera schema as an asset check.

    An empty frame is validated too (its columns and types). No rows pass only when the
    caller's count apart from the builder found nothing to write in the window
    (``none_expected`` says why, see :func:`outside_window`); otherwise no rows fail:
    nothing was checked.
    """
    failures = schema_failures(frame, schema)
    empty = frame.height == 0
    description = None
    if empty:
        description = (f"0 rows, none expected: {none_expected}" if none_expected
                       else "no rows were written: nothing to check")
    return dg.AssetCheckResult(
        check_name=name, passed=(not empty or none_expected is not None)
        and failures.height == 0,
        metadata={"rows": frame.height, "failing_count": failures.height,
                  "sample": dg.MetadataValue.md(markdown_table(failures.head(5)))},
        description=description)


def outside_window(first: date | None, last: date | None, start: date, end: date, *,
                   what: str) -> str | None:
    """Why the window ``start <= day < end`` holds no row: the source's days miss it.

    ``first`` and ``last`` are the source's first and last day, counted apart from the
    builder. None when they reach into the window, or when the source holds nothing at all
    (then nothing was checked, which is no pass).
    """
    if first is None or last is None or (first < end and last >= start):
        return None
    return f"{what} run {first}..{last}, outside {start}..{end - timedelta(days=1)}"


def _bar_days(crypto: pl.LazyFrame, stocks: pl.LazyFrame) -> pl.LazyFrame:
    """The day (``d``) of every coin or stock bar with a positive price."""
    day = pl.col("Date").cast(pl.String).str.slice(0, 10).str.to_date().alias("d")
    return pl.concat([crypto.filter(pl.col("Close") > 0).select(day),
                      stocks.filter(pl.col("Adj Close") > 0).select(day)])


def no_bars_between(crypto: pl.LazyFrame, stocks: pl.LazyFrame, start: date, end: date, *,
                    what: str) -> str | None:
    """Why ``start <= day < end`` holds no coin or stock bar (one scan of the bars' days).

    The bars' days lie outside the window (:func:`outside_window`), or around it: a gap
    between the data's years (the sample: CVX in 1966-67, coins from 2013). None when a bar
    is in the window, or when there is no bar at all (nothing checked is no pass).
    """
    lo, hi, inside = _bar_days(crypto, stocks).select(
        pl.col("d").min(), pl.col("d").max().alias("hi"),
        pl.col("d").is_between(start, end, closed="left").sum().alias("inside"),
    ).collect().row(0)
    if lo is None or inside:
        return None
    return (outside_window(lo, hi, start, end, what=what)
            or f"{what} have none in {start}..{end - timedelta(days=1)}")


def duckdb_tweets_per_day(tweets: pl.LazyFrame, start: date, end: date) -> pl.DataFrame:
    """Distinct tweets per UTC day by DuckDB SQL (an implementation apart from polars')."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("tweets", tweets.select("tweet_id", "created_at").collect())
        return con.sql(f"""
            SELECT CAST(created_at AS DATE) AS day, count(DISTINCT tweet_id) AS n
            FROM tweets
            WHERE tweet_id IS NOT NULL AND created_at IS NOT NULL
              AND CAST(created_at AS DATE) >= DATE '{start}'
              AND CAST(created_at AS DATE) < DATE '{end}'
            GROUP BY 1 ORDER BY 1""").pl()
    finally:
        con.close()


def duckdb_last_tweet_day(tweets: pl.LazyFrame) -> date | None:
    """The UTC day of the latest tweet by DuckDB SQL (None without tweets).

    The store's rule, apart from its watermark code: days up to this one are known (a day
    without tweets is a zero), later days are unknown (no row).
    """
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("tweets", tweets.select("tweet_id", "created_at").collect())
        return con.execute("""
            SELECT max(CAST(created_at AS DATE)) FROM tweets
            WHERE tweet_id IS NOT NULL AND created_at IS NOT NULL""").fetchall()[0][0]
    finally:
        con.close()


def tweet_daily_checks(written: pl.DataFrame, tweets: pl.LazyFrame, *, start: date,
                       end: date) -> list[dg.AssetCheckResult]:
    """Every day from ``start`` to the latest tweet's has one row, with the SQL recount.

    The days expected (up to the latest tweet's UTC day, before ``end``) and the tweets per
    day both come from ``tweets``, the validated rows, by SQL: not from the store's watermark.
    """
    latest = duckdb_last_tweet_day(tweets)
    last = min(end - timedelta(days=1), latest) if latest is not None else None
    # days up to the latest tweet's are known (zeros before the first tweet), later unknown
    quiet = (f"the latest tweet's UTC day, {latest}, is before {start}"
             if latest is not None and latest < start else None)
    calendar = pl.DataFrame({"day": pl.date_range(start, last, eager=True)}
                            if last is not None and last >= start else {"day": []},
                            schema={"day": pl.Date})
    missing = calendar.join(written, on="day", how="anti")
    extra = written.join(calendar, on="day", how="anti")
    recount = duckdb_tweets_per_day(tweets, start, end)
    merged = written.select("day", "tweets").join(
        recount.select("day", pl.col("n").cast(pl.Int64)), on="day", how="full",
        coalesce=True).with_columns(pl.col("tweets", "n").fill_null(0))
    wrong = merged.filter(pl.col("tweets") != pl.col("n"))
    return [
        schema_check("tweet_daily_schema", written, TweetDaily, none_expected=quiet),
        dg.AssetCheckResult(
            check_name="tweet_daily_every_day_present",
            passed=missing.height == 0 and extra.height == 0
            and written["day"].n_unique() == written.height,
            metadata={"rows": written.height, "calendar_days": calendar.height,
                      "latest_tweet_day": str(latest), "missing_days": missing.height,
                      "extra_days": extra.height,
                      "zero_tweet_days": written.filter(pl.col("tweets") == 0).height,
                      "sample": dg.MetadataValue.md(markdown_table(pl.concat([
                          missing.select("day", pl.lit("missing").alias("row")),
                          extra.select("day", pl.lit("extra").alias("row"))]).head(5)))}),
        dg.AssetCheckResult(
            check_name="tweet_daily_matches_sql_recount", passed=wrong.height == 0,
            metadata={"failing_count": wrong.height, "tweets": int(written["tweets"].sum()),
                      "tweets_sql": int(recount["n"].sum()) if recount.height else 0,
                      "sample": dg.MetadataValue.md(markdown_table(wrong.head(5)))}),
    ]


def duckdb_returns(crypto: pl.DataFrame, stocks: pl.DataFrame) -> pl.DataFrame:
    """Log return and 20-bar volatility by SQL window functions, from the validated rows.

    ``crypto`` and ``stocks`` are validated-table rows (their own column names): coins use
    ``Close``, stocks and ETFs ``Adj Close``; rows without a positive price are not bars.
    A series is an asset class and a symbol (coins ``crypto``, the others their
    ``asset_class``, ``stock`` when missing): a stock with a coin's ticker is its own series.
    """
    con = duckdb.connect()
    try:
        con.register("crypto", crypto.select("Symbol", "Date", "Close"))
        con.register("stocks", stocks.select("Symbol", "Date", "Adj Close", "asset_class"))
        return con.sql("""
            WITH b AS (
              SELECT 'crypto' AS asset_class, "Symbol" AS symbol,
                     CAST(left(CAST("Date" AS VARCHAR), 10) AS DATE) AS date,
                     "Close" AS close FROM crypto
              UNION ALL
              SELECT coalesce(asset_class, 'stock'), "Symbol",
                     CAST(left(CAST("Date" AS VARCHAR), 10) AS DATE), "Adj Close"
              FROM stocks),
            r AS (
              SELECT asset_class, symbol, date,
                ln(close) - ln(lag(close) OVER (PARTITION BY asset_class, symbol
                                                ORDER BY date)) AS ret
              FROM b WHERE close > 0)
            SELECT asset_class, symbol, date, ret,
              CASE WHEN count(ret) OVER w = 20 THEN stddev_samp(ret) OVER w END AS vol
            FROM r
            WINDOW w AS (PARTITION BY asset_class, symbol ORDER BY date
                         ROWS BETWEEN 19 PRECEDING AND CURRENT ROW)""").pl()
    finally:
        con.close()


def market_daily_checks(written: pl.DataFrame, reference: pl.DataFrame, *,
                        symbols: "Sequence[str]",
                        none_expected: str | None = None) -> list[dg.AssetCheckResult]:
    """Schema, and the SQL recomputation's rows, returns and volatility on sample symbols.

    The written rows of ``symbols`` (the sample, named by the caller: not taken from the
    reference, which has no row of a symbol without validated bars) must be exactly the
    reference's keys (asset class, symbol, date): a bar the builder dropped or invented
    fails, as does a wrong value or a bar filed under the other series of its ticker. An
    empty reference passes only with ``none_expected`` (no bar in the window at all).
    """
    keys = ["asset_class", "symbol", "date"]
    mine = written.filter(pl.col("symbol").is_in(list(symbols)))
    missing = reference.join(mine, on=keys, how="anti")
    extra = mine.join(reference, on=keys, how="anti")
    joined = mine.join(reference, on=keys, how="inner")
    ret_bad = (pl.col("log_return").is_null() != pl.col("ret").is_null()) | (
        (pl.col("log_return") - pl.col("ret")).abs() > 1e-9)
    vol_bad = (pl.col("vol_20d").is_null() != pl.col("vol").is_null()) | (
        (pl.col("vol_20d") - pl.col("vol")).abs() > 1e-9)
    wrong = joined.filter(ret_bad | vol_bad)
    return [
        schema_check("market_daily_schema", written, MarketDaily, none_expected=none_expected),
        dg.AssetCheckResult(
            check_name="market_daily_matches_sql_recomputation",
            passed=(reference.height > 0 or none_expected is not None)
            and missing.height == 0 and extra.height == 0 and wrong.height == 0,
            metadata={"rows_compared": joined.height, "failing_count": wrong.height,
                      "missing_rows": missing.height, "extra_rows": extra.height,
                      "symbols": ", ".join(sorted(reference["symbol"].unique().to_list())),
                      "missing_sample": dg.MetadataValue.md(markdown_table(
                          missing.select(keys).head(5))),
                      "extra_sample": dg.MetadataValue.md(markdown_table(
                          extra.select(keys).head(5))),
                      "sample": dg.MetadataValue.md(markdown_table(
                          wrong.select(*keys, "log_return", "ret", "vol_20d",
                                       "vol").head(5)))},
            description=None if reference.height else (
                f"0 rows compared, none expected: {none_expected}" if none_expected
                else "the sample symbols have no bar in the validated rows: nothing to "
                     "compare")),
    ]


def spine_check(written: pl.DataFrame, eth_first: date | None, eth_last: date | None,
                start: date, end: date) -> dg.AssetCheckResult:
    """One row per calendar day between ETH's first and last close within the window.

    A window outside ETH's closes expects no row; without any ETH close there is nothing
    to check (failed).
    """
    lo = max(start, eth_first) if eth_first else None
    hi = min(end - timedelta(days=1), eth_last) if eth_last else None
    expected = (hi - lo).days + 1 if lo and hi and hi >= lo else 0
    days = written["date"].n_unique() if "date" in written.columns else 0
    nulls = written.filter(pl.col("close").is_null()).height if "close" in written.columns \
        else 0
    description = None
    if eth_first is None:
        description = "no ETH close in the validated coin table: nothing to check"
    elif expected == 0:
        description = (f"0 days expected: ETH's closes run {eth_first}..{eth_last}, "
                       f"outside {start}..{end - timedelta(days=1)}")
    return dg.AssetCheckResult(
        check_name="eth_features_spine_complete",
        passed=eth_first is not None and written.height == expected and days == expected,
        metadata={"rows": written.height, "calendar_days": expected,
                  "days_without_close": nulls},
        description=description)


def spine_gaps(dates: pl.Series, eth_first: date | None,
               eth_last: date | None) -> dict[str, int]:
    """Days of ETH's spine (first to last close) missing from ``dates``, by year."""
    if eth_first is None or eth_last is None:
        return {}
    calendar = pl.date_range(eth_first, eth_last, eager=True).alias("date")
    missing = calendar.filter(~calendar.is_in(dates.implode()))
    counts = missing.dt.year().cast(pl.String).value_counts(sort=False)
    return dict(sorted(counts.iter_rows()))


def lookahead_check(leaks: dict[str, list[str]], cutoffs: list[str], *,
                    none_expected: str | None = None) -> dg.AssetCheckResult:
    """The rebuild from inputs truncated at each cutoff gave the same rows.

    No cutoff fails (nothing tested) unless ``none_expected`` says the window has no day.
    """
    description = None
    if not cutoffs:
        description = (f"no day to test, none expected: {none_expected}" if none_expected
                       else "no day in the window to test")
    return dg.AssetCheckResult(
        check_name="eth_features_no_lookahead",
        passed=not leaks and (bool(cutoffs) or none_expected is not None),
        metadata={"cutoffs": ", ".join(cutoffs), "leaking_columns": dg.MetadataValue.json(leaks)},
        description=description)


def labels_against_sql(frame: pl.DataFrame, crypto: pl.LazyFrame,
                       labels: "LabelConfig") -> pl.DataFrame | None:
    """Rows whose label differs from DuckDB's, for fixed-band horizon labels (else None).

    The reference joins each ETH close to the close ``horizon`` calendar days later by date
    arithmetic over the validated table's rows, apart from the spine and polars' shifts.
    """
    if labels.method != "horizon" or labels.band_kind != "fixed":
        return None
    eth = crypto.filter(pl.col("Symbol") == "ETH").select(
        pl.col("Date").cast(pl.String).str.slice(0, 10).alias("d"), "Close").collect()
    con = duckdb.connect()
    try:
        con.register("eth", eth)
        reference = con.sql(f"""
            WITH c AS (SELECT CAST(d AS DATE) AS date, "Close" AS close FROM eth
                       WHERE "Close" > 0)
            SELECT a.date,
              CASE WHEN ln(b.close) - ln(a.close) > {labels.band} THEN 'buy'
                   WHEN ln(b.close) - ln(a.close) < -{labels.band} THEN 'sell'
                   WHEN b.close IS NOT NULL THEN 'hodl' END AS sql_label
            FROM c a LEFT JOIN c b ON b.date = a.date + {labels.horizon}""").pl()
    finally:
        con.close()
    joined = frame.select("date", "label").join(reference, on="date", how="full",
                                                coalesce=True)
    return joined.filter(pl.col("label").eq_missing(pl.col("sql_label")).not_())


def labels_check(wrong: pl.DataFrame | None, labels: "LabelConfig") -> dg.AssetCheckResult:
    """The label check's result (skipped, and said so, for labels SQL does not recompute)."""
    if wrong is None:
        return dg.AssetCheckResult(
            check_name="eth_training_set_labels_match_sql", passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"labels": f"{labels.method}/{labels.band_kind}", "recomputed": False,
                      "not_recomputed": f"{labels.method} labels with a {labels.band_kind} "
                                        "band have no SQL twin: nothing was compared"},
            description=f"not recomputed for {labels.method}/{labels.band_kind} labels: "
                        "only fixed-band horizon labels have a SQL twin")
    return dg.AssetCheckResult(
        check_name="eth_training_set_labels_match_sql", passed=wrong.height == 0,
        metadata={"labels": f"{labels.method}/{labels.band_kind}", "recomputed": True,
                  "failing_count": wrong.height,
                  "sample": dg.MetadataValue.md(markdown_table(wrong.head(5)))})


def most_probable() -> pl.Expr:
    """The class with the highest of ``p_buy``, ``p_hodl``, ``p_sell`` (ties: that order)."""
    buy, hodl, sell = pl.col("p_buy"), pl.col("p_hodl"), pl.col("p_sell")
    return (pl.when((buy >= hodl) & (buy >= sell)).then(pl.lit("buy"))
            .when(hodl >= sell).then(pl.lit("hodl")).otherwise(pl.lit("sell")))


def baseline_actions_sql(training: pl.DataFrame, name: str) -> pl.DataFrame:
    """A baseline's action on each training row (``date``, ``action``) by DuckDB SQL.

    Rules apart from the evaluation's code: ``always_hodl`` and ``buy_and_hold`` are
    constants; ``majority`` is the most frequent label (ties: buy, hodl, sell);
    ``momentum_20d`` buys when the close is above the one 20 days earlier, sells when it
    is not, and HODLs without a row 20 days earlier or when either close is missing (no
    information, no trade). Any other name gives null actions.
    """
    con = duckdb.connect()
    try:
        con.register("t", training.select("date", "close", "label"))
        return con.sql("""
            WITH majority AS (SELECT label FROM t WHERE label IS NOT NULL
                              GROUP BY label ORDER BY count(*) DESC, label LIMIT 1)
            SELECT a.date, CASE $name
              WHEN 'always_hodl' THEN 'hodl'
              WHEN 'buy_and_hold' THEN 'buy'
              WHEN 'majority' THEN (SELECT label FROM majority)
              WHEN 'momentum_20d' THEN CASE WHEN a.close IS NULL OR b.close IS NULL
                                            THEN 'hodl'
                                            WHEN a.close / b.close - 1 > 0 THEN 'buy'
                                            ELSE 'sell' END
              END AS action
            FROM t a LEFT JOIN t b ON b.date = a.date - 20
            ORDER BY a.date""", params={"name": name}).pl()
    finally:
        con.close()


def verdict_actions(training: pl.DataFrame, verdict: dict[str, Any], *,
                    feature_columns: "Sequence[str]", seed: int) -> pl.DataFrame:
    """What the verdict's source says on each training row (``date``, ``action``).

    Without an edge, the best baseline's rule by SQL (:func:`baseline_actions_sql`); with
    one, the model refitted on every labelled row (the evaluation's booster and seed) and
    each row's most probable class. The baselines' rules are independent of the code that
    built the rows; the model's refit shares the evaluation's fitting code (``ev.fit_model``),
    so for the model this catches what ``final_signals`` does with the fit (wrong rows,
    dates or classes served), not a wrong fit.
    """
    if not verdict["edge"]:
        return baseline_actions_sql(training, str(verdict["best_baseline"]))
    proba = ev.fit_model(training, feature_columns, seed=seed).predict_proba(training)
    return training.select("date", *(pl.Series(f"p_{c}", proba[:, j])
                                     for j, c in enumerate(ev.CLASSES))
                           ).select("date", action=most_probable())


def served_verdict_check(verdict: dict[str, Any], published: "ServedSignals",
                         source_actions: pl.DataFrame) -> dg.AssetCheckResult:
    """The published signal is the model exactly when the evaluation found an edge.

    ``published`` is the version as the API reads it back; without an edge it must name the
    best baseline (``baseline:<name>``). Every row's action must be ``source_actions``'s
    for its date (see :func:`verdict_actions`) and its own most probable class, and no
    date may be missing or extra.
    """
    edge = bool(verdict["edge"])
    expected = "model" if edge else f"baseline:{verdict['best_baseline']}"
    rows = pl.DataFrame(
        [{"date": r.date, "action": r.action,
          **{f"p_{c}": float(r.probabilities[c]) for c in ev.CLASSES}}
         for r in published.rows.values()],
        schema={"date": pl.Date, "action": pl.String, "p_buy": pl.Float64,
                "p_hodl": pl.Float64, "p_sell": pl.Float64},
    ).with_columns(most_probable=most_probable())
    joined = rows.join(source_actions.select("date", source=pl.col("action")), on="date",
                       how="full", coalesce=True)
    wrong = joined.filter(~pl.col("action").eq_missing(pl.col("source"))
                          | ~pl.col("action").eq_missing(pl.col("most_probable")))
    return dg.AssetCheckResult(
        check_name="eth_signal_serves_the_verdict",
        passed=published.served == expected and joined.height > 0 and wrong.height == 0,
        metadata={"published": published.served, "expected": expected, "edge": edge,
                  "rows": len(published.rows), "failing_count": wrong.height,
                  "sample": dg.MetadataValue.md(markdown_table(wrong.select(
                      "date", "action", "source", "most_probable").head(5)))})


def eth_close_range(crypto: pl.LazyFrame) -> tuple[date | None, date | None]:
    """ETH's first and last close day in the validated coin table."""
    days = crypto.filter((pl.col("Symbol") == "ETH") & (pl.col("Close") > 0)).select(
        pl.col("Date").cast(pl.String).str.slice(0, 10).str.to_date().alias("d"))
    lo, hi = days.select(pl.col("d").min().alias("lo"), pl.col("d").max().alias("hi")
                         ).collect().row(0)
    return lo, hi
