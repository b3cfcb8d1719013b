"""The live CoinGecko client against a loopback HTTP server that misbehaves on purpose.

pytest-httpserver serves scripted answers on 127.0.0.1: 429 with ``x-ratelimit-reset``, plan
errors (10012), truncated JSON, bodies slower than the read timeout or than the whole budget,
5xx. Each test asserts the exact number of requests its retry budget allows. Backoffs are
tens of milliseconds; the only real waits are the ones under test (a rate-limit reset under
a second and a half, a read timeout of 0.3 s, a budget of about a second).
"""

import contextlib
import itertools
import logging
import math
import os
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cryptodudez import cli
from cryptodudez.coingecko.prices import PricePoint
from cryptodudez.resources.coingecko import (
    PRO_BASE_URL,
    PUBLIC_BASE_URL,
    CoinGeckoBadResponseError,
    CoinGeckoError,
    CoinGeckoPlanError,
    CoinGeckoRateLimitError,
    CoinGeckoRequestError,
    CoinGeckoTimeoutError,
    CoinGeckoUnavailableError,
    HttpCoinGecko,
    OfflineCoinGecko,
    build_coingecko,
    reset_at,
)

SECRET = "CG-loopback-Secret-7f3a"
COINS = [{"id": "bitcoin", "symbol": "btc", "name": "Bitcoin"}]
COINS_BODY = msgspec.json.encode(COINS)
PLAN_10012 = msgspec.json.encode({"error": {"status": {
    "timestamp": "2026-01-01T00:00:00.000+00:00", "error_code": 10012,
    "error_message": "Your request exceeds the allowed time range. Public API users are "
                     "limited to querying historical data within the past 365 days."}}})
Answer = Callable[[], Response]


class Script:
    """Answers requests in order (the last answer repeats) and records when each came."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = answers
        self.requests: list[tuple[float, Request]] = []

    def __call__(self, request: Request) -> Response:
        self.requests.append((time.time(), request))
        return self.answers[min(len(self.requests), len(self.answers)) - 1]()

    @property
    def count(self) -> int:
        return len(self.requests)


def ok(body: bytes = COINS_BODY) -> Answer:
    return lambda: Response(body, status=200, content_type="application/json")


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
    return lambda: Response(body, status=code, headers=headers,
                            content_type="application/json")


def slow(first: bytes, pause: float, rest: bytes) -> Answer:
    """A 200 whose body stops for ``pause`` seconds after ``first``."""
    def body() -> Iterator[bytes]:
        yield first
        time.sleep(pause)
        yield rest
    return lambda: Response(body(), status=200, content_type="application/json")


def trickle(every: float, chunks: int) -> Answer:
    """A 200 whose body arrives one byte every ``every`` seconds (never a read timeout)."""
    def body() -> Iterator[bytes]:
        yield b"["
        for _ in range(chunks):
            time.sleep(every)
            yield b" "
        yield b"]"
    return lambda: Response(body(), status=200, content_type="application/json")


@pytest.fixture(scope="module")
def running_server() -> Iterator[HTTPServer]:
    # Threaded: a handler still sleeping on an abandoned slow body must not hold up the retry.
    # One server per module: stopping one takes half a second.
    httpserver = HTTPServer(host="127.0.0.1", threaded=True)
    httpserver.start()
    yield httpserver
    httpserver.stop()


@pytest.fixture
def server(running_server: HTTPServer) -> Iterator[HTTPServer]:
    running_server.clear()
    yield running_server
    running_server.clear()


def serve(server: HTTPServer, script: Script, path: str = "/api/v3/coins/list") -> Script:
    server.expect_request(path).respond_with_handler(script)
    return script


def client(server: HTTPServer, **options: Any) -> HttpCoinGecko:
    settings: dict[str, Any] = {
        "base_url": server.url_for("/api/v3"), "connect_timeout": 1.0, "read_timeout": 1.0,
        "total_timeout": 5.0, "max_attempts": 3, "backoff_initial": 0.01,
        "backoff_max": 0.05, "backoff_jitter": 0.01, "min_interval": 0.0}
    return HttpCoinGecko(**(settings | options))


def recorder() -> tuple[list[float], Callable[[float], None]]:
    """A real ``sleep`` that also notes each wait."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)
    return waits, sleep


