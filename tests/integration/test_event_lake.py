"""The event lake end to end on generated deliveries with exact truth.

Landed files are ingested through the engine (``ingest_event_file``, with the lake's real
publish lock) and through Dagster (the ``events`` asset and the daily job), and everything
is compared with the generator's truth or with an independent recount: never with the
engine's own bookkeeping.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from cryptodudez import cli
from cryptodudez.checks.events import compaction_checks
from cryptodudez.definitions import build_definitions
from cryptodudez.jobs import EVENT_DAILY_JOB, EVENT_INGEST_JOB
from cryptodudez.lake import event_ingest, event_table, id_index, kpi, rollups
from cryptodudez.lake.compaction import compact_day
from cryptodudez.lake.event_table import EventTable
from cryptodudez.lake.eventgen import GenerationReport, generate
from cryptodudez.lake.events import CREATED_AT_MAX, CREATED_AT_MIN
from cryptodudez.lake.id_buckets import IdBuckets
from cryptodudez.lake.layout import digest, partition_key_for, tag_of
from cryptodudez.resources.lake import Lake
from cryptodudez.sensors.landing import landing_sensor
from cryptodudez.settings import Settings
from cryptodudez.storage import LakeStorage
from tests.helpers import count_table_loads, events_file, ingest_events, spread_events

# One generated delivery and one ingested lake for the module: its tests stay on one
# xdist worker (./run test uses --dist loadgroup), so the fixtures are built once.
pytestmark = pytest.mark.xdist_group("event_lake")

DAY = date(2026, 11, 1)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationReport]:
    """Three files of one day: ~1 % malformed, ~1 % duplicates, some late events."""
    out = tmp_path_factory.mktemp("events")
    return out, generate(out, events=30_000, days=DAY, files=3, seed=11)


def _independent_verdict(raw: bytes) -> str | None:
    """The rules re-implemented with the json module: None when valid, else a category."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "malformed JSON"
    data = obj.get("data") if isinstance(obj, dict) else None
    meta = obj.get("meta") if isinstance(obj, dict) else None
    ok = (isinstance(data, dict) and isinstance(meta, dict)
          and isinstance(data.get("id"), str) and data["id"] != ""
          and isinstance(data.get("type"), str)
          and pl.Series([data["type"]]).str.contains(r"^[A-Za-z0-9_.-]{1,128}$").item()
          and isinstance(data.get("attributes"), dict)
          and type(meta.get("created_at")) is int
          and CREATED_AT_MIN <= meta["created_at"] < CREATED_AT_MAX)
    return None if ok else "invalid event"


