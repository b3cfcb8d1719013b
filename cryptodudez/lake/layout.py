"""Where things are in the lake: its layers, raw keys, partition keys and file names.

Dagster-free and I/O-free: the one home of the lake's naming rules, shared by the CSV
engine, the event lake, the Dagster resource and the CLI.
"""

import hashlib
import posixpath
import re
from urllib.parse import quote, unquote

import polars as pl

RAW = "raw"
VALIDATED = "validated"
QUARANTINE = "quarantine"
FEATURES = "features"
STAGING = ".staging"
CATALOG_FILE = "catalog.duckdb"  # the local metastore (DuckDB), at the lake's root
"""Hidden folder at the lake's root where runs stage what they will publish:
``files/<hash>/<run>/<layer>/<table>/`` for a landed file's tables, ``events/<tag>/`` for
the event lake, ``events-compaction/`` for the Spark twin's compaction. Never read by readers; each
run clears what it staged there."""
JOB_SCRATCH = ".jobs"
"""Hidden folder under a table's folder where a Spark job writes a run's result before the
asset reads it back (``<table>/.jobs/<run id>/``); the Pulumi stack expires what a killed
run leaves there."""
# Characters Dagster does not allow in (multi-)partition keys.
_KEY_SAFE = "/ -_.()~+=@&;:'!$*#%"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def checked_raw_key(key: str) -> str:
    """``key`` when it names a file inside ``raw/``; a ``ValueError`` naming the fault if not.

    Refused: empty keys and segments, absolute paths, ``.``/``..`` segments, backslashes,
    NUL and other control characters, and hidden names (a segment starting with ``.``, which
    the lake never lists, so such a file would never be ingested). The same rules hold for a
    local and an S3 lake, so a key that is safe on one is safe on the other.
    """
    problem = raw_key_problem(key)
    if problem:
        msg = f"refusing raw key {key!r}: it {problem}"
        raise ValueError(msg)
    return key


def raw_key_problem(key: str) -> str | None:
    """Why ``key`` names no file inside ``raw/`` (see :func:`checked_raw_key`), or None."""
    problem = None
    if not key:
        problem = "is empty"
    elif _CONTROL.search(key):
        problem = "contains a control character"
    elif "\\" in key:
        problem = "contains a backslash"
    elif key.startswith("/"):
        problem = "is an absolute path"
    elif any(part in ("", ".", "..") for part in key.split("/")):
        problem = "has an empty, '.' or '..' segment"
    elif any(part.startswith(".") for part in key.split("/")):
        problem = "has a hidden segment (starting with '.'), which is never ingested"
    elif not is_utf8(key):
        problem = ("is not UTF-8 text (a name in another encoding; S3 keys and partition "
                   "keys are UTF-8): rename the file")
    return problem


def is_utf8(name: str) -> bool:
    r"""Whether ``name`` is text that UTF-8 can encode.

    A file name in another encoding reaches Python with surrogate escapes for its bytes
    (``b'caf\xe9.csv'`` is ``'caf\udce9.csv'``), which no partition key, URI or Parquet
    column can hold.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def partition_key_for(raw_key: str) -> str:
    """Dynamic partition key of a raw object (its path under ``raw/``, made key-safe)."""
    return quote(raw_key, safe=_KEY_SAFE.replace("%", ""))


def raw_key_for(partition_key: str) -> str:
    """Inverse of :func:`partition_key_for`."""
    return unquote(partition_key)


def digest(partition_key: str) -> str:
    """A stable hex digest of a partition key (names staging folders and files)."""
    return hashlib.sha256(partition_key.encode()).hexdigest()


def fragment_prefix(partition_key: str) -> str:
    """Common start of the names of the Parquet fragments a partition writes in every table."""
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in partition_key)[-80:]
    return f"part-{slug}-{digest(partition_key)[:12]}"


def of_partition(paths: list[str], partition_key: str) -> list[str]:
    """The fragments among ``paths`` that partition ``partition_key`` wrote."""
    prefix = fragment_prefix(partition_key)
    return [p for p in paths if posixpath.basename(p).startswith(prefix)]


def fragment_name(partition_key: str, part: int = 0) -> str:
    """File name of fragment number ``part`` of a partition (one per ingested batch)."""
    return f"{fragment_prefix(partition_key)}-{part:05d}.parquet"


EVENT_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")


def is_event_file(raw_key: str) -> bool:
    """True for a landed events file, False for a CSV delivery.

    Events files are JSON lines (optionally gzipped) or anything under ``events/`` (the
    event lake's landing folder).
    """
    return raw_key.startswith("events/") or raw_key.lower().endswith(EVENT_SUFFIXES)


def tag_of(path: str) -> str:
    """The commit tag a file of the event lake belongs to: ``<tag>[-g<n>[-<i>]].parquet``."""
    name = path.rsplit("/", 1)[-1].removesuffix(".parquet")
    return name.rsplit("-g", 1)[0]


def tags_of(paths: pl.Expr) -> pl.Expr:
    """:func:`tag_of` of every path in ``paths``, as one polars expression."""
    name = paths.str.extract(r"([^/]*)$", 1).str.strip_suffix(".parquet")
    return name.str.extract(r"^(.*)-g", 1).fill_null(name).alias("tag")


def tag_part(part: int | None) -> str:
    """The ``-g<n>`` suffix of part ``part`` of a tag's file (none for a single file)."""
    return "" if part is None else f"-g{part:03d}"
