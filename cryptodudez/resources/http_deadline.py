"""A deadline for a whole HTTP exchange, down to each socket operation.

httpx's timeouts are per phase and per operation: a read timeout bounds the wait for each
chunk, not the exchange, so a server that sends its status line and headers a byte at a
time, each within the read timeout, holds a request for as long as it likes (a review found
this in the CoinGecko client). httpcore does every connect, TLS handshake, write and read
through a network backend with that operation's timeout; ``with_deadlines`` wraps the
backend of each of a client's connection pools, so that inside ``deadline(t)`` every such
timeout is capped by what is left until ``t`` (``time.monotonic``), and an operation that
would start after ``t`` raises httpcore's own timeout error, which httpx reports as its
``ConnectTimeout``, ``WriteTimeout`` or ``ReadTimeout``. Outside ``deadline`` nothing
changes. The deadline is a context variable, so each thread (and each call) has its own,
and pooled connections shared by calls carry none of their own.
"""

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import httpcore
import httpx

_DEADLINE: ContextVar[float | None] = ContextVar("http_deadline", default=None)

E = TypeVar("E", bound=Exception)


@contextmanager
def deadline(at: float) -> Iterator[None]:
    """Every socket operation of a wrapped client inside this block ends by ``at``."""
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _capped(timeout: float | None, error: type[E], operation: str) -> float | None:
    at = _DEADLINE.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error(f"the exchange's deadline passed before {operation}")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _capped(timeout, httpcore.ReadTimeout, "a read"))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout, httpcore.WriteTimeout, "a write"))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        capped = _capped(timeout, httpcore.ConnectTimeout, "the TLS handshake")
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, capped))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        capped = _capped(timeout, httpcore.ConnectTimeout, "connecting")
        return _Stream(self.inner.connect_tcp(host, port, capped, local_address,
                                              socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None,
                            ) -> httpcore.NetworkStream:
        capped = _capped(timeout, httpcore.ConnectTimeout, "connecting")
        return _Stream(self.inner.connect_unix_socket(path, capped, socket_options))

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def with_deadlines(client: httpx.Client) -> httpx.Client:
    """``client``, its connection pools' network backends wrapped (see the module docstring).

    httpx 0.28 offers no public way to give its transports a network backend, so this reaches
    the pools through two private attributes (``Client._transport`` and ``_mounts``, then
    httpcore's ``_network_backend``); when a version lacks them it raises rather than leave
    the client unbounded, and the loopback tests of the CoinGecko client fail.

    Raises:
        RuntimeError: a transport whose pool has no network backend to wrap.
    """
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        if transport is None:  # a mount that disables a proxy pattern
            continue
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if not isinstance(backend, httpcore.NetworkBackend):
            msg = (f"with_deadlines: {type(transport).__name__} has no httpcore network "
                   f"backend to wrap (httpx {httpx.__version__}, httpcore "
                   f"{httpcore.__version__})")
            raise RuntimeError(msg)
        if not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
    return client
