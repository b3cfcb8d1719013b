"""The production path (S3 lake + AWS Glue catalogue) against a real S3/Glue HTTP endpoint.

A moto server listens on 127.0.0.1 for the whole module. Nothing is patched: the platform's
own clients (s3fs for the lake, boto3 for Glue) talk HTTP to it exactly as they would to AWS.
Every test works in its own bucket and Glue database, so tests are independent.
"""

import csv
import functools
import hashlib
import io
import json
import logging
import posixpath
import re
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import polars as pl
import pytest
from botocore.config import Config
from litestar.testing import TestClient
from moto.server import ThreadedMotoServer
from polars.testing import assert_frame_equal

from cryptodudez import cli
from cryptodudez.archives import iter_unpacked
from cryptodudez.assets import lake as lake_assets
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.definitions import build_definitions
from cryptodudez.ingest import ingest_members
from cryptodudez.lake.tables import PartitionWriter, refresh_security_names, symbol_directory
from cryptodudez.resources import build_resources
from cryptodudez.resources.lake import Lake, partition_key_for, raw_key_for
from cryptodudez.resources.metastore import (
    COLUMNS_SCHEMA,
    FILES_SCHEMA,
    DuckDBMetastore,
    ForeignTableError,
    GlueMetastore,
)
from cryptodudez.sensors.landing import INGEST_JOB, landing_sensor
from cryptodudez.settings import PROJECT_DIR, Settings
from cryptodudez.storage import LakeStorage
from serving.app import ServingSettings, create_app
from tests.helpers import offline_aws, publish

# One moto server and one ingested S3 lake for the module: its tests stay on one
# xdist worker (./run test uses --dist loadgroup), so the fixtures are built once.
pytestmark = pytest.mark.xdist_group("s3")

SAMPLES = sorted((PROJECT_DIR / "samples").glob("*.zip"))
REGION = "us-east-1"
TABLES = ("stock_prices", "crypto_prices", "tweets", "symbols_meta", "coin_trades",
          "tweet_sentiments")
