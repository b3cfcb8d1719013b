"""The stock pipeline: rolling features by year, and the volume model trained on them."""

import contextlib
import io
import json
import logging
import pickle
import time
import warnings
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from cryptodudez.assets.windows import run_window
from cryptodudez.checks.tables import SAMPLE, markdown_table
from cryptodudez.resources.compute import Compute, JobSite
from cryptodudez.resources.lake import FEATURES, MODELS, VALIDATED, Lake
from cryptodudez.resources.spark_jobs import SparkJobs
from cryptodudez.transforms import volume_model as vm
from cryptodudez.transforms.stock_features import FEATURES as FEATURE_COLUMNS
from cryptodudez.transforms.stock_features import POSITION, rows_by_period, window_rows

STOCK_FEATURES = "stock_features"
VOLUME_MODEL = "volume_model"
LOOKUP_TOLERANCE = 1e-9  # the served lookup table may differ from the booster by this, relative
FIRST_YEAR = "1960"
SAMPLE_SYMBOLS = 25
# The spec's window: 30 trading rows per symbol. The checks state it themselves and never
# import the transform's WINDOW: a check that reads the number it checks passes any window.
SPEC_WINDOW = 30

stock_years = dg.TimeWindowPartitionsDefinition(
    start=FIRST_YEAR, cron_schedule="0 0 1 1 *", fmt="%Y", end_offset=1,
)


def feature_path(lake: Lake, year: str) -> str:
    """The Parquet file of one year of features."""
    return lake.path(FEATURES, STOCK_FEATURES, f"year-{year}.parquet")


def _years(start: datetime, end: datetime) -> Iterator[tuple[str, str, str]]:
    year = start.year
    while year < end.year:
        yield str(year), f"{year:04d}-01-01", f"{year + 1:04d}-01-01"
        year += 1


def independent_recomputation(bars: pl.DataFrame, features: pl.DataFrame,
                              symbols: list[str]) -> pl.DataFrame:
    """Rows where DuckDB window functions over the full history disagree with ``features``.

    A second implementation (SQL ``ROWS BETWEEN 29 PRECEDING AND CURRENT ROW``, the spec's
    ``SPEC_WINDOW``) on the sample ``symbols``; returns the disagreeing rows (empty when all
    agree).
    """
    con = duckdb.connect()
    try:
        con.register("bars", bars.filter(pl.col("Symbol").is_in(symbols)))
        con.register("feat", features.filter(pl.col("Symbol").is_in(symbols)).select(
            "Symbol", "Date", *FEATURE_COLUMNS))
        return con.sql(f"""
            WITH ref AS (
              SELECT "Symbol", "Date",
                CASE WHEN count(*) OVER w = {SPEC_WINDOW} THEN avg("Volume") OVER w
                END AS vol,
                CASE WHEN count(*) OVER w = {SPEC_WINDOW} THEN median("Adj Close") OVER w
                END AS med
              FROM bars
              WINDOW w AS (PARTITION BY "Symbol" ORDER BY "Date"
                           ROWS BETWEEN {SPEC_WINDOW - 1} PRECEDING AND CURRENT ROW))
            SELECT f."Symbol", f."Date", f.vol_moving_avg, r.vol,
                   f.adj_close_rolling_med, r.med
            FROM feat f JOIN ref r USING ("Symbol", "Date")
            WHERE (f.vol_moving_avg IS NULL) <> (r.vol IS NULL)
               OR (f.adj_close_rolling_med IS NULL) <> (r.med IS NULL)
               OR abs(f.vol_moving_avg - r.vol) > 1e-6 * greatest(1, abs(r.vol))
               OR abs(f.adj_close_rolling_med - r.med) > 1e-9 * greatest(1, abs(r.med))
        """).pl()
    finally:
        con.close()


