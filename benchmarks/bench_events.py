"""The event lake against the issue's targets: ingest throughput, peak memory, daily KPIs.

Generated events (``cryptodudez.lake.eventgen``, one UTC day, one file) in
``benchmarks/out/bench_events/`` (git-ignored; reused when present). Every measurement runs
in its own process, one after the other, under ``/usr/bin/time -v`` while the parent samples
the process tree's RSS (``bench_pipeline.timed``); before each one the script waits for other
processes to go quiet and records what it saw. Nothing here asserts on time.

1. **Throughput** on the ``--events`` file (default 2 M, about 440 MB):

   ``reference``
       ``benchmarks/event_reference.py``'s ``reference_ingest`` (orjson loop, exact rejects,
       pyarrow ``write_dataset`` sorted by type and hour). Step time inside the child.
   ``dagster``
       ``cryptodudez land <file> --prefix events`` (not timed), then ``cryptodudez ingest``
       with a fresh lake and ``DAGSTER_HOME``: landed file to published, deduplicated Delta
       table, quarantine and catalogue. Process wall time (interpreter, Dagster imports and
       the closing summary included), the CLI's own time for the file's run, and the
       ``events`` step time Dagster recorded.
   ``engine``
       ``ingest_event_file`` alone (no Dagster) on a fresh lake. Step time inside the child.
   ``write_floor``
       the engine's table writer alone, writing the engine's rows (from memory) as the same
       files on the same filesystem: ``budget_for_2x_s`` (half the reference's step) minus
       this is what the target would leave to read, validate, deduplicate and stage.

   Events/s = lines of the file / seconds; ratio = ours / reference (target: at least 2).
2. **Peak memory**: the engine's peak RSS on the ``--events`` file and, with ``--big``, on a
   single ``--events-big`` (20 M, about 4.4 GB) file: within 10 % of each other, under 1.5 GB.
3. **KPIs** over the compacted day of the largest engine lake: ``compact_day`` (timed, in its
   own process), then ``kpi.compute`` for source ``rollups`` and ``events``, the whole day
   (shard 0/1) against shards 0/2 and 1/2 run one after the other, each in a fresh process;
   time around ``compute`` only (imports reported apart), median of ``--kpi-runs``. Events/s
   = events of the day (counted from the compacted table) / seconds (target 3 M/s); shard
   cost = (0/2 + 1/2) / (0/1) (target at most 1.2).

Results: ``benchmarks/results/<--out>.json`` with project-relative paths. Usage::

    python benchmarks/bench_events.py                      # 2 M events (about 10 minutes)
    python benchmarks/bench_events.py --big                # + 20 M events (memory, KPIs)
    python benchmarks/bench_events.py --events 200000 --out bench_events_small
    python benchmarks/bench_events.py --kpi-lake <lake> --out bench_kpi   # step 3 only

``--kpi-lake`` runs step 3 alone on a lake already holding the day (for example one kept
with ``--keep --big``): its compaction is then a no-op when the day is compacted already.
"""

# ruff: noqa: PLC0415  (children import their subject inside the timed window, on purpose)
import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from statistics import median
from typing import Any

from bench_pipeline import step_durations, timed, timed_child
from reference.common import machine_info, wait_quiet

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
RESULTS_DIR = BENCH_DIR / "results"
CLI = str(PROJECT_DIR / ".venv" / "bin" / "cryptodudez")
DAY = "2026-11-01"
RAW_KEY = "events/events-0000.jsonl"
BYTES_PER_EVENT = 230  # generated JSON lines: about 440 MB per 2 M events
TARGETS = {"throughput_ratio_min": 2.0, "peak_rss_gb_max": 1.5, "peak_rss_spread_max": 0.10,
           "kpi_events_per_s_min": 3_000_000, "shard_cost_ratio_max": 1.2,
           "kpi_day_events": 20_000_000}
SHARDS = ((0, 1), (0, 2), (1, 2))


