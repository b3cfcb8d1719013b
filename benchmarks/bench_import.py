"""Time to import the Dagster definitions (and the light CLI) in fresh processes.

Every Dagster process loads the code location first: the code server, the webserver and
daemon at start, each run worker and, with the multiprocess executor, each step. This times
``import cryptodudez.definitions`` (and ``import cryptodudez.cli`` for comparison) in new
interpreters, alternating, ``--repeat`` times each, and lists the heavy libraries loaded.

    python benchmarks/bench_import.py --out NAME [--repeat 7]

Writes ``benchmarks/results/NAME.json``. Bytecode is compiled by a first, untimed import.
"""

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from reference.common import machine_info, wait_quiet  # noqa: E402

MODULES = ("cryptodudez.definitions", "cryptodudez.cli")
HEAVY = ("dagster", "sklearn", "matplotlib", "pandas", "pandera", "pyspark", "scipy")
PROBE = """
import json, sys, time
sys.path.insert(0, {root!r})
started = time.perf_counter()
import {module}
seconds = time.perf_counter() - started
print(json.dumps([seconds, [m for m in {heavy!r} if m in sys.modules]]))
"""


def timed_import(module: str) -> tuple[float, list[str]]:
    code = PROBE.format(root=str(ROOT), module=module, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    seconds, loaded = json.loads(done.stdout.splitlines()[-1])
    return float(seconds), list(loaded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="result name (benchmarks/results/NAME.json)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()
    quiet = wait_quiet()  # the other processes' load, recorded beside the times
    for module in MODULES:  # compile the bytecode, untimed
        timed_import(module)
    runs: dict[str, list[float]] = {m: [] for m in MODULES}
    loaded: dict[str, list[str]] = {}
    for _ in range(args.repeat):
        for module in MODULES:
            seconds, heavy = timed_import(module)
            runs[module].append(round(seconds, 3))
            loaded[module] = heavy
    result = {
        "started": datetime.now(tz=UTC).isoformat(timespec="seconds"), "commit": commit,
        "command": "python benchmarks/bench_import.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info(), "load_before": quiet,
        "imports": {m: {"seconds_median": median(runs[m]), "seconds_runs": runs[m],
                        "heavy_modules_loaded": loaded[m]} for m in MODULES},
    }
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "benchmarks" / "results" / f"{args.out}.json").write_text(
        json.dumps(result, indent=2) + "\n")
    print(json.dumps({m: (v["seconds_median"], v["heavy_modules_loaded"])
                      for m, v in result["imports"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
