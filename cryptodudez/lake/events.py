"""Domain events as JSON lines: framing, strict validation and the ``events`` row shape.

Pure functions of bytes: no Dagster, no lake. A landed events file (JSON lines, optionally
gzipped) is read in batches of whole lines (bounded memory whatever the file's size); every
non-blank line is one record, counted by the framing before anything is parsed, so "read =
valid + quarantined" is a check that a lost line can fail.

Validation is of the raw JSON structure, never of a coerced value: ``msgspec`` decodes each
line into typed structs that refuse ``"type": 7`` (a typed columnar reader would turn it into
the string ``"7"`` and make a junk partition) or ``"created_at": "1549650668000"``. A line
that fails is quarantined with its line number, its raw text and msgspec's reason, which
names the JSON path (``Expected `str`, got `int` - at `$.data.type```).
"""

import functools
import logging
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, BinaryIO

import msgspec
import polars as pl

from cryptodudez.lake.layout import EVENT_SUFFIXES

log = logging.getLogger(__name__)

BATCH_BYTES = 8 << 20
"""Bytes of lines validated at a time: small batches keep two validation processes busy to
the end of a file and bound what is in flight (docs/events.md, session 9)."""
READ_BYTES = 1 << 16  # bytes read (and, gzipped, decompressed) at a time
# meta.created_at must be epoch milliseconds between 2000-01-01 and 2100-01-01 (UTC): a
# value in seconds (1.5e9) or microseconds (1.5e15) is out of range, not silently re-scaled.
CREATED_AT_MIN = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1000)
CREATED_AT_MAX = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)
TYPE_CHARS = r"[A-Za-z0-9_.-]{1,128}"
TYPE_PATTERN = rf"^{TYPE_CHARS}$"
"""A path-safe type, for polars (Rust's regex: ``$`` is only the end of the text)."""
RESERVED_TYPE = "__HIVE_DEFAULT_PARTITION__"
"""Hive's and Delta's name of a null partition value: a type spelled so reads back as null."""
META_COLUMN_PATTERN = r"[a-z][a-z0-9_]{0,62}"  # a whole meta field name (fullmatch)
RAW_LIMIT = 64 << 10  # quarantined raw text is kept up to 64 KiB per line (cut_note says so)
GZIP_MAGIC = b"\x1f\x8b"
# Two JSON objects joined by a carriage return alone: a file with old Mac line endings.
_BARE_CR_RECORDS = re.compile(r"\}[ \t]*\r(?!\n)[ \t]*\{")
_JSON_WHITESPACE = b" \t\r\n"  # RFC 8259's four; bytes.isspace also takes \x0b and \x0c

# msgspec matches with Python's ``re.search``, where ``$`` also matches before a final
# newline: ``"click\n"`` passed and made a partition folder that Delta's log names
# ``click%0A``, after which no reader could read the table. ``\A``/``\Z`` are the text's ends;
# the lookahead refuses the reserved name.
EventType = Annotated[str, msgspec.Meta(
    pattern=rf"\A(?!{RESERVED_TYPE}\Z){TYPE_CHARS}\Z")]
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
CreatedAt = Annotated[int, msgspec.Meta(ge=CREATED_AT_MIN, lt=CREATED_AT_MAX)]


class _Data(msgspec.Struct, gc=False):  # no cycles: not tracked
    id: EventId
    type: EventType
    attributes: msgspec.Raw


class _Meta(msgspec.Struct, gc=False):  # no cycles: not tracked
    created_at: CreatedAt


class _Event(msgspec.Struct, gc=False):  # no cycles: not tracked
    data: _Data
    meta: msgspec.Raw


EVENT_ENVELOPE: tuple[str, ...] = _Event.__struct_fields__
"""The top-level fields of an event line (``data``, ``meta``)."""


_DECODE_EVENT = msgspec.json.Decoder(_Event).decode
_DECODE_META_TS = msgspec.json.Decoder(_Meta).decode
_DECODE_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode

