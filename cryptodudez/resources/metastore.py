"""The metastore: what landed where, what it was recognised as, its columns, its fate.

``DuckDBMetastore`` keeps the catalogue in a DuckDB file (``<lake>/catalog.duckdb``) for
local lakes. ``GlueMetastore`` keeps the same catalogue in an AWS Glue Data Catalog
database for S3 lakes: one Glue table per validated dataset pointing at its S3 folder, plus
the per-file records as Parquet in the lake (``catalog/files/``, ``catalog/columns/``) behind
Glue tables of the same names, so Athena can query both.
"""

import contextlib
import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import dagster as dg
import duckdb
import polars as pl
from polars.datatypes import DataTypeClass
from pydantic import PrivateAttr

from cryptodudez.resources.lake import Lake

FILES_SCHEMA = {
    "uri": pl.String,
    "partition_key": pl.String,
    "member": pl.String,
    "dataset": pl.String,
    "table_name": pl.String,
    "format": pl.String,
    "sha256": pl.String,
    "size": pl.Int64,
    "landed_at": pl.Datetime("us", "UTC"),
    "rows_read": pl.Int64,
    "rows_valid": pl.Int64,
    "rows_quarantined": pl.Int64,
    "status": pl.String,
    "reason": pl.String,
    "recorded_at": pl.Datetime("us", "UTC"),
}
COLUMNS_SCHEMA = {"uri": pl.String, "sha256": pl.String, "position": pl.Int32,
                  "name": pl.String, "type": pl.String}

_DDL = """
CREATE TABLE IF NOT EXISTS files (
    uri VARCHAR NOT NULL, partition_key VARCHAR, member VARCHAR, dataset VARCHAR,
    table_name VARCHAR, format VARCHAR, sha256 VARCHAR, size BIGINT,
    landed_at TIMESTAMPTZ, rows_read BIGINT, rows_valid BIGINT, rows_quarantined BIGINT,
    status VARCHAR, reason VARCHAR, recorded_at TIMESTAMPTZ,
    PRIMARY KEY (uri, sha256)
);
CREATE TABLE IF NOT EXISTS columns (
    uri VARCHAR NOT NULL, sha256 VARCHAR, position INTEGER, name VARCHAR, type VARCHAR,
    PRIMARY KEY (uri, sha256, position)
);
CREATE TABLE IF NOT EXISTS tables (
    table_name VARCHAR PRIMARY KEY, location VARCHAR, columns VARCHAR, updated_at TIMESTAMPTZ
);
"""


class Metastore(dg.ConfigurableResource):
    """Interface of the catalogue; assets annotate this type."""

    def record_files(self, files: pl.DataFrame, columns: pl.DataFrame) -> None:
        """Upsert file (and archive member) versions and their inferred columns."""
        raise NotImplementedError

    def register_table(self, table: str, location: str, schema: pl.Schema) -> None:
        """Create or update the catalogue entry of a validated table."""
        raise NotImplementedError

    def files(self) -> pl.DataFrame:
        """Every recorded file version."""
        raise NotImplementedError

    def latest_sha(self, partition_key: str) -> str | None:
        """sha256 of the last ingested version of a landed file (None if never ingested)."""
        files = self.files()
        rows = files.filter(pl.col("partition_key") == partition_key, pl.col("member").is_null())
        if rows.height == 0:
            return None
        return rows.sort("recorded_at")["sha256"][-1]


class DuckDBMetastore(Metastore):
    """The catalogue in a local DuckDB file."""

    path: str

    @contextlib.contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect(self.path)
        try:
            con.execute(_DDL)
            yield con
        finally:
            con.close()

    def record_files(self, files: pl.DataFrame, columns: pl.DataFrame) -> None:
        """Upsert rows keyed by (uri, sha256) in one transaction."""
        with self._connection() as con:
            con.execute("BEGIN")
            con.register("files_df", files.select(list(FILES_SCHEMA)))
            con.register("columns_df", columns.select(list(COLUMNS_SCHEMA)))
            con.execute("INSERT OR REPLACE INTO files SELECT * FROM files_df")
            con.execute("INSERT OR REPLACE INTO columns SELECT * FROM columns_df")
            con.execute("COMMIT")

    def register_table(self, table: str, location: str, schema: pl.Schema) -> None:
        """Record the table's location and column types."""
        cols = ", ".join(f"{name}:{dtype}" for name, dtype in schema.items())
        with self._connection() as con:
            con.execute(
                "INSERT OR REPLACE INTO tables VALUES (?, ?, ?, ?)",
                [table, location, cols, datetime.now(tz=UTC)],
            )

    def files(self) -> pl.DataFrame:
        """All file versions."""
        return self._query("SELECT * FROM files ORDER BY recorded_at, uri")

    def latest_sha(self, partition_key: str) -> str | None:
        """sha256 of the last ingested version of a landed file, looked up by its key."""
        with self._connection() as con:
            row = con.execute(
                "SELECT sha256 FROM files WHERE partition_key = ? AND member IS NULL "
                "ORDER BY recorded_at DESC LIMIT 1", [partition_key]).fetchone()
        return None if row is None else str(row[0])

    def columns(self) -> pl.DataFrame:
        """All inferred columns."""
        return self._query("SELECT * FROM columns ORDER BY uri, position")

    def _query(self, sql: str) -> pl.DataFrame:
        with self._connection() as con:
            return con.sql(sql).pl()


