"""The broker's own floor: what 50,000 messages/s costs before any client or consumer work.

``bench_stream.py`` measures the project's stream (nats-py on both sides, the lake engine in
the consumer). This script asks what is left when the clients cost next to nothing: the same
``nats-server -js`` (file storage, the project's stream config with its ``Nats-Msg-Id``
duplicate window) fed and drained over plain sockets by the thinnest Python clients that
still keep JetStream's guarantees:

- the publisher writes ``HPUB`` frames with a ``Nats-Msg-Id`` header and a reply subject, many
  in flight, and counts the broker's acks (a window of ``--window`` messages);
- the puller, in a process of its own, sends pull requests of ``--batch`` messages to a durable
  consumer and acks them (``--ack explicit``: one ack per message, written together;
  ``--ack all``: the batch's last message acks the batch), parsing each ``MSG`` frame's
  header and payload length and nothing else.

Both run at once (the ``burst`` shape of ``bench_stream.py``). Measured: messages/s end to end,
and the CPU of the server, the publisher and the puller, from ``/proc`` (Linux), in seconds
and per message. Those per-message costs times 50,000 are the cores the target would need
before a consumer validates or aggregates anything.

    python benchmarks/bench_broker_floor.py --messages 500000 --out bench_broker_floor
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptodudez.stream.broker import (
    STREAM,
    connect,
    ensure_stream,
    jetstream_server,
    run_sync,
)

RESULTS = Path(__file__).parent / "results"
TICK = os.sysconf("SC_CLK_TCK")
PAYLOAD = (b'{"coin":"BTC","price":43210.5,"volume":0.125,"side":"buy",'
           b'"timestamp":"2022-01-01T00:00:00.000Z","exchange":"binance"}')


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def own_cpu() -> float:
    """This process's CPU seconds."""
    t = os.times()
    return t.user + t.system


