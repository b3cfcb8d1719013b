"""What validating the 2 M-event file costs in CPU, per line in Python and set-at-a-time.

The ingest target (issue 8: twice the reference's throughput) leaves, in a run of
``bench_events.py``, ``2 x budget_for_2x_s - write_floor.child.step_cpu_s`` CPU seconds on 2
cores for everything but writing the table's files, and only if that work overlaps the write
perfectly. This script measures, on the same generated file, how much of that the first
step alone takes:

1. ``engine_validate``: the engine's own ``validate_lines`` over every batch, in this one
   process (msgspec per line, then polars per batch): the per-line path the ingest runs, two
   of these at a time in its worker processes.
2. ``duckdb_checks``: DuckDB's JSON functions (yyjson, in C++, two threads, no Python per
   line) reading the file's lines and applying the required-field type checks only.
3. ``duckdb_extract``: the same, then extracting the columns the table needs (id, type,
   ``created_at``, attributes and meta as JSON text, the user id) into a DuckDB table.

The DuckDB cases are a lower bound, not an equivalent: lines that are not UTF-8 are skipped
(``ignore_errors``) instead of quarantined, a repeated key is not judged as msgspec judges
it, and ``json_extract`` re-serialises the attributes instead of keeping their text. They
show what a validator with no Python per line costs at the least, on this machine.

CPU seconds are this process's (DuckDB's threads included), from ``getrusage``; each case
runs ``--repeats`` times round robin and the median is reported with every run. Nothing
here asserts on time.

Usage::

    python benchmarks/bench_vector_validation.py --budget-from bench_events_s23 --out NAME
"""

# ruff: noqa: PLC0415  (the subjects are imported after the input check, on purpose)
import argparse
import json
import resource
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

from bench_events import RESULTS_DIR, generate_input
from reference.common import machine_info, portable, wait_quiet


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def engine_validate(path: Path) -> dict[str, Any]:
    """``validate_lines`` over every batch of the file, in this process."""
    from cryptodudez.lake import events

    started, cpu = time.perf_counter(), _cpu()
    valid = quarantined = 0
    with path.open("rb") as fh:
        for batch in events.iter_line_batches(fh):
            assert not isinstance(batch, str)
            checked = events.validate_lines(batch, source="bench")
            valid += checked.valid.height
            quarantined += checked.quarantine.height
    return {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": round(_cpu() - cpu, 2),
            "valid": valid, "quarantined": quarantined}


_LINES = ("SELECT column0 AS line FROM read_csv('{path}', columns={{'column0': 'VARCHAR'}}, "
          "delim='\x01', quote='', escape='', header=false, auto_detect=false, "
          "max_line_size=100000000, ignore_errors=true)")
_TYPES = ("json_type(j, ['$.data.id', '$.data.type', '$.data.attributes', "
          "'$.meta.created_at', '$.meta']) AS ty")
_PASSES = ("ty[1] = 'VARCHAR' AND ty[2] = 'VARCHAR' AND ty[3] = 'OBJECT' "
           "AND ty[4] IN ('UBIGINT', 'BIGINT') AND ty[5] = 'OBJECT'")


def duckdb_case(path: Path, *, extract: bool) -> dict[str, Any]:
    """DuckDB's JSON functions on two threads: the type checks, and optionally extraction."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    typed = (f"WITH l AS ({_LINES.format(path=path)}), "
             "j AS (SELECT CASE WHEN json_valid(line) THEN line::JSON END AS j FROM l), "
             f"t AS (SELECT j, {_TYPES} FROM j) ")
    started, cpu = time.perf_counter(), _cpu()
    if extract:
        con.execute(
            "CREATE TABLE valid AS " + typed
            + "SELECT json_extract_string(j, '$.data.id') AS id, "
            "json_extract_string(j, '$.data.type') AS event_type, "
            "json_extract(j, '$.meta.created_at')::BIGINT AS created_at, "
            "json_extract(j, '$.data.attributes')::VARCHAR AS attributes, "
            "json_extract(j, '$.meta')::VARCHAR AS meta, "
            "json_extract_string(j, '$.data.attributes.user_id') AS user_id "
            f"FROM t WHERE {_PASSES} "
            "AND regexp_full_match(json_extract_string(j, '$.data.type'), "
            "'[A-Za-z0-9_.-]{1,128}')")
        row = con.execute("SELECT count(*) FROM valid").fetchone()
    else:
        row = con.execute(
            typed + f"SELECT count(*) FILTER (WHERE {_PASSES} AND regexp_full_match("
            "json_extract_string(j, '$.data.type'), '[A-Za-z0-9_.-]{1,128}')) FROM t"
        ).fetchone()
    out = {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": round(_cpu() - cpu, 2),
           "valid": int(row[0]) if row else 0}
    con.close()
    return out


CASES = {
    "engine_validate": engine_validate,
    "duckdb_checks": lambda path: duckdb_case(path, extract=False),
    "duckdb_extract": lambda path: duckdb_case(path, extract=True),
}


def budget(name: str) -> dict[str, Any]:
    """The CPU seconds a ``bench_events.py`` result leaves for all but the file writes."""
    result = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    floor = result["throughput"]["write_floor"]
    half = float(floor["budget_for_2x_s"])
    write_cpu = float(floor["child"]["step_cpu_s"])
    return {"from": f"benchmarks/results/{name}.json",
            "reference_step_s": result["throughput"]["reference"]["child"]["step_s"],
            "budget_for_2x_s": half, "write_floor_step_s": floor["child"]["step_s"],
            "write_floor_step_cpu_s": write_cpu,
            # two cores for the budget's seconds, less what writing the files alone costs
            "cpu_left_for_the_rest_s": round(2 * half - write_cpu, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget-from", default="bench_events_s23",
                        help="a bench_events.py result in benchmarks/results/ (no .json)")
    parser.add_argument("--out", default="bench_vector_validation")
    args = parser.parse_args(argv)
    source = generate_input(args.events, 0)
    path = Path(source["path"])
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_vector_validation.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "input": {"events": source["events"], "mb": source["mb"], "path": str(path)},
        "budget": budget(args.budget_from),
        "quiet_before": wait_quiet(max_busy=0.3)}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CASES}
    for _ in range(args.repeats):
        for name, case in CASES.items():
            runs[name].append(case(path))
            print(name, runs[name][-1], flush=True)
    result["cases"] = {name: {"median_cpu_s": median(r["cpu_s"] for r in rs),
                              "median_wall_s": median(r["wall_s"] for r in rs), "runs": rs}
                       for name, rs in runs.items()}
    left = result["budget"]["cpu_left_for_the_rest_s"]
    result["share_of_what_is_left"] = {
        name: round(case["median_cpu_s"] / left, 2) for name, case in result["cases"].items()}
    result["machine_after"] = {"uptime": machine_info()["uptime"]}
    out = RESULTS_DIR / f"{args.out}.json"
    out.write_text(json.dumps(portable(result), indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