# -- children: each prints one JSON line -------------------------------------------------


def child_reference(raw: str, out_dir: str) -> dict[str, Any]:
    """``reference_ingest`` of one file (imports timed apart)."""
    started = time.perf_counter()
    from event_reference import reference_ingest
    import_s = time.perf_counter() - started
    cpu = time.process_time()
    counts = reference_ingest([Path(raw)], Path(out_dir))
    return {"import_s": round(import_s, 2), "step_s": round(counts.pop("seconds"), 2),
            "step_cpu_s": round(time.process_time() - cpu, 2), **counts}


def child_engine(lake: str, raw_key: str) -> dict[str, Any]:
    """``ingest_event_file`` of ``raw/<raw_key>`` into ``lake`` (imports timed apart)."""
    started = time.perf_counter()
    from cryptodudez.lake.event_ingest import ingest_event_file
    from cryptodudez.lake.layout import digest, partition_key_for
    from cryptodudez.storage import LakeStorage
    import_s = time.perf_counter() - started
    storage = LakeStorage(lake)
    key = partition_key_for(raw_key)
    started, cpu = time.perf_counter(), time.process_time()
    result = ingest_event_file(
        storage, storage.path("raw", raw_key), source=storage.url("raw", raw_key),
        partition_key=key, version_tag=digest(f"{key}@bench")[:16],
        landed_at=datetime.now(UTC), publish_lock=contextlib.nullcontext)
    return {"import_s": round(import_s, 2), "step_s": round(time.perf_counter() - started, 2),
            "step_cpu_s": round(time.process_time() - cpu, 2),
            **{k: getattr(result, k) for k in ("records", "valid", "quarantined", "duplicates",
                                               "added_rows", "staged_rows", "repeated_ids",
                                               "table_version", "reasons")},
            "dates": [d.isoformat() for d in result.dates]}


def child_write_floor(lake: str, scratch: str) -> dict[str, Any]:
    """The engine's table writer alone: the table's rows, from memory, into a fresh table root.

    The rows of every day of ``lake``'s table are read and sorted by partition first (not
    timed), then written by ``EventTable._write_partitioned`` (the writer the ingest's append
    uses, with its row groups) under ``scratch`` on the same filesystem: the same files the
    ingest wrote, and nothing else (no read, validation, deduplication, staging or commit).
    What is left of half the reference's time after this is what twice its throughput would
    leave for the rest of the ingest.
    """

    from cryptodudez.lake.event_table import INGEST_ROW_GROUP, EventTable
    from cryptodudez.storage import LakeStorage
    table = EventTable(LakeStorage(lake))
    days = sorted(set(table.files()["date"].to_list()))
    rows = table.scan_days(days).collect().sort("event_type", "date", "hour", "created_at")
    target = EventTable(LakeStorage(scratch))
    started, cpu = time.perf_counter(), time.process_time()
    added = target._write_partitioned(rows.lazy(), prefix="floor",
                                      row_group_size=INGEST_ROW_GROUP)
    return {"step_s": round(time.perf_counter() - started, 2),
            "step_cpu_s": round(time.process_time() - cpu, 2),
            "rows": rows.height, "files": len(added),
            "source_files": int(table.files().height)}


def child_compact(lake: str, day: str) -> dict[str, Any]:
    """``compact_day``; the day's events and files counted from the table afterwards."""
    started = time.perf_counter()
    import polars as pl

    from cryptodudez.lake.compaction import compact_day
    from cryptodudez.lake.event_table import EventTable
    from cryptodudez.storage import LakeStorage
    import_s = time.perf_counter() - started
    storage = LakeStorage(lake)
    started, cpu = time.perf_counter(), time.process_time()
    done = compact_day(storage, date.fromisoformat(day), publish_lock=contextlib.nullcontext)
    step_s, step_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    files = EventTable(storage).files()
    day_files = files.filter(pl.col("date") == date.fromisoformat(day))
    return {"import_s": round(import_s, 2), "step_s": round(step_s, 2),
            "step_cpu_s": round(step_cpu_s, 2), "rows_before": done.rows_before,
            "day_events": int(day_files["rows"].sum()), "day_files": day_files.height,
            "day_types": day_files["event_type"].n_unique(),
            "table_events": int(files["rows"].sum()), "vacuumed": done.vacuumed}


