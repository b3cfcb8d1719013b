"""Which commits' files one day of the ``events`` table holds, read from its Delta log.

Dagster-free. The KPI job trusts a rollup file while its tag has live files on its day
(:mod:`cryptodudez.lake.rollups`). Loading the table with ``deltalake`` for that reads
every live file's action with its statistics, for every day of the table (at 30 compacted
days in the log, 217,876 files, the KPIs took 1.317 s with that load and 0.369 s without:
docs/events.md, session 21), paid by every KPI process, so two laptops' halves paid it
twice. This decodes only what that question needs: the newest checkpoint's ``add.path`` and
``add.partitionValues`` (the checkpoint file is fetched whole) and the JSON commits after
it, in order (a ``remove`` ends a path, an ``add`` dated the day starts one).

It is a reader for this one question, never a writer, and it declines (returns None, and
the caller loads the table with ``deltalake``) whenever the log uses anything it does not
interpret: a reader protocol above 1 (deletion vectors, column mapping, any reader
feature), a checkpoint other than one classic Parquet file (multi-part, V2, sidecars), a
gap in the commits, a log without its first commit and without a checkpoint, or a path that
is absolute or percent-encoded (paths are compared as written). It also gives way when the
log changes under it (a file it listed is gone) or holds an action it cannot decode.
``tests/integration/test_delta_log.py`` compares it with ``deltalake`` on tables built by
the engine's own ingests and compactions, before and after checkpoints.
"""

import io
import posixpath
import re
from datetime import date

import msgspec
import polars as pl

from cryptodudez.lake.layout import tag_of
from cryptodudez.storage import LakeStorage

_COMMIT = re.compile(r"^(\d{20})\.json$")
_CLASSIC_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint\.parquet$")
_ANY_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint\.")
READER_VERSION = 1
"""The highest ``minReaderVersion`` this reader interprets: plain Parquet files, partition
values under their logical names, no deletion vectors."""


class _Add(msgspec.Struct):
    path: str
    partitionValues: dict[str, str | None] = {}  # noqa: N815 - the Delta protocol's name


class _Remove(msgspec.Struct):
    path: str


class _Protocol(msgspec.Struct):
    minReaderVersion: int  # noqa: N815


class _Action(msgspec.Struct):
    add: _Add | None = None
    remove: _Remove | None = None
    protocol: _Protocol | None = None


_DECODE = msgspec.json.Decoder(_Action).decode


class _DeclinedError(Exception):
    """The log uses something this reader does not interpret; load it with deltalake."""


def live_tags_of_day(storage: LakeStorage, root: str, day: date) -> set[str] | None:
    """Tags of the files the latest version of the table at ``root`` holds on ``day``.

    None when the table has no log yet or this reader declines it (see the module's
    docstring); the caller then asks ``deltalake``.
    """
    try:
        paths = _live_paths_of_day(storage, posixpath.join(root, "_delta_log"), day)
    except (_DeclinedError, FileNotFoundError, msgspec.DecodeError, pl.exceptions.PolarsError):
        # Declined, or the log changed under the reader (a cleanup removed a file it listed)
        # or holds an action it cannot decode: deltalake's answer instead.
        return None
    return None if paths is None else {tag_of(p) for p in paths}


def _live_paths_of_day(storage: LakeStorage, log: str, day: date) -> set[str] | None:
    names = [posixpath.basename(p) for p in storage.ls(log)]
    commits = sorted(int(m[1]) for n in names if (m := _COMMIT.match(n)))
    checkpoints = [(int(m[1]), n) for n in names if (m := _ANY_CHECKPOINT.match(n))]
    if not commits and not checkpoints:
        return None
    wanted = day.isoformat()
    live: set[str] = set()
    start = 0
    if checkpoints:
        version, name = max(checkpoints)
        if not _CLASSIC_CHECKPOINT.match(name):
            raise _DeclinedError(name)
        live = _checkpoint_paths(storage.read_bytes(posixpath.join(log, name)), wanted)
        start = version + 1
    after = [v for v in commits if v >= start]
    if after != list(range(start, start + len(after))):
        raise _DeclinedError("a gap in the commits")
    for version in after:
        _apply_commit(storage.read_bytes(posixpath.join(log, f"{version:020d}.json")),
                      wanted, live)
    return live


def _checkpoint_paths(data: bytes, day: str) -> set[str]:
    """Paths of the checkpoint's live files dated ``day``; declines a protocol above 1."""
    frame = pl.scan_parquet(io.BytesIO(data))
    schema = frame.collect_schema()
    if "protocol" not in schema or "add" not in schema:
        raise _DeclinedError("a checkpoint without protocol or add actions")
    values = dict(schema["add"].to_schema()).get("partitionValues")  # type: ignore[attr-defined]
    if not isinstance(values, pl.Map):
        raise _DeclinedError(f"partition values read as {values}")
    reader = (frame.select(pl.col("protocol").struct.field("minReaderVersion")).drop_nulls()
              .collect().to_series().max())
    if not isinstance(reader, int) or reader > READER_VERSION:
        raise _DeclinedError(f"reader protocol {reader!r}")
    add = pl.col("add")
    rows = (frame.select(path=add.struct.field("path"),
                         day=add.struct.field("partitionValues").map.get("date"))
            .filter(pl.col("day") == day).collect())
    paths = rows["path"].to_list()
    for path in paths:
        _plain(path)
    return set(paths)


def _apply_commit(data: bytes, day: str, live: set[str]) -> None:
    """Apply one commit's actions to the day's live paths (a path has one action a commit)."""
    for line in data.splitlines():
        if not line.strip():
            continue
        action = _DECODE(line)
        if action.protocol is not None and action.protocol.minReaderVersion > READER_VERSION:
            raise _DeclinedError(f"reader protocol {action.protocol.minReaderVersion}")
        if action.remove is not None:
            live.discard(_plain(action.remove.path))
        if action.add is not None and action.add.partitionValues.get("date") == day:
            live.add(_plain(action.add.path))


def _plain(path: str) -> str:
    """``path``, declined unless it is relative and has no percent-encoding.

    The protocol's paths are URIs: one file may be named relative or absolute, escaped or
    not, by different writers, and readers normalise them. This reader compares them as
    written, so it only takes the plain relative form this repository's writer uses (event
    types are ``[A-Za-z0-9_.-]``, tags hex), where equal files have equal strings.
    """
    if "%" in path or ":" in path or path.startswith("/"):
        raise _DeclinedError(f"a path it does not compare as written: {path!r}")
    return path
