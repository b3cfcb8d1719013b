"""Spark against polars for the stock rolling features on generated bars.

A deterministic table of ``--symbols`` x ``--rows`` bars (2 M by default) in memory; polars'
``rolling_features`` timed ``--repeats`` times; then a ``local[2]`` SparkSession started (timed)
and the Spark twin run ``--repeats`` times from the same polars frame: Arrow into Spark, the
window job, Arrow back into polars (all timed together, as the ``spark`` engine runs it). The
two outputs are compared (rows whose mean or median differ). Nothing asserts on time.

Usage::

    python benchmarks/bench_spark.py        # writes benchmarks/results/bench_spark.json
"""

# ruff: noqa: PLC0415
import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from reference.common import machine_info, wait_quiet

RESULT = Path(__file__).parent / "results" / "bench_spark.json"


def generated(symbols: int, rows: int) -> pl.DataFrame:
    """``symbols`` x ``rows`` daily bars with random volumes and prices, shuffled."""
    rng = np.random.default_rng(0)
    dates = pl.date_range(pl.date(2000, 1, 1), pl.date(2000, 1, 1) + pl.duration(days=rows - 1),
                          eager=True).dt.strftime("%Y-%m-%d")
    n = symbols * rows
    return pl.DataFrame({
        "Symbol": np.repeat([f"S{i:05d}" for i in range(symbols)], rows),
        "Date": np.tile(dates.to_numpy(), symbols),
        "Volume": rng.integers(0, 10**7, n),
        "Adj Close": rng.lognormal(3, 1, n),
    }).sample(fraction=1.0, shuffle=True, seed=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-wait", type=float, default=30.0)
    args = parser.parse_args()

    from cryptodudez.transforms.stock_features import FEATURES, rolling_features

    bars = generated(args.symbols, args.rows)
    results: dict[str, Any] = {"rows": bars.height, "symbols": args.symbols,
                               "machine": machine_info(), "quiet": wait_quiet(
                                   max_wait=args.max_wait)}
    polars_s = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        ours = rolling_features(bars)
        polars_s.append(time.perf_counter() - started)

    started = time.perf_counter()
    from cryptodudez.spark.session import local_session
    from cryptodudez.spark.stock_features import rolling_features as spark_rolling

    spark = local_session(app="bench-spark", cores=2)
    session_s = time.perf_counter() - started
    spark_s = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        frame = spark.createDataFrame(bars.to_arrow(compat_level=pl.CompatLevel.oldest()))
        theirs = pl.from_arrow(spark_rolling(frame).toArrow())
        spark_s.append(time.perf_counter() - started)
    spark.stop()
    assert isinstance(theirs, pl.DataFrame)
    merged = ours.join(theirs, on=["Symbol", "Date"], suffix="_spark")
    mean, median = FEATURES
    results.update({
        "polars_s": [round(s, 2) for s in polars_s],
        "spark_session_start_s": round(session_s, 2),
        "spark_job_s": [round(s, 2) for s in spark_s],
        "rows_compared": merged.height,
        "median_rows_differing": merged.filter(
            ~pl.col(median).eq_missing(pl.col(f"{median}_spark"))).height,
        "mean_rows_beyond_1e-9": merged.filter(
            (pl.col(mean) - pl.col(f"{mean}_spark")).abs() > 1e-9 * pl.col(mean).abs()).height,
        "mean_max_relative_difference": merged.select(
            ((pl.col(mean) - pl.col(f"{mean}_spark")).abs() / pl.col(mean).abs()).max()).item(),
    })
    RESULT.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
