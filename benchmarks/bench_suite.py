"""Time the README's test command as CI runs it: ``bash .ci/run`` on a fresh clone of a commit.

The clone is made with ``git clone`` from this checkout (so it has no ``.venv``, no caches and
no bytecode, as CI's clean clone), then ``bash .ci/run`` runs in it: set-up, ruff, mypy and
the whole pytest suite. Recorded: the wall time of the whole command and of its set-up (until
pytest's first line), pytest's own summary (counts and seconds), the slowest tests pytest
printed, the CPU other processes used meanwhile (``others_cores`` is the whole machine's busy
cores minus this run's process tree, from ``/proc/stat`` and the children's rusage), and the
machine. Nothing asserts on time.

Usage::

    python benchmarks/bench_suite.py                     # HEAD, into results/bench_suite.json
    python benchmarks/bench_suite.py --commit abc1234 --out bench_suite_before
    python benchmarks/bench_suite.py --tmp disk --out bench_suite_disk   # temp files on disk

``./run test`` keeps the suite's temporary files on /dev/shm when it is a tmpfs with room;
``--tmp disk`` sets ``CRYPTODUDEZ_TEST_TMP=disk`` so they stay under ``$TMPDIR``.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference.common import PROJECT_DIR, cores_between, cpu_counters, machine_info

RESULTS = PROJECT_DIR / "benchmarks" / "results"
SUMMARY = re.compile(r"^=* ?(?P<counts>\d+ \w+(?:, \d+ \w+)*) "
                     r"in (?P<seconds>[\d.]+)s(?: \([\d:]+\))?(?: =+)?$")
DURATION = re.compile(r"^(?P<seconds>[\d.]+)s (?P<phase>setup|call|teardown)\s+(?P<test>\S+)$")


def summary(lines: list[str]) -> dict[str, Any]:
    """pytest's last summary line: ``{"counts": {"passed": 1337, ...}, "seconds": 766.73}``."""
    for line in reversed(lines):
        found = SUMMARY.search(line.strip())
        if found:
            counts = {}
            for part in found["counts"].split(", "):
                number, _, word = part.partition(" ")
                counts[word] = int(number)
            return {"counts": counts, "seconds": float(found["seconds"])}
    return {}


def slowest(lines: list[str]) -> list[dict[str, Any]]:
    """The ``--durations`` rows pytest printed: seconds, phase and test."""
    return [{"seconds": float(m["seconds"]), "phase": m["phase"], "test": m["test"]}
            for line in lines if (m := DURATION.match(line.strip()))]


def run(commit: str, tmp_place: str = "ram") -> dict[str, Any]:
    """Clone ``commit`` into a temporary folder and time ``bash .ci/run`` there."""
    with tempfile.TemporaryDirectory(prefix="cryptodudez-suite-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(PROJECT_DIR), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", commit], check=True)
        # the data the real-data tests read sits beside the project, as it does beside CI's clone
        shared = PROJECT_DIR.parent / "shared"
        if shared.exists() and not (Path(tmp) / "shared").exists():
            (Path(tmp) / "shared").symlink_to(shared)
        lines: list[str] = []
        machine0, t0 = cpu_counters(), time.monotonic()
        setup_s = None
        env = {**os.environ, "CRYPTODUDEZ_TEST_TMP": tmp_place}
        with subprocess.Popen(["bash", ".ci/run"], cwd=clone, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if setup_s is None and line.startswith("===") and "test session starts" in line:
                    setup_s = time.monotonic() - t0
                lines.append(line.rstrip("\n"))
            returncode = proc.wait()
        wall = time.monotonic() - t0
        machine1 = cpu_counters()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine_cores = cores_between(machine0, machine1)
        ours = (usage.ru_utime + usage.ru_stime) / wall
        return {
            "commit": subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"],
                                     check=True, capture_output=True, text=True).stdout.strip(),
            "command": "bash .ci/run",
            "test_tmp": tmp_place,
            "returncode": returncode,
            "wall_s": round(wall, 1),
            "setup_lint_typecheck_s": None if setup_s is None else round(setup_s, 1),
            "pytest": summary(lines),
            "slowest": slowest(lines),
            "failed_tests": [line.split(" ", 1)[1] for line in lines
                             if line.startswith(("FAILED ", "ERROR "))],
            "run_cores_mean": round(ours, 2),
            "machine_cores_busy_mean": round(machine_cores, 2),
            "others_cores_mean": round(max(0.0, machine_cores - ours), 2),
            "tail": lines[-5:],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default="HEAD", help="the commit to clone (default HEAD)")
    parser.add_argument("--out", default="bench_suite", help="result file name, without .json")
    parser.add_argument("--tmp", choices=("ram", "disk"), default="ram",
                        help="where ./run test keeps the temporary files (default: ram when "
                             "/dev/shm is a tmpfs with room, as CI)")
    args = parser.parse_args(argv)
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = {"started": started, "machine": machine_info(), **run(args.commit, args.tmp)}
    path = RESULTS / f"{args.out}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("commit", "returncode", "wall_s",
                                             "setup_lint_typecheck_s", "pytest")}))
    print(f"written: {path}")
    return 0 if result["returncode"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