def child_kpi(lake: str, day: str, source: str, index: str, count: str) -> dict[str, Any]:
    """``kpi.compute`` of one shard of the day (imports timed apart)."""
    started = time.perf_counter()
    from cryptodudez.lake import kpi
    from cryptodudez.storage import LakeStorage
    import_s = time.perf_counter() - started
    storage = LakeStorage(lake)
    started, cpu = time.perf_counter(), time.process_time()
    result = kpi.compute(storage, date.fromisoformat(day), shard=kpi.Shard(int(index),
                                                                          int(count)),
                         source=source)
    return {"import_s": round(import_s, 3), "compute_s": round(time.perf_counter() - started, 3),
            "compute_cpu_s": round(time.process_time() - cpu, 3),
            "events": result["totals"]["events"], "event_types": result["totals"]["event_types"]}


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "reference": child_reference, "engine": child_engine, "write_floor": child_write_floor,
    "compact": child_compact, "kpi": child_kpi}


# -- parent ----------------------------------------------------------------------------------


def run_child(kind: str, args: list[str], log: Path, quiet_max: float,
              quiet_wait: float = 120.0) -> dict[str, Any]:
    """One child under ``time -v`` after waiting for quiet; its JSON line as ``child``."""
    return timed_child(__file__, kind, args, log, quiet_max=quiet_max, quiet_wait=quiet_wait)


def generate_input(events: int, seed: int) -> dict[str, Any]:
    """The generated file of ``events`` lines (reused when its truth matches)."""
    folder = OUT_DIR / "bench_events" / f"gen_{events}_s{seed}"
    truth_path = folder / "truth.json"
    seconds = None
    if not truth_path.exists():
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cryptodudez.lake.eventgen", str(folder),
                        "--events", str(events), "--days", DAY, "--files", "1",
                        "--seed", str(seed)], check=True, cwd=PROJECT_DIR)
        seconds = round(time.perf_counter() - started, 1)
    truth = json.loads(truth_path.read_text())
    assert truth["lines"] == events and truth["days"] == [DAY], truth_path
    path = folder / truth["files"][0]
    return {"path": path, "events": events, "mb": round(path.stat().st_size / 1e6),
            "generation_s": seconds, "reused": seconds is None,
            "truth": {k: truth[k] for k in ("lines", "valid_lines", "unique_valid_ids",
                                            "duplicate_lines", "malformed_lines",
                                            "late_events")}}


def check_disk(sizes: list[int], work: Path) -> dict[str, Any]:
    """Free space against a rough need: each input, a landed copy, the lakes, the reference."""
    work.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(work).free / 1e9
    need_gb = sum(n * BYTES_PER_EVENT * 2.5 for n in sizes) / 1e9 + 1
    if free_gb < need_gb:
        raise SystemExit(f"only {free_gb:.1f} GB free under {work.relative_to(PROJECT_DIR)}, "
                         f"need about {need_gb:.1f} GB")
    return {"free_gb": round(free_gb, 1), "need_gb_estimate": round(need_gb, 1)}


