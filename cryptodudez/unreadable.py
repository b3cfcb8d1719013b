"""Reading the lake's files for the CLI: a file that cannot be read is named.

A command reads many files at once (a table's fragments, a day's rollups, the Delta log);
when that read fails, :func:`reading` looks for the culprit file by file and raises a
:class:`~cryptodudez.cli.DataError` naming it and why (exit status 1), instead of the reader's
own message naming nothing (and pyarrow's ``ArrowInvalid``, a ``ValueError``, the status of a
bad argument).
"""

import contextlib
import io
import json
import posixpath
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import polars as pl
import pyarrow.parquet as pq
from deltalake.exceptions import DeltaError
from polars.exceptions import PanicException

from cryptodudez.cli import CliError, DataError, one_line
from cryptodudez.lake import kpi
from cryptodudez.lake.event_table import EventTable
from cryptodudez.resources.lake import Lake

# What a reader raises on a file it cannot read: pyarrow (ArrowInvalid is a ValueError, its
# IO errors are OSErrors), polars (ComputeError and its kin), delta-rs, and a Rust panic in
# polars (pyo3's PanicException, a BaseException).
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, pl.exceptions.PolarsError, DeltaError, PanicException)


@contextlib.contextmanager
def reading(what: str, *probes: Callable[[], str | None]) -> Iterator[None]:
    """Run the block; data it cannot read is a :class:`DataError` naming the file and why.

    The block keeps its one read of many files; only when it fails with a reader's error do
    the probes look for the culprit, reading the files one at a time, and the first file
    found is named. When none is (the error is not about one file), ``what``, the table or
    folder read, is named with the error. A user error (:class:`CliError`) or a KPI result
    that does not add up (:class:`kpi.KpiError`, one line already) passes through.
    """
    try:
        yield
    except (CliError, kpi.KpiError):
        raise
    except READ_ERRORS as exc:
        for probe in probes:
            try:
                found = probe()
            except Exception:  # the probe's own trouble (no network): the block's stands
                found = None
            if found is not None:
                raise DataError(found) from exc
        msg = f"{what}: cannot be read ({why(exc)})"
        raise DataError(msg) from exc


def why(exc: BaseException) -> str:
    """``Type: message``, on one line: why a file could not be read."""
    return f"{type(exc).__name__}: {one_line(exc)}"


def shown(lake: Lake, path: str) -> str:
    """``path`` of the lake's file system as its reader would type it (``s3://`` on S3)."""
    return f"s3://{path}" if lake.is_s3 and "://" not in path else path


def unreadable_parquet(lake: Lake, paths: Sequence[str],
                        columns: Sequence[str] | None = ()) -> str | None:
    """The first of ``paths`` that cannot be read alone: ``path: cannot be read (why)``.

    Footers first (a few bytes each); then, unless ``columns`` is empty, the data of those
    columns a file has (every column with None), file by file.
    """
    for path in paths:
        try:
            with lake.fs.open(path, "rb") as fh:
                pq.read_metadata(fh)
        except READ_ERRORS as exc:
            return f"{shown(lake, path)}: cannot be read ({why(exc)})"
    if columns is not None and not columns:
        return None
    for path in paths:
        try:
            data = lake.fs.cat_file(path)
            names = set(pq.read_schema(io.BytesIO(data)).names)
            pl.read_parquet(data, columns=None if columns is None else
                            [c for c in columns if c in names])
        except READ_ERRORS as exc:
            return f"{shown(lake, path)}: cannot be read ({why(exc)})"
    return None


def unreadable_log(lake: Lake) -> str | None:
    """The first file of the events table's Delta log that cannot be read, newest first.

    ``_last_checkpoint``, then the checkpoints, then the commits, each from the latest
    version down: the order the reader reads them in, from the latest checkpoint on.
    """
    log = posixpath.join(EventTable(lake.storage).root, "_delta_log")
    names = sorted(lake.fs.ls(log, detail=False), reverse=True)
    for path in sorted(names, key=lambda p: (not p.endswith("_last_checkpoint"),
                                             not p.endswith(".parquet"))):
        name = posixpath.basename(path)
        try:
            if name.endswith(".parquet"):
                pl.read_parquet(lake.fs.cat_file(path))
            elif name.endswith(".json") or name == "_last_checkpoint":
                for line in lake.fs.cat_file(path).splitlines():
                    if line.strip():
                        json.loads(line)
        except READ_ERRORS as exc:
            return f"{shown(lake, path)}: cannot be read ({why(exc)})"
    return None


def count_rows(lake: Lake, paths: list[str], what: str) -> int:
    """:meth:`Lake.count_rows`, a footer that cannot be read named (:class:`DataError`)."""
    with reading(what, partial(unreadable_parquet, lake, paths)):
        return lake.count_rows(paths)
