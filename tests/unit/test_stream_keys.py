"""The stream consumer's record keys are kept for a horizon of event time, not forever.

A stream that runs for months must not hold every key it ever applied. The keys of records
older than the newest applied record minus the horizon are dropped, but only once the broker
has them acked (at or below the durable's ack floor): an unacked message may be redelivered
and must then be recognised. A record older than where keys were dropped is quarantined as
too late, never applied blindly. The reference is the batch path over the same lines.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import msgspec
import polars as pl
import pytest

from cryptodudez.archives import Member, Unpacked
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.ingest import ingest_members
from cryptodudez.stream.apply import Message, prepare
from cryptodudez.stream.broker import subject
from cryptodudez.stream.replay import read_lines, route, shifted
from cryptodudez.stream.state import AppliedKeys, StateStore
from tests.stream_helpers import assert_aggregates_are_batch

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cryptomood_sample.zip"
BUCKETS = ("PT10S", "PT1M")
SPAN = timedelta(seconds=200)  # the sample spans about 188 s: copies never overlap
COPIES = 24  # 80 minutes of event time
COINS = ("BTC", "ETH", "LTC")
PER_COPY = 477  # messages of one copy of the sample
HORIZON = "PT10M"  # slots of 150 s


def copies(n: int) -> list[list[Message]]:
    """The sample's messages ``n`` times, copy ``k`` shifted by ``k * SPAN``, seqs in order."""
    base = list(read_lines([SAMPLE]))
    out: list[list[Message]] = []
    seq = 0
    for k in range(n):
        batch = []
        for line in base:
            data = shifted(line.data, k, SPAN)
            for coin in route(line.kind, data):
                seq += 1
                batch.append(Message(seq, subject(line.kind, coin), data, f"copy{k}:{line.line}"))
        out.append(batch)
    return out


@pytest.fixture(scope="module")
def stream() -> list[list[Message]]:
    return copies(COPIES)