def wait_load(max_load: float, poll_s: float = 30.0, max_wait: float = 600.0) -> dict[str, Any]:
    """Wait (up to ``max_wait``) until the 1-minute load average is at most ``max_load``."""
    started = time.monotonic()
    seen = [round(os.getloadavg()[0], 2)]
    while seen[-1] > max_load and time.monotonic() - started < max_wait:
        time.sleep(poll_s)
        seen.append(round(os.getloadavg()[0], 2))
    return {"loadavg_1m_seen": seen, "waited_s": round(time.monotonic() - started),
            "max_load": max_load, "ok": seen[-1] <= max_load}


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def link_raw(src: Path, lake: Path) -> None:
    """Put the generated file at ``raw/<RAW_KEY>`` (a hard link; a copy across filesystems)."""
    dest = lake / "raw" / RAW_KEY
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def dagster_route(src: Path, run_dir: Path, quiet_max: float) -> dict[str, Any]:
    """``cryptodudez land`` (not timed) then ``cryptodudez ingest`` in a fresh lake."""
    lake, home = fresh(run_dir / "dagster_route") / "lake", run_dir / "dagster_route" / "dagster"
    home.mkdir()
    env = {**os.environ, "CRYPTODUDEZ_LAKE": str(lake), "DAGSTER_HOME": str(home)}
    subprocess.run([CLI, "land", str(src), "--prefix", "events"], env=env, check=True,
                   cwd=PROJECT_DIR, capture_output=True)
    load = wait_quiet(max_busy=quiet_max, max_wait=120.0)
    run = timed([CLI, "ingest"], env, run_dir / "dagster_route" / "ingest.log")
    tail = run.pop("output_tail")
    done = re.search(r"done in ([\d.]+) s", tail)
    table = re.search(r"^events\s+([\d,]+)\s+([\d,]+)\s", tail, re.MULTILINE)
    counts = re.search(r"^files: (\{.*\})$", tail, re.MULTILINE)
    run["cli_run_s"] = float(done.group(1)) if done else None
    run["table_rows"] = int(table.group(1).replace(",", "")) if table else None
    run["quarantined"] = int(table.group(2).replace(",", "")) if table else None
    run["cli_counts"] = counts.group(1) if counts else None
    run["steps_s"] = step_durations(str(home))
    if run["returncode"] != 0 or done is None:
        run["output_tail"] = tail[-3000:]
    run["load"] = load
    return run


def eps(events: int, seconds: float | None) -> float | None:
    return round(events / seconds) if seconds else None


def throughput(src: dict[str, Any], run_dir: Path, quiet_max: float) -> dict[str, Any]:
    """Reference, Dagster route and engine on the same file, one after the other."""
    path, lines, truth = src["path"], src["events"], src["truth"]
    ref_out = fresh(run_dir) / "reference_out"
    out: dict[str, Any] = {"events": lines, "input_mb": src["mb"]}
    ref = run_child("reference", [str(path), str(ref_out)], run_dir / "reference.log",
                    quiet_max)
    shutil.rmtree(ref_out, ignore_errors=True)
    child = ref["child"] or {}
    ref["matches_truth"] = (child.get("read") == truth["lines"]
                            and child.get("valid") == truth["unique_valid_ids"]
                            and child.get("rejected") == truth["malformed_lines"]
                            and child.get("duplicates") == truth["duplicate_lines"])
    out["reference"] = ref
    print(f"reference: {_brief(ref)}", flush=True)

    dag = dagster_route(path, run_dir, quiet_max)
    dag["matches_truth"] = (dag["table_rows"] == truth["unique_valid_ids"]
                            and dag["quarantined"] == truth["malformed_lines"])
    out["dagster"] = dag
    print(f"dagster route: {_brief(dag)} cli_run_s={dag['cli_run_s']}", flush=True)
    shutil.rmtree(run_dir / "dagster_route", ignore_errors=True)

    out["engine"] = engine(path, run_dir / "engine_small", truth, quiet_max)
    print(f"engine: {_brief(out['engine'])}", flush=True)

    ref_step, ref_wall = child.get("step_s"), ref["wall_s"]
    eng_step = (out["engine"]["child"] or {}).get("step_s")
    out["write_floor"] = write_floor(run_dir, ref_step, quiet_max)
    print(f"write floor: {_brief(out['write_floor'])} "
          f"budget_for_2x_s={out['write_floor']['budget_for_2x_s']}", flush=True)
    events_step = next((v.get("events") for v in dag["steps_s"].values()
                        if isinstance(v, dict) and "events" in v), None)
    out["events_per_s"] = {
        "reference_step": eps(lines, ref_step), "reference_process": eps(lines, ref_wall),
        "dagster_process": eps(lines, dag["wall_s"]), "dagster_cli_run": eps(lines,
                                                                             dag["cli_run_s"]),
        "dagster_events_step": eps(lines, events_step),
        "engine_step": eps(lines, eng_step), "engine_process": eps(lines,
                                                                   out["engine"]["wall_s"]),
    }
    e = out["events_per_s"]
    out["ratios"] = {  # ours / reference, like with like
        "dagster_process/reference_process": _ratio(e["dagster_process"], e["reference_process"]),
        "dagster_cli_run/reference_step": _ratio(e["dagster_cli_run"], e["reference_step"]),
        "engine_step/reference_step": _ratio(e["engine_step"], e["reference_step"]),
        "engine_process/reference_process": _ratio(e["engine_process"], e["reference_process"]),
    }
    return out


