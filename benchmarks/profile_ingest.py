"""Where time and memory go inside the ingest, on the real stock archive.

Three views, each in its own subprocess (so one does not disturb the next):

``cprofile``
    cProfile of ``unpack`` + ``ingest_members``, sorted by cumulative and by own time.
``lines``
    Line-level inclusive wall time and peak RSS of the ingest's main functions (a
    ``sys.settrace`` tracer on just those functions; RSS sampled every 5 ms by a separate
    process, so the peak inside one polars call is seen even while it holds the GIL).
``dagster``
    The same line view plus cProfile of the whole Dagster job (``lake_ingest`` and the write,
    merge and check helpers it calls), to see what the job adds around ``ingest_members``.

Usage::

    python benchmarks/profile_ingest.py            # all three, reports in benchmarks/out/
    python benchmarks/profile_ingest.py --only lines
"""

# ruff: noqa: PLC0415  (the subject is imported inside each subprocess view, on purpose)
import argparse
import bisect
import cProfile
import io
import linecache
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
REAL_ARCHIVE = (Path(__file__).resolve().parents[2] / "shared" / "data"
                / "stock-market-dataset" / "archive.zip")  # ../shared/data of the project

# Functions whose lines are timed: (module file suffix, function name).
TRACED = {
    ("cryptodudez/ingest.py", "ingest_members"),
    ("cryptodudez/ingest.py", "_ingest_spec"),
    ("cryptodudez/ingest.py", "_ingest_typed"),
    ("cryptodudez/ingest.py", "_typed_rows"),
    ("cryptodudez/ingest.py", "_ingest_exact"),
    ("cryptodudez/ingest.py", "_frame"),
    ("cryptodudez/ingest.py", "_frame_fast"),
    ("cryptodudez/ingest.py", "infer_types"),
    ("cryptodudez/ingest.py", "_schema_failures"),
    ("cryptodudez/ingest.py", "_duplicates_within_file"),
    ("cryptodudez/datasets/specs.py", "assemble_stock_prices"),
    ("cryptodudez/datasets/specs.py", "convert_stock_prices"),
    ("cryptodudez/datasets/specs.py", "per_source"),
    ("cryptodudez/assets/lake.py", "lake_ingest"),
    ("cryptodudez/lake/tables.py", "add"),
    ("cryptodudez/lake/tables.py", "publish"),
    ("cryptodudez/lake/tables.py", "resolve_across_files"),
    ("cryptodudez/assets/lake.py", "_table_materialization"),
    ("cryptodudez/assets/lake.py", "_published_stats"),
    ("cryptodudez/assets/lake.py", "_results"),
    ("cryptodudez/checks/tables.py", "add_written"),
    ("cryptodudez/lake/tables.py", "files_frame"),
}

SAMPLER = """
import sys, time, os
pid, out = int(sys.argv[1]), sys.argv[2]
page = os.sysconf("SC_PAGE_SIZE")
with open(out, "w") as fh:
    while True:
        try:
            with open(f"/proc/{pid}/statm") as st:
                rss = int(st.read().split()[1]) * page
        except OSError:
            break
        fh.write(f"{time.monotonic()} {rss}\\n")
        time.sleep(0.005)
"""


