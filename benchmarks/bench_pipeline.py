"""The stock pipeline at full scale: `cryptodudez ingest` of a landed corpus, and the model alone.

Two measurements on one temporary lake (``--work``), each in its own process under
``/usr/bin/time -v`` while this script samples the RSS of the whole process tree every
0.2 s from ``/proc``:

``ingest``
    ``cryptodudez land <zip> --prefix stocks`` (not timed), then ``cryptodudez ingest`` with
    a fresh ``DAGSTER_HOME`` (``--no-summary``: ``cryptodudez.commands.ingest()`` alone, without
    the table summary the command prints after it): from the landed zip to the served model
    (ingest job, stock features of every year, volume model and its evaluation, ``LATEST``
    written). Wall time,
    peak RSS (``time -v``'s maximum resident set of the largest process, and the sampled
    tree sum), the CLI's own stage times, and the step durations Dagster recorded.
``model`` (``--model-runs``, default 1)
    The ``volume_model`` asset alone (``dg.materialize``, ephemeral instance) on the
    features that ingest wrote: the same code path as in the pipeline. Step time excludes
    interpreter start-up and imports; peak RSS is the whole process's.

Before each measurement the script waits for other processes to go quiet (``wait_quiet``)
and records what it saw; it also records the cores other processes used while it ran.
Nothing here asserts on time. Results: ``benchmarks/results/<--out>.json`` (small, committed
when the docs cite it). Usage::

    python benchmarks/generate_corpus.py --scale 1 --out benchmarks/out/corpus_x1.zip
    python benchmarks/bench_pipeline.py --zip benchmarks/out/corpus_x1.zip
"""

# ruff: noqa: PLC0415
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from reference.common import cores_between, cpu_counters, machine_info, portable, wait_quiet

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
CLI = str(PROJECT_DIR / ".venv" / "bin" / "cryptodudez")
TIME_BIN = "/usr/bin/time"
TARGETS = {"ingest_s": 150.0, "ingest_rss_gb": 4.0, "model_s": 60.0, "model_rss_gb": 3.0}


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def _tree_rss_mb(pid: int) -> float:
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
        except OSError:
            continue
        todo += _children(p)
    return total


class _Sampler(threading.Thread):
    """Peak RSS of a process tree and the cores other processes used meanwhile."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_mb = 0.0
        self.others: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        ticks = 0
        while not self.stop.is_set():
            self.peak_mb = max(self.peak_mb, _tree_rss_mb(self.pid))
            ticks += 1
            if ticks % 25 == 0:  # every ~5 s: cores busy machine-wide minus our tree's
                self.others.append(_others_cores(self.pid))
            self.stop.wait(0.2)


def _tree_ticks(pid: int) -> dict[int, int]:
    """CPU clock ticks (user + system) used so far by each process of ``pid``'s tree."""
    ticks, todo = {}, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks[p] = int(fields[11]) + int(fields[12])
        except OSError:
            continue
        todo += _children(p)
    return ticks


def _others_cores(pid: int, seconds: float = 0.5) -> float:
    """Cores used by processes outside ``pid``'s tree over the next ``seconds``.

    The machine's counters and the tree's ticks are read over the same window, and the tree's
    use is summed per process: a process that exits during the window drops out of both
    readings instead of subtracting its whole lifetime (which once gave 396.9 cores).
    """
    before, counters = _tree_ticks(pid), cpu_counters()
    time.sleep(seconds)
    after, machine = _tree_ticks(pid), cores_between(counters, cpu_counters())
    tree = sum(t - before.get(p, 0) for p, t in after.items())
    tree_cores = tree / os.sysconf("SC_CLK_TCK") / seconds
    return min(max(machine - tree_cores, 0.0), float(os.cpu_count() or 1))


