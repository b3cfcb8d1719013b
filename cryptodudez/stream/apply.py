"""From a batch of stream messages to the :class:`~cryptodudez.stream.state.Delta` it applies.

A pure function of the messages and of what was applied before (no broker, no file): the
consumer calls it between a fetch and the commit, and the unit tests call it directly.

Validation is the lake's: the payloads on one subject are joined by line breaks into one member
(``nats://<stream>/<subject>``, line ``i`` is the ``i``-th message) and handed to
:func:`cryptodudez.ingest.ingest_members` with the subject's dataset, so a message is kept or
quarantined with exactly the reason a line of a landed file would get. When the engine
rejects a whole member (its first lines are not the dataset's, or it holds NUL bytes), that
subject's messages are validated again one member per message, so each gets its own reason.
Then the stream's own rules: a trade must be on its coin's subject, a tweet's subject coin
must be one it mentions, a record older than where the consumer dropped its keys (the key
horizon, :meth:`~cryptodudez.stream.state.StateStore.prune`) is too late to be checked
(quarantined), and a record key applied before under another stream sequence is a
duplicate (quarantined); under the same sequence it is a redelivery (skipped).
"""

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from cryptodudez.archives import Member, Unpacked
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.ingest import ingest_members
from cryptodudez.mood.series import bucket_start
from cryptodudez.stream.broker import SENTIMENTS, STREAM, TRADES, parse_subject
from cryptodudez.stream.state import (
    KEYS_SCHEMA,
    PRICE_AGG_SCHEMA,
    QUARANTINE_SCHEMA,
    SENTIMENT_AGG_SCHEMA,
    AppliedKeys,
    Delta,
    Key,
)

TABLE_OF_KIND = {TRADES: "coin_trades", SENTIMENTS: "tweet_sentiments"}
_SPEC = {spec.table: spec for spec in DATASETS}
_KEY_COLUMN = {TRADES: "uuid", SENTIMENTS: "sentiment_id"}


@dataclass(frozen=True)
class Message:
    """One stream message: stream sequence, subject, payload and optional lineage."""

    seq: int
    subject: str
    data: bytes
    origin: str | None = None
    published_ns: int | None = None


@dataclass
class _Validated:
    rows: dict[str, pl.DataFrame]  # kind -> the engine's valid rows + seq, subject_coin
    quarantine: list[tuple[int, str]]  # (seq, reason)


def _member_uri(stream: str, subject: str, seq: int | None = None) -> str:
    return f"nats://{stream}/{subject}" + ("" if seq is None else f"#{seq}")


def _ingest(kind: str, groups: Mapping[str, list[Message]], stream: str, *, apart: bool,
            ) -> tuple[list[pl.DataFrame], list[tuple[int, str]], set[str]]:
    """Validated rows, quarantined (seq, reason) and the subjects whose member was rejected.

    ``apart`` gives each message its own member (for subjects rejected whole before).
    """
    members: list[Member] = []
    where: list[tuple[str, int, int, str]] = []  # (uri, line, seq, subject)
    for name, messages in groups.items():
        if apart:
            for m in messages:
                uri = _member_uri(stream, name, m.seq)
                members.append(Member(uri=uri, name=name, data=m.data))
                where.append((uri, 1, m.seq, name))
        else:
            uri = _member_uri(stream, name)
            members.append(Member(uri=uri, name=name, data=b"\n".join(m.data for m in messages)))
            where += [(uri, i, m.seq, name) for i, m in enumerate(messages, start=1)]
    result = ingest_members(Unpacked(members=members), [_SPEC[TABLE_OF_KIND[kind]]])
    rejected_members = result.members.filter(pl.col("status") == "rejected")
    rejected = set() if apart else set(rejected_members["member"].to_list())
    rejected_uris = {_member_uri(stream, name) for name in rejected}
    lookup = pl.DataFrame(where, schema={"_source": pl.String, "_line": pl.Int64,
                                         "seq": pl.Int64, "subject": pl.String}, orient="row")
    rows = []
    table = result.tables.get(TABLE_OF_KIND[kind])
    if table is not None and table.height:
        rows.append(table.join(lookup, on=["_source", "_line"], how="inner"))
    quarantined: list[tuple[int, str]] = []
    seq_of = {(uri, line): seq for uri, line, seq, _ in where}
    only = {uri: seq for uri, _, seq, _ in where}  # apart: a member is one message
    for frame in result.quarantine.values():
        for source, line, reason in frame.select("source", "line", "reason").iter_rows():
            if source in rejected_uris:
                continue  # validated again, one member per message
            seq = only.get(source) if apart else seq_of.get((source, line))
            if seq is not None:
                quarantined.append((seq, reason))
    return rows, quarantined, rejected