# BackfillPolicy is beta in Dagster 1.13. A single-run backfill is exactly what windowed
# features need, so the warning would only be noise on every CLI start.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy")
    _features_asset = dg.asset(
        partitions_def=stock_years,
        deps=[dg.AssetDep("stock_prices", partition_mapping=dg.AllPartitionMapping())],
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="features",
        kinds={"polars", "parquet"},
        check_specs=[
            dg.AssetCheckSpec("stock_features_nulls_are_first_29_rows", asset=STOCK_FEATURES,
                              blocking=True,
                              description="Features are null exactly on each symbol's first 29 "
                                          "rows of history."),
            dg.AssetCheckSpec("stock_features_match_independent_recomputation",
                              asset=STOCK_FEATURES, blocking=True,
                              description="DuckDB window functions over the full history give the "
                                          "same values on a sample of symbols."),
            dg.AssetCheckSpec("stock_features_one_row_per_validated_bar",
                              asset=STOCK_FEATURES, blocking=True,
                              description="Each year file holds as many rows (Parquet footers) "
                                          "as the validated table has bars in that year, and "
                                          "the run wrote at least one row unless the table "
                                          "has bars, none of them in its years."),
        ],
    )


@_features_asset
def stock_features(context: dg.AssetExecutionContext, lake: Lake, compute: Compute,
                   spark_jobs: SparkJobs) -> dg.MaterializeResult:
    """Every validated stock/ETF bar plus its 30-row rolling features, one file per year.

    ``vol_moving_avg`` is the mean of Volume and ``adj_close_rolling_med`` the median of
    Adj Close over the symbol's 30 most recent trading rows. Partitioned by year; a run over
    any range of years reads each symbol's 29 rows before the range, so windows are correct
    across partition boundaries. Years are read a few million rows at a time, never the
    whole table at once.
    """
    years = list(_years(*run_window(context, unit="year")))
    bars = lake.scan_table(VALIDATED, "stock_prices")
    bounds = [years[0][1], *(end for _, _, end in years)]
    frames: Iterator[pl.DataFrame] = iter([pl.DataFrame()] * len(years))
    symbols: list[str] = []
    expected = [0] * len(years)
    if bars.collect_schema().names():
        expected = rows_by_period(bars, bounds)
        # polars', or Spark's twin, or a Spark job's
        frames = compute.chosen(STOCK_FEATURES, JobSite(context, lake, spark_jobs)
                                ).stock_features_by_period(bars, bounds)
        symbols = _sample_symbols(bars, start=bounds[0], end=bounds[-1])
    checks = _FeatureChecks(symbols)
    # A year without validated bars (1960, or a gap between the data's years) is an empty
    # partition whose checks pass, as the feature store's empty years; with no validated
    # bar at all (no table, or only files whose every row was rejected) there is nothing to
    # check, and they fail.
    none_expected = (f"no validated bars in {years[0][0]}..{years[-1][0]}: none expected"
                     if not sum(expected) and bars.collect_schema().names()
                     and bars.select(pl.len()).collect().item() else None)
    preview = pl.DataFrame()
    written: list[str] = []
    with contextlib.ExitStack() as stack:
        # strict: one frame per year, and the engine's iterator runs to its end, where a Spark
        # job's engine removes its scratch folder; closed (the same) when a year fails.
        if isinstance(frames, Generator):
            stack.callback(frames.close)
        writer = stack.enter_context(lake.background_writer())  # overlaps the next year
        for (year, _, _), computed in zip(years, frames, strict=True):
            path = feature_path(lake, year)
            if computed.height:
                # the position depends on the run's lookback: its window's rows do not
                writer.write(path, computed.with_columns(window_rows()).drop(
                    [c for c in computed.columns if c.startswith("_") and c != "_source"]))
                frame = computed.rename({POSITION: "row_in_symbol"})
                written.append(year)
                checks.add(frame)
                if not preview.height:
                    preview = frame.select("Symbol", "Date", "Volume", "Adj Close",
                                           *FEATURE_COLUMNS).head(SAMPLE)
            else:
                lake.delete(path)
    # Each year partition records its own file's rows, read back from the Parquet footer.
    on_disk = {year: lake.count_rows([feature_path(lake, year)]) if year in written else 0
               for year, _, _ in years}
    for year, rows_in_year in on_disk.items():
        context.add_asset_metadata(
            {"dagster/row_count": rows_in_year,
             "path": lake.url(FEATURES, STOCK_FEATURES, f"year-{year}.parquet")},
            partition_key=year,
        )
    nonempty = {y: n for y, n in on_disk.items() if n}
    rows = sum(nonempty.values())
    context.log.info(f"stock features: {rows} rows over {len(nonempty)} years")
    return dg.MaterializeResult(
        metadata={
            "run_rows": rows,
            "run_rows_by_year": dg.MetadataValue.json(nonempty),
            "run_years": f"{years[0][0]}..{years[-1][0]}",
            "preview": dg.MetadataValue.md(markdown_table(preview)),
        },
        check_results=[
            *checks.results(lake, none_expected=none_expected),
            _row_count_check(on_disk, dict(zip([y for y, _, _ in years], expected,
                                               strict=True)), none_expected=none_expected),
        ],
    )


