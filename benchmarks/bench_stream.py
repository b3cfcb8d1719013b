"""Benchmark of the stream: publish and consume throughput, end-to-end lag, peak RSS.

A private ``nats-server -js`` (file storage) on 127.0.0.1; messages generated from the
shipped sample's 402 real lines (copy ``k`` has every timestamp shifted by ``k * 200 s``,
its trade uuids and tweet texts suffixed with ``k``, so every record is distinct and
valid). The publisher runs in its own process (``--role publish``), stamping each message
with its wall-clock publish time; the consumer (this process) is the project's
``MoodConsumer`` with its DuckDB state file. Lag = the wall-clock time a message's batch was
committed minus its publish stamp. Scenarios (each on a fresh stream):

``validate``
    ``prepare`` alone (validation by the lake engine + aggregates), no broker: the
    consumer's CPU ceiling.
``consume``
    the stream filled first, then consumed: the consumer's throughput through the broker.
``burst``
    publisher unpaced and consumer at the same time: end-to-end throughput.
``paced``
    publisher paced at each of ``--rates`` messages/s: the lag at a sustained rate.
``client``
    the stream filled first, then pulled and acked with the consumer's own fetch loop
    (``Puller``, ``to_message``, one ack per message) and nothing else: no validation, no
    state. The ceiling of any consumer built on the Python client (nats-py) on this machine.

Nothing here asserts on time. The machine may be shared: each scenario records the CPU that
other processes used while it ran (``others_cores``, from ``/proc/stat``).

Usage::

    python benchmarks/bench_stream.py        # 500k messages; paced: 200k at 2,000 and 5,000/s
    python benchmarks/bench_stream.py --messages 100000 --rates 8000 --tag small
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "cryptomood_sample.zip"
RESULTS = ROOT / "benchmarks" / "results"
SPAN = timedelta(seconds=200)  # the sample spans about 188 s: copies never share a bucket


def generate(messages: int) -> tuple[list[Any], int]:
    """Lines (``cryptodudez.stream.replay.Line``) that route to at least ``messages``
    messages, and how many they route to."""
    from cryptodudez.stream.replay import Line, read_lines, route, shifted  # noqa: PLC0415

    base = list(read_lines([SAMPLE]))
    lines: list[Any] = []
    routed = 0
    copy = 0
    while routed < messages:
        for line in base:
            data = shifted(line.data, copy, SPAN)
            lines.append(Line("generated", len(lines) + 1, line.kind, data))
            routed += len(route(line.kind, data))
            if routed >= messages:
                break
        copy += 1
    return lines, routed


def routed_count(messages: int) -> int:
    """How many messages :func:`generate` routes to, without building its lines (which
    would leave this process's memory, and so its measured peak, inflated)."""
    from cryptodudez.stream.replay import read_lines, route  # noqa: PLC0415

    counts = [len(route(line.kind, line.data)) for line in read_lines([SAMPLE])]
    routed = 0
    while True:  # a copy's routing does not depend on its shift
        for count in counts:
            routed += count
            if routed >= messages:
                return routed


# --- the publisher process ------------------------------------------------------------------


async def _publish(url: str, messages: int, rate: float | None, window: int) -> dict[str, Any]:
    from cryptodudez.stream.broker import connect  # noqa: PLC0415
    from cryptodudez.stream.replay import PublishReport, publish_lines  # noqa: PLC0415

    lines, _ = generate(messages)
    nc = await connect(url)
    report = PublishReport()
    started, cpu, wall = time.perf_counter(), time.process_time(), time.time()
    if rate:  # slices of 100 lines, each sent when due
        for start in range(0, len(lines), 100):
            await publish_lines(nc, lines[start:start + 100], window=window, stamp=True,
                                report=report)
            delay = started + report.messages / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    else:
        await publish_lines(nc, lines, window=window, stamp=True, report=report)
    seconds = time.perf_counter() - started
    await nc.close()
    return {"lines": report.lines, "messages": report.messages,
            "duplicates": report.duplicates, "seconds": seconds, "started_wall": wall,
            "msgs_per_s": report.messages / seconds, "cpu_s": time.process_time() - cpu,
            "cpu_total_s": time.process_time(),  # with start-up and generating the lines
            "peak_rss_mb": _proc_hwm_mb(os.getpid())}


def _publisher_main(args: argparse.Namespace) -> None:
    result = asyncio.run(asyncio.wait_for(
        _publish(args.url, args.messages, args.rate or None, args.window), args.timeout))
    sys.stdout.write(json.dumps(result) + "\n")


# --- helpers --------------------------------------------------------------------------------


def _busy_jiffies() -> int:
    """Busy CPU jiffies of the whole machine so far (all but idle and iowait), /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process so far, from /proc/<pid>/stat."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _reset_hwm() -> None:
    """Reset this process's peak RSS (VmHWM), so the next reading is this scenario's."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _proc_hwm_mb(pid: int) -> float:
    """Peak resident memory of a process (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _quantiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.50), "p99": pick(0.99), "max": ordered[-1],
            "mean": statistics.fmean(ordered)}


# --- scenarios ------------------------------------------------------------------------------


def scenario_validate(messages: int, batch: int) -> dict[str, Any]:
    """``prepare`` alone over the generated messages, in batches of ``batch``."""
    from cryptodudez.stream.apply import Message, prepare  # noqa: PLC0415
    from cryptodudez.stream.broker import subject  # noqa: PLC0415
    from cryptodudez.stream.replay import route  # noqa: PLC0415
    from cryptodudez.stream.state import AppliedKeys  # noqa: PLC0415

    lines, _ = generate(messages)
    routed = [(subject(line.kind, coin), line.data)
              for line in lines for coin in route(line.kind, line.data)]
    msgs = [Message(i + 1, name, data) for i, (name, data) in enumerate(routed)]
    prepare(msgs[:500], buckets=("PT10S", "PT1M"), keys=AppliedKeys(10**9),
            quarantined=())  # warm-up
    keys = AppliedKeys(10**9)  # nothing is dropped here
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(msgs), batch):
        delta = prepare(msgs[start:start + batch], buckets=("PT10S", "PT1M"), keys=keys,
                        quarantined=())
        keys.add(delta.keys.iter_rows())
    seconds = time.perf_counter() - started
    engine = _engine_only(msgs, batch)
    return {"messages": len(msgs), "seconds": seconds, "msgs_per_s": len(msgs) / seconds,
            "cpu_s": time.process_time() - cpu, "engine_only_seconds": engine,
            "engine_only_msgs_per_s": len(msgs) / engine,
            "engine_share": engine / seconds}


def _engine_only(msgs: Sequence[Any], batch: int) -> float:
    """Seconds ``ingest_members`` alone takes over the same batches and members."""
    from cryptodudez.archives import Member, Unpacked  # noqa: PLC0415
    from cryptodudez.datasets.specs import DATASETS  # noqa: PLC0415
    from cryptodudez.ingest import ingest_members  # noqa: PLC0415

    specs = {spec.table: spec for spec in DATASETS}
    started = time.perf_counter()
    for start in range(0, len(msgs), batch):
        groups: dict[str, list[bytes]] = {}
        for m in msgs[start:start + batch]:
            groups.setdefault(m.subject, []).append(m.data)
        for kind, table in (("trades", "coin_trades"), ("sentiments", "tweet_sentiments")):
            members = [Member(f"nats://b/{name}", name, b"\n".join(datas))
                       for name, datas in groups.items() if name.split(".")[1] == kind]
            if members:
                ingest_members(Unpacked(members=members), [specs[table]])
    return time.perf_counter() - started


async def _consume(url: str, state: Path, expected: int, batch: int, timeout: float, *,
                   publisher: subprocess.Popen[str], key_horizon: str) -> dict[str, Any]:
    from cryptodudez.stream.broker import connect  # noqa: PLC0415
    from cryptodudez.stream.consumer import ConsumerConfig, MoodConsumer  # noqa: PLC0415
    from cryptodudez.stream.state import StateStore  # noqa: PLC0415

    lags: list[float] = []
    first_applied: list[float] = []
    batches: list[tuple[float, int, float]] = []  # (commit time, size, max lag) per batch
    cycles: list[float] = []  # seconds between consecutive commits

    def record(_: Any, messages: Sequence[Any]) -> None:
        now, clock = time.time_ns(), time.perf_counter()
        if not first_applied:
            first_applied.append(clock)
        mine = [(now - m.published_ns) / 1e9 for m in messages if m.published_ns]
        lags.extend(mine)
        cycles.append(clock - (batches[-1][0] if batches else clock))
        batches.append((clock, len(messages), max(mine, default=0.0)))

    nc = await connect(url)
    cfg = ConsumerConfig(durable="bench", batch=batch, fetch_timeout=0.5, refresh_every=None,
                         ack_wait=120.0)
    cpu = time.process_time()
    started = time.perf_counter()
    with StateStore(state, cfg.durable, key_horizon=key_horizon) as store:
        consumer = MoodConsumer(nc, store, cfg, after_commit=record)
        await consumer.start()
        total = None
        while True:
            report = await asyncio.wait_for(consumer.run(until_caught_up=True), timeout)
            total = report if total is None else _merge(total, report)
            if total.messages >= expected:
                break
            if publisher.poll():
                msg = f"the publisher failed ({publisher.returncode}) before it published all"
                raise RuntimeError(msg)
        progress = store.progress()
        keys_held = len(store.keys)
        keys_in_file = store.keys_in_file()
    await nc.close()
    finished = time.perf_counter()
    return {"messages": total.messages, "applied": progress.applied,
            "quarantined": progress.quarantined, "batches": total.batches,
            "key_horizon": key_horizon, "keys_pruned": total.pruned,
            "keys_held": keys_held, "keys_in_file": keys_in_file,
            "seconds": finished - started,
            "busy_seconds": finished - (first_applied[0] if first_applied else started),
            "msgs_per_s": total.messages / (finished - started), "cpu_s":
            time.process_time() - cpu, "stage_seconds": total.timings,
            "stage_us_per_msg": {k: v / max(total.messages, 1) * 1e6
                                 for k, v in total.timings.items()},
            "lag_s": _quantiles(lags), "finished_wall": time.time(),
            "batch_size": _quantiles([float(n) for _, n, _ in batches]),
            "seconds_between_commits": _quantiles(cycles[1:]),
            "slowest_batches": sorted(
                ({"index": i, "seconds_since_previous_commit": cycles[i], "size": n,
                  "max_lag_s": lag} for i, (_, n, lag) in enumerate(batches)),
                key=lambda b: -b["max_lag_s"])[:5]}


async def _consume_bare(url: str, expected: int, batch: int, timeout: float) -> dict[str, Any]:
    """Pull and ack ``expected`` messages with the consumer's fetch loop, doing nothing else."""
    from nats.js import api  # noqa: PLC0415

    from cryptodudez.stream.broker import STREAM, connect  # noqa: PLC0415
    from cryptodudez.stream.consumer import Puller, to_message  # noqa: PLC0415

    nc = await connect(url)
    await nc.jetstream().add_consumer(STREAM, api.ConsumerConfig(
        durable_name="bare", deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT, ack_wait=120.0, max_ack_pending=10 * batch))
    puller = Puller(nc, STREAM, "bare")
    await puller.start(pending=4 * batch + 1000)
    cpu, started = time.process_time(), time.perf_counter()
    timings = dict.fromkeys(("fetch", "to_message", "ack"), 0.0)
    received = 0

    async def loop() -> None:
        nonlocal received
        while received < expected:
            clock = time.perf_counter()
            msgs = await puller.fetch(batch, timeout=0.5, linger=0.02)
            timings["fetch"] += time.perf_counter() - clock
            clock = time.perf_counter()
            messages = [to_message(m) for m in msgs]
            timings["to_message"] += time.perf_counter() - clock
            clock = time.perf_counter()
            for m in msgs:
                await m.ack()
            timings["ack"] += time.perf_counter() - clock
            received += len(messages)

    await asyncio.wait_for(loop(), timeout)
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu
    await puller.stop()
    await nc.close()
    return {"messages": received, "seconds": seconds, "msgs_per_s": received / seconds,
            "cpu_s": cpu_s, "cpu_us_per_msg": cpu_s / max(received, 1) * 1e6,
            "stage_us_per_msg": {k: v / max(received, 1) * 1e6 for k, v in timings.items()},
            "finished_wall": time.time()}


def _merge(a: Any, b: Any) -> Any:
    for name in ("batches", "messages", "applied", "quarantined", "skipped", "refreshes",
                 "pruned"):
        setattr(a, name, getattr(a, name) + getattr(b, name))
    for key, value in b.timings.items():
        a.timings[key] += value
    return a


def _spawn_publisher(url: str, messages: int, rate: float | None, window: int,
                     timeout: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--role", "publish", "--url", url, "--messages",
         str(messages), "--rate", str(rate or 0), "--window", str(window), "--timeout",
         str(timeout)], stdout=subprocess.PIPE, text=True)


