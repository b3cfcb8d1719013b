"""Exclusive locks between processes: an OS file lock locally, a lease object on S3.

Pure standard library plus the lake's fsspec filesystem; no Dagster.
"""

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any


@contextlib.contextmanager
def file_lock(path: str, *, timeout: float, poll: float = 0.05) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``, waited for up to ``timeout`` seconds.

    The kernel releases it when the holder exits, however it exits, so a killed process
    never leaves a stale lock.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+b") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    msg = f"another process held {path} for over {timeout:g} s"
                    raise TimeoutError(msg) from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def s3_lease(fs: Any, path: str, *, timeout: float, lease: float,
             poll: float = 0.5) -> Iterator[None]:
    """An exclusive lease on S3: an object created only if absent (``If-None-Match: *``).

    A holder that died leaves its object behind; one older than ``lease`` seconds is taken
    to be abandoned and removed, so ``lease`` must exceed the longest critical section.
    """
    token = uuid.uuid4().hex.encode()
    deadline = time.monotonic() + timeout
    while True:
        try:
            fs.pipe_file(path, token, mode="create")
            break
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                held_since = fs.info(path)["LastModified"]
                if (datetime.now(tz=UTC) - held_since).total_seconds() > lease:
                    fs.rm(path)
                    continue
            if time.monotonic() > deadline:
                msg = f"another process held the lease {path} for over {timeout:g} s"
                raise TimeoutError(msg) from None
            time.sleep(poll)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if fs.cat_file(path) == token:
                fs.rm(path)
