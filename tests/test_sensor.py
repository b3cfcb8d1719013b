"""The landing sensor on a local lake: one listing per tick, one shared record of what was
ingested (with ``cryptodudez ingest``), failed ingests re-requested, readers never in the way."""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from cryptodudez import commands
from cryptodudez.definitions import build_definitions
from cryptodudez.jobs import INGEST_JOB
from cryptodudez.resources import build_resources
from cryptodudez.resources.lake import Lake, RawObject, partition_key_for
from cryptodudez.resources.metastore import DuckDBMetastore, Metastore
from cryptodudez.sensors.landing import (
    FILE_VERSION_TAG,
    MAX_ATTEMPTS,
    file_version,
    landing_sensor,
    plan_runs,
)
from cryptodudez.settings import PROJECT_DIR, Settings

SAMPLE = PROJECT_DIR / "samples" / "stock_market_sample.zip"


def _tick(lake: Lake, metastore: Metastore, instance: dg.DagsterInstance) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance,
                                 resources={"lake": lake, "metastore": metastore}) as ctx:
        result = landing_sensor(ctx)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name,
                                        list(request.partition_keys))
    return result


def _requested(result: dg.SensorResult) -> dict[str, str]:
    keys = [r.partition_key for r in result.run_requests or []]
    assert len(keys) == len(set(keys))
    return {r.partition_key: r.run_key for r in result.run_requests or []}


def _write(lake: Lake, key: str, data: bytes, mtime: float | None = None) -> None:
    path = Path(lake.path("raw", key))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def _ingested(metastore: Metastore, lake: Lake, key: str) -> None:
    """What a successful ingest run records (the metastore's shared record)."""
    obj = lake.stat_raw(key)
    metastore.record_ingested(partition_key_for(key), version=obj.version, sha256="x",
                              run_id="r")


@pytest.fixture
def local(tmp_path: Path) -> tuple[Lake, DuckDBMetastore]:
    lake = Lake(uri=str(tmp_path / "lake"))
    return lake, DuckDBMetastore(path=lake.path("catalog.duckdb"))


def test_first_tick_nothing_new_new_file_changed_file(local, instance) -> None:
    lake, metastore = local
    assert _tick(lake, metastore, instance).skip_reason  # empty lake

    _write(lake, "a.csv", b"x\n1\n")
    first = _tick(lake, metastore, instance)
    assert list(_requested(first)) == [partition_key_for("a.csv")]
    assert instance.get_dynamic_partitions("landed_files") == ["a.csv"]
    # Not ingested yet and no run launched: the same request again (the daemon dedups by key).
    assert _requested(_tick(lake, metastore, instance)) == _requested(first)

    _ingested(metastore, lake, "a.csv")
    nothing = _tick(lake, metastore, instance)
    assert not nothing.run_requests
    assert nothing.skip_reason

    _write(lake, "sub dir/b.csv", b"y\n2\n")
    assert list(_requested(_tick(lake, metastore, instance))) == ["sub dir/b.csv"]
    _ingested(metastore, lake, "sub dir/b.csv")

    _write(lake, "a.csv", b"x\n1\n2\n")
    changed = _tick(lake, metastore, instance)
    assert list(_requested(changed)) == ["a.csv"]
    assert changed.run_requests[0].run_key != first.run_requests[0].run_key


def test_several_files_in_the_same_second_are_each_requested(local, instance) -> None:
    lake, metastore = local
    _write(lake, "early.csv", b"e\n", mtime=1_700_000_000)
    _ingested(metastore, lake, "early.csv")
    for name in ("s1.csv", "s2.csv", "s3.csv"):
        _write(lake, name, b"same second\n", mtime=1_700_000_100)
    result = _tick(lake, metastore, instance)
    assert sorted(_requested(result)) == ["s1.csv", "s2.csv", "s3.csv"]
    assert len({r.run_key for r in result.run_requests}) == 3


def test_hidden_and_versions_folders_are_not_landed_files(local, instance) -> None:
    lake, metastore = local
    _write(lake, ".versions/a.csv/123", b"old\n")
    _write(lake, "x/.tmp-123.part", b"partial\n")
    assert not _tick(lake, metastore, instance).run_requests


def _run(status: dg.DagsterRunStatus, obj: RawObject) -> dg.DagsterRun:
    return dg.DagsterRun(job_name=INGEST_JOB, run_id=f"{status.value}-{time.monotonic_ns()}",
                         status=status, tags={FILE_VERSION_TAG: file_version(obj)})


def test_failed_ingests_are_requested_again_under_a_new_key_until_the_limit() -> None:
    obj = RawObject(key="a.csv", version="12-34", size=12, landed_at=None)  # type: ignore[arg-type]
    first = plan_runs([obj], [])
    assert [r.run_key for r in first.requests] == [f"{file_version(obj)}#0"]

    queued = plan_runs([obj], [_run(dg.DagsterRunStatus.STARTED, obj)])
    assert not queued.requests
    assert queued.in_flight == ["a.csv"]

    failed = plan_runs([obj], [_run(dg.DagsterRunStatus.FAILURE, obj)])
    assert [r.run_key for r in failed.requests] == [f"{file_version(obj)}#1"]

    twice = plan_runs([obj], [_run(dg.DagsterRunStatus.FAILURE, obj),
                              _run(dg.DagsterRunStatus.CANCELED, obj)])
    assert [r.run_key for r in twice.requests] == [f"{file_version(obj)}#2"]

    exhausted = plan_runs([obj], [_run(dg.DagsterRunStatus.FAILURE, obj)] * MAX_ATTEMPTS)
    assert not exhausted.requests
    assert exhausted.given_up == ["a.csv"]


