"""Fixed per-run cost of a Dagster run: SQLite instance (the default) vs Postgres.

The measured run is a one-asset job whose asset does nothing and returns a
``MaterializeResult``: everything it costs is Dagster's own bookkeeping (the run record, the
12 events a run writes, the materialization, the run's status changes). Each backend gets a
fresh instance; ``--warmup`` runs are discarded, then ``--runs`` runs of each are timed with
``execute_in_process`` (wall clock, in this process), the backends' runs interleaved so that
a shared machine's load weighs on both alike. Postgres is a private cluster on 127.0.0.1
(``cryptodudez.instance.private_postgres``) with ``fsync`` on, so both backends pay durable
commits. Before measuring, the script waits (bounded) for other processes to go quiet
(``wait_quiet``) and records the cores that others used.

Usage::

    .venv/bin/python benchmarks/bench_instance.py            # 30 runs per backend
    .venv/bin/python benchmarks/bench_instance.py --runs 50 --warmup 5

Writes ``benchmarks/results/bench_instance.json``.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from reference.common import busy_cores, machine_info, wait_quiet

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from cryptodudez.instance import private_postgres, write_instance_yaml  # noqa: E402

RESULT = BENCH_DIR / "results" / "bench_instance.json"


@dg.asset
def noop() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 0})


JOB = dg.Definitions(assets=[noop], jobs=[dg.define_asset_job("noop_job", [noop])]
                     ).resolve_job_def("noop_job")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@contextmanager
def instance(backend: str) -> Iterator[dg.DagsterInstance]:
    with tempfile.TemporaryDirectory(prefix="bench-instance-") as home:
        if backend == "sqlite":
            write_instance_yaml(Path(home), None)
            with dg.DagsterInstance.from_config(home) as inst:
                yield inst
        else:
            with private_postgres(fsync=True) as url:
                write_instance_yaml(Path(home), url)
                with dg.DagsterInstance.from_config(home) as inst:
                    yield inst


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(backend: str, times: list[float], events: int, warmup: int) -> dict[str, Any]:
    out = {
        "backend": backend, "runs": len(times), "warmup": warmup, "events_per_run": events,
        "median_s": round(statistics.median(times), 4), "p90_s": round(pct(times, 0.9), 4),
        "min_s": round(min(times), 4), "max_s": round(max(times), 4),
        "run_s": [round(t, 4) for t in times],
    }
    print(f"{backend:8s} median {out['median_s']:.3f} s  p90 {out['p90_s']:.3f} s  "
          f"({events} events/run)", flush=True)
    return out


def measure(runs: int, warmup: int, quiet_wait: float) -> dict[str, Any]:
    """Both backends, runs interleaved (sqlite, postgres, sqlite, ...) so that a shared
    machine's load weighs on both alike."""
    quiet = wait_quiet(max_wait=quiet_wait)
    times: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    events: dict[str, int] = {}
    with instance("sqlite") as sqlite, instance("postgres") as postgres:
        for i in range(warmup + runs):
            for backend, inst in (("sqlite", sqlite), ("postgres", postgres)):
                started = time.perf_counter()
                result = JOB.execute_in_process(instance=inst, run_config=QUIET)
                elapsed = time.perf_counter() - started
                assert result.success
                if i >= warmup:
                    times[backend].append(elapsed)
                events[backend] = len(inst.all_logs(result.run_id))
    after = busy_cores()
    print(f"others busy {quiet['busy_cores_before']} cores before, {after:.2f} after")
    return {"load_before": quiet, "busy_cores_after": round(after, 2),
            "backends": [summary(b, times[b], events[b], warmup) for b in times]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="seconds to wait at most for the machine to go quiet")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    results = {
        "what": "fixed per-run cost: one no-op asset, execute_in_process, fresh instance",
        "command": "python benchmarks/bench_instance.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "versions": {"dagster": dg.__version__},
        **measure(args.runs, args.warmup, args.quiet_wait),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
