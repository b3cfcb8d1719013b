"""A production-shaped Dagster instance on Postgres (dagster-postgres): a private cluster,
the ingest job and the landing sensor against it, runs and events stored in Postgres."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import psycopg2
import pytest

from cryptodudez import cli
from cryptodudez.definitions import build_definitions
from cryptodudez.instance import PG_BIN, private_postgres, write_instance_yaml
from cryptodudez.jobs import INGEST_JOB
from cryptodudez.resources import build_resources
from cryptodudez.sensors.landing import landing_sensor
from cryptodudez.settings import PROJECT_DIR, Settings
from tests.helpers import QUIET

SAMPLE = PROJECT_DIR / "samples" / "stock_market_sample.zip"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (apt-get install postgresql)")
    pytest.importorskip("dagster_postgres")
    with private_postgres() as url:
        yield url


@pytest.fixture
def pg_instance(pg_url: str, tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster"
    write_instance_yaml(home, pg_url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_the_instance_config_is_postgres(pg_instance: dg.DagsterInstance) -> None:
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage  # noqa: PLC0415

    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)


def test_landing_sensor_and_ingest_job_on_postgres(pg_url: str, pg_instance: dg.DagsterInstance,
                                                   tmp_path: Path) -> None:
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dagster"))
    defs = build_definitions(settings)
    resources = build_resources(settings)
    lake, metastore = resources["lake"], resources["metastore"]

    def tick() -> dg.SensorResult:
        with dg.build_sensor_context(instance=pg_instance,
                                     resources={"lake": lake, "metastore": metastore}) as ctx:
            result = landing_sensor(ctx)
        assert isinstance(result, dg.SensorResult)
        for request in result.dynamic_partitions_requests or []:  # the daemon applies these
            pg_instance.add_dynamic_partitions(request.partitions_def_name,
                                               list(request.partition_keys))
        return result

    assert tick().skip_reason  # an empty lake
    lake.land(SAMPLE, "stocks/stock_market_sample.zip")
    first = tick()
    requests = list(first.run_requests or [])
    assert [r.partition_key for r in requests] == ["stocks/stock_market_sample.zip"]
    assert pg_instance.get_dynamic_partitions("landed_files") == [requests[0].partition_key]

    # What the daemon would launch for the request, in process, recorded in Postgres.
    result = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        partition_key=requests[0].partition_key, instance=pg_instance, run_config=QUIET,
        tags=dict(requests[0].tags), raise_on_error=False)
    assert result.success
    assert not tick().run_requests  # ingested: nothing new

    runs = _rows(pg_url, "SELECT run_id, status FROM runs")
    assert (result.run_id, "SUCCESS") in runs
    materialized = _rows(pg_url, "SELECT count(*) FROM event_logs WHERE run_id = "
                         f"'{result.run_id}' AND dagster_event_type = 'ASSET_MATERIALIZATION'")
    assert materialized[0][0] >= 1
    partitions = _rows(pg_url, "SELECT partition FROM dynamic_partitions "
                       "WHERE partitions_def_name = 'landed_files'")
    assert partitions == [("stocks/stock_market_sample.zip",)]


def test_the_instance_from_dagster_pg_variables_keeps_the_password_out_of_files(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the ECS services get: the database by parts, the password from Secrets Manager."""
    from dagster_postgres import PostgresRunStorage  # noqa: PLC0415

    parts = urlsplit(pg_url)
    secret = "only-in-the-environment"  # the private cluster trusts loopback: any password
    env = {"DAGSTER_PG_HOST": str(parts.hostname), "DAGSTER_PG_PORT": str(parts.port),
           "DAGSTER_PG_DB": parts.path.lstrip("/"), "DAGSTER_PG_USERNAME": str(parts.username),
           "DAGSTER_PG_PASSWORD": secret, "DAGSTER_HOME": str(tmp_path / "dagster"),
           "CRYPTODUDEZ_LAKE": str(tmp_path / "lake")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = cli.ensure_dagster_home(Settings.from_env())
    text = (home / "dagster.yaml").read_text()
    assert secret not in text
    assert "DAGSTER_PG_PASSWORD" in text
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        run = instance.create_run_for_job(dg.GraphDefinition("probe").to_job())
        assert instance.get_run_by_id(run.run_id) is not None
    assert _rows(pg_url, f"select count(*) from runs where run_id = '{run.run_id}'") == [(1,)]
