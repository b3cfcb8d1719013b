"""Benchmarks of the lake ingest: the real stock archive and generated full-scale corpora.

Every measurement runs in its own subprocess (under ``/usr/bin/time -v`` when present, else
the child reports its own ``getrusage`` peak), so peak RSS is that run's alone. A watchdog in
the parent samples the child's RSS and kills it past ``--mem-limit-gb`` (or ``--timeout``),
recording the failure instead of taking the machine down. The machine may be shared: each run
first waits (``--quiet-wait``) for other processes to go quiet and records the cores others
used while it ran (``others_cores``). Kinds of measurement:

``dagster``
    The whole ``ingest_landed_file`` job through Dagster (``execute_in_process``) in a fresh
    temporary lake: landed zip -> validated Parquet, quarantine and catalogue (DuckDB).
``pure``
    ``cryptodudez.archives.iter_unpacked`` + ``ingest_members`` over every batch alone (no
    writes, no Dagster), so the orchestration and write overhead is visible.
``polars``
    The reference: a bare polars script that extracts the zip and, with one glob scan
    (``pl.scan_csv("<dir>/*/*.csv")``) over the extracted CSVs, writes one Parquet file.

Step times exclude interpreter start-up and imports (reported separately): ``step_wall_s``
is the wall-clock time of the measured step, ``step_cpu_s`` its process CPU time (user + sys,
all threads). Peak RSS is the whole subprocess's maximum. Nothing here asserts on time.

Usage::

    python benchmarks/bench_ingest.py                 # real archive + corpus x1 + corpus x2
    python benchmarks/bench_ingest.py --skip-corpus   # real archive only (about 2 minutes)
    python benchmarks/bench_ingest.py --skip-x2       # real archive + corpus x1

Results (``bench_ingest[_TAG].json`` with every run and field, and a markdown table) are
written to ``benchmarks/results/`` (committed: the docs cite them); the generated corpora,
large and reproducible, stay in ``benchmarks/out/`` (git-ignored).
"""

# ruff: noqa: PLC0415  (workers import their subject inside the timed window, on purpose)
import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from reference.common import portable

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
RESULTS_DIR = BENCH_DIR / "results"
REAL_ARCHIVE = (Path(__file__).resolve().parents[2] / "shared" / "data"
                / "stock-market-dataset" / "archive.zip")  # ../shared/data of the project
TIME_BIN = "/usr/bin/time"
RAW_KEY = "bench/archive.zip"

TARGETS = {
    "real_wall_s": 10.0,
    "real_rss_mb": 3 * 1024,
    "real_vs_polars": 3.0,
    "x1_wall_s": 60.0,
    "x1_rss_mb": 4 * 1024,
    "x2_vs_x1": 2.2,
}


# --------------------------------------------------------------------------------------------
# Workers (run in the measured subprocess)
# --------------------------------------------------------------------------------------------


