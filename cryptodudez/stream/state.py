"""The consumer's state: per-(coin, bucket) aggregates, applied keys and quarantine, in DuckDB.

One DuckDB file per consumer (per partition when the stream is split by coin). A batch of
messages is applied in one transaction: the aggregates are merged (``INSERT ... ON CONFLICT
DO UPDATE``), the keys of the applied records, the quarantined messages and the progress row
(highest stream sequence applied) are written, then the transaction commits; the consumer
acks the batch only after that. Every merge is commutative (last price by ``(ts, stream
sequence)``, sums, counts, maxima), so the state does not depend on delivery order.

Idempotence is by record key, checked against the keys already applied: a redelivered
message (same key, same stream sequence) is skipped; the same record under another stream
sequence (republished after the broker's dedupe window) is quarantined as a duplicate key,
as the lake quarantines a repeated key. The keys live in the file and, for speed, in memory
(loaded on open).

The keys are kept for a horizon of event time (``key_horizon``, ten minutes by default), not
forever: :meth:`StateStore.prune` drops, from memory and the file in one transaction, the keys
of records older than their part's newest event time (its kind and coin; capped by the wall
clock) minus the horizon, but only those whose messages the broker reports acked (at or
below the durable's ack floor), because an unacked message may still be redelivered and must
then be recognised. A record older than the newest key its part dropped can no longer be
checked for a duplicate: it is quarantined as too late, not applied blindly. So memory and
the key table grow with the event rate times the horizon, not with the length of the stream.

Timestamps are stored as microseconds since the epoch (UTC), exactly as polars holds them.
"""

import functools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Self

import duckdb
import polars as pl

from cryptodudez.mood.series import parse_bucket, price_series

_UTC = pl.Datetime("us", "UTC")
_DDL = (
    """CREATE TABLE IF NOT EXISTS progress (
        consumer VARCHAR PRIMARY KEY, applied_seq BIGINT NOT NULL, messages BIGINT NOT NULL,
        applied BIGINT NOT NULL, quarantined BIGINT NOT NULL, skipped BIGINT NOT NULL,
        batches BIGINT NOT NULL, ack_floor BIGINT NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS price_agg (
        coin VARCHAR NOT NULL, bucket VARCHAR NOT NULL, bucket_start_us BIGINT NOT NULL,
        price DOUBLE NOT NULL, last_trade_us BIGINT NOT NULL, last_seq BIGINT NOT NULL,
        trades BIGINT NOT NULL, PRIMARY KEY (coin, bucket, bucket_start_us))""",
    """CREATE TABLE IF NOT EXISTS sentiment_agg (
        coin VARCHAR NOT NULL, bucket VARCHAR NOT NULL, bucket_start_us BIGINT NOT NULL,
        polarity_sum DOUBLE NOT NULL, tweets BIGINT NOT NULL, last_tweet_us BIGINT NOT NULL,
        PRIMARY KEY (coin, bucket, bucket_start_us))""",
    """CREATE TABLE IF NOT EXISTS applied_keys (
        kind VARCHAR NOT NULL, coin VARCHAR NOT NULL, key VARCHAR NOT NULL,
        seq BIGINT NOT NULL, ts_us BIGINT NOT NULL, PRIMARY KEY (kind, coin, key))""",
    """CREATE TABLE IF NOT EXISTS key_parts (
        kind VARCHAR NOT NULL, coin VARCHAR NOT NULL, pruned_before_us BIGINT NOT NULL,
        PRIMARY KEY (kind, coin))""",
    """CREATE TABLE IF NOT EXISTS stream_identity (
        consumer VARCHAR PRIMARY KEY, stream VARCHAR NOT NULL, created VARCHAR NOT NULL,
        subjects VARCHAR NOT NULL, buckets VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        seq BIGINT PRIMARY KEY, subject VARCHAR NOT NULL, origin VARCHAR, raw VARCHAR,
        reason VARCHAR NOT NULL)""",
)


@functools.cache
def _columns_of_ddl() -> dict[str, list[str]]:
    """Each table's columns, in order, as the DDL above creates them (one home: the DDL)."""
    with duckdb.connect(":memory:") as con:
        for ddl in _DDL:
            con.execute(ddl)
        out: dict[str, list[str]] = {}
        for table, column in con.sql(
                "SELECT table_name, column_name FROM duckdb_columns() "
                "ORDER BY table_name, column_index").fetchall():
            out.setdefault(table, []).append(column)
    return out

