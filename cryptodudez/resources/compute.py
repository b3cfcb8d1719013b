"""The engine that computes the heavy transforms: polars in-process, or Spark.

The asset and its checks are the same with either engine; Spark's output is made identical
to polars' (rows, order, columns and types; values as the parity tests bound them).
"""

from collections.abc import Iterator, Sequence
from typing import Literal

import dagster as dg
import polars as pl

from cryptodudez.transforms import stock_features as polars_features


class Compute(dg.ConfigurableResource):
    """Chooses the engine of the stock features (``CRYPTODUDEZ_ENGINE``: polars or spark)."""

    engine: Literal["polars", "spark"] = "polars"
    """``polars`` computes in the run's process; ``spark`` in a SparkSession."""
    spark_cores: int = 2
    """Cores of the local Spark session (``local[n]``), when no session is running yet."""

    def stock_features_by_period(self, bars: pl.LazyFrame,
                                 bounds: Sequence[str]) -> Iterator[pl.DataFrame]:
        """``features_by_period(bars, bounds)`` computed by the chosen engine.

        Spark computes the whole range in one job (the polars engine reads a few million
        rows at a time); the frames are the same.
        """
        if self.engine == "polars":
            return polars_features.features_by_period(bars, bounds)
        from cryptodudez.spark.session import local_session  # noqa: PLC0415  # optional extra
        from cryptodudez.spark.stock_features import features_by_period_of  # noqa: PLC0415

        return features_by_period_of(local_session(cores=self.spark_cores), bars, bounds)