# Our own clients fail fast: a dead or wedged endpoint ends a test in seconds, not minutes.
FAST = Config(connect_timeout=2, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"})
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# -- the endpoint -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Dummy credentials, and nothing that could send a request anywhere but loopback."""
    empty = tmp_path_factory.mktemp("aws")
    with offline_aws(empty, REGION):
        yield


@pytest.fixture(scope="module")
def endpoint(aws_env: None) -> Iterator[str]:
    """URL of a moto S3 + Glue server on 127.0.0.1 (a free port) for this module."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    assert host == "127.0.0.1"
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    """Our own S3 client (the test's view of the bucket, independent of the platform)."""
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, config=FAST)


@pytest.fixture(scope="module")
def glue(endpoint: str) -> Any:
    """Our own Glue client."""
    return boto3.client("glue", endpoint_url=endpoint, region_name=REGION, config=FAST)


def new_bucket(s3: Any, *, versioned: bool = False) -> str:
    """A fresh, empty bucket."""
    name = f"lake-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def s3_settings(bucket: str, endpoint: str, home: Path) -> Settings:
    """Production settings for a lake under ``s3://<bucket>/lake``."""
    return Settings(lake=f"s3://{bucket}/lake", endpoint_url=endpoint, region=REGION,
                    glue_database=f"cdz_{uuid.uuid4().hex[:8]}", dagster_home=str(home))


def keys_in(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix``, listed by our own client."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def memory_instance() -> dg.DagsterInstance:
    """An in-memory Dagster instance: runs here store hundreds of events, and a SQLite file
    per event would make the Dagster bookkeeping, not S3, the slowest part of these tests."""
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """An in-memory Dagster instance (overrides the SQLite one of conftest.py)."""
    inst = memory_instance()
    yield inst
    inst.dispose()


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh bucket for one test."""
    return new_bucket(s3)


@pytest.fixture
def resources(bucket: str, endpoint: str, tmp_path: Path) -> dict[str, Any]:
    """The production resource set of a fresh S3 lake."""
    settings = s3_settings(bucket, endpoint, tmp_path / "dagster")
    assert settings.is_production
    resources = build_resources(settings)
    assert isinstance(resources["metastore"], GlueMetastore)
    return resources


@pytest.fixture
def lake(resources: dict[str, Any]) -> Lake:
    """The production lake resource of a fresh S3 lake."""
    return resources["lake"]


# -- 1. the landing sensor ----------------------------------------------------------------------


def tick(instance: dg.DagsterInstance, resources: dict[str, Any]) -> dg.SensorResult:
    """One sensor evaluation, with its partition requests applied as the daemon would."""
    with dg.build_sensor_context(instance=instance, resources={
            "lake": resources["lake"], "metastore": resources["metastore"]}) as ctx:
        result = landing_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        instance.add_dynamic_partitions(request.partitions_def_name,
                                        list(request.partition_keys))
    return result


def requested(result: dg.SensorResult) -> dict[str, str]:
    """Partition key -> run key of every run request (each partition at most once)."""
    counts = Counter(r.partition_key for r in result.run_requests or [])
    assert all(n == 1 for n in counts.values()), counts
    return {r.partition_key: r.run_key for r in result.run_requests or []}


def mark_ingested(resources: dict[str, Any], result: dg.SensorResult) -> None:
    """Record each requested version as ingested, as a successful ingest run does."""
    lake, metastore = resources["lake"], resources["metastore"]
    for request in result.run_requests or []:
        obj = lake.stat_raw(request.tags["cryptodudez/raw_key"])
        metastore.record_ingested(partition_key_for(obj.key), version=obj.version,
                                  sha256="-", run_id="-")


def test_landing_sensor_on_s3(resources: dict[str, Any], s3: Any, bucket: str,
                              instance: dg.DagsterInstance, tmp_path: Path) -> None:
    """New and changed objects are requested until the Glue-side record says ingested."""
    lake = resources["lake"]
    for sample in SAMPLES:
        lake.land(sample, f"samples/{sample.name}")
    sample_keys = {partition_key_for(f"samples/{s.name}") for s in SAMPLES}

    first = tick(instance, resources)
    runs = requested(first)
    assert set(runs) == sample_keys
    assert len(set(runs.values())) == len(runs)
    assert {r.tags["cryptodudez/raw_key"] for r in first.run_requests} == {
        f"samples/{s.name}" for s in SAMPLES}
    assert set(instance.get_dynamic_partitions("landed_files")) == sample_keys
    # Nothing ran yet: the same run keys again, which the daemon launches only once.
    assert requested(tick(instance, resources)) == runs

    mark_ingested(resources, first)
    second = tick(instance, resources)
    assert not second.run_requests
    assert second.skip_reason
    assert not second.dynamic_partitions_requests

    # A vendor drops a new object straight into the bucket (not through the platform).
    s3.put_object(Bucket=bucket, Key="lake/raw/vendor/2026/prices 01.csv", Body=b"a,b\n1,2\n")
    third = tick(instance, resources)
    new_key = partition_key_for("vendor/2026/prices 01.csv")
    assert set(requested(third)) == {new_key}
    assert [list(r.partition_keys) for r in third.dynamic_partitions_requests] == [[new_key]]
    mark_ingested(resources, third)

    # The same name re-delivered with different content is requested again, as a new run.
    changed = tmp_path / "changed.zip"
    changed.write_bytes(SAMPLES[0].read_bytes() + b"\0")  # different bytes, same name
    changed_key = partition_key_for(f"samples/{SAMPLES[0].name}")
    lake.land(changed, f"samples/{SAMPLES[0].name}")
    fourth = tick(instance, resources)
    assert set(requested(fourth)) == {changed_key}
    assert requested(fourth)[changed_key] != runs[changed_key]
    assert not fourth.dynamic_partitions_requests  # the partition exists already
    mark_ingested(resources, fourth)

    # Objects landing within one second, some before and some after a tick: each version is
    # requested under one run key (ETags, not LastModified, tell versions apart).
    s3.put_object(Bucket=bucket, Key="lake/raw/burst/a.csv", Body=b"a")
    s3.put_object(Bucket=bucket, Key="lake/raw/burst/b.csv", Body=b"b")
    early = tick(instance, resources)
    s3.put_object(Bucket=bucket, Key="lake/raw/burst/c.csv", Body=b"c")
    late = tick(instance, resources)
    assert set(requested(early)) == {"burst/a.csv", "burst/b.csv"}
    assert requested(late) == {**requested(early), "burst/c.csv": requested(late)["burst/c.csv"]}
    mark_ingested(resources, late)
    assert not tick(instance, resources).run_requests


def test_directory_markers_and_hidden_objects_are_not_landed_files(
        resources: dict[str, Any], s3: Any, bucket: str, instance: dg.DagsterInstance) -> None:
    """Zero-byte ``folder/`` markers (S3 console "Create folder") and dot-paths are no files."""
    s3.put_object(Bucket=bucket, Key="lake/raw/incoming/", Body=b"")
    s3.put_object(Bucket=bucket, Key="lake/raw/.staging/upload.csv", Body=b"x\n")
    s3.put_object(Bucket=bucket, Key="lake/raw/incoming/.part-0001", Body=b"x\n")
    s3.put_object(Bucket=bucket, Key="lake/raw/incoming/real.csv", Body=b"a\n1\n")

    assert [o.key for o in resources["lake"].list_raw()] == ["incoming/real.csv"]
    result = tick(instance, resources)
    assert set(requested(result)) == {partition_key_for("incoming/real.csv")}


# -- 2. lake writes -----------------------------------------------------------------------------


def sample_frame(n: int, offset: int = 0) -> pl.DataFrame:
    """A frame with every dtype the validated tables use, nulls included."""
    return pl.DataFrame({
        "id": pl.Series([offset + i for i in range(n)], dtype=pl.Int64),
        "name": [f"row {i}" if i % 3 else None for i in range(n)],
        "price": [i * 1.5 for i in range(n)],
        "day": [date(2026, 1, 1 + i % 28) for i in range(n)],
        "at": pl.Series([datetime(2026, 1, 1, i % 24, tzinfo=UTC) for i in range(n)],
                        dtype=pl.Datetime("us", "UTC")),
        "tags": [[f"t{i}", "x"] if i % 2 else [] for i in range(n)],
        "flag": [i % 2 == 0 for i in range(n)],
    })


def test_two_deliveries_landed_in_one_second_keep_their_order(
        lake: Lake, s3: Any, bucket: str, tmp_path: Path) -> None:
    """LastModified has whole seconds: landed in one second, the older delivery and the
    correction tied, and "latest wins" fell back to key names ("old" after "new": the
    older won; session 23). The instant `land` stores in the metadata orders them."""
    source = tmp_path / "p.csv"
    source.write_text("a,b\n1,2\n")
    for attempt in range(5):  # until both land within one second of LastModified
        old, new = f"vendor-b/{attempt}/prices.csv", f"vendor-a/{attempt}/fixed.csv"
        lake.land(source, old)
        lake.land(source, new)
        heads = [s3.head_object(Bucket=bucket, Key=f"lake/raw/{k}") for k in (old, new)]
        if heads[0]["LastModified"] == heads[1]["LastModified"]:
            break
    else:
        pytest.fail("no two lands within one second in five attempts")
    assert [h["Metadata"].get("cryptodudez-landed-at") is not None for h in heads] == [
        True, True]
    first, second = lake.stat_raw(old), lake.stat_raw(new)
    assert first.landed_at < second.landed_at
    assert abs(first.landed_at - heads[0]["LastModified"]).total_seconds() < 60
    # an object put by another tool has no stamp and keeps LastModified
    s3.put_object(Bucket=bucket, Key="lake/raw/other/x.csv", Body=b"a,b\n")
    plain = lake.stat_raw("other/x.csv")
    head = s3.head_object(Bucket=bucket, Key="lake/raw/other/x.csv")
    assert plain.landed_at == head["LastModified"]


def test_write_parquet_round_trip_on_s3(lake: Lake, s3: Any, bucket: str) -> None:
    """A fragment is one complete S3 object; ``fragments()`` sees only ``*.parquet``."""
    first, second = sample_frame(1000), sample_frame(10, offset=5000)
    lake.write_parquet(lake.path("validated", "t", "part-a.parquet"), first)
    lake.write_parquet(lake.path("validated", "t", "part-b.parquet"), second)

    # It is really in the bucket, whole: our own client reads the same frame back.
    body = s3.get_object(Bucket=bucket, Key="lake/validated/t/part-a.parquet")["Body"].read()
    assert_frame_equal(pl.read_parquet(io.BytesIO(body)), first)
    assert_frame_equal(lake.read_parquet([lake.path("validated", "t", "part-a.parquet")]),
                       first)

    # Nothing temporary or partial is left behind.
    assert keys_in(s3, bucket) == ["lake/validated/t/part-a.parquet",
                                   "lake/validated/t/part-b.parquet"]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")

    # Overwriting replaces the object whole.
    lake.write_parquet(lake.path("validated", "t", "part-b.parquet"), second.head(3))
    assert lake.read_parquet([lake.path("validated", "t", "part-b.parquet")]).height == 3
    lake.write_parquet(lake.path("validated", "t", "part-b.parquet"), second)

    # Other writers' debris: hidden temporaries, markers, other suffixes, nested folders.
    for key in ("lake/validated/t/.tmp-123.parquet", "lake/validated/t/_SUCCESS",
                "lake/validated/t/notes.txt", "lake/validated/t/part-c.parquet.part",
                "lake/validated/t/sub/nested.parquet", "lake/validated/t2/other.parquet"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"not parquet")
    assert lake.fragments("validated", "t") == [
        f"{bucket}/lake/validated/t/part-a.parquet", f"{bucket}/lake/validated/t/part-b.parquet"]
    assert_frame_equal(lake.read_table("validated", "t"), pl.concat([first, second]))
    assert lake.fragments("validated", "missing") == []
    assert lake.read_table("validated", "missing").height == 0


def test_lake_sees_other_writers(lake: Lake, s3: Any, bucket: str, tmp_path: Path) -> None:
    """A long-lived lake (sensor, CLI) never answers from a stale listing or stat."""
    frame = sample_frame(5)
    lake.write_parquet(lake.path("validated", "t", "part-a.parquet"), frame)
    assert len(lake.fragments("validated", "t")) == 1
    src = tmp_path / "v1.csv"
    src.write_bytes(b"a\n1\n")
    lake.land(src, "drop/file.csv")
    before = lake.stat_raw("drop/file.csv")
    assert [o.key for o in lake.list_raw()] == ["drop/file.csv"]

    # Another process (a run, a vendor) changes the bucket behind this lake's back.
    s3.put_object(Bucket=bucket, Key="lake/validated/t/part-b.parquet",
                  Body=s3.get_object(Bucket=bucket,
                                     Key="lake/validated/t/part-a.parquet")["Body"].read())
    s3.delete_object(Bucket=bucket, Key="lake/validated/t/part-a.parquet")
    s3.put_object(Bucket=bucket, Key="lake/raw/drop/file.csv", Body=b"a\n1\n2\n3\n")

    assert lake.fragments("validated", "t") == [f"{bucket}/lake/validated/t/part-b.parquet"]
    assert_frame_equal(lake.read_table("validated", "t"), frame)
    after = lake.stat_raw("drop/file.csv")
    assert after.size == 8
    assert after.version != before.version
    assert [o.version for o in lake.list_raw()] == [after.version]
    assert lake.read_raw("drop/file.csv") == b"a\n1\n2\n3\n"


# -- the prediction API -------------------------------------------------------------------------


def test_api_serves_and_swaps_models_from_an_s3_lake(lake: Lake, endpoint: str) -> None:
    """The API reads ``LATEST`` and ``lookup.json`` over S3 (its Dagster-free storage)."""
    first = publish(lake, "v1")
    settings = ServingSettings(lake=lake.uri, endpoint_url=endpoint, region=REGION,
                               poll_seconds=3600)
    query = "/predict?vol_moving_avg=12345&adj_close_rolling_med=25"
    with TestClient(app=create_app(settings)) as client:
        assert client.get("/health").json()["version"] == "v1"
        assert client.get(query).json() == round(first.predict_one(12345.0, 25.0))
        second = publish(lake, "v2", scale=3.0, seed=1)
        assert client.app.state.store.refresh()  # what the poller does
        assert client.get("/health").json()["version"] == "v2"
        assert client.get(query).json() == round(second.predict_one(12345.0, 25.0))


# -- the Glue catalogue on its own ---------------------------------------------------------------


def catalog_records(uri: str, archive_sha: str, members: dict[str, str],
                    at: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What ``record_files`` receives for one version of an archive: ``{member: sha}``."""
    rows = [{"uri": uri, "partition_key": "x.zip", "member": None, "dataset": "archive",
             "table_name": None, "format": "zip", "sha256": archive_sha, "size": 10,
             "landed_at": at, "rows_read": 2 * len(members), "rows_valid": 2 * len(members),
             "rows_quarantined": 0, "status": "ingested", "reason": None, "recorded_at": at}]
    rows += [{**rows[0], "uri": f"zip://{m}::{uri}", "member": m, "dataset": "d",
              "table_name": "t", "format": "csv", "sha256": sha, "rows_read": 2,
              "rows_valid": 2, "status": "validated"} for m, sha in members.items()]
    files = pl.DataFrame(rows, schema=FILES_SCHEMA)
    columns = pl.DataFrame(
        [{"uri": f"zip://{m}::{uri}", "sha256": sha, "position": p, "name": f"c{p}",
          "type": "String"} for m, sha in members.items() for p in range(2)],
        schema=COLUMNS_SCHEMA)
    return files, columns


def test_glue_catalogue_keeps_every_version_like_duckdb(
        resources: dict[str, Any], tmp_path: Path) -> None:
    """Two versions of an archive sharing an unchanged first member: nothing is lost, the
    member keeps its latest record; the DuckDB catalogue behaves the same."""
    glue_store: GlueMetastore = resources["metastore"]
    uri = f"{resources['lake'].url('raw', 'x.zip')}"

    def fragment(sha: str) -> str:  # how the catalogue names a version's fragment
        return hashlib.sha256(f"{uri}|{sha}".encode()).hexdigest()[:16]

    # Make the newer version's fragment sort first: "last fragment wins" would be wrong.
    v2 = next(f"sha-v2-{i}" for i in range(100) if fragment(f"sha-v2-{i}") < fragment("sha-v1"))
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    first = catalog_records(uri, "sha-v1", {"a.csv": "sha-a", "b.csv": "sha-b"}, t1)
    second = catalog_records(uri, v2, {"a.csv": "sha-a"}, t2)
    duck_store = DuckDBMetastore(path=str(tmp_path / "catalog.duckdb"))
    for store in (glue_store, duck_store):
        store.record_files(*first)
        store.record_files(*second)
        files = store.files()
        assert files.height == 4, store  # two archive versions, a (once), b
        archives = files.filter(pl.col("member").is_null()).sort("recorded_at")
        assert archives["sha256"].to_list() == ["sha-v1", v2]
        member_a = files.filter(pl.col("member") == "a.csv")
        assert member_a.height == 1
        assert member_a["recorded_at"].dt.replace_time_zone(None).to_list() == [
            t2.replace(tzinfo=None)], store
        assert store.latest_sha("x.zip") == v2
        columns = store.columns()
        assert sorted(set(zip(columns["uri"], columns["sha256"], strict=True))) == [
            (f"zip://a.csv::{uri}", "sha-a"), (f"zip://b.csv::{uri}", "sha-b")], store
        assert columns.height == 4


def test_two_lakes_on_one_glue_database_do_not_take_each_others_tables(
        endpoint: str, s3: Any, glue: Any, tmp_path: Path) -> None:
    """Each lake's ingest pointed the database's tables at its own data in turn, so Athena
    users of one lake read the other's (QA). The second lake is refused, naming both; the
    first lake's table is left as it was, and it goes on updating its own."""
    database = f"cdz_{uuid.uuid4().hex[:8]}"
    stores = []
    for bucket in (new_bucket(s3), new_bucket(s3)):
        settings = replace(s3_settings(bucket, endpoint, tmp_path / bucket),
                           glue_database=database)
        stores.append(build_resources(settings)["metastore"])
    first, second = stores
    schema = pl.Schema({"id": pl.String})
    first.register_table("events", first.lake.url("validated", "events"), schema,
                         table_format="delta")
    with pytest.raises(ForeignTableError, match=(
            rf"Glue table {database}\.events is at {re.escape(first.lake.url())}/validated/"
            rf"events/, not in this lake \({re.escape(second.lake.url())}/\)")):
        second.register_table("events", second.lake.url("validated", "events"), schema,
                              table_format="delta")
    location = glue.get_table(DatabaseName=database, Name="events")["Table"][
        "StorageDescriptor"]["Location"]
    assert location == first.lake.url("validated", "events") + "/"
    first.register_table("events", first.lake.url("validated", "events"),
                         pl.Schema({"id": pl.String, "n": pl.Int64}), table_format="delta")
    columns = glue.get_table(DatabaseName=database, Name="events")["Table"][
        "StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in columns] == ["id", "n"]


# -- 3. end to end ------------------------------------------------------------------------------


@functools.cache
def reference_counts() -> dict[str, dict[str, Any]]:
    """Rows each table should hold, from the sample archives, with the ``csv`` module only.

    A record is quarantined when its field count differs from the header's; a stock bar also
    when a price or volume is missing, unparsable or negative, or its high is below its low.
    """
    out: dict[str, dict[str, Any]] = {t: {"valid": 0, "quarantined": 0, "bad_raw": set()}
                                      for t in TABLES}
    for sample in SAMPLES:
        with zipfile.ZipFile(sample) as archive:
            for name in archive.namelist():
                base = name.rsplit("/", 1)[-1]
                if base.endswith(".txt"):  # CryptoMood JSON lines (all valid in the sample)
                    lines = [json.loads(line) for line in archive.read(name).splitlines()
                             if line.strip()]
                    table = ("tweet_sentiments" if "sentiment_polarity" in lines[0]
                             else "coin_trades")
                    out[table]["valid"] += len(lines)
                    continue
                if name.startswith("__MACOSX/") or base.startswith(".") or \
                        not base.endswith(".csv"):
                    continue
                text = archive.read(name).decode("utf-8")
                header, *records = list(csv.reader(io.StringIO(text, newline="")))
                table = ("stock_prices" if "Adj Close" in header else
                         "crypto_prices" if "Marketcap" in header else
                         "symbols_meta" if "Security Name" in header else "tweets")
                for record in records:
                    bad = len(record) != len(header)
                    if not bad and table == "stock_prices":
                        values = dict(zip(header, record, strict=True))
                        try:
                            nums = [float(values[c]) for c in
                                    ("Open", "High", "Low", "Close", "Adj Close", "Volume")]
                            bad = min(nums) < 0 or nums[1] < nums[2]
                        except ValueError:
                            bad = True
                    out[table]["quarantined" if bad else "valid"] += 1
                    if bad:
                        out[table]["bad_raw"].add(",".join(record))
    return out


@dataclass
class Ingested:
    """An S3 lake after landing and ingesting the three samples."""

    settings: Settings
    bucket: str
    defs: dg.Definitions
    instance: dg.DagsterInstance
    partitions: list[str]
    results: dict[str, Any] = field(default_factory=dict)

    def fresh_lake(self) -> Lake:
        """A new lake resource (nothing cached from the runs)."""
        return build_resources(self.settings)["lake"]


def step_errors(result: Any) -> list[str]:
    """Error messages of a run's failed steps."""
    return [str(e.event_specific_data.error.message).strip()
            for e in result.all_events if e.is_step_failure]


def execute(defs: dg.Definitions, instance: dg.DagsterInstance, key: str) -> Any:
    """Run the ingest job for one landed file in process, as the sensor's run would."""
    return defs.resolve_job_def(INGEST_JOB).execute_in_process(
        partition_key=key, instance=instance, raise_on_error=False, run_config=QUIET)


def run_partition(defs: dg.Definitions, instance: dg.DagsterInstance, key: str) -> Any:
    """Ingest one landed file in process; fail with the step's error if it fails."""
    result = execute(defs, instance, key)
    if not result.success:
        pytest.fail(f"ingest of {key} failed: {step_errors(result)}")
    return result


def raw_files_metadata(result: Any) -> dict[str, Any]:
    """Metadata of the ``raw_files`` materialisation of one run."""
    [mat] = [m for m in result.asset_materializations_for_node("lake_ingest")
             if m.asset_key == dg.AssetKey("raw_files")]
    return {k: v.value for k, v in mat.metadata.items()}


@pytest.fixture(scope="module")
def ingested(endpoint: str, s3: Any,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    """Land the samples into a (versioned) S3 lake and ingest every partition via the job."""
    bucket = new_bucket(s3, versioned=True)
    settings = s3_settings(bucket, endpoint, tmp_path_factory.mktemp("dagster"))
    defs = build_definitions(settings)
    lake = build_resources(settings)["lake"]
    for sample in SAMPLES:
        lake.land(sample, f"samples/{sample.name}")
    instance = memory_instance()
    partitions = sorted(partition_key_for(o.key) for o in lake.list_raw())
    instance.add_dynamic_partitions("landed_files", partitions)
    state = Ingested(settings, bucket, defs, instance, partitions)
    for key in partitions:
        state.results[key] = run_partition(defs, instance, key)
    yield state
    instance.dispose()


def test_e2e_runs_and_checks(ingested: Ingested) -> None:
    """Every sample is ingested; the checks that read the tables back from S3 pass."""
    assert ingested.partitions == sorted(partition_key_for(f"samples/{s.name}")
                                         for s in SAMPLES)
    for key, result in ingested.results.items():
        meta = raw_files_metadata(result)
        assert meta["unchanged"] is False
        assert meta["uri"] == f"{ingested.settings.lake}/raw/{key}"
        evaluations = {ev.check_name: ev for ev in result.get_asset_check_evaluations()}
        for name in (f"{table}_{check}" for table in TABLES
                     for check in ("rows_accounted", "keys_unique", "schema_conforms")):
            assert name in evaluations, (key, name)
            assert evaluations[name].passed, (key, name, evaluations[name].metadata)


class CountingFs:
    """The lake's real S3 filesystem, counting each listing and existence check by path."""

    LOOKUPS = ("glob", "find", "ls", "exists", "isdir", "isfile")

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self.calls: Counter[tuple[str, str]] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.fs, name)
        if name not in self.LOOKUPS:
            return attr

        def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls[(name, str(path))] += 1
            return attr(path, *args, **kwargs)
        return counted


def test_the_checks_list_each_table_folder_once(ingested: Ingested) -> None:
    """An ingest's materialisations list each table's folder once per layer, no more.

    On S3 every listing is a request (about 20 ms on moto here, more on AWS); the checks
    used to list a table's folder up to seven times, each a glob (four or five requests)
    after an existence check.
    """
    lake = ingested.fresh_lake()
    counting = CountingFs(lake.fs)
    lake.storage.__dict__["fs"] = counting  # the cached property's slot: same fs, counted
    metastore = build_resources(ingested.settings)["metastore"]
    key = ingested.partitions[0]
    results = lake_assets._results(lake, metastore, key, file_uri="-", sha="-",
                                   obj=lake.stat_raw(raw_key_for(key)), unchanged=True)

    # The same verdicts as the partition's run gave (so the checks still read the tables).
    verdicts = {c.check_name: c.passed for r in results for c in r.check_results or []}
    ran = {e.check_name: e.passed for e in ingested.results[key].get_asset_check_evaluations()}
    assert len(verdicts) > len(TABLES) and verdicts == ran
    listed = {path: n for (name, path), n in counting.calls.items() if name == "ls"}
    folders = {f"{ingested.bucket}/lake/{layer}/{table}" for layer in ("validated", "quarantine")
               for table in TABLES}
    assert set(listed) == folders, listed
    assert all(n == 1 for n in listed.values()), listed
    assert [c for c in counting.calls if c[0] != "ls"] == [], counting.calls


def test_a_partition_lists_its_staging_once(ingested: Ingested) -> None:
    """A landed file's run lists staging once, after it has published (one request on S3):
    publishing moves the fragments its writer wrote, never listing a table's staging folder
    (fourteen of them, listed three times each, before); another run's staging is never
    published."""
    lake = build_resources(replace(ingested.settings,
                                   lake=f"s3://{ingested.bucket}/staging-lake"))["lake"]
    sample = next(s for s in SAMPLES if s.name.startswith("cryptocurrency"))
    lake.land(sample, f"samples/{sample.name}")
    key = partition_key_for(f"samples/{sample.name}")
    root = lake.partition_staging(key)
    # Staged by another run of the same file: never published, and kept while that run may
    # still be going (the assets ask Dagster; a bare writer assumes so).
    leftover = f"{lake.staging_dir('validated', 'crypto_prices', key, 'other-run')}/x.parquet"
    lake.write_parquet(leftover, pl.DataFrame({"x": [1]}))
    counting = CountingFs(lake.fs)
    lake.storage.__dict__["fs"] = counting  # the cached property's slot: same fs, counted
    with lake.open_raw(raw_key_for(key)) as fh, lake.background_writer() as background:
        writer = PartitionWriter(lake, background, key, datetime.now(UTC))
        for batch in iter_unpacked(lake.url("raw", raw_key_for(key)), fh, DATASETS):
            writer.add(ingest_members(batch, DATASETS))
        with lake.publish_lock():
            published = writer.publish()
    staging = {c: n for c, n in counting.calls.items() if "/.staging/" in c[1] + "/"}
    assert staging == {("find", posixpath.dirname(root)): 1}, staging
    assert lake.staged_runs(key) == {"other-run": [leftover]}  # this run's own is gone
    prices = published.validated["crypto_prices"]
    assert prices.rows > 0 and all("/.staging/" not in p for p in prices.fragments)
    assert lake.read_table("validated", "crypto_prices").height == prices.rows
    lake.clear_staging(key, lake.staged_runs(key))
    assert lake.staged_runs(key) == {}


def test_prices_published_before_the_symbol_directory_get_its_names_on_s3(
        lake: Lake, tmp_path: Path) -> None:
    """The directory's publish names the stock rows already in the S3 lake (read back and
    rewritten through s3fs), and naming again rewrites nothing."""
    bars = "Date,Open,High,Low,Close,Adj Close,Volume\n2020-01-02,1,2,1,1,1,5\n"
    meta = ("Nasdaq Traded,Symbol,Security Name,Listing Exchange,Market Category,ETF,"
            "Round Lot Size,Test Issue,Financial Status,CQS Symbol,NASDAQ Symbol,NextShares\n"
            "Y,AAA,Alpha Inc,Q,Q,N,100,N,N,AAA,AAA,N\n")
    for key, text in (("market/stocks/AAA.csv", bars), ("market/symbols_valid_meta.csv", meta)):
        source = tmp_path / key.replace("/", "_")
        source.write_text(text)
        lake.land(source, key)
        with lake.open_raw(key) as fh, lake.background_writer() as background:
            writer = PartitionWriter(lake, background, partition_key_for(key), datetime.now(UTC))
            for batch in iter_unpacked(lake.url("raw", key), fh, DATASETS):
                writer.add(ingest_members(batch, DATASETS))
            with lake.publish_lock():
                published = writer.publish()
    assert published.named.rows() == [(partition_key_for("market/stocks/AAA.csv"), 1)]
    assert lake.read_table("validated", "stock_prices")["Security Name"].to_list() == [
        "Alpha Inc"]
    fragments = lake.fragments("validated", "stock_prices")
    assert refresh_security_names(lake, fragments, symbol_directory(lake)).height == 0


def test_e2e_validated_tables_on_s3(ingested: Ingested, s3: Any) -> None:
    """Validated tables read back from S3 hold exactly the rows the sample data predicts."""
    lake = ingested.fresh_lake()
    expected = reference_counts()
    raw_uris = {f"{ingested.settings.lake}/raw/samples/{s.name}" for s in SAMPLES}
    for table in TABLES:
        frame = lake.read_table("validated", table)
        assert frame.height == expected[table]["valid"], table
        assert frame["_source"].str.extract(r"::(s3://.*)$", 1).is_in(raw_uris).all(), table
        keys = keys_in(s3, ingested.bucket, f"lake/validated/{table}/")
        assert keys and all(k.endswith(".parquet") for k in keys), keys
    stocks = lake.read_table("validated", "stock_prices")
    assert stocks.filter(pl.col("Security Name").is_not_null()).height > 0
    assert stocks.select("Symbol", "Date").is_unique().all()
    tweets = lake.read_table("validated", "tweets")
    assert tweets["tweet_id"].is_unique().all()
    assert tweets.schema["created_at"] == pl.Datetime("us", "UTC")


def test_e2e_quarantine_on_s3(ingested: Ingested) -> None:
    """Rejected rows are kept on S3 with their source, line, raw text and reason."""
    lake = ingested.fresh_lake()
    expected = reference_counts()
    for table in TABLES:
        bad = lake.read_table("quarantine", table)
        assert bad.height == expected[table]["quarantined"], table
        if not bad.height:
            continue
        assert {"source", "line", "raw", "reason"} <= set(bad.columns)
        assert bad["source"].str.contains(rf"::{ingested.settings.lake}/raw/samples/").all()
        assert (bad["line"] > 1).all()
        assert bad["raw"].is_not_null().all()
        assert (bad["reason"].str.len_chars() > 0).all()
        if table in ("stock_prices", "crypto_prices"):
            assert set(bad["raw"]) == expected[table]["bad_raw"], table
    assert set(lake.read_table("quarantine", "tweets")["reason"].str.extract(r"^([^:]*)")) == {
        "wrong field count"}


# Independent of the platform's own type mapping: Hive/Athena names of the Parquet types.
HIVE = {pl.String: "string", pl.Int64: "bigint", pl.Int32: "int", pl.Float64: "double",
        pl.Boolean: "boolean", pl.Date: "date"}


def hive_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    if isinstance(dtype, pl.List):
        return f"array<{hive_type(dtype.inner)}>"
    return HIVE[dtype.base_type()]


def test_e2e_glue_catalog(ingested: Ingested, glue: Any) -> None:
    """One Glue table per dataset and per catalogue record type, over its S3 folder."""
    lake = ingested.fresh_lake()
    db = ingested.settings.glue_database
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName=db)["TableList"]}
    assert set(tables) == {*TABLES, "files", "columns"}
    folders = {t: f"validated/{t}" for t in TABLES} | {
        "files": "catalog/files", "columns": "catalog/columns"}
    for name, table in tables.items():
        sd = table["StorageDescriptor"]
        assert sd["Location"] == f"{ingested.settings.lake}/{folders[name]}/", name
        assert table["TableType"] == "EXTERNAL_TABLE"
        assert "parquet" in sd["SerdeInfo"]["SerializationLibrary"].lower()
        on_s3 = lake.read_table(*folders[name].split("/"))
        assert on_s3.height > 0, name
        assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [
            (re.sub(r"[^a-z0-9_]", "_", n.lower()), hive_type(t))
            for n, t in on_s3.schema.items()], name
        assert sd["SerdeInfo"]["Parameters"]["parquet.column.index.access"] == "true"
        assert [c["Comment"] for c in sd["Columns"]] == list(on_s3.schema), name
    columns = {c["Name"]: c["Type"] for c in tables["stock_prices"]["StorageDescriptor"]["Columns"]}
    assert columns["volume"] == "bigint"
    assert columns["open"] == "double"
    assert columns["date"] == "string"
    columns = {c["Name"]: c["Type"] for c in tables["tweets"]["StorageDescriptor"]["Columns"]}
    assert columns["created_at"] == "timestamp"
    assert columns["mentions"] == "array<string>"
    assert [c["Name"] for c in tables["files"]["StorageDescriptor"]["Columns"]] == list(
        FILES_SCHEMA)
    assert [c["Name"] for c in tables["columns"]["StorageDescriptor"]["Columns"]] == list(
        COLUMNS_SCHEMA)


def test_e2e_metastore_files(ingested: Ingested) -> None:
    """Every recorded file and member balances: read = valid + quarantined."""
    metastore = build_resources(ingested.settings)["metastore"]
    assert isinstance(metastore, GlueMetastore)
    files = metastore.files()
    assert files.height > len(SAMPLES)
    assert files.schema == pl.Schema(FILES_SCHEMA)
    unbalanced = files.filter(
        pl.col("rows_read") != pl.col("rows_valid") + pl.col("rows_quarantined"))
    assert unbalanced.height == 0, unbalanced
    archives = files.filter(pl.col("member").is_null()).sort("uri")
    assert archives["uri"].to_list() == [
        f"{ingested.settings.lake}/raw/samples/{s.name}" for s in SAMPLES]
    assert archives["sha256"].to_list() == [
        hashlib.sha256(s.read_bytes()).hexdigest() for s in SAMPLES]
    assert archives["size"].to_list() == [s.stat().st_size for s in SAMPLES]
    expected = reference_counts()
    members = files.filter(pl.col("table_name").is_not_null(), pl.col("member").is_not_null())
    by_table = {t: (v, q) for t, v, q in members.group_by("table_name").agg(
        pl.col("rows_valid").sum(), pl.col("rows_quarantined").sum()).iter_rows()}
    assert by_table == {t: (expected[t]["valid"], expected[t]["quarantined"]) for t in TABLES}
    for key in ingested.partitions:
        sha = archives.filter(pl.col("partition_key") == key)["sha256"].item()
        assert metastore.latest_sha(key) == sha


def small_crypto_zip(path: Path, coins: list[str], rows: int = 30) -> Path:
    """A small archive of the crypto sample: the first ``rows`` days of some coins."""
    source = next(s for s in SAMPLES if s.name.startswith("crypto"))
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            if "__MACOSX" in name or not any(c in name for c in coins):
                continue
            lines = src.read(name).decode("utf-8").splitlines(keepends=True)[:rows + 1]
            dst.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), "".join(lines))
    return path