def coingecko_reset(instant: float) -> str:
    """``x-ratelimit-reset`` as CoinGecko writes it: ``2025-07-25 14:54:00 +0000``."""
    return datetime.fromtimestamp(instant, tz=UTC).strftime("%Y-%m-%d %H:%M:%S +0000")


def whole_second_ahead() -> float:
    """The next whole second at least 0.3 s away (the header's resolution is one second)."""
    return float(math.ceil(time.time() + 0.3))


# --- rate limits -------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["coingecko date-time", "epoch seconds", "seconds from now"])
def test_a_429_is_retried_after_the_reset_it_announces(server: HTTPServer, form: str) -> None:
    if form == "seconds from now":
        reset_instant, header = time.time() + 0.5, "0.5"
    else:
        reset_instant = whole_second_ahead()
        header = (coingecko_reset(reset_instant) if form == "coingecko date-time"
                  else str(int(reset_instant)))
    script = serve(server, Script(status(429, headers={"x-ratelimit-reset": header}), ok()))
    waits, sleep = recorder()
    coins = client(server, sleep=sleep).coins_list()
    assert [c.id for c in coins] == ["bitcoin"]
    assert script.count == 2
    retried_at = script.requests[1][0]
    assert retried_at >= reset_instant - 0.02  # not before the reset (clock granularity)
    assert len(waits) == 1 and waits[0] < 1.6
    assert "retry-after" not in {k.lower() for k, _ in script.requests[0][1].headers.items()}


def test_a_persistent_429_stops_at_max_attempts_with_a_rate_limit_error(
        server: HTTPServer) -> None:
    script = serve(server, Script(status(429, headers={"x-ratelimit-reset": "0"})))
    with pytest.raises(CoinGeckoRateLimitError, match="all 3 attempt") as caught:
        client(server, max_attempts=3).coins_list()
    assert script.count == 3
    assert caught.value.attempts == 3


def test_a_reset_beyond_the_budget_fails_at_once_instead_of_sleeping(
        server: HTTPServer) -> None:
    reset = coingecko_reset(time.time() + 60)
    script = serve(server, Script(status(429, headers={"x-ratelimit-reset": reset})))
    started = time.monotonic()
    # The plan's limit is the cause, so the error says so (not a timeout) and when it ends.
    with pytest.raises(CoinGeckoRateLimitError,
                       match=r"after 1 attempt\(s\); the limit resets at .*after the 3 s "
                             "budget") as caught:
        client(server, total_timeout=3.0, max_attempts=5).coins_list()
    assert not isinstance(caught.value, CoinGeckoTimeoutError)
    assert caught.value.attempts == 1
    assert caught.value.retry_at == pytest.approx(reset_at(reset, now=time.time()))
    assert script.count == 1
    assert time.monotonic() - started < 1.0


def test_a_backoff_past_the_budget_after_a_429_that_resets_in_time_is_a_timeout(
        server: HTTPServer) -> None:
    # The reset is now; the 2 s backoff, not the limit, is what would pass the 1 s budget.
    script = serve(server, Script(status(429, headers={"x-ratelimit-reset": "0"})))
    with pytest.raises(CoinGeckoTimeoutError, match=r"gave up after 1 attempt.*HTTP 429"):
        client(server, total_timeout=1.0, max_attempts=5, backoff_initial=2.0,
               backoff_max=5.0, backoff_jitter=0.0).coins_list()
    assert script.count == 1


def test_exhausted_429s_carry_the_last_reset(server: HTTPServer) -> None:
    reset = coingecko_reset(whole_second_ahead() - 1)  # already past: no wait
    serve(server, Script(status(429, headers={"x-ratelimit-reset": reset})))
    with pytest.raises(CoinGeckoRateLimitError, match="all 2 attempt") as caught:
        client(server, max_attempts=2).coins_list()
    assert caught.value.retry_at == pytest.approx(reset_at(reset, now=time.time()))


