"""The ``spark-job`` engine's production path: a Dagster run starts EMR Serverless over HTTP.

A moto server on 127.0.0.1 plays S3, EMR Serverless and CloudWatch Logs; no client is
patched (only Dagster Pipes' waits for logs are shortened, ``short_log_waits``). What this
proves: the run uploads the job's entry point to the lake's ``code/``, and sends EMR
Serverless a ``StartJobRun`` the service accepts, with the application, the role, the entry
point, the lake's S3 paths, the project's ``--conf``, Dagster Pipes' variables and the
drivers' log group. What it cannot prove: moto runs no job (it marks a job
run SUCCESS at once), so no Spark ran and no Pipes message came back. The engine must then
publish nothing and say why, which is the last thing checked.
"""

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
from botocore.config import Config
from dagster._core.pipes import utils as pipes_utils
from moto.server import ThreadedMotoServer

from cryptodudez.archives import unpack
from cryptodudez.assets import stocks
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.ingest import ingest_members
from cryptodudez.resources import build_resources
from cryptodudez.resources.lake import VALIDATED, Lake
from cryptodudez.resources.spark_jobs import EmrServerlessJobs, SparkJob
from cryptodudez.settings import PROJECT_DIR, Settings
from cryptodudez.spark import stock_features_job
from tests.helpers import offline_aws

pytestmark = pytest.mark.xdist_group("emr")
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/cdz-spark-execution"
VENV = ("--conf spark.archives=s3://cdz/code/venv.tar.gz#environment "
        "--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python")
LOG_GROUP = "/aws/emr-serverless/cdz-test"
FAST = Config(connect_timeout=2, read_timeout=20, retries={"max_attempts": 2})


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server on a free loopback port, with dummy credentials for this module."""
    empty = tmp_path_factory.mktemp("aws")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with offline_aws(empty, REGION):
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
        server.stop()


def client(service: str, endpoint: str) -> Any:
    """The test's own client of one service (independent of the platform's)."""
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, config=FAST)


@pytest.fixture
def production(endpoint: str, tmp_path: Path) -> tuple[Settings, str]:
    """Production settings over a fresh bucket holding the sample's validated bars, and the
    id of a fresh EMR Serverless Spark application."""
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    client("s3", endpoint).create_bucket(Bucket=bucket)
    application = client("emr-serverless", endpoint).create_application(
        name="cdz-spark", releaseLabel="emr-7.5.0", type="SPARK")["applicationId"]
    env = {"CRYPTODUDEZ_LAKE": f"s3://{bucket}/lake", "AWS_ENDPOINT_URL": endpoint,
           "AWS_REGION": REGION, "DAGSTER_HOME": str(tmp_path / "dh"),
           "CRYPTODUDEZ_ENGINE": "stock_features=spark-job",
           "CRYPTODUDEZ_EMR_APPLICATION_ID": application,
           "CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN": ROLE,
           "CRYPTODUDEZ_EMR_SPARK_SUBMIT_PARAMETERS": VENV,
           "CRYPTODUDEZ_EMR_LOG_GROUP": LOG_GROUP}
    settings = Settings.from_env(env)
    sample = PROJECT_DIR / "samples" / "stock_market_sample.zip"
    bars = ingest_members(unpack(sample.as_uri(), sample.read_bytes()),
                          DATASETS).tables["stock_prices"]
    lake = Lake(uri=settings.lake, endpoint_url=endpoint, region_name=REGION)
    lake.write_parquet(lake.path(VALIDATED, "stock_prices", "part-sample.parquet"), bars)
    return settings, application


@pytest.fixture
def short_log_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster Pipes waits 10 s, then 60 s, for a finished job's logs to appear in CloudWatch;
    moto's job never writes any, so the test waits 1 s each (bounds time; patches no client)."""
    monkeypatch.setattr(pipes_utils, "WAIT_FOR_LOGS_AFTER_EXECUTION_INTERVAL", 1)
    monkeypatch.setattr(pipes_utils, "WAIT_FOR_LOGS_TIMEOUT", 1)


def test_the_settings_choose_emr_serverless(production: tuple[Settings, str]) -> None:
    settings, application = production
    jobs = build_resources(settings)["spark_jobs"]
    assert isinstance(jobs, EmrServerlessJobs)
    assert (jobs.application_id, jobs.execution_role_arn) == (application, ROLE)
    assert jobs.lake.uri == settings.lake  # entry points go to its code/
    assert jobs.spark_submit_parameters == VENV
    assert jobs.log_group == LOG_GROUP