def test_redelivery_on_s3_is_a_new_version(endpoint: str, s3: Any, tmp_path: Path,
                                          instance: dg.DagsterInstance) -> None:
    """A changed file under the same key replaces its rows; S3 versioning keeps the old one."""
    bucket = new_bucket(s3, versioned=True)
    settings = s3_settings(bucket, endpoint, tmp_path / "dagster")
    defs = build_definitions(settings)
    lake: Lake = defs.resources["lake"]
    v1 = small_crypto_zip(tmp_path / "v1.zip", ["Bitcoin", "Cardano"])
    v2 = small_crypto_zip(tmp_path / "v2.zip", ["Bitcoin"])
    key = partition_key_for("vendor/crypto.zip")
    instance.add_dynamic_partitions("landed_files", [key])

    lake.land(v1, "vendor/crypto.zip")
    first = run_partition(defs, instance, key)
    crypto = lake.read_table("validated", "crypto_prices")
    assert sorted(crypto["Symbol"].unique()) == ["ADA", "BTC"]
    assert crypto.height == 60

    lake.land(v2, "vendor/crypto.zip")
    second = run_partition(defs, instance, key)
    head = s3.head_object(Bucket=bucket, Key="lake/raw/vendor/crypto.zip")
    meta = raw_files_metadata(second)
    assert meta["unchanged"] is False
    assert meta["version"] == head["ETag"].strip('"') != raw_files_metadata(first)["version"]
    assert meta["sha256"] == hashlib.sha256(v2.read_bytes()).hexdigest()
    crypto = build_resources(settings)["lake"].read_table("validated", "crypto_prices")
    assert sorted(crypto["Symbol"].unique()) == ["BTC"]
    assert crypto.height == 30

    metastore = build_resources(settings)["metastore"]
    files = metastore.files()
    versions = files.filter(pl.col("member").is_null()).sort("recorded_at")
    assert versions["sha256"].to_list() == [hashlib.sha256(p.read_bytes()).hexdigest()
                                            for p in (v1, v2)]
    # the instant `land` stored (LastModified has whole seconds), within a minute of it
    stamped = datetime.fromisoformat(head["Metadata"]["cryptodudez-landed-at"])
    assert versions["landed_at"][1] == stamped
    assert abs((stamped - head["LastModified"]).total_seconds()) < 60
    assert metastore.latest_sha(key) == versions["sha256"][1]
    bitcoin = files.filter(pl.col("member").str.contains("Bitcoin"))
    assert bitcoin.height == 1  # unchanged member: one record, the latest
    assert bitcoin["recorded_at"][0] == versions["recorded_at"][1]
    assert metastore.columns().filter(pl.col("uri").str.contains("Cardano")).height > 0

    # No copy under raw/.versions on S3: the bucket's versioning keeps the earlier delivery.
    assert keys_in(s3, bucket, "lake/raw/") == ["lake/raw/vendor/crypto.zip"]
    history = s3.list_object_versions(Bucket=bucket, Prefix="lake/raw/vendor/crypto.zip")
    assert len(history["Versions"]) == 2
    [old] = [v for v in history["Versions"] if not v["IsLatest"]]
    body = s3.get_object(Bucket=bucket, Key="lake/raw/vendor/crypto.zip",
                         VersionId=old["VersionId"])["Body"].read()
    assert body == v1.read_bytes()