_NEWER = ("(excluded.last_trade_us > price_agg.last_trade_us OR (excluded.last_trade_us = "
          "price_agg.last_trade_us AND excluded.last_seq > price_agg.last_seq))")
_MERGE_PRICES = f"""
INSERT INTO price_agg SELECT coin, bucket, bucket_start_us, price, last_trade_us, last_seq,
    trades FROM batch_prices
ON CONFLICT (coin, bucket, bucket_start_us) DO UPDATE SET
    price = CASE WHEN {_NEWER} THEN excluded.price ELSE price_agg.price END,
    last_seq = CASE WHEN {_NEWER} THEN excluded.last_seq ELSE price_agg.last_seq END,
    last_trade_us = greatest(excluded.last_trade_us, price_agg.last_trade_us),
    trades = price_agg.trades + excluded.trades
"""
_MERGE_SENTIMENTS = """
INSERT INTO sentiment_agg SELECT coin, bucket, bucket_start_us, polarity_sum, tweets,
    last_tweet_us FROM batch_sentiments
ON CONFLICT (coin, bucket, bucket_start_us) DO UPDATE SET
    polarity_sum = sentiment_agg.polarity_sum + excluded.polarity_sum,
    tweets = sentiment_agg.tweets + excluded.tweets,
    last_tweet_us = greatest(excluded.last_tweet_us, sentiment_agg.last_tweet_us)
"""
_UPSERT_PROGRESS = """
INSERT INTO progress VALUES (?, ?, ?, ?, ?, ?, 1, 0)
ON CONFLICT (consumer) DO UPDATE SET
    applied_seq = greatest(progress.applied_seq, excluded.applied_seq),
    messages = progress.messages + excluded.messages,
    applied = progress.applied + excluded.applied,
    quarantined = progress.quarantined + excluded.quarantined,
    skipped = progress.skipped + excluded.skipped,
    batches = progress.batches + 1
"""

PRICE_AGG_SCHEMA = {"coin": pl.String, "bucket": pl.String, "bucket_start_us": pl.Int64,
                    "price": pl.Float64, "last_trade_us": pl.Int64, "last_seq": pl.Int64,
                    "trades": pl.Int64}
SENTIMENT_AGG_SCHEMA = {"coin": pl.String, "bucket": pl.String, "bucket_start_us": pl.Int64,
                        "polarity_sum": pl.Float64, "tweets": pl.Int64,
                        "last_tweet_us": pl.Int64}
KEYS_SCHEMA = {"kind": pl.String, "coin": pl.String, "key": pl.String, "seq": pl.Int64,
               "ts_us": pl.Int64}
QUARANTINE_SCHEMA = {"seq": pl.Int64, "subject": pl.String, "origin": pl.String,
                     "raw": pl.String, "reason": pl.String}

Key = tuple[str, str, str]  # (kind, coin, record key)
DEFAULT_KEY_HORIZON = "PT10M"  # about 420 bytes a key held (docs/stream.md)
SLOTS_PER_HORIZON = 4  # keys are dropped a quarter of the horizon at a time


Part = tuple[str, str]  # (kind, coin): the keys of one subject, with their own event time
_Slot = tuple[str, str, int]  # (kind, coin, ts_us // slot_us)