def _validate(messages: Sequence[Message], stream: str) -> _Validated:
    groups: dict[str, dict[str, list[Message]]] = {TRADES: {}, SENTIMENTS: {}}
    quarantine: list[tuple[int, str]] = []
    for m in messages:
        try:
            kind, _ = parse_subject(m.subject)
        except ValueError as exc:
            quarantine.append((m.seq, str(exc)))
            continue
        if not m.data.strip():
            quarantine.append((m.seq, "empty message: a message carries one JSON line"))
        elif b"\n" in m.data or b"\r" in m.data:
            quarantine.append((m.seq, "a message carries one JSON line; this one holds a "
                                      "line break"))
        else:
            groups[kind].setdefault(m.subject, []).append(m)
    rows: dict[str, pl.DataFrame] = {}
    for kind, by_subject in groups.items():
        if not by_subject:
            continue
        found, bad, rejected = _ingest(kind, by_subject, stream, apart=False)
        quarantine += bad
        if rejected:
            again, bad, _ = _ingest(kind, {s: by_subject[s] for s in rejected}, stream,
                                    apart=True)
            found += again
            quarantine += bad
        if found:
            rows[kind] = pl.concat(found, how="diagonal_relaxed").with_columns(
                pl.col("subject").str.split(".").list.get(2).alias("subject_coin"))
    return _Validated(rows, quarantine)


def _stream_rule(kind: str) -> pl.Expr:
    """Why a row the engine accepted breaks the stream's routing rule (null when it does not)."""
    if kind == TRADES:
        return (pl.when(pl.col("coin") != pl.col("subject_coin"))
                .then(pl.format("a trade of {} published on subject {}", pl.col("coin"),
                                pl.col("subject"))))
    return (pl.when(~pl.col("coins").list.contains(pl.col("subject_coin")))
            .then(pl.format("a tweet about {} published on subject {}",
                            pl.col("coins").list.join(","), pl.col("subject"))))


def _aggregates(kind: str, rows: pl.DataFrame, buckets: Sequence[str]) -> pl.DataFrame:
    parts = []
    for bucket in buckets:
        keyed = rows.with_columns(pl.lit(bucket).alias("bucket"),
                                  bucket_start(bucket).dt.epoch("us").alias("bucket_start_us"))
        if kind == TRADES:
            parts.append(keyed.sort("ts", "seq").group_by(
                "coin", "bucket", "bucket_start_us").agg(
                    pl.col("price").last(), pl.col("ts").last().dt.epoch("us")
                    .alias("last_trade_us"), pl.col("seq").last().alias("last_seq"),
                    pl.len().cast(pl.Int64).alias("trades")))
        else:
            parts.append(keyed.filter(pl.col("polarity").is_not_nan()).group_by(
                "coin", "bucket", "bucket_start_us").agg(
                    pl.col("polarity").sum().alias("polarity_sum"),
                    pl.len().cast(pl.Int64).alias("tweets"),
                    pl.col("ts").max().dt.epoch("us").alias("last_tweet_us")))
    schema = PRICE_AGG_SCHEMA if kind == TRADES else SENTIMENT_AGG_SCHEMA
    return pl.concat(parts).select(list(schema)).cast(schema)  # type: ignore[arg-type]


