"""Reference event ingest: the baseline the event lake is compared against.

The issue's reference: "an orjson loop with exact rejects writing Parquet with pyarrow's
write_dataset, sorted by type and hour". Each line of each file is parsed with
``orjson.loads`` and checked exactly (the required-field rules of
``cryptodudez.lake.eventgen``); rejects keep their file, line number, reason and raw bytes;
valid events are deduplicated by id (first wins), sorted by type, date and hour, and written
as a hive-partitioned Parquet dataset ``event_type=…/date=…/hour=…``.

``__main__`` generates events with the generator's CLI in a child process (so the peak RSS
printed is the ingest's own), times :func:`reference_ingest` and checks its counts, and the
events per type, date and hour it wrote, against the generator's ``truth.json``.

Usage::

    python benchmarks/event_reference.py [--events 2000000] [--days 2026-11-01] [--files 1]
"""

import argparse
import gzip
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

TYPE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
LOW, HIGH = 946_684_800_000, 4_102_444_800_000  # 2000-01-01 .. 2100-01-01, epoch ms
DAY_MS, HOUR_MS = 86_400_000, 3_600_000


def reject_reason(event: Any) -> str | None:
    """Why a parsed line is not a valid event, or None when it is."""
    if not isinstance(event, dict):
        return "wrong shape: line is not an object"
    data, meta = event.get("data"), event.get("meta")
    if data is None and "data" not in event:
        return "missing field: data"
    if not isinstance(data, dict):
        return "wrong shape: data is not an object"
    if meta is None and "meta" not in event:
        return "missing field: meta"
    if not isinstance(meta, dict):
        return "wrong shape: meta is not an object"
    for key in ("id", "type", "attributes"):
        if key not in data:
            return f"missing field: data.{key}"
    if "created_at" not in meta:
        return "missing field: meta.created_at"
    if not isinstance(data["attributes"], dict):
        return "wrong shape: data.attributes is not an object"
    if not isinstance(data["id"], str) or not data["id"]:
        return "wrong type: data.id is not a non-empty string"
    if not isinstance(data["type"], str):
        return "wrong type: data.type is not a string"
    if not TYPE_NAME.fullmatch(data["type"]):
        return "bad value: data.type is not path-safe"
    created = meta["created_at"]
    if not isinstance(created, int) or isinstance(created, bool):
        return "wrong type: meta.created_at is not an integer"
    if not LOW <= created < HIGH:
        return "bad value: meta.created_at out of range"
    return None


@contextmanager
def open_lines(path: Path) -> Iterator[BinaryIO]:
    """A binary reader of a JSON-lines file, gunzipped when it ends in ``.gz``."""
    with path.open("rb") as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=raw) as unpacked:
                yield unpacked  # type: ignore[misc]
        else:
            yield raw


def reference_ingest(files: list[Path], out_dir: Path) -> dict[str, Any]:
    """Ingest event files the reference way; write ``events/`` (Parquet) and ``rejects.parquet``.

    Args:
        files: JSON-lines files, in order (the first line with an id wins).
        out_dir: Output folder.

    Returns:
        Counts ``read``, ``valid`` (unique events written), ``rejected``, ``duplicates``,
        the rejects per ``reasons`` and the wall time in ``seconds``.
    """
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    types: list[str] = []
    created: list[int] = []
    attributes: list[str] = []
    seen: set[str] = set()
    rejects: dict[str, list[Any]] = {"file": [], "line": [], "reason": [], "raw": []}
    read = duplicates = 0
    for path in files:
        with open_lines(path) as handle:
            for number, line in enumerate(handle, 1):
                read += 1
                body = line.rstrip(b"\n")
                try:
                    event = orjson.loads(body)
                except orjson.JSONDecodeError:
                    reason: str | None = "broken JSON"
                else:
                    reason = reject_reason(event)
                if reason is not None:
                    for key, value in zip(rejects, (path.name, number, reason, body), strict=True):
                        rejects[key].append(value)
                    continue
                data = event["data"]
                if data["id"] in seen:
                    duplicates += 1
                    continue
                seen.add(data["id"])
                ids.append(data["id"])
                types.append(data["type"])
                created.append(event["meta"]["created_at"])
                attributes.append(orjson.dumps(data["attributes"]).decode())
    write_events(out_dir / "events", ids, types, created, attributes)
    pq.write_table(pa.table(rejects), out_dir / "rejects.parquet")
    return {
        "read": read,
        "valid": len(ids),
        "rejected": len(rejects["line"]),
        "duplicates": duplicates,
        "reasons": dict(pl.Series(rejects["reason"], dtype=pl.String).value_counts().iter_rows()),
        "seconds": time.perf_counter() - started,
    }


