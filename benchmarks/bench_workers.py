"""API workers: import time, start-up and memory, and a short bounded load test, on 127.0.0.1.

Measures the code first on ``PYTHONPATH``: this checkout, or ``--src DIR``, the source tree of
another revision, so two revisions compare on the same machine and lake (docs/serving.md):

- import: ``python -c "import serving.asgi"`` under ``/usr/bin/time``: wall time and peak
  RSS, median of ``--repeats``;
- server: ``cryptodudez serve --workers N`` (and ``python -m serving`` where the revision has
  it): seconds until ``/health`` answers, and each process's RSS after a 3 s warm-up;
- unless ``--no-wrk``: ``wrk`` at 10 and 64 connections on the ``cryptodudez serve`` server,
  ``--duration`` s per run, median of ``--repeats``, with bench_serving.py's query strings
  and its quiet-machine checks.

Usage::

    python benchmarks/bench_workers.py --lake /tmp/benchlake/lake3 --out bench_workers_after
    git archive <rev> cryptodudez serving | tar -x -C /tmp/before
    python benchmarks/bench_workers.py --lake /tmp/benchlake/lake3 --src /tmp/before \\
        --out bench_workers_before

Results: ``benchmarks/results/<--out>.json`` (small, committed: docs/serving.md cites them).
"""

import argparse
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_serving import VENV_BIN, Server, free_port, measure, run_wrk, save_result
from reference.common import PROJECT_DIR, lake_uri, machine_info, process_tree, rss_mb


def import_cost(env: dict[str, str], repeats: int) -> dict[str, Any]:
    """Wall seconds and peak RSS (MB) of importing the ASGI module, median of ``repeats``."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", sys.executable, "-c",
                               "import serving.asgi"], env=env, cwd="/tmp",
                              capture_output=True, text=True, check=True, timeout=120)
        _, wall, peak_kb = done.stderr.strip().splitlines()[-1].split()
        runs.append((float(wall), int(peak_kb) / 1024))
    return {"wall_s": statistics.median(w for w, _ in runs),
            "peak_rss_mb": round(statistics.median(m for _, m in runs), 1),
            "runs": [[w, round(m, 1)] for w, m in runs]}


class CommandServer(Server):
    """A :class:`bench_serving.Server` started with an explicit command line."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([*command, "--port", str(self.port)], env=env,
                                     cwd="/tmp", start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def processes(server: Server) -> list[dict[str, Any]]:
    """Each process of the server: pid, what it is, RSS in MB."""
    out = []
    for pid in process_tree(server.proc.pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        role = ("supervisor" if pid == server.proc.pid else
                "worker" if "spawn_main" in cmd else
                "resource_tracker" if "resource_tracker" in cmd else cmd[:60])
        out.append({"pid": pid, "role": role, "rss_mb": round(rss_mb([pid]), 1)})
    return out


def serve(name: str, command: list[str], env: dict[str, str], args: argparse.Namespace,
          *, load: bool) -> dict[str, Any]:
    """Start-up and memory of one server; with ``load``, the wrk runs too."""
    server = CommandServer(name, command, env)
    try:
        result: dict[str, Any] = {"command": " ".join(command),
                                  "startup_s": round(server.wait_ready("/health"), 2)}
        run_wrk(server.base, args.paths, connections=10, seconds=3)  # warm-up
        result["processes"] = processes(server)
        workers = [p["rss_mb"] for p in result["processes"] if p["role"] == "worker"]
        result["worker_rss_mb"] = workers
        result["total_rss_mb"] = round(sum(p["rss_mb"] for p in result["processes"]), 1)
        print(f"{name}: ready in {result['startup_s']} s, workers {workers} MB, "
              f"total {result['total_rss_mb']} MB", flush=True)
        if load:
            result["runs"] = {
                f"c{c}": {k: v for k, v in measure(
                    server, args.paths, connections=c, seconds=args.duration,
                    quiet_max=args.quiet_max, repeats=args.repeats).items()
                    if k in ("rps", "latency_us", "rps_range", "p99_us_range",
                             "errors_all_runs", "all_runs")}
                for c in (10, 64)}
        return result
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lake", default=None)
    parser.add_argument("--src", type=Path, default=PROJECT_DIR,
                        help="source tree to measure (default: this checkout)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--quiet-max", type=float, default=0.5)
    parser.add_argument("--paths", type=Path,
                        default=Path("/tmp/benchlake/bench_serving/paths_int.txt"),
                        help="query strings (made by bench_serving.py)")
    parser.add_argument("--no-wrk", action="store_true")
    parser.add_argument("--out", default="bench_workers",
                        help="result name: benchmarks/results/<out>.json")
    args = parser.parse_args(argv)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": str(args.src.resolve()),
           "CRYPTODUDEZ_LAKE": lake_uri(args.lake)}
    result: dict[str, Any] = {"machine": machine_info(), "src": str(args.src),
                              "lake": env["CRYPTODUDEZ_LAKE"], "workers": args.workers}
    result["import"] = import_cost(env, args.repeats)
    print(f"import serving.asgi: {result['import']}", flush=True)
    options = ["--host", "127.0.0.1", "--workers", str(args.workers)]
    result["cryptodudez_serve"] = serve("cryptodudez serve",
                                        [str(VENV_BIN / "cryptodudez"), "serve", *options],
                                        env, args, load=not args.no_wrk)
    if (args.src / "serving" / "__main__.py").exists():
        result["python_m_serving"] = serve("python -m serving",
                                           [sys.executable, "-m", "serving", *options],
                                           env, args, load=False)
    print(f"results: {save_result(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
