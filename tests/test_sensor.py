"""The landing sensor on a local lake: cursor-driven, one listing per tick, idempotent."""

import json
import os
from pathlib import Path

import dagster as dg

from cryptodudez.resources.lake import Lake, partition_key_for
from cryptodudez.sensors.landing import landing_sensor


def _tick(lake: Lake, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={"lake": lake}) as ctx:
        result = landing_sensor(ctx)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name,
                                        list(request.partition_keys))
    return result


def _write(lake: Lake, key: str, data: bytes, mtime: float | None = None) -> None:
    path = Path(lake.path("raw", key))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_first_tick_nothing_new_new_file_changed_file(tmp_path: Path, instance) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    assert _tick(lake, instance, None).skip_reason  # empty lake

    _write(lake, "a.csv", b"x\n1\n")
    first = _tick(lake, instance, None)
    assert [r.partition_key for r in first.run_requests] == [partition_key_for("a.csv")]
    assert instance.get_dynamic_partitions("landed_files") == ["a.csv"]

    nothing = _tick(lake, instance, first.cursor)
    assert not nothing.run_requests
    assert nothing.skip_reason

    _write(lake, "sub dir/b.csv", b"y\n2\n")
    new = _tick(lake, instance, nothing.cursor)
    assert [r.partition_key for r in new.run_requests] == ["sub dir/b.csv"]

    _write(lake, "a.csv", b"x\n1\n2\n")
    changed = _tick(lake, instance, new.cursor)
    assert [r.partition_key for r in changed.run_requests] == ["a.csv"]
    assert changed.run_requests[0].run_key != first.run_requests[0].run_key


def test_several_files_in_the_same_second_are_each_requested_once(tmp_path: Path,
                                                                   instance) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    _write(lake, "early.csv", b"e\n", mtime=1_700_000_000)
    cursor = _tick(lake, instance, None).cursor
    for name in ("s1.csv", "s2.csv", "s3.csv"):
        _write(lake, name, b"same second\n", mtime=1_700_000_100)
    result = _tick(lake, instance, cursor)
    assert sorted(r.partition_key for r in result.run_requests) == ["s1.csv", "s2.csv",
                                                                    "s3.csv"]
    assert len({r.run_key for r in result.run_requests}) == 3
    assert not _tick(lake, instance, result.cursor).run_requests


def test_hidden_and_versions_folders_are_not_landed_files(tmp_path: Path, instance) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    _write(lake, ".versions/a.csv/123", b"old\n")
    _write(lake, "x/.tmp-123.part", b"partial\n")
    assert not _tick(lake, instance, None).run_requests
    assert json.loads(_tick(lake, instance, None).cursor) == {}