def write_events(
    folder: Path, ids: list[str], types: list[str], created: list[int], attributes: list[str]
) -> None:
    """Sort events by type, date and hour and write them hive-partitioned by those columns."""
    moments = pa.array(created, type=pa.int64())
    table = pa.table(
        {
            "id": pa.array(ids, type=pa.string()),
            "created_at": moments.cast(pa.timestamp("ms", tz="UTC")),
            "attributes": pa.array(attributes, type=pa.string()),
            "event_type": pa.array(types, type=pa.string()),
            "date": pa.array([ms // DAY_MS for ms in created], type=pa.int32()).cast(pa.date32()),
            "hour": pa.array([ms % DAY_MS // HOUR_MS for ms in created], type=pa.int8()),
        }
    ).sort_by([("event_type", "ascending"), ("date", "ascending"), ("hour", "ascending")])
    ds.write_dataset(
        table,
        folder,
        format="parquet",
        partitioning=["event_type", "date", "hour"],
        partitioning_flavor="hive",
        max_partitions=1_000_000,
        existing_data_behavior="overwrite_or_ignore",
    )


def written_hours(folder: Path) -> dict[tuple[str, str, int], int]:
    """Events per (type, date, hour) in a written dataset, read back through its partitions."""
    frame = pl.from_arrow(
        ds.dataset(folder, format="parquet", partitioning="hive").to_table(
            columns=["event_type", "date", "hour"]
        )
    )
    assert isinstance(frame, pl.DataFrame)
    counts = frame.group_by(
        pl.col("event_type").cast(pl.String),
        pl.col("date").cast(pl.String),
        pl.col("hour").cast(pl.Int64),
    ).len()
    return {(t, d, h): n for t, d, h, n in counts.iter_rows()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", default="2026-11-01")
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="event_reference_") as temporary:
        source, out = Path(temporary) / "source", Path(temporary) / "out"
        command = [sys.executable, "-m", "cryptodudez.lake.eventgen", str(source),
                   "--events", str(args.events), "--days", args.days, "--files",
                   str(args.files), "--seed", str(args.seed), *(["--gzip"] * args.gzip)]
        generation = time.perf_counter()
        subprocess.run(command, check=True)
        generation = time.perf_counter() - generation
        truth = json.loads((source / "truth.json").read_text())
        files = [source / name for name in truth["files"]]
        counts = reference_ingest(files, out)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        expected = {
            "read": truth["lines"],
            "valid": truth["unique_valid_ids"],
            "rejected": truth["malformed_lines"],
            "duplicates": truth["duplicate_lines"],
        }
        hours = {(r["type"], r["date"], r["hour"]): r["events"]
                 for r in truth["events_per_type_date_hour"]}  # fmt: skip
        matches = all(counts[k] == v for k, v in expected.items())
        matches = matches and written_hours(out / "events") == hours
        partitions = sum(1 for _ in (out / "events").glob("*/*/*"))
    print(f"generation (child process): {args.events:,} lines in {generation:.1f} s")
    print(
        f"reference ingest: {counts['read']:,} lines in {counts['seconds']:.1f} s"
        f" = {counts['read'] / counts['seconds']:,.0f} events/s;"
        f" peak RSS {peak_mb:,.0f} MB; {partitions:,} partitions"
    )
    print(
        f"valid {counts['valid']:,}, rejected {counts['rejected']:,},"
        f" duplicates {counts['duplicates']:,}; matches truth.json: {'yes' if matches else 'NO'}"
    )
    for reason, number in sorted(counts["reasons"].items()):
        print(f"  {number:8,}  {reason}")


if __name__ == "__main__":
    main()