def engine(path: Path, lake_dir: Path, truth: dict[str, Any], quiet_max: float) -> dict[str, Any]:
    lake = fresh(lake_dir) / "lake"
    link_raw(path, lake)
    run = run_child("engine", [str(lake), RAW_KEY], lake_dir / "engine.log", quiet_max)
    child = run["child"] or {}
    run["matches_truth"] = (child.get("records") == truth["lines"]
                            and child.get("added_rows") == truth["unique_valid_ids"]
                            and child.get("quarantined") == truth["malformed_lines"]
                            and child.get("duplicates") == truth["duplicate_lines"]
                            and child.get("repeated_ids") == 0)
    return run


def write_floor(run_dir: Path, ref_step: float | None, quiet_max: float) -> dict[str, Any]:
    """``child_write_floor`` on the engine's lake; what it leaves of half the reference's step."""
    scratch = fresh(run_dir / "write_floor") / "lake"
    run = run_child("write_floor", [str(run_dir / "engine_small" / "lake"), str(scratch)],
                    run_dir / "write_floor.log", quiet_max)
    shutil.rmtree(run_dir / "write_floor", ignore_errors=True)
    floor = (run["child"] or {}).get("step_s")
    budget = round(ref_step / 2, 2) if ref_step else None
    run["budget_for_2x_s"] = budget
    run["left_for_the_rest_s"] = round(budget - floor, 2) if budget and floor else None
    return run


def kpis(lake: Path, runs: int, quiet_max: float) -> dict[str, Any]:
    """Compaction of the day, then every source x shard ``runs`` times in fresh processes."""
    out: dict[str, Any] = {"compaction": run_child("compact", [str(lake), DAY],
                                                   lake.parent / "compact.log", quiet_max)}
    print(f"compaction: {_brief(out['compaction'])}", flush=True)
    day_events = (out["compaction"]["child"] or {}).get("day_events")
    out["day_events"] = day_events
    for source in ("rollups", "events"):
        seen: dict[str, list[dict[str, Any]]] = {f"{i}/{n}": [] for i, n in SHARDS}
        for r in range(runs):
            for i, n in SHARDS:
                run = run_child("kpi", [str(lake), DAY, source, str(i), str(n)],
                                lake.parent / f"kpi_{source}_{i}_{n}_{r}.log", quiet_max,
                                quiet_wait=15.0)
                seen[f"{i}/{n}"].append(run)
        single = [(r["child"] or {}).get("compute_s", 0.0) for r in seen["0/1"]]
        halves = [(a["child"] or {}).get("compute_s", 0) + (b["child"] or {}).get("compute_s", 0)
                  for a, b in zip(seen["0/2"], seen["1/2"], strict=True)]
        events_ok = all((r["child"] or {}).get("events") == day_events for r in seen["0/1"]) \
            and all((a["child"] or {}).get("events", 0) + (b["child"] or {}).get("events", 0)
                    == day_events for a, b in zip(seen["0/2"], seen["1/2"], strict=True))
        med_single, med_halves = median(single), median(halves)
        out[source] = {
            "compute_s_single_runs": single, "compute_s_halves_sum_runs": halves,
            "compute_s_single": med_single, "compute_s_halves_sum": med_halves,
            "events_per_s": eps(day_events or 0, med_single),
            "shard_cost_ratio": round(med_halves / med_single, 3) if med_single else None,
            "import_s_median": median((r["child"] or {}).get("import_s", 0)
                                      for rs in seen.values() for r in rs),
            "peak_rss_mb_max": max(r["max_rss_largest_process_mb"] or 0
                                   for rs in seen.values() for r in rs),
            "events_match_day": events_ok,
            "runs": {k: [_slim(r) for r in v] for k, v in seen.items()},
        }
        print(f"kpi {source}: {med_single:.3f} s single, {med_halves:.3f} s halves, "
              f"{out[source]['events_per_s']:,} events/s, shard cost "
              f"{out[source]['shard_cost_ratio']}", flush=True)
    return out