def test_a_run_starts_the_job_on_emr_serverless_and_publishes_nothing_without_its_report(
        production: tuple[Settings, str], endpoint: str, short_log_waits: None) -> None:
    settings, application = production
    resources = build_resources(settings)
    lake: Lake = resources["lake"]
    year = "2023"
    result = dg.materialize([stocks.stock_features], partition_key=year, resources=resources,
                            raise_on_error=False)

    # The run failed, saying why, and published nothing; its scratch folder is gone.
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert failure is not None
    text = failure.message + "".join(c.message for c in (failure.cause, failure.context)
                                     if c is not None)
    assert "ended without reporting its result through Dagster Pipes" in text
    assert f"EMR Serverless application {application}" in text
    assert LOG_GROUP in text
    assert not lake.exists(stocks.feature_path(lake, year))
    assert not lake.fs.exists(lake.path("features", "stock_features", ".jobs"))

    # EMR Serverless received one job run, exactly as the engine asked for it.
    emr = client("emr-serverless", endpoint)
    runs = emr.list_job_runs(applicationId=application)["jobRuns"]
    assert len(runs) == 1
    job = emr.get_job_run(applicationId=application, jobRunId=runs[0]["id"])["jobRun"]
    assert job["executionRole"] == ROLE
    assert job["tags"]["dagster/run-id"] == result.run_id
    assert job["name"] == f"stock-features-{result.run_id[:8]}"
    driver = job["jobDriver"]["sparkSubmit"]
    bucket = settings.lake.removeprefix("s3://").split("/")[0]
    assert driver["entryPointArguments"] == [
        "--input", f"s3://{bucket}/lake/validated/stock_prices",
        "--output", f"s3://{bucket}/lake/features/stock_features/.jobs/{result.run_id}",
        "--start", f"{year}-01-01", "--end", f"{int(year) + 1}-01-01"]
    assert driver["sparkSubmitParameters"].startswith(VENV)
    for variable in ("DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"):
        assert f"--conf spark.emr-serverless.driverEnv.{variable}=" in driver[
            "sparkSubmitParameters"]
    logging_conf = job["configurationOverrides"]["monitoringConfiguration"][
        "cloudWatchLoggingConfiguration"]
    assert logging_conf == {"enabled": True, "logGroupName": LOG_GROUP}

    # The entry point it names is the job module's file, uploaded under its digest.
    entry = driver["entryPoint"]
    assert entry.startswith(f"s3://{bucket}/lake/code/") and entry.endswith(
        "/stock_features_job.py")
    key = entry.removeprefix(f"s3://{bucket}/")
    uploaded = client("s3", endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
    assert uploaded == Path(stock_features_job.__file__).read_bytes()


def test_the_entry_point_is_named_by_its_content(production: tuple[Settings, str],
                                                      endpoint: str) -> None:
    settings, _ = production
    jobs = build_resources(settings)["spark_jobs"]
    first = jobs.upload("cryptodudez.spark.stock_features_job")
    assert jobs.upload("cryptodudez.spark.stock_features_job") == first  # same content, key
    other = jobs.upload("cryptodudez.spark.session")
    assert other != first and other.endswith("/session.py")
    bucket, _, prefix = settings.lake.removeprefix("s3://").partition("/")
    listed = client("s3", endpoint).list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/code/")
    assert sorted(f"s3://{bucket}/{o['Key']}" for o in listed["Contents"]) == sorted(
        [first, other])


def test_emr_settings_come_in_pairs_over_an_s3_lake() -> None:
    base = {"CRYPTODUDEZ_LAKE": "s3://b/lake"}
    with pytest.raises(ValueError, match="CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN is not"):
        Settings.from_env({**base, "CRYPTODUDEZ_EMR_APPLICATION_ID": "00abc"})
    with pytest.raises(ValueError, match="CRYPTODUDEZ_EMR_APPLICATION_ID is not"):
        Settings.from_env({**base, "CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN": ROLE})
    with pytest.raises(ValueError, match="not an IAM role ARN"):
        Settings.from_env({**base, "CRYPTODUDEZ_EMR_APPLICATION_ID": "00abc",
                           "CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN": "cdz-spark"})
    with pytest.raises(ValueError, match="no S3 lake"):
        Settings.from_env({"CRYPTODUDEZ_LAKE": "/tmp/lake",
                           "CRYPTODUDEZ_EMR_APPLICATION_ID": "00abc",
                           "CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN": ROLE})
    both = Settings.from_env({**base, "CRYPTODUDEZ_EMR_APPLICATION_ID": "00abc",
                              "CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN": ROLE})
    assert (both.emr_application_id, both.emr_execution_role_arn) == ("00abc", ROLE)


def test_without_a_log_group_the_application_decides(production: tuple[Settings, str]) -> None:
    """A job-level logging setting would replace the application's: none is sent."""
    settings, application = production
    jobs = EmrServerlessJobs(application_id=application, execution_role_arn=ROLE,
                             lake=Lake(uri=settings.lake))
    job = SparkJob(name="stock-features", module="cryptodudez.spark.stock_features_job",
                   arguments=["--start", "2023-01-01"])
    params = jobs.start_params("0123456789abcdef", 1, job, "s3://b/code/x.py")
    assert "configurationOverrides" not in params
    assert params["jobDriver"]["sparkSubmit"]["entryPointArguments"] == ["--start",
                                                                         "2023-01-01"]
    assert params["clientToken"] == "0123456789abcdef-stock-features-1"  # per attempt
