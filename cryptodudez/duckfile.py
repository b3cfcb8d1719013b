"""A DuckDB file that readers may hold open while a writer changes it (copy-on-write).

DuckDB lets one process write a file only while no other process has it open, even
read-only. So a writer (serialised with the other writers by an OS lock on
``<path>.lock``) copies the file, changes the copy and renames it into place. A reader
holding the old file keeps a consistent snapshot and never blocks a writer; the next
connection sees the new file. Suited to small databases written now and then (the
catalogue, the warehouse's result tables), not to a write-heavy store.

Pure standard library and DuckDB; no Dagster.
"""

import contextlib
import os
import shutil
import time
from collections.abc import Iterator

import duckdb

from cryptodudez.locks import file_lock


@contextlib.contextmanager
def writing(path: str, *, ddl: str = "", lock_timeout: float = 300.0,
            ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to a private copy of ``path``, renamed into place on success.

    ``ddl`` runs first (``CREATE TABLE IF NOT EXISTS ...``). If the body raises, the copy
    is dropped and ``path`` is unchanged.
    """
    folder, name = os.path.split(path)
    os.makedirs(folder or ".", exist_ok=True)
    with file_lock(path + ".lock", timeout=lock_timeout):
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
        if os.path.exists(path):
            shutil.copyfile(path, tmp)
        try:
            con = duckdb.connect(tmp)
            try:
                if ddl:
                    con.execute(ddl)
                yield con
                con.execute("CHECKPOINT")
            finally:
                con.close()
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            for leftover in (tmp, tmp + ".wal"):
                if os.path.exists(leftover):
                    os.unlink(leftover)


@contextlib.contextmanager
def reading(path: str, *, ddl: str = "") -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to ``path`` (created first, with ``ddl``, if missing)."""
    if not os.path.exists(path):
        with writing(path, ddl=ddl):
            pass
    con = connect_read_only(path)
    try:
        yield con
    finally:
        con.close()


def connect_read_only(path: str, *, attempts: int = 40) -> duckdb.DuckDBPyConnection:
    """A read-only connection; retried briefly while another process holds a write lock.

    Only a process that opened the file read-write outside :func:`writing` can hold it;
    after about 10 s the error names the file.
    """
    for attempt in range(attempts):
        try:
            return duckdb.connect(path, read_only=True)
        except duckdb.IOException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    raise AssertionError  # unreachable
