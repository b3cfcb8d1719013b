"""Where a Spark twin runs as a job of its own, through Dagster Pipes.

The ``spark-job`` engine (``CRYPTODUDEZ_ENGINE=stock_features=spark-job``) does not compute in
the run's process: it starts a job entry point (``cryptodudez/spark/*_job.py``) and waits for
it. The job reads the lake and writes its result under the lake; through Dagster Pipes it
logs to the run and reports what it wrote, which the engine checks against the files before
anything is published.

- :class:`EmrServerlessJobs` (production): uploads the entry point to the lake's ``code/``
  (named by its digest), starts it on an EMR Serverless application with
  ``dagster-aws``'s :class:`~dagster_aws.pipes.PipesEMRServerlessClient`, and reads the job's
  Pipes messages from its driver's stdout in CloudWatch Logs.
- :class:`LocalSparkJobs` (offline): the same entry point and the same Pipes protocol, in a
  child process on a ``local[n]`` session (:class:`dagster.PipesSubprocessClient`). It reads
  a local lake only: this machine's Spark has no S3 connector.
"""

import hashlib
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

from cryptodudez.resources.lake import Lake
from cryptodudez.spark import RESULT_KEY

if TYPE_CHECKING:
    from dagster._core.pipes.client import PipesClientCompletedInvocation



@dataclass(frozen=True)
class SparkJob:
    """One run of a job entry point: ``python -m <module> <arguments>``."""

    name: str
    module: str
    arguments: Sequence[str]


@dataclass(frozen=True)
class SparkJobResult:
    """What the job reported (its ``RESULT_KEY`` message)."""

    reported: Mapping[str, Any]


class SparkJobs(dg.ConfigurableResource):
    """Runs a :class:`SparkJob` and returns what it reported (the interface)."""

    def run(self, context: dg.AssetExecutionContext, job: SparkJob) -> SparkJobResult:
        """Start ``job``, wait for it, and return its report; raises if it failed."""
        raise NotImplementedError  # pragma: no cover

    def reads_s3(self) -> bool:
        """True when the jobs can read and write an ``s3://`` lake."""
        raise NotImplementedError  # pragma: no cover


def job_result(job: SparkJob, invocation: "PipesClientCompletedInvocation",
               where: str) -> SparkJobResult:
    """The job's report from its Pipes messages; raises when it sent none."""
    reports = [m[RESULT_KEY] for m in invocation.get_custom_messages()
               if isinstance(m, dict) and RESULT_KEY in m]
    if not reports:
        msg = (f"the Spark job {job.name} ended without reporting its result through Dagster "
               f"Pipes, so nothing it may have written is used ({where})")
        raise RuntimeError(msg)
    return SparkJobResult(reported=reports[-1])