def _slim(run: dict[str, Any]) -> dict[str, Any]:
    return {"wall_s": run["wall_s"], "max_rss_mb": run["max_rss_largest_process_mb"],
            "returncode": run["returncode"], **(run["child"] or {}),
            "others_cores_mean": run["others_cores_mean"],
            "busy_cores_before": run["load"]["busy_cores_before"]}


def _ratio(ours: float | None, ref: float | None) -> float | None:
    return round(ours / ref, 2) if ours and ref else None


def _brief(run: dict[str, Any]) -> str:
    child = run.get("child") or {}
    return (f"rc={run['returncode']} wall={run['wall_s']} s step={child.get('step_s')} s "
            f"peak={run['max_rss_largest_process_mb']} MB "
            f"matches_truth={run.get('matches_truth')}")


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ratios = result["throughput"]["ratios"]
    for name, value in ratios.items():
        out[f"throughput {name} >= 2x"] = value is not None and value >= 2.0
    small = result["memory"]["small"]["max_rss_largest_process_mb"]
    gb = TARGETS["peak_rss_gb_max"] * 1024
    out[f"engine peak {result['events']:,} < 1.5 GB"] = small is not None and small < gb
    big = result["memory"].get("big")
    if big:
        peak = big["max_rss_largest_process_mb"]
        out[f"engine peak {result['events_big']:,} < 1.5 GB"] = peak is not None and peak < gb
        out["engine peaks within 10 %"] = bool(peak and small) and \
            abs(peak - small) / min(peak, small) <= TARGETS["peak_rss_spread_max"]
    else:
        out["engine peaks within 10 %"] = "not measured (run with --big)"
    return out | kpi_verdicts(result["kpi"])


def kpi_verdicts(kpi: dict[str, Any]) -> dict[str, bool]:
    """Step 3's verdicts: events per second and shard cost, per source."""
    out = {}
    for source in ("rollups", "events"):
        got = kpi[source]
        out[f"kpi {source} >= 3 M events/s (day of {kpi['day_events']:,})"] = \
            (got["events_per_s"] or 0) >= TARGETS["kpi_events_per_s_min"]
        out[f"kpi {source} shard halves <= 1.2x"] = \
            (got["shard_cost_ratio"] or 1e9) <= TARGETS["shard_cost_ratio_max"]
    return out


