"""The stream consumer's pure core (issue 10, scope 4): routing, validation, idempotent apply.

No broker here: messages are built from the shipped sample as the replayer would publish
them, and applied through ``prepare`` + a DuckDB ``StateStore`` in a temporary folder. The
reference is the batch path (the lake engine's tables through ``cryptodudez.mood``).
"""

import dataclasses
import math
import random
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from nats.aio.client import Client
from polars.testing import assert_frame_equal

from cryptodudez.archives import Member, Unpacked
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.ingest import ingest_members
from cryptodudez.mood.stats import correlation_table
from cryptodudez.stream.apply import Message, prepare
from cryptodudez.stream.broker import parse_subject, subject
from cryptodudez.stream.consumer import ConsumerConfig, MoodConsumer
from cryptodudez.stream.correlation import correlation_from_aggregates
from cryptodudez.stream.replay import message_id, read_lines, route
from cryptodudez.stream.state import StateStore
from tests.stream_helpers import assert_aggregates_are_batch

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cryptomood_sample.zip"
COINS = ("BTC", "ETH", "LTC")
BUCKETS = ("PT10S", "PT1M")
TRADE = (b'{"coins": ["BTC"], "price": 6101.5, "sequence": 1, "size": 1.5, '
         b'"symbol_id": "COINBASE_SPOT_BTC_USD", "taker_side": "BUY", '
         b'"timestamp": "2018-07-16T20:11:52.628113Z", '
         b'"time_exchange": "2018-07-16T20:11:52.628113Z", "type": "trade", "uuid": "u-1"}')


def sample_messages() -> list[Message]:
    messages: list[Message] = []
    for line in read_lines([SAMPLE]):
        for coin in route(line.kind, line.data):
            messages.append(Message(len(messages) + 1, subject(line.kind, coin), line.data,
                                    f"{line.origin}:{line.line}"))
    return messages


@pytest.fixture(scope="module")
def batch() -> tuple[pl.DataFrame, pl.DataFrame]:
    with zipfile.ZipFile(SAMPLE) as archive:
        members = [Member(f"zip://{n}", n, archive.read(n)) for n in archive.namelist()]
    result = ingest_members(Unpacked(members=members), DATASETS)
    return result.tables["coin_trades"], result.tables["tweet_sentiments"]


def apply_all(store: StateStore, messages: list[Message], size: int) -> None:
    for start in range(0, len(messages), size):
        store.commit(prepare(messages[start:start + size], buckets=BUCKETS, keys=store.keys,
                             quarantined=store.quarantined))


def assert_matches_batch(store: StateStore, trades: pl.DataFrame,
                         tweets: pl.DataFrame) -> None:
    assert_aggregates_are_batch(store, trades, tweets, coins=COINS, buckets=BUCKETS)


# --- routing --------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "data", "coins"), [
    ("trades", TRADE, ["BTC"]),
    ("trades", b'{"coins": ["BTC", "ETH"]}', [None]),
    ("trades", b'{"coins": ["btc"]}', [None]),
    ("trades", b"not json", [None]),
    ("sentiments", b'{"coins": ["ETH", "BTC", "ETH"]}', ["ETH", "BTC"]),
    ("sentiments", b'{"coins": ["ETH", "b.c"]}', ["ETH"]),
    ("sentiments", b'{"coins": []}', [None]),
    ("sentiments", b'{"coins": "BTC"}', [None]),
])
def test_route_sends_a_line_to_each_coin_subject_or_to_unrouted(
        kind: str, data: bytes, coins: list[str | None]) -> None:
    assert route(kind, data) == coins


def test_subjects_round_trip_and_message_ids_depend_on_coin_and_bytes() -> None:
    assert parse_subject(subject("trades", "BTC")) == ("trades", "BTC")
    assert parse_subject(subject("sentiments", None)) == ("sentiments", None)
    with pytest.raises(ValueError, match="cryptomood"):
        parse_subject("other.trades.BTC")
    assert message_id("trades", "BTC", TRADE) == message_id("trades", "BTC", TRADE)
    assert message_id("sentiments", "BTC", TRADE) != message_id("sentiments", "ETH", TRADE)
    assert message_id("trades", "BTC", TRADE) != message_id("trades", "BTC", TRADE + b" ")


def test_the_replay_reads_the_402_lines_and_fans_tweets_out_per_coin() -> None:
    lines = list(read_lines([SAMPLE]))
    assert len(lines) == 402
    assert [line.kind for line in lines] == ["trades"] * 308 + ["sentiments"] * 94
    assert len(sample_messages()) == 308 + sum(len(route(x.kind, x.data)) for x in lines[308:])


