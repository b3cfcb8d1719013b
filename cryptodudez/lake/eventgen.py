"""Deterministic JSON-lines event generator with exact ground truth (library and CLI).

Writes ``events-0000.jsonl`` ... (``.jsonl.gz`` with ``gzip=True``), one event a line::

    {"data":{"id":"…","type":"product_viewed","attributes":{…}},
     "meta":{"created_at":1793491200000,"service":"service_a",…}}

and returns a :class:`GenerationReport` of exact truth counts for tests and benchmarks.

What the files hold:

* about ``types`` event types (``f"{noun}_{verb}"`` names, path-safe) with Zipf-skewed
  frequencies; about 70 % of the types carry a ``user_id`` attribute drawn from a pool of
  50,000 users; each type has its own fixed attribute set (1 to 7 fields besides ``user_id``);
* events spread over the given UTC days; the days are laid end to end and cut into one time
  window per file, and events are in time order inside each chunk of a file;
* ``late``: fresh events whose ``created_at`` lies 1 ms to 36 h before their file's window
  (the previous hour(s) or the previous day);
* ``duplicates``: lines that repeat an earlier valid line byte for byte, from the same file
  or from an earlier one;
* ``malformed``: lines of four kinds (:data:`MALFORMED_KINDS`): broken JSON, a missing
  required field, a wrong type or invalid value, a wrong shape.

A valid line is a JSON object whose ``data`` object has a non-empty string ``id``, a string
``type`` matching ``[A-Za-z0-9_.-]{1,128}`` and an object ``attributes``, and whose ``meta``
object has an integer (not boolean) ``created_at`` in epoch milliseconds within
[2000-01-01, 2100-01-01).

Output is a pure function of the arguments: the same seed and parameters give byte-identical
files (gzip headers carry no name and no time). Memory is bounded by the chunk size, plus the
truth tables (a bitset of users per day), so 20 M events stream to disk.

Usage::

    python -m cryptodudez.lake.eventgen OUT_DIR --events 2000000 --days 2026-11-01 --seed 0
"""

import argparse
import gzip as gzip_module
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl

MALFORMED_KINDS = ("broken_json", "missing_field", "wrong_type", "wrong_shape")
MIN_CREATED_AT = 946_684_800_000  # 2000-01-01T00:00:00Z, inclusive
MAX_CREATED_AT = 4_102_444_800_000  # 2100-01-01T00:00:00Z, exclusive
TYPE_CHARACTERS = "[A-Za-z0-9_.-]{1,128}"
USER_POOL = 50_000
USER_TYPE_SHARE = 0.7
ZIPF_EXPONENT = 1.1
CHUNK_LINES = 200_000
TRUTH_FILE = "truth.json"

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_CARRY_LINES = 4_096  # earlier valid lines kept for duplicates across chunks and files
_CARRY_SAMPLE = 512  # lines each chunk adds to that pool
_CATALOGUE_SEED = 20_261_101  # the type catalogue does not depend on the seed
_MAX_FIELDS = 7
_FIELD_COUNT_SHARE = (0.35, 0.3, 0.15, 0.1, 0.05, 0.03, 0.02)  # of 1 .. _MAX_FIELDS attributes
_ID_MULTIPLIER = 0x9E3779B97F4B  # odd
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

# fmt: off
_NOUNS = (
    "user", "product", "order", "cart", "payment", "session", "page", "search", "coupon",
    "review", "wishlist", "invoice", "shipment", "refund", "subscription", "account",
    "address", "email", "notification", "message", "comment", "video", "article", "ticket",
    "device", "campaign", "banner", "checkout", "login", "profile",
)
_VERBS = (
    "created", "viewed", "updated", "deleted", "clicked", "shared", "completed", "failed",
    "started", "cancelled", "opened", "closed",
)
# fmt: on


@dataclass(frozen=True)
class _Field:
    """One attribute of an event type: its JSON name, value kind and kind parameter."""

    name: str
    kind: str  # int | money | category | bool | ref
    param: Any