@pytest.fixture(scope="module")
def batch(stream: list[list[Message]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The engine's tables over every copy's lines (each tweet once, as landed)."""
    lines: dict[str, list[bytes]] = {"trades": [], "sentiments": []}
    for messages in stream:
        seen: set[bytes] = set()
        for m in messages:
            kind = m.subject.split(".")[1]
            if m.data not in seen:
                seen.add(m.data)
                lines[kind].append(m.data)
    members = [Member(f"gen://{kind}.jsonl", f"{kind}.jsonl", b"\n".join(rows))
               for kind, rows in lines.items()]
    result = ingest_members(Unpacked(members=members), DATASETS)
    return result.tables["coin_trades"], result.tables["tweet_sentiments"]


def apply(store: StateStore, messages: list[Message]) -> None:
    store.commit(prepare(messages, buckets=BUCKETS, keys=store.keys,
                         quarantined=store.quarantined))


def assert_matches_batch(store: StateStore, trades: pl.DataFrame,
                         tweets: pl.DataFrame) -> None:
    assert_aggregates_are_batch(store, trades, tweets, coins=COINS, buckets=BUCKETS)


def newest_us(messages: list[Message]) -> int:
    """The newest event time of a copy (microseconds), read from its ``timestamp`` fields."""
    stamps = [msgspec.json.decode(m.data)["timestamp"] for m in messages]
    newest = max(datetime.fromisoformat(s) for s in stamps)
    return int(newest.timestamp() * 1_000_000)


def test_keys_behind_the_horizon_are_dropped_and_the_result_is_still_the_batch(
        tmp_path: Path, stream: list[list[Message]],
        batch: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    held: list[int] = []
    with StateStore(tmp_path / "s.duckdb", "t", key_horizon=HORIZON) as store:
        for messages in stream:
            apply(store, messages)
            store.prune(ack_floor=messages[-1].seq)  # everything so far acked
            held.append(len(store.keys))
            assert store.keys_in_file() == len(store.keys)
        assert_matches_batch(store, *batch)
        progress = store.progress()
        assert (progress.applied, progress.quarantined) == (COPIES * PER_COPY, 0)
        # the horizon (600 s) plus at most one slot (150 s) of keys: 4 or 5 copies of 200 s
        assert max(held[8:]) <= 5 * PER_COPY < COPIES * PER_COPY
        assert held[-1] >= 3 * PER_COPY  # what is inside the horizon stays
        boundaries = dict(store.keys.pruned_before)
        assert set(boundaries) == {("trades", c) for c in COINS} | {
            ("sentiments", c) for c in COINS}
        for part, newest in store.keys.watermarks().items():
            # one µs after the newest key dropped: a slot or two behind the horizon
            assert newest - 600e6 - 2 * 150e6 < boundaries[part] <= newest - 600e6
    with StateStore(tmp_path / "s.duckdb", "t", key_horizon=HORIZON) as again:
        assert (len(again.keys), again.keys.pruned_before) == (held[-1], boundaries)


def test_a_record_older_than_the_dropped_keys_is_quarantined_as_too_late(
        tmp_path: Path, stream: list[list[Message]],
        batch: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    with StateStore(tmp_path / "s.duckdb", "t", key_horizon=HORIZON) as store:
        for messages in stream:
            apply(store, messages)
            store.prune(ack_floor=messages[-1].seq)
        next_seq = stream[-1][-1].seq + 1
        old = stream[0][0]  # a trade of copy 0, its key long dropped, published again
        recent = stream[-1][0]  # a trade of the newest copy, its key held
        late = prepare([Message(next_seq, old.subject, old.data),
                        Message(next_seq + 1, recent.subject, recent.data)],
                       buckets=BUCKETS, keys=store.keys, quarantined=store.quarantined)
        reasons = late.quarantine["reason"].to_list()
        assert reasons[0].startswith("too late: event time 2018-07-16T20:11:51.747745+00:00 is "
                                     "before 2018-07-16T")
        assert "cannot be checked for a duplicate" in reasons[0]
        assert reasons[1].startswith("duplicate key (uuid) ")
        assert late.keys.height == 0
        store.commit(late)
        assert_matches_batch(store, *batch)  # nothing counted twice


def test_keys_of_unacked_messages_are_kept_and_their_redelivery_is_skipped(
        tmp_path: Path, stream: list[list[Message]],
        batch: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    with StateStore(tmp_path / "s.duckdb", "t", key_horizon=HORIZON) as store:
        apply(store, stream[0])
        apply(store, stream[1])
        floor = stream[0][-1].seq  # copy 0 acked; copy 1 committed but its acks lost
        for messages in stream[2:]:
            apply(store, messages)
            store.prune(ack_floor=floor)
        assert store.keys.pruned_before
        assert all(store.keys.get(("trades", m.subject.split(".")[2],
                                   m.data.split(b'"uuid":"')[1].split(b'"')[0].decode()))
                   == m.seq for m in stream[1] if ".trades." in m.subject)
        redelivered = prepare(stream[1], buckets=BUCKETS, keys=store.keys,
                              quarantined=store.quarantined)
        assert (redelivered.skipped, redelivered.quarantine.height,
                redelivered.keys.height) == (PER_COPY, 0, 0)
        store.commit(redelivered)
        assert_matches_batch(store, *batch)
        assert store.prune(ack_floor=stream[-1][-1].seq) > 0  # acked now: dropped
        assert len(store.keys) <= 5 * PER_COPY


def test_quarantined_sequences_leave_memory_once_acked_and_stay_in_the_file(
        tmp_path: Path, stream: list[list[Message]]) -> None:
    broken = Message(1, "cryptomood.trades.BTC", b'{"coins": ["BTC"], "price": ')
    with StateStore(tmp_path / "s.duckdb", "t", key_horizon=HORIZON) as store:
        apply(store, [broken])
        assert store.quarantined == {1}
        again = prepare([broken], buckets=BUCKETS, keys=store.keys,
                        quarantined=store.quarantined)
        assert (again.skipped, again.quarantine.height) == (1, 0)  # a redelivery
        store.prune(ack_floor=0)
        assert store.quarantined == {1}  # not acked yet: kept
        store.prune(ack_floor=1)
        assert store.quarantined == set()
        assert store.quarantine()["seq"].to_list() == [1]
    with StateStore(tmp_path / "s.duckdb", "t", key_horizon=HORIZON) as again_open:
        assert again_open.quarantined == set()
        assert again_open.ack_floor == 1


def test_keys_go_slot_by_slot_up_to_the_first_slot_with_an_unacked_message() -> None:
    keys = AppliedKeys(slot_us=100)
    btc, eth = ("trades", "BTC"), ("trades", "ETH")
    keys.add([(*btc, "a", 1, 50), (*btc, "b", 2, 150), (*btc, "c", 5, 250),
              (*btc, "d", 3, 350), (*btc, "e", 4, 650), (*eth, "f", 6, 120)])
    # per part: the slots ending by its newest event time minus the horizon, up to the
    # first with a message above the floor; one µs after the newest key that goes
    assert keys.droppable(horizon_us=300, now_us=10**6, ack_floor=10) == {btc: 251}
    # a part's newest slot never goes: ETH keeps its one key even with no horizon at all
    assert keys.droppable(horizon_us=0, now_us=10**6, ack_floor=10) == {btc: 351}
    assert keys.droppable(horizon_us=300, now_us=10**6, ack_floor=4) == {btc: 151}
    assert keys.droppable(horizon_us=300, now_us=10**6, ack_floor=0) == {}
    assert keys.droppable(horizon_us=300, now_us=350, ack_floor=10) == {}  # the clock caps
    assert keys.drop_before({btc: 151}) == 2
    assert (keys.get((*btc, "a")), keys.get((*btc, "c")), keys.get((*eth, "f"))) == (None, 5, 6)
    assert (keys.too_late((*btc, "x"), 150), keys.too_late((*btc, "x"), 151)) == (True, False)
    assert not keys.too_late((*eth, "x"), 0)  # ETH dropped nothing: nothing too late
    with pytest.raises(ValueError, match="keys were dropped up to 151; 100 is earlier"):
        keys.drop_before({btc: 100})


def test_each_kind_and_coin_keeps_its_own_event_time(
        tmp_path: Path, stream: list[list[Message]],
        batch: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    """Every trade of the 24 copies first, then every tweet: the trades' keys go as the
    trades advance, and the tweets (80 minutes older than the newest trade) are still
    applied, since no tweet key was dropped."""
    trades = [m for messages in stream for m in messages if ".trades." in m.subject]
    tweets = [m for messages in stream for m in messages if ".sentiments." in m.subject]
    with StateStore(tmp_path / "s.duckdb", "t", key_horizon=HORIZON) as store:
        for start in range(0, len(trades), 500):
            apply(store, trades[start:start + 500])
            store.prune(ack_floor=trades[min(start + 499, len(trades) - 1)].seq)
        assert {kind for kind, _ in store.keys.pruned_before} == {"trades"}
        for start in range(0, len(tweets), 500):
            apply(store, tweets[start:start + 500])
            store.prune(ack_floor=max(m.seq for m in tweets[:start + 500]))
        assert store.progress().quarantined == 0
        assert_matches_batch(store, *batch)


def test_nothing_is_too_late_before_a_key_was_dropped(
        tmp_path: Path, stream: list[list[Message]]) -> None:
    """An older copy replayed after a newer one, with every key still held, is applied."""
    with StateStore(tmp_path / "s.duckdb", "t", key_horizon=HORIZON) as store:
        apply(store, stream[7])
        assert store.prune(ack_floor=0) == 0  # nothing acked: nothing may go
        older = [Message(10_000 + m.seq, m.subject, m.data) for m in stream[0]]
        apply(store, older)
        assert store.keys.pruned_before == {}
        assert (store.progress().applied, store.progress().quarantined) == (2 * PER_COPY, 0)


def test_a_record_dated_ahead_of_the_clock_moves_no_key_out(
        tmp_path: Path, stream: list[list[Message]]) -> None:
    """Event times past the wall clock do not count: keys go only behind now - horizon."""
    with StateStore(tmp_path / "s.duckdb", "t", key_horizon=HORIZON) as store:
        for messages in stream:
            apply(store, messages)
        now = newest_us(stream[5])  # as if the clock stood at copy 5: the rest is ahead
        store.prune(ack_floor=stream[-1][-1].seq, now_us=now)
        assert store.keys.pruned_before
        assert max(store.keys.pruned_before.values()) <= now - 600_000_000
        assert len(store.keys) >= (COPIES - 3) * PER_COPY


def test_one_record_far_ahead_shortens_the_dedupe_but_loses_nothing(
        tmp_path: Path, stream: list[list[Message]]) -> None:
    """A trade dated today among 2018 ones: every 2018 key of its part (ETH trades) is then
    behind the horizon and goes once acked, the other parts keep theirs, and later 2018
    records are still applied, not refused as too late."""
    first = stream[0][0]
    record = msgspec.json.decode(first.data)
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    record.update(uuid="ahead", timestamp=now, time_exchange=now)
    ahead = Message(100_000, first.subject, msgspec.json.encode(record))
    with StateStore(tmp_path / "s.duckdb", "t", key_horizon=HORIZON) as store:
        apply(store, [*stream[0], ahead])
        eth_trades = sum(m.subject == first.subject for m in stream[0])
        assert store.prune(ack_floor=100_000) == eth_trades
        for messages in stream[1:4]:
            apply(store, messages)
            store.prune(ack_floor=messages[-1].seq)
        progress = store.progress()
        assert (progress.applied, progress.quarantined) == (4 * PER_COPY + 1, 0)


def test_a_delivery_at_or_below_the_ack_floor_is_a_redelivery(
        tmp_path: Path, stream: list[list[Message]]) -> None:
    """Acked means committed: once keys and quarantined sequences left memory, a message
    the broker delivers again (a durable created again, a redelivery in flight) is skipped."""
    broken = Message(stream[0][-1].seq + 1, "cryptomood.trades.BTC", b'{"coins": ["BTC"]')
    with StateStore(tmp_path / "s.duckdb", "t", key_horizon=HORIZON) as store:
        apply(store, [*stream[0], broken])
        for messages in stream[1:8]:
            apply(store, messages)
        store.prune(ack_floor=stream[7][-1].seq)
        assert store.quarantined == set()
        assert store.keys.get(("trades", "ETH", "77ba9eed-c909-4903-8315-1bfb96c49b6e-0")) \
            is None
        again = prepare([*stream[0], broken], buckets=BUCKETS, keys=store.keys,
                        quarantined=store.quarantined, acked_through=store.ack_floor)
        assert (again.skipped, again.keys.height, again.quarantine.height) == (
            PER_COPY + 1, 0, 0)
        store.commit(again)
        assert store.progress().quarantined == 1
        store.prune(ack_floor=0)  # a durable created again: its floor starts over
        assert store.ack_floor == store.progress().ack_floor == stream[7][-1].seq


def test_a_state_file_of_the_previous_layout_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE applied_keys (kind VARCHAR NOT NULL, coin VARCHAR NOT NULL, "
                    "key VARCHAR NOT NULL, seq BIGINT NOT NULL, "
                    "PRIMARY KEY (kind, coin, key))")
    with pytest.raises(ValueError, match=r"old\.duckdb: a state file of another version \(table "
                       r"applied_keys differs\)"):
        StateStore(path, "t")


def test_one_file_holds_one_consumers_state(tmp_path: Path,
                                            stream: list[list[Message]]) -> None:
    with StateStore(tmp_path / "s.duckdb", "a") as store:
        apply(store, stream[0][:10])
    with pytest.raises(ValueError, match=r"s\.duckdb: the state of consumer a, not of b"):
        StateStore(tmp_path / "s.duckdb", "b")


def test_a_bad_key_horizon_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key_horizon: bucket 'ten minutes'"):
        StateStore(tmp_path / "s.duckdb", "t", key_horizon="ten minutes")
