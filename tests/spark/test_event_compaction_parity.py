"""Spark's day compaction against polars': two copies of one lake, one day, both engines.

Each lake is built with the project's generator and ``ingest_event_file``, copied, and the
same day compacted by ``compact_day`` in one copy with the polars writer and in the other
with ``spark_writer``. :func:`differences` then compares the two copies: one file per (type,
hour), each file's rows equal and in the same order, the same Parquet schema, names that
differ only by the compaction's tag, the log's ``numRecords`` equal to the footers, the day
read back through Delta, and the compaction's own report. KPIs (from the rows and from the
rollups), a second compaction (a no-op, then a rewrite with a late event), vacuum and time
travel are checked on both. Planted faults in the Spark twin (a sort without
``created_at``, a lost row) must fail the same comparison.
The cryptomood JSON lines of ``../shared/data`` (real trades and tweet sentiments, as events)
are compared too when that folder is present.
"""

import contextlib
import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cryptodudez.checks import events as event_checks
from cryptodudez.lake import event_ingest, kpi
from cryptodudez.lake.compaction import Compacted, compact_day
from cryptodudez.lake.event_table import (
    PARTITION_COLUMNS,
    DayWriter,
    EventTable,
    polars_day_writer,
)
from cryptodudez.lake.eventgen import generate
from cryptodudez.lake.layout import digest
from cryptodudez.spark import event_compaction as ec
from cryptodudez.storage import LakeStorage
from tests.conftest import shared

pytestmark = pytest.mark.xdist_group("spark")

DAY = date(2026, 11, 1)
CRYPTOMOOD = ("historical_coin_data.txt", "historical_sentiment_data.txt")


def ingest(storage: LakeStorage, path: Path) -> None:
    key = f"events/{path.name}"
    event_ingest.ingest_event_file(
        storage, str(path), source=f"file://{path}", partition_key=key,
        version_tag=digest(f"{key}@{digest(path.read_bytes().hex())}")[:16],
        landed_at=datetime(2026, 11, 2, tzinfo=UTC), publish_lock=contextlib.nullcontext,
        workers=1)


def generated_lake(folder: Path, *, events: int, types: int, seed: int) -> LakeStorage:
    """A lake of ``events`` generated lines (late events, duplicates, malformed lines)."""
    truth = generate(folder / "in", events=events, days=DAY, files=2, seed=seed, types=types)
    storage = LakeStorage(str(folder / "lake"))
    for name in truth.files:
        ingest(storage, folder / "in" / name)
    return storage


def copy_of(storage: LakeStorage, folder: Path) -> LakeStorage:
    shutil.copytree(storage.uri, folder)
    return LakeStorage(str(folder))


def compact(storage: LakeStorage, day: date, writer: DayWriter | None) -> Compacted:
    # Small groups: several groups of types, so the files' group numbers are compared too.
    return compact_day(storage, day, publish_lock=contextlib.nullcontext, group_bytes=40_000,
                       validate=event_checks.schema_failures, writer=writer)


def day_rows(storage: LakeStorage, day: date, version: int | None = None) -> pl.DataFrame:
    """The day read back through Delta, in the order of the compacted files."""
    table = EventTable(storage)
    return (pl.scan_delta(table.uri, version=version).filter(pl.col("date") == day)
            .collect().sort("event_type", "hour", "created_at", "id"))


@dataclass(frozen=True)
class DayFile:
    name: str
    rows: pl.DataFrame
    log_rows: int
    footer_rows: int
    parquet_schema: list[tuple[str, str, str, int]]


def day_files(storage: LakeStorage, day: date) -> dict[tuple[str, int], list[DayFile]]:
    """The day's live files per (type, hour), as the log and the files themselves say."""
    table = EventTable(storage)
    out: dict[tuple[str, int], list[DayFile]] = {}
    for path, rows, event_type, hour in (table.files().filter(pl.col("date") == day)
                                         .select("path", "rows", "event_type", "hour")
                                         .iter_rows()):
        full = str(Path(table.root) / path)
        meta = pq.ParquetFile(full)
        schema = [(c.name, c.physical_type, str(c.logical_type), c.max_definition_level)
                  for c in meta.schema]
        out.setdefault((event_type, hour), []).append(DayFile(
            Path(path).name, pl.read_parquet(full), rows, meta.metadata.num_rows, schema))
    return out