@pytest.fixture(scope="module")
def lake_after(deliveries: tuple[Path, GenerationReport],
               tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every file ingested, then a replay and an overlapping delivery."""
    folder, truth = deliveries
    storage = LakeStorage(str(tmp_path_factory.mktemp("lake") / "lake"))
    results = [ingest_events(storage, folder / name, f"events/{name}") for name in truth.files]
    replay = ingest_events(storage, folder / truth.files[0], "events/replayed-again.jsonl")
    lines = [(folder / n).read_bytes().splitlines(keepends=True) for n in truth.files[1:]]
    overlap = folder.parent / "overlap.jsonl"
    overlap.write_bytes(b"".join(lines[0][len(lines[0]) // 2:] + lines[1][: len(lines[1]) // 2]))
    overlapping = ingest_events(storage, overlap, "events/overlap.jsonl")
    return {"storage": storage, "results": results, "replay": replay,
            "overlap": overlapping, "truth": truth, "folder": folder}


def test_every_unique_event_once_in_its_own_hour(lake_after: dict[str, Any]) -> None:
    truth: GenerationReport = lake_after["truth"]
    table = EventTable(lake_after["storage"])
    rows = table.scan().select("id", "event_type", "date", "hour", "created_at").collect()
    assert rows.height == truth.unique_valid_ids
    assert rows["id"].n_unique() == rows.height
    # Late events sit in the hour of their own created_at, not their file's.
    assert rows.filter((pl.col("created_at").dt.hour() != pl.col("hour"))
                       | (pl.col("created_at").dt.date() != pl.col("date"))).height == 0
    per_hour = rows.group_by(pl.col("event_type").alias("type"), "date", "hour").agg(
        pl.len().alias("events"))
    expected = truth.events_per_type_date_hour.with_columns(
        pl.col("date").cast(pl.Date), pl.col("hour").cast(pl.Int32),
        pl.col("events").cast(pl.UInt32))
    key = ["type", "date", "hour"]
    assert per_hour.sort(key).equals(expected.select(*key, "events").sort(key))
    assert truth.late_events > 0
    assert rows.filter(pl.col("date") < DAY).height > 0  # some belong to the day before


def test_replay_and_overlap_change_nothing(lake_after: dict[str, Any]) -> None:
    for result in (lake_after["replay"], lake_after["overlap"]):
        assert result.added_rows == 0
        assert result.duplicates == result.valid
        assert result.repeated_ids == 0


def test_quarantine_holds_exactly_the_malformed_lines(lake_after: dict[str, Any]) -> None:
    truth: GenerationReport = lake_after["truth"]
    folder: Path = lake_after["folder"]
    results = lake_after["results"]
    assert sum(r.quarantined for r in results) == truth.malformed_lines
    for name, result in zip(truth.files, results, strict=True):
        expected = {}
        for number, raw in enumerate((folder / name).read_bytes().split(b"\n"), start=1):
            if raw.strip():
                verdict = _independent_verdict(raw)
                if verdict:
                    expected[number] = verdict
        got = dict(result.quarantine.select(
            "line", pl.col("reason").str.extract(r"^([^:]*)")).iter_rows())
        assert got == expected
        assert result.records == result.valid + result.quarantined
        assert result.quarantine["source"].unique().to_list() == [f"file://{folder / name}"]
        assert result.quarantine["raw"].null_count() == 0


def test_compaction_keeps_every_row_and_id_once(lake_after: dict[str, Any],
                                                tmp_path: Path) -> None:
    storage = lake_after["storage"]
    table = EventTable(storage)
    before = table.scan().filter(pl.col("date") == DAY).select("id", "hour").collect()
    kpis_before = kpi.compute(storage, DAY, source="events")
    files_before = table.files().filter(pl.col("date") == DAY)
    # Small groups: the day is read, indexed and rolled up a few types at a time.
    done = compact_day(storage, DAY, publish_lock=Lake(uri=storage.uri).publish_lock,
                       group_bytes=4_000_000)
    written = done.written
    assert len(list((Path(storage.uri) / "indexes" / "events" / f"date={DAY}").iterdir())) > 1
    assert written is not None
    files_after = table.files().filter(pl.col("date") == DAY)
    after = table.scan().filter(pl.col("date") == DAY).select("id", "hour").collect()
    assert written.removed_rows == before.height == after.height == written.rows
    assert after["id"].n_unique() == after.height
    assert sorted(after["id"].to_list()) == sorted(before["id"].to_list())
    assert files_before.height > files_after.height
    assert not files_after.select(pl.struct("event_type", "hour").is_duplicated().any()).item()
    assert _numbers(kpi.compute(storage, DAY, source="events")) == _numbers(kpis_before)
    # The day's rollups are now one file per bucket of types: a shard whose count divides
    # the buckets reads its own types' files only, and every shard count merges exactly.
    live = table.live_tags(DAY)[DAY]
    every = rollups.rollup_files(storage, DAY, live)
    assert every and all(p.endswith(f"-of{rollups.TYPE_BUCKETS}.parquet") for p in every)
    mine = rollups.rollup_files(storage, DAY, live, (1, 2))
    assert 0 < len(mine) < len(every)
    assert all(kpi.Shard(1, 2).holds(t)
               for t in rollups.read_rollups(storage, mine)["event_type"].unique())
    whole = kpi.compute(storage, DAY)
    assert {t: v["events"] for t, v in whole["types"].items()} == \
        {t: v["events"] for t, v in kpis_before["types"].items()}
    for count in (2, 3, 4):
        parts = [kpi.compute(storage, DAY, shard=kpi.Shard(i, count)) for i in range(count)]
        assert kpi.merge(parts)["types"] == whole["types"]
    # Readers of the compacted table start from a checkpoint of its latest version.
    log = Path(storage.uri) / "validated" / "events" / "_delta_log"
    assert json.loads((log / "_last_checkpoint").read_text())["version"] == table.version()


def _numbers(result: dict[str, Any]) -> dict[str, Any]:
    """Per-type KPIs without the sketches (their bytes depend on insertion order)."""
    return {t: {k: v for k, v in kpis.items() if not k.endswith("_hll")}
            for t, kpis in result["types"].items()}


def test_kpi_ignores_rollups_of_a_commit_that_never_happened(
        lake_after: dict[str, Any]) -> None:
    """A rollup file whose tag no table version holds (a run that died before its commit)
    is read with the others, then dropped once the Delta log says so."""
    storage = lake_after["storage"]
    before = kpi.compute(storage, DAY)
    folder = Path(rollups.day_folder(storage, DAY))
    ghost = folder / "0123456789abcdef-g000.parquet"
    ghost.write_bytes(next(folder.glob("*.parquet")).read_bytes())
    try:
        assert tag_of(str(ghost)) not in EventTable(storage).live_tags(DAY)[DAY]
        assert kpi.compute(storage, DAY) == before
    finally:
        ghost.unlink()


def test_kpi_hours_from_the_rows_when_the_log_has_no_counts(
        lake_after: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that kept no row counts in the log: the hours come from the rows, the same."""
    storage = lake_after["storage"]
    exact = kpi.compute(storage, DAY, source="events")
    snapshot = EventTable.snapshot

    def without_counts(self: EventTable, version: int | None = None) -> Any:
        delta, files = snapshot(self, version)
        return delta, files.with_columns(rows=pl.lit(None, dtype=files["rows"].dtype))

    monkeypatch.setattr(EventTable, "snapshot", without_counts)
    assert kpi.compute(storage, DAY, source="events") == exact


def test_kpi_two_shards_merged_equal_one_machine(lake_after: dict[str, Any]) -> None:
    storage = lake_after["storage"]
    truth: GenerationReport = lake_after["truth"]
    for source in kpi.SOURCES:
        whole = kpi.compute(storage, DAY, source=source)
        parts = [kpi.compute(storage, DAY, shard=kpi.Shard(i, 2), source=source)
                 for i in range(2)]
        assert parts[0]["types"].keys().isdisjoint(parts[1]["types"].keys())
        assert all(p["types"] for p in parts)
        merged = kpi.merge(list(reversed(parts)))
        assert merged["complete"] and not parts[0]["complete"]
        assert merged["types"] == whole["types"]
        assert merged["totals"] == whole["totals"]
    exact = kpi.compute(storage, DAY, source="events")
    # a type at a time (bounded memory) is the same answer as the day in one read
    assert kpi.compute(storage, DAY, source="events", group_bytes=1) == exact
    day_truth = truth.events_per_type_date_hour.filter(pl.col("date").cast(pl.Date) == DAY)
    events = dict(day_truth.group_by("type").agg(pl.col("events").sum()).iter_rows())
    assert {t: v["events"] for t, v in exact["types"].items()} == events
    hours: dict[str, list[int]] = {}  # the log's per-hour row counts, against the truth
    for event_type, hour, n in day_truth.select("type", "hour", "events").iter_rows():
        hours.setdefault(event_type, [0] * 24)[int(hour)] += n
    assert {t: v["events_per_hour"] for t, v in exact["types"].items()} == hours
    users = dict(truth.distinct_users_per_type_date.filter(
        (pl.col("date").cast(pl.Date) == DAY) & (pl.col("users") > 0)).select(
        "type", "users").iter_rows())
    assert {t: v["distinct_users"] for t, v in exact["types"].items()
            if v["distinct_users"] is not None} == users
    estimated = kpi.compute(storage, DAY)  # rollups: HLL within a few percent
    for event_type, value in exact["types"].items():
        assert estimated["types"][event_type]["events"] == value["events"]
        if value["distinct_users"]:
            ratio = estimated["types"][event_type]["distinct_users"] / value["distinct_users"]
            assert 0.9 < ratio < 1.1


@pytest.mark.parametrize("source", kpi.SOURCES)
def test_merge_refuses_parts_of_the_day_in_two_states(tmp_path: Path, source: str) -> None:
    """Shard 0 computed, a delivery lands on the day, shard 1 computed: the merge matched
    neither state of the day (6,237 events against 5,842 before and 6,824 after; QA). It is
    refused; a delivery of another day changes nothing of this one, and merges."""
    storage = LakeStorage(str(tmp_path / "lake"))
    ingest_events(storage, events_file(tmp_path / "a.jsonl", spread_events(DAY, "a-", 200)),
                  "events/a.jsonl")
    first = kpi.compute(storage, DAY, shard=kpi.Shard(0, 2), source=source)
    other_day = date(2026, 11, 2)
    ingest_events(storage, events_file(tmp_path / "b.jsonl",
                                       spread_events(other_day, "b-", 50)), "events/b.jsonl")
    second = kpi.compute(storage, DAY, shard=kpi.Shard(1, 2), source=source)
    merged = kpi.merge([first, second])  # the day as it was for both
    assert merged["types"] == kpi.compute(storage, DAY, source=source)["types"]
    ingest_events(storage, events_file(tmp_path / "c.jsonl", spread_events(DAY, "c-", 100)),
                  "events/c.jsonl")
    later = kpi.compute(storage, DAY, shard=kpi.Shard(1, 2), source=source)
    assert later["day_state"] != first["day_state"]
    with pytest.raises(kpi.KpiError, match=r"p1\.json: parts disagree on day_state: .* "
                                            r"\(the day changed between them"):
        kpi.merge([first, later], names=["p0.json", "p1.json"])


def test_merge_refuses_overlapping_or_foreign_parts(lake_after: dict[str, Any]) -> None:
    storage = lake_after["storage"]
    part = kpi.compute(storage, DAY, shard=kpi.Shard(0, 2))
    with pytest.raises(kpi.KpiError, match="overlap"):
        kpi.merge([part, part])
    with pytest.raises(kpi.KpiError, match="disagree on date"):
        kpi.merge([part, {**part, "date": "2026-11-02", "shards": [1], "types": {}}])
    with pytest.raises(kpi.KpiError, match=r"belongs to shard 0 of 2, not to this part's"):
        kpi.merge([part, {**part, "shards": [1]}])  # shard 0's types passed off as shard 1
    with pytest.raises(kpi.KpiError, match="expected i/n"):
        kpi.Shard.parse("1-2")
    with pytest.raises(kpi.KpiError, match="needs 0 <= i < n"):
        kpi.Shard.parse("2/2")


# -- through Dagster ------------------------------------------------------------------------


@pytest.fixture
def landed(settings: Settings, deliveries: tuple[Path, GenerationReport]) -> Iterator[Lake]:
    lake = Lake(uri=settings.lake)
    folder, truth = deliveries
    lake.land(folder / truth.files[0], "events/a.jsonl")
    yield lake


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _run_ingest(settings: Settings, instance: dg.DagsterInstance,
                key: str = "events/a.jsonl") -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions("event_files", [partition_key_for(key)])
    job = build_definitions(settings).resolve_job_def(EVENT_INGEST_JOB)
    return job.execute_in_process(partition_key=partition_key_for(key), instance=instance,
                                  raise_on_error=False, run_config=QUIET)


def test_events_asset_checks_pass_and_catalogue(settings: Settings, landed: Lake,
                                                instance: dg.DagsterInstance) -> None:
    result = _run_ingest(settings, instance)
    assert result.success
    assert _checks(result) == {"events_lines_accounted": True, "events_rows_accounted": True,
                               "events_ids_unique": True, "events_no_lines_quarantined": False}
    metastore = build_definitions(settings).resources["metastore"]
    files = metastore.files()
    assert files["format"].to_list() == ["jsonl"]
    assert metastore.ingested_versions().keys() == {partition_key_for("events/a.jsonl")}
    (registered,) = metastore._query(
        "SELECT columns FROM tables WHERE table_name = 'events'")["columns"].to_list()
    assert registered == "delta: " + ", ".join(
        f"{name}:{dtype}" for name, dtype in EventTable(landed.storage).schema().items())
    daily = build_definitions(settings).resolve_job_def(EVENT_DAILY_JOB).execute_in_process(
        partition_key=DAY.isoformat(), instance=instance, run_config=QUIET)
    assert _checks(daily) == {"events_compacted_rows_kept": True,
                              "events_compacted_schema_conforms": True}
    stored = json.loads(Path(landed.path("kpis", "events", f"date={DAY}.json")).read_text())
    assert stored["totals"]["events"] == int(EventTable(landed.storage).files().filter(
        pl.col("date") == DAY)["rows"].sum())


def test_lines_accounted_fails_when_a_line_is_lost(
        settings: Settings, landed: Lake, instance: dg.DagsterInstance,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = event_ingest.validate_lines

    def drops_a_line(batch: Any, *, source: str) -> Any:
        out = real(batch, source=source)
        return type(out)(out.valid.slice(1), out.quarantine, out.records)

    monkeypatch.setattr(event_ingest, "validate_lines", drops_a_line)
    assert _checks(_run_ingest(settings, instance))["events_lines_accounted"] is False


def test_rows_accounted_fails_when_the_writer_loses_a_file(
        settings: Settings, landed: Lake, instance: dg.DagsterInstance,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = EventTable._write_partitioned

    def loses_one(self: EventTable, rows: pl.LazyFrame, *, prefix: str, **options: Any) -> Any:
        return real(self, rows, prefix=prefix, **options)[1:]

    monkeypatch.setattr(EventTable, "_write_partitioned", loses_one)
    assert _checks(_run_ingest(settings, instance))["events_rows_accounted"] is False


def test_ids_unique_fails_when_deduplication_is_broken(
        settings: Settings, landed: Lake, instance: dg.DagsterInstance,
        monkeypatch: pytest.MonkeyPatch, deliveries: tuple[Path, GenerationReport]) -> None:
    assert _checks(_run_ingest(settings, instance))["events_ids_unique"] is True
    folder, truth = deliveries
    landed.land(folder / truth.files[0], "events/a-again.jsonl")
    monkeypatch.setattr(IdBuckets, "dropped_lines", lambda self: np.empty(0, dtype=np.int64))
    assert _checks(_run_ingest(settings, instance, "events/a-again.jsonl"))["events_ids_unique"] \
        is False


def test_compaction_check_fails_when_a_group_is_lost(
        settings: Settings, landed: Lake, instance: dg.DagsterInstance,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run_ingest(settings, instance).success
    real = EventTable._write_partitioned
    calls = {"n": 0}

    def loses_rows(self: EventTable, rows: pl.LazyFrame, *, prefix: str,
                   **options: Any) -> Any:
        calls["n"] += 1
        return real(self, rows.filter(pl.col("hour") != 3), prefix=prefix, **options)

    monkeypatch.setattr(EventTable, "_write_partitioned", loses_rows)
    daily = build_definitions(settings).resolve_job_def(EVENT_DAILY_JOB).execute_in_process(
        partition_key=DAY.isoformat(), instance=instance, run_config=QUIET,
        raise_on_error=False)
    assert calls["n"] >= 1
    assert _checks(daily)["events_compacted_rows_kept"] is False


def test_landing_sensor_routes_event_files(settings: Settings, landed: Lake,
                                           instance: dg.DagsterInstance) -> None:
    defs = build_definitions(settings)
    resources = defs.resources
    with dg.build_sensor_context(instance=instance, resources={
            "lake": resources["lake"], "metastore": resources["metastore"]}) as ctx:
        result = landing_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    assert [(r.job_name, r.partition_key) for r in result.run_requests or []] == [
        (EVENT_INGEST_JOB, partition_key_for("events/a.jsonl"))]
    adds = result.dynamic_partitions_requests or []
    assert [(a.partitions_def_name, list(a.partition_keys)) for a in adds] == [
        ("event_files", [partition_key_for("events/a.jsonl")])]


def test_an_unreadable_gzip_is_quarantined_not_a_crash(tmp_path: Path) -> None:
    import gzip  # noqa: PLC0415

    body = b"\n".join(json.dumps({"data": {"id": str(i), "type": "t", "attributes": {}},
                                  "meta": {"created_at": 1_793_491_200_000 + i}}).encode()
                      for i in range(5000))
    packed = gzip.compress(body)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    storage = LakeStorage(str(tmp_path / "lake"))
    result = ingest_events(storage, path, "events/cut.jsonl.gz")
    assert 0 < result.added_rows < 5000
    assert result.records == result.valid + result.quarantined
    last = result.quarantine.filter(pl.col("line").is_null())
    assert last.height == 1
    assert last["reason"].item().startswith("unreadable after line")


def test_a_member_failing_its_checksum_publishes_nothing(tmp_path: Path) -> None:
    """A flipped bit can decode to well-formed lines with wrong values, noticed only at the
    member's checksum: 31 rows were published with wrong amounts before. Now the damaged
    member's lines are all quarantined (raw text and reason), the sound member before it is
    published, and read = valid + quarantined still holds."""
    import gzip  # noqa: PLC0415

    def lines(first: int, count: int) -> bytes:
        return b"".join(json.dumps({
            "data": {"id": f"id{i:06d}", "type": "t", "attributes": {"amount": i * 7}},
            "meta": {"created_at": 1_793_491_200_000 + i}}).encode() + b"\n"
            for i in range(first, first + count))

    sound = gzip.compress(lines(0, 100), mtime=0)
    damaged = bytearray(gzip.compress(lines(100, 20_000), mtime=0))
    damaged[len(damaged) // 2] ^= 0x04  # one bit, mid-stream
    path = tmp_path / "flipped.jsonl.gz"
    path.write_bytes(sound + bytes(damaged))
    storage = LakeStorage(str(tmp_path / "lake"))
    result = ingest_events(storage, path, "events/flipped.jsonl.gz")
    assert result.records == result.valid + result.quarantined
    published = pl.read_delta(EventTable(storage).uri)
    assert sorted(published["id"].to_list()) == [f"id{i:06d}" for i in range(100)]
    assert (published["attributes"].str.json_path_match("$.amount").cast(pl.Int64)
            == published["id"].str.slice(2).cast(pl.Int64) * 7).all()
    unverified = result.quarantine.filter(pl.col("reason").str.starts_with("not published"))
    assert unverified.height > 0
    assert unverified["line"].min() == 101  # the damaged member's first line
    assert "from line 101" in unverified["reason"][0]
    assert result.quarantine.filter(pl.col("line").is_null())["reason"].item().startswith(
        "unreadable after line")
    every = result.quarantine.filter(pl.col("line").is_not_null())
    assert every["line"].n_unique() == every.height  # each line quarantined once
    assert result.added_rows == 100


def test_a_long_malformed_line_says_its_raw_text_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"data": "' + b"x" * 200_000 + b"\n")
    storage = LakeStorage(str(tmp_path / "lake"))
    row = ingest_events(storage, path, "events/long.jsonl").quarantine.row(0, named=True)
    assert len(row["raw"]) == 65_536
    assert row["reason"].endswith("(raw keeps the first 65,536 of the line's 200,010 bytes)")


def test_kpi_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"format": kpi.FORMAT, "date": "2026-11-01", "source": "rollups",
                                "shard_count": 10**12, "shards": [0], "method": {},
                                "types": {}}))
    cases: list[tuple[list[str], str]] = [
        (["kpi", "--date", "2026-13-01"], "not a date"),
        (["kpi", "--date", "20261101"], "not a date"),
        (["kpi", "--date", "2026-11-01", "--shard", "3/2"], "needs 0 <= i < n"),
        # the process was killed for memory (a list of every shard number was built)
        (["kpi", "--date", "2026-11-01", "--shard", "0/1000000000"], "at most 1024 shards"),
        (["kpi", "--date", "2026-11-01", "--shard", "0/" + "9" * 20], "at most 1024 shards"),
        (["kpi", "--merge", str(tmp_path / "missing.json")], "cannot read KPI part"),
        (["kpi", "--merge", str(huge)], "Expected `int` <= 1024 - at `$.shard_count`"),
        (["kpi"], "one of the arguments --date --merge is required"),
        (["backfill-events", "--from", "2026-11-02", "--to", "2026-11-01"], "before --from"),
    ]
    for argv, message in cases:
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's own errors exit from inside the parser
            code = int(exc.code or 0)
        assert code == 2
        err = capsys.readouterr().err
        assert message in err
        assert err.count("\n") == 1, err


def test_a_fragment_cut_short_is_one_line(
        deliveries: tuple[Path, GenerationReport], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A fragment cut short: polars' Parquet reader raises (its Delta reader panicked on it,
    pyo3's PanicException, a BaseException, whose message test_cli checks): one line, exit
    1, no Python traceback."""
    folder, truth = deliveries
    storage = LakeStorage(str(tmp_path / "lake"))
    ingest_events(storage, folder / truth.files[0], "events/a.jsonl")
    table = Path(storage.path("validated", "events"))
    fragment = sorted(table.glob(f"*/date={DAY}/*/*.parquet"))[0]
    data = fragment.read_bytes()
    fragment.write_bytes(data[: len(data) // 2] + data[-8:])  # its footer now ends past the end
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", storage.uri)
    assert cli.main(["kpi", "--date", DAY.isoformat(), "--source", "events"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("cryptodudez: error: "), lines
    assert "parquet" in lines[0].lower() or "panicked" in lines[0], lines


def test_a_delivery_committed_meanwhile_counts_as_held(
        deliveries: tuple[Path, GenerationReport], tmp_path: Path) -> None:
    """Two overlapping deliveries ingested at once: the one that publishes second adds the
    other's ids to its buckets as held (its own were loaded before that commit)."""
    folder, truth = deliveries
    path = folder / truth.files[0]
    alone = ingest_events(LakeStorage(str(tmp_path / "alone")), path, "events/a").added_rows
    lines = path.read_bytes().splitlines(keepends=True)
    overlap = tmp_path / "overlap.jsonl"
    overlap.write_bytes(b"".join(lines[len(lines) // 2:]))
    storage = LakeStorage(str(tmp_path / "lake"))
    lake = Lake(uri=storage.uri)
    other: list[event_ingest.EventFileResult] = []

    @contextmanager
    def other_commits_first() -> Iterator[None]:
        if not other:  # the other delivery publishes while this one was reading
            other.append(ingest_events(storage, overlap, "events/other.jsonl"))
        with lake.publish_lock():
            yield

    result = event_ingest.ingest_event_file(
        storage, str(path), source="s", partition_key="events/a", version_tag="a",
        landed_at=datetime(2026, 11, 2, tzinfo=UTC), publish_lock=other_commits_first)
    ids = EventTable(storage).scan().select("id").collect()["id"]
    assert other and other[0].added_rows > 0
    assert ids.len() == ids.n_unique() == alone
    assert result.added_rows == alone - other[0].added_rows
    assert result.repeated_ids == 0
    # Its rollups name the version it committed, not the one it had loaded before.
    assert result.table_version == other[0].table_version + 1
    mine = [p for day in result.dates for p in rollups.rollup_files(storage, day, {"a"})]
    assert mine
    versions = rollups.read_rollups(storage, mine, columns=["table_version"])
    assert versions["table_version"].unique().to_list() == [result.table_version]


def test_a_retry_replaces_the_index_and_rollups_of_its_failed_attempt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attempt that dies in the table's append leaves its index and rollup files, one
    part per slice. Another delivery then commits one of its ids, so the retry has fewer
    slices: the first attempt's extra part used to stay, trusted once the retry made the
    tag live, and held that id twice in the index and its type twice in the rollup KPIs
    (session 23)."""
    storage = LakeStorage(str(tmp_path / "lake"))
    lake = Lake(uri=storage.uri)
    at = datetime(2026, 11, 1, 10, tzinfo=UTC)
    first = events_file(tmp_path / "f.jsonl", [("A", "a", at), ("B", "b", at), ("C", "c", at)])
    other = events_file(tmp_path / "g.jsonl", [("B", "b", at)])

    def ingest(path: Path) -> event_ingest.EventFileResult:
        return event_ingest.ingest_event_file(
            storage, str(path), source=path.name, partition_key=f"events/{path.name}",
            version_tag=path.stem, landed_at=at, publish_lock=lake.publish_lock,
            group_rows=1)  # a slice per type

    def dies(*_: Any, **__: Any) -> None:
        raise OSError("the writer died")

    with monkeypatch.context() as patch:
        patch.setattr(EventTable, "append", dies)
        with pytest.raises(OSError, match="the writer died"):
            ingest(first)
    assert len(id_index.index_files(storage, [DAY], {DAY: {"f"}})) == 3  # left behind
    assert ingest(other).added_rows == 1
    retry = ingest(first)
    assert retry.added_rows == 2 and retry.repeated_ids == 0
    live = EventTable(storage).live_tags([DAY])
    held = id_index.read_ids(storage, id_index.index_files(storage, [DAY], live))
    assert sorted(held.to_list()) == ["A", "B", "C"]
    from_rollups = _numbers(kpi.compute(storage, DAY))
    assert {t: v["events"] for t, v in from_rollups.items()} == {"a": 1, "b": 1, "c": 1}
    assert from_rollups == _numbers(kpi.compute(storage, DAY, source="events"))


def test_an_id_restamped_to_another_day_is_kept_on_each_day_and_blames_no_later_file(
        tmp_path: Path) -> None:
    """Deduplication reads the index of the days a file touches: an id delivered again with
    a ``created_at`` on another day is a row on each day (docs/events.md). A later file
    touching both days used to fail ``events_ids_unique`` for it, though it added nothing
    twice (session 23); now that count is this file's own, and the earlier one is reported
    apart."""
    storage = LakeStorage(str(tmp_path / "lake"))
    day1, day2 = datetime(2026, 11, 1, 10, tzinfo=UTC), datetime(2026, 11, 2, 10, tzinfo=UTC)
    first = ingest_events(storage, events_file(tmp_path / "a.jsonl", [("X", "t", day1)]),
                          "events/a.jsonl")
    restamped = ingest_events(storage, events_file(tmp_path / "b.jsonl", [("X", "t", day2)]),
                              "events/b.jsonl")
    later = ingest_events(storage, events_file(tmp_path / "c.jsonl",
                                               [("X", "t", day2), ("Y", "t", day1)]),
                          "events/c.jsonl")
    assert (first.added_rows, restamped.added_rows, later.added_rows) == (1, 1, 1)
    assert (restamped.repeated_ids, restamped.repeated_ids_before) == (0, 0)
    assert (later.repeated_ids, later.repeated_ids_before) == (0, 1)
    rows = EventTable(storage).scan().select("id", "date").collect().sort("id", "date")
    assert rows.rows() == [("X", date(2026, 11, 1)), ("X", date(2026, 11, 2)),
                           ("Y", date(2026, 11, 1))]
    # Within one file the first line of an id wins, whatever its day.
    within = ingest_events(LakeStorage(str(tmp_path / "one")),
                           events_file(tmp_path / "d.jsonl", [("X", "t", day1),
                                                               ("X", "t", day2)]),
                           "events/d.jsonl")
    assert (within.added_rows, within.duplicates) == (1, 1)


def test_an_id_held_on_a_day_the_file_touches_drops_its_line_on_any_day(
        tmp_path: Path) -> None:
    """The rule docs/events.md states: a file reads the index of every day it touches, and
    an id held on one of them drops the file's line with that id whatever its day; an id
    held only on a day the file does not touch is kept (a QA walkthrough found the first
    case undocumented)."""
    storage = LakeStorage(str(tmp_path / "lake"))
    day1, day2 = datetime(2026, 11, 1, 10, tzinfo=UTC), datetime(2026, 11, 2, 10, tzinfo=UTC)
    ingest_events(storage, events_file(tmp_path / "a.jsonl", [("X", "t", day1),
                                                              ("Z", "t", day1)]),
                  "events/a.jsonl")
    touching = ingest_events(storage, events_file(tmp_path / "b.jsonl",
                                                  [("X", "t", day2), ("Y", "t", day1)]),
                             "events/b.jsonl")
    apart = ingest_events(storage, events_file(tmp_path / "c.jsonl", [("Z", "t", day2)]),
                          "events/c.jsonl")
    assert (touching.added_rows, touching.duplicates) == (1, 1)
    assert (apart.added_rows, apart.duplicates) == (1, 0)
    rows = EventTable(storage).scan().select("id", "date").collect().sort("id", "date")
    assert rows.rows() == [("X", date(2026, 11, 1)), ("Y", date(2026, 11, 1)),
                           ("Z", date(2026, 11, 1)), ("Z", date(2026, 11, 2))]


def test_worker_processes_give_the_same_lake(deliveries: tuple[Path, GenerationReport],
                                             tmp_path: Path) -> None:
    """Validation in two worker processes, in small batches, equals validation inline.

    The second ingest also indexes and rolls up in slices of at most 500 rows (ranges of
    hours of each type), against whole types in the first.
    """
    folder, truth = deliveries
    outcomes = []
    rolled = []
    for workers, group_rows in ((1, event_ingest.GROUP_ROWS), (2, 500)):
        storage = LakeStorage(str(tmp_path / f"lake{workers}"))
        result = event_ingest.ingest_event_file(
            storage, str(folder / truth.files[0]), source="s", partition_key="events/a",
            version_tag="tag", landed_at=datetime(2026, 11, 2, tzinfo=UTC),
            publish_lock=Lake(uri=storage.uri).publish_lock, batch_bytes=200_000,
            group_rows=group_rows, workers=workers)
        rows = EventTable(storage).scan().drop("_landed_at").collect().sort("id")
        outcomes.append((rows, result.quarantine.sort("line"), result.records))
        rolled.append(result.rollups.select("event_type", "date", "hour", "events")
                      .sort("event_type", "date", "hour"))
        index = event_ingest.read_ids(storage, event_ingest.index_files(
            storage, set(rows["date"]), EventTable(storage).live_tags()))
        assert index.sort().equals(rows["id"].sort(), check_names=False)
    assert outcomes[0][0].equals(outcomes[1][0])
    assert outcomes[0][1].equals(outcomes[1][1])
    assert outcomes[0][2] == outcomes[1][2] == truth.lines_per_file[0]
    assert rolled[0].equals(rolled[1])
    # A re-delivery through the workers: their id hashes meet the id index's (hashed in
    # this process), so nothing is added.
    storage = LakeStorage(str(tmp_path / "lake2"))
    again = event_ingest.ingest_event_file(
        storage, str(folder / truth.files[0]), source="s2", partition_key="events/a-again",
        version_tag="tag2", landed_at=datetime(2026, 11, 3, tzinfo=UTC),
        publish_lock=Lake(uri=storage.uri).publish_lock, batch_bytes=200_000, workers=2)
    assert again.added_rows == 0
    assert again.valid > 0
    assert again.duplicates == again.valid
    assert EventTable(storage).scan().select(pl.len()).collect().item() == \
        outcomes[1][0].height


def test_ingest_writes_small_row_groups_and_compaction_large(tmp_path: Path) -> None:
    """Each open partition writer of an ingest buffers at most ``INGEST_ROW_GROUP`` rows
    (what keeps a big file's memory flat); a compacted file keeps polars' larger groups."""
    rows = 3 * event_table.INGEST_ROW_GROUP + 5
    start = int(datetime(2026, 11, 1, 7, tzinfo=UTC).timestamp() * 1000)
    path = tmp_path / "one-hour.jsonl"
    path.write_text("".join(
        json.dumps({"data": {"id": f"e{i}", "type": "trade", "attributes": {}},
                    "meta": {"created_at": start + i}}) + "\n" for i in range(rows)))
    storage = LakeStorage(str(tmp_path / "lake"))
    assert ingest_events(storage, path, "events/one-hour.jsonl").added_rows == rows
    table = EventTable(storage)

    def row_groups() -> list[int]:
        out = []
        for rel in table.files()["path"]:
            meta = pq.ParquetFile(Path(storage.uri) / "validated" / "events" / rel).metadata
            out += [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        return out

    ingested = row_groups()
    assert sum(ingested) == rows
    assert max(ingested) == event_table.INGEST_ROW_GROUP
    compact_day(storage, date(2026, 11, 1), publish_lock=Lake(uri=storage.uri).publish_lock)
    compacted = row_groups()
    assert sum(compacted) == rows
    assert max(compacted) > event_table.INGEST_ROW_GROUP


# -- compacting a day that is already compacted ----------------------------------------------

NEXT = date(2026, 11, 2)


def _lake_files(storage: LakeStorage) -> dict[str, tuple[int, int]]:
    """Every file of the table (data and log), the id index and the rollups, with its
    modification time and size: what a compaction could write, rewrite or remove."""
    root = Path(storage.uri)
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for folder in ("validated/events", "indexes/events", "rollups/events")
            for p in (root / folder).rglob("*") if p.is_file()}


def _day_paths(table: EventTable, day: date) -> list[str]:
    return sorted(table.files().filter(pl.col("date") == day)["path"].to_list())


def test_compacting_a_day_twice_commits_once(tmp_path: Path) -> None:
    storage = LakeStorage(str(tmp_path / "lake"))
    lock = Lake(uri=storage.uri).publish_lock
    for k in range(2):
        path = events_file(tmp_path / f"f{k}.jsonl", spread_events(DAY, f"f{k}-", 200))
        assert ingest_events(storage, path, f"events/f{k}.jsonl").added_rows == 200
    table = EventTable(storage)
    ingested = table.version()
    assert ingested is not None
    first = compact_day(storage, DAY, publish_lock=lock)
    assert first.written is not None
    assert table.version() == ingested + 1  # one commit
    paths, files = _day_paths(table, DAY), _lake_files(storage)
    second = compact_day(storage, DAY, publish_lock=lock)
    assert table.version() == ingested + 1
    assert _day_paths(table, DAY) == paths
    assert _lake_files(storage) == files  # no file written, rewritten or removed
    assert not first.already_compacted and first.table_version == ingested + 1
    assert second.written is None and second.already_compacted
    assert second.tag == first.tag and second.table_version == ingested + 1
    assert second.rows_before == second.rows_after == second.distinct_ids_after == 400
    assert second.files == len(paths) and second.vacuumed == 0
    checks = {c.check_name: (c.passed, c.metadata) for c in compaction_checks(second)}
    assert checks["events_compacted_rows_kept"][0]
    assert checks["events_compacted_schema_conforms"][0]
    kept = checks["events_compacted_rows_kept"][1]
    assert kept["already_compacted"].value is True
    assert kept["rows_in_log"].value == kept["rows_read_back"].value == 400


def test_a_compaction_that_died_after_its_commit_is_cleaned_up_by_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LakeStorage(str(tmp_path / "lake"))
    lock = Lake(uri=storage.uri).publish_lock
    path = events_file(tmp_path / "f.jsonl", spread_events(DAY, "f-", 200))
    assert ingest_events(storage, path, "events/f.jsonl").added_rows == 200
    real_prune = rollups.prune_day

    def dies(*args: object, **kwargs: object) -> list[str]:
        raise OSError("the machine went away")

    monkeypatch.setattr(rollups, "prune_day", dies)
    with pytest.raises(OSError, match="went away"):
        compact_day(storage, DAY, publish_lock=lock)  # committed, then died
    monkeypatch.setattr(rollups, "prune_day", real_prune)
    table = EventTable(storage)
    live = table.live_tags(DAY)[DAY]
    stale = [p for p in rollups.rollup_files(storage, DAY, None) if tag_of(p) not in live]
    assert stale, "the ingest's rollups outlived the commit that superseded them"
    again = compact_day(storage, DAY, publish_lock=lock)
    assert again.already_compacted and again.written is None
    assert {tag_of(p) for p in rollups.rollup_files(storage, DAY, None)} == live
    index = Path(storage.uri) / "indexes" / "events"  # one day only in this lake
    assert {tag_of(str(p)) for p in index.rglob("*.parquet")} == live


def test_a_day_left_alone_still_has_its_superseded_files_vacuumed(tmp_path: Path) -> None:
    storage = LakeStorage(str(tmp_path / "lake"))
    lock = Lake(uri=storage.uri).publish_lock
    path = events_file(tmp_path / "f.jsonl", spread_events(DAY, "f-", 200))
    assert ingest_events(storage, path, "events/f.jsonl").added_rows == 200
    first = compact_day(storage, DAY, publish_lock=lock)  # keeps the ingest's files 7 days
    assert first.vacuumed == 0
    table = EventTable(storage)
    root = Path(storage.uri) / "validated" / "events"

    def on_disk() -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*.parquet")
                if "_delta_log" not in p.parts}

    live = set(table.files()["path"].to_list())
    superseded = on_disk() - live
    assert superseded and live <= on_disk()  # the ingest's files are still there
    later = compact_day(storage, DAY, publish_lock=lock, retention_hours=0)  # "a week later"
    assert later.already_compacted and later.written is None
    assert later.vacuumed == len(superseded)
    assert on_disk() == live
    assert later.table_version == table.version()
    assert pl.scan_delta(table.uri).select(pl.len()).collect().item() == 200


def test_the_compactions_table_version_is_read_after_its_vacuum(tmp_path: Path) -> None:
    storage = LakeStorage(str(tmp_path / "lake"))
    lock = Lake(uri=storage.uri).publish_lock
    path = events_file(tmp_path / "f.jsonl", spread_events(DAY, "f-", 200))
    assert ingest_events(storage, path, "events/f.jsonl").added_rows == 200
    done = compact_day(storage, DAY, publish_lock=lock, retention_hours=0)
    assert done.vacuumed > 0  # the ingest's files, superseded at once
    assert done.table_version == EventTable(storage).version()
    assert compact_day(storage, DAY, publish_lock=lock).table_version == done.table_version


def test_a_late_event_recompacts_its_day_only(tmp_path: Path) -> None:
    storage = LakeStorage(str(tmp_path / "lake"))
    lock = Lake(uri=storage.uri).publish_lock
    both = events_file(tmp_path / "both.jsonl",
                        spread_events(DAY, "a-", 300) + spread_events(NEXT, "b-", 300))
    assert ingest_events(storage, both, "events/both.jsonl").added_rows == 600
    table = EventTable(storage)
    for day in (DAY, NEXT):
        assert compact_day(storage, day, publish_lock=lock).written is not None
    compacted = table.version()
    assert compacted is not None
    next_paths = _day_paths(table, NEXT)
    # Delivered later: one new event of DAY and one DAY already holds.
    late = events_file(tmp_path / "late.jsonl", [
        ("late-1", "trade", datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
        ("a-7", "login", datetime(2026, 11, 1, 7, 7, tzinfo=UTC))])
    assert ingest_events(storage, late, "events/late.jsonl").added_rows == 1
    assert table.version() == compacted + 1
    day_paths = _day_paths(table, DAY)
    on_day = compact_day(storage, DAY, publish_lock=lock)
    assert on_day.written is not None
    assert on_day.written.removed_rows == on_day.written.rows == 301
    assert table.version() == compacted + 2
    assert set(_day_paths(table, DAY)).isdisjoint(day_paths)  # the whole day rewritten
    on_next = compact_day(storage, NEXT, publish_lock=lock)
    assert table.version() == compacted + 2  # the other day: no commit
    assert _day_paths(table, NEXT) == next_paths
    assert not on_day.already_compacted
    assert event_table.compacted_by(DAY, _day_paths(table, DAY)) == on_day.tag
    assert on_next.already_compacted and on_next.written is None
    # Every row and id once, in the table and in the day's id index.
    rows = table.scan().select("id", "date", "event_type").collect()
    assert rows.height == 601 and rows["id"].n_unique() == 601
    assert "late-1" in rows.filter(pl.col("date") == DAY)["id"].to_list()
    live = table.live_tags()
    for day in (DAY, NEXT):
        held = id_index.read_ids(storage, id_index.index_files(storage, [day], live))
        assert held.sort().to_list() == rows.filter(pl.col("date") == day)["id"].sort().to_list()
        # The rollups count the same events per type as the table.
        assert {t: v["events"] for t, v in kpi.compute(storage, day)["types"].items()} == \
            {t: v["events"] for t, v in kpi.compute(storage, day, source="events")["types"]
             .items()}
    for check in compaction_checks(on_day) + compaction_checks(on_next):
        assert check.passed, check.check_name
    # The same late delivery again adds nothing, so the day stays as compacted.
    assert ingest_events(storage, late, "events/late-again.jsonl").added_rows == 0
    assert compact_day(storage, DAY, publish_lock=lock).already_compacted
    assert table.version() == compacted + 2


def test_a_day_before_2019_can_be_compacted(settings: Settings, tmp_path: Path,
                                            instance: dg.DagsterInstance) -> None:
    """Validation accepts events from 2000-01-01 on; the daily partitions started on
    2019-01-01, so such a day was published but could never be compacted or backfilled."""
    path = tmp_path / "old.jsonl"
    path.write_text("".join(json.dumps({
        "data": {"id": f"old-{i}", "type": "t", "attributes": {}},
        "meta": {"created_at": int(datetime(2010, 5, 1, i, tzinfo=UTC).timestamp() * 1000)}})
        + "\n" for i in range(3)))
    storage = Lake(uri=settings.lake).storage
    assert ingest_events(storage, path, "events/old.jsonl").added_rows == 3
    daily = build_definitions(settings).resolve_job_def(EVENT_DAILY_JOB)
    run = daily.execute_in_process(partition_key="2010-05-01", instance=instance,
                                   run_config=QUIET)
    assert run.success
    assert _checks(run) == {"events_compacted_rows_kept": True,
                            "events_compacted_schema_conforms": True}
    files = EventTable(storage).files().filter(pl.col("date") == date(2010, 5, 1))
    assert files.height == 3  # one per hour
    assert files["rows"].sum() == 3


def test_demo_rerun_leaves_the_compacted_table_alone(settings: Settings, landed: Lake,
                                                     instance: dg.DagsterInstance) -> None:
    """Ingest, compact every day, ingest the same file again, compact again: the second
    round (what a second `cryptodudez demo` does) commits nothing."""
    assert _run_ingest(settings, instance).success
    table = EventTable(landed.storage)
    days = sorted(table.files()["date"].unique().to_list())
    assert len(days) > 1  # the file's late events fall on the day before
    daily = build_definitions(settings).resolve_job_def(EVENT_DAILY_JOB)

    def compact_every_day() -> list[dg.ExecuteInProcessResult]:
        return [daily.execute_in_process(partition_key=day.isoformat(), instance=instance,
                                         run_config=QUIET) for day in days]

    first = compact_every_day()
    version = table.version()
    files = sorted(table.files()["path"].to_list())
    assert all(_checks(run) == {"events_compacted_rows_kept": True,
                                "events_compacted_schema_conforms": True} for run in first)
    assert _run_ingest(settings, instance).success  # the same file again: adds nothing
    assert table.version() == version
    second = compact_every_day()
    assert table.version() == version
    assert sorted(table.files()["path"].to_list()) == files
    for run, day in zip(second, days, strict=True):
        assert _checks(run) == {"events_compacted_rows_kept": True,
                                "events_compacted_schema_conforms": True}
        (done,) = run.asset_materializations_for_node("events_compacted")
        assert done.metadata["already_compacted"].value is True
        assert done.metadata["table_version"].value == version
        assert done.metadata["rows"].value == int(
            table.files().filter(pl.col("date") == day)["rows"].sum())


def test_an_ingest_or_a_compaction_reads_the_tables_log_once(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A load reads every live file's action (it grows with the table's age), and an ingest
    asks for the latest version several times: it loads once and then reads only the
    commits made since, and a table loaded earlier sees a later commit."""
    storage = LakeStorage(str(tmp_path / "lake"))
    paths = [events_file(tmp_path / f"f{k}.jsonl", spread_events(DAY, f"f{k}-", 200))
             for k in range(3)]
    assert ingest_events(storage, paths[0], "events/f0.jsonl").added_rows == 200  # creates it
    earlier = EventTable(storage)
    before = earlier.version()
    assert before is not None
    assert earlier.files().height > 0  # read before the commits below
    counts = count_table_loads(monkeypatch)
    assert ingest_events(storage, paths[1], "events/f1.jsonl").added_rows == 200
    assert counts["loads"] == 1
    again = ingest_events(storage, paths[1], "events/f1-again.jsonl")
    assert again.added_rows == 0 and again.duplicates == 200
    assert counts["loads"] == 2
    compact_day(storage, DAY, publish_lock=Lake(uri=storage.uri).publish_lock)
    assert counts["loads"] == 3  # the compaction's too, read back after its commit included
    # the table loaded before those commits is brought up to date, not left behind
    assert earlier.version() == before + 2
    assert again.table_version == before + 1
    assert len(earlier.live_tags(DAY)[DAY]) == 1  # the compaction's
    assert earlier.files().height == EventTable(storage).files().height
    # scans pinned to a version read that version, whichever was pinned before
    assert earlier.scan(before).collect().height == 200
    assert earlier.scan(before + 1).collect().height == 400
    assert earlier.scan(before).collect().height == 200
    assert earlier.scan_days([DAY], before).collect().height == 200
    # what the catalogue records, from the ingest's own table (no second load)
    assert again.table_schema == EventTable(storage).schema()


def _with_meta_field(path: Path, field: str, value: str) -> Path:
    """24 ``trade`` events ``c-0``..``c-23``, one an hour of DAY, with ``meta.<field>``."""
    path.write_text("".join(
        json.dumps({"data": {"id": f"c-{i}", "type": "trade", "attributes": {}},
                    "meta": {"created_at": int(datetime(2026, 11, 1, i, tzinfo=UTC)
                                               .timestamp() * 1000), field: value}}) + "\n"
        for i in range(24)))
    return path


@pytest.mark.parametrize("root", ["lake", "env=prod/lake", "date=2020-01-01/x/lake"])
def test_scan_days_reads_what_the_delta_reader_reads(tmp_path: Path, root: str) -> None:
    """The rows of some days, pinned and latest, equal polars' Delta reader's: with a
    ``meta_<field>`` column the first delivery lacks and events on a second day.

    Also in a lake under folders named like partitions (common on S3 prefixes), which
    polars read as partitions: "column not present in the given Hive schema: env", or with
    ``date=`` a ShapeError (QA); compaction and ``kpi --source events`` failed there."""
    storage = LakeStorage(str(tmp_path / root))
    nxt = date(2026, 11, 2)
    first = events_file(tmp_path / "f0.jsonl",
                         spread_events(DAY, "a-", 60) + spread_events(nxt, "b-", 30))
    second = _with_meta_field(tmp_path / "f1.jsonl", "source", "app")
    assert ingest_events(storage, first, "events/f0.jsonl").added_rows == 90
    table = EventTable(storage)
    pinned = table.version()
    assert ingest_events(storage, second, "events/f1.jsonl").added_rows == 24
    assert "meta_source" in table.scan().collect_schema()
    assert table.schema() == table.scan().collect_schema()  # what the catalogue records
    for days, version, rows in (([DAY], None, 84), ([DAY, nxt], None, 114), ([nxt], None, 30),
                                ([DAY], pinned, 60), ([DAY, nxt], pinned, 90)):
        expected = (table.scan(version).filter(pl.col("date").is_in(days)).collect()
                    .sort("id"))
        got = table.scan_days(days, version).collect().sort("id")
        assert got.height == rows
        assert got.equals(expected), (days, version)
        assert got.columns == expected.columns
        kinds = ["login", "page.view"]  # some types only: from their files alone
        assert table.scan_days(days, version, types=kinds).collect().sort("id").equals(
            expected.filter(pl.col("event_type").is_in(kinds)))
    assert table.scan_days([date(2026, 11, 3)]).collect().height == 0


def test_scan_days_refuses_folders_that_disagree_with_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """scan_days takes partition values from the folders: they must be the log's."""
    storage = LakeStorage(str(tmp_path / "lake"))
    path = events_file(tmp_path / "f0.jsonl", spread_events(DAY, "a-", 30))
    assert ingest_events(storage, path, "events/f0.jsonl").added_rows == 30
    assert EventTable(storage).scan_days([DAY]).collect().height == 30
    real = event_table._file_frame
    monkeypatch.setattr(event_table, "_file_frame", lambda delta: real(delta).with_columns(
        pl.col("path").str.replace("event_type=login", "event_type=trade")))
    with pytest.raises(ValueError, match="disagree with the log"):
        EventTable(storage).scan_days([DAY])


def test_a_meta_field_first_seen_later_is_a_column_readers_see(tmp_path: Path) -> None:
    """A Delta append commits files, not a schema: the table must gain the column."""
    storage = LakeStorage(str(tmp_path / "lake"))
    first = events_file(tmp_path / "f0.jsonl", spread_events(DAY, "a-", 30))
    second = _with_meta_field(tmp_path / "f1.jsonl", "region", "eu")
    landed = ingest_events(storage, first, "events/f0.jsonl")
    assert landed.added_rows == 30
    assert ingest_events(storage, second, "events/f1.jsonl").added_rows == 24
    rows = pl.scan_delta(EventTable(storage).uri).select("id", "meta_region").collect()
    assert rows.filter(pl.col("id").str.starts_with("c-"))["meta_region"].to_list() == \
        ["eu"] * 24
    assert rows.filter(pl.col("id").str.starts_with("a-"))["meta_region"].null_count() == 30
    # the rollups record the version their rows were committed in (the column's is before)
    table = EventTable(storage)
    mine = rollups.rollup_files(storage, DAY, table.live_tags(DAY)[DAY])
    versions = set(rollups.read_rollups(storage, mine, columns=["table_version"])
                   ["table_version"].to_list())
    assert versions == {landed.table_version, table.version()}


@pytest.mark.parametrize("with_field", ["later_lines", "first_lines"])
def test_a_meta_field_in_some_batches_of_a_file_is_kept(tmp_path: Path,
                                                        with_field: str) -> None:
    """A file is validated in batches: a meta field in some of them only is one column of
    the delivery, null elsewhere (each batch's staged part has its own columns)."""
    storage = LakeStorage(str(tmp_path / "lake"))
    assert ingest_events(storage, events_file(tmp_path / "f0.jsonl", spread_events(DAY, "a-", 30)),
                  "events/f0.jsonl").added_rows == 30
    carries = range(200, 400) if with_field == "later_lines" else range(200)
    path = tmp_path / "f1.jsonl"
    path.write_text("".join(
        json.dumps({"data": {"id": f"c-{i}", "type": "trade", "attributes": {}},
                    "meta": {"created_at": int(datetime(2026, 11, 1, i % 24, tzinfo=UTC)
                                               .timestamp() * 1000),
                             **({"region": "eu"} if i in carries else {})}}) + "\n"
        for i in range(400)))
    result = event_ingest.ingest_event_file(
        storage, str(path), source=f"file://{path}", partition_key="events/f1.jsonl",
        version_tag="f1", landed_at=datetime.now(tz=UTC),
        publish_lock=Lake(uri=storage.uri).publish_lock, batch_bytes=20_000, workers=1)
    assert result.added_rows == 400
    assert result.table_schema is not None and "meta_region" in result.table_schema
    rows = (pl.scan_delta(EventTable(storage).uri).filter(pl.col("id").str.starts_with("c-"))
            .select(pl.col("id").str.slice(2).cast(pl.Int64).alias("n"), "meta_region")
            .collect().sort("n"))
    assert rows.filter(pl.col("meta_region") == "eu")["n"].to_list() == list(carries)
    assert rows["meta_region"].null_count() == 400 - len(carries)


def test_the_catalogue_hears_of_each_schema_under_the_publish_lock(tmp_path: Path) -> None:
    """Registrations in commit order: an earlier ingest registering after a later one would
    drop the later one's added column from the catalogue."""
    storage = LakeStorage(str(tmp_path / "lake"))
    lock = Lake(uri=storage.uri).publish_lock
    held = []

    @contextmanager
    def watched() -> Iterator[None]:
        with lock():
            held.append(True)
            try:
                yield
            finally:
                held.append(False)

    heard: list[tuple[bool, pl.Schema]] = []
    for key, path in (("events/f0.jsonl", events_file(tmp_path / "f0.jsonl",
                                                       spread_events(DAY, "a-", 30))),
                      ("events/f1.jsonl", _with_meta_field(tmp_path / "f1.jsonl", "region",
                                                           "eu"))):
        event_ingest.ingest_event_file(
            storage, str(path), source=f"file://{path}", partition_key=key,
            version_tag=digest(key)[:16], landed_at=datetime.now(tz=UTC),
            publish_lock=watched, workers=1,
            on_published=lambda schema: heard.append((held[-1], schema)))
    assert [h for h, _ in heard] == [True, True]
    assert "meta_region" not in heard[0][1]
    assert heard[1][1] == EventTable(storage).schema() and "meta_region" in heard[1][1]


def test_an_append_refuses_columns_the_table_lacks(tmp_path: Path) -> None:
    """Committing files with a column the table's schema lacks would hide it from every
    reader: the commit refuses, naming the column (add_columns comes first)."""
    storage = LakeStorage(str(tmp_path / "lake"))
    path = events_file(tmp_path / "f0.jsonl", spread_events(DAY, "a-", 30))
    assert ingest_events(storage, path, "events/f0.jsonl").added_rows == 30
    table = EventTable(storage)
    rows = table.scan().with_columns(pl.col("id") + "-b", meta_extra=pl.lit("x"))
    version = table.version()
    with pytest.raises(ValueError, match=r"\['meta_extra'\] are not in the events table"):
        table.append(rows, tag="b")
    assert table.version() == version
    assert table.add_columns(rows.collect_schema())
    assert table.append(rows, tag="b").rows == 30
    assert table.scan().filter(pl.col("meta_extra") == "x").collect().height == 30