EVENT_COLUMNS: dict[str, pl.DataType] = {
    "id": pl.String(),
    "event_type": pl.String(),
    "date": pl.Date(),
    "hour": pl.Int32(),
    "created_at": pl.Datetime("us", "UTC"),
    "user_id": pl.String(),
    "attributes": pl.String(),
    "meta": pl.String(),
    "_source": pl.String(),
    "_line": pl.Int64(),
}
"""The ``events`` table's fixed columns; ``meta_<field>`` String columns follow (one per meta
field named like ``[a-z][a-z0-9_]*``), and the landing file's lineage is added at publish."""

QUARANTINE_COLUMNS: dict[str, pl.DataType] = {
    "source": pl.String(), "line": pl.Int64(), "raw": pl.String(), "reason": pl.String(),
}


@dataclass(frozen=True)
class LineBatch:
    """Whole lines of one file as one block: line ``first_line + i`` (1-based) is ``lines[i]``.

    The lines stay one ``bytes`` object (separated by newlines, no final newline) until a
    validator splits them, so a batch reaches a worker process as one copy rather than as a
    list of a few hundred thousand small objects to pickle one by one.
    """

    first_line: int
    data: bytes

    @property
    def lines(self) -> list[bytes]:
        """The lines, split."""
        return self.data.split(b"\n")

    @property
    def end_line(self) -> int:
        """The line number after the batch's last line."""
        return self.first_line + self.data.count(b"\n") + 1


@dataclass(frozen=True)
class EventBatch:
    """One batch validated: ``records`` non-blank lines = valid rows + quarantined rows."""

    valid: pl.DataFrame
    quarantine: pl.DataFrame
    records: int


UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class Unreadable(str):
    """Why the rest of a file could not be read (the text), and which lines read are unsafe.

    ``unverified_from`` is the first line of a gzip member that turned out damaged: zlib
    notices damage where it breaks the stream or, at the latest, at the member's checksum,
    and a flipped bit before that point decodes to plausible but wrong lines. So every line
    of that member read before the damage is unverified (None: every line read is sound,
    as before a cut, since a truncated member's bytes decode exactly).
    """

    unverified_from: int | None

    def __new__(cls, reason: str, unverified_from: int | None = None) -> "Unreadable":
        """The reason's text, carrying ``unverified_from``."""
        self = super().__new__(cls, reason)
        self.unverified_from = unverified_from
        return self


def gunzip(fh: BinaryIO, chunk_bytes: int,
           on_member: Callable[[], None] | None = None) -> Iterator[bytes]:
    """The decompressed bytes of a gzip file of one or more members, as they are decoded.

    At most ``chunk_bytes`` of compressed input are read, and each piece yielded is at most
    ``chunk_bytes``, so a highly compressed file does not swell a batch. What decodes is
    yielded before an error is raised for what follows it: a damaged member (``zlib.error``,
    every byte before the damage yielded), bytes after a
    member that start no other (``EOFError``; NUL padding between or after members is
    skipped, as gzip does), or a file that ends inside a member (``EOFError``).
    ``gzip.GzipFile`` lost what it had decoded in the read that failed (up to 64 KiB of
    lines), and refused anything after padding. ``on_member`` is called as each member
    begins, before its first byte is yielded.
    """
    member = None  # the member being decoded, if one has begun
    raw = b""
    while True:
        if not raw:
            raw = fh.read(chunk_bytes)
            if not raw:
                break
        if member is None:
            raw = raw.lstrip(b"\x00")  # padding between or after members
            if not raw:
                continue
            if len(raw) < len(GZIP_MAGIC):
                raw += fh.read(chunk_bytes)
            if not raw.startswith(GZIP_MAGIC):
                msg = "bytes after a gzip member that are not gzip"
                raise EOFError(msg)
            member = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
            if on_member is not None:
                on_member()
        yield from _inflate(member, raw, chunk_bytes)
        raw = member.unused_data if member.eof else b""
        if member.eof:
            member = None
    if member is not None:
        msg = "the file ends inside a gzip member (truncated)"
        raise EOFError(msg)