def differences(ours: LakeStorage, reference: LakeStorage, day: date) -> list[str]:
    """Where the day compacted in ``ours`` differs from ``reference`` (empty: none)."""
    found = []
    mine, theirs = day_files(ours, day), day_files(reference, day)
    if mine.keys() != theirs.keys():
        found.append(f"(type, hour) pairs differ: {sorted(mine.keys() ^ theirs.keys())[:5]}")
    tags = [{ec_tag(f.name) for files in side.values() for f in files}
            for side in (mine, theirs)]
    if any(len(t) != 1 for t in tags):
        found.append(f"tags {tags}")
    tag_ours, tag_ref = (next(iter(t), "") for t in tags)
    for key in sorted(mine.keys() & theirs.keys()):
        a, b = mine[key], theirs[key]
        if len(a) != 1 or len(b) != 1:
            found.append(f"{key}: {len(a)} and {len(b)} files")
            continue
        fa, fb = a[0], b[0]
        if fa.name.removeprefix(tag_ours) != fb.name.removeprefix(tag_ref):
            found.append(f"{key}: names {fa.name} and {fb.name}")
        if not fa.rows.equals(fb.rows):
            found.append(f"{key}: rows differ ({fa.rows.height} and {fb.rows.height})")
        if fa.log_rows != fa.footer_rows or fa.log_rows != fb.log_rows:
            found.append(f"{key}: numRecords {fa.log_rows}, footer {fa.footer_rows}, "
                         f"reference {fb.log_rows}")
        if fa.parquet_schema != fb.parquet_schema:
            found.append(f"{key}: Parquet schemas differ")
    if not day_rows(ours, day).equals(day_rows(reference, day)):
        found.append("the day read back differs")
    return found


def ec_tag(name: str) -> str:
    """The compaction tag a file name starts with (``<tag>-gNNN-NNN.parquet``)."""
    match = re.fullmatch(r"(compact_.*)-g\d{3}-\d{3}\.parquet", name)
    return match.group(1) if match else name


def report(done: Compacted) -> dict[str, Any]:
    """What ``compact_day`` reported, and the asset's checks of it."""
    assert done.written is not None
    return {"written": done.written, "rows_before": done.rows_before,
            "rows_after": done.rows_after, "distinct_ids_after": done.distinct_ids_after,
            "failures": done.failures.height, "vacuumed": done.vacuumed,
            "checks": [(c.check_name, c.passed) for c in event_checks.compaction_checks(done)]}


def kpis(storage: LakeStorage, day: date) -> dict[str, Any]:
    """The day's KPIs from the rows and from the rollups (sketch bytes left out)."""
    return {source: {t: {k: v for k, v in values.items() if not k.endswith("_hll")}
                     for t, values in kpi.compute(storage, day, source=source)["types"].items()}
            for source in kpi.SOURCES}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory,
              spark: SparkSession) -> dict[str, Any]:
    """One generated lake compacted by polars in one copy and by Spark in another."""
    folder = tmp_path_factory.mktemp("compaction")
    source = generated_lake(folder / "source", events=1_500, types=3, seed=21)
    before = day_rows(source, DAY)
    kpis_before = kpis(source, DAY)
    version_before = EventTable(source).version()
    lakes = {"polars": copy_of(source, folder / "polars"),
             "spark": copy_of(source, folder / "spark")}
    done = {"polars": compact(lakes["polars"], DAY, None),
            "spark": compact(lakes["spark"], DAY, ec.spark_writer(spark))}
    return {"folder": folder, "source": source, "before": before, "kpis": kpis_before,
            "version_before": version_before, "lakes": lakes, "done": done}


