"""The stream demo: a private broker, the sample replayed through it, the correlation out.

:func:`run_stream_demo` starts ``nats-server -js`` on 127.0.0.1, declares the stream,
publishes the JSON lines of ``source`` (the shipped ``samples/cryptomood_sample.zip`` by
default), consumes them with one durable consumer into a DuckDB state file, and returns the
per-coin correlation table computed from the streamed aggregates. Everything is bounded by
``timeout``; the broker is stopped on the way out, whatever happens.
"""

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cryptodudez.stream.broker import connect, ensure_stream, jetstream_server, run_sync
from cryptodudez.stream.consumer import ConsumerConfig, MoodConsumer, RunReport
from cryptodudez.stream.correlation import correlation_from_aggregates
from cryptodudez.stream.replay import PublishReport, publish_lines, read_lines
from cryptodudez.stream.state import StateStore

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cryptomood_sample.zip"


StrPath = str | os.PathLike[str]


def source_paths(source: StrPath | Sequence[StrPath]) -> list[Path]:
    """The files of ``source``: one path or string, or a sequence of them; each must exist.

    A string is one path, never a sequence of one-character paths.

    Raises:
        FileNotFoundError: a source is not a file.
    """
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    paths = [Path(item) for item in items]
    if missing := [str(p) for p in paths if not p.is_file()]:
        msg = f"stream demo: not a file: {', '.join(missing)}"
        raise FileNotFoundError(msg)
    return paths


@dataclass(frozen=True)
class DemoResult:
    """What the demo published, what the consumer did, and the correlation table."""

    published: PublishReport
    consumed: RunReport
    correlation: pl.DataFrame
    state_file: Path


async def _demo(url: str, sources: Sequence[Path], state: Path, *,
                buckets: tuple[str, ...], max_lag: int, tolerance_buckets: int,
                n_boot: int) -> DemoResult:
    nc = await connect(url)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        published = await publish_lines(nc, read_lines(sources))
        cfg = ConsumerConfig(durable="mood-demo", buckets=buckets, max_lag=max_lag,
                             tolerance_buckets=tolerance_buckets, n_boot=n_boot,
                             fetch_timeout=0.2, refresh_every=None)
        with StateStore(state, cfg.durable) as store:
            consumed = await MoodConsumer(nc, store, cfg).run()
            prices = store.price_aggregates()
            coins = sorted(set(prices["coin"].to_list()))
            table = correlation_from_aggregates(
                prices, store.sentiment_aggregates(), coins=coins, buckets=buckets,
                max_lag=max_lag, tolerance_buckets=tolerance_buckets, n_boot=n_boot)
    finally:
        await nc.close()
    return DemoResult(published, consumed, table, state)


def run_stream_demo(source: StrPath | Sequence[StrPath] = SAMPLE, *,
                    state_dir: StrPath | None = None,
                    buckets: tuple[str, ...] = ("PT10S", "PT1M"), max_lag: int = 2,
                    tolerance_buckets: int = 0, n_boot: int = 2000,
                    timeout: float = 60.0) -> DemoResult:
    """Replay ``source`` through a private JetStream broker and return the correlation.

    Args:
        source: a zip or JSON-lines file, or a sequence of them (trades and/or tweet
            sentiments); each a path or a string.
        state_dir: where the consumer's ``stream-state.duckdb`` goes (a temporary folder,
            removed afterwards, if None; the returned path then no longer exists). A file
            of an earlier run there is replaced: each run has its own broker and stream,
            which that file's state cannot go on from.
        buckets: the grids (ISO-8601 durations).
        max_lag: lags ``-max_lag..max_lag``.
        tolerance_buckets: the as-of join's tolerance, in buckets.
        n_boot: bootstrap resamples per correlation.
        timeout: seconds for the whole replay and consumption.

    Raises:
        FileNotFoundError: a source is not a file (before the broker starts).
        TimeoutError: the demo did not finish in ``timeout`` seconds.
    """
    sources = source_paths(source)
    with tempfile.TemporaryDirectory(prefix="cryptodudez-stream-") as scratch:
        folder = Path(state_dir) if state_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        state = folder / "stream-state.duckdb"
        for stale in (state, state.with_name(state.name + ".wal")):
            stale.unlink(missing_ok=True)
        with jetstream_server(Path(scratch) / "broker") as broker:
            return run_sync(lambda: _demo(
                broker.url, sources, state, buckets=buckets,
                max_lag=max_lag, tolerance_buckets=tolerance_buckets, n_boot=n_boot), timeout)