def bucket_versions(s3: Any, bucket: str) -> list[tuple[str, str]]:
    """Every object version and delete marker: any PUT or DELETE changes this list."""
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        out += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
        out += [(d["Key"], "delete:" + d["VersionId"]) for d in page.get("DeleteMarkers", [])]
    return sorted(out)


def glue_state(glue: Any, db: str) -> dict[str, Any]:
    """Each Glue table's definition and how many versions it has."""
    out = {}
    for table in glue.get_tables(DatabaseName=db)["TableList"]:
        versions = glue.get_table_versions(DatabaseName=db, TableName=table["Name"])
        out[table["Name"]] = (json.dumps(table["StorageDescriptor"], sort_keys=True, default=str),
                              len(versions["TableVersions"]))
    return out


def test_e2e_rerun_is_a_no_op(ingested: Ingested, s3: Any, glue: Any) -> None:
    """Re-running an ingested partition writes nothing to S3 or Glue and changes no table."""
    lake = ingested.fresh_lake()
    db = ingested.settings.glue_database
    versions, catalog = bucket_versions(s3, ingested.bucket), glue_state(glue, db)
    tables = {(layer, t): lake.read_table(layer, t) for layer in ("validated", "quarantine")
              for t in TABLES}
    files = build_resources(ingested.settings)["metastore"].files()

    reruns = {key: execute(ingested.defs, ingested.instance, key)
              for key in ingested.partitions}
    for key, result in reruns.items():
        assert raw_files_metadata(result)["unchanged"] is True, key

    assert bucket_versions(s3, ingested.bucket) == versions
    assert glue_state(glue, db) == catalog
    lake = ingested.fresh_lake()
    for (layer, table), frame in tables.items():
        assert_frame_equal(lake.read_table(layer, table), frame)
    assert_frame_equal(build_resources(ingested.settings)["metastore"].files(), files)
    failed = {key: step_errors(r) for key, r in reruns.items() if not r.success}
    assert not failed, f"the no-op re-runs themselves failed: {failed}"


