"""The event lake on S3 (and Glue): moto's server on 127.0.0.1, in its own process.

delta-rs and polars reach S3 through Rust object stores that may hold the GIL while they
wait for an answer, so an in-process (threaded) moto server would deadlock them: this
module starts moto's server as a subprocess on a free loopback port. Nothing is patched.
"""

import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import boto3
import dagster as dg
import polars as pl
import pytest
from botocore.config import Config

from cryptodudez import cli
from cryptodudez.definitions import build_definitions
from cryptodudez.jobs import EVENT_DAILY_JOB, EVENT_INGEST_JOB
from cryptodudez.lake import delta_log
from cryptodudez.lake.event_table import EventTable
from cryptodudez.lake.eventgen import GenerationReport, generate
from cryptodudez.lake.layout import partition_key_for
from cryptodudez.settings import Settings
from tests.helpers import offline_aws

REGION = "us-east-1"
DAY = date(2026, 11, 1)
FAST = Config(connect_timeout=2, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"})
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Each job's checks, listed here (not read from the definitions): a check the job stops
# running must fail these tests, not shrink what they expect.
INGEST_CHECKS = ("events_lines_accounted", "events_rows_accounted", "events_ids_unique")
DAILY_CHECKS = ("events_compacted_rows_kept", "events_compacted_schema_conforms")


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 + Glue server process on 127.0.0.1, with dummy credentials in the env."""
    empty = tmp_path_factory.mktemp("aws")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto server did not start")
            time.sleep(0.1)
    with offline_aws(empty, REGION):
        yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationReport]:
    """A small delivery (few types, so few partitions: S3 requests stay few)."""
    out = tmp_path_factory.mktemp("events")
    return out, generate(out, events=3000, days=DAY, files=1, seed=5, types=6)


@pytest.fixture
def settings(endpoint: str, tmp_path: Path) -> Settings:
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                 config=FAST).create_bucket(Bucket=bucket)
    return Settings(lake=f"s3://{bucket}/lake", endpoint_url=endpoint, region=REGION,
                    glue_database=f"cdz_{uuid.uuid4().hex[:8]}",
                    dagster_home=str(tmp_path / "dagster"))


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_events_on_s3_with_glue_and_two_laptops(
        settings: Settings, endpoint: str, delivery: tuple[Path, GenerationReport],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    folder, truth = delivery
    defs = build_definitions(settings)
    lake = defs.resources["lake"]
    instance = dg.DagsterInstance.ephemeral()
    for key in ("events/a.jsonl", "events/a-replayed.jsonl"):
        lake.land(folder / truth.files[0], key)
        instance.add_dynamic_partitions("event_files", [partition_key_for(key)])
        result = defs.resolve_job_def(EVENT_INGEST_JOB).execute_in_process(
            partition_key=partition_key_for(key), instance=instance, run_config=QUIET)
        checks = _checks(result)
        assert checks.keys() == {*INGEST_CHECKS, "events_no_lines_quarantined"}, checks
        assert all(checks[name] for name in INGEST_CHECKS), checks  # the warning may fail
    table = EventTable(lake.storage)
    assert table.uri.startswith("s3://")
    rows = table.scan().select("id").collect()
    assert rows.height == truth.unique_valid_ids == rows["id"].n_unique()
    glue = boto3.client("glue", endpoint_url=endpoint, region_name=REGION, config=FAST)
    registered = glue.get_table(DatabaseName=settings.glue_database, Name="events")["Table"]
    assert registered["Parameters"]["table_type"] == "DELTA"
    assert registered["StorageDescriptor"]["Location"] == f"{settings.lake}/validated/events/"
    daily = defs.resolve_job_def(EVENT_DAILY_JOB).execute_in_process(
        partition_key=DAY.isoformat(), instance=instance, run_config=QUIET)
    assert _checks(daily) == dict.fromkeys(DAILY_CHECKS, True)
    # The KPI job's trust in the rollups: the day's tags read from the log on S3 (no
    # fallback: None would fail), as a load of the whole table gives them.
    tags = delta_log.live_tags_of_day(lake.storage, table.root, DAY)
    assert tags and tags == EventTable(lake.storage).live_tags(DAY)[DAY]

    # The day only S3 is up: two machines, one shard each, then a merge; no Dagster.
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", settings.lake)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    parts = [tmp_path / f"part{i}.json" for i in range(2)]
    for i, part in enumerate(parts):
        assert cli.main(["kpi", "--date", DAY.isoformat(), "--shard", f"{i}/2",
                         "--out", str(part)]) == 0
    merged = tmp_path / "merged.json"
    assert cli.main(["kpi", "--merge", *map(str, parts), "--out", str(merged)]) == 0
    capsys.readouterr()
    assert cli.main(["kpi", "--date", DAY.isoformat()]) == 0
    single = json.loads(capsys.readouterr().out)
    together = json.loads(merged.read_text())
    assert together["types"] == single["types"]
    assert together["totals"] == single["totals"]
    day_truth = truth.events_per_type_date_hour.filter(pl.col("date").cast(pl.Date) == DAY)
    assert single["totals"]["events"] == int(day_truth["events"].sum())
