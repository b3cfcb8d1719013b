"""Publishing JSON lines to the stream: one message a line, in file order, deduplicated.

Each file (or zip member) is recognised with the lake's own registry (the fields of its
first lines), which says whether its lines are trades or tweet sentiments. Every non-blank
line becomes a message on its coin's subject (:func:`route`); a tweet is published once for
each coin it mentions. The message id (``Nats-Msg-Id``) is derived from the kind, the
subject's coin and the line's bytes, so publishing the same line again within the stream's
duplicate window is dropped by the broker (``PubAck.duplicate``), whichever file it comes
from. The ``Cryptomood-Origin`` header names the file and line, for the quarantine.

Publishing is pipelined (many messages in flight, their acks collected by one subscription),
so the publisher is not bound by one round trip per message, and every ack is still checked.
"""

import asyncio
import hashlib
import re
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from cryptodudez.datasets import jsonl
from cryptodudez.datasets.registry import recognise_fields
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.stream.broker import SENTIMENTS, STREAM, TRADES, subject

MSG_ID = "Nats-Msg-Id"
ORIGIN = "Cryptomood-Origin"
PUBLISHED_NS = "Cryptomood-Published-Ns"  # optional: wall-clock publish time, for lag
KIND_OF_TABLE = {"coin_trades": TRADES, "tweet_sentiments": SENTIMENTS}
_COIN = re.compile(r"[A-Z0-9]{2,10}")


class _Coins(msgspec.Struct):
    """The one field routing reads; everything else is the consumer's engine's business."""

    coins: list[Annotated[str, msgspec.Meta(max_length=64)]]


_ROUTE = msgspec.json.Decoder(_Coins).decode


@dataclass(frozen=True)
class Line:
    """One JSON line to publish: its origin (file and 1-based line), kind and bytes."""

    origin: str
    line: int
    kind: str
    data: bytes


@dataclass
class PublishReport:
    """What a replay published: lines read, messages sent, and those the broker dropped."""

    lines: int = 0
    messages: int = 0
    duplicates: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (origin, reason)


def header_bytes(headers: dict[str, str]) -> int:
    """The size of ``headers`` on the wire (``NATS/1.0``, a line each, a blank line)."""
    return len(b"NATS/1.0\r\n\r\n") + sum(len(k.encode()) + len(v.encode()) + 4
                                        for k, v in headers.items())


def route(kind: str, data: bytes) -> list[str | None]:
    """The coins whose subjects a line goes to; ``[None]`` for the ``_unrouted`` subject.

    A trade goes to its one coin; a tweet to each distinct coin it mentions, in order. A line
    whose ``coins`` cannot be read, or names no well-formed coin (or, for a trade, not
    exactly one), is unrouted: the consumer still validates it and quarantines it.
    """
    try:
        coins = _ROUTE(data).coins
    except (msgspec.DecodeError, msgspec.ValidationError):
        return [None]
    good = [c for c in dict.fromkeys(coins) if _COIN.fullmatch(c)]
    if kind == TRADES:
        return [good[0]] if len(coins) == 1 and good else [None]
    return list(good) or [None]


def message_id(kind: str, coin: str | None, data: bytes) -> str:
    """The dedupe id of a line on one subject: kind, coin and a 128-bit hash of the bytes."""
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return f"{kind}.{coin or '_'}.{digest}"


def _kind_of(data: bytes) -> str | None:
    spec = recognise_fields(jsonl.sample_fields(data), DATASETS)
    return None if spec is None else KIND_OF_TABLE.get(spec.table)


def _lines_of(origin: str, data: bytes, report: PublishReport) -> Iterator[Line]:
    kind = _kind_of(data)
    if kind is None:
        report.skipped.append((origin, "not CryptoMood trade or sentiment JSON lines"))
        return
    for number, raw in enumerate(data.split(b"\n"), start=1):
        text = raw.rstrip(b"\r")
        if text.strip():
            yield Line(origin, number, kind, text)


def read_lines(paths: Iterable[Path], report: PublishReport | None = None) -> Iterator[Line]:
    """Every non-blank line of the files (a zip: of its members, in archive order).

    Files and members that are not CryptoMood JSON lines are skipped (named in ``report``).
    """
    report = report if report is not None else PublishReport()
    for path in paths:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.is_dir():
                        yield from _lines_of(f"{path}!{info.filename}",
                                             archive.read(info), report)
        else:
            yield from _lines_of(str(path), path.read_bytes(), report)


