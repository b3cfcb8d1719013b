"""Feature-store speed and memory: tweet features at 100x and 1,000x, rebuild, evaluation.

Three measurements, each in its own subprocess (so each peak RSS is its own):

``tweets --scale N``
    A corpus N times the real tweets, generated from the validated ``tweets`` table of a
    lake (every copy gets new ids and its times shifted by up to +-12 h, so days mix; with
    ``--dup-share`` a share of the rows is delivered twice, the copy with later engagement
    and a later ``_landed_at``). Written as Parquet, sorted by ``created_at``. Then the tweet
    views (activity, terms, engagement, sentiment and hashed words) are computed one UTC
    month at a time with :func:`cryptodudez.features.build.tweet_daily`; deduplication is
    exact within a day, so a month never needs another month. Reports rows/s and peak RSS.
``rebuild --lake L``
    The whole feature store through Dagster (``feature_store`` job over every year, a fresh
    SQLite instance), then the ETH model job (training set, online row, walk-forward
    evaluation, signal), on a lake holding the real deliveries.
The machine, its load and every number go to ``benchmarks/results/<--out>.json``. Nothing
here asserts on time. Usage::

    python benchmarks/bench_feature_store.py tweets --lake L --scale 100
    python benchmarks/bench_feature_store.py tweets --lake L --scale 1000 --dup-share 0.1
    python benchmarks/bench_feature_store.py rebuild --lake L
"""

# ruff: noqa: PLC0415
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from reference.common import machine_info, wait_quiet

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGETS = {"tweets_100x_s": 60.0, "tweets_1000x_peak_mb": 1024.0, "rebuild_s": 60.0,
           "evaluation_s": 120.0}
HALF_DAY_MINUTES = 12 * 60
CHUNK_COPIES = 50  # copies of the real tweets per Parquet file


def generate(lake: str, out: Path, scale: int, dup_share: float, seed: int) -> dict[str, Any]:
    """Write the corpus under ``out``; return its size."""
    import numpy as np
    import polars as pl

    base = pl.scan_parquet(f"{lake}/validated/tweets/*.parquet").select(
        "tweet_id", "created_at", "text", "likes", "retweets", "replies", "_landed_at",
        "_source", "_line").collect()
    rng = np.random.default_rng(seed)
    offset = base.height  # copy k's ids: k * offset + the row's position (dense, unique)
    rows = files = 0
    for chunk in range(0, scale, CHUNK_COPIES):
        copies = []
        for k in range(chunk, min(chunk + CHUNK_COPIES, scale)):
            shift = rng.integers(-HALF_DAY_MINUTES, HALF_DAY_MINUTES, base.height)
            copies.append(base.with_columns(
                tweet_id=pl.int_range(base.height, dtype=pl.Int64) + k * offset,
                created_at=pl.col("created_at") + pl.Series(shift * 60_000_000).cast(
                    pl.Duration("us")),
            ))
        frame = pl.concat(copies)
        if dup_share > 0:
            dups = frame.sample(fraction=dup_share, seed=seed + chunk).with_columns(
                likes=pl.col("likes") + 1,
                _landed_at=pl.col("_landed_at") + timedelta(days=1))
            frame = pl.concat([frame, dups])
        frame.sort("created_at").write_parquet(out / f"part-{files:04d}.parquet",
                                               row_group_size=100_000, statistics=True)
        rows += frame.height
        files += 1
    return {"rows": rows, "files": files, "base_rows": base.height,
            "bytes": sum(p.stat().st_size for p in out.glob("*.parquet"))}


