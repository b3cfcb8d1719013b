"""The landing sensor: what has landed and is not yet ingested, requested until it is.

What was ingested has one record, the metastore's (``Metastore.ingested_versions``), written
by the ingest asset whoever launched it: this sensor, ``cryptodudez ingest`` or a backfill. So
the sensor never redoes what the CLI did, and needs no cursor of its own. A file version whose
runs all failed is requested again on a later tick, up to ``MAX_ATTEMPTS`` runs.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

import dagster as dg

from cryptodudez.assets.events import event_files
from cryptodudez.assets.lake import landed_files
from cryptodudez.jobs import EVENT_INGEST_JOB, INGEST_JOB, event_ingest_job, ingest_job
from cryptodudez.lake.layout import is_event_file
from cryptodudez.resources.lake import Lake, RawObject, partition_key_for
from cryptodudez.resources.metastore import Metastore

LANDED_FILES = "landed_files"
EVENT_FILES = "event_files"
RAW_KEY_TAG = "cryptodudez/raw_key"
FILE_VERSION_TAG = "cryptodudez/file_version"
MAX_ATTEMPTS = 5
_JOB_OF = {LANDED_FILES: INGEST_JOB, EVENT_FILES: EVENT_INGEST_JOB}
_FAILED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
_IN_FLIGHT = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED,
              dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
              dg.DagsterRunStatus.CANCELING]
PARTITION_TAG = "dagster/partition"


def file_version(obj: RawObject) -> str:
    """One version of one landed file: ``<partition key>@<version>``."""
    return f"{partition_key_for(obj.key)}@{obj.version}"


def run_tags(obj: RawObject) -> dict[str, str]:
    """Tags of every ingest run of ``obj`` (the sensor's and the CLI's alike)."""
    return {RAW_KEY_TAG: obj.key, FILE_VERSION_TAG: file_version(obj)}


def route(obj: RawObject) -> tuple[str, dg.DynamicPartitionsDefinition]:
    """The job and partitions that ingest a landed file.

    Events files go to the event lake, every other file to the CSV lake.
    """
    if is_event_file(obj.key):
        return EVENT_INGEST_JOB, event_files
    return INGEST_JOB, landed_files


def not_ingested(objects: Sequence[RawObject], ingested: Mapping[str, str]) -> list[RawObject]:
    """Landed objects whose current version is not the one last ingested."""
    return [o for o in objects if ingested.get(partition_key_for(o.key)) != o.version]


@dataclass
class Plan:
    """What one tick decided for the files not yet ingested."""

    requests: list[dg.RunRequest] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)


def plan_runs(pending: Sequence[RawObject],
              runs: Sequence[dg.DagsterRun], *, busy: Set[str] = frozenset(),
              max_attempts: int = MAX_ATTEMPTS) -> Plan:
    """A run request per pending file version unless a run of it is queued or running.

    ``busy`` are partitions with a run in flight whatever launched it: a backfill from the
    CLI or the UI's launchpad tags no file version, and its run was not seen, so the sensor
    started a second run of the same file (the publish lock kept the table whole; the work
    was done twice). A file changed while a run of its previous version is in flight waits
    for it too, so one partition never has two ingest runs at once.

    The run key counts the version's earlier runs, so a failed ingest is requested again
    (a new key) and a repeated tick requests nothing twice (the same key). A successful
    run of a pending version is history, not work in flight: the file was changed back to
    that version after another one was ingested (on S3 a version is the ETag, a hash of the
    content), so it is ingested again (until session 23 it counted as in flight forever).
    """
    by_version: dict[str, list[dg.DagsterRun]] = defaultdict(list)
    for run in runs:
        by_version[run.tags.get(FILE_VERSION_TAG, "")].append(run)
    plan = Plan()
    for obj in pending:
        version = file_version(obj)
        earlier = by_version.get(version, [])
        if (partition_key_for(obj.key) in busy
                or any(r.status not in (*_FAILED, dg.DagsterRunStatus.SUCCESS) for r in earlier)):
            plan.in_flight.append(obj.key)
            continue
        if sum(r.status in _FAILED for r in earlier) >= max_attempts:
            plan.given_up.append(obj.key)
            continue
        plan.requests.append(dg.RunRequest(
            run_key=f"{version}#{len(earlier)}", partition_key=partition_key_for(obj.key),
            job_name=route(obj)[0], tags=run_tags(obj)))
    return plan


@dg.sensor(
    jobs=[ingest_job, event_ingest_job],
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lists raw/ once per tick and ingests every file whose landed version is not "
                "the one the metastore records as ingested; failed ingests are re-requested.",
)
def landing_sensor(context: dg.SensorEvaluationContext, lake: Lake,
                   metastore: Metastore) -> dg.SensorResult:
    """Register a partition per new landed file and request a run per file not ingested."""
    objects = lake.list_raw()
    pending = not_ingested(objects, metastore.ingested_versions())
    if not pending:
        return dg.SensorResult(skip_reason=f"all {len(objects)} landed files are ingested")
    runs = context.instance.get_runs(filters=dg.RunsFilter(
        tags={FILE_VERSION_TAG: [file_version(o) for o in pending]}))
    # Runs in flight are few: asked for by status alone, kept when they ingest a partition:
    # an ingest job's, or an asset job's (the asset page's "Materialize" and its backfills
    # run as ``__ASSET_JOB``).
    busy = {run.tags.get(PARTITION_TAG, "") for run in context.instance.get_runs(
        filters=dg.RunsFilter(statuses=_IN_FLIGHT))
            if run.job_name in _JOB_OF.values() or run.job_name.startswith("__ASSET_JOB")}
    plan = plan_runs(pending, runs, busy=busy)
    if plan.given_up:
        context.log.warning(
            f"not requesting {len(plan.given_up)} files whose last {MAX_ATTEMPTS} ingest "
            f"runs failed (see their runs; `cryptodudez ingest` tries again): "
            f"{plan.given_up[:5]}")
    adds = []
    for name, partitions in ((LANDED_FILES, landed_files), (EVENT_FILES, event_files)):
        known = set(context.instance.get_dynamic_partitions(name))
        new_keys = sorted({r.partition_key for r in plan.requests
                           if r.partition_key and r.job_name == _JOB_OF[name]} - known)
        if new_keys:
            adds.append(partitions.build_add_request(new_keys))
    if not plan.requests:
        return dg.SensorResult(skip_reason=(
            f"{len(pending)} files not ingested yet: {len(plan.in_flight)} in flight, "
            f"{len(plan.given_up)} given up after {MAX_ATTEMPTS} failed runs"))
    return dg.SensorResult(
        run_requests=plan.requests,
        dynamic_partitions_requests=adds,
    )
