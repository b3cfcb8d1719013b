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
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import dagster as dg
import duckdb
import polars as pl
from polars.datatypes import DataTypeClass
from pydantic import PrivateAttr

from cryptodudez import duckfile
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
# What was ingested: the one record the landing sensor and ``cryptodudez ingest`` share.
INGESTED_SCHEMA: dict[str, Any] = {
    "partition_key": pl.String, "version": pl.String, "sha256": pl.String,
    "run_id": pl.String, "ingested_at": pl.Datetime("us", "UTC")}
# Rows of a landed file's current version that later deliveries superseded, per table: a
# ledger written when the rows are removed, so row accounting never derives it from the
# rows it is checked against.
SUPERSEDED_SCHEMA: dict[str, Any] = {
    "partition_key": pl.String, "table_name": pl.String, "rows": pl.Int64}
# Which partitions' rows are missing because a row of another partition (``winner_key``)
# won: when the winner is replaced by a new version, those partitions are ingested again
# from raw/ so "the latest delivery wins" is applied anew and their rows come back.
LOST_TO_SCHEMA: dict[str, Any] = {"partition_key": pl.String, "winner_key": pl.String}

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
CREATE TABLE IF NOT EXISTS ingested (
    partition_key VARCHAR PRIMARY KEY, version VARCHAR, sha256 VARCHAR, run_id VARCHAR,
    ingested_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS superseded (
    partition_key VARCHAR, table_name VARCHAR, rows BIGINT,
    PRIMARY KEY (partition_key, table_name)
);
CREATE TABLE IF NOT EXISTS lost_to (
    partition_key VARCHAR, winner_key VARCHAR, PRIMARY KEY (partition_key, winner_key)
);
"""


class Metastore(dg.ConfigurableResource):
    """Interface of the catalogue; assets annotate this type."""

    def record_files(self, files: pl.DataFrame, columns: pl.DataFrame) -> None:
        """Upsert file (and archive member) versions and their inferred columns."""
        raise NotImplementedError

    def register_table(self, table: str, location: str, schema: pl.Schema, *,
                       table_format: str = "parquet") -> None:
        """Create or update the catalogue entry of a validated table.

        ``table_format`` is ``parquet`` (a folder of Parquet files) or ``delta`` (a Delta
        Lake table: readers take files and schema from its log).
        """
        raise NotImplementedError

    def files(self) -> pl.DataFrame:
        """Every recorded file version."""
        raise NotImplementedError

    def record_ingested(self, partition_key: str, *, version: str, sha256: str, run_id: str,
                        own_superseded: Mapping[str, int] | None = None,
                        others_superseded: pl.DataFrame | None = None,
                        lost_to: pl.DataFrame | None = None) -> None:
        """Record that ``version`` of a landed file is ingested, and its superseded rows.

        Args:
            partition_key: the landed file's partition.
            version: its version token as listed (what the sensor and the CLI compare).
            sha256: its content hash.
            run_id: the run that ingested it.
            own_superseded: per table, rows of this version that lost to other deliveries
                (replaces the partition's ledger: a new version starts afresh); None keeps
                the ledger (an unchanged file).
            others_superseded: ``partition_key``, ``table_name``, ``rows`` removed from other
                files' fragments by this one (added to their ledgers).
            lost_to: ``partition_key``, ``winner_key``: partitions whose rows lost to
                another's (added; a new version, ``own_superseded`` not None, first forgets
                what its partition had lost to, since all its rows were resolved again).
        """
        raise NotImplementedError

    def beaten_by(self, partition_key: str) -> list[str]:
        """Other partitions recorded with rows that lost to the partition's rows (sorted)."""
        raise NotImplementedError

    def ingested_versions(self) -> dict[str, str]:
        """Partition key -> the version of the landed file last ingested."""
        raise NotImplementedError

    def superseded_rows(self, partition_key: str) -> dict[str, int]:
        """Table -> rows of the partition's current version superseded by other deliveries."""
        raise NotImplementedError

    def latest_sha(self, partition_key: str) -> str | None:
        """sha256 of the last ingested version of a landed file (None if never ingested)."""
        files = self.files()
        rows = files.filter(pl.col("partition_key") == partition_key, pl.col("member").is_null())
        if rows.height == 0:
            return None
        return rows.sort("recorded_at")["sha256"][-1]


class DuckDBMetastore(Metastore):
    """The catalogue in a local DuckDB file, readable by anyone while ingest writes.

    DuckDB lets one process write a file only while no other process has it open, even
    read-only. So the catalogue is copy-on-write: a writer (serialised with the other
    writers by an OS lock on ``<path>.lock``) copies the file, changes the copy and renames
    it into place. A reader holding the old file keeps a consistent snapshot and never
    blocks ingest; the next connection sees the new file.
    """

    path: str
    lock_timeout_seconds: float = 300.0
    """How long a writer waits for another writer (another process's ingest) to finish."""

    @contextlib.contextmanager
    def _writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with duckfile.writing(self.path, ddl=_DDL,
                              lock_timeout=self.lock_timeout_seconds) as con:
            yield con

    @contextlib.contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with duckfile.reading(self.path, ddl=_DDL) as con:
            yield con

    def record_files(self, files: pl.DataFrame, columns: pl.DataFrame) -> None:
        """Upsert rows keyed by (uri, sha256) in one transaction."""
        with self._writing() as con:
            con.execute("BEGIN")
            con.register("files_df", files.select(list(FILES_SCHEMA)))
            con.register("columns_df", columns.select(list(COLUMNS_SCHEMA)))
            con.execute("INSERT OR REPLACE INTO files SELECT * FROM files_df")
            con.execute("INSERT OR REPLACE INTO columns SELECT * FROM columns_df")
            con.execute("COMMIT")

    def register_table(self, table: str, location: str, schema: pl.Schema, *,
                       table_format: str = "parquet") -> None:
        """Record the table's location and column types."""
        cols = ", ".join(f"{name}:{dtype}" for name, dtype in schema.items())
        if table_format != "parquet":
            cols = f"{table_format}: {cols}"
        with self._writing() as con:
            con.execute(
                "INSERT OR REPLACE INTO tables VALUES (?, ?, ?, ?)",
                [table, location, cols, datetime.now(tz=UTC)],
            )

    def record_ingested(self, partition_key: str, *, version: str, sha256: str, run_id: str,
                        own_superseded: Mapping[str, int] | None = None,
                        others_superseded: pl.DataFrame | None = None,
                        lost_to: pl.DataFrame | None = None) -> None:
        """Upsert the partition's ingested version and update the superseded ledger."""
        with self._writing() as con:
            con.execute("BEGIN")
            con.execute("INSERT OR REPLACE INTO ingested VALUES (?, ?, ?, ?, ?)",
                        [partition_key, version, sha256, run_id, datetime.now(tz=UTC)])
            if own_superseded is not None:
                con.execute("DELETE FROM superseded WHERE partition_key = ?", [partition_key])
                con.execute("DELETE FROM lost_to WHERE partition_key = ?", [partition_key])
            if own_superseded:
                con.executemany("INSERT INTO superseded VALUES (?, ?, ?)",
                                [[partition_key, t, n] for t, n in own_superseded.items()])
            if others_superseded is not None and others_superseded.height:
                con.register("others_df", others_superseded.select(list(SUPERSEDED_SCHEMA)))
                con.execute(
                    "INSERT INTO superseded SELECT partition_key, table_name, sum(rows) "
                    "FROM others_df GROUP BY ALL ON CONFLICT DO UPDATE "
                    "SET rows = superseded.rows + excluded.rows")
            if lost_to is not None and lost_to.height:
                con.register("lost_df", lost_to.select(list(LOST_TO_SCHEMA)))
                con.execute("INSERT OR IGNORE INTO lost_to SELECT DISTINCT * FROM lost_df")
            con.execute("COMMIT")

    def beaten_by(self, partition_key: str) -> list[str]:
        """Partitions with rows that lost to the partition's (none in an older catalogue)."""
        with self._reading() as con:
            try:
                rows = con.execute(
                    "SELECT DISTINCT partition_key FROM lost_to WHERE winner_key = ? "
                    "AND partition_key <> ? ORDER BY 1", [partition_key, partition_key]
                ).fetchall()
            except duckdb.CatalogException:  # written before the table existed
                return []
        return [str(row[0]) for row in rows]

    def ingested_versions(self) -> dict[str, str]:
        """Partition key -> version last ingested (one query)."""
        with self._reading() as con:
            return dict(con.execute("SELECT partition_key, version FROM ingested").fetchall())

    def superseded_rows(self, partition_key: str) -> dict[str, int]:
        """Table -> superseded rows of the partition's current version."""
        with self._reading() as con:
            return dict(con.execute(
                "SELECT table_name, rows FROM superseded WHERE partition_key = ?",
                [partition_key]).fetchall())

    def files(self) -> pl.DataFrame:
        """All file versions."""
        return self._query("SELECT * FROM files ORDER BY recorded_at, uri")

    def latest_sha(self, partition_key: str) -> str | None:
        """sha256 of the last ingested version of a landed file, looked up by its key."""
        with self._reading() as con:
            row = con.execute(
                "SELECT sha256 FROM files WHERE partition_key = ? AND member IS NULL "
                "ORDER BY recorded_at DESC LIMIT 1", [partition_key]).fetchone()
        return None if row is None else str(row[0])

    def columns(self) -> pl.DataFrame:
        """All inferred columns."""
        return self._query("SELECT * FROM columns ORDER BY uri, position")

    def _query(self, sql: str) -> pl.DataFrame:
        with self._reading() as con:
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


class ForeignTableError(RuntimeError):
    """A Glue table of the same name belongs to another lake."""


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

    def register_table(self, table: str, location: str, schema: pl.Schema, *,
                       table_format: str = "parquet") -> None:
        """Create or update a Glue table over a Parquet folder or a Delta Lake table.

        A Delta table is registered the way Athena reads it natively
        (``table_type=DELTA``: files and schema come from the table's log), with its columns
        listed for people browsing the catalogue.
        """
        if table_format == "delta":
            self._upsert_table({
                "Name": table, "TableType": "EXTERNAL_TABLE",
                "Parameters": {"table_type": "DELTA", "EXTERNAL": "TRUE",
                               "spark.sql.sources.provider": "delta"},
                "StorageDescriptor": {
                    "Columns": [{"Name": glue_column_name(n), "Type": glue_type(t),
                                 "Comment": n} for n, t in schema.items()],
                    "Location": location.rstrip("/") + "/",
                },
            })
            return
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
        self._upsert_table(table_input)

    def _upsert_table(self, table_input: dict[str, Any]) -> None:
        """Create the table, or update it when it is this lake's.

        A table of the same name at another lake's location is refused: two lakes on one
        database (the default ``cryptodudez``) took turns pointing its tables at their own
        data, so Athena users of one read the other's (a QA walkthrough).
        """
        try:
            self.glue.create_table(DatabaseName=self.database, TableInput=table_input)
        except self.glue.exceptions.AlreadyExistsException:
            existing = self.glue.get_table(DatabaseName=self.database,
                                           Name=table_input["Name"])["Table"]
            where = existing.get("StorageDescriptor", {}).get("Location") or "no location"
            root = self.lake.url().rstrip("/") + "/"
            if not where.startswith(root):
                raise ForeignTableError(
                    f"Glue table {self.database}.{table_input['Name']} is at {where}, not in "
                    f"this lake ({root}): another lake uses the database; give this one its "
                    "own (CRYPTODUDEZ_GLUE_DATABASE)") from None
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

    def record_ingested(self, partition_key: str, *, version: str, sha256: str, run_id: str,
                        own_superseded: Mapping[str, int] | None = None,
                        others_superseded: pl.DataFrame | None = None,
                        lost_to: pl.DataFrame | None = None) -> None:
        """One small Parquet record per partition (``catalog/ingested/``), and its ledger.

        The ledger of each partition is its own file (``catalog/superseded/``), rewritten
        whole; ingest runs that publish are serialised by the lake's publish lock.
        """
        now = datetime.now(tz=UTC)
        record = pl.DataFrame([{"partition_key": partition_key, "version": version,
                                "sha256": sha256, "run_id": run_id, "ingested_at": now}],
                              schema=INGESTED_SCHEMA)
        self.lake.write_parquet(self._record_path("ingested", partition_key), record)
        updates: dict[str, dict[str, int]] = {}
        if own_superseded is not None:
            updates[partition_key] = dict(own_superseded)
        if others_superseded is not None:
            for key, table, rows in others_superseded.select(
                    list(SUPERSEDED_SCHEMA)).iter_rows():
                ledger = updates.setdefault(key, self.superseded_rows(key))
                ledger[table] = ledger.get(table, 0) + rows
        for key, ledger in updates.items():
            frame = pl.DataFrame(
                [(key, t, n) for t, n in ledger.items()], schema=SUPERSEDED_SCHEMA,
                orient="row")
            self.lake.write_parquet(self._record_path("superseded", key), frame)
        # What each partition lost to: one file per losing partition (``catalog/lost_to/``).
        winners: dict[str, set[str]] = {}
        if own_superseded is not None:
            winners[partition_key] = set()
        for key, winner in (lost_to.select(list(LOST_TO_SCHEMA)).iter_rows()
                            if lost_to is not None else ()):
            if key not in winners:
                winners[key] = self._lost_to(key)
            winners[key].add(winner)
        for key, keys in winners.items():
            path = self._record_path("lost_to", key)
            if keys:
                self.lake.write_parquet(path, pl.DataFrame(
                    {"partition_key": [key] * len(keys), "winner_key": sorted(keys)},
                    schema=LOST_TO_SCHEMA))
            else:
                self.lake.delete(path)

    def _lost_to(self, partition_key: str) -> set[str]:
        path = self._record_path("lost_to", partition_key)
        if not self.lake.exists(path):
            return set()
        return set(self.lake.read_parquet([path])["winner_key"].to_list())

    def beaten_by(self, partition_key: str) -> list[str]:
        """Partitions with rows that lost to the partition's (every record file read)."""
        frame = self._records("lost_to", LOST_TO_SCHEMA)
        return sorted(set(frame.filter(
            pl.col("winner_key") == partition_key,
            pl.col("partition_key") != partition_key)["partition_key"].to_list()))

    def ingested_versions(self) -> dict[str, str]:
        """Partition key -> version last ingested (every record file read once)."""
        frame = self._records("ingested", INGESTED_SCHEMA)
        return dict(frame.select("partition_key", "version").iter_rows())

    def superseded_rows(self, partition_key: str) -> dict[str, int]:
        """Table -> superseded rows of the partition's current version."""
        path = self._record_path("superseded", partition_key)
        if not self.lake.exists(path):
            return {}
        frame = self.lake.read_parquet([path])
        return dict(frame.select("table_name", "rows").iter_rows())

    def _record_path(self, name: str, partition_key: str) -> str:
        digest = hashlib.sha256(partition_key.encode()).hexdigest()[:24]
        return self.lake.path("catalog", name, f"{digest}.parquet")

    def columns(self) -> pl.DataFrame:
        """All inferred columns recorded in the lake's catalogue folder."""
        frame = self._records("columns", COLUMNS_SCHEMA)
        return frame.unique(["uri", "sha256", "position"], keep="last").sort(
            "uri", "position")

    def table(self, name: str) -> dict[str, Any]:
        """The Glue table definition."""
        return self.glue.get_table(DatabaseName=self.database, Name=name)["Table"]
