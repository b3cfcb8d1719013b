"""The landing sensor: one listing of raw/ per tick, a dynamic partition per landed file."""

import json

import dagster as dg

from cryptodudez.assets.lake import landed_files
from cryptodudez.jobs import INGEST_JOB
from cryptodudez.resources.lake import Lake, RawObject, partition_key_for

LANDED_FILES = "landed_files"


def changed_objects(objects: list[RawObject], seen: dict[str, str]) -> list[RawObject]:
    """Objects that are new or whose version differs from the one last seen."""
    return [o for o in objects if seen.get(o.key) != o.version]


def run_key(obj: RawObject) -> str:
    """Run key of one version of one landed file: a repeated tick launches nothing twice."""
    return f"{partition_key_for(obj.key)}@{obj.version}"


@dg.sensor(
    job_name=INGEST_JOB,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lists raw/ once per tick and ingests every new or changed file.",
)
def landing_sensor(context: dg.SensorEvaluationContext, lake: Lake) -> dg.SensorResult:
    """Register a partition per new landed file and request one run per file version.

    The cursor maps every raw key to the version (ETag on S3, size and mtime in ns locally)
    seen last, so files landing in the same second are all noticed, and a changed file under
    an old name is noticed too.
    """
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    objects = lake.list_raw()
    changed = changed_objects(objects, seen)
    cursor = json.dumps({o.key: o.version for o in objects}, sort_keys=True)
    if not changed:
        return dg.SensorResult(skip_reason=f"no new files among {len(objects)}", cursor=cursor)
    keys = [partition_key_for(o.key) for o in changed]
    known = set(context.instance.get_dynamic_partitions(LANDED_FILES))
    new_keys = [k for k in keys if k not in known]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=run_key(o), partition_key=k, tags={"cryptodudez/raw_key": o.key})
            for o, k in zip(changed, keys, strict=True)
        ],
        dynamic_partitions_requests=[landed_files.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor,
    )
