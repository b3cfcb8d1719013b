"""Opening a landed file: its members, streamed in bounded batches.

Pure functions of a readable binary file: no Dagster, no lake. A zip archive is read member
by member from the file (never whole into memory), in batches of about ``batch_bytes`` of
uncompressed data, so ingest memory is bounded by the batch size, not the archive's size.
The next batch is decompressed in a background thread while the current one is processed
(zlib releases the GIL). Members are ordered by the dataset their header names, reference
datasets first, so a table that looks up another (stock prices look up the symbol directory)
always finds the reference rows of the same archive already ingested.
"""

import functools
import hashlib
import io
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Container, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from isal import isal_zlib

from cryptodudez.datasets.csv import HEAD_BYTES, header_of, split_head
from cryptodudez.datasets.registry import DatasetSpec, recognise

BATCH_BYTES = 64 << 20
_JUNK_PREFIXES = ("__MACOSX/",)
_JUNK_NAMES = (".DS_Store", "Thumbs.db")
_PEEK_BYTES = 8192
# isal's stubs declare its error class as an instance of Exception.
_ISAL_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, _ISAL_ERROR,
               NotImplementedError, RuntimeError, struct.error)
_FILE_HEADER_MAGIC = b"PK\x03\x04"
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra length


@dataclass(frozen=True)
class Member:
    """One file to ingest: a landed file or a member of a landed archive."""

    uri: str
    name: str
    data: bytes

    @functools.cached_property
    def newlines(self) -> int:
        """How many newline bytes ``data`` holds (counted once: the ingest asks several times)."""
        return self.data.count(b"\n")


@dataclass
class Unpacked:
    """Members to ingest, plus members or whole files rejected before parsing."""

    members: list[Member] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (uri, name, reason)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (uri, name, reason)
    sha256: dict[str, str] = field(default_factory=dict)  # member uri -> sha256 of its bytes


def member_uri(file_uri: str, name: str) -> str:
    """Fsspec URL of an archive member, e.g. ``zip://stocks/A.csv::s3://lake/raw/a.zip``."""
    return f"zip://{name}::{file_uri}"


def unpack(file_uri: str, data: bytes) -> Unpacked:
    """All members of a landed file held in memory, as one batch (small files and tests)."""
    out = Unpacked()
    for batch in iter_unpacked(file_uri, io.BytesIO(data), (), batch_bytes=None):
        out.members += batch.members
        out.rejected += batch.rejected
        out.skipped += batch.skipped
        out.sha256.update(batch.sha256)
    return out


def sha256_of(fh: BinaryIO) -> str:
    """sha256 of a whole file, read in 1 MiB chunks; the file is left at its start."""
    digest = hashlib.sha256()
    fh.seek(0)
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
    fh.seek(0)
    return digest.hexdigest()


def _junk_reason(name: str) -> str | None:
    base = name.rsplit("/", 1)[-1]
    if name.startswith(_JUNK_PREFIXES) or base.startswith("._"):
        return "macOS resource fork, not data"
    if base in _JUNK_NAMES:
        return "operating-system folder metadata"
    return None


