"""Finding the repeated values among 25 M 64-bit key hashes: a hash table or a sort.

The lake's latest-wins resolution and its ``keys_unique`` check both look for key hashes that
occur more than once in a whole table (25 M rows in the generated corpus). polars'
``is_duplicated`` builds a hash table probed at random; ``repeated_values`` sorts and compares
neighbours. Both are timed ``--repeats`` times on the same random hashes with planted repeats,
and their answers compared. Nothing asserts on time.

Usage::

    python benchmarks/bench_repeated_values.py   # writes results/bench_repeated_values.json
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import polars as pl
from reference.common import machine_info, wait_quiet

from cryptodudez.datasets.merge import repeated_values

RESULT = Path(__file__).parent / "results" / "bench_repeated_values.json"


def main() -> None:
    """Time both ways and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=25_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**63, args.rows, dtype=np.uint64)
    values[rng.integers(0, args.rows, 1_000)] = values[:1_000]  # planted repeats
    hashes = pl.Series(values)
    load = wait_quiet(max_busy=0.5)
    times: dict[str, list[float]] = {"is_duplicated": [], "sort": []}
    answers = {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        answers["is_duplicated"] = hashes.filter(hashes.is_duplicated()).unique().sort()
        times["is_duplicated"].append(time.perf_counter() - start)
        start = time.perf_counter()
        answers["sort"] = repeated_values(hashes).sort()
        times["sort"].append(time.perf_counter() - start)
    result = {
        "machine": machine_info(), "load": load, "rows": args.rows,
        "repeated": answers["sort"].len(),
        "same_answer": answers["sort"].equals(answers["is_duplicated"]),
        "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "runs_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
    }
    RESULT.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}))


if __name__ == "__main__":
    main()