def test_requests_are_spaced_by_the_client_side_rate_limit(server: HTTPServer) -> None:
    script = serve(server, Script(ok()))
    coingecko = client(server, min_interval=0.4)
    started = time.monotonic()
    for _ in range(4):
        coingecko.coins_list()
    assert time.monotonic() - started >= 3 * 0.4
    # Starts are spaced at the client; the first arrival also waited for the client and its
    # connection to be set up, so the server's gaps are compared from the second one on.
    arrivals = [t for t, _ in script.requests][1:]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert script.count == 4
    assert all(gap >= 0.3 for gap in gaps), gaps


# --- deadline, 5xx, transport ---------------------------------------------------------------

def test_5xx_is_retried_until_it_succeeds(server: HTTPServer) -> None:
    script = serve(server, Script(status(503), status(502), ok()))
    assert client(server, max_attempts=3).coins_list()[0].id == "bitcoin"
    assert script.count == 3


def test_persistent_5xx_stops_at_max_attempts(server: HTTPServer) -> None:
    script = serve(server, Script(status(500)))
    with pytest.raises(CoinGeckoUnavailableError, match=r"all 4 attempt.*HTTP 500"):
        client(server, max_attempts=4).coins_list()
    assert script.count == 4


def test_the_total_budget_stops_retries_before_max_attempts(server: HTTPServer) -> None:
    # Waits 0.4 s then 0.8 s: the second wait would end after the 1 s budget.
    script = serve(server, Script(status(503)))
    started = time.monotonic()
    with pytest.raises(CoinGeckoTimeoutError,
                       match=r"gave up after 2 attempt\(s\).*1 s budget.*HTTP 503") as caught:
        client(server, max_attempts=10, total_timeout=1.0, backoff_initial=0.4,
               backoff_max=5.0, backoff_jitter=0.0).coins_list()
    assert script.count == 2
    assert caught.value.attempts == 2
    assert time.monotonic() - started < 1.0


def test_a_body_slower_than_the_read_timeout_is_retried(server: HTTPServer) -> None:
    script = serve(server, Script(slow(b'[{"id": "bit', 0.6, b'coin"}]'), ok()))
    coins = client(server, read_timeout=0.3, max_attempts=2).coins_list()
    assert coins[0].id == "bitcoin"
    assert script.count == 2


def test_bodies_always_slower_than_the_read_timeout_exhaust_the_attempts(
        server: HTTPServer) -> None:
    script = serve(server, Script(slow(b"[", 0.6, b"]")))
    with pytest.raises(CoinGeckoUnavailableError, match=r"all 2 attempt.*ReadTimeout"):
        client(server, read_timeout=0.3, max_attempts=2).coins_list()
    assert script.count == 2


def test_a_body_trickling_past_the_budget_is_cut_off(server: HTTPServer) -> None:
    # A byte every 0.1 s never trips the 1 s read timeout; the 1 s budget ends it.
    script = serve(server, Script(trickle(0.1, 50)))
    started = time.monotonic()
    with pytest.raises(CoinGeckoTimeoutError, match="still arriving"):
        client(server, total_timeout=1.0, read_timeout=1.0).coins_list()
    assert script.count == 1
    assert time.monotonic() - started < 1.6