_GLUE_TYPES: dict[DataTypeClass, str] = {
    pl.String: "string", pl.Int64: "bigint", pl.Int32: "int", pl.Float64: "double",
    pl.Boolean: "boolean", pl.Date: "date",
}


def glue_column_name(name: str) -> str:
    """Hive/Athena-safe column name (``Adj Close`` -> ``adj_close``).

    The original name is kept in the column comment, and the tables read Parquet columns by
    position (see ``register_table``), so the renaming loses nothing.
    """
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def glue_type(dtype: pl.DataType | DataTypeClass) -> str:
    """Hive/Glue column type of a polars dtype."""
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    if isinstance(dtype, pl.List):
        return f"array<{glue_type(dtype.inner)}>"
    return _GLUE_TYPES.get(dtype.base_type(), "string")


class GlueMetastore(Metastore):
    """The catalogue in an AWS Glue Data Catalog database (S3 lakes)."""

    database: str
    lake: Lake
    region_name: str = "us-east-1"
    endpoint_url: str | None = None

    _client: Any = PrivateAttr(default=None)

    @property
    def glue(self) -> Any:
        """boto3 Glue client."""
        if self._client is None:
            self._client = boto3.client("glue", region_name=self.region_name,
                                        endpoint_url=self.endpoint_url)
            with contextlib.suppress(self._client.exceptions.AlreadyExistsException):
                self._client.create_database(DatabaseInput={"Name": self.database})
        return self._client

    def register_table(self, table: str, location: str, schema: pl.Schema) -> None:
        """Create or update a Glue table over a Parquet folder."""
        table_input = {
            "Name": table,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
            "StorageDescriptor": {
                "Columns": [{"Name": glue_column_name(n), "Type": glue_type(t), "Comment": n}
                            for n, t in schema.items()],
                "Location": location.rstrip("/") + "/",
                "InputFormat":
                    "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat":
                    "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {
                    "SerializationLibrary":
                        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                    # Columns are renamed to Hive-safe names, so match them by position.
                    "Parameters": {"parquet.column.index.access": "true"},
                },
            },
        }
        try:
            self.glue.create_table(DatabaseName=self.database, TableInput=table_input)
        except self.glue.exceptions.AlreadyExistsException:
            self.glue.update_table(DatabaseName=self.database, TableInput=table_input)

    def record_files(self, files: pl.DataFrame, columns: pl.DataFrame) -> None:
        """Write the records as a Parquet fragment per landed file version, behind Glue tables.

        Both fragments are named after the landed file's version (its row without a
        ``member``), so a later version never overwrites an earlier version's records, even
        when their first members are identical.
        """
        files = files.select(list(FILES_SCHEMA))
        columns = columns.select(list(COLUMNS_SCHEMA))
        landed = files.filter(pl.col("member").is_null())
        anchor = landed if landed.height else files if files.height else columns
        if anchor.height == 0:
            return
        key = anchor["uri"][0] + "|" + (anchor["sha256"][0] or "")
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        for name, frame in (("files", files), ("columns", columns)):
            if frame.height == 0:
                continue
            self.lake.write_parquet(self.lake.path("catalog", name, f"{digest}.parquet"), frame)
            self.register_table(name, self.lake.url("catalog", name), frame.schema)

    def _records(self, name: str, schema: dict[str, Any]) -> pl.DataFrame:
        paths = self.lake.fragments("catalog", name)
        if not paths:
            return pl.DataFrame(schema=schema)
        return self.lake.read_parquet(paths)

    def files(self) -> pl.DataFrame:
        """All file versions recorded in the lake's catalogue folder.

        A (uri, sha256) recorded more than once (an unchanged member of two versions of an
        archive) keeps its latest record, as the DuckDB catalogue's upsert does.
        """
        frame = self._records("files", FILES_SCHEMA)
        return (frame.sort("recorded_at", maintain_order=True)
                .unique(["uri", "sha256"], keep="last", maintain_order=True)
                .sort("recorded_at", "uri"))

    def columns(self) -> pl.DataFrame:
        """All inferred columns recorded in the lake's catalogue folder."""
        frame = self._records("columns", COLUMNS_SCHEMA)
        return frame.unique(["uri", "sha256", "position"], keep="last").sort(
            "uri", "position")

    def table(self, name: str) -> dict[str, Any]:
        """The Glue table definition."""
        return self.glue.get_table(DatabaseName=self.database, Name=name)["Table"]