@pytest.mark.parametrize("args", [["summary"], ["ingest"], ["land", "SAMPLE"],
                                  ["kpi", "--date", "2026-11-01"]])
def test_a_missing_bucket_is_a_bad_setting_for_every_command(
        args: list[str], endpoint: str, s3: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """One line naming the bucket and exit 2 (a setting), before anything is read or landed.

    ``summary`` and ``ingest`` said the events' Delta log could not be read (exit 1) and
    ``land`` that a file could not be landed (exit 2): three messages for one typo.
    """
    args = [str(SAMPLES[0]) if a == "SAMPLE" else a for a in args]
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    missing = f"no-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", f"s3://{missing}/lake")
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err == (f"cryptodudez: error: CRYPTODUDEZ_LAKE=s3://{missing}/lake: no bucket "
                   f"'{missing}' at {endpoint}\n")
    assert missing not in [b["Name"] for b in s3.list_buckets()["Buckets"]]  # none made

    bucket = new_bucket(s3)  # a bucket that exists is no setting error
    assert not LakeStorage(f"s3://{bucket}/lake", endpoint, REGION).missing_bucket()
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", f"s3://{bucket}/lake")
    # (land alone: the commands that open the events' Delta table would wait on this
    # in-process server, as deltalake holds the GIL while it waits for an answer)
    assert cli.main(["land", str(SAMPLES[0])]) == 0
    assert keys_in(s3, bucket) == [f"lake/raw/{SAMPLES[0].name}"]


