"""Where the event engine's memory peaks: the ingesting process's RSS per step of one file.

Runs ``ingest_event_file`` on the generated file of ``--events`` lines (``bench_events.py``'s,
reused; made when missing) in a fresh lake under ``benchmarks/out/``, samples this process's
RSS every 0.2 s in a thread, and wraps the engine's steps (read-and-stage; the id buckets'
resolve; the commit, whose own share is reading each group of types; per group the id index
and the rollups; the rollup files; the Delta append; the quarantine; the repeat check) to
record the RSS at each step's end and the highest RSS seen while each step was the innermost
one running.
The worker processes are not included (they hold one batch each). Times are not the point
(the wrappers and the sampler cost little, but nothing here waits for a quiet machine).

Usage::

    python benchmarks/event_memory_phases.py --events 20000000 --out event_memory_20m
"""

import argparse
import contextlib
import json
import shutil
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_events import OUT_DIR, RESULTS_DIR, generate_input
from reference.common import machine_info, portable

from cryptodudez.lake import event_ingest
from cryptodudez.lake.event_table import EventTable
from cryptodudez.lake.id_buckets import IdBuckets
from cryptodudez.lake.layout import digest, partition_key_for
from cryptodudez.storage import LakeStorage

STEPS = ("_read_and_stage", "_commit", "write_index", "rollup_rows", "write_rollups",
         "_publish_quarantine", "_repeated")


def rss_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


class Recorder:
    """The highest RSS per step (sampled) and each step's RSS at its end."""

    def __init__(self) -> None:
        self.step = "start"
        self.peaks: dict[str, int] = {}
        self.ends: list[dict[str, Any]] = []
        self.started = time.monotonic()

    def sample(self) -> None:
        while True:
            rss = rss_mb()
            self.peaks[self.step] = max(self.peaks.get(self.step, 0), rss)
            time.sleep(0.2)

    def wrap(self, owner: Any, name: str) -> None:
        real: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            outer, self.step = self.step, name
            try:
                return real(*args, **kwargs)
            finally:
                self.ends.append({"step": name, "at_s": round(time.monotonic() - self.started, 1),
                                  "rss_end_mb": rss_mb()})
                self.step = outer

        setattr(owner, name, timed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--out", default="event_memory")
    args = parser.parse_args(argv)
    source = generate_input(args.events, 0)
    lake = OUT_DIR / "event_memory" / "lake"
    shutil.rmtree(lake.parent, ignore_errors=True)
    (lake / "raw" / "events").mkdir(parents=True)
    raw = lake / "raw" / "events" / "events-0000.jsonl"
    raw.hardlink_to(source["path"])
    recorder = Recorder()
    for name in STEPS:
        recorder.wrap(event_ingest, name)
    recorder.wrap(EventTable, "append")
    recorder.wrap(IdBuckets, "dropped_lines")
    threading.Thread(target=recorder.sample, daemon=True).start()
    storage = LakeStorage(str(lake))
    key = partition_key_for("events/events-0000.jsonl")
    result = event_ingest.ingest_event_file(
        storage, str(raw), source=storage.url("raw", "events/events-0000.jsonl"),
        partition_key=key, version_tag=digest(f"{key}@memory")[:16],
        landed_at=datetime.now(UTC), publish_lock=contextlib.nullcontext)
    time.sleep(0.3)
    out = {
        "command": "python benchmarks/event_memory_phases.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "input": {**{k: source[k] for k in ("events", "mb")}, "path": str(source["path"])},
        "added_rows": result.added_rows, "seconds": round(time.monotonic() - recorder.started, 1),
        "peak_mb_by_step": dict(sorted(recorder.peaks.items(), key=lambda kv: -kv[1])),
        "step_ends": recorder.ends,
    }
    shutil.rmtree(lake.parent, ignore_errors=True)
    path = RESULTS_DIR / f"{args.out}.json"
    path.write_text(json.dumps(portable(out), indent=1, default=str) + "\n")
    print(json.dumps(out["peak_mb_by_step"]))
    print(f"wrote {path.relative_to(RESULTS_DIR.parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