def test_spark_compaction_equals_polars_file_by_file(generated: dict[str, Any]) -> None:
    lakes = generated["lakes"]
    assert differences(lakes["spark"], lakes["polars"], DAY) == []
    files = day_files(lakes["spark"], DAY)
    assert all(len(v) == 1 for v in files.values())
    # Partition columns are in the folders and the log only, as the polars writer does.
    columns = {c[0] for v in files.values() for f in v for c in f.parquet_schema}
    assert columns.isdisjoint(PARTITION_COLUMNS)
    assert ("created_at", "INT64", "Timestamp(isAdjustedToUTC=true, timeUnit=microseconds, "
            "is_from_converted_type=false, force_set_converted_type=false)", 1) in next(
        iter(files.values()))[0].parquet_schema
    # Several groups of types, each type's files numbered by its group.
    assert len({re.search(r"-g(\d{3})-", f.name).group(1)  # type: ignore[union-attr]
                for v in files.values() for f in v}) > 1
    # Nothing but the compacted files in the table folder of the day; no staging left.
    table = EventTable(lakes["spark"])
    on_disk = {p.relative_to(table.root).as_posix()
               for p in Path(table.root).glob(f"event_type=*/date={DAY}/hour=*/*.parquet")}
    live = set(table.files().filter(pl.col("date") == DAY)["path"])
    removed = set(EventTable(generated["source"]).files()
                  .filter(pl.col("date") == DAY)["path"])
    assert live <= on_disk <= live | removed  # (vacuumed by another test, or not yet)
    assert not Path(lakes["spark"].path(*ec.STAGING)).exists() or not any(
        Path(lakes["spark"].path(*ec.STAGING)).iterdir())


def test_rows_read_back_and_report_equal(generated: dict[str, Any]) -> None:
    lakes, done = generated["lakes"], generated["done"]
    assert day_rows(lakes["spark"], DAY).equals(generated["before"])
    assert report(done["spark"]) == report(done["polars"])
    assert done["spark"].rows_after == done["spark"].distinct_ids_after == \
        generated["before"].height
    assert all(passed for _, passed in report(done["spark"])["checks"])
    # The log's schema is untouched: the same columns and types as before.
    schemas = {engine: EventTable(lake).table().schema().to_json() for engine, lake
               in lakes.items()}
    assert schemas["spark"] == schemas["polars"]
    assert pl.scan_delta(EventTable(lakes["spark"]).uri).collect_schema() == \
        pl.scan_delta(EventTable(generated["source"]).uri).collect_schema()


def commit_of(storage: LakeStorage, version: int) -> dict[str, Any]:
    """The actions of one Delta commit as JSON, file names and times left out."""
    log = Path(EventTable(storage).root) / "_delta_log" / f"{version:020d}.json"
    actions = [json.loads(line) for line in log.read_text().splitlines()]
    adds = sorted((json.dumps(a["add"]["partitionValues"], sort_keys=True),
                   a["add"]["stats"], a["add"]["dataChange"]) for a in actions if "add" in a)
    removes = sorted((r["remove"]["path"], r["remove"]["size"], r["remove"]["dataChange"],
                      json.dumps(r["remove"]["partitionValues"], sort_keys=True))
                     for r in actions if "remove" in r)
    info = next(a["commitInfo"] for a in actions if "commitInfo" in a)
    return {"adds": adds, "removes": removes,
            "info": {k: v for k, v in info.items() if k.startswith("cryptodudez.")},
            "kinds": sorted({next(iter(a)) for a in actions})}


def test_one_commit_with_the_same_actions(generated: dict[str, Any]) -> None:
    version = generated["version_before"] + 1
    spark, polars = (commit_of(generated["lakes"][e], version) for e in ("spark", "polars"))
    assert spark == polars
    assert spark["kinds"] == ["add", "commitInfo", "remove"]
    hours = {json.loads(pv)["hour"] for pv, _, _ in spark["adds"]}
    assert "0" in hours and "00" not in hours  # unpadded, like the polars writer's
    # numRecords of every added file is its footer's row count, and they add up to the day.
    assert sum(json.loads(stats)["numRecords"] for _, stats, _ in spark["adds"]) == \
        generated["before"].height