class LineTracer:
    """Inclusive wall time and the RSS window of every line of the traced functions."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, int, int]] = []  # (t, func key, line, call id)
        self.ends: list[tuple[float, int]] = []  # (t, call id) when a traced call returns
        self.calls = 0

    def _key(self, code: Any) -> str | None:
        for suffix, name in TRACED:
            if code.co_name == name and code.co_filename.endswith(suffix):
                return f"{suffix}:{name}"
        return None

    def global_trace(self, frame: Any, event: str, arg: Any) -> Any:
        """``sys.settrace`` hook: trace only the functions in ``TRACED``."""
        del arg
        if event != "call":
            return None
        key = self._key(frame.f_code)
        if key is None:
            return None
        self.calls += 1
        fid = self.calls  # id(frame) is reused by later calls: number the calls instead

        def local(frame: Any, event: str, arg: Any) -> Any:
            del arg
            now = time.monotonic()
            if event == "line":
                self.events.append((now, key, frame.f_lineno, fid))
            elif event == "return":
                self.ends.append((now, fid))
            return local

        return local

    def report(self, samples: list[tuple[float, int]], min_ms: float = 30.0) -> str:
        """Per function, the lines that took at least ``min_ms`` or moved RSS by 50 MB."""
        # Close each line at the next event of the same frame (or the frame's return).
        by_frame: dict[int, list[tuple[float, str, int]]] = defaultdict(list)
        for t, key, line, fid in self.events:
            by_frame[fid].append((t, key, line))
        end_of = dict((fid, t) for t, fid in self.ends)
        stats: dict[tuple[str, int], dict[str, float]] = {}
        times = [s[0] for s in samples]

        def rss_window(t0: float, t1: float) -> tuple[float, float, float]:
            i = max(bisect.bisect_left(times, t0) - 1, 0)
            j = min(bisect.bisect_right(times, t1), len(samples) - 1)
            window = [s[1] for s in samples[i:j + 1]] or [0]
            return window[0], window[-1], max(window)

        for fid, evs in by_frame.items():
            for n, (t, key, line) in enumerate(evs):
                t_next = evs[n + 1][0] if n + 1 < len(evs) else end_of.get(fid, t)
                before, after, peak = rss_window(t, t_next)
                s = stats.setdefault((key, line), {"hits": 0, "s": 0.0, "peak": 0.0,
                                                   "delta": 0.0})
                s["hits"] += 1
                s["s"] += t_next - t
                s["peak"] = max(s["peak"], peak)
                if t_next - t > 0.02:  # shorter lines fall between two RSS samples
                    s["delta"] += after - before
        out = []
        funcs = sorted({k for k, _ in stats}, key=lambda k: -max(
            v["s"] for (kk, _), v in stats.items() if kk == k))
        for func in funcs:
            rows = sorted((line, v) for (k, line), v in stats.items() if k == func)
            total = sum(v["s"] for _, v in rows)
            shown = [(line, v) for line, v in rows
                     if v["s"] * 1000 >= min_ms or abs(v["delta"]) >= 50 * 2**20]
            if not shown:
                continue
            path = PROJECT_DIR / func.split(":")[0]
            out.append(f"\n## {func}  (sum of line times {total:.2f} s, lines shown >= "
                       f"{min_ms:g} ms or >= 50 MB RSS change)\n")
            out.append(f"{'line':>5} {'hits':>5} {'time s':>8} {'peak RSS MB':>12} "
                       f"{'RSS delta MB':>13}  source")
            for line, v in shown:
                src = linecache.getline(str(path), line).strip()[:90]
                out.append(f"{line:5d} {int(v['hits']):5d} {v['s']:8.3f} "
                           f"{v['peak'] / 2**20:12.0f} {v['delta'] / 2**20:13.0f}  {src}")
        return "\n".join(out)


def _with_sampler(fn: Any) -> tuple[Any, list[tuple[float, int]]]:
    fd, path = tempfile.mkstemp(prefix="rss-", suffix=".txt")
    os.close(fd)
    proc = subprocess.Popen([sys.executable, "-c", SAMPLER, str(os.getpid()), path])
    time.sleep(0.2)
    try:
        result = fn()
    finally:
        time.sleep(0.05)
        proc.kill()
        proc.wait()
    samples = []
    for line in Path(path).read_text().splitlines():
        t, rss = line.split()
        samples.append((float(t), int(rss)))
    Path(path).unlink()
    return result, samples


def _pure(zip_path: Path) -> Any:
    from cryptodudez.datasets.specs import DATASETS
    from cryptodudez.ingest import ingest_members, unpack

    data = zip_path.read_bytes()
    return ingest_members(unpack(f"file://{zip_path}", data), DATASETS)


def _dagster(zip_path: Path) -> Any:
    import dagster as dg

    from cryptodudez.definitions import build_definitions
    from cryptodudez.resources.lake import partition_key_for
    from cryptodudez.settings import Settings

    with tempfile.TemporaryDirectory(prefix="profile-dagster-") as name:
        tmp = Path(name)
        defs = build_definitions(Settings(lake=str(tmp / "lake"), dagster_home=str(tmp / "dh")))
        (defs.resources or {})["lake"].land(zip_path, "bench/archive.zip")
        with dg.instance_for_test() as inst:
            key = partition_key_for("bench/archive.zip")
            inst.add_dynamic_partitions("landed_files", [key])
            return defs.resolve_job_def("ingest_landed_file").execute_in_process(
                partition_key=key, instance=inst,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )


def _pstats_text(prof: cProfile.Profile, sort: str, limit: int) -> str:
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.strip_dirs().sort_stats(sort).print_stats(limit)
    return buf.getvalue()


def run_view(view: str, zip_path: Path, out_dir: Path) -> Path:
    """Run one view in this process and write its report."""
    import dagster  # noqa: F401  (imports out of the measured window)
    import polars  # noqa: F401

    import cryptodudez.definitions  # noqa: F401

    target = _dagster if view == "dagster" else _pure
    report = [f"# {view} profile of {zip_path} ({time.strftime('%Y-%m-%d %H:%M')})\n"]
    if view == "cprofile":
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        target(zip_path)
        prof.disable()
        report.append(f"wall {time.perf_counter() - t:.2f} s (under cProfile)\n")
        report.append("## sorted by cumulative time\n" + _pstats_text(prof, "cumulative", 60))
        report.append("## sorted by own time\n" + _pstats_text(prof, "tottime", 30))
    else:
        tracer = LineTracer()
        line_prof = cProfile.Profile() if view == "dagster" else None

        def traced() -> Any:
            sys.settrace(tracer.global_trace)
            if line_prof:
                line_prof.enable()
            try:
                return target(zip_path)
            finally:
                if line_prof:
                    line_prof.disable()
                sys.settrace(None)

        t = time.perf_counter()
        _, samples = _with_sampler(traced)
        wall = time.perf_counter() - t
        base = samples[0][1] / 2**20 if samples else 0
        peak = max((s[1] for s in samples), default=0) / 2**20
        report.append(f"wall {wall:.2f} s (traced), RSS at start {base:.0f} MB, "
                      f"peak {peak:.0f} MB, {len(samples)} RSS samples\n")
        report.append(tracer.report(samples))
        if line_prof:
            report.append("\n\n## cProfile, sorted by cumulative time\n"
                          + _pstats_text(line_prof, "cumulative", 70))
    path = out_dir / f"profile_{view}.txt"
    path.write_text("\n".join(report))
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--only cprofile|lines|dagster``, ``--archive``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", choices=["cprofile", "lines", "dagster"])
    parser.add_argument("--archive", type=Path, default=REAL_ARCHIVE)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--view", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.view:
        print(run_view(args.view, args.archive, args.out_dir))
        return
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    for view in [args.only] if args.only else ["cprofile", "lines", "dagster"]:
        done = subprocess.run(
            [sys.executable, __file__, "--view", view, "--archive", str(args.archive),
             "--out-dir", str(args.out_dir)],
            cwd=PROJECT_DIR, env=env, check=True, capture_output=True, text=True,
        )
        path = Path(done.stdout.strip().splitlines()[-1])
        print(path.read_text())


if __name__ == "__main__":
    main()