def _inflate(member: "zlib._Decompress", raw: bytes, limit: int) -> Iterator[bytes]:
    """Feed ``raw`` to ``member``, yielding at most ``limit`` bytes at a time.

    zlib drops a call's whole output when it raises (a damaged block, a wrong checksum at a
    member's end): then the input is replayed from a copy taken before, one byte at a time
    (at most ``limit`` calls, on a damaged file only), and all that decodes before the damage
    is yielded (past what was already yielded) before the error is raised again.
    """
    before = member.copy()
    sent = 0
    data = raw
    try:
        while True:
            out = member.decompress(data, limit)
            if out:
                sent += len(out)
                yield out
            data = member.unconsumed_tail
            if member.eof or (not data and len(out) < limit):
                return
    except zlib.error:
        pass
    decoded = bytearray()
    try:
        for at in range(len(raw)):
            decoded += before.decompress(raw[at:at + 1])
    finally:
        if len(decoded) > sent:
            yield bytes(decoded[sent:])
    msg = "damaged gzip member"  # not reached: the replay meets the same damage
    raise zlib.error(msg)


def is_gzip(head: bytes) -> bool:
    """True when ``head`` starts like a gzip stream."""
    return head[:2] == GZIP_MAGIC


def iter_line_batches(fh: BinaryIO, *, batch_bytes: int = BATCH_BYTES,
                      ) -> Iterator[LineBatch | Unreadable]:
    """Whole lines of a (possibly gzipped) JSON-lines file, about ``batch_bytes`` at a time.

    Yields :class:`LineBatch` objects; when the stream cannot be read to its end (a truncated
    or corrupt gzip stream), every whole line before the damage is yielded, then one string,
    the reason, so the caller can quarantine the rest of the file instead of failing the
    run (an :class:`Unreadable`, which also says from which line a damaged gzip member's
    lines are unverified). A final line without a newline is a line. A UTF-8 byte order
    mark before the first line is not part of it (as in the CSV and CryptoMood readers).
    """
    batches = _line_batches(fh, batch_bytes)
    first = next(batches, None)
    if isinstance(first, LineBatch):
        first = LineBatch(first.first_line, first.data.removeprefix(UTF8_BOM))
    if first is not None:
        yield first
    yield from batches


def _line_batches(fh: BinaryIO, batch_bytes: int) -> Iterator[LineBatch | Unreadable]:
    chunk_bytes = min(batch_bytes, READ_BYTES)
    head = fh.read(2)
    fh.seek(0)
    member_first_line = 1  # the line the current gzip member starts

    def on_member() -> None:
        nonlocal member_first_line
        member_first_line = line_no + pending_lines

    chunks = (gunzip(fh, chunk_bytes, on_member) if is_gzip(head)
              else iter(functools.partial(fh.read, chunk_bytes), b""))
    head = b""
    pending = [head]
    size = len(head)
    pending_lines = 0  # newlines in pending
    line_no = 1
    while True:
        try:
            chunk = next(chunks, b"")
        except (OSError, EOFError, zlib.error) as exc:
            data = b"".join(pending)
            cut = data.rfind(b"\n")
            if cut >= 0:
                batch = LineBatch(line_no, data[:cut])
                yield batch
                line_no = batch.end_line
            damaged = isinstance(exc, zlib.error)  # not a cut: the member's bytes are wrong
            yield Unreadable(f"unreadable after line {line_no - 1}: {exc}",
                             member_first_line if damaged else None)
            return
        if chunk:
            pending.append(chunk)
            size += len(chunk)
            pending_lines += chunk.count(b"\n")
            if size < batch_bytes:
                continue
        data = b"".join(pending)
        if not chunk:  # the end: the rest, with or without a final newline
            if data:
                yield LineBatch(line_no, data.removesuffix(b"\n"))
            return
        cut = data.rfind(b"\n")
        if cut < 0:
            pending, size = [data], len(data)
            continue
        batch = LineBatch(line_no, data[:cut])
        yield batch
        line_no = batch.end_line
        rest = data[cut + 1:]
        pending, size, pending_lines = [rest], len(rest), 0


def _reason(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, RecursionError):
        return "malformed JSON: nested too deeply"
    if isinstance(exc, msgspec.ValidationError):
        return f"invalid event: {text}"
    if isinstance(exc, UnicodeDecodeError):
        return f"malformed JSON: not UTF-8 text ({exc.reason} at byte {exc.start})"
    return f"malformed JSON: {text}"


