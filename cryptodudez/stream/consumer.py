"""A durable JetStream pull consumer keeping per-coin windowed aggregates and the correlation.

The loop: fetch a batch (bounded wait), turn it into a delta (:func:`~cryptodudez.stream.
apply.prepare`: validation by the lake's engine, key checks, aggregates), commit the delta in
one DuckDB transaction (:class:`~cryptodudez.stream.state.StateStore`), then ack every
message of the batch, quarantined ones included. Delivery is at-least-once; the apply is
idempotent (record keys committed with the aggregates), so the effect is exactly once:

- killed before the commit: nothing of the batch is in the state; the broker redelivers it
  after ``ack_wait`` and it is applied then;
- killed after the commit, before the acks: the redelivered messages carry keys already
  applied under the same stream sequence and are skipped (counted as ``skipped``).

Because aggregates merge commutatively and idempotence is by key, not by a high-water mark,
a redelivery that arrives after newer messages is still applied exactly once.

The correlation table is recomputed from the aggregates (same functions as the batch) when
the consumer has caught up, and at most every ``refresh_every`` seconds while it works
through a backlog; the latest one is kept on the consumer (``correlation``).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
import nats.errors
import nats.js.errors
import polars as pl
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api

from cryptodudez.stream.apply import Message, prepare
from cryptodudez.stream.broker import PREFIX, STREAM, partition_filter
from cryptodudez.stream.correlation import (
    correlation_from_aggregates,
    trailing,
    window_of,
    window_starts,
)
from cryptodudez.stream.replay import ORIGIN, PUBLISHED_NS
from cryptodudez.stream.state import Delta, StateStore


@dataclass(frozen=True)
class ConsumerConfig:
    """What a consumer reads, how it batches and what it computes.

    Attributes:
        durable: the durable consumer's name (its position survives restarts).
        coins: the coins this consumer owns (its partition); ``None`` for every subject.
        buckets: the grids the aggregates are kept on.
        correlation_coins: coins of the correlation table (default: ``coins``, else none).
        max_lag: lags ``-max_lag..max_lag`` of the correlation table.
        tolerance_buckets: the as-of join's tolerance, in buckets.
        n_boot: bootstrap resamples per correlation.
        batch: messages per fetch.
        fetch_timeout: seconds a fetch waits for messages.
        linger: seconds without a new message after which a fetch returns what it has.
        ack_wait: seconds before the broker redelivers an unacked message.
        refresh_every: seconds between correlation refreshes during a backlog (None: only
            when caught up).
        correlation_window: the correlation over the trailing window of event time only
            (an ISO-8601 duration, 1 s to 30 days, such as ``P1D``), or over everything
            consumed (None). A refresh costs about a second per day of history at the
            default buckets (docs/stream.md), so a long-running consumer wants one.
        prune_every: seconds between drops of old record keys
            (:meth:`~cryptodudez.stream.state.StateStore.prune`, one request for the
            durable's ack floor each); they are also dropped when a run ends.
        stream: the stream's name.
    """

    durable: str = "mood"
    coins: tuple[str, ...] | None = None
    buckets: tuple[str, ...] = ("PT10S", "PT1M")
    correlation_coins: tuple[str, ...] | None = None
    max_lag: int = 2
    tolerance_buckets: int = 0
    n_boot: int = 2000
    batch: int = 1000
    fetch_timeout: float = 0.5
    linger: float = 0.02
    ack_wait: float = 30.0
    refresh_every: float | None = 5.0
    correlation_window: str | None = None
    prune_every: float = 10.0
    stream: str = STREAM

    def __post_init__(self) -> None:
        if self.correlation_window is not None:
            window_of(self.correlation_window)


@dataclass
class RunReport:
    """What one :meth:`MoodConsumer.run` did."""

    batches: int = 0
    messages: int = 0
    applied: int = 0
    quarantined: int = 0
    skipped: int = 0
    refreshes: int = 0
    pruned: int = 0  # record keys dropped behind the key horizon
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("fetch", "prepare", "commit", "ack", "refresh", "prune"), 0.0))


Hook = Callable[[Delta, Sequence[Message]], None]
_LOG = logging.getLogger(__name__)


# A JetStream delivery's reply subject (ADR-15): ``$JS.ACK.<stream>.<consumer>.<delivered>.
# <stream seq>.<consumer seq>.<ns>.<pending>`` (9 tokens), or the form with a domain and an
# account hash after ``ACK`` and a random token at the end (12 tokens; like nats-py, any
# count from 11 on is accepted, and nats-py's ``Msg.Ack`` names the positions).
_V1_TOKENS = 9
_V1_STREAM_SEQ = 5


def stream_sequence(reply: str | None) -> int:
    """The stream sequence of a JetStream delivery, read from its reply subject.

    What ``msg.metadata.sequence.stream`` gives, without building nats-py's ``Metadata``
    (its timestamp and dataclasses cost 7 µs a message against under 1 µs here, measured
    by hand; ``benchmarks/bench_stream.py``'s ``client`` scenario times the whole step).

    Raises:
        ValueError: ``reply`` is not a JetStream ack subject.
    """
    tokens = (reply or "").split(".")
    if tokens[:2] == ["$JS", "ACK"]:
        if len(tokens) == _V1_TOKENS:
            return int(tokens[_V1_STREAM_SEQ])
        if len(tokens) >= Msg.Ack.NumPending + 1:
            return int(tokens[Msg.Ack.StreamSeq])
    msg = f"not a JetStream delivery (reply subject {reply!r})"
    raise ValueError(msg)


def to_message(msg: Msg) -> Message:
    """A fetched message's stream sequence, subject, payload and lineage headers."""
    headers = msg.headers or {}
    stamp = headers.get(PUBLISHED_NS)
    # A publishing time that is no integer is unknown, not a crash: it raised before the
    # batch's commit, so every restart met it again and the batch was never applied.
    published_ns = int(stamp) if stamp and stamp.isascii() and stamp.isdigit() else None
    return Message(seq=stream_sequence(msg.reply), subject=msg.subject, data=msg.data,
                   origin=headers.get(ORIGIN), published_ns=published_ns)


class Puller:
    """The client side of a pull consumer, without a timer per message.

    One subscription on a private inbox collects what the broker delivers; :meth:`fetch`
    sends a pull request (``batch``, ``expires``) when none is open and returns when the
    batch is full, when the request ends (all delivered, or the broker's 408/409 status), or
    when nothing new arrived for ``linger`` seconds, whichever comes first. A message
    delivered after a fetch returned waits in the buffer for the next fetch (it is never
    dropped; an unacked message is redelivered by the broker anyway).
    """

    def __init__(self, nc: Client, stream: str, consumer: str) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = nc.new_inbox()
        self._buffer: list[Msg] = []
        self._open: str | None = None  # reply subject of the open pull request
        self._requests = 0
        self._want = 0
        self._left = 0  # messages the open request may still deliver
        self._wake = asyncio.Event()
        self._sub: Subscription | None = None

    async def start(self, pending: int) -> None:
        """Subscribe to the inbox (``pending``: most messages buffered)."""
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_msg,
                                             pending_msgs_limit=pending)

    async def stop(self) -> None:
        """Unsubscribe; messages delivered and not acked will be redelivered."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_msg(self, msg: Msg) -> None:
        # A delivery carries its ack subject; a broker status (408, 409, 100) has none. A
        # published message with a "Status" header of its own is a delivery: taken for a
        # status, it was never applied, quarantined or acked (a reviewer).
        delivery = (msg.reply or "").startswith("$JS.ACK.")
        status = msg.headers.get("Status") if msg.headers and not delivery else None
        if status is None:
            self._buffer.append(msg)
            if self._open is not None:  # deliveries keep their own subject: count them
                self._left -= 1
                if self._left == 0:  # the request is complete: the broker sends no status
                    self._open = None
            if len(self._buffer) == 1 or len(self._buffer) >= self._want or self._open is None:
                self._wake.set()
        elif status != "100" and msg.subject == self._open:  # status: on the reply subject
            self._open = None
            self._wake.set()

    async def fetch(self, batch: int, *, timeout: float, linger: float) -> list[Msg]:
        """Up to ``batch`` messages, waiting at most about ``timeout`` seconds."""
        self._want = batch
        if self._open is None and len(self._buffer) < batch:
            self._requests += 1
            self._open = f"{self._inbox}.{self._requests}"
            self._left = batch - len(self._buffer)
            request = {"batch": self._left, "expires": int(timeout * 1e9)}
            await self._nc.publish(self._next, msgspec.json.encode(request),
                                   reply=self._open)
        deadline = time.monotonic() + timeout + 1.0  # the broker's 408 is due at ``timeout``
        while len(self._buffer) < batch and self._open is not None:
            now = time.monotonic()
            if now >= deadline:
                self._open = None  # the request is lost or expired: send a new one
                break
            held = len(self._buffer)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(),
                                       min(linger, deadline - now) if held else deadline - now)
            if held and len(self._buffer) == held:
                break  # nothing new for ``linger`` seconds: go with what there is
        out, self._buffer = self._buffer[:batch], self._buffer[batch:]
        return out


class MoodConsumer:
    """One worker of a partition: a durable pull consumer and its state file.

    Args:
        nc: a connected client.
        store: the partition's state file.
        config: what to read and compute.
        before_commit: called with each delta before its commit (tests inject failures).
        after_commit: called after each commit, before the acks (tests inject failures;
            benchmarks measure lag).
    """

    def __init__(self, nc: Client, store: StateStore, config: ConsumerConfig, *,
                 before_commit: Hook | None = None, after_commit: Hook | None = None) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=5.0)
        self.store = store
        self.config = config
        self.before_commit = before_commit
        self.after_commit = after_commit
        self.correlation: pl.DataFrame | None = None
        self.window_starts: dict[str, datetime] = {}  # per bucket, with correlation_window
        self._puller: Puller | None = None
        self._refreshed_at = 0.0
        self._pruned_at = time.monotonic()
        self._redelivery_due_through = 0  # no key may go before the ack floor passes it
        self._dirty = False

    def consumer_config(self) -> api.ConsumerConfig:
        """The durable's configuration: explicit acks, from the start of the stream."""
        filters = partition_filter(self.config.coins) if self.config.coins else None
        return api.ConsumerConfig(
            durable_name=self.config.durable, name=self.config.durable,
            deliver_policy=api.DeliverPolicy.ALL, ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.config.ack_wait, max_ack_pending=max(10 * self.config.batch, 1000),
            filter_subject=None if filters else f"{PREFIX}.>", filter_subjects=filters)

    async def start(self) -> None:
        """Check the state file against the stream and durable, then subscribe.

        Creates the durable when missing; an existing one must have the configuration's
        filter.

        Raises:
            ValueError: the state file belongs to another durable, stream, filter or set of
                buckets (or to this stream before it was created again), the durable exists
                with another filter than the configuration's, or the durable has acked messages the
                file does not hold.
        """
        cfg = self.config
        if self.store.consumer != cfg.durable:
            msg = (f"{self.store.path}: the state of consumer {self.store.consumer}, not of "
                   f"the durable {cfg.durable}")
            raise ValueError(msg)
        wanted = self.consumer_config()
        subjects = wanted.filter_subjects or [wanted.filter_subject or ""]
        stream = await self.js.stream_info(cfg.stream)
        if stream.created is None:
            msg = f"the broker did not say when stream {cfg.stream} was created"
            raise ValueError(msg)
        # before any durable is made or used
        self.store.bind(cfg.stream, stream.created.isoformat(), subjects, cfg.buckets)
        try:
            info = await self.js.consumer_info(cfg.stream, cfg.durable)
        except nats.js.errors.NotFoundError:
            await self.js.add_consumer(cfg.stream, wanted)
            if self.store.progress().batches:  # a durable created again replays it all:
                self._redelivery_due_through = stream.state.last_seq  # wait until it has
        else:
            # what was delivered before this start and is not acked comes again
            self._redelivery_due_through = info.delivered.stream_seq if info.delivered else 0
            existing = info.config.filter_subjects or [info.config.filter_subject or ""]
            if sorted(existing) != sorted(subjects):
                msg = (f"durable {cfg.durable} on stream {cfg.stream} filters {existing}, "
                       f"not {subjects}: delete it or use another durable name")
                raise ValueError(msg)
            await self._refuse_a_file_behind_the_durable(info, subjects)
        self._puller = Puller(self.nc, cfg.stream, cfg.durable)
        await self._puller.start(pending=4 * cfg.batch + 1000)
        # The file may hold aggregates of earlier runs: the table is computed from them once
        # caught up, even when nothing new comes (it stayed None after a restart).
        self._dirty = True

    async def _refuse_a_file_behind_the_durable(self, info: api.ConsumerInfo,
                                                subjects: Sequence[str]) -> None:
        """Refuse a state file that lacks messages the durable has acked.

        A message is acked only after its batch's commit, so every message of the durable's
        subjects up to its ack floor is in the file that consumed it, and that file's
        ``applied_seq`` is at least its sequence. A message of those subjects after this
        file's ``applied_seq`` and at or below the ack floor was therefore committed
        elsewhere: the file is new (a consumer started without its volume, a standby with a
        local file) or restored from an older copy, and the broker will never deliver those
        messages again. The ack floor alone cannot tell, since a filtered durable's floor
        may lie past other subjects' messages, so the broker is asked for the first message
        of each subject after ``applied_seq``.

        Raises:
            ValueError: naming the file, the durable and the first message it would lose.
        """
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        applied = self.store.progress().applied_seq
        if not floor or floor <= applied:
            return
        cfg = self.config
        for subject in subjects:
            try:
                first = await self.js.get_msg(cfg.stream, seq=applied + 1, subject=subject,
                                              next=True)
            except nats.js.errors.NotFoundError:
                continue
            if first.seq is not None and first.seq <= floor:
                msg = (f"{self.store.path}: applied stream {cfg.stream} through sequence "
                       f"{applied}, but durable {cfg.durable} has acked through {floor}, "
                       f"message {first.seq} ({first.subject}) included: this file is not the "
                       "one that consumed them (new, or restored from an older copy), and "
                       "the broker will not deliver them again. Start with the durable's own "
                       "state file, or delete the durable to rebuild this file from the "
                       "stream")
                raise ValueError(msg)

    async def stop(self) -> None:
        """Unsubscribe (the durable and its unacked messages stay on the broker)."""
        if self._puller is not None:
            await self._puller.stop()
            self._puller = None

    async def _fetch(self) -> list[Msg]:
        assert self._puller is not None, "call start() first"
        return await self._puller.fetch(self.config.batch, timeout=self.config.fetch_timeout,
                                        linger=self.config.linger)

    async def caught_up(self) -> bool:
        """True when the durable has nothing left to deliver and nothing awaiting an ack."""
        info = await self.js.consumer_info(self.config.stream, self.config.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0

    @property
    def redelivery_due_through(self) -> int:
        """The highest stream sequence delivered without a commit (it will come again)."""
        return self._redelivery_due_through

    async def prune(self) -> int:
        """Drop the record keys behind the key horizon, once no redelivery is due.

        A message delivered before this consumer started (to a worker that died before its
        commit), or in a batch whose commit failed, has no key, and the broker delivers it
        again after ``ack_wait``: a drop meanwhile could pass its event time and refuse it
        as too late. So nothing goes until the durable's ack floor has passed the last such
        delivery; then the floor bounds what goes
        (:meth:`~cryptodudez.stream.state.StateStore.prune`). Returns how many keys were
        dropped; 0 when the drop was put off or the broker did not answer.
        """
        self._pruned_at = time.monotonic()
        try:
            info = await self.js.consumer_info(self.config.stream, self.config.durable)
        except (TimeoutError, nats.errors.Error) as exc:  # housekeeping: try again later
            _LOG.warning("no ack floor from the broker (%s); keys not dropped this time", exc)
            return 0
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        if floor < self._redelivery_due_through:
            return 0
        return self.store.prune(floor)

    def refresh(self) -> pl.DataFrame | None:
        """Recompute the correlation table from the aggregates (None without coins)."""
        coins = self.config.correlation_coins or self.config.coins
        if not coins:
            return None
        prices, sentiments = self.store.price_aggregates(), self.store.sentiment_aggregates()
        if self.config.correlation_window is not None:
            self.window_starts = window_starts(prices, self.config.buckets,
                                               window_of(self.config.correlation_window))
            prices, sentiments = trailing(prices, sentiments, self.window_starts)
        self.correlation = correlation_from_aggregates(
            prices, sentiments, coins=coins,
            buckets=self.config.buckets, max_lag=self.config.max_lag,
            tolerance_buckets=self.config.tolerance_buckets, n_boot=self.config.n_boot)
        self._refreshed_at = time.monotonic()
        self._dirty = False
        return self.correlation

    def _apply(self, msgs: Sequence[Msg], report: RunReport) -> tuple[Delta, list[Message]]:
        """Prepare and commit one batch."""
        clock = time.perf_counter()
        messages = [to_message(m) for m in msgs]
        delta = prepare(messages, buckets=self.config.buckets, keys=self.store.keys,
                        quarantined=self.store.quarantined,
                        acked_through=self.store.ack_floor, stream=self.config.stream)
        report.timings["prepare"] += time.perf_counter() - clock
        if self.before_commit is not None:
            self.before_commit(delta, messages)
        clock = time.perf_counter()
        self.store.commit(delta)
        report.timings["commit"] += time.perf_counter() - clock
        if self.after_commit is not None:
            self.after_commit(delta, messages)
        return delta, messages

    async def handle(self, msgs: Sequence[Msg], report: RunReport) -> None:
        """Apply one fetched batch, commit it, then ack it."""
        try:
            delta, messages = self._apply(msgs, report)
        except BaseException:  # the batch will be delivered again: no key goes before that
            seqs = []
            for m in msgs:
                with contextlib.suppress(ValueError):
                    seqs.append(stream_sequence(m.reply))
            self._redelivery_due_through = max([self._redelivery_due_through, *seqs])
            raise
        clock = time.perf_counter()
        for m in msgs:
            await m.ack()
        report.timings["ack"] += time.perf_counter() - clock
        report.batches += 1
        report.messages += len(messages)
        report.applied += delta.keys.height
        report.quarantined += delta.quarantine.height
        report.skipped += delta.skipped
        self._dirty = True

    async def run(self, *, until_caught_up: bool = True, max_batches: int | None = None,
                  ) -> RunReport:
        """Fetch, apply, commit and ack until caught up (or ``max_batches``, or forever).

        Batches are applied one at a time, in order, each acked only after its commit (a
        variant that fetched the next batch while a worker thread applied the current one
        was slower on 2 cores: the apply is mostly GIL-bound Python). Callers bound the whole
        run with ``asyncio.wait_for``; every broker call inside is bounded by its own timeout.
        """
        if self._puller is None:
            await self.start()
        report = RunReport()
        started = time.perf_counter()
        while max_batches is None or report.batches < max_batches:
            clock = time.perf_counter()
            msgs = await self._fetch()
            report.timings["fetch"] += time.perf_counter() - clock
            if msgs:
                await self.handle(msgs, report)
                self._refresh_if_due(report)
                if time.monotonic() - self._pruned_at >= self.config.prune_every:
                    await self._timed_prune(report)
                continue
            if self._dirty:
                self._timed_refresh(report)
            if until_caught_up and await self.caught_up():
                break
            await asyncio.sleep(0)
        if self._dirty:
            self._timed_refresh(report)
        if report.batches:
            await self._timed_prune(report)
        report.seconds = time.perf_counter() - started
        return report

    async def _timed_prune(self, report: RunReport) -> None:
        clock = time.perf_counter()
        report.pruned += await self.prune()
        report.timings["prune"] += time.perf_counter() - clock

    def _refresh_if_due(self, report: RunReport) -> None:
        every = self.config.refresh_every
        if every is not None and time.monotonic() - self._refreshed_at >= every:
            self._timed_refresh(report)

    def _timed_refresh(self, report: RunReport) -> None:
        clock = time.perf_counter()
        if self.refresh() is not None:
            report.refreshes += 1
        self._dirty = False
        report.timings["refresh"] += time.perf_counter() - clock