def _publisher_result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode:
        msg = f"publisher failed with {proc.returncode}"
        raise RuntimeError(msg)
    return json.loads(out.strip().splitlines()[-1])


def scenario_stream(kind: str, args: argparse.Namespace, *, messages: int,
                    rate: float | None = None) -> dict[str, Any]:
    """One broker, one fresh stream: ``consume``, ``burst`` or ``paced`` (at ``rate``)."""
    from cryptodudez.stream.broker import connect, ensure_stream, jetstream_server  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="bench-stream-") as scratch, \
            jetstream_server(Path(scratch) / "broker") as broker:
        async def fresh() -> None:
            nc = await connect(broker.url)
            await ensure_stream(nc.jetstream())
            await nc.close()

        asyncio.run(fresh())
        expected = routed_count(messages)
        _reset_hwm()
        busy0, span0 = _busy_jiffies(), time.time()
        server0 = _proc_cpu_s(broker.pid)
        cpu0 = time.process_time()
        publisher = _spawn_publisher(broker.url, messages, rate, args.window, args.timeout)
        prefilled = kind in ("consume", "client")  # the stream is filled, then consumed
        if prefilled:
            published = _publisher_result(publisher, args.timeout)
        if kind == "client":
            consumed = asyncio.run(_consume_bare(broker.url, expected, args.batch,
                                                 args.timeout))
        else:
            consumed = asyncio.run(_consume(broker.url, Path(scratch) / "state.duckdb",
                                            expected, args.batch, args.timeout,
                                            publisher=publisher,
                                            key_horizon=args.key_horizon))
        if not prefilled:
            published = _publisher_result(publisher, args.timeout)
        busy1, span1 = _busy_jiffies(), time.time()
        server_cpu = _proc_cpu_s(broker.pid) - server0
        server_hwm = _proc_hwm_mb(broker.pid)
    ours = (time.process_time() - cpu0) + published["cpu_total_s"] + server_cpu
    machine = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
    wall = (consumed["seconds"] if prefilled
            else consumed["finished_wall"] - published["started_wall"])
    result = {
        "scenario": kind, "rate_target": rate, "published": published, "consumed": consumed,
        "end_to_end_seconds": wall,
        "end_to_end_msgs_per_s": None if prefilled else consumed["messages"] / wall,
        "server": {"cpu_s": server_cpu, "peak_rss_mb": server_hwm},
        "consumer_peak_rss_mb": _proc_hwm_mb(os.getpid()),
        # CPU over the whole span the busy counters cover (the publisher's start-up
        # included), not over the end-to-end or consume time alone.
        "measured_span_s": span1 - span0,
        "others_cores": max(0.0, (machine - ours) / (span1 - span0)),
        "machine_cores_busy": machine / (span1 - span0),
    }
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--role", choices=["bench", "publish"], default="bench")
    parser.add_argument("--url", default="")
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--rates", default="2000,5000",
                        help="publish rates (messages/s) of the paced scenarios")
    parser.add_argument("--paced-messages", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)  # publisher
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--window", type=int, default=8000)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--scenarios", default="validate,consume,burst,paced")
    parser.add_argument("--key-horizon", default="PT1H",  # the recorded runs' horizon
                        help="the consumer's key horizon (ISO-8601 duration of event time; "
                             "default PT1H, not the library's PT10M, as in the recorded runs)")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    if args.role == "publish":
        _publisher_main(args)
        return
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "loadavg_before": os.getloadavg()},
        "messages": args.messages, "paced_messages": args.paced_messages,
        "batch": args.batch, "window": args.window, "key_horizon": args.key_horizon,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "scenarios": {}}
    runs: list[tuple[str, str, float | None]] = []
    for kind in args.scenarios.split(","):
        if kind == "paced":
            runs += [(f"paced_{rate}", kind, float(rate)) for rate in args.rates.split(",")]
        else:
            runs.append((kind, kind, None))
    for name, kind, rate in runs:
        sys.stderr.write(f"[bench_stream] {name} ...\n")
        if kind == "validate":
            results["scenarios"][name] = scenario_validate(args.messages, args.batch)
        else:
            results["scenarios"][name] = scenario_stream(
                kind, args, messages=args.paced_messages if rate else args.messages, rate=rate)
        sys.stderr.write(json.dumps(results["scenarios"][name], default=str)[:600] + "\n")
    name = f"bench_stream{'_' + args.tag if args.tag else ''}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(results, indent=2, default=str) + "\n")
    sys.stderr.write(f"[bench_stream] wrote {RESULTS / name}\n")


if __name__ == "__main__":
    main()