def _created_at(meta: bytes) -> int:
    """``meta.created_at`` of a meta object, errors naming their path under ``$.meta``."""
    try:
        return _DECODE_META_TS(meta).created_at
    except msgspec.ValidationError as exc:
        text = str(exc).replace("- at `$", "- at `$.meta")
        if "- at `" not in text:
            text += " - at `$.meta`"
        raise msgspec.ValidationError(text) from exc


# msgspec raises RecursionError for values nested deeper than Python's recursion limit.
_LINE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError,
                RecursionError)


def _looks_like_csv(text: str) -> bool:
    """A line that is no JSON value but a comma-separated row of names or values."""
    stripped = text.strip()
    return "," in stripped and not stripped.startswith(("{", "["))


def raw_text(line: bytes) -> str:
    """A quarantined line's text: its first :data:`RAW_LIMIT` bytes (see :func:`cut_note`)."""
    return line[:RAW_LIMIT].decode("utf-8", errors="replace")


def cut_note(line: bytes) -> str:
    """What a reason adds when :func:`raw_text` keeps only the start of ``line``."""
    return (f" (raw keeps the first {RAW_LIMIT:,} of the line's {len(line):,} bytes)"
            if len(line) > RAW_LIMIT else "")


def validate_lines(batch: LineBatch, *, source: str) -> EventBatch:
    """Validate every non-blank line of ``batch``; one row per valid event, per reject.

    Blank (whitespace-only) lines are framing, not records. Valid rows carry the event's
    columns (see :data:`EVENT_COLUMNS`) plus ``meta_<field>`` columns; quarantined rows carry
    ``source``, ``line``, ``raw`` and ``reason``. Only the four required fields are decoded
    per line (in C, by msgspec); everything else is set-at-a-time polars on the valid rows.
    """
    ids: list[str] = []
    types: list[str] = []
    created: list[int] = []
    attributes: list[bytes] = []
    metas: list[bytes] = []
    line_nos: list[int] = []
    bad_lines: list[int] = []
    bad_raw: list[str] = []
    reasons: list[str] = []
    records = 0
    # The loop runs once per line: its names are bound locally (it is most of the time).
    decode, created_at, errors = _DECODE_EVENT, _created_at, _LINE_ERRORS
    add_id, add_type, add_created = ids.append, types.append, created.append
    add_attributes, add_meta, add_line = attributes.append, metas.append, line_nos.append
    for line_no, line in enumerate(batch.lines, batch.first_line):
        if not line or (line.isspace() and not line.strip(_JSON_WHITESPACE)):
            continue  # blank (a form feed or vertical tab is no JSON whitespace: quarantined)
        records += 1
        try:
            event = decode(line)
            data = event.data
            attrs, meta = bytes(data.attributes), bytes(event.meta)
            if attrs[:1] != b"{":
                raise msgspec.ValidationError("Expected `object` - at `$.data.attributes`")
            if meta[:1] != b"{":
                raise msgspec.ValidationError("Expected `object` - at `$.meta`")
            add_created(created_at(meta))
        except errors as exc:
            bad_lines.append(line_no)
            bad_raw.append(raw_text(line))
            reasons.append(_reason(exc) + cut_note(line))
            continue
        add_id(data.id)
        add_type(data.type)
        add_attributes(attrs)
        add_meta(meta)
        add_line(line_no)
    if bad_lines[:1] == [1] and batch.data[:2] in UTF16_BOMS:
        reasons[0] += ("; the file starts with a UTF-16 byte order mark: event files must be "
                       "UTF-8 (its other lines are cut at the wrong bytes, so they fail too)")
    elif bad_lines[:1] == [1] and _looks_like_csv(bad_raw[0]):
        reasons[0] += ("; this first line looks like a CSV header: a CSV file landed where "
                       f"events go (named {', '.join(EVENT_SUFFIXES)}, or under events/)?")
    elif bad_lines[:1] == [1] and _BARE_CR_RECORDS.search(bad_raw[0]):
        reasons[0] += ("; this line holds records separated by a bare carriage return (old "
                       "Mac line endings): lines end in \n or \r\n, so the file was read as "
                       "one line; its raw/ file is kept as delivered")
    valid = pl.DataFrame({
        "id": pl.Series(ids, dtype=pl.String),
        "event_type": pl.Series(types, dtype=pl.String),
        "created_at": pl.Series(created, dtype=pl.Int64).cast(pl.Datetime("ms", "UTC"))
        .cast(pl.Datetime("us", "UTC")),
        "attributes": pl.Series(attributes, dtype=pl.Binary),
        "meta": pl.Series(metas, dtype=pl.Binary),
        "_line": pl.Series(line_nos, dtype=pl.Int64),
    })
    # msgspec checked these are whole JSON objects, but not the UTF-8 of their strings (a Raw
    # value is skipped over); the cast to text does, for the whole batch at once.
    try:
        valid = valid.with_columns(pl.col("attributes", "meta").cast(pl.String))
    except pl.exceptions.ComputeError:
        valid = _quarantine_not_utf8(valid, batch, bad_lines, bad_raw, reasons)
    valid = valid.with_columns(
        date=pl.col("created_at").dt.date(),
        hour=pl.col("created_at").dt.hour().cast(pl.Int32),
        _source=pl.lit(source, dtype=pl.String),
    )
    valid = valid.with_columns(_user_id(valid["attributes"]))
    quarantine = pl.DataFrame({
        "source": pl.Series([source] * len(bad_lines), dtype=pl.String),
        "line": pl.Series(bad_lines, dtype=pl.Int64),
        "raw": pl.Series(bad_raw, dtype=pl.String),
        "reason": pl.Series(reasons, dtype=pl.String),
    }).sort("line")
    return EventBatch(_with_meta_columns(valid), quarantine, records)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _quarantine_not_utf8(valid: pl.DataFrame, batch: LineBatch, bad_lines: list[int],
                         bad_raw: list[str], reasons: list[str]) -> pl.DataFrame:
    """``valid`` without the rows whose attributes or meta are not UTF-8, appended to the rest.

    Only called when a batch's cast to text failed, so the check per row is the rare path.
    """
    lines = batch.lines
    keep = []
    for line_no, attrs, meta in valid.select("_line", "attributes", "meta").iter_rows():
        where = ("$.data.attributes" if not _is_utf8(attrs)
                 else "$.meta" if not _is_utf8(meta) else None)
        keep.append(where is None)
        if where is not None:
            bad_lines.append(line_no)
            bad_raw.append(raw_text(lines[line_no - batch.first_line]))
            reasons.append(f"malformed JSON: not UTF-8 text (in `{where}`)"
                           + cut_note(lines[line_no - batch.first_line]))
    return valid.filter(pl.Series(keep, dtype=pl.Boolean)).with_columns(
        pl.col("attributes", "meta").cast(pl.String))