def kpi_only(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Step 3 alone on ``--kpi-lake``; the same result keys as a full run's ``kpi``."""
    lake = args.kpi_lake.resolve()
    if not (lake / "validated" / "events" / "_delta_log").is_dir():
        raise SystemExit(f"--kpi-lake {args.kpi_lake}: no events table there")
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_events.py "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(), "targets": TARGETS, "day": DAY,
        "load_before": wait_load(args.max_load)}
    result["kpi"] = kpis(lake, args.kpi_runs, args.quiet_max)
    result["verdicts"] = kpi_verdicts(result["kpi"])
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{args.out}.json"
    path.write_text(relative(json.dumps(result, indent=2, default=str), lake.parent) + "\n")
    print(json.dumps(result["verdicts"], indent=1))
    print(f"results: {path.relative_to(PROJECT_DIR)}")
    return 0


def relative(text: str, work: Path) -> str:
    """No absolute path of this machine: the project root and the work folder made relative."""
    if not work.is_relative_to(PROJECT_DIR):
        text = text.replace(str(work), "<work>")
    return text.replace(str(PROJECT_DIR) + "/", "").replace(str(PROJECT_DIR), ".")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--big", action="store_true", help="also a single 20 M-event file")
    parser.add_argument("--events-big", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kpi-runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=OUT_DIR / "bench_events")
    parser.add_argument("--keep", action="store_true", help="keep the lakes afterwards")
    parser.add_argument("--max-load", type=float, default=1.5,
                        help="wait (up to 10 min) until the 1-minute load is at most this")
    parser.add_argument("--quiet-max", type=float, default=0.5)
    parser.add_argument("--out", default="bench_events")
    parser.add_argument("--kpi-lake", type=Path, default=None,
                        help="only the KPIs (step 3), on this existing lake")
    parser.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](*args.child[1:]), default=str), flush=True)
        return 0
    if args.kpi_lake:
        return kpi_only(args, argv)

    work = args.work.resolve()
    sizes = [args.events] + ([args.events_big] if args.big else [])
    result: dict[str, Any] = {
        "command": "python " + " ".join([relative(str(Path(sys.argv[0]).resolve()), work),
                                         *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(), "targets": TARGETS, "day": DAY, "seed": args.seed,
        "events": args.events, "events_big": args.events_big if args.big else None,
        "disk": check_disk(sizes, work),
    }
    inputs = [generate_input(n, args.seed) for n in sizes]
    result["inputs"] = [{k: v for k, v in i.items() if k != "path"} | {"path": str(i["path"])}
                        for i in inputs]
    print(f"inputs: {[(i['events'], i['mb'], i['generation_s']) for i in inputs]}", flush=True)
    result["load_before"] = wait_load(args.max_load)
    print(f"load before: {result['load_before']}", flush=True)
    run_dir = work / f"run_{args.events}"
    result["throughput"] = throughput(inputs[0], run_dir, args.quiet_max)
    result["memory"] = {"small": {  # the throughput's engine run
        k: result["throughput"]["engine"][k] for k in ("max_rss_largest_process_mb",
                                                       "peak_rss_tree_sampled_mb")}}
    kpi_lake = run_dir / "engine_small" / "lake"
    if args.big:
        result["load_before_big"] = wait_load(args.max_load)
        big_dir = work / f"run_{args.events_big}" / "engine_big"
        result["memory"]["big"] = engine(inputs[1]["path"], big_dir, inputs[1]["truth"],
                                         args.quiet_max)
        print(f"engine {args.events_big:,}: {_brief(result['memory']['big'])}", flush=True)
        kpi_lake = big_dir / "lake"
    result["kpi"] = kpis(kpi_lake, args.kpi_runs, args.quiet_max)
    result["verdicts"] = verdicts(result)
    result["load_after"] = {"loadavg_1m": round(os.getloadavg()[0], 2)}
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{args.out}.json"
    path.write_text(relative(json.dumps(result, indent=2, default=str), work) + "\n")
    print(json.dumps(result["throughput"]["events_per_s"]))
    print(json.dumps(result["throughput"]["ratios"]))
    print(json.dumps(result["verdicts"], indent=1))
    print(f"results: {path.relative_to(PROJECT_DIR)}")
    if not args.keep:
        for folder in {run_dir, work / f"run_{args.events_big}"}:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
