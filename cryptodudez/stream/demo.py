"""The stream demo: a private broker, the sample replayed through it, the correlation out.

:func:`run_stream_demo` starts ``nats-server -js`` on 127.0.0.1, declares the stream,
publishes the JSON lines of ``source`` (the shipped ``samples/cryptomood_sample.zip`` by
default), consumes them with one durable consumer into a DuckDB state file, and returns the
per-coin correlation table computed from the streamed aggregates. Everything is bounded by
``timeout``; the broker is stopped on the way out, whatever happens.
"""

import itertools
import math
import numbers
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cryptodudez.mood.results import MoodParams
from cryptodudez.mood.series import parse_bucket
from cryptodudez.stream.broker import connect, ensure_stream, jetstream_server, run_sync
from cryptodudez.stream.consumer import ConsumerConfig, MoodConsumer, RunReport
from cryptodudez.stream.correlation import correlation_from_aggregates
from cryptodudez.stream.replay import Line, PublishReport, publish_lines, read_lines
from cryptodudez.stream.state import StateStore

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cryptomood_sample.zip"


StrPath = str | os.PathLike[str]


def source_paths(source: StrPath | Sequence[StrPath]) -> list[Path]:
    """The files of ``source``: one path or string, or a sequence of them; each must exist.

    A string is one path, never a sequence of one-character paths; bytes are neither (they
    would be a sequence of numbers), and are refused.

    Raises:
        FileNotFoundError: a source is not a file.
        TypeError: ``source`` is not a path, a string or a sequence of them, named.
    """
    if isinstance(source, bytes | bytearray | memoryview) or not isinstance(
            source, str | os.PathLike | Iterable):
        hint = " (decode bytes first: os.fsdecode)" if isinstance(
            source, bytes | bytearray | memoryview) else ""
        msg = f"source must be a path or a string, or a sequence of them, not {source!r}{hint}"
        raise TypeError(msg)
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    for item in items:
        if not isinstance(item, str | os.PathLike) or isinstance(os.fspath(item), bytes):
            msg = f"source must be a sequence of paths or strings, not one holding {item!r}"
            raise TypeError(msg)
    paths = [Path(item) for item in items]
    if missing := [str(p) for p in paths if not p.is_file()]:
        msg = f"stream demo: not a file: {', '.join(missing)}"
        raise FileNotFoundError(msg)
    return paths


def demo_buckets(buckets: str | Iterable[str]) -> tuple[str, ...]:
    """The grids of ``buckets``: one ISO-8601 duration, or a sequence of them.

    A string is one bucket (``"PT10S"``), never a sequence of one-character buckets.

    Raises:
        TypeError: ``buckets`` is not a string or a sequence of strings.
        ValueError: naming ``buckets`` and the value that is not a duration of 1 s to 30 days.
    """
    if not isinstance(buckets, Iterable) or isinstance(buckets, bytes | bytearray):
        msg = f"buckets must be an ISO-8601 duration or a sequence of them, not {buckets!r}"
        raise TypeError(msg)
    grids = (buckets,) if isinstance(buckets, str) else tuple(buckets)
    for bucket in grids:
        if not isinstance(bucket, str):
            msg = f"buckets must be ISO-8601 durations such as 'PT10S', not {bucket!r}"
            raise TypeError(msg)
        try:
            parse_bucket(bucket)
        except ValueError as exc:
            msg = f"buckets: {str(exc).removeprefix('bucket ')}"
            raise ValueError(msg) from None
    return grids