@contextmanager
def raw_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback server of one connection at a time that ``answer`` writes to by hand.

    For what an HTTP library's test server cannot do, like sending a status line and headers
    a byte at a time. Yields the root URL; the thread ends when the block does.
    """
    done = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.1)

        def serve_forever() -> None:
            while not done.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.recv(65536)  # the request (one small GET)
                    with contextlib.suppress(OSError):  # the client hung up
                        answer(conn)
        thread = threading.Thread(target=serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/v3"
        finally:
            done.set()
            thread.join(timeout=5)


def headers_trickling(every: float, count: int) -> Callable[[socket.socket], None]:
    """A status line, then a header byte every ``every`` seconds (never a read timeout)."""
    def answer(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nx-slow: ")
        for _ in range(count):
            time.sleep(every)
            conn.sendall(b"a")
        conn.sendall(b"\r\ncontent-length: 2\r\n\r\n[]")
    return answer


def test_headers_trickling_past_the_budget_are_cut_off() -> None:
    # A header byte every 0.1 s never trips the 1 s read timeout; the 1 s budget ends the
    # call (it ran for the 4 s the server took, before the deadline reached the sockets).
    with raw_server(headers_trickling(0.1, 40)) as url:
        coingecko = HttpCoinGecko(base_url=url, connect_timeout=1.0, read_timeout=1.0,
                                  total_timeout=1.0, max_attempts=3, backoff_initial=0.01,
                                  min_interval=0.0)
        started = time.monotonic()
        with pytest.raises(CoinGeckoTimeoutError,
                           match=r"status line and headers were still arriving when the "
                                 "1 s budget ran out") as caught:
            coingecko.coins_list()
        took = time.monotonic() - started
        coingecko.close()
    assert caught.value.attempts == 1
    assert took < 1.5, took


def test_headers_arriving_within_the_budget_are_read() -> None:
    # The same server, slow but in time: the deadline does not cut a call short.
    with raw_server(headers_trickling(0.05, 6)) as url:
        coingecko = HttpCoinGecko(base_url=url, read_timeout=1.0, total_timeout=2.0,
                                  max_attempts=1, min_interval=0.0)
        assert coingecko.coins_list() == []
        coingecko.close()


def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CoinGeckoUnavailableError, match=r"all 2 attempt.*ConnectError"):
        HttpCoinGecko(base_url=f"http://127.0.0.1:{port}/api/v3", max_attempts=2,
                      backoff_initial=0.01, backoff_jitter=0.0, min_interval=0.0).coins_list()


# --- plan errors and bad bodies -----------------------------------------------------------------

@pytest.mark.parametrize(("code", "body", "error_code"), [
    (401, PLAN_10012, 10012),
    (400, msgspec.json.encode({"status": {"error_code": 10005,
                                          "error_message": "upgrade your plan"}}), 10005),
    (401, msgspec.json.encode({"status": {"error_code": 10011}}), 10011),
    (403, b"", None),
])
def test_plan_errors_are_not_retried(server: HTTPServer, code: int, body: bytes,
                                     error_code: int | None) -> None:
    script = serve(server, Script(status(code, body)))
    with pytest.raises(CoinGeckoPlanError) as caught:
        client(server, max_attempts=5).coins_list()
    assert script.count == 1
    assert (caught.value.status_code, caught.value.error_code) == (code, error_code)
    assert caught.value.attempts == 1


def test_10012_says_what_it_means(server: HTTPServer) -> None:
    serve(server, Script(status(401, PLAN_10012)),
          path="/api/v3/coins/bitcoin/market_chart/range")
    with pytest.raises(CoinGeckoPlanError,
                       match=r"HTTP 401, error_code 10012: the time range is beyond the "
                             r"history this plan may query: Your request exceeds"):
        client(server).market_chart_range("bitcoin", "usd", datetime(2022, 1, 1, tzinfo=UTC),
                                          datetime(2022, 3, 31, tzinfo=UTC))


def test_other_client_errors_are_not_retried(server: HTTPServer) -> None:
    script = serve(server, Script(status(404, b'{"error": "coin not found"}')))
    with pytest.raises(CoinGeckoRequestError, match="HTTP 404: coin not found") as caught:
        client(server).coins_list()
    assert (script.count, caught.value.status_code) == (1, 404)


def test_truncated_json_is_retried(server: HTTPServer) -> None:
    script = serve(server, Script(ok(COINS_BODY[:-7]), ok()))
    assert client(server).coins_list()[0].id == "bitcoin"
    assert script.count == 2


def test_json_truncated_every_time_exhausts_the_attempts(server: HTTPServer) -> None:
    script = serve(server, Script(ok(b'[{"id": "bitcoin", "sym')))
    with pytest.raises(CoinGeckoBadResponseError, match=r"all 3 attempt.*invalid JSON"):
        client(server, max_attempts=3).coins_list()
    assert script.count == 3


def damaged_gzip() -> Answer:
    """A 200 that says gzip and is not (a proxy mangling it): httpx's DecodingError."""
    return lambda: Response(b"\x1f\x8b\x08\x00not gzip at all", status=200,
                            headers={"Content-Encoding": "gzip"},
                            content_type="application/json")