def _cpu() -> float:
    return time.process_time()


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _worker_dagster(zip_path: Path, scratch: Path) -> dict[str, Any]:
    t = time.perf_counter()
    import dagster as dg
    import polars as pl

    from cryptodudez.definitions import build_definitions
    from cryptodudez.resources.lake import partition_key_for
    from cryptodudez.settings import Settings

    out: dict[str, Any] = {"import_s": time.perf_counter() - t}
    settings = Settings(lake=str(scratch / "lake"), dagster_home=str(scratch / "dh"))
    defs = build_definitions(settings)
    lake = (defs.resources or {})["lake"]
    t = time.perf_counter()
    lake.land(zip_path, RAW_KEY)
    out["land_s"] = time.perf_counter() - t
    with dg.instance_for_test() as inst:
        key = partition_key_for(RAW_KEY)
        inst.add_dynamic_partitions("landed_files", [key])
        job = defs.resolve_job_def("ingest_landed_file")
        out["rss_before_step_mb"] = _rss_mb()
        t, c = time.perf_counter(), _cpu()
        res = job.execute_in_process(
            partition_key=key, instance=inst, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        out["step_wall_s"], out["step_cpu_s"] = time.perf_counter() - t, _cpu() - c
        out["success"] = res.success
        stamps: dict[str, float] = {}
        for entry in inst.all_logs(res.run_id):
            if entry.dagster_event is not None:
                stamps.setdefault(entry.dagster_event.event_type_value, entry.timestamp)
        end = stamps.get("STEP_SUCCESS", stamps.get("STEP_FAILURE"))
        if "STEP_START" in stamps and end is not None:
            # The op's own time (user code and its events); the rest of step_wall_s is the
            # run around it (planning, run and step events, resource set-up, the in-process
            # executor).
            out["dagster_step_s"] = end - stamps["STEP_START"]
        checks = res.get_asset_check_evaluations()
        out["checks_failed"] = sorted(e.check_name for e in checks if not e.passed)
        out["checks_total"] = len(checks)
        if not res.success:
            failures = [e for e in res.all_events if e.is_failure]
            out["error"] = str(failures[0].event_specific_data)[:2000] if failures else "?"
    rows = {}
    for layer in ("validated", "quarantine"):
        for table_dir in sorted((scratch / "lake" / layer).glob("*")):
            n = pl.scan_parquet(str(table_dir / "*.parquet")).select(pl.len()).collect().item()
            rows[f"{layer}/{table_dir.name}"] = n
    out["rows"] = rows
    out["lake_mb"] = {
        p.name: round(sum(f.stat().st_size for f in [p, *p.rglob("*")] if f.is_file()) / 2**20, 1)
        for p in sorted((scratch / "lake").iterdir())
    }
    return out


def _worker_pure(zip_path: Path, scratch: Path) -> dict[str, Any]:
    del scratch
    t = time.perf_counter()
    from cryptodudez.archives import iter_unpacked
    from cryptodudez.datasets.specs import DATASETS
    from cryptodudez.ingest import ingest_members

    out: dict[str, Any] = {"import_s": time.perf_counter() - t}
    out["rss_before_step_mb"] = _rss_mb()
    rows: dict[str, int] = {}
    t, c = time.perf_counter(), _cpu()
    with zip_path.open("rb") as fh:
        for batch in iter_unpacked(f"file://{zip_path}", fh, DATASETS):
            result = ingest_members(batch, DATASETS)
            for layer, frames in (("validated", result.tables),
                                  ("quarantine", result.quarantine)):
                for k, v in frames.items():
                    rows[f"{layer}/{k}"] = rows.get(f"{layer}/{k}", 0) + v.height
    out["step_wall_s"], out["step_cpu_s"] = time.perf_counter() - t, _cpu() - c
    out["success"] = True
    out["rows"] = rows
    return out


def _worker_polars(zip_path: Path, scratch: Path) -> dict[str, Any]:
    t = time.perf_counter()
    import polars as pl

    out: dict[str, Any] = {"import_s": time.perf_counter() - t}
    csv_dir = scratch / "csv"
    t, c = time.perf_counter(), _cpu()
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(csv_dir)
    out["extract_s"] = time.perf_counter() - t
    out["rss_before_step_mb"] = _rss_mb()
    t2, c2 = time.perf_counter(), _cpu()
    # Volume holds integral floats ("1877.0") in some files: a bare scan that infers Int64
    # from the first file fails, so Volume is read as Float64.
    pl.scan_csv(
        str(csv_dir / "*" / "*.csv"), schema_overrides={"Volume": pl.Float64},
        include_file_paths="path",
    ).sink_parquet(scratch / "all.parquet")
    out["step_wall_s"], out["step_cpu_s"] = time.perf_counter() - t2, _cpu() - c2
    out["extract_and_step_wall_s"] = time.perf_counter() - t
    out["extract_and_step_cpu_s"] = _cpu() - c
    out["success"] = True
    out["rows"] = {"parquet": pl.scan_parquet(scratch / "all.parquet").select(pl.len())
                   .collect().item()}
    out["parquet_mb"] = round((scratch / "all.parquet").stat().st_size / 2**20, 1)
    return out


WORKERS = {"dagster": _worker_dagster, "pure": _worker_pure, "polars": _worker_polars}


def run_worker(kind: str, zip_path: Path, result_path: Path, scratch: Path) -> None:
    """Run one measurement in this process and write its JSON to ``result_path``.

    ``scratch`` is an empty folder the parent created and removes (even if this is killed).
    """
    out = WORKERS[kind](zip_path, scratch)
    out["self_maxrss_mb"] = _self_maxrss_mb()
    import cryptodudez  # after the measurement: which code was measured

    out["code_dir"] = str(Path(cryptodudez.__file__).resolve().parents[1])
    result_path.write_text(json.dumps(out))


def _self_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------
# Parent: subprocess, /usr/bin/time, watchdog
# --------------------------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def _tree_rss_mb(pid: int) -> float:
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1])
        except OSError:
            continue
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def _parse_time_v(text: str) -> dict[str, Any]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        fields[key] = value
    wall = fields.get("Elapsed (wall clock) time (h:mm:ss or m:ss)", "0:0")
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    out: dict[str, Any] = {
        "process_wall_s": secs,
        "process_user_s": float(fields.get("User time (seconds)", "nan")),
        "process_sys_s": float(fields.get("System time (seconds)", "nan")),
        "peak_rss_mb": int(fields.get("Maximum resident set size (kbytes)", "0")) / 1024,
        "exit_status": int(fields.get("Exit status", "-1")),
    }
    signalled = [line for line in text.splitlines() if "terminated by signal" in line]
    if signalled:
        out["signal"] = signalled[0].strip()
    return out


