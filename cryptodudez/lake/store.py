"""What the table engine needs of the lake, without Dagster: the ``TableStore`` protocol.

:class:`cryptodudez.resources.lake.Lake` (the Dagster resource) satisfies the protocols here
structurally, so the engine in :mod:`cryptodudez.lake.tables` is typed against them and
never imports Dagster; a test or another runner can hand it any object with these methods.
``BackgroundWriter`` overlaps writing Parquet fragments with computing the next one.
"""

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import polars as pl


class ParquetSink(Protocol):
    """Somewhere Parquet files are written whole (atomically)."""

    def write_parquet(self, path: str, frame: pl.DataFrame) -> None:
        """Write ``frame`` as a Parquet file at ``path``."""


class TableStore(ParquetSink, Protocol):
    """A lake's tables as fragments, with a staging area per partition.

    A table is the Parquet fragments in ``<layer>/<table>/``; a partition (one landed file)
    run stages its new fragments in a hidden folder of its own, then commits them in place of
    the partition's previous ones.
    """

    def fragments(self, layer: str, table: str) -> list[str]:
        """Paths of a table's visible Parquet fragments."""

    def partition_fragments(self, layer: str, table: str, partition_key: str) -> list[str]:
        """The visible fragments a partition wrote in a table."""

    def staging_dir(self, layer: str, table: str, partition_key: str, run: str) -> str:
        """Hidden folder where run ``run``'s new fragments of a table wait to be committed."""

    def staged_runs(self, partition_key: str) -> dict[str, list[str]]:
        """Per run, the files it has in the partition's staging (one listing)."""

    def clear_staging(self, partition_key: str, runs: dict[str, list[str]]) -> None:
        """Remove ``runs``' staging of the partition (as :meth:`staged_runs` lists it)."""

    def commit_staged(self, layer: str, table: str, partition_key: str,
                      staged: Sequence[str]) -> list[str]:
        """Publish the partition's ``staged`` fragments in place of its previous ones.

        Returns:
            The paths of the fragments committed, as readers now see them.
        """

    def scan_parquet(self, paths: list[str], columns: list[str] | None = None, *,
                     file_path_column: str | None = None) -> pl.LazyFrame:
        """Parquet files as one LazyFrame (``file_path_column`` names each row's file)."""

    def read_parquet(self, paths: list[str], columns: list[str] | None = None) -> pl.DataFrame:
        """Parquet files read into one frame."""

    def read_table(self, layer: str, table: str) -> pl.DataFrame:
        """A whole table (all fragments)."""


class FragmentWriter(Protocol):
    """Writes fragments, perhaps later; ``drain`` returns once every write has finished."""

    def write(self, path: str, frame: pl.DataFrame) -> None:
        """Write (or queue) ``frame`` for ``path``."""

    def drain(self) -> None:
        """Wait for every queued write, re-raising the first failure."""


class BackgroundWriter:
    """Writes Parquet files from a background thread, at most ``max_pending`` behind.

    polars releases the GIL while it encodes Parquet, so writing one piece overlaps computing
    the next. ``drain`` waits for every pending write and re-raises the first failure.
    """

    def __init__(self, sink: ParquetSink, *, max_pending: int = 2) -> None:
        self._sink = sink
        self._max_pending = max_pending
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="parquet-writer")
        self._pending: list[Future[None]] = []

    def write(self, path: str, frame: pl.DataFrame) -> None:
        """Queue ``frame`` for ``path`` (waiting while ``max_pending`` writes are queued)."""
        self._pending.append(self._pool.submit(self._sink.write_parquet, path, frame))
        while len(self._pending) > self._max_pending:
            self._pending.pop(0).result()

    def drain(self) -> None:
        """Wait for every queued write."""
        while self._pending:
            self._pending.pop(0).result()

    def close(self) -> None:
        """Stop the thread (queued writes not yet started are cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