@pytest.mark.parametrize("args", [["summary"], ["kpi", "--date", "2026-11-01"],
                                  ["backfill-events", "--from", "2026-11-01", "--to",
                                   "2026-11-01"]])
def test_a_prefix_that_holds_no_lake_is_refused_by_the_reading_commands(
        args: list[str], endpoint: str, s3: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A typo'd prefix read as an empty lake (exit 0, a KPI file of zeros), and a lake's
    raw/ taken for the lake had backfill-events write its KPIs into raw/, where the next
    ingest quarantined them as a delivery (QA). As for a local folder that is not there."""
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="lake/raw/a.csv", Body=b"x\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    for lake, problem in ((f"s3://{bucket}/typo", "nothing under it"),
                          (f"s3://{bucket}/lake/raw",
                           "none of its entries is a lake's: raw/, validated/, "
                           "catalog.duckdb, ...")):
        monkeypatch.setenv("CRYPTODUDEZ_LAKE", lake)
        assert cli.main(args) == 2
        assert capsys.readouterr().err == (
            f"cryptodudez: error: CRYPTODUDEZ_LAKE={lake}: no lake there ({problem})\n")
    assert keys_in(s3, bucket) == ["lake/raw/a.csv"]  # nothing written
    assert not (tmp_path / "dh").exists()  # no run was started
