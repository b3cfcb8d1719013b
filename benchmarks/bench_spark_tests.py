"""What the Spark tests add to the test run: ``pytest tests/spark`` alone, timed.

In the README's test command the Spark tests are one xdist group (``--dist loadgroup``): they
share one local Spark session on one worker while the other worker runs the rest. Their own
time on that worker, session start included, is what they can add to the run's wall time (at
most; the other worker keeps going meanwhile). This runs them alone in this checkout, one
process (``-n 0``, as their worker does), after waiting for the machine to be quiet, and
records pytest's summary, the wall time, every test's phases (``--durations=0``) and the
machine. Nothing asserts on time; issue 11's target is at most 3 minutes on 2 cores.

Usage::

    .venv/bin/python benchmarks/bench_spark_tests.py          # results/bench_spark_tests.json
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_suite import slowest, summary
from reference.common import PROJECT_DIR, machine_info, wait_quiet

RESULTS = PROJECT_DIR / "benchmarks" / "results"
TARGET_S = 180.0


def run() -> dict[str, Any]:
    """Run ``pytest tests/spark`` once and collect what it printed."""
    command = [sys.executable, "-m", "pytest", "tests/spark", "-n", "0", "-p",
               "no:cacheprovider", "-q", "--durations=0", "--durations-min=0"]
    started = time.monotonic()
    done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True,
                          check=False)
    wall = time.monotonic() - started
    lines = done.stdout.splitlines()
    phases = slowest(lines)
    return {
        "command": " ".join(["python", *command[1:]]),
        "returncode": done.returncode,
        "wall_s": round(wall, 1),
        "pytest": summary(lines),
        "phases_sum_s": round(sum(p["seconds"] for p in phases), 1),
        "phases": phases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench_spark_tests")
    args = parser.parse_args(argv)
    quiet = wait_quiet()
    result = {"machine": machine_info(), "load_before": quiet, **run()}
    result["target_s"] = TARGET_S
    result["met"] = result["returncode"] == 0 and result["wall_s"] <= TARGET_S
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.out}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"tests/spark: {result['pytest']}, wall {result['wall_s']} s "
          f"(target {TARGET_S:.0f} s): {'met' if result['met'] else 'missed'}; {path}")
    return 0 if result["returncode"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
