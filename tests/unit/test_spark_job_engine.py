"""The ``spark-job`` engine checks what a job left against what it reported, before use.

The job runner here is a test double (``ScriptedJobs``): it writes the Parquet files a job
would (``year=YYYY/part-*.parquet``, from the polars transform) and reports per-year row
counts it is told to, so that the engine's own checks can be made to fail. The real job runs
in ``tests/spark/test_engine_assets.py``; the EMR request in ``tests/test_emr_serverless.py``.
"""

import importlib.util
import itertools
import posixpath
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from cryptodudez.resources.compute import Compute, JobSite
from cryptodudez.resources.lake import Lake
from cryptodudez.resources.spark_jobs import LocalSparkJobs, SparkJob, SparkJobResult, SparkJobs
from cryptodudez.transforms.stock_features import features_for_range

BOUNDS = ["2020-01-01", "2021-01-01", "2022-01-01"]


def _bars() -> pl.DataFrame:
    dates = pl.date_range(pl.date(2019, 11, 1), pl.date(2021, 12, 31), "1d", eager=True)
    frames = [pl.DataFrame({"Symbol": symbol, "Date": dates.dt.strftime("%Y-%m-%d"),
                            "Volume": pl.int_range(len(dates), eager=True) * (k + 1),
                            "Adj Close": pl.int_range(len(dates), eager=True).cast(pl.Float64)
                            .sin() + 10})
              for k, symbol in enumerate(["BBB", "AAA"])]
    return pl.concat(frames)


class ScriptedJobs(SparkJobs):
    """Writes the polars features as a job would, and reports ``counts`` (or the truth)."""

    counts: Mapping[str, int] | None = None
    drop_year: str = ""

    def reads_s3(self) -> bool:
        return False

    def run(self, context: dg.AssetExecutionContext, job: SparkJob) -> SparkJobResult:
        args = dict(zip(job.arguments[::2], job.arguments[1::2], strict=True))
        bars = pl.read_parquet(args["--input"].removeprefix("file://") + "/*.parquet")
        features = features_for_range(bars.lazy(), start=args["--start"], end=args["--end"])
        out = args["--output"].removeprefix("file://")
        truth = {}
        for (year,), part in features.group_by(pl.col("Date").str.slice(0, 4)):
            truth[str(year)] = part.height
            if year != self.drop_year:
                Path(out, f"year={year}").mkdir(parents=True)
                part.sample(fraction=1.0, shuffle=True, seed=1).write_parquet(
                    posixpath.join(out, f"year={year}", "part-0.parquet"))
        return SparkJobResult(reported={"rows_by_year": self.counts or truth})


def _periods(tmp_path: Path, jobs: SparkJobs) -> tuple[list[pl.DataFrame], Lake]:
    lake = Lake(uri=str(tmp_path / "lake"))
    lake.write_parquet(lake.path("validated", "stock_prices", "part-0.parquet"), _bars())
    context = dg.build_asset_context()
    engine = Compute(engines={"stock_features": "spark-job"}).chosen(
        "stock_features", JobSite(context, lake, jobs))
    bars = lake.scan_table("validated", "stock_prices")
    return list(engine.stock_features_by_period(bars, BOUNDS)), lake


def test_the_job_files_become_the_polars_periods_in_symbol_date_order(tmp_path: Path) -> None:
    frames, lake = _periods(tmp_path, ScriptedJobs())
    whole = features_for_range(_bars().lazy(), start=BOUNDS[0], end=BOUNDS[-1])
    assert [f.height for f in frames] == [2 * 366, 2 * 365]
    for frame, (lo, hi) in zip(frames, itertools.pairwise(BOUNDS), strict=True):
        expected = whole.filter((pl.col("Date") >= lo) & (pl.col("Date") < hi))
        assert frame.equals(expected.sort("Symbol", "Date"))
    assert not lake.fs.exists(lake.path("features", "stock_features", ".jobs"))


@pytest.mark.parametrize(("jobs", "says"), [
    (ScriptedJobs(counts={"2020": 732, "2021": 731}), "reported rows by year"),
    (ScriptedJobs(drop_year="2021"), "its files under"),
    (ScriptedJobs(counts={"2020": 732}), "reported rows by year"),
])
def test_files_that_disagree_with_the_report_are_not_used(tmp_path: Path, jobs: ScriptedJobs,
                                                          says: str) -> None:
    with pytest.raises(RuntimeError, match=says):
        _periods(tmp_path, jobs)
    lake = Lake(uri=str(tmp_path / "lake"))
    assert not lake.fs.exists(lake.path("features", "stock_features", ".jobs"))


def test_a_local_job_refuses_an_s3_lake() -> None:
    lake = Lake(uri="s3://bucket/lake")
    engine = Compute(engines={"stock_features": "spark-job"}).chosen(
        "stock_features", JobSite(dg.build_asset_context(), lake, ScriptedJobs()))
    with pytest.raises(RuntimeError, match="a local Spark job cannot read an S3 lake"):
        next(iter(engine.stock_features_by_period(pl.LazyFrame(), BOUNDS)))


@pytest.mark.parametrize("asset", ["tweet_daily", "events_compacted"])
def test_only_the_stock_features_have_a_job(asset: str) -> None:
    with pytest.raises(ValueError, match="only stock_features has a Spark job entry point"):
        Compute(engines={asset: "spark-job"}).engine_of(asset)
    with pytest.raises(ValueError, match="needs the run's job site"):
        Compute(engines={"stock_features": "spark-job"}).chosen("stock_features")


def test_a_local_job_without_pyspark_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyspark" else real(name, *a))
    job = SparkJob(name="stock-features", module="cryptodudez.spark.stock_features_job",
                   arguments=[])
    with pytest.raises(RuntimeError, match=r"needs the project's spark extra"):
        LocalSparkJobs().run(dg.build_asset_context(), job)