def timed(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``cmd`` under ``/usr/bin/time -v``; wall time, peaks and its output."""
    full = [TIME_BIN, "-v", *cmd] if Path(TIME_BIN).exists() else cmd
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(full, env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=PROJECT_DIR)
        sampler = _Sampler(proc.pid)
        sampler.start()
        code = proc.wait()
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    text = log.read_text()
    max_rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    cpu = [float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text)]
    others = sampler.others
    return {
        "cmd": " ".join(cmd), "returncode": code, "wall_s": round(wall, 1),
        "max_rss_largest_process_mb": round(int(max_rss.group(1)) / 1024) if max_rss else None,
        "peak_rss_tree_sampled_mb": round(sampler.peak_mb),
        "cpu_s": round(sum(cpu), 1) if cpu else None,
        "others_cores_mean": round(sum(others) / len(others), 2) if others else None,
        "others_cores_max": round(max(others), 2) if others else None,
        "output_tail": text[-4000:],
    }


def timed_child(script: str, kind: str, args: list[str], log: Path, *, quiet_max: float,
                quiet_wait: float = 120.0, timeout_s: float | None = None) -> dict[str, Any]:
    """``python script --child kind args`` under :func:`timed`, after waiting for quiet.

    The child prints its result as a JSON line; it is returned as ``child`` (with the
    output's tail when the child failed) next to the load seen before the start.
    """
    load = wait_quiet(max_busy=quiet_max, max_wait=quiet_wait)
    cmd = [sys.executable, script, "--child", kind, *args]
    if timeout_s:
        cmd = ["timeout", "--kill-after=30", str(int(timeout_s)), *cmd]
    run = timed(cmd, dict(os.environ), log)
    tail = run.pop("output_tail")
    lines = [ln for ln in tail.splitlines() if ln.startswith("{")]
    run["child"] = json.loads(lines[-1]) if lines else None
    if run["returncode"] != 0 or run["child"] is None:
        run["output_tail"] = tail[-3000:]
    run["load"] = load
    return run


def step_durations(dagster_home: str) -> dict[str, Any]:
    """Seconds per step of every run the instance recorded, from Dagster's own events."""
    code = f"""
import json, dagster as dg
inst = dg.DagsterInstance.from_config({dagster_home!r})
out = {{}}
for run in inst.get_runs():
    steps = {{}}
    for rec in inst.get_records_for_run(run.run_id).records:
        e = rec.event_log_entry
        if e.dagster_event is None or e.step_key is None:
            continue
        kind = e.dagster_event.event_type_value
        if kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            steps.setdefault(e.step_key, {{}})[kind] = e.timestamp
    out[run.job_name + ":" + run.run_id[:8]] = {{
        k: round(v.get("STEP_SUCCESS", v.get("STEP_FAILURE", 0)) - v.get("STEP_START", 0), 1)
        for k, v in steps.items()}}
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=PROJECT_DIR)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-2000:]}


def model_child(lake: str) -> dict[str, Any]:
    """The volume_model asset alone (run in a child process)."""
    import dagster as dg

    from cryptodudez.assets.stocks import volume_model
    from cryptodudez.resources.lake import MODELS, Lake

    lk = Lake(uri=lake)
    started, cpu = time.perf_counter(), time.process_time()
    result = dg.materialize([volume_model], resources={"lake": lk},
                            instance=dg.DagsterInstance.ephemeral())
    step_s, step_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    version = lk.read_bytes(lk.path(MODELS, "volume_model", "LATEST")).decode().strip()
    metrics = json.loads(lk.read_bytes(lk.path(MODELS, "volume_model", version,
                                               "metrics.json")))
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    return {"success": result.success, "step_s": round(step_s, 1),
            "step_cpu_s": round(step_cpu_s, 1), "checks": checks,
            **{k: metrics[k] for k in ("rows", "rows_read", "train_seconds",
                                        "evaluate_seconds", "shrinkage", "evaluation")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zip", type=Path, default=BENCH_DIR / "out" / "corpus_x1.zip")
    parser.add_argument("--work", type=Path, default=None, help="temporary lake folder")
    parser.add_argument("--keep", action="store_true", help="keep the lake afterwards")
    parser.add_argument("--skip-ingest", action="store_true",
                        help="reuse the lake in --work (model runs only)")
    parser.add_argument("--model-runs", type=int, default=1)
    parser.add_argument("--no-summary", action="store_true",
                        help="run commands.ingest() without the summary that "
                             "`cryptodudez ingest` prints")
    parser.add_argument("--quiet-max", type=float, default=0.5)
    parser.add_argument("--out", default="bench_pipeline_x1")
    parser.add_argument("--child-model", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.zip = args.zip.resolve()
    if args.child_model:
        print(json.dumps(model_child(args.child_model), default=float))
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_pipeline_", dir="/tmp"))
    lake, home = str(work / "lake"), str(work / "dagster")
    env = {**os.environ, "CRYPTODUDEZ_LAKE": lake, "DAGSTER_HOME": home}
    result: dict[str, Any] = {"machine": machine_info(), "targets": TARGETS,
                              "zip": str(args.zip), "zip_mb": round(args.zip.stat().st_size / 1e6),
                              "work": str(work)}
    if not args.skip_ingest:
        shutil.rmtree(work / "lake", ignore_errors=True)
        shutil.rmtree(work / "dagster", ignore_errors=True)
        Path(home).mkdir(parents=True)
        subprocess.run([CLI, "land", str(args.zip), "--prefix", "stocks"], env=env, check=True,
                       cwd=PROJECT_DIR, capture_output=True)
        result["ingest_load"] = wait_quiet(max_busy=args.quiet_max)
        cmd = [CLI, "ingest"]
        if args.no_summary:  # what `cryptodudez ingest` runs, without its closing summary
            cmd = [sys.executable, "-c", "from cryptodudez.commands import ingest; "
                   "from cryptodudez.settings import Settings; "
                   "print(ingest(settings=Settings.from_env()))"]
        result["ingest"] = timed(cmd, env, work / "ingest.log")
        result["ingest"]["steps_s"] = step_durations(home)
        print(json.dumps({k: v for k, v in result["ingest"].items() if k != "output_tail"}),
              flush=True)
    result["model"] = []
    for i in range(args.model_runs):
        load = wait_quiet(max_busy=args.quiet_max)
        run = timed([sys.executable, __file__, "--child-model", lake], env,
                    work / f"model_{i}.log")
        lines = [ln for ln in run.pop("output_tail").splitlines() if ln.startswith("{")]
        run["child"] = json.loads(lines[-1]) if lines else None
        run["load"] = load
        result["model"].append(run)
        print(json.dumps(run, default=float), flush=True)
    result["verdicts"] = _verdicts(result)
    print(json.dumps(result["verdicts"]))
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{args.out}.json"
    path.write_text(json.dumps(portable(result), indent=2, default=float))
    print(f"results: {path}")
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _verdicts(result: dict[str, Any]) -> dict[str, bool]:
    out = {}
    ingest = result.get("ingest")
    if ingest:
        out["ingest<=150s"] = ingest["returncode"] == 0 and ingest["wall_s"] <= TARGETS["ingest_s"]
        out["ingest_peak<4GB"] = (ingest["peak_rss_tree_sampled_mb"] < TARGETS["ingest_rss_gb"]
                                  * 1024)
    for i, run in enumerate(result.get("model", [])):
        child = run.get("child") or {}
        out[f"model[{i}]<=60s (step)"] = bool(child.get("success")) and \
            child.get("step_s", 1e9) <= TARGETS["model_s"]
        out[f"model[{i}]_peak<3GB"] = (run["max_rss_largest_process_mb"] or 1e9) < \
            TARGETS["model_rss_gb"] * 1024
    return out


if __name__ == "__main__":
    sys.exit(main())
