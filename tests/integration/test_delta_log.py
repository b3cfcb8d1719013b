"""A day's live files read from the ``events`` table's Delta log (``lake.delta_log``).

The KPI job trusts a rollup file by its tag; these tests hold the log reader it uses to
``deltalake``'s answer on tables the engine's own ingests and compactions built, with and
without checkpoints, and check it declines the logs it does not interpret.
"""

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cryptodudez.lake import delta_log, kpi
from cryptodudez.lake.compaction import compact_day
from cryptodudez.lake.event_table import EventTable
from cryptodudez.resources.lake import Lake
from cryptodudez.storage import LakeStorage
from tests.helpers import count_table_loads, events_file, ingest_events, spread_events

DAY, NEXT = date(2026, 11, 1), date(2026, 11, 2)


def _agree(storage: LakeStorage, *days: date) -> dict[date, set[str]]:
    """Each day's tags from the log reader, asserted equal to a fresh deltalake load's."""
    table = EventTable(storage)
    out = {}
    for day in days:
        read = delta_log.live_tags_of_day(storage, table.root, day)
        assert read == table.live_tags(day)[day], day
        out[day] = read
    return out


def _drop_checkpoints(storage: LakeStorage, *, newest_only: bool = False) -> None:
    """Remove the log's checkpoints (or the newest): readers then replay the JSON commits
    after the newest one left (the log is still valid)."""
    log = Path(EventTable(storage).root) / "_delta_log"
    checkpoints = sorted(log.glob("*.checkpoint.parquet"))
    for path in [*checkpoints[-1 if newest_only else 0:], log / "_last_checkpoint"]:
        path.unlink(missing_ok=True)


def test_the_days_files_read_from_the_log_are_what_deltalake_loads(tmp_path: Path) -> None:
    storage = LakeStorage(str(tmp_path / "lake"))
    lock = Lake(uri=storage.uri).publish_lock
    root = EventTable(storage).root
    assert delta_log.live_tags_of_day(storage, root, DAY) is None  # no table yet
    both = events_file(tmp_path / "both.jsonl",
                       spread_events(DAY, "a-", 300) + spread_events(NEXT, "n-", 30))
    assert ingest_events(storage, both, "events/both.jsonl").added_rows == 330
    first = _agree(storage, DAY, NEXT)
    assert len(first[DAY]) == 1 and first[DAY] == first[NEXT]  # one commit on both days
    only_next = events_file(tmp_path / "next.jsonl", spread_events(NEXT, "m-", 30))
    assert ingest_events(storage, only_next, "events/next.jsonl").added_rows == 30
    after = _agree(storage, DAY, NEXT)
    assert after[DAY] == first[DAY] and len(after[NEXT]) == 2  # the day's files only
    overlap = events_file(tmp_path / "overlap.jsonl",
                          spread_events(DAY, "a-", 100) + spread_events(DAY, "b-", 50))
    assert ingest_events(storage, overlap, "events/overlap.jsonl").added_rows == 50
    assert len(_agree(storage, DAY)[DAY]) == 2
    # A compaction removes the day's files and adds its own, then writes a checkpoint.
    compact_day(storage, DAY, publish_lock=lock)
    compacted = _agree(storage, DAY, NEXT)
    assert len(compacted[DAY]) == 1 and compacted[DAY].isdisjoint(after[DAY])
    assert list((Path(root) / "_delta_log").glob("*.checkpoint.parquet"))
    # A late event after the checkpoint: its commit is read from JSON on top of it.
    late = events_file(tmp_path / "late.jsonl", spread_events(DAY, "late-", 5))
    assert ingest_events(storage, late, "events/late.jsonl").added_rows == 5
    assert len(_agree(storage, DAY, NEXT)[DAY]) == 2
    # A second compaction; without its own checkpoint its removes are read from its JSON
    # commit on top of the first compaction's checkpoint.
    compact_day(storage, DAY, publish_lock=lock)
    _drop_checkpoints(storage, newest_only=True)
    assert len(list((Path(root) / "_delta_log").glob("*.checkpoint.parquet"))) == 1
    again = _agree(storage, DAY, NEXT)
    assert len(again[DAY]) == 1 and again[DAY].isdisjoint(compacted[DAY])
    # The same log without any checkpoint: every commit replayed from the first.
    _drop_checkpoints(storage)
    assert _agree(storage, DAY, NEXT) == again | {NEXT: after[NEXT]}


def _log(tmp_path: Path, files: dict[str, list[dict[str, Any]]]) -> tuple[LakeStorage, str]:
    """A hand-written ``_delta_log`` (commit name -> actions) under a fresh lake."""
    storage = LakeStorage(str(tmp_path / "lake"))
    root = EventTable(storage).root
    log = Path(root) / "_delta_log"
    log.mkdir(parents=True)
    for name, actions in files.items():
        (log / name).write_text("".join(json.dumps(a) + "\n" for a in actions))
    return storage, root


def _add(tag: str, day: date) -> dict[str, Any]:
    return {"add": {"path": f"event_type=t/date={day}/hour=0/{tag}-g000.parquet",
                    "partitionValues": {"event_type": "t", "date": str(day), "hour": "0"},
                    "size": 1, "modificationTime": 0, "dataChange": True}}