def test_twin_refuses_a_session_writing_int96_timestamps(generated: dict[str, Any]) -> None:
    class Conf:
        def get(self, key: str, default: str | None = None) -> str | None:
            return "INT96" if key == ec.TIMESTAMP_CONF else default

    class Session:
        conf = Conf()

    with pytest.raises(ValueError, match="TIMESTAMP_MICROS"):
        ec.write_day(Session(), EventTable(generated["source"]),  # type: ignore[arg-type]
                     DAY, version=None, groups=[], prefix="x")


def test_kpis_and_rollups_agree(generated: dict[str, Any]) -> None:
    lakes = generated["lakes"]
    after = kpis(lakes["spark"], DAY)
    assert after == kpis(lakes["polars"], DAY)  # estimates included: the same sketches
    before = generated["kpis"]
    assert after["events"] == before["events"]  # exact KPIs, from the rows
    # From the rollups: the counts exactly; HyperLogLog estimates of the compaction's new
    # sketches (one per group, not one per landed file) may move by an id or two.
    for source in (after["rollups"], before["rollups"]):
        for values in source.values():
            values.pop("distinct_ids"), values.pop("distinct_users")
    assert after["rollups"] == before["rollups"]
    live = {engine: EventTable(lake).live_tags(DAY)[DAY] for engine, lake in lakes.items()}
    assert all(len(tags) == 1 and next(iter(tags)).startswith("compact_")
               for tags in live.values())


def test_time_travel_then_second_compaction_and_vacuum(generated: dict[str, Any],
                                                       spark: SparkSession,
                                                       tmp_path: Path) -> None:
    lakes = generated["lakes"]
    for lake in lakes.values():
        old = day_rows(lake, DAY, version=generated["version_before"])
        assert old.equals(generated["before"])
    writers = {"polars": polars_day_writer, "spark": ec.spark_writer(spark)}
    # Nothing added since the first compaction: with either writer, a second one is a no-op.
    versions = {engine: EventTable(lake).version() for engine, lake in lakes.items()}
    for engine, lake in lakes.items():
        idle = compact(lake, DAY, writers[engine])
        assert idle.already_compacted and idle.written is None
        assert EventTable(lake).version() == versions[engine]
        assert all(c.passed for c in event_checks.compaction_checks(idle))
    # A late event on the day: both writers rewrite the compacted files with it.
    late = tmp_path / "late.jsonl"
    late.write_text(json.dumps({
        "data": {"id": "late-1", "type": "late.type", "attributes": {"user_id": "u1"}},
        "meta": {"created_at": int(datetime(2026, 11, 1, 5, tzinfo=UTC).timestamp() * 1000)},
    }) + "\n")
    for lake in lakes.values():
        ingest(lake, late)
    again = {engine: compact(lake, DAY, writers[engine]) for engine, lake in lakes.items()}
    assert report(again["spark"]) == report(again["polars"])
    assert again["polars"].written is not None
    assert again["polars"].written.rows == generated["before"].height + 1
    assert differences(lakes["spark"], lakes["polars"], DAY) == []
    for lake in lakes.values():
        table = EventTable(lake)
        removed = table.vacuum(retention_hours=0)
        assert removed  # the first compaction's files and the ingested ones
        assert not any((Path(table.root) / p).exists() for p in removed)
        assert day_rows(lake, DAY).filter(pl.col("id") != "late-1").equals(generated["before"])
    assert differences(lakes["spark"], lakes["polars"], DAY) == []


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A lake of one event type and its polars compaction: the planted faults' reference."""
    folder = tmp_path_factory.mktemp("planted")
    source = generated_lake(folder / "source", events=400, types=1, seed=5)
    reference = copy_of(source, folder / "polars")
    compact(reference, DAY, None)
    return {"source": source, "reference": reference, "before": day_rows(source, DAY)}


def plant(monkeypatch: pytest.MonkeyPatch, *, sort: tuple[str, ...] = ec.SORT,
          rows: Callable[[DataFrame], DataFrame] = lambda frame: frame) -> None:
    """Alter the Spark twin's layout step: another row order, or ``rows`` of its input.

    (Unaltered, it is the writer :func:`generated` and :func:`test_unaltered_twin` check.)
    """
    original = ec.compacted

    def altered(frame: DataFrame, **_: object) -> DataFrame:
        return original(rows(frame), sort=sort)

    monkeypatch.setattr(ec, "compacted", altered)