class Wire:
    """A NATS connection over a plain socket: CONNECT, and frames read by their lengths."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("nats://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self._line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true,"protocol":1}\r\nPING\r\n')
        while self._line() != b"PONG":
            pass

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        self.buf += chunk

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:end])
        del self.buf[:end + 2]
        return line

    def frames(self) -> list[tuple[bytes, bytes | None, bytes]]:
        """Every whole frame buffered (reading once if none is): (op line, reply, payload)."""
        out: list[tuple[bytes, bytes | None, bytes]] = []
        while not out:
            if not self.buf:
                self._fill()
            buf, at = self.buf, 0
            while True:
                end = buf.find(b"\r\n", at)
                if end < 0:
                    break
                head = bytes(buf[at:end])
                if head.startswith((b"MSG ", b"HMSG ")):
                    parts = head.split(b" ")
                    size = int(parts[-1])
                    if end + 2 + size + 2 > len(buf):
                        break
                    reply = parts[3] if len(parts) == (5 if head[0] == 77 else 6) else None
                    out.append((head, reply, bytes(buf[end + 2:end + 2 + size])))
                    at = end + 2 + size + 2
                else:
                    if head == b"PING":
                        self.sock.sendall(b"PONG\r\n")
                    at = end + 2
            del buf[:at]
            if not out:
                self._fill()
        return out


def publish(url: str, n: int, window: int, out: mp.Queue) -> None:
    """Publish ``n`` messages with ids and acks, at most ``window`` unacked."""
    wire = Wire(url)
    wire.sock.sendall(b"SUB _ACKS.* 1\r\n")
    cpu0, t0 = own_cpu(), time.perf_counter()
    sent = acked = 0
    coins = [b"BTC", b"ETH", b"LTC", b"XRP"]
    while acked < n:
        if sent < n and sent - acked < window:
            frames = []
            for i in range(sent, min(n, acked + window, sent + 1000)):
                header = b"NATS/1.0\r\nNats-Msg-Id: m%d\r\n\r\n" % i
                frames.append(b"HPUB cryptomood.trades.%s _ACKS.%d %d %d\r\n%s%s\r\n" % (
                    coins[i & 3], i, len(header), len(header) + len(PAYLOAD), header, PAYLOAD))
            wire.sock.sendall(b"".join(frames))
            sent += len(frames)
            continue
        for _head, _reply, payload in wire.frames():
            if b'"error"' in payload:
                raise RuntimeError(payload.decode())
            acked += 1
    out.put({"role": "publisher", "seconds": time.perf_counter() - t0,
             "cpu_s": own_cpu() - cpu0, "messages": n})


def pull(url: str, durable: str, n: int, batch: int, ack: str, out: mp.Queue) -> None:
    """Pull and ack ``n`` messages from ``durable``, ``batch`` per request."""
    wire = Wire(url)
    wire.sock.sendall(b"SUB _PULL.* 2\r\n")
    nxt = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{durable}".encode()
    cpu0, t0 = own_cpu(), time.perf_counter()
    got = requests = 0
    first_at = None
    open_left = 0
    while got < n:
        if open_left == 0:
            requests += 1
            body = b'{"batch":%d,"expires":%d}' % (batch, 2_000_000_000)
            wire.sock.sendall(b"PUB %s _PULL.%d %d\r\n%s\r\n" % (nxt, requests, len(body), body))
            open_left = batch
        replies = []
        for _head, reply, _payload in wire.frames():
            if reply is not None and reply.startswith(b"$JS.ACK."):
                replies.append(reply)
                open_left -= 1
            else:  # a status (408 expired, 409, 100): the request has ended
                open_left = 0
        if replies:
            first_at = first_at or time.perf_counter()
            got += len(replies)
            if ack == "all":
                wire.sock.sendall(b"PUB %s 0\r\n\r\n" % replies[-1])
            else:
                wire.sock.sendall(b"".join(b"PUB %s 0\r\n\r\n" % r for r in replies))
    out.put({"role": "puller", "seconds": time.perf_counter() - t0,
             "cpu_s": own_cpu() - cpu0, "messages": got, "requests": requests})


async def _setup(url: str, durable: str, batch: int, ack: str) -> None:
    from nats.js import api  # noqa: PLC0415

    nc = await connect(url)
    js = nc.jetstream()
    await ensure_stream(js)
    await js.add_consumer(STREAM, api.ConsumerConfig(
        durable_name=durable, deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.ALL if ack == "all" else api.AckPolicy.EXPLICIT,
        ack_wait=120.0, max_ack_pending=10 * batch))
    await nc.close()


def run(messages: int, window: int, batch: int, ack: str) -> dict:
    """One burst: publisher and puller at once on a fresh broker."""
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp, \
            jetstream_server(Path(tmp)) as broker:
        durable = "floor"
        run_sync(lambda: _setup(broker.url, durable, batch, ack), 30)
        ctx = mp.get_context("spawn")
        results: mp.Queue = ctx.Queue()
        server0 = proc_cpu(broker.pid)
        t0 = time.perf_counter()
        procs = [ctx.Process(target=pull, args=(broker.url, durable, messages, batch, ack,
                                                results)),
                 ctx.Process(target=publish, args=(broker.url, messages, window, results))]
        for p in procs:
            p.start()
        got = {r["role"]: r for r in (results.get(timeout=600) for _ in procs)}
        for p in procs:
            p.join(60)
        wall = time.perf_counter() - t0
        server = proc_cpu(broker.pid) - server0
    per = {k: got[k]["cpu_s"] / messages * 1e6 for k in got}
    per["server"] = server / messages * 1e6
    return {
        "ack": ack, "messages": messages, "window": window, "batch": batch,
        "wall_s": round(wall, 3),
        "end_to_end_msgs_per_s": round(messages / wall),
        "publisher_msgs_per_s": round(messages / got["publisher"]["seconds"]),
        "cpu_s": {"server": round(server, 2), "publisher": round(got["publisher"]["cpu_s"], 2),
                  "puller": round(got["puller"]["cpu_s"], 2)},
        "cpu_us_per_message": {k: round(v, 2) for k, v in per.items()},
        "cores_at_50k": {k: round(v * 50_000 / 1e6, 3) for k, v in per.items()},
        "cores_at_50k_total": round(sum(per.values()) * 50_000 / 1e6, 3),
        # what 2 cores leave a consumer per message at 50,000 messages/s, perfect overlap
        "us_per_message_left_at_50k": round(2e6 / 50_000 - sum(per.values()), 2),
        "pull_requests": got["puller"]["requests"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--window", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--ack", default="explicit,all")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", default=None, help="result file name in benchmarks/results")
    args = parser.parse_args()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load0 = os.getloadavg()
    runs = [run(args.messages, args.window, args.batch, ack)
            for ack in args.ack.split(",") for _ in range(args.repeat)]
    report = {"started": started, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "loadavg_before": load0, "payload_bytes": len(PAYLOAD), "runs": runs}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        (RESULTS / f"{args.out}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