def _row_count_check(on_disk: dict[str, int], expected: dict[str, int], *,
                     none_expected: str | None = None) -> dg.AssetCheckResult:
    """Rows written per year (Parquet footers) against validated bars per year."""
    wrong = {y: {"written": on_disk[y], "validated_bars": expected[y]}
             for y in on_disk if on_disk[y] != expected[y]}
    total = sum(on_disk.values())
    return dg.AssetCheckResult(
        check_name="stock_features_one_row_per_validated_bar",
        passed=not wrong and (total > 0 or none_expected is not None),
        metadata={"rows_written": total, "validated_bars": sum(expected.values()),
                  "failing_count": len(wrong), "years_wrong": dg.MetadataValue.json(wrong)},
        description=None if total else (
            none_expected or "no feature rows were written: nothing to check"),
    )


def _sample_symbols(bars: pl.LazyFrame, *, start: str, end: str) -> list[str]:
    """The symbols the recomputation check compares: a fixed pseudo-random sample."""
    unique = (bars.filter((pl.col("Date") >= start) & (pl.col("Date") < end))
              .select(pl.col("Symbol").unique()).collect())
    return (unique.sort(pl.col("Symbol").hash(seed=7)).head(SAMPLE_SYMBOLS)
            .to_series().sort().to_list())


class _FeatureChecks:
    """The two feature checks, gathered year by year as the files are written."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.wrong: list[pl.DataFrame] = []
        self.failing = 0
        self.null_rows = 0
        self.rows = 0
        self.sampled: list[pl.DataFrame] = []

    def add(self, frame: pl.DataFrame) -> None:
        """Check one year's feature rows (``row_in_symbol`` and both features)."""
        early = pl.col("row_in_symbol") < SPEC_WINDOW - 1
        wrong = frame.filter(
            (early != pl.col(FEATURE_COLUMNS[0]).is_null())
            | (early != pl.col(FEATURE_COLUMNS[1]).is_null())
        )
        self.rows += frame.height
        self.failing += wrong.height
        self.null_rows += frame.filter(early).height
        if sum(w.height for w in self.wrong) < SAMPLE:
            self.wrong.append(wrong.select("Symbol", "Date", "row_in_symbol", *FEATURE_COLUMNS)
                              .head(SAMPLE))
        self.sampled.append(frame.filter(pl.col("Symbol").is_in(self.symbols))
                            .select("Symbol", "Date", *FEATURE_COLUMNS))

    def results(self, lake: Lake, *, none_expected: str | None = None,
                ) -> list[dg.AssetCheckResult]:
        """Both check results; the recomputation reads the sample symbols' whole history.

        No rows is a pass only when ``none_expected`` says why (no validated bars).
        """
        if self.rows == 0:  # nothing was checked: a pass only when nothing was due
            return [
                dg.AssetCheckResult(
                    check_name=name, passed=none_expected is not None, metadata={"rows": 0},
                    description=none_expected or "no feature rows were written: nothing to "
                                                 "check")
                for name in ("stock_features_nulls_are_first_29_rows",
                             "stock_features_match_independent_recomputation")
            ]
        history = (
            lake.scan_table(VALIDATED, "stock_prices", ["Symbol", "Date", "Volume", "Adj Close"])
            .filter(pl.col("Symbol").is_in(self.symbols))
            .collect()
        )
        sampled = pl.concat(self.sampled)
        disagree = independent_recomputation(history, sampled, self.symbols)
        return [
            dg.AssetCheckResult(
                check_name="stock_features_nulls_are_first_29_rows", passed=self.failing == 0,
                metadata={"failing_count": self.failing, "null_rows": self.null_rows,
                          "sample": dg.MetadataValue.md(markdown_table(pl.concat(self.wrong)))},
            ),
            dg.AssetCheckResult(
                check_name="stock_features_match_independent_recomputation",
                passed=disagree.height == 0 and sampled.height > 0,
                metadata={"failing_count": disagree.height, "symbols": ", ".join(self.symbols),
                          "rows_compared": sampled.height,
                          "sample": dg.MetadataValue.md(markdown_table(disagree))},
            ),
        ]


