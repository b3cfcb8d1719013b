"""The real stream end to end (issue 10, scope 4): NATS JetStream on 127.0.0.1.

One private ``nats-server -js`` for the module (the project's own ``jetstream_server``); each
test starts from an empty stream. The shipped sample's 402 lines are replayed through the
broker and consumed by the durable pull consumer; the reference is the batch path over the
lake engine's tables for the same windows (PT10S and PT1M, lags -2..2). Every broker call
and every run is bounded (``asyncio.wait_for``), so a broken broker fails a test, never
hangs it.
"""

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import re
import zipfile
from collections.abc import Coroutine, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import msgspec
import nats.js.errors
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cryptodudez.archives import Member, Unpacked
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.ingest import ingest_members
from cryptodudez.mood.stats import correlation_table
from cryptodudez.stream.apply import Message
from cryptodudez.stream.broker import (
    STREAM,
    Broker,
    connect,
    ensure_stream,
    jetstream_server,
    partition_filter,
    run_sync,
    subject,
)
from cryptodudez.stream.consumer import ConsumerConfig, MoodConsumer, RunReport
from cryptodudez.stream.demo import DemoResult, run_stream_demo, source_paths
from cryptodudez.stream.replay import (
    MSG_ID,
    ORIGIN,
    PUBLISHED_NS,
    Line,
    publish_lines,
    read_lines,
    route,
    shifted,
)
from cryptodudez.stream.state import Delta, StateStore
from tests.stream_helpers import assert_aggregates_are_batch

pytestmark = pytest.mark.xdist_group("nats")

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cryptomood_sample.zip"
COINS = ("BTC", "ETH", "LTC")
BUCKETS = ("PT10S", "PT1M")
MESSAGES = 477  # 308 trades + 94 tweets published once per coin they mention (169 copies)
TIMEOUT = 20.0


class Crash(RuntimeError):
    """The injected failure: the consumer process dies at this point."""


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = TIMEOUT) -> T:
    return run_sync(lambda: coro, timeout)


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with jetstream_server(ready_timeout=10.0) as running:
        yield running


@pytest.fixture(scope="module")
def batch() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The batch result: the engine's tables and the correlation table over them."""
    with zipfile.ZipFile(SAMPLE) as archive:
        members = [Member(f"zip://{n}", n, archive.read(n)) for n in archive.namelist()]
    result = ingest_members(Unpacked(members=members), DATASETS)
    trades, tweets = result.tables["coin_trades"], result.tables["tweet_sentiments"]
    table = correlation_table(trades, tweets, coins=COINS, buckets=BUCKETS, max_lag=2,
                              tolerance_buckets=0, n_boot=200)
    return trades, tweets, table


@pytest.fixture
def empty_stream(broker: Broker) -> str:
    async def reset() -> None:
        nc = await connect(broker.url)
        js = nc.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(STREAM)
        await ensure_stream(js)
        await nc.close()

    run(reset())
    return broker.url


def config(**changes: Any) -> ConsumerConfig:
    base = {"correlation_coins": COINS, "buckets": BUCKETS, "max_lag": 2, "n_boot": 200,
            "batch": 64, "fetch_timeout": 0.2, "ack_wait": 2.0, "refresh_every": None}
    return ConsumerConfig(**{**base, **changes})


async def publish(url: str, lines: Sequence[Line] | None = None) -> Any:
    nc = await connect(url)
    report = await publish_lines(nc, lines if lines is not None else read_lines([SAMPLE]))
    await nc.close()
    return report


async def consume(url: str, state: Path, cfg: ConsumerConfig, *, key_horizon: str = "PT1H",
                  **hooks: Any) -> tuple[RunReport, pl.DataFrame | None]:
    nc = await connect(url)
    try:
        with StateStore(state, cfg.durable, key_horizon=key_horizon) as store:
            consumer = MoodConsumer(nc, store, cfg, **hooks)
            report = await consumer.run()
            return report, consumer.correlation
    finally:
        await nc.close()


def assert_state_is_batch(state: Path, durable: str, trades: pl.DataFrame,
                          tweets: pl.DataFrame, coins: Sequence[str] = COINS) -> None:
    with StateStore(state, durable) as store:
        assert set(store.price_aggregates()["coin"]) == set(coins)
        assert_aggregates_are_batch(store, trades, tweets, coins=coins, buckets=BUCKETS)
        assert store.progress().applied == trades.filter(pl.col("coin").is_in(coins)).height \
            + tweets.explode("coins").filter(pl.col("coins").is_in(coins)).height