def check_options(*, buckets: str | Iterable[str], max_lag: int, tolerance_buckets: int,
                  n_boot: int, timeout: float) -> tuple[str, ...]:
    """The demo's buckets, once every option is one the batch path would take.

    ``max_lag``, ``tolerance_buckets``, ``n_boot`` and the buckets (none repeated, at most
    eight) are checked by :class:`cryptodudez.mood.results.MoodParams`, the batch path's
    parameters, so the demo takes what ``/correlation`` takes.

    Raises:
        TypeError: an option of the wrong type, named.
        ValueError: an option out of range, named.
    """
    grids = demo_buckets(buckets)
    for name, value in (("max_lag", max_lag), ("tolerance_buckets", tolerance_buckets),
                        ("n_boot", n_boot)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            msg = f"{name} must be a whole number, not {value!r}"
            raise TypeError(msg)
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        msg = f"timeout must be a positive number of seconds, not {timeout!r}"
        raise TypeError(msg)
    if not (math.isfinite(timeout) and timeout > 0):
        msg = f"timeout must be a positive, finite number of seconds, not {timeout!r}"
        raise ValueError(msg)
    # the coins are known only once the stream is consumed: any one name passes the check
    MoodParams(coins=("*",), buckets=grids, max_lag=int(max_lag),
               tolerance_buckets=int(tolerance_buckets), n_boot=int(n_boot))
    return grids


def nothing_to_replay(sources: Sequence[Path], report: PublishReport) -> ValueError:
    """The error for sources of which no line can be replayed: each named, with why."""
    reasons = [f"{origin}: {reason}" for origin, reason in report.skipped]
    reasons = reasons or [f"{', '.join(map(str, sources))}: no lines"]
    return ValueError(f"stream demo: nothing to replay; {'; '.join(reasons)}")


@dataclass(frozen=True)
class DemoResult:
    """What the demo published, what the consumer did, and the correlation table."""

    published: PublishReport
    consumed: RunReport
    correlation: pl.DataFrame
    state_file: Path


async def _demo(url: str, lines: Iterable[Line], report: PublishReport, state: Path, *,
                buckets: tuple[str, ...], max_lag: int, tolerance_buckets: int,
                n_boot: int) -> DemoResult:
    nc = await connect(url)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        published = await publish_lines(nc, lines, report=report)
        cfg = ConsumerConfig(durable="mood-demo", buckets=buckets, max_lag=max_lag,
                             tolerance_buckets=tolerance_buckets, n_boot=n_boot,
                             fetch_timeout=0.2, refresh_every=None)
        with StateStore(state, cfg.durable) as store:
            consumed = await MoodConsumer(nc, store, cfg).run()
            prices = store.price_aggregates()
            coins = sorted(set(prices["coin"].to_list()))
            # without trades no coin has a price series: the table is empty (its columns
            # from a placeholder coin), not the batch's "coins must be non-empty"
            table = correlation_from_aggregates(
                prices, store.sentiment_aggregates(), coins=coins or ["*"], buckets=buckets,
                max_lag=max_lag, tolerance_buckets=tolerance_buckets, n_boot=n_boot)
            table = table if coins else table.clear()
    finally:
        await nc.close()
    return DemoResult(published, consumed, table, state)


def run_stream_demo(source: StrPath | Sequence[StrPath] = SAMPLE, *,
                    state_dir: StrPath | None = None,
                    buckets: str | Sequence[str] = ("PT10S", "PT1M"), max_lag: int = 2,
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
        buckets: the grids: one ISO-8601 duration (``"PT10S"``) or a sequence of them,
            none repeated, at most eight.
        max_lag: lags ``-max_lag..max_lag`` (0 to 20).
        tolerance_buckets: the as-of join's tolerance, in buckets (0 to 1000).
        n_boot: bootstrap resamples per correlation (1 to 10,000).
        timeout: seconds for the whole replay and consumption (positive).

    The options, the sources and the first replayable line are all checked before the
    broker starts. Files or zip members that are not CryptoMood trades or sentiments are
    skipped and named in ``published.skipped``; the lines of the others still go. Without
    trades (sentiments only) the correlation table is empty, with its columns.

    Raises:
        FileNotFoundError: a source is not a file.
        TypeError: an option of the wrong type (naming it).
        ValueError: an option out of range (naming it), or no line of any source can be
            replayed (naming each source and why).
        TimeoutError: the demo did not finish in ``timeout`` seconds.
    """
    grids = check_options(buckets=buckets, max_lag=max_lag,
                          tolerance_buckets=tolerance_buckets, n_boot=n_boot, timeout=timeout)
    sources = source_paths(source)
    report = PublishReport()
    lines = read_lines(sources, report)  # skipped files and members are named in the report
    first = next(lines, None)  # so no broker starts when nothing can be replayed
    if first is None:
        raise nothing_to_replay(sources, report)
    with tempfile.TemporaryDirectory(prefix="cryptodudez-stream-") as scratch:
        folder = Path(state_dir) if state_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        state = folder / "stream-state.duckdb"
        for stale in (state, state.with_name(state.name + ".wal")):
            stale.unlink(missing_ok=True)
        with jetstream_server(Path(scratch) / "broker") as broker:
            return run_sync(lambda: _demo(
                broker.url, itertools.chain([first], lines), report, state, buckets=grids,
                max_lag=int(max_lag), tolerance_buckets=int(tolerance_buckets),
                n_boot=int(n_boot)), timeout)
