"""What one correlation refresh of the stream consumer costs, by history and window.

The consumer recomputes its correlation table from the aggregates (``MoodConsumer.refresh``)
every ``refresh_every`` seconds while it has new data, on its event loop. This times that
call over generated aggregates of ``--days`` days of history (BTC, ETH and LTC; the default
buckets PT10S and PT1M, a trade aggregate in every bucket and a sentiment one in 70 % of
them; the default lags -2..2 and 2,000 bootstrap resamples), each with no window and with
``--window`` (``ConsumerConfig.correlation_window``). A DuckDB state file is filled
directly (``StateStore.commit``), so the load from DuckDB is part of the time. Median of
``--runs`` refreshes after waiting for a quiet machine.

Usage::

    python benchmarks/bench_stream_refresh.py --days 1 7 --window P1D --out bench_stream_refresh
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from nats.aio.client import Client
from reference.common import machine_info, portable, wait_quiet

from cryptodudez.stream.consumer import ConsumerConfig, MoodConsumer
from cryptodudez.stream.state import (
    KEYS_SCHEMA,
    PRICE_AGG_SCHEMA,
    QUARANTINE_SCHEMA,
    SENTIMENT_AGG_SCHEMA,
    Delta,
    StateStore,
)

COINS = ("BTC", "ETH", "LTC")
BUCKETS = {"PT10S": 10, "PT1M": 60}
START = datetime(2026, 11, 1, tzinfo=UTC)


def delta(days: int, seed: int = 0) -> Delta:
    """One delta holding ``days`` of per-bucket aggregates for every coin and bucket."""
    rng = np.random.default_rng(seed)
    t0 = int(START.timestamp() * 1_000_000)
    prices, moods = [], []
    for coin in COINS:
        for bucket, width in BUCKETS.items():
            n = days * 86_400 // width
            starts = t0 + np.arange(n, dtype=np.int64) * width * 1_000_000
            prices.append(pl.DataFrame({
                "coin": coin, "bucket": bucket, "bucket_start_us": starts,
                "price": np.exp(np.cumsum(rng.normal(0, 1e-3, n))) * 100,
                "last_trade_us": starts + width * 500_000, "last_seq": np.arange(n) + 1,
                "trades": np.full(n, 3)}))
            kept = rng.random(n) < 0.7
            moods.append(pl.DataFrame({
                "coin": coin, "bucket": bucket, "bucket_start_us": starts[kept],
                "polarity_sum": rng.normal(0, 1, int(kept.sum())),
                "tweets": np.full(int(kept.sum()), 1), "last_tweet_us": starts[kept] + 1}))
    return Delta(prices=pl.concat(prices).cast(PRICE_AGG_SCHEMA),  # type: ignore[arg-type]
                 sentiments=pl.concat(moods).cast(SENTIMENT_AGG_SCHEMA),  # type: ignore[arg-type]
                 keys=pl.DataFrame(schema=KEYS_SCHEMA),
                 quarantine=pl.DataFrame(schema=QUARANTINE_SCHEMA), messages=0, skipped=0,
                 max_seq=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 7])
    parser.add_argument("--window", default="P1D")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="bench_stream_refresh")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "command": "python benchmarks/bench_stream_refresh.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(), "coins": COINS, "buckets": list(BUCKETS), "runs": []}
    for days in args.days:
        with tempfile.TemporaryDirectory() as tmp, \
                StateStore(Path(tmp) / "state.duckdb", "bench") as store:
            store.commit(delta(days))
            for window in (None, args.window):
                cfg = ConsumerConfig(correlation_coins=COINS, correlation_window=window)
                consumer = MoodConsumer(Client(), store, cfg)
                load = wait_quiet()
                times = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    table = consumer.refresh()
                    times.append(time.perf_counter() - started)
                assert table is not None
                run = {"days": days, "window": window,
                       "price_aggregates": store.price_aggregates().height,
                       "pairs_max": int(table["n"].max() or 0),
                       "refresh_s": [round(t, 3) for t in times],
                       "refresh_median_s": round(statistics.median(times), 3),
                       "load": load}
                print(run, flush=True)
                results["runs"].append(run)
    path = Path(__file__).resolve().parent / "results" / f"{args.out}.json"
    path.write_text(json.dumps(portable(results), indent=2, default=str) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
