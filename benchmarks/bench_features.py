"""Benchmark of ``rolling_features`` against a straightforward pandas implementation.

1. The real validated stock table (``lake.read_table("validated", "stock_prices")``):
   ``cryptodudez.transforms.stock_features.rolling_features`` (polars) and
   ``reference/pandas_features.py`` (``groupby("Symbol").rolling(30)`` mean + median), each
   timed ``--repeats`` times in this process from an in-memory frame (reading the table and
   converting it to pandas are not timed), and their values compared row by row.
2. A generated 25 M-row table (the real table tiled with renamed symbols; deterministic;
   written once to Parquet under ``--work``), read by a fresh subprocess that times
   ``rolling_features`` alone and reports its peak RSS: the process's ``ru_maxrss`` and,
   sampled every 5 ms, the RSS reached during the call itself. Twice: with the validated
   table's full schema (14 columns), and with only the four columns the function reads.

Nothing here asserts on time. Usage::

    python benchmarks/bench_features.py              # both parts (about 3 minutes)
    python benchmarks/bench_features.py --skip-large
"""

# ruff: noqa: PLC0415
import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from reference.common import lake_uri, machine_info, save, wait_quiet

TARGETS = {"ratio_vs_pandas": 2.5, "real_s": 3.0, "large_s": 30.0, "large_rss_mb": 4096}
LARGE_ROWS = 25_000_000


def read_table(lake: str) -> Any:
    from cryptodudez.resources.lake import Lake

    return Lake(uri=lake).read_table("validated", "stock_prices")


def _time(fn: Any, repeats: int, quiet_max: float) -> tuple[list[float], Any, list[Any]]:
    times, loads, out = [], [], None
    for _ in range(repeats):
        out = None
        gc.collect()
        loads.append(wait_quiet(max_busy=quiet_max))
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return times, out, loads


def compare(ours: Any, ref: Any) -> dict[str, Any]:
    """Row-by-row comparison of both outputs on (Symbol, Date)."""
    import numpy as np
    import polars as pl

    cols = ["Symbol", "Date", "vol_moving_avg", "adj_close_rolling_med"]
    theirs = pl.from_pandas(ref[cols])
    joined = ours.select(cols).join(theirs, on=["Symbol", "Date"], how="full", suffix="_pd",
                                    coalesce=True)
    out: dict[str, Any] = {"rows_ours": ours.height, "rows_pandas": theirs.height,
                           "rows_joined": joined.height}
    for col in cols[2:]:
        a = joined[col].to_numpy()
        b = joined[f"{col}_pd"].fill_nan(None).to_numpy()
        a_null, b_null = np.isnan(a), np.isnan(b)
        both = ~a_null & ~b_null
        rel = np.abs(a[both] - b[both]) / np.maximum(np.abs(b[both]), 1e-300)
        out[col] = {
            "nulls_ours": int(a_null.sum()), "nulls_pandas": int(b_null.sum()),
            "null_positions_equal": bool((a_null == b_null).all()),
            "values": int(both.sum()),
            "bit_identical": int((a[both] == b[both]).sum()),
            "max_abs_diff": float(np.max(np.abs(a[both] - b[both]))) if both.any() else 0.0,
            "max_rel_diff": float(rel.max()) if both.any() else 0.0,
        }
    return out


def real(lake: str, repeats: int, quiet_max: float) -> dict[str, Any]:
    from reference.pandas_features import rolling_features_pandas

    from cryptodudez.transforms.stock_features import rolling_features

    bars = read_table(lake)
    pdf = bars.select("Symbol", "Date", "Volume", "Adj Close").to_pandas()
    rolling_features(bars.head(10_000))  # warm-up (thread pool, categorical cache)
    ours_t, ours, ours_load = _time(lambda: rolling_features(bars), repeats, quiet_max)
    ref_t, ref, ref_load = _time(lambda: rolling_features_pandas(pdf), repeats, quiet_max)
    result = {
        "rows": bars.height, "symbols": bars["Symbol"].n_unique(),
        "ours_s": [round(t, 3) for t in ours_t], "pandas_s": [round(t, 3) for t in ref_t],
        "ours_best_s": round(min(ours_t), 3), "pandas_best_s": round(min(ref_t), 3),
        "ours_median_s": round(statistics.median(ours_t), 3),
        "pandas_median_s": round(statistics.median(ref_t), 3),
        "load": {"ours": ours_load, "pandas": ref_load},
    }
    result["ratio_best"] = round(result["pandas_best_s"] / result["ours_best_s"], 2)
    result["ratio_median"] = round(result["pandas_median_s"] / result["ours_median_s"], 2)
    result["comparison"] = compare(ours, ref)
    return result