def test_a_damaged_compressed_body_is_retried_as_a_bad_response(server: HTTPServer) -> None:
    """httpx.DecodingError is no TransportError: it escaped unretried, as httpx's own."""
    script = serve(server, Script(damaged_gzip(), ok()))
    assert client(server).coins_list()[0].id == "bitcoin"
    assert script.count == 2
    server.clear()
    script = serve(server, Script(damaged_gzip()))
    with pytest.raises(CoinGeckoBadResponseError, match=r"all 3 attempt.*undecodable gzip body"):
        client(server, max_attempts=3).coins_list()
    assert script.count == 3


def test_json_of_the_wrong_shape_is_not_retried(server: HTTPServer) -> None:
    script = serve(server, Script(ok(b'{"prices": "soon"}')),
                   path="/api/v3/coins/bitcoin/market_chart/range")
    with pytest.raises(CoinGeckoBadResponseError, match=r"unexpected JSON.*\$.prices"):
        client(server).market_chart_range("bitcoin", "usd", datetime(2022, 1, 1, tzinfo=UTC),
                                          datetime(2022, 1, 3, tzinfo=UTC))
    assert script.count == 1


CHART_PATH = "/api/v3/coins/bitcoin/market_chart/range"
JAN_1_MS = 1_640_995_200_000  # 2022-01-01T00:00:00Z


def chart_with(price: bytes, *, days: int = 3, at: int = 1) -> bytes:
    """A market chart body of ``days`` daily points from 2022-01-01, ``price`` as written at
    point ``at`` (0-based): JSON has no inf, but a number beyond a double reads as one."""
    points = [b"[%d,%s]" % (JAN_1_MS + i * 86_400_000, price if i == at else b"46319.65")
              for i in range(days)]
    return b'{"prices":[' + b",".join(points) + b'],"market_caps":[],"total_volumes":[]}'


@pytest.mark.parametrize("written", [b"1e999", b"-1e999", b"1.5E+400"])
def test_a_price_beyond_a_float_is_a_bad_response_naming_it_and_its_day(
        server: HTTPServer, written: bytes) -> None:
    """msgspec refuses it as "Number out of range - at `$.prices[1][1]`": no value, no day."""
    script = serve(server, Script(ok(chart_with(written))), path=CHART_PATH)
    with pytest.raises(CoinGeckoBadResponseError) as caught:
        client(server).market_chart_range("bitcoin", "usd", datetime(2022, 1, 1, tzinfo=UTC),
                                          datetime(2022, 1, 3, tzinfo=UTC))
    sign = "-" if written.startswith(b"-") else ""
    assert str(caught.value) == (
        f"CoinGecko GET /coins/bitcoin/market_chart/range: price {written.decode()} at "
        f"2022-01-02T00:00:00+00:00 (point 2 of 3) is beyond a 64-bit float ({sign}inf), "
        "not positive and finite")
    assert (script.count, caught.value.attempts) == (1, 1)  # asking again returns the same