def test_a_hand_written_log_is_read_in_commit_order(tmp_path: Path) -> None:
    """The reader's own rules, without deltalake: later commits win, removes end a path."""
    storage, root = _log(tmp_path, {
        f"{0:020d}.json": [{"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
                           _add("aaaa", DAY), _add("bbbb", NEXT)],
        f"{1:020d}.json": [_add("cccc", DAY)],
        f"{2:020d}.json": [{"remove": {"path": _add("aaaa", DAY)["add"]["path"]}}],
    })
    assert delta_log.live_tags_of_day(storage, root, DAY) == {"cccc"}
    assert delta_log.live_tags_of_day(storage, root, NEXT) == {"bbbb"}


def _checkpoint(path: Path, reader: int, adds: list[dict[str, Any]]) -> None:
    """A hand-written classic checkpoint: one protocol row, then one row per add."""
    add_type = pa.struct([("path", pa.string()),
                          ("partitionValues", pa.map_(pa.string(), pa.string()))])
    protocol_type = pa.struct([("minReaderVersion", pa.int32()),
                               ("minWriterVersion", pa.int32())])
    rows = [{"path": a["add"]["path"],
             "partitionValues": list(a["add"]["partitionValues"].items())} for a in adds]
    pq.write_table(pa.table({
        "protocol": pa.array([{"minReaderVersion": reader, "minWriterVersion": 2}]
                             + [None] * len(rows), protocol_type),
        "add": pa.array([None, *rows], add_type)}), path)


def test_a_remove_after_a_hand_written_checkpoint_ends_its_path(tmp_path: Path) -> None:
    storage, root = _log(tmp_path, {
        f"{3:020d}.json": [{"remove": {"path": _add("aaaa", DAY)["add"]["path"]}},
                           _add("dddd", DAY)]})
    log = Path(root) / "_delta_log"
    _checkpoint(log / f"{2:020d}.checkpoint.parquet", 1,
                [_add("aaaa", DAY), _add("bbbb", DAY), _add("cccc", NEXT)])
    assert delta_log.live_tags_of_day(storage, root, DAY) == {"bbbb", "dddd"}
    assert delta_log.live_tags_of_day(storage, root, NEXT) == {"cccc"}
    # The same checkpoint saying reader version 3: declined.
    _checkpoint(log / f"{2:020d}.checkpoint.parquet", 3, [_add("aaaa", DAY)])
    assert delta_log.live_tags_of_day(storage, root, DAY) is None


def test_a_log_that_changes_under_the_reader_is_left_to_deltalake(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage, root = _log(tmp_path, {f"{0:020d}.json": [
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}, _add("aaaa", DAY)]})
    assert delta_log.live_tags_of_day(storage, root, DAY) == {"aaaa"}

    def gone(self: LakeStorage, path: str) -> bytes:
        raise FileNotFoundError(path)  # a log cleanup removed what was listed

    monkeypatch.setattr(LakeStorage, "read_bytes", gone)
    assert delta_log.live_tags_of_day(storage, root, DAY) is None


def _escaped(tag: str, day: date) -> dict[str, Any]:
    action = _add(tag, day)
    action["add"]["path"] = action["add"]["path"].replace("event_type=t", "event_type=a%20b")
    return action


@pytest.mark.parametrize("files", [
    # a reader protocol this reader does not interpret (deletion vectors need version 3)
    {f"{0:020d}.json": [{"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
                                      "readerFeatures": ["deletionVectors"]}},
                        _add("aaaa", DAY)]},
    # ... or raised by a later commit
    {f"{0:020d}.json": [{"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
                        _add("aaaa", DAY)],
     f"{1:020d}.json": [{"protocol": {"minReaderVersion": 2, "minWriterVersion": 5}}]},
    # a gap in the commits
    {f"{0:020d}.json": [{"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
                        _add("aaaa", DAY)],
     f"{2:020d}.json": [_add("bbbb", DAY)]},
    # the first commits cleaned up and no checkpoint to start from
    {f"{5:020d}.json": [_add("aaaa", DAY)]},
    # a multi-part checkpoint newest
    {f"{0:020d}.json": [{"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
                        _add("aaaa", DAY)],
     f"{0:020d}.checkpoint.0000000001.0000000001.parquet": []},
    # a percent-encoded path (another writer may spell the same file otherwise)
    {f"{0:020d}.json": [{"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
                        _escaped("aaaa", DAY)]},
], ids=["reader-3", "reader-raised", "gap", "no-start", "multi-part", "escaped-path"])
def test_a_log_it_does_not_interpret_is_declined(tmp_path: Path,
                                                 files: dict[str, list[dict[str, Any]]]) -> None:
    storage, root = _log(tmp_path, files)
    assert delta_log.live_tags_of_day(storage, root, DAY) is None


def test_the_rollup_kpis_load_no_table_and_fall_back_when_the_reader_declines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LakeStorage(str(tmp_path / "lake"))
    both = events_file(tmp_path / "both.jsonl",
                       spread_events(DAY, "a-", 300) + spread_events(NEXT, "n-", 30))
    assert ingest_events(storage, both, "events/both.jsonl").added_rows == 330
    compact_day(storage, DAY, publish_lock=Lake(uri=storage.uri).publish_lock)
    loads = count_table_loads(monkeypatch)
    result = kpi.compute(storage, DAY)
    assert loads["loads"] == 0  # the day's tags from the log reader alone
    assert result["totals"]["events"] == 300
    monkeypatch.setattr(delta_log, "live_tags_of_day", lambda *args: None)
    assert kpi.compute(storage, DAY) == result  # deltalake's answer is the same
    assert loads["loads"] == 1


def test_a_table_copied_without_its_log_is_no_table(tmp_path: Path) -> None:
    storage = LakeStorage(str(tmp_path / "lake"))
    both = events_file(tmp_path / "both.jsonl", spread_events(DAY, "a-", 30))
    ingest_events(storage, both, "events/both.jsonl")
    shutil.rmtree(Path(EventTable(storage).root) / "_delta_log")
    assert delta_log.live_tags_of_day(storage, EventTable(storage).root, DAY) is None