# --- applying batches -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 1000])
def test_any_batching_gives_the_batch_series_and_correlation(
        tmp_path: Path, batch: tuple[pl.DataFrame, pl.DataFrame], size: int) -> None:
    trades, tweets = batch
    with StateStore(tmp_path / "state.duckdb", "t") as store:
        apply_all(store, sample_messages(), size)
        assert_matches_batch(store, trades, tweets)
        streamed = correlation_from_aggregates(
            store.price_aggregates(), store.sentiment_aggregates(), coins=COINS,
            buckets=BUCKETS, max_lag=2, tolerance_buckets=1, n_boot=200)
    expected = correlation_table(trades, tweets, coins=COINS, buckets=BUCKETS, max_lag=2,
                                 tolerance_buckets=1, n_boot=200)
    assert_frame_equal(streamed, expected, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


def test_a_correlation_window_is_the_batch_from_the_window_start(
        tmp_path: Path, batch: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    """With ``correlation_window``, the consumer's table is the batch's over trades and
    tweets from each grid's first whole bucket inside the trailing window."""
    trades, tweets = batch
    window = ConsumerConfig(correlation_window="PT2M", correlation_coins=COINS,
                            buckets=BUCKETS, tolerance_buckets=1, n_boot=200)
    with StateStore(tmp_path / "state.duckdb", "t") as store:
        apply_all(store, sample_messages(), 1000)
        consumer = MoodConsumer(Client(), store, window)
        streamed = consumer.refresh()
        everything = MoodConsumer(Client(), store, dataclasses.replace(
            window, correlation_window=None)).refresh()
    since = trades["ts"].max() - timedelta(minutes=2)
    starts = {b: datetime.fromtimestamp(math.ceil(since.timestamp() / w) * w, UTC)
              for b, w in (("PT10S", 10), ("PT1M", 60))}
    assert consumer.window_starts == starts
    expected = pl.concat([correlation_table(trades, tweets, coins=COINS, buckets=[b],
                                            start=start, max_lag=2, tolerance_buckets=1,
                                            n_boot=200) for b, start in starts.items()])
    assert streamed is not None and everything is not None
    key = ["coin", "bucket", "lag"]
    assert_frame_equal(streamed.drop("q_value").sort(key), expected.drop("q_value").sort(key),
                       check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
    shorter = streamed.join(everything, on=key).filter(pl.col("n") < pl.col("n_right"))
    assert shorter.height == streamed.height  # every series is cut by the window
    assert streamed.filter(pl.col("pearson_r").is_not_null()).height > 0


@pytest.mark.parametrize("text", ["P40D", "1d", "PT0S", "P1W"])
def test_a_bad_correlation_window_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match=rf"^correlation_window: '{text}' "):
        ConsumerConfig(correlation_window=text)


def test_delivery_order_does_not_matter_ties_go_to_the_later_sequence(
        tmp_path: Path, batch: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    messages = sample_messages()
    random.Random(7).shuffle(messages)
    with StateStore(tmp_path / "state.duckdb", "t") as store:
        apply_all(store, messages, 25)
        assert_matches_batch(store, *batch)


def test_redeliveries_are_skipped_and_a_record_under_another_sequence_is_a_duplicate(
        tmp_path: Path, batch: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    messages = sample_messages()
    with StateStore(tmp_path / "state.duckdb", "t") as store:
        apply_all(store, messages, 100)
        again = prepare(messages[:50], buckets=BUCKETS, keys=store.keys,
                        quarantined=store.quarantined)
        assert (again.skipped, again.keys.height, again.quarantine.height) == (50, 0, 0)
        assert again.prices.height == again.sentiments.height == 0
        copy = Message(10_000, messages[0].subject, messages[0].data)
        later = prepare([copy], buckets=BUCKETS, keys=store.keys, quarantined=store.quarantined)
        assert later.quarantine["reason"].to_list() == [
            f"duplicate key (uuid) {store_key(messages[0])}: applied before from stream "
            "sequence 1"]
        store.commit(later)
        assert_matches_batch(store, *batch)
        assert store.progress().quarantined == 1


def store_key(message: Message) -> str:
    return message.data.split(b'"uuid": "')[1].split(b'"')[0].decode()


MALFORMED = [
    ("cryptomood.trades.BTC", b'{"coins": ["BTC"], "price": ',
     "invalid record: Input data was truncated|none of the first 50 lines is a JSON object"),
    ("cryptomood.trades.BTC", TRADE.replace(b"6101.5", b'"6101.5"'), "Expected `float`"),
    ("cryptomood.trades.BTC", TRADE.replace(b"6101.5", b"-1.0"), "price"),
    ("cryptomood.trades.ETH", TRADE, "a trade of BTC published on subject cryptomood.trades.ETH"),
    ("cryptomood.trades._unrouted", TRADE.replace(b'["BTC"]', b'["BTC", "ETH"]'),
     "exactly one coin"),
    ("cryptomood.sentiments.ETH",
     b'{"coins": ["BTC"], "sentiment_polarity": 0.5, "text": "x", '
     b'"timestamp": "2018-07-16T20:11:52Z"}',
     "a tweet about BTC published on subject cryptomood.sentiments.ETH"),
    ("cryptomood.trades.BTC", b"", "empty message"),
    ("cryptomood.trades.BTC", TRADE + b"\n" + TRADE, "line break"),
    ("cryptomood.trades.BTC", b"\x00\x01", "invalid record|binary content \\(NUL bytes\\)"),
    ("elsewhere.trades.BTC", TRADE, "is not cryptomood"),
]


@pytest.mark.parametrize("alone", [False, True], ids=["among-good-lines", "alone"])
def test_malformed_messages_are_quarantined_with_the_engines_reason(
        tmp_path: Path, batch: tuple[pl.DataFrame, pl.DataFrame], alone: bool) -> None:
    good = sample_messages()
    bad = [Message(10_000 + i, name, data, f"test:{i}")
           for i, (name, data, _) in enumerate(MALFORMED)]
    with StateStore(tmp_path / "state.duckdb", "t") as store:
        if alone:  # a batch of malformed messages only: members rejected whole, then apart
            for message in bad:
                store.commit(prepare([message], buckets=BUCKETS, keys=store.keys,
                                     quarantined=store.quarantined))
            apply_all(store, good, 100)
        else:
            mixed = good[:150] + bad + good[150:]
            apply_all(store, mixed, len(mixed))
        quarantine = store.quarantine()
        assert quarantine["seq"].to_list() == [m.seq for m in bad]
        for (_, _, reason), got in zip(MALFORMED, quarantine["reason"], strict=True):
            assert re.search(reason, got), (reason, got)
        assert quarantine["origin"].to_list() == [m.origin for m in bad]
        assert_matches_batch(store, *batch)
        again = prepare(bad, buckets=BUCKETS, keys=store.keys, quarantined=store.quarantined)
        assert (again.skipped, again.quarantine.height) == (len(bad), 0)


def test_a_failed_commit_leaves_no_trace(tmp_path: Path,
                                         batch: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    messages = sample_messages()
    with StateStore(tmp_path / "state.duckdb", "t") as store:
        apply_all(store, messages[:100], 100)
        delta = prepare(messages[100:], buckets=BUCKETS, keys=store.keys,
                        quarantined=store.quarantined)
        broken = pl.DataFrame({"seq": [None]}, schema={"seq": pl.Int64})
        bad = type(delta)(**{**delta.__dict__, "quarantine": delta.quarantine.vstack(
            broken.with_columns(subject=pl.lit("x"), origin=pl.lit(None, pl.String),
                                raw=pl.lit(None, pl.String), reason=pl.lit("r")))})
        with pytest.raises(Exception, match=r"NOT NULL|null"):
            store.commit(bad)
        assert store.progress().applied == 100
        assert len(store.keys) == 100
    with StateStore(tmp_path / "state.duckdb", "t") as store:
        assert len(store.keys) == 100
        apply_all(store, messages[100:], 1000)
        assert_matches_batch(store, *batch)


def test_a_key_twice_in_a_batch_validated_apart_is_applied_once(tmp_path: Path) -> None:
    """A NUL byte makes the engine reject the subject's member whole, so its messages are
    validated one by one and the engine never compares them: the batch must."""
    batch = [Message(1, "cryptomood.trades.BTC", b"\x00\x01"),
             Message(3, "cryptomood.trades.BTC", TRADE),
             Message(2, "cryptomood.trades.BTC", TRADE)]
    with StateStore(tmp_path / "state.duckdb", "t") as store:
        delta = prepare(batch, buckets=BUCKETS, keys=store.keys, quarantined=store.quarantined)
        assert delta.keys["seq"].to_list() == [2]  # the earlier sequence wins
        assert delta.quarantine["reason"].to_list()[1] == (
            "duplicate key (uuid) u-1: applied before from stream sequence 2")
        store.commit(delta)  # no primary-key violation: the batch is not a poison pill
        assert (store.progress().applied, store.progress().quarantined) == (1, 2)


def test_a_sequence_twice_in_a_batch_counts_once(tmp_path: Path) -> None:
    message = Message(7, "cryptomood.trades.BTC", TRADE)
    with StateStore(tmp_path / "state.duckdb", "t") as store:
        delta = prepare([message, message], buckets=BUCKETS, keys=store.keys,
                        quarantined=store.quarantined)
        assert (delta.keys.height, delta.skipped, delta.quarantine.height) == (1, 1, 0)
        assert delta.prices["trades"].to_list() == [1, 1]
