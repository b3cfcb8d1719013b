"""What the event lake's fixed costs do as the ``events`` table ages (its log grows).

A compacted day holds one file per type x hour (7,200 files for 300 types), so a table that
has been fed for a year lists about 2.6 million live files in its Delta log, and every load
of the table (``DeltaTable(...)``, ``pl.scan_delta``) reads all of them. This script measures
what that does to the work that should not depend on the table's age: ingesting one landed
file, a re-delivery of it, compacting its day, and the day's KPIs from the rollups.

For each ``--days`` value ``N`` a fresh lake is built (not timed):

1. a generated warm-up file of ``--warmup`` events (its own day) is ingested, so the table
   exists with the real schema;
2. ``N`` days of a compacted day's files are committed to the log, 7,200 per day (300 types
   x 24 hours), then the log is checkpointed as a compaction does. **These days exist only in
   the log** (add actions whose Parquet files were never written): every step measured
   below reads the log but never those files, so they cost what a real aged table's log
   costs and nothing more. Nothing here reads their data.

Then, each in a fresh process, timed around the call (imports apart), with the number of
full table loads counted (``deltalake.DeltaTable`` constructions, polars' included):

``ingest``
    ``ingest_event_file`` of a generated file of ``--events`` events (``DAY``; small by
    default, so the fixed costs show);
``redeliver``
    the same file landed again under another key (every event a duplicate);
``compact``
    ``compact_day`` of ``DAY``;
``kpi``
    ``kpi.compute`` of ``DAY`` from the rollups (the whole day).

Usage::

    python benchmarks/bench_table_age.py                       # --days 0,10,30
    python benchmarks/bench_table_age.py --days 0,30 --out bench_table_age_after

Results: ``benchmarks/results/<--out>.json``. Nothing here asserts on time.
"""

# ruff: noqa: PLC0415  (children import their subject inside the timed window, on purpose)
import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_pipeline import timed_child
from reference.common import machine_info

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out" / "bench_table_age"
RESULTS_DIR = BENCH_DIR / "results"
DAY = "2026-11-01"
WARMUP_DAY = "2026-10-01"
AGED_FROM = date(2025, 1, 1)
TYPES, HOURS = 300, 24
KEYS = {"ingest": "events/day.jsonl", "redeliver": "events/day-again.jsonl",
        "warmup": "events/warmup.jsonl"}


# -- children: each prints one JSON line -------------------------------------------------


def _count_loads() -> dict[str, int]:
    """Count full loads of a Delta table from here on (polars' ``scan_delta`` included)."""
    import deltalake.table

    counts = {"table_loads": 0}
    original = deltalake.table.DeltaTable.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        counts["table_loads"] += 1
        original(self, *args, **kwargs)

    deltalake.table.DeltaTable.__init__ = counting  # type: ignore[method-assign]
    return counts


def child_step(step: str, lake: str) -> dict[str, Any]:
    """One measured step on ``lake`` (imports timed apart)."""
    started = time.perf_counter()
    from cryptodudez.lake import kpi
    from cryptodudez.lake.compaction import compact_day
    from cryptodudez.lake.event_ingest import ingest_event_file
    from cryptodudez.lake.layout import digest, partition_key_for
    from cryptodudez.storage import LakeStorage
    import_s = time.perf_counter() - started
    counts = _count_loads()
    storage = LakeStorage(lake)
    started, cpu = time.perf_counter(), time.process_time()
    out: dict[str, Any]
    if step in ("ingest", "redeliver", "warmup"):
        key = partition_key_for(KEYS[step])
        result = ingest_event_file(
            storage, storage.path("raw", KEYS[step]), source=storage.url("raw", KEYS[step]),
            partition_key=key, version_tag=digest(f"{key}@bench")[:16],
            landed_at=datetime.now(UTC), publish_lock=contextlib.nullcontext)
        out = {k: getattr(result, k) for k in ("records", "added_rows", "duplicates",
                                               "repeated_ids", "table_version")}
    elif step == "compact":
        done = compact_day(storage, date.fromisoformat(DAY),
                           publish_lock=contextlib.nullcontext)
        out = {"rows_before": done.rows_before, "rows_after": done.rows_after,
               "table_version": done.table_version}
    else:
        got = kpi.compute(storage, date.fromisoformat(DAY))
        out = {"events": got["totals"]["events"], "event_types": got["totals"]["event_types"]}
    return {"import_s": round(import_s, 3), "step_s": round(time.perf_counter() - started, 3),
            "step_cpu_s": round(time.process_time() - cpu, 3), **counts, **out}


