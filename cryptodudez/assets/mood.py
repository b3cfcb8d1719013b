"""Price / sentiment correlation results, computed into the warehouse.

Thin: the statistics are :mod:`cryptodudez.mood` (Dagster-free). ``mood_correlation`` reads
the validated ``coin_trades`` and ``tweet_sentiments`` tables, computes the correlation
table its run config asks for, and stores it in the warehouse under ``(params_key,
data_version)``, with each coin's merged series; a key already stored is not written again
(idempotent). The API answers those parameters from the warehouse and computes others with
the same functions. Not partitioned: a result depends on every row of both tables (the
q-values adjust across every coin, bucket and lag asked together).
"""

from datetime import datetime

import dagster as dg
import polars as pl
from pydantic import Field

from cryptodudez.checks import mood as mood_checks
from cryptodudez.checks.tables import markdown_table
from cryptodudez.mood import results
from cryptodudez.resources.lake import VALIDATED, Lake
from cryptodudez.resources.warehouse import Warehouse

TRADES, SENTIMENTS = "coin_trades", "tweet_sentiments"
MOOD_CORRELATION = "mood_correlation"


class MoodConfig(dg.Config):
    """What to correlate (see :class:`cryptodudez.mood.results.MoodParams`).

    ``coins`` empty means every coin that has trades. ``start``/``end`` are ISO-8601
    instants with a zone (``2018-07-16T20:12:00Z``), or empty for no bound.
    """

    coins: list[str] = Field(default_factory=list)
    buckets: list[str] = Field(default_factory=lambda: ["PT10S", "PT1M"])
    max_lag: int = 2
    tolerance_buckets: int = 0
    method: str = "pearson"
    start: str = ""
    end: str = ""
    min_n: int = 8
    n_boot: int = 2000

    def params(self, known_coins: list[str]) -> results.MoodParams:
        """The Dagster-free parameters (coins from the data when none are named)."""
        def instant(text: str) -> datetime | None:
            return datetime.fromisoformat(text) if text else None

        return results.MoodParams(
            coins=tuple(self.coins or known_coins), buckets=tuple(self.buckets),
            max_lag=self.max_lag, tolerance_buckets=self.tolerance_buckets,
            method=self.method, start=instant(self.start), end=instant(self.end),
            min_n=self.min_n, n_boot=self.n_boot)


def mood_inputs(lake: Lake) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The mood inputs from the validated tables (empty frames before any delivery)."""
    trades = (lake.scan_table(VALIDATED, TRADES) if lake.fragments(VALIDATED, TRADES)
              else pl.LazyFrame(schema={"coin": pl.String, "ts": pl.Datetime("us", "UTC"),
                                        "price": pl.Float64, "_source": pl.String,
                                        "_line": pl.Int64}))
    moods = (lake.scan_table(VALIDATED, SENTIMENTS) if lake.fragments(VALIDATED, SENTIMENTS)
             else pl.LazyFrame(schema={"coins": pl.List(pl.String),
                                       "ts": pl.Datetime("us", "UTC"), "polarity": pl.Float64,
                                       "_source": pl.String, "_line": pl.Int64}))
    return results.trades_frame(trades), results.sentiments_frame(moods)


def row_counts(stored: pl.DataFrame) -> dict[str, int]:
    """Rows with numbers, rows without, and numeric rows that lack the bootstrap interval.

    A row without numbers and a numeric row without its interval both carry a
    ``null_reason``, so that column alone does not tell them apart: r does.
    """
    numeric = stored["pearson_r"].is_not_null()
    return {"numeric_rows": int(numeric.sum()), "null_rows": int((~numeric).sum()),
            "no_bootstrap_rows": int((numeric & stored["bootstrap_lo"].is_null()).sum())}


@dg.asset(
    name=MOOD_CORRELATION,
    deps=[TRADES, SENTIMENTS],
    group_name="mood",
    kinds={"duckdb", "polars"},
    description="Per-coin lagged correlation of bucketed log returns with tweet sentiment "
                "(Pearson, Spearman, Fisher and block-bootstrap intervals, BH q-values), "
                "stored in the warehouse by parameters and data version; with each coin's "
                "merged series (backward as-of joins only).",
    check_specs=[
        dg.AssetCheckSpec("mood_correlation_complete", asset=MOOD_CORRELATION, blocking=True,
                          description="The warehouse holds exactly one row per coin, bucket "
                                      "and lag asked for this parameter key and data "
                                      "version (counted by SQL)."),
        dg.AssetCheckSpec("mood_correlation_matches_sql", asset=MOOD_CORRELATION,
                          description="n and Pearson r of every stored row equal a DuckDB "
                                      "SQL twin (window functions and an ASOF JOIN over the "
                                      "validated rows)."),
        dg.AssetCheckSpec("mood_merged_no_lookahead", asset=MOOD_CORRELATION,
                          description="No stored merged row pairs a price bucket with "
                                      "sentiment that ends after its as-of instant."),
    ],
)
def mood_correlation(context: dg.AssetExecutionContext, config: MoodConfig, lake: Lake,
                     warehouse: Warehouse) -> dg.MaterializeResult:
    """Compute (or find stored) the correlation table of the configured parameters."""
    trades, sentiments = mood_inputs(lake)
    coins = sorted(trades["coin"].unique().to_list()) or ["BTC"]
    params = config.params(coins)
    version = results.data_version(trades, sentiments)
    table = results.correlation(trades, sentiments, params)
    with warehouse.writing(results.TABLES_DDL) as con:
        for old, rows in results.upgrade_layout(con).items():
            context.log.warning(f"{warehouse.path}: table {old} had an older version's "
                                f"columns; its {rows} derived rows were dropped and the "
                                "table created anew (they are computed again on demand)")
        written = results.store_correlation(con, params, version, table)
        merged_rows = 0
        for coin in params.coins:
            for bucket in params.buckets:
                frame = results.merged_rows(trades, sentiments, coin=coin, bucket=bucket,
                                            tolerance_buckets=params.tolerance_buckets,
                                            start=params.start, end=params.end)
                merged_rows += results.store_merged(con, version, frame, bucket=bucket,
                                                    tolerance_buckets=params.tolerance_buckets,
                                                    start=params.start, end=params.end)
    with warehouse.reading(results.TABLES_DDL) as con:
        held = mood_checks.stored_rows(con, params.key(), version)
        violations = mood_checks.lookahead_violations(con, version, params)
        stored = results.read_correlation(con, params, version)
    assert stored is not None  # just written, or written before under the same key
    wrong = mood_checks.against_sql(trades, sentiments, params, stored)
    context.log.info(f"mood_correlation {params.key()} on data {version}: "
                     f"{'written' if written else 'already stored'}")
    q = stored["q_value"].drop_nulls()
    return dg.MaterializeResult(
        metadata={
            "params_key": params.key(), "data_version": version, "written": written,
            "params": params.as_json(), "trades": trades.height,
            "sentiments": sentiments.height, "dagster/row_count": stored.height,
            "merged_rows": merged_rows, **row_counts(stored),
            "min_q_value": float(q.min()) if q.len() else None,  # type: ignore[arg-type]
            "significant_at_q_0_05": int((q < 0.05).sum()),
            "preview": dg.MetadataValue.md(markdown_table(stored.select(
                "coin", "bucket", "lag", "n", "pearson_r", "q_value", "null_reason"), 12)),
        },
        check_results=[mood_checks.complete_check(params, held),
                       mood_checks.sql_check(wrong, stored.height),
                       mood_checks.lookahead_check(violations, merged_rows)],
    )
