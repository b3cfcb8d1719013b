"""Deduplication by event id in memory set by the bucket size, not by the file's size.

Dagster-free. An id is kept as a 128-bit hash (two 64-bit polars hashes with different
seeds: no practical collision) with the line it came from. Ids are appended, a buffer at a
time, to one local file per range of the first hash (a *bucket*) and resolved one bucket at
a time, so the largest thing in memory is one bucket (about :data:`BUCKET_IDS` ids) or the
buffer (:data:`BUFFER_IDS` ids across all buckets), 24 bytes an id, whatever the number of
ids. Ids the table already holds are added with line :data:`HELD` (-1).

In each bucket the first occurrence of an id (lowest line) wins and an id the table holds
wins over every line, so a replayed file, an overlapping delivery or a repeat within a file
never yields a second row. What comes back is the lines to drop (8 bytes a dropped line;
a new file drops about its duplicates, a replayed one everything).
"""

import os
import tempfile
from collections.abc import Iterator
from types import TracebackType

import numpy as np
import polars as pl

KEY = np.dtype([("h0", "<u8"), ("h1", "<u8"), ("line", "<i8")])
HELD = -1
"""The line of an id the table already holds: it sorts before every line of the file."""
BUCKET_IDS = 1 << 20
"""Ids a bucket is sized for (24 MiB of keys); the bucket count is a power of two."""
BUFFER_IDS = 1 << 20
"""Ids buffered in memory, across all buckets, before they are appended to the files."""
MAX_BUCKETS = 1 << 12


def id_hashes(ids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The two 64-bit hashes of each id (seeds 0 and 1)."""
    return ids.hash(seed=0).to_numpy(), ids.hash(seed=1).to_numpy()


def buckets_for(expected_ids: int) -> int:
    """The power of two of buckets that holds ``expected_ids`` at about :data:`BUCKET_IDS`."""
    need = max(1, -(-expected_ids // BUCKET_IDS))
    return min(MAX_BUCKETS, 1 << (need - 1).bit_length())


class IdBuckets:
    """Id hashes and their lines, spilled to local files by hash range (a context manager)."""

    def __init__(self, buckets: int, folder: str | None = None) -> None:
        if buckets < 1 or buckets & (buckets - 1):
            msg = f"buckets must be a power of two, not {buckets}"
            raise ValueError(msg)
        self.buckets = buckets
        self._shift = np.uint64(64 - (buckets.bit_length() - 1)) if buckets > 1 else None
        self._own = folder is None
        self.folder = folder or tempfile.mkdtemp(prefix="cryptodudez-ids-")
        self._buffers: list[list[np.ndarray]] = [[] for _ in range(buckets)]
        self._buffered = 0

    def __enter__(self) -> "IdBuckets":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Remove the bucket files (and the folder when this object made it)."""
        for n in range(self.buckets):
            path = self._path(n)
            if os.path.exists(path):
                os.remove(path)
        if self._own and os.path.isdir(self.folder):
            os.rmdir(self.folder)

    def _path(self, n: int) -> str:
        return os.path.join(self.folder, f"b{n:04d}.keys")

    def add(self, h0: np.ndarray, h1: np.ndarray, lines: np.ndarray | int) -> None:
        """Add ids hashed as ``(h0, h1)`` from ``lines`` (one per id, or one for all)."""
        if not len(h0):
            return
        keys = np.empty(len(h0), dtype=KEY)
        keys["h0"], keys["h1"], keys["line"] = h0, h1, lines
        if self._shift is None:
            self._buffers[0].append(keys)
        else:
            which = keys["h0"] >> self._shift
            order = np.argsort(which, kind="stable")
            keys = keys[order]
            bounds = np.searchsorted(which[order], np.arange(self.buckets + 1))
            for n in np.nonzero(np.diff(bounds))[0]:
                self._buffers[n].append(keys[bounds[n]:bounds[n + 1]])
        self._buffered += len(keys)
        if self._buffered >= BUFFER_IDS:
            self.flush()

    def add_held(self, ids: pl.Series) -> None:
        """Add ids the table already holds."""
        self.add(*id_hashes(ids), HELD)

    def flush(self) -> None:
        """Append every buffer to its bucket's file."""
        for n, parts in enumerate(self._buffers):
            if parts:
                with open(self._path(n), "ab") as out:
                    for part in parts:
                        part.tofile(out)
                parts.clear()
        self._buffered = 0

    def frames(self) -> Iterator[pl.DataFrame]:
        """Each non-empty bucket as a frame of ``h0``, ``h1``, ``line``, one at a time."""
        self.flush()
        for n in range(self.buckets):
            path = self._path(n)
            if os.path.exists(path):
                keys = np.fromfile(path, dtype=KEY)
                yield pl.DataFrame({k: keys[k] for k in ("h0", "h1", "line")})
                del keys

    def dropped_lines(self) -> np.ndarray:
        """The lines not to publish, ascending.

        Every occurrence of an id but its first, and every line of an id the table holds.
        """
        dropped = [
            frame.filter((pl.col("line") >= 0)
                         & (pl.col("line") != pl.col("line").min().over("h0", "h1")))
            ["line"].to_numpy()
            for frame in self.frames()]
        return np.sort(np.concatenate(dropped)) if dropped else np.empty(0, dtype=np.int64)

    def repeats_by_origin(self) -> tuple[int, int]:
        """Ids added more than once: ``(with a line, held only)``.

        The first counts the distinct ids of which at least one copy was added with a line
        (not :data:`HELD`) and that occur more than once in all; the second, the distinct
        ids that occur more than once, every copy held.
        """
        mine = held = 0
        for frame in self.frames():
            repeated = (frame.group_by("h0", "h1")
                        .agg(mine=(pl.col("line") >= 0).any(), n=pl.len())
                        .filter(pl.col("n") > 1))
            n_mine = int(repeated["mine"].sum())
            mine += n_mine
            held += repeated.height - n_mine
        return mine, held


__all__ = ["HELD", "IdBuckets", "buckets_for", "id_hashes"]