def _instant(us: int) -> str:
    """An epoch-microsecond instant as ISO-8601 text (for the reasons of ``prepare``)."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).isoformat()


_REDELIVERY = "redelivery"  # a sentinel of _key_rule (compared by identity)


def _key_rule(key: Key, seq: int, ts_us: int, *, keys: AppliedKeys,
              taken: Mapping[Key, int], key_column: str) -> str | None:
    """Why a valid record is not applied (or :data:`_REDELIVERY`); None to apply it.

    ``taken``: the keys this batch applied already (the engine may have validated the
    batch's messages apart, so it never compared them).
    """
    before = keys.get(key)
    if before is None:
        before = taken.get(key)
    if before is None and keys.too_late(key, ts_us):
        return (f"too late: event time {_instant(ts_us)} is before "
                f"{_instant(keys.pruned_before[(key[0], key[1])])}, where this consumer "
                f"dropped its {key[0]} keys of {key[1]} (the key horizon), so it cannot be "
                "checked for a duplicate")
    if before == seq:
        return _REDELIVERY
    if before is not None:
        return (f"duplicate key ({key_column}) {key[2]}: applied before from stream "
                f"sequence {before}")
    return None


def prepare(messages: Sequence[Message], *, buckets: Sequence[str], keys: AppliedKeys,
            quarantined: Container[int], acked_through: int = 0,
            stream: str = STREAM) -> Delta:
    """The delta of one batch, given the keys applied and messages quarantined before.

    Every message ends up applied (its key in ``Delta.keys``), quarantined (with a reason)
    or skipped as a redelivery; one the engine neither keeps nor quarantines is quarantined
    as unaccounted, so nothing is lost silently.

    Args:
        messages: the batch, any order.
        buckets: the grids to aggregate on (ISO-8601 durations).
        keys: the keys of the records applied before (and where old ones were dropped).
        quarantined: stream sequences quarantined before.
        acked_through: the durable's ack floor when last read: every message at or below it
            was committed before it was acked, so a delivery of one is a redelivery.
        stream: the stream's name (for the members' URIs).
    """
    unique = {m.seq: m for m in messages}  # a sequence twice in a batch counts once
    fresh = [m for m in unique.values() if m.seq > acked_through and m.seq not in quarantined]
    skipped = len(messages) - len(fresh)
    validated = _validate(fresh, stream)
    reasons: dict[int, str] = dict(validated.quarantine)
    applied_keys: list[tuple[str, str, str, int, int]] = []
    prices = pl.DataFrame(schema=PRICE_AGG_SCHEMA)
    sentiments = pl.DataFrame(schema=SENTIMENT_AGG_SCHEMA)
    seen: set[int] = set(reasons)
    taken: dict[Key, int] = {}  # keys applied by this batch (the engine may see them apart)
    for kind, rows in validated.rows.items():
        checked = rows.with_columns(_stream_rule(kind).alias("_rule")).sort("seq")
        seen.update(checked["seq"].to_list())
        keep = []
        key_column = _KEY_COLUMN[kind]
        coin_column = "coin" if kind == TRADES else "subject_coin"
        for seq, coin, key, ts_us, rule in checked.select(
                "seq", coin_column, key_column, pl.col("ts").dt.epoch("us"),
                "_rule").iter_rows():
            k = (kind, coin, key)
            reason = rule if rule is not None else _key_rule(
                k, seq, ts_us, keys=keys, taken=taken, key_column=key_column)
            if reason is None:
                keep.append(seq)
                taken[k] = seq
                applied_keys.append((kind, coin, key, seq, ts_us))
            elif reason is _REDELIVERY:
                skipped += 1
            else:
                reasons[seq] = reason
        if not keep:
            continue
        kept = checked.filter(pl.col("seq").is_in(pl.Series(keep, dtype=pl.Int64).implode()))
        if kind == TRADES:
            prices = _aggregates(kind, kept, buckets)
        else:
            sentiments = _aggregates(kind, kept.with_columns(
                pl.col("subject_coin").alias("coin")), buckets)
    for m in fresh:
        if m.seq not in seen:
            reasons[m.seq] = "the validation returned neither a row nor a reason"
    by_seq = {m.seq: m for m in fresh}
    quarantine = pl.DataFrame(
        [(seq, by_seq[seq].subject, by_seq[seq].origin,
          by_seq[seq].data[:2000].decode("utf-8", errors="replace"), reason)
         for seq, reason in sorted(reasons.items())],
        schema=QUARANTINE_SCHEMA, orient="row")
    return Delta(prices=prices, sentiments=sentiments,
                 keys=pl.DataFrame(applied_keys, schema=KEYS_SCHEMA, orient="row"),
                 quarantine=quarantine, messages=len(messages), skipped=skipped,
                 max_seq=max((m.seq for m in messages), default=0))