def _user_id(attributes: pl.Series) -> pl.Series:
    """``attributes.user_id`` when it is a JSON string (numbers and objects are not user ids).

    The raw JSON text of the value is matched, not a coerced value: ``"user_id": 7`` gives
    null, never ``"7"``. Only the top-level key counts (see :func:`top_level_field`).
    """
    return top_level_field(attributes, "user_id", strings_only=True).alias("user_id")


def nested(texts: pl.Series) -> pl.Series:
    """Rows with anything nested: a second ``{`` or a ``[``.

    Even inside a string (the test is conservative). There a literal match of
    ``"name": "..."`` could be a nested key.
    """
    return texts.str.count_matches(r"[\[{]") > 1  # every text starts with {


def top_level_field(texts: pl.Series, name: str, *, strings_only: bool,
                    risky: tuple[pl.Series, pl.Series] | None = None) -> pl.Series:
    r"""The top-level field ``name`` of each JSON object text, as text (null when absent).

    A string value is decoded; a JSON ``null`` is null; any other value is its JSON text
    exactly as written (or null with ``strings_only``). Plain rows take a literal match
    (set-at-a-time); the rest is decoded row by row by msgspec: rows that mention the key
    and hold a non-string value, something nested or the key twice (the last counts), and
    rows with a ``\u`` escape (a key may be spelled with one). So a nested
    ``{"ctx": {"name": ...}}``, a repeated key or an escaped key name never gives a wrong
    value. ``risky`` is (:func:`nested`, has a ``\u``) of ``texts`` when the caller has
    them (computed once for all of a text's fields).
    """
    nested_rows, escaped = risky if risky is not None else (
        nested(texts), texts.str.contains("\\u", literal=True))
    plain = texts.str.extract(rf'"{name}"\s*:\s*"([^"\\]*)"', 1)
    mentions = texts.str.contains(f'"{name}"', literal=True)
    # An escaped quote anywhere (`{"note\"user_id": "x"}`) can make a key's text appear
    # inside another string, where the literal match would take it for the key.
    slow = (escaped | (mentions & (plain.is_null() | nested_rows
                                   | texts.str.contains('\\"', literal=True)
                                   | texts.str.contains(rf'"{name}"[\s\S]*"{name}"')))
            ).fill_null(value=False)
    if not slow.any():
        return plain
    where = slow.arg_true()
    values: list[str | None] = []
    for text in texts.gather(where).to_list():
        raw = _DECODE_TOP(text.encode()).get(name)
        value = None if raw is None else bytes(raw)
        if value is not None and value[:1] == b'"':
            values.append(msgspec.json.decode(value, type=str))
        else:
            values.append(None if strings_only or value in (None, b"null")
                          else value.decode())
    return plain.scatter(where, pl.Series(values, dtype=pl.String))