def test_unaltered_twin(tiny: dict[str, Any], tmp_path: Path, spark: SparkSession,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    plant(monkeypatch)
    lake = copy_of(tiny["source"], tmp_path / "spark")
    compact(lake, DAY, ec.spark_writer(spark))
    assert differences(lake, tiny["reference"], DAY) == []


def test_planted_fault_sort_without_created_at_is_caught(
        tiny: dict[str, Any], tmp_path: Path, spark: SparkSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    plant(monkeypatch, sort=("event_type", "date", "hour", "id"))
    lake = copy_of(tiny["source"], tmp_path / "spark")
    done = compact(lake, DAY, ec.spark_writer(spark))
    found = differences(lake, tiny["reference"], DAY)
    assert found and all("rows differ" in f for f in found)
    # The compaction's own checks cannot see an order: only the parity comparison does.
    assert all(passed for _, passed in report(done)["checks"])


def test_planted_fault_lost_row_is_caught(tiny: dict[str, Any], tmp_path: Path,
                                          spark: SparkSession,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    victim = tiny["before"]["id"][7]
    plant(monkeypatch, rows=lambda frame: frame.filter(F.col("id") != victim))
    lake = copy_of(tiny["source"], tmp_path / "spark")
    done = compact(lake, DAY, ec.spark_writer(spark))
    found = differences(lake, tiny["reference"], DAY)
    assert any("rows differ" in f for f in found)
    assert any("read back differs" in f for f in found)
    assert done.rows_after == done.rows_before - 1
    assert dict(report(done)["checks"])["events_compacted_rows_kept"] is False


def cryptomood_events(folder: Path) -> Path:
    """The cryptomood trades and sentiments as events (real ids, times and texts)."""
    lines = []
    for name in CRYPTOMOOD:
        for raw in (shared("cryptomood") / name).read_bytes().splitlines():
            if not raw.strip():
                continue
            record = json.loads(raw)
            stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
            kind = (f"trade_{record['symbol_id'].lower()}" if "symbol_id" in record
                    else "sentiment")
            event_id = record.get("uuid") or hashlib.sha256(raw).hexdigest()[:32]
            lines.append(json.dumps({
                "data": {"id": event_id, "type": kind, "attributes": record},
                "meta": {"created_at": int(stamp.timestamp() * 1000), "service": name},
            }, ensure_ascii=False))
    path = folder / "cryptomood.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_real_cryptomood_events_compact_alike(tmp_path: Path,
                                              spark: SparkSession) -> None:
    if not (shared("cryptomood") / CRYPTOMOOD[0]).exists():
        pytest.skip("../shared/data/cryptomood is absent")
    day = date(2018, 7, 16)
    source = LakeStorage(str(tmp_path / "source"))
    ingest(source, cryptomood_events(tmp_path))
    before = day_rows(source, day)
    assert before.height > 300
    lakes = {"polars": copy_of(source, tmp_path / "polars"),
             "spark": copy_of(source, tmp_path / "spark")}
    done = {"polars": compact(lakes["polars"], day, None),
            "spark": compact(lakes["spark"], day, ec.spark_writer(spark))}
    assert differences(lakes["spark"], lakes["polars"], day) == []
    assert day_rows(lakes["spark"], day).equals(before)
    assert report(done["spark"]) == report(done["polars"])
    assert kpis(lakes["spark"], day) == kpis(lakes["polars"], day)


def test_layout_check_refuses_folders_that_disagree_with_the_log() -> None:
    files = pl.DataFrame({"path": ["event_type=a/date=2026-11-01/hour=03/x.parquet"],
                          "event_type": ["a"], "date": [DAY], "hour": [4]},
                         schema_overrides={"hour": pl.Int32})
    with pytest.raises(ValueError, match="disagree"):
        ec.check_layout(files)
    ec.check_layout(files.with_columns(pl.lit(3, dtype=pl.Int32).alias("hour")))
