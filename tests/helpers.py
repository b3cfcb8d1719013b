"""Helpers shared by integration tests: land files and ingest them through the Dagster job."""

import csv
import io
import zipfile
from pathlib import Path

import dagster as dg
import polars as pl

from cryptodudez.resources.lake import Lake, partition_key_for

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def land_and_ingest(defs: dg.Definitions, instance: dg.DagsterInstance,
                    files: dict[str, Path], *,
                    batch_bytes: int | None = None) -> dict[str, dg.ExecuteInProcessResult]:
    """Land ``{raw_key: local_path}`` in order and run the ingest job for each.

    ``batch_bytes`` overrides the ingest batch size (tiny values force many batches).
    """
    run_config: dict[str, object] = dict(QUIET)
    if batch_bytes is not None:
        run_config["ops"] = {"lake_ingest": {"config": {"batch_bytes": batch_bytes}}}
    lake: Lake = defs.resources["lake"]
    job = defs.resolve_job_def("ingest_landed_file")
    results = {}
    for key, path in files.items():
        lake.land(path, key)
        pk = partition_key_for(key)
        instance.add_dynamic_partitions("landed_files", [pk])
        results[key] = job.execute_in_process(partition_key=pk, instance=instance,
                                              run_config=run_config, raise_on_error=False)
    return results


def table(defs: dg.Definitions, layer: str, name: str) -> pl.DataFrame:
    """A whole table of the lake."""
    lake: Lake = defs.resources["lake"]
    return lake.read_table(layer, name)


def csv_records(zip_path: Path, member_suffix: str) -> list[tuple[int, list[str]]]:
    """Independent reading with the stdlib csv module: (start line, fields) of each record."""
    with zipfile.ZipFile(zip_path) as z:
        name = next(n for n in z.namelist()
                    if n.endswith(member_suffix) and "__MACOSX" not in n)
        text = z.read(name).decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    out = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return out
        out.append((start, row))