_FIELDS = (
    _Field("quantity", "int", 20),
    _Field("amount", "money", 100_000),
    _Field("price", "money", 50_000),
    _Field("currency", "category", ("EUR", "USD", "GBP", "JPY", "CHF")),
    _Field("country", "category", ("FR", "DE", "US", "GB", "JP", "BR", "IN", "ES")),
    _Field("city", "category", ("Paris", "Berlin", "São Paulo", "Zürich", "東京", "Lyon")),
    _Field("device", "category", ("ios", "android", "web", "desktop")),
    _Field("status", "category", ("ok", "pending", "error", "retry")),
    _Field("plan", "category", ("free", "pro", "team", "enterprise")),
    _Field("channel", "category", ("email", "push", "sms", "organic", "paid")),
    _Field("referrer", "category", ("google", "bing", "direct", "newsletter", "partner")),
    _Field("locale", "category", ("fr-FR", "en-US", "de-DE", "pt-BR", "ja-JP")),
    _Field("duration_ms", "int", 600_000),
    _Field("latency_ms", "int", 5_000),
    _Field("position", "int", 100),
    _Field("retries", "int", 5),
    _Field("is_first", "bool", None),
    _Field("success", "bool", None),
    _Field("session_id", "ref", "s"),
    _Field("product_id", "ref", "p"),
    _Field("order_id", "ref", "o"),
    _Field("score", "money", 1_000),
)


@dataclass(frozen=True)
class EventType:
    """One event type of the catalogue.

    Attributes:
        name: The ``data.type`` value (path-safe).
        weight: Probability of the type among fresh events (Zipf over the catalogue).
        has_user: Whether its attributes carry a string ``user_id``.
        service: The ``meta.service`` value of its events.
        traced: Whether its ``meta`` carries a ``trace_id``.
        fields: Its other attributes, in line order.
    """

    name: str
    weight: float
    has_user: bool
    service: str
    traced: bool
    fields: tuple[_Field, ...]


@dataclass(frozen=True)
class GenerationReport:
    """Exact truth about generated files, counted while writing them.

    Attributes:
        seed: The generator seed.
        days: The UTC days the files' windows cover.
        files: File names, in writing order (inside the output folder).
        lines_per_file: Lines written to each file.
        lines: Lines written in all.
        bytes_written: Uncompressed bytes written (newlines included).
        valid_lines: Lines that meet the required-field rules (duplicates included).
        unique_valid_ids: Distinct ``data.id`` values among valid lines.
        duplicate_lines: Valid lines repeating an earlier valid line byte for byte.
        malformed: Malformed lines per kind of :data:`MALFORMED_KINDS`.
        late_events: Unique valid events created before their file's window started.
        events_per_type_date_hour: Unique valid events per ``type``, UTC ``date`` and
            ``hour`` (columns type, date, hour, events).
        distinct_users_per_type_date: Distinct ``user_id`` values per ``type`` and UTC
            ``date`` among unique valid events (columns type, date, users).
    """

    seed: int
    days: tuple[date, ...]
    files: tuple[str, ...]
    lines_per_file: tuple[int, ...]
    lines: int
    bytes_written: int
    valid_lines: int
    unique_valid_ids: int
    duplicate_lines: int
    malformed: dict[str, int]
    late_events: int
    events_per_type_date_hour: pl.DataFrame
    distinct_users_per_type_date: pl.DataFrame

    @property
    def malformed_lines(self) -> int:
        """Malformed lines of all kinds."""
        return sum(self.malformed.values())

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (dates as ISO strings, tables as row lists)."""
        return {
            "seed": self.seed,
            "days": [day.isoformat() for day in self.days],
            "files": list(self.files),
            "lines_per_file": list(self.lines_per_file),
            "lines": self.lines,
            "bytes_written": self.bytes_written,
            "valid_lines": self.valid_lines,
            "unique_valid_ids": self.unique_valid_ids,
            "duplicate_lines": self.duplicate_lines,
            "malformed_lines": self.malformed_lines,
            "malformed": dict(self.malformed),
            "late_events": self.late_events,
            "events_per_type_date_hour": _rows(self.events_per_type_date_hour),
            "distinct_users_per_type_date": _rows(self.distinct_users_per_type_date),
        }


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows of a truth table with dates as ISO strings."""
    return frame.with_columns(pl.col("date").cast(pl.String)).to_dicts()


