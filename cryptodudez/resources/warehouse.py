"""The warehouse: a DuckDB file of result tables analysts and services query.

Results computed by assets (the CoinGecko prices and moving average, the price / sentiment
correlation results) live here, keyed by what they were computed from, and are upserted
(never appended twice). The file is copy-on-write (:mod:`cryptodudez.duckfile`): the API
and people reading it never block a writer. Its DDL belongs to the modules that define
the tables; each writer passes its own ``ddl``.

Where it is: ``CRYPTODUDEZ_WAREHOUSE``, by default ``<lake>/warehouse.duckdb`` for a local
lake and ``<project>/warehouse.duckdb`` for an S3 lake (DuckDB needs a local file; a
production deployment points it at a mounted volume).
"""

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb
import polars as pl

from cryptodudez import duckfile


class Warehouse(dg.ConfigurableResource):
    """A DuckDB file of result tables (copy-on-write: readers never block writers)."""

    path: str
    lock_timeout_seconds: float = 300.0

    @contextlib.contextmanager
    def writing(self, ddl: str = "") -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection; its changes appear atomically when the block ends."""
        with duckfile.writing(self.path, ddl=ddl,
                              lock_timeout=self.lock_timeout_seconds) as con:
            yield con

    @contextlib.contextmanager
    def reading(self, ddl: str = "") -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the current file (created with ``ddl`` if missing)."""
        with duckfile.reading(self.path, ddl=ddl) as con:
            yield con

    def query(self, sql: str, params: list[object] | None = None, *,
              ddl: str = "") -> pl.DataFrame:
        """The result of one read-only query as a polars frame."""
        with self.reading(ddl) as con:
            return con.sql(sql, params=params or None).pl()
