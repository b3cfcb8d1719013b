"""JSON-lines members: recognition by their fields and strict per-line decoding.

Pure functions of bytes: no Dagster, no lake. A JSON-lines member is text whose first
non-blank character is ``{``. Every non-blank line is one record (blank lines are not
records, as in the event lake). Each line is decoded with ``msgspec`` into the dataset's
typed struct, which refuses a wrong type (``"price": "427.9"``), an unknown or a missing
field, so a line that fails is quarantined with its line number, its text and msgspec's
reason naming the JSON path. Nothing is coerced.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import polars as pl

SAMPLE_LINES = 50  # lines whose fields decide which dataset a member is
RAW_LIMIT = 2000  # quarantined text kept per line
_BOM = b"\xef\xbb\xbf"
_KEYS = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
SEPARATOR = ","  # joins a string list's items while columns are built (never inside one)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


# What one line can raise: msgspec's own errors, UnicodeDecodeError for a string that is not
# UTF-8, RecursionError for values nested deeper than Python's recursion limit.
_LINE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError,
                RecursionError)


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid record: not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, RecursionError):
        return "invalid record: nested too deeply"
    return f"invalid record: {exc}"


def looks_like_json_lines(data: bytes) -> bool:
    """True when the first non-blank character (after a UTF-8 BOM) is ``{``."""
    head = data[:4096].removeprefix(_BOM).lstrip()
    return head.startswith(b"{")


def _lines(data: bytes) -> list[tuple[int, bytes]]:
    """``(line number, text)`` of every non-blank line (without its line terminator)."""
    body = data.removeprefix(_BOM)
    return [(i, line.rstrip(b"\r")) for i, line in enumerate(body.split(b"\n"), start=1)
            if line.strip()]


_BLANK_LINE = re.compile(rb"\n[ \t\f\v]*\n")  # literal prefix: searched at memchr speed


def _plain(data: bytes) -> bool:
    """No BOM, no carriage return and no blank line: every line is a record, numbered 1..n."""
    return (not data.startswith(_BOM) and b"\r" not in data
            and _BLANK_LINE.search(b"\n" + data.removesuffix(b"\n") + b"\n") is None)


_RAW_VALUES = msgspec.json.Decoder(list[msgspec.Raw]).decode


def _one_value_a_line(joined: bytes, lines: Sequence[bytes]) -> bool:
    """Whether the array ``joined`` (``lines`` joined by commas) holds each line as one value.

    The count alone is not enough: a record cut across two lines and two records on one
    line decode as two records from two lines, and both were applied (a reviewer). Each
    value's exact bytes must be its own line's.
    """
    try:
        values = _RAW_VALUES(joined)
    except _LINE_ERRORS:
        return False
    if len(values) != len(lines):
        return False
    # Equal lengths, in order, mean aligned values: a value can only start at or after its
    # line's start (whitespace delays it), so any shift would carry the last value past the
    # array's end. Lines with surrounding whitespace fail this and are compared byte for byte.
    if [len(value) for value in values] == [len(line) for line in lines]:
        return True
    return all(bytes(value) == line.strip() for value, line in zip(values, lines, strict=True))


def records_read(data: bytes) -> int:
    """Non-blank lines, counted in the bytes apart from any decoding."""
    if _plain(data):
        return data.removesuffix(b"\n").count(b"\n") + 1
    return sum(1 for line in data.split(b"\n") if line.strip())


def sample_fields(data: bytes) -> list[tuple[str, ...]]:
    """The sorted field names of each of the first lines that are JSON objects."""
    found = []
    for _, line in _lines(data[: 1 << 20])[:SAMPLE_LINES]:
        try:
            found.append(tuple(sorted(_KEYS(line))))
        except _LINE_ERRORS:
            continue
    return found


@dataclass
class Decoded:
    """Typed rows of well-formed lines and the lines that were not."""

    rows: pl.DataFrame  # the struct's fields + __sid, __line, __source
    rejects: pl.DataFrame  # sid, line, raw, reason
    read: list[int]  # records read per member (counted from the bytes)


_FIRST_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
_LAST_US = (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - _EPOCH) // _MICROSECOND


def _within_python_years(rows: pl.DataFrame, schema: dict[str, pl.DataType],
                         datas: Sequence[bytes],
                         ) -> tuple[pl.DataFrame, list[tuple[int, int, str, str]]]:
    """``rows`` without those whose instant in UTC is outside years 1 to 9999, and those.

    ``9999-12-31T23:59:59-01:00`` decodes (its own offset keeps it in year 9999), but in UTC
    it is year 10000: no Python datetime holds it, so the checks' failure report itself
    raised (a reviewer). Such a record is quarantined with that reason.
    """
    times = [name for name, dtype in schema.items() if isinstance(dtype, pl.Datetime)]
    if not times or rows.height == 0:
        return rows, []
    micros = [pl.col(name).dt.epoch("us") for name in times]
    # a null instant is the schema's to judge: kept here, never dropped from both sides
    outside = pl.any_horizontal([((m < _FIRST_US) | (m > _LAST_US)).fill_null(value=False)
                                 for m in micros])
    bad = rows.filter(outside)
    if bad.height == 0:
        return rows, []
    rejects = []
    split: dict[int, list[bytes]] = {}  # each member split once, only when it has such a row
    for sid, line in bad.select("__sid", "__line").iter_rows():
        lines = split.setdefault(sid, datas[sid].split(b"\n"))
        rejects.append((sid, line, line_text(lines[line - 1].removesuffix(b"\r")),
                        "invalid record: an instant outside years 1 to 9999 once in UTC"))
    return rows.filter(~outside), rejects


def line_text(line: bytes) -> str:
    """A line as quarantined text (invalid UTF-8 replaced, cut at ``RAW_LIMIT`` bytes)."""
    text = line[:RAW_LIMIT].decode("utf-8", errors="replace")
    return text if len(line) <= RAW_LIMIT else text + " …[truncated]"


def _column(name: str, values: list[Any], dtype: pl.DataType) -> pl.Series:
    """One decoded field as a polars column, without a Python object per row where avoidable.

    Lists of strings are joined and split (the struct's pattern keeps commas out of them);
    aware datetimes become exact epoch microseconds first. Other types convert directly.
    """
    if dtype == pl.List(pl.String):
        joined = pl.Series(name, [SEPARATOR.join(v) for v in values], dtype=pl.String)
        return joined.to_frame().select(
            pl.when(pl.col(name) == "").then(pl.lit([], dtype=dtype))
            .otherwise(pl.col(name).str.split(SEPARATOR))).to_series().alias(name)
    if isinstance(dtype, pl.Datetime):
        micros = [(v - _EPOCH) // _MICROSECOND for v in values]
        return pl.Series(name, micros, dtype=pl.Int64).cast(dtype)
    return pl.Series(name, values, dtype=dtype)


def decode_members(datas: Sequence[bytes], sources: Sequence[str],
                   record_type: type[msgspec.Struct],
                   schema: dict[str, pl.DataType]) -> Decoded:
    """Decode every non-blank line of every member into ``record_type``.

    A whole member is first decoded as one JSON array of records (one C call); only a member
    where that fails is decoded line by line, so every bad line is named with its reason.
    The records are then turned into columns field by field (never row by row).

    Args:
        datas: the members' bytes.
        sources: the members' URIs (``__source`` of their rows).
        record_type: the dataset's strict struct (``forbid_unknown_fields=True``). Its
            string-list fields must not allow ``SEPARATOR`` in their items.
        schema: polars dtypes of the struct's fields, in field order.
    """
    one = msgspec.json.Decoder(record_type).decode
    many = msgspec.json.Decoder(list[record_type]).decode  # type: ignore[valid-type]
    records: list[Any] = []
    sids: list[int] = []
    line_numbers: list[int] = []
    rejects: list[tuple[int, int, str, str]] = []
    read = []
    for sid, data in enumerate(datas):
        read.append(records_read(data))
        if _plain(data):  # one decode of the member as an array, no per-line Python work
            body = data.removesuffix(b"\n")
            joined = b"[" + body.replace(b"\n", b",") + b"]"
            try:
                decoded = many(joined)
            except _LINE_ERRORS:
                decoded = None
            if (decoded is not None and len(decoded) == read[-1]
                    and _one_value_a_line(joined, body.split(b"\n"))):
                records += decoded
                sids += [sid] * len(decoded)
                line_numbers += range(1, len(decoded) + 1)
                continue
        lines = _lines(data)
        joined = b"[" + b",".join(text for _, text in lines) + b"]"
        try:
            decoded = many(joined)
        except _LINE_ERRORS:
            decoded = None
        if (decoded is not None and len(decoded) == len(lines)
                and _one_value_a_line(joined, [text for _, text in lines])):
            records += decoded
            sids += [sid] * len(lines)
            line_numbers += [n for n, _ in lines]
            continue
        for n, text in lines:
            try:
                records.append(one(text))
            except _LINE_ERRORS as exc:
                rejects.append((sid, n, line_text(text), _reason(exc)))
                continue
            sids.append(sid)
            line_numbers.append(n)
    fields = record_type.__struct_fields__
    rows = pl.DataFrame([_column(name, [getattr(r, name) for r in records], dtype)
                         for name, dtype in zip(fields, schema.values(), strict=True)])
    uris = pl.Series(list(sources), dtype=pl.String)
    sid_col = pl.Series("__sid", sids, dtype=pl.Int64)
    rows = rows.with_columns(__sid=sid_col, __line=pl.Series(line_numbers, dtype=pl.Int64),
                             __source=uris.gather(sid_col))
    rows, beyond = _within_python_years(rows, schema, datas)
    rejects += beyond
    return Decoded(
        rows=rows,
        rejects=pl.DataFrame(rejects, schema={"sid": pl.Int64, "line": pl.Int64,
                                              "raw": pl.String, "reason": pl.String},
                             orient="row"),
        read=read,
    )