def shifted(data: bytes, copy: int, span: timedelta) -> bytes:
    """Copy ``copy`` of a trade or tweet line: timestamps ``copy * span`` later, keys suffixed.

    The trade ``uuid`` gets ``-<copy>`` and the tweet ``text`` `` #<copy>`` (a tweet's key
    is derived from its text and time), so every copy's records are distinct and valid:
    synthetic streams spread over event time, for benchmarks and tests.
    """
    record = msgspec.json.decode(data)
    shift = span * copy
    for name in ("timestamp", "time_exchange"):
        if name in record:
            instant = datetime.fromisoformat(record[name]) + shift
            record[name] = instant.isoformat().replace("+00:00", "Z")
    if "uuid" in record:
        record["uuid"] = f"{record['uuid']}-{copy}"
    if "text" in record:
        record["text"] = f"{record['text']} #{copy}"
    return msgspec.json.encode(record)


class _PubAck(msgspec.Struct):
    """JetStream's reply to a publish: the stored sequence, or an error."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict[str, object] | None = None


_ACK = msgspec.json.Decoder(_PubAck).decode


async def publish_lines(nc: Client, lines: Iterable[Line], *, stream: str = STREAM,
                        window: int = 8000, ack_timeout: float = 30.0, stamp: bool = False,
                        report: PublishReport | None = None) -> PublishReport:
    """Publish every line (one message per routed subject) and check every ack.

    Messages are pipelined: up to ``window`` are in flight, each with its own reply subject
    under one inbox, and one subscription collects the acks (no future or timer per
    message). Every ack is checked (right stream, no error); duplicates are counted.

    Args:
        nc: a connected client.
        lines: the lines, in the order to publish them.
        stream: the stream every ack must come from.
        window: messages in flight before the publisher waits for acks.
        ack_timeout: seconds to wait for the acks to make room (and at the end).
        stamp: add the wall-clock publish time (``Cryptomood-Published-Ns``), for lag.
        report: a report to add to (a new one if None).

    Raises:
        TimeoutError: acks did not arrive in time.
        RuntimeError: the broker refused a message, or acked it from another stream.
    """
    report = report if report is not None else PublishReport()
    inbox = nc.new_inbox()
    in_flight = 0
    failures: list[str] = []
    room = asyncio.Event()
    settled = asyncio.Event()

    async def on_ack(msg: Msg) -> None:
        nonlocal in_flight
        in_flight -= 1
        status = msg.headers.get("Status") if msg.headers else None
        ack = _PubAck(error={"status": status}) if status else _ACK(msg.data)
        if ack.error is not None or ack.stream != stream:
            failures.append(f"{msg.subject}: {ack.error or f'stream {ack.stream!r}'}")
        elif ack.duplicate:
            report.duplicates += 1
        else:
            report.first_seq = min(report.first_seq or ack.seq, ack.seq)
            report.last_seq = max(report.last_seq or 0, ack.seq)
        if in_flight <= window // 2:
            room.set()
        if in_flight == 0:
            settled.set()

    sub = await nc.subscribe(f"{inbox}.*", cb=on_ack, pending_msgs_limit=4 * window)
    try:
        for line in lines:
            report.lines += 1
            for coin in route(line.kind, line.data):
                headers = {MSG_ID: message_id(line.kind, coin, line.data),
                           ORIGIN: f"{line.origin}:{line.line}"}
                if stamp:
                    headers[PUBLISHED_NS] = str(time.time_ns())
                if len(line.data) + header_bytes(headers) > nc.max_payload:
                    # Larger than the broker takes (it counts the headers too): named in
                    # the report, and the lines after it still go. nats-py checks the
                    # payload alone, and the server closed the connection on the rest.
                    report.skipped.append((headers[ORIGIN], (
                        f"{len(line.data):,} bytes: with its headers above the broker's "
                        f"largest message ({nc.max_payload:,} bytes)")))
                    break  # its other coins' copies are as large
                in_flight += 1  # before the publish: its ack may come during the await
                settled.clear()
                await nc.publish(subject(line.kind, coin), line.data,
                                 reply=f"{inbox}.{report.messages}", headers=headers)
                report.messages += 1
                if in_flight >= window:
                    room.clear()
                    await asyncio.wait_for(room.wait(), ack_timeout)
        await nc.flush(timeout=max(1, round(ack_timeout)))
        if in_flight:
            await asyncio.wait_for(settled.wait(), ack_timeout)
    finally:
        await sub.unsubscribe()
    if failures:
        msg = f"{len(failures)} messages refused, first: {failures[0]}"
        raise RuntimeError(msg)
    return report