# ------------------------------------------------------------------- large (subprocess)
def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def build_large(lake: str, rows: int, path: Path) -> dict[str, Any]:
    """Write the tiled table to Parquet: copy ``i`` renames every symbol to ``<symbol>_<i>``.

    Tiles built in memory would share their string buffers (polars string views), so the
    measured process reads the Parquet file instead and holds a real 25 M-row table.
    """
    import polars as pl

    base = read_table(lake)
    copies = -(-rows // base.height)
    started = time.perf_counter()
    big = pl.concat(
        [base.with_columns(pl.col("Symbol") + f"_{i:02d}") for i in range(copies)]
    ).head(rows)
    big.write_parquet(path)
    return {"rows": big.height, "copies": copies, "seconds": round(time.perf_counter() - started),
            "parquet_mb": round(path.stat().st_size / 1e6)}


def large_child(path: Path, narrow: bool) -> dict[str, Any]:
    """Runs in the subprocess: read the tiled table, then time ``rolling_features``."""
    import polars as pl

    from cryptodudez.transforms.stock_features import rolling_features

    columns = ["Symbol", "Date", "Volume", "Adj Close"] if narrow else None
    big = pl.read_parquet(path, columns=columns)
    gc.collect()
    rss_before = _rss_mb()
    peak = [rss_before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    cpu0 = time.process_time()
    out = rolling_features(big)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    stop.set()
    sampler.join()
    return {
        "rows": big.height, "symbols": big["Symbol"].n_unique(), "columns": big.width,
        "input_estimated_mb": round(big.estimated_size("mb")),
        "seconds": round(seconds, 2), "cpu_s": round(cpu, 2),
        "rss_before_call_mb": round(rss_before), "rss_peak_during_call_mb": round(peak[0]),
        "call_added_mb": round(peak[0] - rss_before),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "non_null_vol_moving_avg": int(out["vol_moving_avg"].is_not_null().sum()),
    }


def large(lake: str, rows: int, quiet_max: float, work: Path) -> dict[str, Any]:
    """The tiled table (built once, cached), then one subprocess per input width."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"tiled_{rows}.parquet"
    out: dict[str, Any] = {}
    if not path.exists():
        out["build"] = build_large(lake, rows, path)
    for variant in ("full", "narrow"):
        load = wait_quiet(max_busy=quiet_max)
        cmd = [sys.executable, __file__, "--child-large", str(path)]
        done = subprocess.run([*cmd, "--narrow"] if variant == "narrow" else cmd,
                              capture_output=True, text=True, check=False, timeout=1800,
                              cwd=Path(__file__).parent)
        if done.returncode != 0:
            out[variant] = {"error": done.stderr[-2000:], "load": load}
            continue
        out[variant] = {**json.loads(done.stdout.strip().splitlines()[-1]), "load": load}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lake", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-rows", type=int, default=LARGE_ROWS)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--quiet-max", type=float, default=0.5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/benchlake/bench_features"))
    parser.add_argument("--child-large", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--narrow", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    lake = lake_uri(args.lake)
    if args.child_large:
        print(json.dumps(large_child(args.child_large, args.narrow)))
        return 0
    result: dict[str, Any] = {"machine": machine_info(), "targets": TARGETS}
    result["real"] = real(lake, args.repeats, args.quiet_max)
    r = result["real"]
    print(f"real: {r['rows']:,} rows, ours {r['ours_s']} s, pandas {r['pandas_s']} s, "
          f"ratio {r['ratio_best']}x (best) {r['ratio_median']}x (median)", flush=True)
    print(json.dumps(r["comparison"], indent=2), flush=True)
    if not args.skip_large:
        result["large"] = large(lake, args.large_rows, args.quiet_max, args.work)
        print(f"large: {json.dumps(result['large'], indent=1)}", flush=True)
    verdict = {"ratio>=2.5": r["ratio_best"] >= TARGETS["ratio_vs_pandas"],
               "real<=3s": r["ours_best_s"] <= TARGETS["real_s"]}
    for variant, big in result.get("large", {}).items():
        if "seconds" in big:
            verdict[f"large_{variant}<=30s"] = big["seconds"] <= TARGETS["large_s"]
            verdict[f"large_{variant}_rss<4GB"] = \
                big["process_max_rss_mb"] < TARGETS["large_rss_mb"]
    result["verdicts"] = verdict
    print(json.dumps(verdict))
    print(f"results: {save('bench_features', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
