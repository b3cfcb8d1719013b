"""What an ingest run changed, per table, read from its recorded materialisations.

The run-status sensors (stock pipeline, feature store, mood) and the CLI's replay of them
decide what to recompute from this one reading: each skips a run that is not an ingest run
(``skip_unless_ingest``) and reads the changes of the tables it derives from (``changes_of``).
"""

from collections.abc import Collection
from dataclasses import dataclass

import dagster as dg

from cryptodudez.jobs import INGEST_JOB


@dataclass(frozen=True)
class TableChange:
    """One table's change in an ingest run.

    Attributes:
        table: the table's asset name.
        date_min: the first day of the rows written (``YYYY-MM-DD``), None when unknown.
        date_max: the last day of the rows written, None when unknown.
        superseded: rows of earlier deliveries were replaced or removed (or rows of other
            files given back), so the days they were about are no longer known.
    """

    table: str
    date_min: str | None
    date_max: str | None
    superseded: bool


def table_changes(instance: dg.DagsterInstance, run_id: str) -> list[TableChange]:
    """The tables an ingest run changed (a file whose rows were unchanged changes nothing)."""
    changes = []
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        mat = record.asset_materialization
        if mat is None:
            continue
        meta = {k: v.value for k, v in mat.metadata.items()}
        rows, superseded = meta.get("dagster/row_count", 0), meta.get("rows_superseded", 0)
        # Rows of other files given back by this run (see assets/lake.py): days unknown too.
        superseded = superseded or meta.get("rows_restored", 0)
        if meta.get("unchanged") or (not rows and not superseded):
            continue
        changes.append(TableChange(
            table=mat.asset_key.path[-1],
            date_min=str(meta["date_min"])[:10] if meta.get("date_min") else None,
            date_max=str(meta["date_max"])[:10] if meta.get("date_max") else None,
            superseded=bool(superseded)))
    return changes


def changes_of(instance: dg.DagsterInstance, run_id: str,
               tables: Collection[str]) -> list[TableChange]:
    """The changes an ingest run made to ``tables`` (in the order they were recorded)."""
    return [c for c in table_changes(instance, run_id) if c.table in tables]


def skip_unless_ingest(run: dg.DagsterRun) -> dg.SkipReason | None:
    """Why a run-status sensor skips ``run`` (None for an ingest run, which it reads)."""
    if run.job_name != INGEST_JOB:
        return dg.SkipReason(f"{run.job_name} is not an ingest run")
    return None