def test_the_cli_reports_a_price_beyond_a_float_in_one_line(
        server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The live API's answer is judged in the run: it fails, one line, exit 1, no traceback."""
    serve(server, Script(ok()))
    # 2022-01-03..05 and the four warm-up days before: 9 points, 2022-01-02 beyond a float
    serve(server, Script(ok(chart_with(b"1e999", days=9, at=1))), path=CHART_PATH)
    for var in [k for k in os.environ if k.startswith(("AWS_", "CRYPTODUDEZ_", "COINGECKO_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("COINGECKO_API_KEY", SECRET)
    monkeypatch.setenv("COINGECKO_KEY_TYPE", "pro")  # 0.25 s between requests, not 2 s
    monkeypatch.setenv("COINGECKO_BASE_URL", server.url_for("/api/v3"))
    assert cli.main(["coingecko", "--from", "2022-01-03", "--to", "2022-01-05"]) == 1
    out, err = capsys.readouterr()
    errors = [line for line in out.splitlines() if "error" in line.lower()]
    assert errors == [
        "  error: bitcoin_prices: cryptodudez.resources.coingecko.CoinGeckoBadResponseError: "
        "CoinGecko GET /coins/bitcoin/market_chart/range: price 1e999 at "
        "2022-01-02T00:00:00+00:00 (point 2 of 9) is beyond a 64-bit float (inf), not "
        "positive and finite"], out
    assert "Traceback" not in out + err and SECRET not in out + err


# --- requests, keys and secrecy ----------------------------------------------------------------

def test_market_chart_range_asks_for_daily_unix_seconds_and_decodes_the_prices(
        server: HTTPServer) -> None:
    body = msgspec.json.encode({"prices": [[1_640_995_200_000, 46319.65],
                                           [1_641_081_600_000, 47816.08]],
                                "market_caps": [], "total_volumes": []})
    script = serve(server, Script(ok(body)), path="/api/v3/coins/bitcoin/market_chart/range")
    prices = client(server).market_chart_range(
        "bitcoin", "usd", datetime(2022, 1, 1, tzinfo=UTC),
        datetime(2022, 1, 2, 23, 59, 59, tzinfo=UTC))
    assert prices == [PricePoint(1_640_995_200_000, 46319.65),
                      PricePoint(1_641_081_600_000, 47816.08)]
    assert dict(script.requests[0][1].args) == {
        "vs_currency": "usd", "from": "1640995200", "to": "1641167999", "interval": "daily"}


@pytest.mark.parametrize(("key_type", "header", "absent"), [
    ("demo", "x-cg-demo-api-key", "x-cg-pro-api-key"),
    ("pro", "x-cg-pro-api-key", "x-cg-demo-api-key"),
])
def test_the_key_travels_in_its_header_and_never_in_the_url(
        server: HTTPServer, key_type: str, header: str, absent: str) -> None:
    script = serve(server, Script(ok()))
    client(server, api_key=SECRET, key_type=key_type).coins_list()
    request = script.requests[0][1]
    assert request.headers.get(header) == SECRET
    assert request.headers.get(absent) is None
    assert SECRET not in request.url and SECRET not in request.query_string.decode()


def test_keyless_requests_send_no_key_header(server: HTTPServer) -> None:
    script = serve(server, Script(ok()))
    client(server).coins_list()
    headers = {k.lower() for k, _ in script.requests[0][1].headers.items()}
    assert not headers & {"x-cg-demo-api-key", "x-cg-pro-api-key"}


def test_the_key_never_reaches_logs_exceptions_or_repr(
        server: HTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    serve(server, Script(status(429, headers={"x-ratelimit-reset": "0"}), status(503),
                         ok(COINS_BODY[:5]), status(401, PLAN_10012)))
    coingecko = client(server, api_key=SECRET, key_type="demo", max_attempts=5)
    with pytest.raises(CoinGeckoError) as caught:
        coingecko.coins_list()
    assert isinstance(caught.value, CoinGeckoPlanError)
    text = "".join(traceback.format_exception(caught.value))
    logged = [r.getMessage() + repr(r.args) for r in caplog.records]
    assert any("HTTP 429" in line for line in logged)  # the retries were logged
    assert SECRET not in text
    assert not [line for line in logged if SECRET in line]
    assert SECRET not in repr(coingecko) and "<hidden>" in repr(coingecko)


def test_a_key_read_with_its_newline_is_sent_without_it(server: HTTPServer) -> None:
    """``COINGECKO_API_KEY=$(cat keyfile)`` keeps the newline: httpx refused the header and
    its error quoted the key into the output and Dagster's run storage (a reviewer)."""
    script = serve(server, Script(ok()))
    env = {"COINGECKO_API_KEY": f" {SECRET}\n", "COINGECKO_BASE_URL": server.url_for("/api/v3")}
    coingecko = HttpCoinGecko.from_env(env, min_interval=0, sleep=lambda _: None)
    coingecko.coins_list()
    assert script.requests[0][1].headers.get("x-cg-demo-api-key") == SECRET


@pytest.mark.parametrize("inside", [" ", "\t", "\n", "\x00", "é"])
def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it(inside: str) -> None:
    key = SECRET[:4] + inside + SECRET[4:]
    with pytest.raises(ValueError, match="COINGECKO_API_KEY: a key is visible ASCII") as caught:
        build_coingecko({"COINGECKO_API_KEY": key})
    assert SECRET[:4] not in str(caught.value)
    assert type(build_coingecko({"COINGECKO_API_KEY": " \n"})) is OfflineCoinGecko  # no key


# --- configuration --------------------------------------------------------------------------------

def test_the_root_url_follows_the_key_type() -> None:
    assert HttpCoinGecko(api_key=SECRET, key_type="pro").base_url == PRO_BASE_URL
    assert HttpCoinGecko(api_key=SECRET, key_type="demo").base_url == PUBLIC_BASE_URL
    assert HttpCoinGecko().base_url == PUBLIC_BASE_URL


@pytest.mark.parametrize("kwargs", [{"api_key": SECRET}, {"key_type": "demo"},
                                    {"api_key": SECRET, "key_type": "free"}])
def test_a_key_and_its_type_come_together(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="key_type") as caught:
        HttpCoinGecko(**kwargs)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, OfflineCoinGecko),
    ({"COINGECKO_API_KEY": SECRET}, HttpCoinGecko),
    ({"COINGECKO_API_KEY": SECRET, "COINGECKO_MODE": "offline"}, OfflineCoinGecko),
    ({"COINGECKO_MODE": "live"}, HttpCoinGecko),
])
def test_build_coingecko_is_offline_unless_told_to_go_live(
        env: dict[str, str], expected: type) -> None:
    assert type(build_coingecko(env)) is expected


def test_build_coingecko_reads_key_type_and_root_from_the_environment() -> None:
    coingecko = build_coingecko({"COINGECKO_API_KEY": SECRET, "COINGECKO_KEY_TYPE": "pro"})
    assert isinstance(coingecko, HttpCoinGecko)
    assert (coingecko.key_type, coingecko.base_url) == ("pro", PRO_BASE_URL)
    assert coingecko.min_interval == 0.25
    with pytest.raises(ValueError, match="COINGECKO_KEY_TYPE='free'"):
        build_coingecko({"COINGECKO_API_KEY": SECRET, "COINGECKO_KEY_TYPE": "free"})
    with pytest.raises(ValueError, match="COINGECKO_MODE='replay'"):
        build_coingecko({"COINGECKO_MODE": "replay"})


@pytest.mark.parametrize("url", ["notaurl", "api.coingecko.com/api/v3", "ftp://example.com/v3",
                                 "https:///api/v3", "http://127.0.0.1:99999/api/v3"])
def test_a_base_url_that_cannot_work_is_refused_naming_the_setting(url: str) -> None:
    named = rf"^COINGECKO_BASE_URL={re.escape(repr(url))}: "
    with pytest.raises(ValueError, match=named) as caught:
        build_coingecko({"COINGECKO_API_KEY": SECRET, "COINGECKO_BASE_URL": url})
    assert SECRET not in str(caught.value)
    with pytest.raises(ValueError, match="HttpCoinGecko: base_url="):
        HttpCoinGecko(base_url=url)
    assert HttpCoinGecko(base_url="HTTP://127.0.0.1:8/api/v3").base_url == \
        "HTTP://127.0.0.1:8/api/v3"


NOW = 1_700_000_000.0


@pytest.mark.parametrize(("header", "expected"), [
    ("2023-11-14 22:14:00 +0000", NOW + 40),   # CoinGecko's form
    ("1700000030", 1_700_000_030.0),                 # epoch seconds
    ("1700000030000", 1_700_000_030.0),              # epoch milliseconds
    ("12", NOW + 12),                                # seconds from now
    ("2023-11-14T22:14:00Z", NOW + 40),       # ISO 8601
    (format_datetime(datetime.fromtimestamp(NOW + 60, tz=UTC), usegmt=True), NOW + 60),
    ("soon", None),
    ("", None),
    (None, None),
])
def test_x_ratelimit_reset_forms(header: str | None, expected: float | None) -> None:
    assert reset_at(header, now=NOW) == expected
