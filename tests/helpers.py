"""Helpers shared by tests: land files and ingest them through the Dagster job; publish models."""

import contextlib
import csv
import io
import json
import socket
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import dagster as dg
import deltalake.table
import numpy as np
import polars as pl
import pytest

from cryptodudez.lake.event_ingest import EventFileResult, ingest_event_file
from cryptodudez.lake.layout import digest
from cryptodudez.resources.lake import MODELS, Lake, partition_key_for
from cryptodudez.storage import LakeStorage
from cryptodudez.transforms import volume_model as vm
from cryptodudez.transforms.lookup import LookupModel
from serving.signal_store import CLASSES, SignalRow, write_signals


class WriteNow:
    """A fragment writer that writes at once."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def write(self, path: str, frame: pl.DataFrame) -> None:
        self.lake.write_parquet(path, frame)

    def drain(self) -> None:
        pass


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@contextlib.contextmanager
def offline_aws(folder: Path, region: str) -> Iterator[pytest.MonkeyPatch]:
    """Dummy credentials and no profile, config file or endpoint from outside: AWS clients made
    inside reach only the loopback endpoint a test hands them, retrying at most twice."""
    with pytest.MonkeyPatch.context() as mp:
        for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": region, "AWS_EC2_METADATA_DISABLED": "true",
                           "AWS_CONFIG_FILE": str(folder / "config"),
                           "AWS_SHARED_CREDENTIALS_FILE": str(folder / "credentials"),
                           "AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard",
                           "NO_PROXY": "127.0.0.1,localhost",
                           "no_proxy": "127.0.0.1,localhost"}.items():
            mp.setenv(var, value)
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL",
                    "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_GLUE", "CRYPTODUDEZ_LAKE"):
            mp.delenv(var, raising=False)
        yield mp


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


def publish(lake: Lake, version: str, *, scale: float = 1.0, seed: int = 0) -> LookupModel:
    """Train a real (small) model on synthetic data and publish it like the pipeline does."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.lognormal(12, 2, 5000), rng.lognormal(3, 1, 5000)])
    y = x[:, 0] * rng.lognormal(0, 0.3, 5000) * scale
    table = vm.fit(x, y, shrinkage=1.0).compile()
    folder = lake.path(MODELS, "volume_model", version)
    lake.write_bytes(f"{folder}/lookup.json", json.dumps(table.to_json()).encode())
    lake.write_bytes(lake.path(MODELS, "volume_model", "LATEST"), version.encode())
    return table


DEFAULT_LABELS = {"method": "horizon", "horizon": 1, "band": 0.01, "band_kind": "fixed"}


def publish_signals(lake: Lake, version: str, dates: Sequence[date], *, served: str = "model",
                    seed: int = 0, labels: dict[str, Any] | None = None) -> list[SignalRow]:
    """Publish a signal for each of ``dates`` like the signal asset does; returns the rows.

    Probabilities are random (``seed``), the action is the likeliest class, the features are
    as of midnight UTC of the day, and the first half of the dates are in sample. The label
    definition is ``labels`` (default: ``DEFAULT_LABELS``, the next-day 1 % band).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i, day in enumerate(dates):
        probabilities = dict(zip(CLASSES, (float(p) for p in rng.dirichlet(np.ones(3))),
                                 strict=True))
        rows.append(SignalRow(date=day, action=max(CLASSES, key=probabilities.__getitem__),
                              probabilities=probabilities,
                              features_as_of=datetime.combine(day, time(), UTC),
                              in_sample=i < len(dates) // 2))
    write_signals(lake, version, rows, served=served,
                  label_definition=DEFAULT_LABELS if labels is None else labels)
    return rows



@contextlib.contextmanager
def held_port() -> Iterator[int]:
    """A loopback port a listening socket holds for the block's duration."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def ingest_events(storage: LakeStorage, path: Path, key: str) -> EventFileResult:
    """The event engine's ingest of ``path`` as landed file ``key`` (no Dagster)."""
    lake = Lake(uri=storage.uri)
    sha = digest(path.read_bytes().hex())[:16]
    return ingest_event_file(
        storage, str(path), source=f"file://{path}", partition_key=key,
        version_tag=digest(f"{key}@{sha}")[:16], landed_at=datetime.now(tz=UTC),
        publish_lock=lake.publish_lock)


def events_file(path: Path, events: list[tuple[str, str, datetime]]) -> Path:
    """A landed file of ``(id, type, created_at)`` events, each with a user id."""
    path.write_text("".join(
        json.dumps({"data": {"id": event_id, "type": event_type,
                             "attributes": {"user_id": f"u{n % 7}"}},
                    "meta": {"created_at": int(at.timestamp() * 1000)}}) + "\n"
        for n, (event_id, event_type, at) in enumerate(events)))
    return path


def spread_events(day: date, prefix: str, count: int) -> list[tuple[str, str, datetime]]:
    """``count`` events of three types over the hours of ``day``."""
    return [(f"{prefix}{i}", ("trade", "login", "page.view")[i % 3],
             datetime(day.year, day.month, day.day, i % 24, i % 60, tzinfo=UTC))
            for i in range(count)]


def count_table_loads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count full loads of a Delta table (``DeltaTable`` constructions) from here on."""
    counts = {"loads": 0}
    original = deltalake.table.DeltaTable.__init__

    def counting(self: deltalake.DeltaTable, *args: Any, **kwargs: Any) -> None:
        counts["loads"] += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(deltalake.table.DeltaTable, "__init__", counting)
    return counts