def test_a_failed_run_is_re_requested_by_the_sensor(tmp_path: Path, instance,
                                                    monkeypatch) -> None:
    """An ingest that fails (here: the metastore write) is requested again on a later tick."""
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dh"))
    defs = build_definitions(settings)
    resources = build_resources(settings)
    lake, metastore = resources["lake"], resources["metastore"]
    lake.land(SAMPLE, "s.zip")
    first = _tick(lake, metastore, instance)
    (request,) = first.run_requests

    def broken(*_: object, **__: object) -> None:
        raise OSError("disk full")

    job = defs.resolve_job_def(INGEST_JOB)
    with monkeypatch.context() as mp:
        mp.setattr(DuckDBMetastore, "record_ingested", broken)
        failed = job.execute_in_process(partition_key=request.partition_key, instance=instance,
                                        tags=request.tags, raise_on_error=False)
    assert not failed.success
    again = _tick(lake, metastore, instance)
    (retry,) = again.run_requests
    assert retry.partition_key == request.partition_key
    assert retry.run_key != request.run_key
    assert job.execute_in_process(partition_key=retry.partition_key, instance=instance,
                                  tags=retry.tags).success
    assert not _tick(lake, metastore, instance).run_requests


def test_the_sensor_does_not_redo_what_the_cli_ingested(tmp_path: Path, monkeypatch) -> None:
    """Open the UI after ``cryptodudez ingest``: the sensor launches nothing."""
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dh"))
    monkeypatch.setenv("DAGSTER_HOME", settings.dagster_home)
    commands.land([SAMPLE], settings=settings)
    counts = commands.ingest(settings=settings, progress=False)
    assert counts["ingested"] == 1
    resources = build_resources(settings)
    with dg.DagsterInstance.get() as instance:
        result = _tick(resources["lake"], resources["metastore"], instance)
    assert not result.run_requests
    assert result.skip_reason is not None
    assert result.skip_reason.skip_message == "all 1 landed files are ingested"
    # and the CLI, run again, agrees
    assert commands.ingest(settings=settings, progress=False)["up_to_date"] == 1


def test_a_reader_holding_the_catalogue_open_blocks_neither_ingest_nor_sensor(
        tmp_path: Path, monkeypatch) -> None:
    """Someone inspects catalog.duckdb (read-only, in another process) while ingest runs."""
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dh"))
    monkeypatch.setenv("DAGSTER_HOME", settings.dagster_home)
    resources = build_resources(settings)
    lake, metastore = resources["lake"], resources["metastore"]
    lake.land(SAMPLE, "first.zip")
    assert commands.ingest(settings=settings, progress=False)["ingested"] == 1
    catalog = lake.path("catalog.duckdb")
    reader = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
         "print(con.execute('select count(*) from files').fetchone()[0], flush=True); "
         "sys.stdin.read()", catalog],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None
        assert int(reader.stdout.readline()) > 0  # the reader holds the file open now
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(catalog).close()  # what ingest used to need, and could not get
        lake.land(SAMPLE, "second.zip")
        with dg.DagsterInstance.get() as instance:
            request = _tick(lake, metastore, instance)
            assert list(_requested(request)) == ["second.zip"]
        counts = commands.ingest(settings=settings, progress=False)
        assert counts["ingested"] == 1
        assert counts["up_to_date"] == 1
        with dg.DagsterInstance.get() as instance:
            assert not _tick(lake, metastore, instance).run_requests
    finally:
        reader.communicate(timeout=30)
    assert set(metastore.ingested_versions()) == {"first.zip", "second.zip"}


def test_a_backfill_run_in_flight_is_not_started_twice(local, instance) -> None:
    """A run launched by ``dagster job backfill`` (or the launchpad) tags no file version:
    the sensor did not see it and started a second ingest of the same file."""
    lake, metastore = local
    _write(lake, "a.csv", b"x\n1\n")
    _write(lake, "b.csv", b"y\n2\n")
    key = partition_key_for("a.csv")
    backfill = dg.DagsterRun(job_name=INGEST_JOB, run_id="backfill-a",
                             status=dg.DagsterRunStatus.STARTED,
                             tags={"dagster/partition": key, "dagster/backfill": "bf1"})
    instance.add_run(backfill)
    other_job = dg.DagsterRun(job_name="stock_pipeline", run_id="other-b",  # not an ingest
                              status=dg.DagsterRunStatus.STARTED,
                              tags={"dagster/partition": partition_key_for("b.csv")})
    instance.add_run(other_job)
    result = _tick(lake, metastore, instance)
    assert list(_requested(result)) == [partition_key_for("b.csv")]  # a.csv is in flight
    # the asset page's Materialize (or its backfill) runs as an asset job (a reviewer)
    from_asset_page = dg.DagsterRun(job_name="__ASSET_JOB", run_id="asset-page-b",
                                    status=dg.DagsterRunStatus.STARTING,
                                    tags={"dagster/partition": partition_key_for("b.csv")})
    instance.add_run(from_asset_page)
    assert not _tick(lake, metastore, instance).run_requests
    instance.report_run_failed(from_asset_page)

    instance.report_run_failed(backfill)  # the run ended: requested unless ingested
    assert sorted(_requested(_tick(lake, metastore, instance))) == ["a.csv", "b.csv"]


def test_a_busy_partition_is_in_flight_whatever_its_runs_tags() -> None:
    obj = RawObject(key="a.csv", version="12-34", size=12, landed_at=None)  # type: ignore[arg-type]
    plan = plan_runs([obj], [], busy={partition_key_for("a.csv")})
    assert (plan.requests, plan.in_flight) == ([], ["a.csv"])
    assert [r.partition_key for r in plan_runs([obj], [], busy={"b.csv"}).requests] == ["a.csv"]
