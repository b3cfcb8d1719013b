"""Benchmark of ``rolling_features`` against a straightforward pandas implementation.

1. The real validated stock table (``lake.read_table("validated", "stock_prices")``):
   ``cryptodudez.transforms.stock_features.rolling_features`` (polars) and
   ``reference/pandas_features.py`` (``groupby("Symbol").rolling(30)`` mean + median), each
   timed ``--repeats`` times in this process from an in-memory frame (reading the table and
   converting it to pandas are not timed), and their values compared row by row. Then the
   ``stock_features`` asset over all years of the real table, as in part 2 (``asset``).
2. A generated 25 M-row table (the real table tiled with renamed symbols; deterministic;
   written once to Parquet under ``--work``), in fresh subprocesses that report peak RSS:
   the process's ``ru_maxrss`` and, sampled every 5 ms, the RSS reached during the timed
   call. ``asset``: the tiled file is the only fragment of ``validated/stock_prices`` in a
   lake under ``--work``, and the ``stock_features`` asset is materialised (``dg.materialize``,
   ephemeral instance) over every year partition in one run, as a full backfill does: it
   reads the full 14-column table, writes one Parquet file per year and runs both checks.
   ``narrow``: ``rolling_features`` alone on the four columns it reads, already in memory.

Nothing here asserts on time. Usage::

    python benchmarks/bench_features.py              # both parts (about 4 minutes)
    python benchmarks/bench_features.py --skip-large
    python benchmarks/bench_features.py --only-large
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


class _PeakRss:
    """RSS sampled every 5 ms while the ``with`` block runs, plus the timings."""

    def __enter__(self) -> "_PeakRss":
        gc.collect()
        self.before = _rss_mb()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.started, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        self.cpu = time.process_time() - self.cpu0
        self._stop.set()
        self._thread.join()

    def report(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2), "cpu_s": round(self.cpu, 2),
            "rss_before_call_mb": round(self.before), "rss_peak_during_call_mb": round(self.peak),
            "call_added_mb": round(self.peak - self.before),
            "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        / 1024),
        }


def narrow_child(path: Path) -> dict[str, Any]:
    """Runs in the subprocess: read the tiled table's four inputs, time ``rolling_features``."""
    import polars as pl

    from cryptodudez.transforms.stock_features import INPUTS, rolling_features

    big = pl.read_parquet(path, columns=list(INPUTS))
    with _PeakRss() as rss:
        out = rolling_features(big)
    return {"rows": big.height, "symbols": big["Symbol"].n_unique(), "columns": big.width,
            "input_estimated_mb": round(big.estimated_size("mb")), **rss.report(),
            "non_null_vol_moving_avg": int(out["vol_moving_avg"].is_not_null().sum())}


def asset_child(lake_dir: Path) -> dict[str, Any]:
    """Runs in the subprocess: materialise ``stock_features`` over all years of the lake."""
    import dagster as dg
    import polars as pl

    from cryptodudez.assets.stocks import stock_features, stock_years
    from cryptodudez.resources.compute import Compute
    from cryptodudez.resources.lake import FEATURES, Lake
    from cryptodudez.resources.spark_jobs import LocalSparkJobs

    lake = Lake(uri=str(lake_dir))
    tags = {"dagster/asset_partition_range_start": str(stock_years.get_first_partition_key()),
            "dagster/asset_partition_range_end": str(stock_years.get_last_partition_key())}
    with dg.instance_for_test() as instance, _PeakRss() as rss:
        result = dg.materialize([stock_features], resources={
            "lake": lake, "compute": Compute(), "spark_jobs": LocalSparkJobs()},
                                instance=instance,
                                tags=tags, raise_on_error=False)
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    written = lake.scan_table(FEATURES, "stock_features", ["vol_moving_avg"])
    return {"success": result.success, "checks": checks, **rss.report(),
            "rows_written": written.select(pl.len()).collect().item(),
            "files_written": len(lake.fragments(FEATURES, "stock_features")),
            "non_null_vol_moving_avg": written.select(pl.col("vol_moving_avg").count())
            .collect().item()}


def _asset_lake(work: Path, name: str, fragments: list[Path]) -> Path:
    """A lake under ``work`` whose validated stock fragments are links to ``fragments``."""
    from cryptodudez.resources.lake import FEATURES, VALIDATED

    lake_dir = work / name
    folder = lake_dir / VALIDATED / "stock_prices"
    folder.mkdir(parents=True, exist_ok=True)
    for i, fragment in enumerate(fragments):
        link = folder / f"part-{i:03d}.parquet"
        if not link.exists():
            link.symlink_to(Path(fragment).resolve())
    for old in (lake_dir / FEATURES / "stock_features").glob("*.parquet"):
        old.unlink()
    return lake_dir


def _child(args: list[str], quiet_max: float) -> dict[str, Any]:
    load = wait_quiet(max_busy=quiet_max)
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=False, timeout=1800, cwd=Path(__file__).parent)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:], "load": load}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": load}


def real_asset(lake: str, quiet_max: float, work: Path) -> dict[str, Any]:
    """The asset over all years of the real table (a subprocess, links to its fragments)."""
    from cryptodudez.resources.lake import VALIDATED, Lake

    fragments = [Path(p) for p in Lake(uri=lake).fragments(VALIDATED, "stock_prices")]
    return _child(["--child-asset", str(_asset_lake(work, "lake_real", fragments))], quiet_max)


def large(lake: str, rows: int, quiet_max: float, work: Path) -> dict[str, Any]:
    """The tiled table (built once, cached), then one subprocess per variant."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"tiled_{rows}.parquet"
    out: dict[str, Any] = {}
    if not path.exists():
        out["build"] = build_large(lake, rows, path)
    asset_lake = _asset_lake(work, f"lake_{rows}", [path])
    out["asset"] = _child(["--child-asset", str(asset_lake)], quiet_max)
    out["narrow"] = _child(["--child-narrow", str(path)], quiet_max)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lake", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-rows", type=int, default=LARGE_ROWS)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--quiet-max", type=float, default=0.5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/benchlake/bench_features"))
    parser.add_argument("--child-narrow", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-asset", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--only-large", action="store_true",
                        help="skip the real-table comparison (part 1)")
    args = parser.parse_args(argv)
    lake = lake_uri(args.lake)
    if args.child_narrow:
        print(json.dumps(narrow_child(args.child_narrow)))
        return 0
    if args.child_asset:
        print(json.dumps(asset_child(args.child_asset)))
        return 0
    result: dict[str, Any] = {"machine": machine_info(), "targets": TARGETS}
    verdict = {}
    if not args.only_large:
        result["real"] = r = real(lake, args.repeats, args.quiet_max)
        print(f"real: {r['rows']:,} rows, ours {r['ours_s']} s, pandas {r['pandas_s']} s, "
              f"ratio {r['ratio_best']}x (best) {r['ratio_median']}x (median)", flush=True)
        print(json.dumps(r["comparison"], indent=2), flush=True)
        r["asset"] = real_asset(lake, args.quiet_max, args.work)
        print(f"real asset: {json.dumps(r['asset'])}", flush=True)
        verdict = {"ratio>=2.5": r["ratio_best"] >= TARGETS["ratio_vs_pandas"],
                   "real<=3s": r["ours_best_s"] <= TARGETS["real_s"]}
    if not args.skip_large:
        result["large"] = large(lake, args.large_rows, args.quiet_max, args.work)
        print(f"large: {json.dumps(result['large'], indent=1)}", flush=True)
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