def child_age(lake: str, days: str) -> dict[str, Any]:
    """Commit ``days`` compacted days of log-only files to the lake's table, checkpoint."""
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction

    from cryptodudez.lake.event_table import PARTITION_COLUMNS, EventTable
    from cryptodudez.storage import LakeStorage

    table = EventTable(LakeStorage(lake))
    started = time.perf_counter()
    for n in range(int(days)):
        day = (AGED_FROM + timedelta(n)).isoformat()
        adds = [AddAction(
            path=(f"event_type=aged_{t:03d}/date={day}/hour={h:02d}/"
                  f"compact_{day}_v0_aged-g000-{t * HOURS + h:04d}.parquet"),
            size=250_000, modification_time=0, data_change=True,
            partition_values={"event_type": f"aged_{t:03d}", "date": day, "hour": str(h)},
            stats=json.dumps({"numRecords": 2_700}))
            for t in range(TYPES) for h in range(HOURS)]
        dt = DeltaTable(table.uri)
        dt.create_write_transaction(adds, mode="append", schema=dt.schema(),
                                    partition_by=list(PARTITION_COLUMNS))
    if int(days):
        DeltaTable(table.uri).create_checkpoint()
    files = DeltaTable(table.uri).get_add_actions(flatten=False).num_rows
    return {"aged_days": int(days), "live_files": files,
            "build_s": round(time.perf_counter() - started, 1)}


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {"step": child_step, "age": child_age}


# -- parent ----------------------------------------------------------------------------------


def generate(folder: Path, events: int, day: str, seed: int) -> Path:
    """A generated events file of ``events`` lines (reused when its truth matches)."""
    truth = folder / "truth.json"
    if not truth.exists() or json.loads(truth.read_text())["lines"] != events:
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "cryptodudez.lake.eventgen", str(folder),
                        "--events", str(events), "--days", day, "--files", "1",
                        "--seed", str(seed), "--late", "0"], check=True, cwd=PROJECT_DIR)
    return folder / json.loads(truth.read_text())["files"][0]


def place(src: Path, lake: Path, key: str) -> None:
    dest = lake / "raw" / key
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", default="0,10,30", help="aged days of log, comma-separated")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--quiet-max", type=float, default=0.5)
    parser.add_argument("--work", type=Path, default=OUT_DIR)
    parser.add_argument("--out", default="bench_table_age")
    parser.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](*args.child[1:]), default=str), flush=True)
        return 0
    try:
        ages = [int(d) for d in args.days.split(",")]
    except ValueError:
        raise SystemExit(f"--days {args.days!r}: expected integers, for example 0,10,30") \
            from None
    work = args.work.resolve()
    day_file = generate(work / "gen_day", args.events, DAY, seed=0)
    warm_file = generate(work / "gen_warmup", args.warmup, WARMUP_DAY, seed=1)
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_table_age.py "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(), "day": DAY, "events": args.events,
        "warmup_events": args.warmup, "types_per_aged_day": TYPES, "runs": []}
    for age in ages:
        lake = work / f"lake_{age}"
        shutil.rmtree(lake, ignore_errors=True)
        for step, src in (("warmup", warm_file), ("ingest", day_file),
                          ("redeliver", day_file)):
            place(src, lake, KEYS[step])
        log = work / f"lake_{age}.log"
        run: dict[str, Any] = {"aged_days": age}
        run["warmup"] = timed_child(__file__, "step", ["warmup", str(lake)], log,
                                    quiet_max=args.quiet_max)["child"]
        run["age"] = timed_child(__file__, "age", [str(lake), str(age)], log,
                                 quiet_max=args.quiet_max)["child"]
        for step in ("ingest", "redeliver", "compact", "kpi"):
            timed = timed_child(__file__, "step", [step, str(lake)], log,
                                quiet_max=args.quiet_max)
            run[step] = {**(timed["child"] or {"failed": timed.get("output_tail")}),
                         "wall_s": timed["wall_s"],
                         "max_rss_mb": timed["max_rss_largest_process_mb"],
                         "others_cores_mean": timed["others_cores_mean"]}
            print(f"aged {age} days: {step} {run[step].get('step_s')} s, "
                  f"{run[step].get('table_loads')} table loads", flush=True)
        result["runs"].append(run)
        shutil.rmtree(lake, ignore_errors=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{args.out}.json"
    text = json.dumps(result, indent=2, default=str).replace(str(PROJECT_DIR) + "/", "")
    path.write_text(text + "\n")
    print(f"results: {path.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