def type_names(count: int) -> list[str]:
    """The first ``count`` event type names, ``noun_verb`` (then ``noun_verb_2`` ...).

    Args:
        count: How many names.

    Returns:
        Distinct path-safe names, the same for every seed.
    """
    combos = [f"{noun}_{verb}" for verb in _VERBS for noun in _NOUNS]
    return [
        combos[i % len(combos)] + ("" if i < len(combos) else f"_{i // len(combos) + 1}")
        for i in range(count)
    ]


@cache
def type_catalogue(count: int) -> tuple[EventType, ...]:
    """The event types: names, Zipf weights, user share, services and attribute sets.

    Args:
        count: How many types (at least 1).

    Returns:
        The catalogue in rank order (most frequent first); it does not depend on the seed.
    """
    rng = np.random.default_rng(_CATALOGUE_SEED)
    names = type_names(count)
    order = rng.permutation(count)
    weights = 1.0 / np.arange(1, count + 1) ** ZIPF_EXPONENT
    weights /= weights.sum()
    has_user = rng.random(count) < USER_TYPE_SHARE
    services = rng.integers(0, 5, count)
    traced = rng.random(count) < 0.5
    field_counts = rng.choice(np.arange(1, _MAX_FIELDS + 1), count, p=_FIELD_COUNT_SHARE)
    return tuple(
        EventType(
            name=names[order[rank]],
            weight=float(weights[rank]),
            has_user=bool(has_user[rank]),
            service=f"service_{'abcde'[services[rank]]}",
            traced=bool(traced[rank]),
            fields=tuple(
                _FIELDS[i] for i in rng.choice(len(_FIELDS), int(field_counts[rank]), replace=False)
            ),
        )
        for rank in range(count)
    )