class _TrainingLog(logging.Handler):
    """Keeps the training log lines for ``train.log`` and forwards them to Dagster's log."""

    def __init__(self, context: dg.AssetExecutionContext) -> None:
        super().__init__()
        self.context = context
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.context.log.info(record.getMessage())


class VolumeModelConfig(dg.Config):
    """Options of a volume model run."""

    evaluate: bool = True
    """Score the training procedure on held-out splits after the fit (not part of the fit)."""


@dg.asset(
    deps=[dg.AssetDep(STOCK_FEATURES, partition_mapping=dg.AllPartitionMapping())],
    group_name="models",
    kinds={"scikitlearn"},
    check_specs=[
        dg.AssetCheckSpec("volume_model_lookup_matches_booster", asset=VOLUME_MODEL,
                          blocking=True,
                          description="The served lookup table gives the booster's predictions "
                                      "on a sample of at least one training row."),
        dg.AssetCheckSpec("volume_model_beats_naive_forecast", asset=VOLUME_MODEL,
                          description="On symbols it never trained on, the training procedure "
                                      "has a lower MAE of log volume than Volume = "
                                      "vol_moving_avg and an MAE no worse (MSE reported, "
                                      "not checked)."),
    ],
)
def volume_model(context: dg.AssetExecutionContext, config: VolumeModelConfig,
                 lake: Lake) -> dg.MaterializeResult:
    """Volume predicted from ``vol_moving_avg`` and ``adj_close_rolling_med``.

    Fitted on a fixed-size deterministic sample of the feature rows (at most
    ``SAMPLE_ROWS``), its shrinkage chosen on validation symbols; then, apart from the fit,
    evaluated on held-out symbols, a time hold-out and a random split of a larger sample.
    Saved under ``models/volume_model/<version>/`` with its metrics (JSON) and a training
    log, then published through ``LATEST``.
    """
    log = logging.getLogger(f"cryptodudez.volume_model.{context.run_id}")
    handler = _TrainingLog(context)
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        started = time.perf_counter()
        frame = vm.training_frame(
            lake.scan_table(FEATURES, STOCK_FEATURES, list(vm.TRAINING_COLUMNS)))
        if frame.height == 0:
            raise dg.Failure("no feature rows with both features and a volume: no model")
        dates = frame["Date"]
        log.info("training rows read: %d (dates %s .. %s)", frame.height, dates.min(),
                 dates.max())
        model, report = vm.train(frame)
        log.info("fitted on %d sampled rows; shrinkage chosen on %d validation rows of %d "
                 "symbols: %s%s", report["rows_sampled"], report["validation_rows"],
                 report["validation_symbols"], model.shrinkage,
                 " (the naive forecast: no correction)" if model.shrinkage == 0 else "")
        table = model.compile()
        x_check, _ = vm.arrays(vm.subsample(frame, 20_000))
        exact = vm.check_exact(model, table, x_check)
        seconds = time.perf_counter() - started
        log.info("trained in %.1f s; lookup max relative difference %.3g", seconds, exact)
        evaluation: dict[str, Any] = {}
        evaluate_seconds = 0.0
        if config.evaluate:
            started = time.perf_counter()
            evaluation = vm.evaluate(frame)
            evaluate_seconds = time.perf_counter() - started
            for split, scores in evaluation.items():
                log.info("%s: %s", split, json.dumps(scores))
        version = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S") + f"-{context.run_id[:8]}"
        metrics = {"version": version, "rows": report["rows_sampled"],
                   "rows_read": frame.height, "train_seconds": seconds,
                   "evaluate_seconds": evaluate_seconds,
                   "shrinkage": model.shrinkage, "validation": report,
                   "hgb_params": vm.HGB_PARAMS, "evaluation": evaluation,
                   "lookup_max_relative_difference": exact,
                   "features": list(vm.FEATURES), "target": vm.TARGET,
                   "trained_on": lake.fragments(FEATURES, STOCK_FEATURES)}
        published = exact < LOOKUP_TOLERANCE
        if not published:
            log.warning("the lookup differs from the booster by %.3g (over %g): version %s is "
                        "kept for inspection, LATEST still names the served model", exact,
                        LOOKUP_TOLERANCE, version)
        _save(lake, version, model=model, table=table, metrics=metrics, log_lines=handler.lines,
              publish=published)
    finally:
        log.removeHandler(handler)
    held_out = evaluation.get("held_out_symbols")
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "published": published,
            "path": lake.url(MODELS, VOLUME_MODEL, version),
            "rows": report["rows_sampled"],
            "rows_read": frame.height,
            "train_seconds": round(seconds, 1),
            "evaluate_seconds": round(evaluate_seconds, 1),
            "shrinkage": model.shrinkage,
            **{f"{split}_{name}_{k}": v for split, s in evaluation.items()
               for name in ("model", "naive") for k, v in s.get(name, {}).items()},
        },
        check_results=[
            dg.AssetCheckResult(check_name="volume_model_lookup_matches_booster",
                                passed=published,
                                metadata={"max_relative_difference": exact,
                                          "rows_compared": len(x_check)}),
            dg.AssetCheckResult(
                check_name="volume_model_beats_naive_forecast",
                passed=bool(held_out and held_out.get("beats_naive")),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"change_pct_by_split": dg.MetadataValue.json(
                    {k: v.get("change_pct", v.get("skipped")) for k, v in evaluation.items()})},
                description=None if held_out and "skipped" not in held_out
                else "not evaluated on held-out symbols in this run",
            ),
        ],
    )


def _save(lake: Lake, version: str, *, model: vm.VolumeModel, table: vm.LookupModel,
          metrics: dict[str, Any], log_lines: list[str], publish: bool) -> None:
    """Write a model version, then, if ``publish``, point ``LATEST`` at it.

    Readers never see half a model. A version whose blocking check fails is written but not
    published: the API goes on serving the previous one (it was published before its check
    failed, until a review in session 23).
    """
    folder = [MODELS, VOLUME_MODEL, version]
    buf = io.BytesIO()
    pickle.dump(model, buf, protocol=pickle.HIGHEST_PROTOCOL)
    lake.write_bytes(lake.path(*folder, "booster.pkl"), buf.getvalue())
    lake.write_bytes(lake.path(*folder, "lookup.json"),
                     json.dumps({"version": version, **table.to_json()}).encode())
    lake.write_bytes(lake.path(*folder, "metrics.json"),
                     json.dumps(metrics, indent=2, default=str).encode())
    lake.write_bytes(lake.path(*folder, "train.log"), ("\n".join(log_lines) + "\n").encode())
    if publish:
        lake.write_bytes(lake.path(MODELS, VOLUME_MODEL, "LATEST"), version.encode())