def _busy_s() -> float:
    """CPU seconds the whole machine has been busy (all processes, all cores)."""
    with open("/proc/stat") as fh:
        cpu = [int(v) for v in fh.readline().split()[1:]]
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)
    return (sum(cpu[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait_s: float, busy_cores: float = 0.3) -> float:
    """Wait (up to ``max_wait_s``) until other processes use under ``busy_cores`` cores.

    This machine is shared: other work on the same 2 cores slows a measurement down. Returns
    the cores busy in the last one-second sample before starting.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        b0 = _busy_s()
        time.sleep(1.0)
        busy = _busy_s() - b0
        if busy < busy_cores or time.monotonic() > deadline:
            return busy
        time.sleep(4.0)


def measure(kind: str, zip_path: Path, *, mem_limit_gb: float, timeout_s: float,
            quiet_wait_s: float = 0.0, code_dir: Path = PROJECT_DIR) -> dict:
    """One measurement of ``kind`` on ``zip_path`` in a fresh subprocess."""
    busy_before = wait_quiet(quiet_wait_s) if quiet_wait_s > 0 else None
    fd, result_name = tempfile.mkstemp(prefix="bench-result-", suffix=".json")
    os.close(fd)
    result_path = Path(result_name)
    fd, time_name = tempfile.mkstemp(prefix="bench-time-", suffix=".txt")
    os.close(fd)
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind,
           "--zip", str(zip_path), "--result", str(result_path), "--scratch", str(scratch)]
    use_time = os.access(TIME_BIN, os.X_OK)
    if use_time:
        cmd = [TIME_BIN, "-v", "-o", time_name, *cmd]
    env = {**os.environ, "PYTHONPATH": str(code_dir)}  # ahead of the editable install
    t0, busy0 = time.perf_counter(), _busy_s()
    proc = subprocess.Popen(cmd, cwd=PROJECT_DIR, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampled_peak, killed = 0.0, None
    while proc.poll() is None:
        rss = _tree_rss_mb(proc.pid)
        sampled_peak = max(sampled_peak, rss)
        elapsed = time.perf_counter() - t0
        if rss > mem_limit_gb * 1024:
            killed = f"killed by the benchmark watchdog: RSS {rss / 1024:.1f} GB > limit " \
                     f"{mem_limit_gb:g} GB after {elapsed:.0f} s"
        elif elapsed > timeout_s:
            killed = f"killed by the benchmark watchdog: still running after {timeout_s:g} s"
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    machine_cpu = _busy_s() - busy0
    run: dict[str, Any] = {"kind": kind, "zip": str(zip_path), "sampled_peak_rss_mb": sampled_peak,
                           "busy_cores_before": busy_before}
    if use_time and Path(time_name).stat().st_size:
        run.update(_parse_time_v(Path(time_name).read_text()))
    else:
        run.update({"process_wall_s": wall, "exit_status": proc.returncode})
    if result_path.stat().st_size:
        run.update(json.loads(result_path.read_text()))
    else:
        run["success"] = False
    if not run.get("peak_rss_mb"):  # no /usr/bin/time report (absent, or killed with it)
        run["peak_rss_mb"] = run.get("self_maxrss_mb", sampled_peak)
    if killed:
        run["killed_after_s"] = round(wall, 1)
    if "process_user_s" in run and wall:  # unknown when the watchdog killed the run
        own_cpu = run["process_user_s"] + run["process_sys_s"]
        # CPU that other processes used on this shared machine while the run went on.
        run["others_cpu_s"] = round(max(machine_cpu - own_cpu, 0.0), 2)
        run["others_cores"] = round(run["others_cpu_s"] / wall, 2)
    if killed or proc.returncode:
        run["success"] = False
        run["error"] = killed or run.get("signal") or stderr.strip()[-2000:]
    if not run.get("success"):
        run.setdefault("error", stderr.strip()[-2000:])
    run["stderr_tail"] = stderr.strip()[-600:]
    del stdout
    result_path.unlink(missing_ok=True)
    Path(time_name).unlink(missing_ok=True)
    shutil.rmtree(scratch, ignore_errors=True)
    return run


NUMERIC = ("step_wall_s", "step_cpu_s", "process_wall_s", "process_user_s", "process_sys_s",
           "peak_rss_mb", "import_s", "unpack_s", "ingest_members_s", "extract_s",
           "extract_and_step_wall_s", "extract_and_step_cpu_s", "rss_before_step_mb",
           "others_cores", "dagster_step_s")


def repeated(kind: str, zip_path: Path, repeat: int, **limits: Any) -> dict[str, Any]:
    """``repeat`` measurements and the median of every numeric field."""
    runs = []
    for i in range(repeat):
        run = measure(kind, zip_path, **limits)
        status = "ok" if run.get("success") else f"FAILED: {run.get('error', '')[:200]}"
        print(f"  {kind:8s} #{i + 1}: step {run.get('step_wall_s', float('nan')):7.2f} s wall,"
              f" {run.get('step_cpu_s', float('nan')):7.2f} s cpu,"
              f" peak {run.get('peak_rss_mb', 0):8.0f} MB  {status}", flush=True)
        runs.append(run)
        if not run.get("success"):
            break
    ok = [r for r in runs if r.get("success")]
    keys = [k for k in NUMERIC if ok and all(k in r for r in ok)]
    median = {k: statistics.median(r[k] for r in ok) for k in keys}
    best = {k: min(r[k] for r in ok) for k in keys}
    return {"kind": kind, "zip": str(zip_path), "repeat": len(runs), "ok": len(ok) == len(runs),
            "median": median, "min": best, "runs": runs}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    def sh(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
        except OSError:
            return ""

    model = next((line.split(":", 1)[1].strip() for line in sh("lscpu").splitlines()
                  if line.startswith("Model name")), platform.processor())
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    import polars as pl

    git = sh("git", "-C", str(PROJECT_DIR), "rev-parse", "--short", "HEAD").strip()
    dirty = sh("git", "-C", str(PROJECT_DIR), "status", "--porcelain", "--", "cryptodudez")
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "mem_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(), "polars": pl.__version__,
        "platform": platform.platform(), "git": git + ("-dirty" if dirty.strip() else ""),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def _verdict(value: float | None, limit: float, failure: str | None = None) -> str:
    if failure:
        return f"MISSED: the run failed ({failure})"
    if value is None:
        return "not measured"
    if value <= limit:
        return "met"
    return f"MISSED ({value / limit:.2f}x the target)"


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios and target verdicts from the measurements."""
    def med(case: str, kind: str, key: str) -> float | None:
        entry = results["cases"].get(case, {}).get(kind)
        return entry["median"].get(key) if entry and entry["ok"] else None

    s: dict[str, Any] = {}
    s["real_wall_s"] = med("real", "dagster", "step_wall_s")
    s["real_cpu_s"] = med("real", "dagster", "step_cpu_s")
    s["real_rss_mb"] = med("real", "dagster", "peak_rss_mb")
    s["real_vs_polars"] = _ratio(s["real_wall_s"], med("real", "polars", "step_wall_s"))
    s["real_vs_polars_with_extract"] = _ratio(
        s["real_wall_s"], med("real", "polars", "extract_and_step_wall_s"))
    s["real_pure_vs_polars"] = _ratio(med("real", "pure", "step_wall_s"),
                                      med("real", "polars", "step_wall_s"))
    s["x1_wall_s"] = med("x1", "dagster", "step_wall_s")
    s["x1_rss_mb"] = med("x1", "dagster", "peak_rss_mb")
    s["x2_vs_x1"] = _ratio(med("x2", "dagster", "step_wall_s"), s["x1_wall_s"])
    s["x2_vs_x1_pure"] = _ratio(med("x2", "pure", "step_wall_s"), med("x1", "pure", "step_wall_s"))
    s["x2_vs_x1_polars"] = _ratio(med("x2", "polars", "step_wall_s"),
                                  med("x1", "polars", "step_wall_s"))
    def failure(*cases: str) -> str | None:
        for case in cases:
            entry = results["cases"].get(case, {}).get("dagster")
            if entry and not entry["ok"]:
                return f"{case}: " + str(entry["runs"][-1].get("error", "?"))[:120]
        return None

    fails = {"real_wall_s": failure("real"), "real_rss_mb": failure("real"),
             "real_vs_polars": failure("real"), "x1_wall_s": failure("x1"),
             "x1_rss_mb": failure("x1"), "x2_vs_x1": failure("x1", "x2")}
    s["verdicts"] = {k: _verdict(s.get(k), v, fails[k]) for k, v in TARGETS.items()}
    return s


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown tables."""
    m = results["machine"]
    lines = [
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_gb']} GB RAM, "
        f"Python {m['python']}, polars {m['polars']}, code {m['git']}.",
        "",
        "| case | kind | runs | step wall s | step CPU s | process wall s | import s "
        "| peak RSS MB | others' load (cores) | rows | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, kinds in results["cases"].items():
        for kind, entry in kinds.items():
            if kind == "corpus":
                continue
            med = entry["median"]
            last = entry["runs"][-1]
            rows = last.get("rows", {})
            main_rows = rows.get("validated/stock_prices", rows.get("parquet"))
            status = "ok" if entry["ok"] else "FAILED: " + str(last.get("error", ""))[:160]
            status = status.replace("|", "/").replace("\n", " ")
            others = max((r["others_cores"] for r in entry["runs"] if "others_cores" in r),
                         default=None)
            if entry["ok"] and last.get("checks_failed"):
                status += " (failed checks: " + ", ".join(last["checks_failed"]) + ")"
            lines.append(
                f"| {case} | {kind} | {entry['repeat']} | {_fmt(med.get('step_wall_s'))} "
                f"| {_fmt(med.get('step_cpu_s'))} | {_fmt(med.get('process_wall_s'))} "
                f"| {_fmt(med.get('import_s'))} | {_fmt(med.get('peak_rss_mb'), '.0f')} "
                f"| {_fmt(others)} "
                f"| {_fmt(main_rows, ',') if main_rows is not None else 'n/a'} | {status} |"
            )
    corpora = [(c, k["corpus"]) for c, k in results["cases"].items() if "corpus" in k]
    if corpora:
        lines += ["", "| corpus | price files | rows | CSV MB | zip MB | generated in s |",
                  "|---|---|---|---|---|---|"]
        for case, c in corpora:
            lines.append(f"| {case} | {c['price_files']:,} | {c['rows']:,} "
                         f"| {c['csv_bytes'] / 2**20:,.0f} | {c['zip_bytes'] / 2**20:,.0f} "
                         f"| {c.get('seconds', 'reused')} |")
    lines += _scaling(results)
    s = results["summary"]
    v = s["verdicts"]
    lines += [
        "", "| target | limit | measured | verdict |", "|---|---|---|---|",
        f"| real archive, Dagster step wall | <= 10 s | {_fmt(s['real_wall_s'])} s "
        f"(CPU {_fmt(s['real_cpu_s'])} s) | {v['real_wall_s']} |",
        f"| real archive, peak RSS | < 3 GB | {_fmt(s['real_rss_mb'], '.0f')} MB "
        f"| {v['real_rss_mb']} |",
        f"| real archive, Dagster / bare polars (scan+write) | <= 3x "
        f"| {_fmt(s['real_vs_polars'])}x (incl. extraction: "
        f"{_fmt(s['real_vs_polars_with_extract'])}x; pure ingest: "
        f"{_fmt(s['real_pure_vs_polars'])}x) | {v['real_vs_polars']} |",
        f"| corpus x1, Dagster step wall | <= 60 s | {_fmt(s['x1_wall_s'])} s "
        f"| {v['x1_wall_s']} |",
        f"| corpus x1, peak RSS | < 4 GB | {_fmt(s['x1_rss_mb'], '.0f')} MB "
        f"| {v['x1_rss_mb']} |",
        f"| corpus x2 / x1 time | <= 2.2x | {_fmt(s['x2_vs_x1'])}x (pure: "
        f"{_fmt(s['x2_vs_x1_pure'])}x, polars: {_fmt(s['x2_vs_x1_polars'])}x) "
        f"| {v['x2_vs_x1']} |",
    ]
    return "\n".join(lines) + "\n"


def _scaling(results: dict[str, Any]) -> list[str]:
    """Time and memory per million rows across the cases (linear growth keeps them flat)."""
    out = ["", "| case | kind | M rows | step wall s | s per M rows | peak RSS MB "
           "| RSS MB per M rows |", "|---|---|---|---|---|---|---|"]
    for case, kinds in results["cases"].items():
        for kind, entry in kinds.items():
            if kind == "corpus" or not entry["ok"]:
                continue
            rows = entry["runs"][-1].get("rows", {})
            n = rows.get("validated/stock_prices", rows.get("parquet"))
            if not n:
                continue
            med, m = entry["median"], n / 1e6
            out.append(f"| {case} | {kind} | {m:.2f} | {_fmt(med.get('step_wall_s'))} "
                       f"| {_fmt(med['step_wall_s'] / m)} | {_fmt(med['peak_rss_mb'], '.0f')} "
                       f"| {_fmt(med['peak_rss_mb'] / m, '.0f')} |")
    return out


def _corpus(scale: float, out_dir: Path, regenerate: bool) -> dict[str, Any]:
    path = out_dir / f"corpus_x{scale:g}.zip"
    info_path = path.with_suffix(".json")
    if path.exists() and info_path.exists() and not regenerate:
        info = json.loads(info_path.read_text())
        info["seconds"] = f"reused ({info['seconds']})"
        return info
    print(f"generating corpus x{scale:g} -> {path}", flush=True)
    cmd = [sys.executable, str(BENCH_DIR / "generate_corpus.py"), "--scale", str(scale),
           "--out", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=PROJECT_DIR)
    info = json.loads(done.stdout)
    info_path.write_text(json.dumps(info, indent=2))
    return info


def run_all(args: argparse.Namespace, kinds: list[str], code_dir: Path,
            code: str | None) -> None:
    """Every measurement the command line asked for; writes and prints the report."""
    limits = {"mem_limit_gb": args.mem_limit_gb, "timeout_s": args.timeout,
              "quiet_wait_s": args.quiet_wait, "code_dir": code_dir}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    if code:
        machine["git"] = f"{code} (exported)"
    results: dict[str, Any] = {"machine": machine, "targets": TARGETS, "cases": {},
                               "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if not args.skip_real:
        print(f"real archive {args.archive}", flush=True)
        results["cases"]["real"] = {k: repeated(k, args.archive, args.repeat, **limits)
                                    for k in kinds}
    sweep = [float(x) for x in args.sweep.split(",") if x.strip()]
    scales = [] if args.skip_corpus else [*sweep, *([1.0] if args.skip_x2 else [1.0, 2.0])]
    for scale in scales:
        case = f"x{scale:g}"
        info = _corpus(scale, args.out_dir, args.regenerate)
        print(f"corpus {case}: {info['rows']:,} rows in {info['price_files']:,} files", flush=True)
        results["cases"][case] = {"corpus": info}
        for kind in kinds:
            results["cases"][case][kind] = repeated(
                kind, Path(info["path"]), args.corpus_repeat if scale >= 1 else 1, **limits
            )
    results["summary"] = summarise(results)
    suffix = f"_{args.tag}" if args.tag else ""
    args.results_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.results_dir / f"bench_ingest{suffix}.json"
    md_path = args.results_dir / f"bench_ingest{suffix}.md"
    json_path.write_text(json.dumps(portable(results), indent=2, default=str))
    text = markdown(results)
    md_path.write_text(text)
    print()
    print(text)
    print(f"written {json_path} and {md_path}")


def main(argv: list[str] | None = None) -> None:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--zip", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--archive", type=Path, default=REAL_ARCHIVE)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each real-archive case")
    parser.add_argument("--corpus-repeat", type=int, default=1, help="runs of each corpus case")
    parser.add_argument("--skip-corpus", action="store_true", help="real archive only")
    parser.add_argument("--skip-x2", action="store_true", help="no 2x corpus")
    parser.add_argument("--skip-real", action="store_true", help="corpora only")
    parser.add_argument("--sweep", default="0.1,0.25,0.5",
                        help="smaller corpus scales measured once each, to show how time and "
                             "memory grow ('' for none)")
    parser.add_argument("--kinds", default="dagster,pure,polars",
                        help="comma-separated subset of dagster,pure,polars")
    parser.add_argument("--regenerate", action="store_true", help="rebuild cached corpora")
    parser.add_argument("--mem-limit-gb", type=float, default=16.0,
                        help="watchdog: kill a run whose RSS passes this")
    parser.add_argument("--timeout", type=float, default=1800.0, help="watchdog: seconds")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="seconds to wait, before each run, for other processes to go "
                             "quiet (0: do not wait)")
    parser.add_argument("--code-rev", default=None,
                        help="benchmark this git revision (exported to a temporary folder) "
                             "instead of the working tree, e.g. HEAD or a commit")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR,
                        help="generated corpora (large, git-ignored)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="result JSON and markdown (small, committed)")
    parser.add_argument("--tag", default="", help="suffix of the result file names")
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args.worker, args.zip, args.result, args.scratch)
        return

    kinds = [k for k in args.kinds.split(",") if k]
    code_dir, code = PROJECT_DIR, None
    if args.code_rev:
        code_dir = Path(tempfile.mkdtemp(prefix="bench-code-"))
        commit = subprocess.run(["git", "-C", str(PROJECT_DIR), "rev-parse", "--short",
                                 args.code_rev], capture_output=True, text=True, check=True)
        code = commit.stdout.strip()
        archive = subprocess.run(["git", "-C", str(PROJECT_DIR), "archive", code],
                                 capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(code_dir)], input=archive.stdout, check=True)
    try:
        run_all(args, kinds, code_dir, code)
    finally:
        if args.code_rev:
            shutil.rmtree(code_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