def _value_expr(field: _Field, column: str) -> list[pl.Expr]:
    """Pieces of the JSON text of one attribute value, from a random int64 column."""
    raw = pl.col(column)
    if field.kind == "int":
        return [(raw % field.param).cast(pl.String)]
    if field.kind == "money":
        cents = raw % field.param
        return [
            (cents // 100).cast(pl.String),
            pl.lit("."),
            (cents % 100).cast(pl.String).str.zfill(2),
        ]
    if field.kind == "category":
        names = pl.Series(values=[f'"{name}"' for name in field.param])
        return [pl.lit(names).gather(raw % len(names))]
    if field.kind == "bool":
        return [pl.when(raw % 2 == 1).then(pl.lit("true")).otherwise(pl.lit("false"))]
    return [pl.lit(f'"{field.param}'), (raw % 10**10).cast(pl.String).str.zfill(10), pl.lit('"')]


def _line_expr(event_type: EventType) -> pl.Expr:
    """The compact JSON line of events of one type, from the chunk's columns."""
    pieces: list[pl.Expr] = [
        pl.lit('{"data":{"id":"'),
        pl.col("id"),
        pl.lit(f'","type":"{event_type.name}","attributes":{{'),
    ]
    separator = ""
    if event_type.has_user:
        pieces += [pl.lit('"user_id":"u'), pl.col("user").cast(pl.String).str.zfill(6), pl.lit('"')]
        separator = ","
    for slot, field in enumerate(event_type.fields):
        pieces += [pl.lit(f'{separator}"{field.name}":'), *_value_expr(field, f"r{slot}")]
        separator = ","
    pieces += [
        pl.lit('}},"meta":{"created_at":'),
        pl.col("ts").cast(pl.String),
        pl.lit(f',"service":"{event_type.service}"'),
    ]
    if event_type.traced:
        pieces += [pl.lit(',"trace_id":"'), pl.col("trace"), pl.lit('"')]
    pieces.append(pl.lit("}}"))
    return pl.concat_str(pieces)


@cache
def _line_exprs(types: int) -> list[pl.Expr]:
    """The line expression of every type of the catalogue of ``types`` types."""
    return [_line_expr(event_type) for event_type in type_catalogue(types)]


def _hex_strings(nibbles: np.ndarray, dashes: Sequence[int]) -> pl.Series:
    """Hex strings from a (rows, digits) array of nibbles, with dashes before given digits."""
    rows, digits = nibbles.shape
    text = np.empty((rows, digits + len(dashes)), dtype=np.uint8)
    column = 0
    for position in range(digits):
        if position in dashes:
            text[:, column] = ord("-")
            column += 1
        text[:, column] = _HEX[nibbles[:, position]]
        column += 1
    return pl.Series(values=text.view(f"S{text.shape[1]}").ravel()).cast(pl.String)


def _event_ids(rng: np.random.Generator, sequence: np.ndarray) -> pl.Series:
    """UUID-like ids: 20 random hex digits, then 12 from the event's sequence number.

    The sequence part (scrambled by an odd multiplier, a bijection modulo 2**48) makes ids
    unique by construction, never by chance.
    """
    nibbles = np.empty((len(sequence), 32), dtype=np.uint8)
    nibbles[:, :20] = rng.integers(0, 16, (len(sequence), 20), dtype=np.uint8)
    nibbles[:, 12] = 4  # the UUID version digit
    scrambled = (sequence.astype(np.uint64) * np.uint64(_ID_MULTIPLIER)) & np.uint64(2**48 - 1)
    shifts = np.arange(44, -1, -4, dtype=np.uint64)
    nibbles[:, 20:] = (scrambled[:, None] >> shifts) & np.uint64(15)
    return _hex_strings(nibbles, (8, 12, 16, 20))


@dataclass(frozen=True)
class _Window:
    """A file's window on the days laid end to end (virtual milliseconds), and the days."""

    start: int
    end: int
    day_starts: np.ndarray

    def real(self, virtual: np.ndarray) -> np.ndarray:
        """Epoch milliseconds of virtual times."""
        return self.day_starts[virtual // _DAY_MS] + virtual % _DAY_MS

    @property
    def real_start(self) -> int:
        """Epoch milliseconds at which the window starts."""
        return int(self.real(np.array([self.start]))[0])


@dataclass
class _Fresh:
    """Fresh events of a chunk (valid and to-be-malformed), in slot order."""

    types: np.ndarray
    created_at: np.ndarray
    users: np.ndarray
    late: np.ndarray
    lines: list[bytes]


def _fresh_events(
    rng: np.random.Generator,
    catalogue: tuple[EventType, ...],
    line_exprs: Sequence[pl.Expr],
    count: int,
    *,
    first_sequence: int,
    window: _Window,
    span: tuple[int, int],
    late: float,
) -> _Fresh:
    """Draw and format ``count`` new events created within ``span`` (virtual ms), some late."""
    types = rng.choice(len(catalogue), count, p=[t.weight for t in catalogue])
    created = window.real(np.sort(rng.integers(span[0], max(span[1], span[0] + 1), count)))
    is_late = rng.random(count) < late
    lag = np.where(
        rng.random(count) < 2 / 3,
        rng.integers(1, 3 * _HOUR_MS, count),
        rng.integers(12 * _HOUR_MS, 36 * _HOUR_MS, count),
    )
    created = np.where(is_late, window.real_start - lag, created)
    users = rng.integers(0, USER_POOL, count)
    frame = pl.DataFrame(
        {
            "pos": np.arange(count),
            "t": types,
            "id": _event_ids(rng, np.arange(first_sequence, first_sequence + count)),
            "ts": created,
            "user": users,
            "trace": _hex_strings(rng.integers(0, 16, (count, 16), dtype=np.uint8), ()),
            **{f"r{slot}": rng.integers(0, 2**62, count) for slot in range(_MAX_FIELDS)},
        }
    )
    parts = [
        group.select("pos", line=line_exprs[key[0]])
        for key, group in frame.partition_by("t", as_dict=True).items()
    ]
    lines = pl.concat(parts).sort("pos")["line"].cast(pl.Binary).to_list() if parts else []
    return _Fresh(types=types, created_at=created, users=users, late=is_late, lines=lines)


# Malformed lines: each function turns a valid event (parsed) or its line into a bad line.


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _broken_json(line: bytes, event: dict[str, Any], pick: Callable[[int], int]) -> bytes:
    """Truncated, single-quoted, trailing comma, two objects, or invalid UTF-8."""
    variant = pick(5)
    if variant == 0:
        return line[: 1 + pick(len(line) - 1)]
    if variant == 1:
        return line.replace(b'"', b"'")
    if variant == 2:
        return line[:-1] + b",}"
    if variant == 3:
        return line + line
    return line.replace(b'"type":"', b'"type":"\xff', 1)


def _missing_field(line: bytes, event: dict[str, Any], pick: Callable[[int], int]) -> bytes:
    """Without data.id, data.type, data.attributes, meta.created_at, data or meta; empty id."""
    variant = pick(7)
    if variant < 3:
        del event["data"][("id", "type", "attributes")[variant]]
    elif variant == 3:
        del event["meta"]["created_at"]
    elif variant < 6:
        del event[("data", "meta")[variant - 4]]
    else:
        event["data"]["id"] = ""
    return _dump(event)


def _wrong_type(line: bytes, event: dict[str, Any], pick: Callable[[int], int]) -> bytes:
    """Mistyped id, type or created_at, a type that is not path-safe, created_at out of range."""
    data, meta = event["data"], event["meta"]
    created = meta["created_at"]
    variant = pick(10)
    if variant == 0:
        data["type"] = 7
    elif variant == 1:
        meta["created_at"] = str(created)
    elif variant == 2:
        meta["created_at"] = created + 0.5
    elif variant == 3:
        meta["created_at"] = True
    elif variant == 4:
        data["id"] = pick(10**9)
    elif variant == 5:
        data["id"] = None
    elif variant == 6:
        data["type"] = ("../" + data["type"], data["type"] + "/x", "user created", "")[pick(4)]
    elif variant == 7:
        data["type"] = "t" * 129
    elif variant == 8:
        meta["created_at"] = created // 1000
    else:
        meta["created_at"] = created * 1000
    return _dump(event)


def _wrong_shape(line: bytes, event: dict[str, Any], pick: Callable[[int], int]) -> bytes:
    """Make data a list or null, attributes a string or list, meta a list, an array or a scalar."""
    variant = pick(8)
    if variant == 0:
        event["data"] = [event["data"]]
    elif variant == 1:
        event["data"] = None
    elif variant == 2:
        event["data"]["attributes"] = _dump(event["data"]["attributes"]).decode()
    elif variant == 3:
        event["data"]["attributes"] = list(event["data"]["attributes"].values())
    elif variant == 4:
        event["meta"] = [event["meta"]]
    elif variant == 5:
        event["meta"] = event["meta"]["service"]
    elif variant == 6:
        return _dump([event])
    else:
        return (b"42", b'"event"', b"null", b"true")[pick(4)]
    return _dump(event)


_CORRUPTIONS = (_broken_json, _missing_field, _wrong_type, _wrong_shape)


def malformed_line(kind: str, line: bytes, rng: np.random.Generator) -> bytes:
    """A malformed line of ``kind`` made from a valid event line.

    Args:
        kind: One of :data:`MALFORMED_KINDS`.
        line: A valid event line (no newline).
        rng: Chooses the variant of the kind.

    Returns:
        The bad line (no newline); it never parses as a valid event.
    """
    corrupt = _CORRUPTIONS[MALFORMED_KINDS.index(kind)]
    return corrupt(line, json.loads(line), lambda n: int(rng.integers(n)))


class _Truth:
    """Running truth counts over unique valid events."""

    def __init__(self, catalogue: tuple[EventType, ...]) -> None:
        self.catalogue = catalogue
        self.hours: dict[int, int] = {}
        self.users: dict[int, np.ndarray] = {}
        self.late = 0
        self.words = (USER_POOL + 63) // 64
        self.has_user = np.array([t.has_user for t in catalogue])

    def add(self, types: np.ndarray, created: np.ndarray, users: np.ndarray, late: np.ndarray):
        """Count unique valid events (type indexes, epoch ms, user indexes, late flags)."""
        self.late += int(late.sum())
        keys, counts = np.unique(
            types.astype(np.int64) << 32 | created // _HOUR_MS, return_counts=True
        )
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            self.hours[key] = self.hours.get(key, 0) + count
        with_user = self.has_user[types]
        days = created // _DAY_MS
        for day in np.unique(days[with_user]).tolist():
            chosen = with_user & (days == day)
            bits = self.users.setdefault(
                day, np.zeros((len(self.catalogue), self.words), dtype=np.uint64)
            )
            word = types[chosen] * self.words + users[chosen] // 64
            np.bitwise_or.at(
                bits.reshape(-1), word, np.uint64(1) << (users[chosen] % 64).astype(np.uint64)
            )

    def hour_table(self) -> pl.DataFrame:
        """Events per type, date and hour."""
        keys = np.array(sorted(self.hours), dtype=np.int64)
        hours = keys & 0xFFFFFFFF
        return _typed_table(
            self.catalogue,
            keys >> 32,
            hours // 24,
            {
                "hour": pl.Series(hours % 24, dtype=pl.Int8),
                "events": pl.Series([self.hours[k] for k in keys.tolist()], dtype=pl.Int64),
            },
        ).sort("type", "date", "hour")

    def user_table(self) -> pl.DataFrame:
        """Distinct users per type and date (types without users or events left out)."""
        days = sorted(self.users)
        counts = [np.bitwise_count(self.users[day]).sum(axis=1) for day in days]
        types = [np.flatnonzero(c) for c in counts]
        return _typed_table(
            self.catalogue,
            np.concatenate([np.zeros(0, np.int64), *types]),
            np.concatenate(
                [
                    np.zeros(0, np.int64),
                    *[np.full(len(t), d) for t, d in zip(types, days, strict=True)],
                ]
            ),
            {
                "users": pl.Series(
                    np.concatenate(
                        [np.zeros(0, np.int64), *[c[t] for c, t in zip(counts, types, strict=True)]]
                    ),
                    dtype=pl.Int64,
                )
            },
        ).sort("type", "date")


def _typed_table(
    catalogue: tuple[EventType, ...],
    types: np.ndarray,
    days: np.ndarray,
    rest: dict[str, pl.Series],
) -> pl.DataFrame:
    """A truth table with type names and dates from type indexes and epoch day numbers."""
    names = pl.Series(values=[t.name for t in catalogue], dtype=pl.String)
    return pl.DataFrame(
        {
            "type": names.gather(pl.Series(types, dtype=pl.Int64)),
            "date": pl.Series(days, dtype=pl.Int32).cast(pl.Date),
            **rest,
        }
    )


@contextmanager
def _open(path: Path, *, compress: bool) -> Iterator[BinaryIO | gzip_module.GzipFile]:
    """A binary writer; gzip streams carry no file name and time, so output is repeatable."""
    with path.open("wb") as raw:
        if not compress:
            yield raw
            return
        with gzip_module.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1
        ) as packed:
            yield packed


def _day_starts(days: Sequence[date]) -> np.ndarray:
    """Epoch milliseconds at which each day starts (UTC)."""
    return np.array(
        [int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1000 for d in days],
        dtype=np.int64,
    )


def _check(events: int, files: int, types: int, fractions: dict[str, float]) -> None:
    """Raise ValueError on arguments the generator cannot honour."""
    if events < 1 or files < 1 or files > events:
        raise ValueError(f"need 1 <= files <= events, got events={events}, files={files}")
    if not 1 <= types <= 100_000:
        raise ValueError(f"types must be in 1..100000, got {types}")
    for name, value in fractions.items():
        if not 0.0 <= value <= 0.5:
            raise ValueError(f"{name} must be a fraction in [0, 0.5], got {value}")


class _Writer:
    """Writes the chunks of all files, drawing everything from one random generator."""

    def __init__(
        self,
        rng: np.random.Generator,
        catalogue: tuple[EventType, ...],
        fractions: dict[str, float],
    ) -> None:
        self.rng = rng
        self.catalogue = catalogue
        self.line_exprs = _line_exprs(len(catalogue))
        self.fractions = fractions
        self.truth = _Truth(catalogue)
        self.carry: list[bytes] = []
        self.sequence = 0
        self.valid = 0
        self.duplicates = 0
        self.malformed = dict.fromkeys(MALFORMED_KINDS, 0)
        self.bytes = 0

    def chunk(self, size: int, window: _Window, span: tuple[int, int]) -> bytes:
        """The text of ``size`` lines whose fresh events fall in ``span``."""
        rng, fractions = self.rng, self.fractions
        draw = rng.random(size)
        bad_share = fractions["malformed"]
        roles = np.where(
            draw < bad_share, 1, np.where(draw < bad_share + fractions["duplicates"], 2, 0)
        )
        if not self.carry:
            roles[0] = 0  # the very first line has nothing to repeat
        fresh_slots = np.flatnonzero(roles != 2)
        fresh = _fresh_events(
            rng,
            self.catalogue,
            self.line_exprs,
            len(fresh_slots),
            first_sequence=self.sequence,
            window=window,
            span=span,
            late=fractions["late"],
        )
        self.sequence += len(fresh_slots)
        bad = roles[fresh_slots] == 1
        kinds = rng.integers(0, len(MALFORMED_KINDS), int(bad.sum()))
        for position, kind in zip(np.flatnonzero(bad).tolist(), kinds.tolist(), strict=True):
            name = MALFORMED_KINDS[kind]
            fresh.lines[position] = malformed_line(name, fresh.lines[position], rng)
            self.malformed[name] += 1
        good = ~bad
        self.truth.add(
            fresh.types[good], fresh.created_at[good], fresh.users[good], fresh.late[good]
        )
        lines = self._place(roles, fresh_slots, fresh.lines, good)
        self.valid += int(good.sum())
        self._keep(fresh.lines, good)
        text = b"\n".join(lines) + b"\n"
        self.bytes += len(text)
        return text

    def _place(
        self, roles: np.ndarray, fresh_slots: np.ndarray, fresh_lines: list[bytes], good: np.ndarray
    ) -> list[bytes]:
        """Lines in slot order, each duplicate copying an earlier valid line."""
        lines: list[bytes] = [b""] * len(roles)
        for slot, line in zip(fresh_slots.tolist(), fresh_lines, strict=True):
            lines[slot] = line
        good_slots = fresh_slots[good]
        duplicate_slots = np.flatnonzero(roles == 2)
        before = np.searchsorted(good_slots, duplicate_slots)  # valid fresh lines before each
        from_carry = self.rng.random(len(duplicate_slots)) < 0.5
        choice = self.rng.random(len(duplicate_slots))
        for slot, earlier, carry, u in zip(
            duplicate_slots.tolist(),
            before.tolist(),
            from_carry.tolist(),
            choice.tolist(),
            strict=True,
        ):
            if self.carry and (carry or earlier == 0):
                lines[slot] = self.carry[int(u * len(self.carry))]
            else:
                lines[slot] = lines[int(good_slots[int(u * earlier)])]
        self.duplicates += len(duplicate_slots)
        self.valid += len(duplicate_slots)
        return lines

    def _keep(self, fresh_lines: list[bytes], good: np.ndarray) -> None:
        """Add a sample of this chunk's valid lines to the pool later chunks repeat."""
        candidates = np.flatnonzero(good)
        take = min(_CARRY_SAMPLE, len(candidates))
        picked = np.sort(self.rng.choice(candidates, take, replace=False)).tolist()
        self.carry = (self.carry + [fresh_lines[i] for i in picked])[-_CARRY_LINES:]


def generate(
    out_dir: Path,
    *,
    events: int,
    days: Sequence[date] | date,
    files: int = 1,
    seed: int = 0,
    types: int = 300,
    malformed: float = 0.01,
    duplicates: float = 0.01,
    late: float = 0.005,
    gzip: bool = False,
    chunk_lines: int = CHUNK_LINES,
) -> GenerationReport:
    """Write ``events`` lines of JSON events to ``files`` files and return the exact truth.

    Args:
        out_dir: Folder for ``events-0000.jsonl`` ... (created if missing).
        events: Lines to write in all (valid, duplicate and malformed).
        days: The UTC day(s) the events cover; files split them into consecutive windows.
        files: Number of files.
        seed: Random seed; the same arguments give byte-identical files.
        types: Number of event types.
        malformed: Share of malformed lines.
        duplicates: Share of lines repeating an earlier valid line.
        late: Share of fresh events created before their file's window.
        gzip: Write ``.jsonl.gz`` files.
        chunk_lines: Lines generated and written at a time (part of the output's identity).

    Returns:
        The truth about what was written.

    Raises:
        ValueError: On impossible arguments, or when ``out_dir`` holds other events files.
    """
    day_list = sorted({days} if isinstance(days, date) else set(days))
    fractions = {"malformed": malformed, "duplicates": duplicates, "late": late}
    _check(events, files, types, fractions)
    if not day_list or malformed + duplicates >= 1:
        raise ValueError("need at least one day and malformed + duplicates < 1")
    suffix = ".jsonl.gz" if gzip else ".jsonl"
    names = [f"events-{i:04d}{suffix}" for i in range(files)]
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = sorted(p.name for p in out_dir.glob("events-*.jsonl*") if p.name not in names)
    if stale:
        raise ValueError(f"{out_dir} holds other events files: {', '.join(stale[:3])}")
    writer = _Writer(np.random.default_rng(seed), type_catalogue(types), fractions)
    day_starts = _day_starts(day_list)
    total_ms = len(day_list) * _DAY_MS
    per_file = []
    for index, name in enumerate(names):
        window = _Window(total_ms * index // files, total_ms * (index + 1) // files, day_starts)
        count = events * (index + 1) // files - events * index // files
        with _open(out_dir / name, compress=gzip) as sink:
            for first in range(0, count, chunk_lines):
                last = min(first + chunk_lines, count)
                width = window.end - window.start
                span = (window.start + width * first // count, window.start + width * last // count)
                sink.write(writer.chunk(last - first, window, span))
        per_file.append(count)
    return GenerationReport(
        seed=seed,
        days=tuple(day_list),
        files=tuple(names),
        lines_per_file=tuple(per_file),
        lines=events,
        bytes_written=writer.bytes,
        valid_lines=writer.valid,
        unique_valid_ids=writer.valid - writer.duplicates,
        duplicate_lines=writer.duplicates,
        malformed=writer.malformed,
        late_events=writer.truth.late,
        events_per_type_date_hour=writer.truth.hour_table(),
        distinct_users_per_type_date=writer.truth.user_table(),
    )


def _parse_days(text: str) -> list[date]:
    """``2026-11-01[,2026-11-02...]`` as dates (argparse type)."""
    try:
        return [date.fromisoformat(part.strip()) for part in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not ISO dates: {text!r}") from error


def _positive(text: str) -> int:
    """A positive integer (argparse type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m cryptodudez.lake.eventgen``."""
    parser = argparse.ArgumentParser(
        prog="python -m cryptodudez.lake.eventgen",
        description="Write deterministic JSON-lines events and their truth (truth.json).",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--events", type=_positive, required=True, help="lines to write")
    parser.add_argument("--days", type=_parse_days, required=True, help="YYYY-MM-DD[,...]")
    parser.add_argument("--files", type=_positive, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--types", type=_positive, default=300)
    parser.add_argument("--malformed", type=float, default=0.01)
    parser.add_argument("--duplicates", type=float, default=0.01)
    parser.add_argument("--late", type=float, default=0.005)
    parser.add_argument("--gzip", action="store_true", help="write .jsonl.gz files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Generate events from the command line; one summary line on stdout.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code (bad arguments exit with 2 through argparse).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        report = generate(
            args.out_dir,
            events=args.events,
            days=args.days,
            files=args.files,
            seed=args.seed,
            types=args.types,
            malformed=args.malformed,
            duplicates=args.duplicates,
            late=args.late,
            gzip=args.gzip,
        )
    except ValueError as error:
        parser.error(str(error))
    seconds = time.perf_counter() - started
    truth = args.out_dir / TRUTH_FILE
    truth.write_text(json.dumps(report.to_json(), indent=1) + "\n")
    sys.stdout.write(
        f"{report.lines:,} lines in {len(report.files)} file(s), {report.bytes_written:,} bytes:"
        f" {report.unique_valid_ids:,} unique valid, {report.duplicate_lines:,} duplicate,"
        f" {report.malformed_lines:,} malformed, {report.late_events:,} late;"
        f" {seconds:.1f} s; truth in {truth}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
