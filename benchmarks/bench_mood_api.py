"""``GET /correlation`` latency on 100,000 generated trades and 100,000 sentiments.

A lake is generated (three coins' trades over one UTC day as a random walk per coin, tweets
naming one to three coins, polarity loosely tied to the last minute's return so the
statistics have something to find), written as validated Parquet fragments, and served by
``uvicorn serving.asgi:app`` in its own process on 127.0.0.1 (one worker). A client in this
process then asks:

* ``uncached``: distinct parameter sets (coin, bucket, max_lag, method, start), each computed
  with the moving-block bootstrap (2,000 resamples) on its first request;
* ``cached``: the same request again and again (answered from the in-process cache).

Latency is the client's wall time per request (keep-alive connection). The machine, its
load and every number go to ``benchmarks/results/<--out>.json``. Nothing here asserts on
time. Usage::

    python benchmarks/bench_mood_api.py [--trades 100000] [--sentiments 100000]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
from reference.common import free_port, machine_info, wait_quiet

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROJECT = Path(__file__).resolve().parents[1]
TARGETS = {"uncached_p99_ms": 200.0, "cached_p99_ms": 2.0}
DAY = datetime(2026, 11, 1, tzinfo=UTC)


def generate(lake: Path, n_trades: int, n_sentiments: int, seed: int = 0) -> None:
    """Validated ``coin_trades`` and ``tweet_sentiments`` fragments for one day."""
    rng = np.random.default_rng(seed)
    coins = np.array(["BTC", "ETH", "LTC"])
    coin = coins[rng.integers(0, 3, n_trades)]
    us = np.sort(rng.integers(0, 86_400_000_000, n_trades))
    base = np.select([coin == "BTC", coin == "ETH"], [6000.0, 430.0], 80.0)
    steps = rng.normal(0, 0.0005, n_trades)
    walk = np.zeros(n_trades)
    for c in coins:  # one random walk per coin, in time order
        mask = coin == c
        walk[mask] = np.cumsum(steps[mask])
    ts = pl.Series([DAY + timedelta(microseconds=int(u)) for u in us]).dt.cast_time_unit("us")
    trades = pl.DataFrame({
        "uuid": [f"t{i}" for i in range(n_trades)], "coin": coin, "exchange": "COINBASE",
        "quote": "USD", "ts": ts, "time_exchange": ts, "price": base * np.exp(walk),
        "size": rng.uniform(0.01, 5, n_trades), "sequence": np.arange(n_trades),
        "taker_side": "BUY", "type": "trade", "symbol_id": "x",
        "_source": "bench://trades", "_line": np.arange(1, n_trades + 1)})
    s_us = np.sort(rng.integers(0, 86_400_000_000, n_sentiments))
    mentions = [["BTC"], ["ETH"], ["LTC"], ["BTC", "ETH"], ["BTC", "ETH", "LTC"]]
    sentiments = pl.DataFrame({
        "sentiment_id": [f"{i:016x}" for i in range(n_sentiments)],
        "ts": pl.Series([DAY + timedelta(microseconds=int(u)) for u in s_us]
                        ).dt.cast_time_unit("us"),
        "coins": [mentions[i] for i in rng.integers(0, 5, n_sentiments)],
        "polarity": np.clip(rng.normal(0, 0.4, n_sentiments), -1, 1),
        "text": "generated", "_source": "bench://sentiments",
        "_line": np.arange(1, n_sentiments + 1)})
    for name, frame in (("coin_trades", trades), ("tweet_sentiments", sentiments)):
        folder = lake / "validated" / name
        folder.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(folder / "part-bench-00000.parquet")


def in_process(lake: Path) -> dict[str, float]:
    """ms of one coin's correlation on the 10-second grid, in this process (after a warm-up)."""
    from cryptodudez.mood import results  # noqa: PLC0415

    trades = results.trades_frame(pl.read_parquet(lake / "validated/coin_trades/*.parquet"))
    moods = results.sentiments_frame(
        pl.read_parquet(lake / "validated/tweet_sentiments/*.parquet"))
    out = {}
    for max_lag in (0, 2):
        params = results.MoodParams(coins=("ETH",), buckets=("PT10S",), max_lag=max_lag)
        results.correlation(trades, moods, params)
        started = time.perf_counter()
        results.correlation(trades, moods, params)
        out[f"eth_pt10s_max_lag_{max_lag}_ms"] = round((time.perf_counter() - started) * 1000,
                                                       1)
    return out


def serve(lake: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CRYPTODUDEZ_LAKE": str(lake),
           "CRYPTODUDEZ_WAREHOUSE": str(lake / "warehouse.duckdb")}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "serving.asgi:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--workers", "1"],
        cwd=PROJECT, env=env)


def _percentiles(ms: list[float]) -> dict[str, float]:
    values = np.array(ms)
    return {"n": len(ms), "percentiles": [50, 99],
            "p50_ms": round(float(np.percentile(values, 50)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3),
            "max_ms": round(float(values.max()), 3), "mean_ms": round(float(values.mean()), 3)}


def requests() -> list[str]:
    """Distinct parameter sets (every one computed on its first request)."""
    paths = []
    for coin in ("BTC", "ETH", "LTC"):
        for bucket in ("PT1M", "PT5M", "PT15M", "PT1H"):
            for max_lag in (0, 1, 2, 3):
                for method in ("pearson", "spearman"):
                    paths.append(f"/correlation?coin={coin}&bucket={bucket}&max_lag={max_lag}"
                                 f"&method={method}")
    for hours in range(1, 9):
        paths.append(f"/correlation?coin=ETH&bucket=PT1M&max_lag=2"
                     f"&start=2026-11-01T{hours:02d}:00:00Z")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--sentiments", type=int, default=100_000)
    parser.add_argument("--cached", type=int, default=2000)
    parser.add_argument("--out", default="bench_mood_api")
    args = parser.parse_args()
    quiet = wait_quiet()
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        generate(lake, args.trades, args.sentiments)
        ten_seconds = in_process(lake)
        port = free_port()
        server = serve(lake, port)
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=60) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        client.get("/health")
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                started = time.perf_counter()
                first = client.get("/coin?coin=ETH&limit=1")  # loads the tables
                load_ms = (time.perf_counter() - started) * 1000
                assert first.status_code == 200, first.text
                uncached: list[float] = []
                for path in requests():
                    t0 = time.perf_counter()
                    answer = client.get(path)
                    uncached.append((time.perf_counter() - t0) * 1000)
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["source"] == "computed"
                cached: list[float] = []
                path = requests()[0]
                for _ in range(args.cached):
                    t0 = time.perf_counter()
                    answer = client.get(path)
                    cached.append((time.perf_counter() - t0) * 1000)
                    assert answer.status_code == 200
        finally:
            server.terminate()
            server.wait(timeout=30)
    result: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "trades": args.trades, "sentiments": args.sentiments,
        "span": "one UTC day, three coins", "n_boot": 2000,
        "first_load_ms": round(load_ms, 1),
        "uncached": _percentiles(uncached), "cached": _percentiles(cached),
        "in_process_10s_grid": ten_seconds,
        "targets": TARGETS,
        "measured_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "load": quiet, "machine": machine_info(),
    }
    result["met"] = {"uncached_p99": result["uncached"]["p99_ms"] < TARGETS["uncached_p99_ms"],
                     "cached_p99": result["cached"]["p99_ms"] < TARGETS["cached_p99_ms"]}
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("first_load_ms", "uncached", "cached", "met")},
                     indent=2))


if __name__ == "__main__":
    main()