async def stream_state(url: str) -> Any:
    nc = await connect(url)
    info = await nc.jetstream().stream_info(STREAM)
    await nc.close()
    return info.state


def test_streamed_aggregates_and_correlation_equal_the_batch(
        empty_stream: str, tmp_path: Path, batch: tuple[pl.DataFrame, ...]) -> None:
    trades, tweets, table = batch
    published = run(publish(empty_stream))
    assert (published.lines, published.messages, published.duplicates) == (402, MESSAGES, 0)
    report, streamed = run(consume(empty_stream, tmp_path / "state.duckdb", config()))
    assert (report.messages, report.applied, report.quarantined, report.skipped) == (
        MESSAGES, MESSAGES, 0, 0)
    assert report.batches == -(-MESSAGES // 64)
    assert_state_is_batch(tmp_path / "state.duckdb", "mood", trades, tweets)
    assert streamed is not None
    assert_frame_equal(streamed, table, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
    assert streamed.filter(pl.col("n") > 0).height == streamed.height  # real numbers, no gaps


@pytest.mark.parametrize("moment", ["before_commit", "after_commit"])
def test_a_consumer_killed_mid_stream_loses_and_doubles_nothing(
        empty_stream: str, tmp_path: Path, batch: tuple[pl.DataFrame, ...],
        moment: str) -> None:
    trades, tweets, table = batch
    run(publish(empty_stream))
    state = tmp_path / "state.duckdb"
    seen: list[int] = []

    def die_on_third_batch(delta: Delta, messages: Sequence[Message]) -> None:
        seen.append(len(messages))
        if len(seen) == 3:
            raise Crash(moment)

    with pytest.raises(Crash):
        run(consume(empty_stream, state, config(), **{moment: die_on_third_batch}))
    with StateStore(state, "mood") as store:
        committed = store.progress().applied
    assert committed == 64 * (2 if moment == "before_commit" else 3)

    report, streamed = run(consume(empty_stream, state, config()))
    redelivered = 64  # the third batch was never acked: the broker delivers it again
    assert report.messages == MESSAGES - 3 * 64 + redelivered
    assert report.skipped == (redelivered if moment == "after_commit" else 0)
    assert report.applied == MESSAGES - committed
    assert_state_is_batch(state, "mood", trades, tweets)
    assert streamed is not None
    assert_frame_equal(streamed, table, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


def test_republishing_the_same_lines_doubles_nothing(
        empty_stream: str, tmp_path: Path, batch: tuple[pl.DataFrame, ...]) -> None:
    trades, tweets, _ = batch
    run(publish(empty_stream))
    run(consume(empty_stream, tmp_path / "state.duckdb", config()))
    again = run(publish(empty_stream))
    assert (again.messages, again.duplicates, again.first_seq) == (MESSAGES, MESSAGES, None)
    assert run(stream_state(empty_stream)).messages == MESSAGES
    report, _ = run(consume(empty_stream, tmp_path / "state.duckdb", config()))
    assert (report.messages, report.applied) == (0, 0)
    assert_state_is_batch(tmp_path / "state.duckdb", "mood", trades, tweets)


async def pending_and_unacked(url: str, durable: str = "mood") -> tuple[int, int]:
    """The durable's messages not yet delivered and those delivered but not acked."""
    nc = await connect(url)
    info = await nc.jetstream().consumer_info(STREAM, durable)
    await nc.close()
    return info.num_pending, info.num_ack_pending


def test_a_malformed_message_is_quarantined_and_the_stream_goes_on(
        empty_stream: str, tmp_path: Path, batch: tuple[pl.DataFrame, ...]) -> None:
    trades, tweets, table = batch
    lines = list(read_lines([SAMPLE]))
    run(publish(empty_stream, lines[:200]))

    async def publish_bad() -> None:
        nc = await connect(empty_stream)
        js = nc.jetstream()
        for i, (name, data) in enumerate([
                (subject("trades", "BTC"), b'{"coins": ["BTC"], "price": 1'),
                (subject("trades", "BTC"), lines[0].data.replace(b'"price": ', b'"price": "')
                 .replace(b', "sequence"', b'", "sequence"')),
                (subject("sentiments", None), b'{"coins": [], "text": "x"}')]):
            ack = await js.publish(name, data, headers={MSG_ID: f"bad-{i}",
                                                        ORIGIN: f"test:{i}"}, timeout=5)
            assert not ack.duplicate
        await nc.close()

    run(publish_bad())
    run(publish(empty_stream, lines[200:]))
    report, streamed = run(consume(empty_stream, tmp_path / "state.duckdb", config()))
    assert (report.messages, report.quarantined) == (MESSAGES + 3, 3)
    with StateStore(tmp_path / "state.duckdb", "mood") as store:
        quarantine = store.quarantine()
    assert quarantine["origin"].to_list() == ["test:0", "test:1", "test:2"]
    reasons = quarantine["reason"].to_list()
    assert "invalid record" in reasons[0]
    assert "Expected `float`, got `str` - at `$.price`" in reasons[1]
    assert "schema drift" in reasons[2] or "invalid record" in reasons[2]
    assert_state_is_batch(tmp_path / "state.duckdb", "mood", trades, tweets)
    assert streamed is not None
    assert_frame_equal(streamed, table, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
    # quarantined messages were acked, not redelivered
    assert run(pending_and_unacked(empty_stream)) == (0, 0)


def test_headers_a_publisher_chose_neither_hang_nor_crash_the_consumer(
        empty_stream: str, tmp_path: Path, batch: tuple[pl.DataFrame, ...]) -> None:
    """A message with a ``Status`` header of its own was taken for a broker status: never
    applied, quarantined or acked, redelivered for ever. A publishing time that is no
    integer raised before the batch's commit, at every restart (a reviewer)."""
    trades, tweets, _ = batch
    lines = list(read_lines([SAMPLE]))
    run(publish(empty_stream, lines[:100]))

    async def publish_odd() -> None:
        nc = await connect(empty_stream)
        js = nc.jetstream()
        for i, headers in enumerate([{"Status": "503", "Description": "not the broker's"},
                                     {PUBLISHED_NS: "not-a-number"}]):
            await js.publish(subject("trades", "BTC"), b'{"coins": ["BTC"], "price": 1',
                             headers={MSG_ID: f"odd-{i}", ORIGIN: f"odd:{i}", **headers},
                             timeout=5)
        await nc.close()

    run(publish_odd())
    run(publish(empty_stream, lines[100:]))
    report, _ = run(consume(empty_stream, tmp_path / "state.duckdb", config()))
    assert (report.messages, report.quarantined) == (MESSAGES + 2, 2)
    with StateStore(tmp_path / "state.duckdb", "mood") as store:
        assert store.quarantine()["origin"].to_list() == ["odd:0", "odd:1"]
    assert_state_is_batch(tmp_path / "state.duckdb", "mood", trades, tweets)

    assert run(pending_and_unacked(empty_stream)) == (0, 0)


@pytest.mark.parametrize("size", [2 << 20, (1 << 20) - 50])
def test_a_line_larger_than_the_broker_takes_is_named_and_the_replay_goes_on(
        empty_stream: str, size: int) -> None:
    """nats-py refuses a payload above the server's max_payload (1 MiB) before sending it;
    that stopped the replay and the lines after it were never published (a reviewer). Just
    under it, the headers take it over: the server closed the connection (a second one)."""
    lines = list(read_lines([SAMPLE]))[:3]
    head = lines[1].data[:-1] + b', "pad": "'
    huge = Line(lines[1].origin, lines[1].line, lines[1].kind,
                head + b"x" * (size - len(head) - 2) + b'"}')
    assert len(huge.data) == size
    report = run(publish(empty_stream, [lines[0], huge, lines[2]]))
    assert report.lines == 3
    assert report.messages == sum(len(route(line.kind, line.data)) for line in (lines[0],
                                                                                 lines[2]))
    assert len(report.skipped) == 1
    origin, reason = report.skipped[0]
    assert origin == f"{lines[1].origin}:{lines[1].line}"
    assert "above the broker's largest message" in reason
    assert run(stream_state(empty_stream)).messages == report.messages


def test_coin_partitions_consumed_apart_add_up_to_the_batch(
        empty_stream: str, tmp_path: Path, batch: tuple[pl.DataFrame, ...]) -> None:
    trades, tweets, _ = batch
    run(publish(empty_stream))
    partitions = {"btc": ("BTC",), "eth-ltc": ("ETH", "LTC")}

    async def both() -> list[tuple[RunReport, pl.DataFrame | None]]:
        return await asyncio.gather(*[
            consume(empty_stream, tmp_path / f"{name}.duckdb",
                    config(durable=f"mood-{name}", coins=coins, correlation_coins=None))
            for name, coins in partitions.items()])

    reports = run(both())
    assert sum(r.messages for r, _ in reports) == MESSAGES
    for name, coins in partitions.items():
        assert_state_is_batch(tmp_path / f"{name}.duckdb", f"mood-{name}", trades, tweets,
                              coins)


def test_the_demo_replays_the_sample_and_returns_the_batch_table(
        tmp_path: Path, batch: tuple[pl.DataFrame, ...]) -> None:
    *_, table = batch
    result = run_stream_demo(SAMPLE, state_dir=tmp_path, n_boot=200, timeout=TIMEOUT)
    assert (result.published.lines, result.consumed.applied) == (402, MESSAGES)
    assert_frame_equal(result.correlation.filter(pl.col("bucket").is_in(BUCKETS)), table,
                       check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


def test_the_demo_takes_a_path_as_a_string_as_the_docs_show(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a string was iterated as one-character paths: AttributeError: 'str' ... 'read_bytes'
    monkeypatch.chdir(SAMPLE.parents[1])
    for _ in range(2):  # a second run on the same folder starts over (a new broker)
        result = run_stream_demo("samples/cryptomood_sample.zip", state_dir=str(tmp_path),
                                 n_boot=200, timeout=TIMEOUT)
        assert (result.published.lines, result.consumed.applied) == (402, MESSAGES)
        assert result.state_file == tmp_path / "stream-state.duckdb"


def test_the_demo_names_what_it_skipped_and_replays_the_rest(
        tmp_path: Path, batch: tuple[pl.DataFrame, ...]) -> None:
    # the skipped files went into a report of read_lines' own, which nobody returned
    *_, table = batch
    csv = tmp_path / "prices.csv"
    csv.write_text("coin,price\nBTC,1\n")
    result = run_stream_demo([csv, SAMPLE], buckets="PT10S", n_boot=200, timeout=TIMEOUT)
    assert result.published.skipped == [
        (str(csv), "not CryptoMood trade or sentiment JSON lines")]
    assert (result.published.lines, result.consumed.applied) == (402, MESSAGES)
    assert_frame_equal(result.correlation, table.filter(pl.col("bucket") == "PT10S"),
                       check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


def test_the_demo_without_trades_returns_an_empty_table(
        tmp_path: Path, batch: tuple[pl.DataFrame, ...]) -> None:
    # it failed after the replay: "coins must be non-empty and without repeats, not []"
    tweets = tmp_path / "tweets.jsonl"
    with zipfile.ZipFile(SAMPLE) as archive:
        tweets.write_bytes(archive.read("cryptomood/historical_sentiment_data.txt"))
    result = run_stream_demo(tweets, n_boot=200, timeout=TIMEOUT)
    assert (result.published.lines, result.published.skipped) == (94, [])
    assert result.consumed.applied == result.published.messages == 169
    assert result.correlation.is_empty()
    assert result.correlation.schema == batch[-1].schema


def test_demo_sources_are_paths_or_strings_and_must_be_files(tmp_path: Path) -> None:
    assert source_paths(str(SAMPLE)) == [SAMPLE]
    assert source_paths([str(SAMPLE), SAMPLE]) == [SAMPLE, SAMPLE]
    assert source_paths((SAMPLE,)) == [SAMPLE]
    with pytest.raises(FileNotFoundError, match=re.escape(f"not a file: {tmp_path / 'nope.zip'}")):
        run_stream_demo(str(tmp_path / "nope.zip"), timeout=TIMEOUT)
    with pytest.raises(FileNotFoundError, match=re.escape(f"not a file: {tmp_path}")):
        run_stream_demo([SAMPLE, tmp_path], timeout=TIMEOUT)


@pytest.mark.parametrize("moment", ["before_commit", "after_commit"])
def test_keys_are_dropped_behind_the_horizon_but_never_while_a_delivery_waits(
        empty_stream: str, tmp_path: Path, moment: str) -> None:
    """Sixteen copies of the sample, 200 s of event time apart, key horizon ten minutes
    (slots of 150 s), keys dropped after every batch; the BTC partition only, so stream and
    consumer sequences differ. The consumer dies before or after committing a batch of copy
    6; restarted, it goes on, and the broker redelivers that batch after ``ack_wait``, by
    when its records are more than the horizon behind the newest. While it is unacked no
    key may go (a key it holds, or will hold, could be passed): the batch is then applied
    (died before the commit) or skipped (after), never refused as too late."""
    span, copies, horizon = timedelta(seconds=200), 16, "PT10M"
    base = list(read_lines([SAMPLE]))
    lines = [Line(f"copy{k}", line.line, line.kind, shifted(line.data, k, span))
             for k in range(copies) for line in base]
    members = [Member(f"gen://{kind}", kind, b"\n".join(
        line.data for line in lines if line.kind == kind)) for kind in ("trades", "sentiments")]
    tables = ingest_members(Unpacked(members=members), DATASETS).tables
    per_copy = sum(route(line.kind, line.data).count("BTC") for line in base)
    run(publish(empty_stream, lines))
    state = tmp_path / "state.duckdb"
    cfg = config(durable="mood-btc", coins=("BTC",), correlation_coins=None, ack_wait=8.0,
                 prune_every=0.0)
    crashed: list[Sequence[Message]] = []

    def die(delta: Delta, messages: Sequence[Message]) -> None:  # the first batch of copy 6
        if any((m.origin or "").startswith("copy6:") for m in messages):
            crashed.append(messages)
            raise Crash(moment)

    with pytest.raises(Crash):
        run(consume(empty_stream, state, cfg, key_horizon=horizon, **{moment: die}))
    lost = {m.seq for m in crashed[-1]}
    stamps = [datetime.fromisoformat(msgspec.json.decode(m.data)["timestamp"]).timestamp() * 1e6
              for m in crashed[-1] if ".trades." in m.subject]
    copy0 = [datetime.fromisoformat(msgspec.json.decode(line.data)["timestamp"]).timestamp()
             * 1e6 for line in lines[:len(base)] if b'"coins":["BTC"]' in line.data]
    with StateStore(state, cfg.durable, key_horizon=horizon) as store:
        at_restart = store.keys.pruned_before.get(("trades", "BTC"))
    stores: list[StateStore] = []
    # per batch holding the crashed batch's messages: how many, the newest event time held
    # and where keys were dropped (trades of BTC)
    at_redelivery: list[tuple[int, int, int | None]] = []

    def note(delta: Delta, messages: Sequence[Message]) -> None:
        again = sum(m.seq in lost for m in messages)
        if again:
            keys = stores[0].keys
            at_redelivery.append((again, keys.watermarks()[("trades", "BTC")],
                                  keys.pruned_before.get(("trades", "BTC"))))

    async def restarted() -> RunReport:
        nc = await connect(empty_stream)
        try:
            with StateStore(state, cfg.durable, key_horizon=horizon) as store:
                stores.append(store)
                return await MoodConsumer(nc, store, cfg, before_commit=note).run()
        finally:
            await nc.close()

    report = run(restarted(), timeout=TIMEOUT * 2)
    assert report.quarantined == 0
    assert report.skipped == (len(lost) if moment == "after_commit" else 0)
    assert sum(n for n, *_ in at_redelivery) == len(lost)
    _, newest, boundary = at_redelivery[0]
    # what makes this test mean something: when the batch came again, its records were
    # more than the horizon and a slot behind the newest applied
    assert newest - 600e6 - 150e6 > max(stamps)
    # keys had gone past copy 0 before the crash, and none went while the batch waited
    assert at_restart is not None and at_restart > max(copy0)
    assert boundary == at_restart
    assert_state_is_batch(state, "mood-btc", tables["coin_trades"],
                          tables["tweet_sentiments"], ("BTC",))
    with StateStore(state, "mood-btc", key_horizon=horizon) as store:
        assert store.keys.pruned_before[("trades", "BTC")] > boundary  # and went after
        assert store.keys_in_file() == len(store.keys) <= 5 * per_copy


def test_a_durable_with_another_filter_or_another_durables_file_is_refused(
        empty_stream: str, tmp_path: Path) -> None:
    """A filtered durable's ack floor passes other subjects' sequences: a state file built
    under one filter cannot go on under another, nor under another durable's name."""
    run(publish(empty_stream, list(read_lines([SAMPLE]))[:50]))
    state = tmp_path / "state.duckdb"
    btc = config(durable="mood-p", coins=("BTC",), correlation_coins=None)
    run(consume(empty_stream, state, btc))
    wider = config(durable="mood-p", coins=("BTC", "ETH"), correlation_coins=None)
    with pytest.raises(ValueError, match=r"with subjects cryptomood\.sentiments\.BTC,"):
        run(consume(empty_stream, state, wider))  # the file says BTC only
    with pytest.raises(ValueError, match=r"durable mood-p on stream CRYPTOMOOD filters "):
        run(consume(empty_stream, tmp_path / "fresh.duckdb", wider))  # the durable does

    async def drop_durable() -> None:
        nc = await connect(empty_stream)
        await nc.jetstream().delete_consumer(STREAM, "mood-p")
        await nc.close()

    run(drop_durable())  # created again with the wider filter: the file still says BTC only
    with pytest.raises(ValueError, match=r"with subjects cryptomood\.sentiments\.BTC,"):
        run(consume(empty_stream, state, wider))

    async def durable_left() -> bool:
        nc = await connect(empty_stream)
        try:
            await nc.jetstream().consumer_info(STREAM, "mood-p")
        except nats.js.errors.NotFoundError:
            return False
        finally:
            await nc.close()
        return True

    assert not run(durable_left())  # refused before a durable was made

    async def other_name() -> None:
        nc = await connect(empty_stream)
        try:
            with StateStore(state, "mood-p") as store:
                await MoodConsumer(nc, store, config(durable="mood-q")).start()
        finally:
            await nc.close()

    with pytest.raises(ValueError, match="the state of consumer mood-p, not of the durable"):
        run(other_name())


@pytest.mark.parametrize("buckets", [(*BUCKETS, "PT5S"), ("PT10S", "PT60S"), ("PT10S",)])
def test_a_state_file_restarted_with_other_buckets_is_refused(
        buckets: tuple[str, ...], empty_stream: str, tmp_path: Path) -> None:
    """A bucket added on a restart would start at the ack floor, missing every message applied
    before it (a QA walkthrough: 108 of 308 trades, correlations of the wrong sign); one
    spelled anew (PT60S for PT1M) would find no aggregates. Refused before anything is read;
    the same buckets in another order are the same grid."""
    assert BUCKETS == ("PT10S", "PT1M")
    run(publish(empty_stream, list(read_lines([SAMPLE]))[:50]))
    state = tmp_path / "state.duckdb"
    first, _ = run(consume(empty_stream, state, config(durable="mood-b")))
    assert first.applied > 0
    with pytest.raises(ValueError, match=(
            rf"keeps aggregates on the buckets PT10S,PT1M, not {','.join(sorted(buckets))} ")):
        run(consume(empty_stream, state, config(durable="mood-b", buckets=buckets)))
    again, _ = run(consume(empty_stream, state,
                           config(durable="mood-b", buckets=tuple(reversed(BUCKETS)))))
    assert again.applied == 0  # nothing new: the same grid went on


def test_a_state_file_from_before_the_grid_was_recorded_gets_the_grid_it_holds(
        empty_stream: str, tmp_path: Path) -> None:
    """An existing file is not refused as another version (a reviewer): its grid is the
    buckets its aggregates are on, and a restart with another grid is refused as ever."""
    run(publish(empty_stream, list(read_lines([SAMPLE]))[:50]))
    state = tmp_path / "state.duckdb"
    run(consume(empty_stream, state, config(durable="mood-u")))
    with duckdb.connect(str(state)) as con:  # the layout of the previous release
        con.execute("ALTER TABLE stream_identity DROP COLUMN buckets")
    with pytest.raises(ValueError, match="keeps aggregates on the buckets PT10S,PT1M, not PT5S"):
        run(consume(empty_stream, state, config(durable="mood-u", buckets=("PT5S",))))
    again, _ = run(consume(empty_stream, state, config(durable="mood-u")))
    assert again.messages == 0


def test_a_restarted_consumer_has_its_table_with_nothing_new(
        empty_stream: str, tmp_path: Path) -> None:
    """The table comes from the file's aggregates on a restart (it stayed None: QA)."""
    run(publish(empty_stream))
    state = tmp_path / "state.duckdb"
    first, table = run(consume(empty_stream, state, config(durable="mood-r")))
    assert first.applied > 0 and table is not None and table.height > 0
    again, restarted = run(consume(empty_stream, state, config(durable="mood-r")))
    assert again.messages == 0
    assert restarted is not None
    assert_frame_equal(restarted, table)


def test_a_state_file_behind_its_durable_is_refused(empty_stream: str, tmp_path: Path) -> None:
    """A file that lacks messages the durable has acked (a consumer started without its
    volume, or on a file restored from an older copy) would silently miss them forever: it
    is refused. The durable's own file is not, even with an ack floor past other subjects'
    sequences; with the durable deleted, a new file rebuilds it all."""
    lines = list(read_lines([SAMPLE]))
    btc = config(durable="mood-b", coins=("BTC",), correlation_coins=None)
    state, copy = tmp_path / "state.duckdb", tmp_path / "older.duckdb"
    run(publish(empty_stream, lines[:100]))
    first, _ = run(consume(empty_stream, state, btc))
    assert first.applied > 0
    copy.write_bytes(state.read_bytes())  # a backup, taken now
    run(publish(empty_stream, lines[100:250]))
    run(consume(empty_stream, state, btc))
    run(publish(empty_stream, [line for line in lines[250:] if b"BTC" not in line.data][:20]))
    with StateStore(state, "mood-b") as store:
        own = store.progress()

    async def check_with_floor_at_the_end() -> tuple[int, int]:
        """The guard as the consumer runs it, on the durable's info with its ack floor
        moved to the stream's last sequence (past the ETH and LTC messages after the last
        BTC one), as a server may report for a filtered durable with nothing pending."""
        nc = await connect(empty_stream)
        try:
            js = nc.jetstream()
            info = await js.consumer_info(STREAM, "mood-b")
            last = (await js.stream_info(STREAM)).state.last_seq
            moved = dataclasses.replace(info, ack_floor=dataclasses.replace(
                info.ack_floor, stream_seq=last))
            with StateStore(state, "mood-b") as store:
                consumer = MoodConsumer(nc, store, btc)
                await consumer._refuse_a_file_behind_the_durable(
                    moved, partition_filter(("BTC",)))
        finally:
            await nc.close()
        return info.ack_floor.stream_seq, last

    floor, last = run(check_with_floor_at_the_end())  # no error: nothing of BTC after it
    assert own.applied_seq == floor < last
    again, _ = run(consume(empty_stream, state, btc))  # its own file goes on
    assert again.messages == 0
    for stale, applied in ((tmp_path / "new.duckdb", "0"), (copy, r"\d+")):
        with pytest.raises(ValueError, match=(
                rf"{re.escape(stale.name)}: applied stream CRYPTOMOOD through sequence "
                rf"{applied}, but durable mood-b has acked through {floor}, message \d+ "
                r"\(cryptomood\.\w+\.BTC\) included")):
            run(consume(empty_stream, stale, btc))

    async def drop_durable() -> None:
        nc = await connect(empty_stream)
        await nc.jetstream().delete_consumer(STREAM, "mood-b")
        await nc.close()

    run(drop_durable())
    rebuilt, _ = run(consume(empty_stream, tmp_path / "new.duckdb", btc))
    assert rebuilt.applied == own.applied
    with StateStore(tmp_path / "new.duckdb", "mood-b") as store:
        assert store.progress().applied_seq == own.applied_seq


def test_a_batch_whose_commit_failed_holds_the_drop_until_it_comes_again(
        empty_stream: str, tmp_path: Path) -> None:
    """In one process: the commit of the first batch of copy 6 (of 10) fails and the caller
    runs on. Keys stop going until the broker has delivered that batch again (after
    ``ack_wait``) and it is acked, then go on; every record is applied once."""
    span, copies, horizon = timedelta(seconds=200), 10, "PT10M"
    base = list(read_lines([SAMPLE]))
    lines = [Line(f"copy{k}", line.line, line.kind, shifted(line.data, k, span))
             for k in range(copies) for line in base]
    run(publish(empty_stream, lines))
    part = ("trades", "BTC")
    failed: list[int] = []
    seen: dict[str, int | None] = {}
    stores: list[StateStore] = []

    def fail_once(delta: Delta, messages: Sequence[Message]) -> None:
        copy6 = any((m.origin or "").startswith("copy6:") for m in messages)
        if copy6 and not failed:
            failed.extend(m.seq for m in messages)
            seen["at_failure"] = stores[0].keys.pruned_before.get(part)
            raise Crash("before_commit")
        if failed and failed[0] in {m.seq for m in messages}:
            seen["at_redelivery"] = stores[0].keys.pruned_before.get(part)

    async def go() -> tuple[int, int]:
        nc = await connect(empty_stream)
        try:
            with StateStore(tmp_path / "state.duckdb", "mood", key_horizon=horizon) as store:
                stores.append(store)
                consumer = MoodConsumer(nc, store, config(prune_every=0.0, ack_wait=3.0,
                                                          batch=256),
                                        before_commit=fail_once)
                with contextlib.suppress(Crash):
                    await consumer.run()
                due = consumer.redelivery_due_through
                await consumer.run()  # the failed batch comes again after ack_wait
                return due, store.progress().applied
        finally:
            await nc.close()

    due, applied = run(go(), timeout=60.0)  # 4,020 messages and a 3 s ack_wait, on a busy CI
    assert due == max(failed)
    assert applied == copies * MESSAGES
    assert seen["at_failure"] is not None  # keys had gone before the failure,
    assert seen["at_redelivery"] == seen["at_failure"]  # none while the batch waited,
    assert (stores[0].keys.pruned_before[part] or 0) > seen["at_failure"]  # and after


def test_a_durable_created_again_holds_the_drop_until_it_has_replayed(
        empty_stream: str, tmp_path: Path) -> None:
    """A new durable delivers the stream from its start; whatever an earlier worker left
    uncommitted is in it, so no key goes until the floor passes the stream's last message."""
    run(publish(empty_stream))
    state = tmp_path / "state.duckdb"
    run(consume(empty_stream, state, config()))

    async def again() -> int:
        nc = await connect(empty_stream)
        try:
            await nc.jetstream().delete_consumer(STREAM, "mood")
            with StateStore(state, "mood") as store:
                consumer = MoodConsumer(nc, store, config())
                await consumer.start()
                return consumer.redelivery_due_through
        finally:
            await nc.close()

    assert run(again()) == MESSAGES


def test_no_ack_floor_from_the_broker_skips_the_drop_and_says_so(
        empty_stream: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Dropping keys is housekeeping: a failed ``consumer_info`` must not end the run."""
    run(publish(empty_stream, list(read_lines([SAMPLE]))[:50]))

    async def prune_without_durable() -> int:
        nc = await connect(empty_stream)
        try:
            with StateStore(tmp_path / "state.duckdb", "mood") as store:
                consumer = MoodConsumer(nc, store, config())
                await consumer.run()
                await consumer.js.delete_consumer(STREAM, "mood")
                return await consumer.prune()
        finally:
            await nc.close()

    assert run(prune_without_durable()) == 0
    assert "no ack floor from the broker" in caplog.text


def test_a_state_file_of_a_stream_created_again_is_refused(
        empty_stream: str, tmp_path: Path) -> None:
    """Sequences restart at 1 in a stream created again: the file's keys, floor and
    quarantine no longer mean anything there, so the consumer refuses to start on it."""
    run(publish(empty_stream, list(read_lines([SAMPLE]))[:50]))
    run(consume(empty_stream, tmp_path / "state.duckdb", config()))

    async def recreate() -> None:
        nc = await connect(empty_stream)
        await nc.jetstream().delete_stream(STREAM)
        await ensure_stream(nc.jetstream())
        await nc.close()

    run(recreate())
    with pytest.raises(ValueError, match=r"state\.duckdb: this state was built from stream "
                       r"CRYPTOMOOD created .*, not from stream CRYPTOMOOD created"):
        run(consume(empty_stream, tmp_path / "state.duckdb", config()))


def test_a_server_that_cannot_start_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nats-server"), \
            jetstream_server(tmp_path, binary=tmp_path / "no-such-server"):
        pass



def test_the_demo_runs_inside_a_running_event_loop() -> None:
    """From a notebook or an async caller: a loop already runs in this thread."""
    async def caller() -> DemoResult:
        return run_stream_demo(timeout=TIMEOUT)

    # In a thread of its own: the session's Playwright browser keeps a loop running in this
    # worker's main thread, where asyncio.run would be refused before the test even starts.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(asyncio.run, caller()).result(timeout=TIMEOUT * 2)
    assert result.consumed.applied == result.published.messages
