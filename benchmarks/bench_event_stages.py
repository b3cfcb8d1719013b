"""Two stages of the event engine alone, for the choices they set (docs/events.md, session 9).

On the generated 2 M-event file of ``bench_events.py`` (``benchmarks/out/bench_events/``,
made by that script; reused here):

1. **Batch size** of the read-and-validate loop: ``iter_line_batches`` feeding
   ``prepare_batch`` in two worker processes (``_prepared``, as ``ingest_event_file`` runs
   it, without deduplication, staging or the commit), for each ``--batch-mb``: wall seconds,
   and the CPU seconds of this process and of its workers.
2. **Codec** of the partitioned write: the file's valid rows (from 1.) written with
   ``EventTable._write_partitioned`` (polars' partitioned sink, one file per type x date x
   hour) into a fresh folder, for each ``--codecs``: wall and CPU seconds, files, bytes.

Each case runs ``--repeats`` times in turn (round robin, so a slow spell of the VM's disk
hits every case alike); the median is reported with every run. Nothing here asserts on time.

Usage::

    python benchmarks/bench_event_stages.py --out bench_event_stages_s9
"""

# ruff: noqa: PLC0415  (the subject is imported after the input check, on purpose)
import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

from bench_events import RESULTS_DIR, generate_input
from reference.common import machine_info, portable, wait_quiet


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def read_and_validate(path: Path, batch_mb: int) -> dict[str, Any]:
    """The engine's read-and-validate loop with two workers; returns times and counts."""
    from cryptodudez.lake import event_ingest, events

    prepare = partial(event_ingest.prepare_batch, source="bench", partition_key="events/bench",
                      landed_at=datetime(2026, 11, 1, tzinfo=UTC))
    started, cpu, child_cpu = time.perf_counter(), time.process_time(), children_cpu()
    batches = valid = 0
    with path.open("rb") as fh:
        for ready in event_ingest._prepared(
                events.iter_line_batches(fh, batch_bytes=batch_mb << 20), prepare, workers=2):
            assert not isinstance(ready, str)
            batches += 1
            valid += ready.valid
    return {"wall_s": round(time.perf_counter() - started, 2),
            "main_cpu_s": round(time.process_time() - cpu, 2),
            "workers_cpu_s": round(children_cpu() - child_cpu, 2),
            "batches": batches, "valid": valid}


def valid_rows(path: Path) -> Any:
    """The file's valid rows with lineage, as the engine stages them (one frame)."""
    import polars as pl

    from cryptodudez.lake import event_ingest, events

    frames = []
    with path.open("rb") as fh:
        for batch in events.iter_line_batches(fh):
            assert not isinstance(batch, str)
            ready = event_ingest.prepare_batch(batch, source="bench",
                                               partition_key="events/bench",
                                               landed_at=datetime(2026, 11, 1, tzinfo=UTC))
            frames.append(pl.read_parquet(ready.rows))
    return pl.concat(frames).rechunk()


def write_partitioned(rows: Any, codec: str, work: Path) -> dict[str, Any]:
    from cryptodudez.lake.event_table import INGEST_ROW_GROUP, EventTable
    from cryptodudez.storage import LakeStorage

    lake = work / f"lake_{codec}"
    shutil.rmtree(lake, ignore_errors=True)
    table = EventTable(LakeStorage(str(lake)))
    started, cpu = time.perf_counter(), time.process_time()
    # As the ingest writes (EventTable.append): small row groups, see INGEST_ROW_GROUP.
    added = table._write_partitioned(rows.lazy(), prefix="bench", compression=codec,
                                     row_group_size=INGEST_ROW_GROUP)
    out = {"wall_s": round(time.perf_counter() - started, 2),
           "cpu_s": round(time.process_time() - cpu, 2), "files": len(added),
           "mb": round(sum(a.size for a in added) / 1e6, 1)}
    shutil.rmtree(lake, ignore_errors=True)
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    return {"median": {k: median(r[k] for r in runs) for k in keys}, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--batch-mb", type=int, nargs="+", default=[64, 16, 8, 4])
    parser.add_argument("--codecs", nargs="+", default=["zstd", "snappy"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench_event_stages")
    args = parser.parse_args(argv)
    source = generate_input(args.events, 0)
    path = source["path"]
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_event_stages.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "input": {**{k: source[k] for k in ("events", "mb")}, "path": str(source["path"])},
        "quiet_before": wait_quiet(max_busy=0.3)}
    batch_runs: dict[int, list[dict[str, Any]]] = {mb: [] for mb in args.batch_mb}
    for _ in range(args.repeats):
        for mb in args.batch_mb:
            batch_runs[mb].append(read_and_validate(path, mb))
            print(f"batch {mb} MB: {batch_runs[mb][-1]}", flush=True)
    result["read_and_validate"] = {f"{mb}_mb": summary(r) for mb, r in batch_runs.items()}
    rows = valid_rows(path)
    result["rows_written"] = rows.height
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / "out") as tmp:
        codec_runs: dict[str, list[dict[str, Any]]] = {c: [] for c in args.codecs}
        for _ in range(args.repeats):
            for codec in args.codecs:
                codec_runs[codec].append(write_partitioned(rows, codec, Path(tmp)))
                print(f"codec {codec}: {codec_runs[codec][-1]}", flush=True)
    result["write_partitioned"] = {c: summary(r) for c, r in codec_runs.items()}
    out = RESULTS_DIR / f"{args.out}.json"
    out.write_text(json.dumps(portable(result), indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(Path(__file__).parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