def compute(corpus: Path) -> dict[str, Any]:
    """Tweet views month by month over the corpus; returns counts and time."""
    import polars as pl

    from cryptodudez.features import build

    scan = pl.scan_parquet(str(corpus / "*.parquet"))
    first, last = scan.select(pl.col("created_at").min().alias("a"),
                              pl.col("created_at").max().alias("b")).collect().row(0)
    inputs = build.Inputs(crypto=pl.LazyFrame(), stocks=pl.LazyFrame(), tweets=scan)
    watermark = last.astimezone(UTC).date()
    started = time.perf_counter()
    month, days, tweets = date(first.year, first.month, 1), 0, 0
    while month <= watermark:
        nxt = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        frame = build.tweet_daily(inputs, start=month, end=nxt, watermark=watermark)
        days += frame.height
        tweets += int(frame["tweets"].sum()) if frame.height else 0
        month = nxt
    return {"seconds": time.perf_counter() - started, "days": days, "unique_tweets": tweets}


def child(args: argparse.Namespace) -> None:
    """One measurement, in this (sub)process; prints its JSON result."""
    if args.step == "compute":
        result = compute(Path(args.corpus))
    elif args.step == "rebuild":
        result = rebuild(args.lake)
    else:
        raise SystemExit(f"unknown step {args.step}")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, default=str))


def rebuild(lake: str) -> dict[str, Any]:
    """The feature_store job over every year, then the eth_model job, in a fresh instance."""
    import dagster as dg

    from cryptodudez.assets.eth import FIRST_YEAR
    from cryptodudez.definitions import build_definitions
    from cryptodudez.sensors.stock_pipeline import RANGE_END, RANGE_START
    from cryptodudez.settings import Settings

    defs = build_definitions(Settings.from_env({"CRYPTODUDEZ_LAKE": lake}))
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    out: dict[str, Any] = {}
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        store = defs.resolve_job_def("feature_store").execute_in_process(
            instance=instance, run_config=quiet, raise_on_error=False,
            tags={RANGE_START: FIRST_YEAR, RANGE_END: str(datetime.now(tz=UTC).year)})
        out["feature_store_s"] = time.perf_counter() - started
        started = time.perf_counter()
        model = defs.resolve_job_def("eth_model").execute_in_process(
            instance=instance, run_config=quiet, raise_on_error=False)
        out["eth_model_s"] = time.perf_counter() - started
        steps = {e.step_key: e.event_specific_data.duration_ms / 1000  # type: ignore[union-attr]
                 for e in model.all_events if e.event_type_value == "STEP_SUCCESS"}
        out["eth_model_steps_s"] = steps
        out["success"] = store.success and model.success
        out["checks"] = {e.check_name: e.passed for r in (store, model)
                         for e in r.get_asset_check_evaluations()}
        mats = {m.asset_key.to_user_string(): {k: v.value for k, v in
                                               m.materialization.metadata.items()
                                               if k in ("served", "verdict", "snapshot")}
                for m in model.get_asset_materialization_events()}
        out["eth_signal"] = mats.get("eth_signal")
    return out


def run_child(step: str, **kw: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", step]
    for k, v in kw.items():
        cmd += [f"--{k}", v]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["tweets", "rebuild"])
    parser.add_argument("--lake", default=None)
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--dup-share", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", dest="step", default=None)
    parser.add_argument("--corpus", default=None)
    args = parser.parse_args()
    if args.step:
        child(args)
        return
    results: dict[str, Any] = {"machine": machine_info(), "targets": TARGETS,
                               "started": datetime.now(tz=UTC).isoformat(),
                               "load_before": wait_quiet()}
    if args.command == "tweets":
        with tempfile.TemporaryDirectory(prefix="tweets-") as tmp:
            started = time.perf_counter()
            size = generate(args.lake, Path(tmp), args.scale, args.dup_share, args.seed)
            size["generate_s"] = time.perf_counter() - started
            measured = run_child("compute", corpus=tmp)
        results["tweets"] = {"scale": args.scale, "dup_share": args.dup_share, **size,
                             **measured, "rows_per_s": size["rows"] / measured["seconds"]}
    else:
        results["rebuild"] = run_child("rebuild", lake=args.lake)
    name = args.out or f"bench_feature_store_{args.command}"
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results, indent=1, default=str))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