def _with_meta_columns(valid: pl.DataFrame) -> pl.DataFrame:
    """``valid`` with a String ``meta_<field>`` column per column-safe ``meta`` field.

    Every field besides ``created_at`` whose name is column-safe gets a column; every field
    also stays in the ``meta`` text. Strings are kept as they are; other values as their JSON text.
    """
    fixed = valid.select(*EVENT_COLUMNS)
    meta = valid["meta"]
    several = meta.str.count_matches(":") > 1
    if not several.any():
        return fixed
    risky = (nested(meta), meta.str.contains("\\u", literal=True))
    # The key set of a flat object: every "key": value pair's value made 0, so that rows
    # with the same keys give one text to decode. A ':' inside a key or a string value must
    # never be taken for a separator (session 23: `"trace:"` swallowed the next key). With
    # no escape in the text and no key starting with ':', a '"' followed by ':' is always a
    # key's closing quote, so the match starts there (as fast as a bare ':'); the other
    # rows match whole "key": value pairs (about 4x slower; such rows are rare). Nested
    # values would break either, so those rows are decoded one by one. Keys only
    # (``msgspec.Raw`` values): a number too large for a float, such as 1e999, is valid
    # JSON and must not fail here.
    flat = meta.filter(several & ~risky[0])
    odd = flat.str.contains(r'\\|[{,]\s*"\s*:')
    shapes = pl.concat([flat.filter(~odd).str.replace_all(rf'"\s*:\s*{_JSON_VALUE}', '":0'),
                        flat.filter(odd).str.replace_all(
                            rf'({_JSON_STRING})\s*:\s*{_JSON_VALUE}', "${1}:0")]).unique()
    keys: set[str] = set()
    for text in (*shapes.to_list(), *meta.filter(several & risky[0]).to_list()):
        try:
            keys.update(_DECODE_TOP(text.encode()))
        except msgspec.DecodeError:  # the validator decoded the line: not expected
            log.warning("meta %.200r: its keys could not be read; no meta_ columns from it",
                        text)
    names = sorted(k for k in keys if k != "created_at" and _META_NAME.fullmatch(k))
    return fixed.with_columns(_meta_field(meta, name, risky) for name in names)


def _meta_field(meta: pl.Series, name: str,
                risky: tuple[pl.Series, pl.Series]) -> pl.Series:
    """``meta.<name>`` as text: a string decoded, any other value its JSON text as written."""
    return top_level_field(meta, name, strings_only=False, risky=risky).alias(f"meta_{name}")


_META_NAME = re.compile(META_COLUMN_PATTERN)
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
_JSON_VALUE = rf'(?:{_JSON_STRING}|[^,{{}}\[\]"]+)'  # a string or a scalar, not nested


def file_reject(source: str, reason: str) -> pl.DataFrame:
    """A quarantine row for a whole file (or the rest of it) that could not be read."""
    return pl.DataFrame({"source": [source], "line": [None], "raw": [None], "reason": [reason]},
                        schema=QUARANTINE_COLUMNS)
