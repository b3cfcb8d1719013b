"""``http_deadline``: every pool of a client is wrapped, and a deadline caps each operation."""

import time

import httpcore
import httpx
import pytest

from cryptodudez.resources import http_deadline


def backends(client: httpx.Client) -> list[httpcore.NetworkBackend]:
    transports = [client._transport, *client._mounts.values()]
    return [t._pool._network_backend for t in transports if t is not None]  # type: ignore[attr-defined]


def test_the_proxy_pools_from_the_environment_are_wrapped_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with http_deadline.with_deadlines(httpx.Client()) as client:
        found = backends(client)
        assert len(found) == 3  # the direct pool and one per proxy pattern
        assert all(isinstance(b, http_deadline._Backend) for b in found)
        # Wrapping twice does not stack wrappers.
        http_deadline.with_deadlines(client)
        assert all(not isinstance(b.inner, http_deadline._Backend)  # type: ignore[attr-defined]
                   for b in backends(client))


def test_a_deadline_already_past_fails_the_connect_without_touching_the_network() -> None:
    # 127.0.0.1:9 (discard) is never reached: the wrapper refuses before connecting.
    with (http_deadline.with_deadlines(httpx.Client(trust_env=False)) as client,
          http_deadline.deadline(time.monotonic() - 1),
          pytest.raises(httpx.ConnectTimeout, match="deadline passed before connecting")):
        client.get("http://127.0.0.1:9/")


def test_outside_a_deadline_the_timeouts_are_the_operations_own() -> None:
    assert http_deadline._capped(2.5, httpcore.ReadTimeout, "a read") == 2.5
    assert http_deadline._capped(None, httpcore.ReadTimeout, "a read") is None
    with http_deadline.deadline(time.monotonic() + 1.0):
        assert http_deadline._capped(None, httpcore.ReadTimeout, "a read") <= 1.0
        assert http_deadline._capped(0.25, httpcore.ReadTimeout, "a read") == 0.25
    assert http_deadline._capped(2.5, httpcore.ReadTimeout, "a read") == 2.5