def _peek_rank(archive: zipfile.ZipFile, info: zipfile.ZipInfo,
               specs: Sequence[DatasetSpec]) -> int:
    """Ingest order of a member: reference datasets, other datasets, then everything else."""
    if _junk_reason(info.filename) or not specs:
        return 2 * len(specs)
    try:
        with archive.open(info) as fh:
            head = fh.read(_PEEK_BYTES)
            if b"\n" not in head and len(head) == _PEEK_BYTES:
                head += fh.read(HEAD_BYTES - _PEEK_BYTES)
    except _ZIP_ERRORS:
        return 2 * len(specs)
    spec = recognise(header_of(split_head(head)[0]), specs)
    if spec is None:
        return 2 * len(specs)
    position = list(specs).index(spec)
    return position if spec.reference else len(specs) + position


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, checked against its size and CRC-32 as ``ZipFile.read`` checks them.

    Deflated members are inflated by ISA-L (``isal``, half zlib's time here); stored,
    encrypted or otherwise compressed members go through ``zipfile``. Only one thread may
    read the archive at a time.
    """
    if info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & 0x1:
        return archive.read(info)
    fp = archive.fp
    assert fp is not None
    fp.seek(info.header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(fp.read(_LOCAL_HEADER.size))
    if signature != _FILE_HEADER_MAGIC:
        raise zipfile.BadZipFile("Bad magic number for file header")
    name = fp.read(name_length).decode("utf-8" if info.flag_bits & 0x800 else "cp437")
    if name != info.orig_filename:  # as zipfile refuses it
        raise zipfile.BadZipFile(f"File name in directory {info.orig_filename!r} and header "
                                 f"{name!r} differ.")
    fp.seek(extra_length, io.SEEK_CUR)
    compressed = fp.read(info.compress_size)
    if len(compressed) != info.compress_size:
        raise EOFError(f"truncated member {info.filename!r}")
    # Like zipfile, stop once the member's size is reached and let the CRC-32 judge it.
    # (max_length 0 would mean "no limit": an empty member inflates nothing.)
    data = (isal_zlib.decompressobj(-15).decompress(compressed, info.file_size)
            if info.file_size else b"")
    if len(data) != info.file_size or isal_zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    return data


def _load(archive: zipfile.ZipFile, file_uri: str,
          infos: Sequence[zipfile.ZipInfo]) -> Unpacked:
    out = Unpacked()
    for info in infos:
        uri = member_uri(file_uri, info.filename)
        if info.flag_bits & 0x1:  # zipfile's own message names a ZipInfo repr
            out.rejected.append((uri, info.filename, "encrypted archive member: it cannot be "
                                                     "read without its password"))
            continue
        try:
            data = read_member(archive, info)
        except _ZIP_ERRORS as exc:
            out.rejected.append((uri, info.filename, f"corrupt archive member: {exc}"))
            continue
        out.sha256[uri] = hashlib.sha256(data).hexdigest()
        junk = _junk_reason(info.filename)
        if junk:
            out.skipped.append((uri, info.filename, junk))
        else:
            out.members.append(Member(uri, info.filename, data))
    return out


def _batches(infos: Sequence[zipfile.ZipInfo],
             batch_bytes: int | None) -> list[list[zipfile.ZipInfo]]:
    batches: list[list[zipfile.ZipInfo]] = [[]]
    size = 0
    for info in infos:
        if batch_bytes is not None and batches[-1] and size + info.file_size > batch_bytes:
            batches.append([])
            size = 0
        batches[-1].append(info)
        size += info.file_size
    return [b for b in batches if b]


def _once_each(infos: Sequence[zipfile.ZipInfo],
               keep: Container[str]) -> list[zipfile.ZipInfo]:
    """``infos`` with each name once (its first entry), but every entry of a name in ``keep``."""
    seen: set[str] = set()
    out = []
    for info in infos:
        if info.filename in keep or info.filename not in seen:
            out.append(info)
            seen.add(info.filename)
    return out


def iter_unpacked(file_uri: str, fh: BinaryIO, specs: Sequence[DatasetSpec], *,
                  batch_bytes: int | None = BATCH_BYTES) -> Iterator[Unpacked]:
    """Batches of a landed file's members (a non-archive file is its own single member).

    Args:
        file_uri: URI of the landed file (members are named ``zip://<name>::<file_uri>``).
        fh: the landed file, opened for binary reading; it must be seekable.
        specs: datasets to order members by (reference datasets first); empty keeps the
            archive's order.
        batch_bytes: uncompressed bytes per batch (``None``: everything in one batch). A
            member larger than this is a batch of its own.

    Yields:
        ``Unpacked`` batches; a corrupt archive yields one batch that rejects it whole.
    """
    name = file_uri.rsplit("/", 1)[-1]
    magic = fh.read(2)
    fh.seek(0)
    if magic != b"PK" and not name.lower().endswith(".zip"):
        data = fh.read()
        yield Unpacked(members=[Member(file_uri, name, data)],
                       sha256={file_uri: hashlib.sha256(data).hexdigest()})
        return
    try:
        archive = zipfile.ZipFile(fh)
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except _ZIP_ERRORS as exc:
        yield Unpacked(rejected=[(file_uri, name, f"corrupt zip archive: {exc}")])
        return
    if not infos:
        yield Unpacked(rejected=[(file_uri, name, "zip archive holds no files")])
        return
    names = Counter(i.filename for i in infos)
    repeated = {k: n for k, n in names.items() if n > 1 and not _junk_reason(k)}
    if len(names) < len(infos):  # junk (``.DS_Store``, ``__MACOSX/``) is skipped once a name
        infos = _once_each(infos, keep=repeated)
    if repeated:
        # A member is known by its name (its URI, its rows' lineage): two of one name would
        # be one member whose rows overwrite each other, and which one an unzip keeps differs
        # between tools. Neither is read; the archive stays in raw/ for its sender to fix.
        yield Unpacked(rejected=[
            (member_uri(file_uri, member), member,
             f"zip archive holds {count} members named {member!r}: which one is meant is "
             "ambiguous, so none of them is read")
            for member, count in repeated.items()])
        infos = [i for i in infos if i.filename not in repeated]
        if not infos:
            return
    ranks = {i.filename: _peek_rank(archive, i, specs) for i in infos}
    ordered = sorted(infos, key=lambda i: ranks[i.filename])  # stable: archive order within
    yield from _prefetched(lambda batch: _load(archive, file_uri, batch),
                           _batches(ordered, batch_bytes))


def _prefetched(load: Callable[[list[zipfile.ZipInfo]], Unpacked],
                batches: list[list[zipfile.ZipInfo]]) -> Iterator[Unpacked]:
    """``load`` each batch, decompressing the next one while the caller works on this one."""
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="unzip") as pool:
        pending: Future[Unpacked] = pool.submit(load, batches[0])
        for nxt in batches[1:]:
            current = pending.result()
            pending = pool.submit(load, nxt)
            yield current
            del current
        yield pending.result()