def _entry_point(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        msg = f"Spark job entry point {module} is not importable"
        raise RuntimeError(msg)
    return Path(spec.origin)


class LocalSparkJobs(SparkJobs):
    """The job in a child process, on a ``local[cores]`` Spark session (a local lake only)."""

    cores: int = 2
    """Cores of the job's ``local[n]`` session."""

    def reads_s3(self) -> bool:
        """This machine's Spark has no S3 connector (hadoop-aws)."""
        return False

    def run(self, context: dg.AssetExecutionContext, job: SparkJob) -> SparkJobResult:
        """``python -m <module> --local --cores N <arguments>`` under Dagster Pipes."""
        if importlib.util.find_spec("pyspark") is None:
            msg = ("engine spark-job runs its job in a local Spark here, which needs the "
                   "project's spark extra (`uv sync --extra spark`, or `./run setup`); or set "
                   "CRYPTODUDEZ_EMR_APPLICATION_ID, or choose polars")
            raise RuntimeError(msg)
        _entry_point(job.module)
        command = [sys.executable, "-m", job.module, "--local", "--cores", str(self.cores),
                   *job.arguments]
        invocation = dg.PipesSubprocessClient().run(context=context, command=command)
        return job_result(job, invocation, "a local Spark job: its output is in the run's logs")


class EmrServerlessJobs(SparkJobs):
    """The job on an EMR Serverless application (the production resource set)."""

    application_id: str
    """The Spark application (the Pulumi stack's ``emr_application_id`` output)."""
    execution_role_arn: str
    """The role the job runs as (``emr_execution_role_arn``): reads the lake, writes
    ``features/``."""
    lake: Lake
    """The lake (on S3): entry points are uploaded to its ``code/``, one folder per digest."""
    spark_submit_parameters: str = ""
    """More ``--conf`` of the job: the project's packed virtualenv (docs/spark.md)."""
    log_group: str = ""
    """CloudWatch log group of the jobs' driver logs, where their Pipes messages are read
    (``CRYPTODUDEZ_EMR_LOG_GROUP``; the Pulumi stack sets it to the application's group);
    empty: the application's own logging configuration decides."""
    region_name: str | None = None
    endpoint_url: str | None = None
    """One endpoint for EMR Serverless and CloudWatch Logs (a local test server)."""
    poll_interval: float = 10.0
    """Seconds between two polls of the job's state."""

    _clients: dict[str, Any] = PrivateAttr(default_factory=dict)

    def reads_s3(self) -> bool:
        """EMR reads and writes S3 (EMRFS)."""
        return True

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3  # noqa: PLC0415  # only the production resource set needs it

            self._clients[service] = boto3.client(service, region_name=self.region_name,
                                                  endpoint_url=self.endpoint_url)
        return self._clients[service]

    def upload(self, module: str) -> str:
        """The URI of the module's file under the lake's ``code/``, uploaded if missing."""
        source = _entry_point(module).read_bytes()
        parts = ("code", hashlib.sha256(source).hexdigest()[:16],
                 f"{module.rsplit('.', 1)[-1]}.py")
        if not self.lake.exists(self.lake.path(*parts)):
            self.lake.write_bytes(self.lake.path(*parts), source)
        return self.lake.url(*parts)

    def start_params(self, run_id: str, attempt: int, job: SparkJob,
                     entry_point: str) -> dict[str, Any]:
        """The ``StartJobRun`` request (before Pipes adds its variables and tags).

        Driver logs go to ``log_group`` when it is set, else wherever the application sends
        them: a job-level monitoring setting would replace the application's.
        """
        params: dict[str, Any] = {
            "applicationId": self.application_id,
            "executionRoleArn": self.execution_role_arn,
            "name": f"{job.name}-{run_id[:8]}",
            # one job run per step attempt: a retry starts a new one
            "clientToken": f"{run_id}-{job.name}-{attempt}"[:64],
            "jobDriver": {"sparkSubmit": {
                "entryPoint": entry_point,
                "entryPointArguments": list(job.arguments),
                "sparkSubmitParameters": self.spark_submit_parameters,
            }},
        }
        if self.log_group:
            params["configurationOverrides"] = {"monitoringConfiguration": {
                "cloudWatchLoggingConfiguration": {"enabled": True,
                                                   "logGroupName": self.log_group}}}
        return params

    def run(self, context: dg.AssetExecutionContext, job: SparkJob) -> SparkJobResult:
        """Upload, start and wait, reading the job's Pipes messages from CloudWatch Logs."""
        from dagster_aws.pipes import (  # noqa: PLC0415  # only the production set needs it
            PipesCloudWatchMessageReader,
            PipesEMRServerlessClient,
        )

        entry_point = self.upload(job.module)
        client = PipesEMRServerlessClient(
            client=self._client("emr-serverless"),
            message_reader=PipesCloudWatchMessageReader(client=self._client("logs")),
            poll_interval=self.poll_interval)
        invocation = client.run(context=context,
                                start_job_run_params=self.start_params(
                                    context.run_id, context.retry_number, job, entry_point))
        return job_result(job, invocation,
                          f"EMR Serverless application {self.application_id}: the job's "
                          f"driver log is in CloudWatch Logs, group "
                          f"{self.log_group or 'of the application'}")