@dataclass
class AppliedKeys:
    """The record keys applied (``key -> stream sequence``), by part and event-time slot.

    A key is found whatever its record's event time; the slots (``ts_us // slot_us`` within
    a ``(kind, coin)`` part) only say which keys go together when old ones are dropped.
    Each part keeps its own event time, so trades replayed a day ahead of the tweets about
    the same coins, or one coin ahead of another, push no other part's keys out. A record
    republished with a newer timestamp is found as long as the original's slot is held.

    Attributes:
        slot_us: the width of a slot, in microseconds.
        pruned_before: per part, one microsecond after the newest event time of a key
            dropped: every key of an earlier record of that part is gone (a part without
            an entry has dropped nothing).
    """

    slot_us: int
    pruned_before: dict[Part, int] = field(default_factory=dict)
    _seq: dict[Key, int] = field(default_factory=dict, init=False, repr=False)
    _slots: dict[_Slot, list[Key]] = field(default_factory=dict, init=False, repr=False)
    _slot_max_seq: dict[_Slot, int] = field(default_factory=dict, init=False, repr=False)
    _slot_max_ts: dict[_Slot, int] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self._seq)

    def get(self, key: Key) -> int | None:
        """The stream sequence ``key`` was applied under, if it is held."""
        return self._seq.get(key)

    def add(self, rows: Iterable[tuple[str, str, str, int, int]]) -> None:
        """Hold ``(kind, coin, key, seq, ts_us)`` rows."""
        for kind, coin, key, seq, ts_us in rows:
            k = (kind, coin, key)
            self._seq[k] = seq
            slot = (kind, coin, ts_us // self.slot_us)
            self._slots.setdefault(slot, []).append(k)
            self._slot_max_seq[slot] = max(seq, self._slot_max_seq.get(slot, seq))
            self._slot_max_ts[slot] = max(ts_us, self._slot_max_ts.get(slot, ts_us))

    def too_late(self, key: Key, ts_us: int) -> bool:
        """Whether a record of event time ``ts_us`` is older than keys its part dropped."""
        before = self.pruned_before.get((key[0], key[1]))
        return before is not None and ts_us < before

    def watermarks(self) -> dict[Part, int]:
        """The newest event time held, per part."""
        out: dict[Part, int] = {}
        for (kind, coin, _), ts in self._slot_max_ts.items():
            out[(kind, coin)] = max(ts, out.get((kind, coin), ts))
        return out

    def droppable(self, horizon_us: int, now_us: int, ack_floor: int) -> dict[Part, int]:
        """How far each part's keys may be dropped (one µs after the newest key to go).

        In a part, a slot may go when it ends at or before the part's newest event time
        (capped by ``now_us``: a record dated ahead of the clock does not count) minus
        ``horizon_us``, and so does every slot before it, and none of them holds a message
        above ``ack_floor`` (unacked messages may be redelivered, and must then be
        recognised). Parts with nothing to drop are left out.
        """
        slots: dict[Part, list[int]] = {}
        for kind, coin, slot in self._slots:
            slots.setdefault((kind, coin), []).append(slot)
        out: dict[Part, int] = {}
        for part, newest in self.watermarks().items():
            edge = (min(newest, now_us) - horizon_us) // self.slot_us
            blocked = [slot for slot in slots[part]
                       if slot < edge and self._slot_max_seq[(*part, slot)] > ack_floor]
            edge = min([edge, *blocked])
            older = [self._slot_max_ts[(*part, slot)] for slot in slots[part] if slot < edge]
            if older:
                out[part] = max(older) + 1
        return out

    def drop_before(self, boundaries: dict[Part, int]) -> int:
        """Drop the slots whose keys are all older than their part's boundary; how many went.

        Raises:
            ValueError: a boundary is earlier than where its part dropped keys before.
        """
        for part, boundary in boundaries.items():
            if boundary < self.pruned_before.get(part, boundary):
                msg = (f"{part} keys were dropped up to {self.pruned_before[part]}; "
                       f"{boundary} is earlier")
                raise ValueError(msg)
        dropped = 0
        for slot in [slot for slot, ts in self._slot_max_ts.items()
                     if ts < boundaries.get((slot[0], slot[1]), ts)]:
            for k in self._slots.pop(slot):
                del self._seq[k]
                dropped += 1
            del self._slot_max_seq[slot], self._slot_max_ts[slot]
        self.pruned_before.update(boundaries)
        return dropped


@dataclass
class Delta:
    """What one batch changes: aggregates to merge, keys applied, messages quarantined."""

    prices: pl.DataFrame  # PRICE_AGG_SCHEMA, one row per (coin, bucket, bucket_start_us)
    sentiments: pl.DataFrame  # SENTIMENT_AGG_SCHEMA, likewise
    keys: pl.DataFrame  # KEYS_SCHEMA
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA
    messages: int  # messages in the batch
    skipped: int  # redeliveries of messages already applied or quarantined
    max_seq: int  # highest stream sequence in the batch


@dataclass(frozen=True)
class Progress:
    """The progress row of a consumer."""

    applied_seq: int
    messages: int
    applied: int
    quarantined: int
    skipped: int
    batches: int
    ack_floor: int = 0  # the durable's ack floor when keys were last dropped


class StateStore:
    """A consumer's DuckDB state file (use as a context manager).

    Args:
        path: the file.
        consumer: the consumer's name (its progress row).
        key_horizon: how long, in event time behind the newest applied record, record keys
            are kept for duplicate checks (an ISO-8601 duration, see :meth:`prune`).
    """

    def __init__(self, path: Path, consumer: str, *,
                 key_horizon: str = DEFAULT_KEY_HORIZON) -> None:
        try:
            horizon = parse_bucket(key_horizon)
        except ValueError as exc:
            msg = f"key_horizon: {exc}"
            raise ValueError(msg) from None
        self.path = path
        self.consumer = consumer
        self.horizon_us = horizon // timedelta(microseconds=1)
        self._con = duckdb.connect(str(path))
        try:
            self._open(path)
        except BaseException:
            self._con.close()
            raise

    def _open(self, path: Path) -> None:
        found: dict[str, list[str]] = {}
        for table, column in self._con.sql(
                "SELECT table_name, column_name FROM duckdb_columns() "
                "WHERE schema_name = 'main' ORDER BY table_name, column_index").fetchall():
            found.setdefault(table, []).append(column)
        # a file from before the grid was recorded: migrated once it passes the checks below
        upgrade = found.get("stream_identity") == ["consumer", "stream", "created", "subjects"]
        if upgrade:
            found["stream_identity"].append("buckets")
        changed = sorted(table for table, columns in found.items()
                         if columns != _columns_of_ddl().get(table, columns))
        if changed:
            msg = (f"{path}: a state file of another version (table {changed[0]} differs); "
                   "start the consumer on a new file and a new durable")
            raise ValueError(msg)
        for ddl in _DDL:
            self._con.execute(ddl)
        others = {name for (name,) in self._con.sql(
            "SELECT consumer FROM progress UNION SELECT consumer FROM stream_identity",
        ).fetchall()} - {self.consumer}
        if others:
            msg = (f"{path}: the state of consumer {sorted(others)[0]}, not of "
                   f"{self.consumer}: one file holds one consumer's state")
            raise ValueError(msg)
        if upgrade:
            self._record_grid()
        ((floor,),) = self._con.sql(
            "SELECT coalesce(max(ack_floor), 0) FROM progress WHERE consumer = ?",
            params=[self.consumer]).fetchall()
        self.keys = AppliedKeys(max(self.horizon_us // SLOTS_PER_HORIZON, 1), {
            (kind, coin): before for kind, coin, before in self._con.sql(
                "SELECT kind, coin, pruned_before_us FROM key_parts").fetchall()})
        self.keys.add(self._con.sql(
            "SELECT kind, coin, key, seq, ts_us FROM applied_keys").fetchall())
        self.ack_floor: int = floor
        self.quarantined: set[int] = {seq for (seq,) in self._con.sql(
            "SELECT seq FROM quarantine WHERE seq > ?", params=[floor]).fetchall()}

    def _record_grid(self) -> None:
        """Record the grid of a file from before the grid was recorded.

        Its grid is the buckets its aggregates are on (with none yet, the next :meth:`bind`
        records the configuration's).
        """
        grid = self._con.execute(
            "SELECT string_agg(DISTINCT bucket, ',' ORDER BY bucket) FROM "
            "(SELECT bucket FROM price_agg UNION SELECT bucket FROM sentiment_agg)").fetchone()
        self._con.execute("ALTER TABLE stream_identity ADD COLUMN buckets VARCHAR")
        self._con.execute("UPDATE stream_identity SET buckets = ?",
                          [grid[0] if grid else None])

    def bind(self, stream: str, created: str, subjects: Sequence[str],
             buckets: Sequence[str]) -> None:
        """Tie the file to one stream (its name and creation time), one filter and one grid.

        The file's sequences, ack floor and keys mean something only for the stream and the
        subjects they came from: a stream created again numbers its messages from 1, and a
        filtered durable's ack floor passes the sequences of other partitions' subjects. Its
        aggregates are on the ``buckets`` it was built with: a bucket added on a restart
        would start from the ack floor, its aggregates missing every message applied before
        (a QA walkthrough measured 108 of 308 trades and correlations of the wrong sign), and
        a bucket spelled anew (``PT60S`` for ``PT1M``) would find none.

        Raises:
            ValueError: the file was built from another stream, filter or grid, naming both.
        """
        wanted = (stream, created, ",".join(sorted(subjects)), ",".join(sorted(buckets)))
        rows = self._con.sql(
            "SELECT stream, created, subjects, buckets FROM stream_identity "
            "WHERE consumer = ?", params=[self.consumer]).fetchall()
        if not rows:
            self._con.execute("INSERT INTO stream_identity VALUES (?, ?, ?, ?, ?)",
                              [self.consumer, *wanted])
        elif rows[0][3] is None and rows[0][:3] == wanted[:3]:  # an upgraded file, no rows
            self._con.execute("UPDATE stream_identity SET buckets = ? WHERE consumer = ?",
                              [wanted[3], self.consumer])
        elif rows[0][:3] != wanted[:3]:
            msg = (f"{self.path}: this state was built from stream {rows[0][0]} created "
                   f"{rows[0][1]} with subjects {rows[0][2]}, not from stream {stream} "
                   f"created {created} with subjects {wanted[2]} (a stream created again "
                   "numbers its messages anew; another filter has another ack floor); start "
                   "on a new state file")
            raise ValueError(msg)
        elif rows[0][3] != wanted[3]:
            msg = (f"{self.path}: this state keeps aggregates on the buckets {rows[0][3]}, "
                   f"not {wanted[3]} (a bucket added now would miss every message applied "
                   "before); keep its buckets, or start on a new state file and a new durable")
            raise ValueError(msg)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._con.close()

    def commit(self, delta: Delta) -> None:
        """Apply ``delta`` in one transaction; the in-memory key set follows only on commit."""
        con = self._con
        con.begin()
        try:
            if delta.prices.height:
                con.register("batch_prices", delta.prices.to_arrow())
                con.execute(_MERGE_PRICES)
                con.unregister("batch_prices")
            if delta.sentiments.height:
                con.register("batch_sentiments", delta.sentiments.to_arrow())
                con.execute(_MERGE_SENTIMENTS)
                con.unregister("batch_sentiments")
            if delta.keys.height:
                con.register("batch_keys", delta.keys.to_arrow())
                con.execute("INSERT INTO applied_keys SELECT kind, coin, key, seq, ts_us "
                            "FROM batch_keys")
                con.unregister("batch_keys")
            if delta.quarantine.height:
                con.register("batch_quarantine", delta.quarantine.to_arrow())
                con.execute("INSERT INTO quarantine SELECT seq, subject, origin, raw, reason "
                            "FROM batch_quarantine ON CONFLICT DO NOTHING")
                con.unregister("batch_quarantine")
            con.execute(_UPSERT_PROGRESS, [
                self.consumer, delta.max_seq, delta.messages, delta.keys.height,
                delta.quarantine.height, delta.skipped])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        self.keys.add(delta.keys.iter_rows())
        self.quarantined.update(delta.quarantine["seq"].to_list())

    def prune(self, ack_floor: int, *, now_us: int | None = None) -> int:
        """Drop the keys no longer needed; how many were dropped.

        A slot of keys goes when it ends more than the horizon behind the newest event time
        of its part (its kind and coin; capped by ``now_us``, the wall clock by default, so
        a record dated in the future cannot push the others out) and no message of it, or
        of an older slot of the part, is above the ack floor (acked messages are never
        redelivered to this durable): :meth:`AppliedKeys.droppable`. A record older than
        the newest key its part dropped (:attr:`AppliedKeys.pruned_before`) is quarantined
        as too late from then on. The ack floor used is the highest seen (``ack_floor`` or
        the one stored): a message at or below it was committed before it was acked, so a
        delivery of it is a redelivery; quarantined sequences at or below it leave memory
        (not the table).
        One transaction; memory follows only on commit.
        """
        floor = max(ack_floor, self.ack_floor)
        clock = time.time_ns() // 1000 if now_us is None else now_us
        boundaries = self.keys.droppable(self.horizon_us, clock, floor)
        con = self._con
        con.begin()
        try:
            if boundaries:
                bounds = pl.DataFrame(
                    [(kind, coin, before) for (kind, coin), before in boundaries.items()],
                    schema={"kind": pl.String, "coin": pl.String, "before_us": pl.Int64},
                    orient="row")
                con.register("bounds", bounds.to_arrow())
                con.execute("DELETE FROM applied_keys USING bounds WHERE applied_keys.kind = "
                            "bounds.kind AND applied_keys.coin = bounds.coin AND "
                            "applied_keys.ts_us < bounds.before_us")
                con.execute("INSERT INTO key_parts SELECT kind, coin, before_us FROM bounds "
                            "ON CONFLICT (kind, coin) DO UPDATE SET pruned_before_us = "
                            "excluded.pruned_before_us")
                con.unregister("bounds")
            con.execute("UPDATE progress SET ack_floor = ? WHERE consumer = ?",
                        [floor, self.consumer])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        self.ack_floor = floor
        self.quarantined = {seq for seq in self.quarantined if seq > floor}
        return self.keys.drop_before(boundaries)

    def keys_in_file(self) -> int:
        """How many record keys the file holds (as many as :attr:`keys` after a prune)."""
        ((count,),) = self._con.sql("SELECT count(*) FROM applied_keys").fetchall()
        return int(count)

    def progress(self) -> Progress:
        """The progress row (zeros before the first batch)."""
        rows = self._con.sql(
            "SELECT applied_seq, messages, applied, quarantined, skipped, batches, "
            "ack_floor FROM progress WHERE consumer = ?",
            params=[self.consumer]).fetchall()
        return Progress(*(rows[0] if rows else (0, 0, 0, 0, 0, 0)))

    def price_aggregates(self) -> pl.DataFrame:
        """Every price aggregate (``bucket_start`` and ``last_trade_ts`` as UTC datetimes)."""
        frame = pl.DataFrame(self._con.sql(
            "SELECT * FROM price_agg ORDER BY coin, bucket, bucket_start_us").pl(),
        ).cast(PRICE_AGG_SCHEMA)  # type: ignore[arg-type]
        return frame.select(
            "coin", "bucket", pl.col("bucket_start_us").cast(_UTC).alias("bucket_start"),
            "price", pl.col("last_trade_us").cast(_UTC).alias("last_trade_ts"), "last_seq",
            "trades")

    def sentiment_aggregates(self) -> pl.DataFrame:
        """Every sentiment aggregate with its mean (``sentiment``) and count (``tweets``)."""
        frame = pl.DataFrame(self._con.sql(
            "SELECT * FROM sentiment_agg ORDER BY coin, bucket, bucket_start_us").pl(),
        ).cast(SENTIMENT_AGG_SCHEMA)  # type: ignore[arg-type]
        return frame.select(
            "coin", "bucket", pl.col("bucket_start_us").cast(_UTC).alias("bucket_start"),
            (pl.col("polarity_sum") / pl.col("tweets")).alias("sentiment"), "tweets",
            pl.col("last_tweet_us").cast(_UTC).alias("last_tweet_ts"))

    def quarantine(self) -> pl.DataFrame:
        """The quarantined messages (stream sequence, subject, origin, text, reason)."""
        return pl.DataFrame(self._con.sql(
            "SELECT * FROM quarantine ORDER BY seq").pl()).cast(
                QUARANTINE_SCHEMA)  # type: ignore[arg-type]


def series_of(prices: pl.DataFrame, sentiments: pl.DataFrame, coin: str, bucket: str,
              ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One coin's price series and sentiment buckets on ``bucket``, from the aggregates.

    The frames have :func:`cryptodudez.mood.series.price_buckets`' and
    :func:`~cryptodudez.mood.series.sentiment_buckets`' columns, ready for
    :func:`~cryptodudez.mood.series.join_buckets`.
    """
    mine = (pl.col("coin") == coin) & (pl.col("bucket") == bucket)
    price = price_series(prices.filter(mine).select(
        "bucket_start", "price", "last_trade_ts", "trades"), coin, bucket)
    width = pl.lit(parse_bucket(bucket))
    mood = sentiments.filter(mine).sort("bucket_start").select(
        "bucket_start", (pl.col("bucket_start") + width).alias("bucket_end"), "sentiment",
        "tweets", "last_tweet_ts")
    return price, mood
