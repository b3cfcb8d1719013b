"""CoinGecko: the market-data API behind an interface, with a live and an offline implementation.

``CoinGecko`` is what assets annotate. ``HttpCoinGecko`` calls the API over HTTPS;
``OfflineCoinGecko`` serves responses recorded from it (built from the shipped daily-price
CSV), so the whole job runs without a network. ``build_coingecko`` chooses between them.

The live client, call by call (``coins_list``, ``market_chart_range``):

- **Authentication**: a key goes in a header, ``x-cg-demo-api-key`` for a Demo key (root
  ``https://api.coingecko.com/api/v3``) or ``x-cg-pro-api-key`` for a paid key (root
  ``https://pro-api.coingecko.com/api/v3``); no key uses the public root without a header.
  The key never goes into a URL, a log record, an exception or ``repr``.
- **Time**: every call has a total budget (``total_timeout``) covering the client-side rate
  limit, every attempt and every wait between attempts. Every socket operation of an attempt
  (connect, TLS, write, each read of the status line, headers and body) is bounded by what is
  left of the budget as well as by its own timeout (``http_deadline``), so a status line,
  headers or a body that trickles in a byte at a time ends at the budget too. A call returns
  or raises within ``total_timeout`` (plus the time to decode an answer that came in time);
  when the budget runs out, or the next wait would pass it, ``CoinGeckoTimeoutError`` says
  so, unless the wait is a 429's announced reset (below).
- **Retries** (tenacity): on 429, 408, 5xx, transport errors (connection refused or reset,
  timeouts, a body cut short of its ``Content-Length``) and a body that is not valid JSON (a
  truncated answer from a proxy) or that does not decompress (a damaged gzip: httpx's
  ``DecodingError``, which escaped as httpx's own until a review), up to ``max_attempts``
  attempts in all. The wait is
  exponential with jitter (``backoff_initial * 2**n + uniform(0, backoff_jitter)``, capped at
  ``backoff_max``); after a 429 it is at least until ``x-ratelimit-reset`` (CoinGecko sends
  no ``Retry-After``), plus jitter.
- **x-ratelimit-reset**: CoinGecko sends the instant the limit resets as a date-time,
  ``2025-07-25 14:54:00 +0000`` (seen on 429s of the live API). Also understood: a number
  above 1e9 as UNIX epoch seconds (above 1e12, milliseconds), a smaller number as seconds
  from now, ISO 8601 and HTTP dates. An unreadable value falls back to the backoff.
- **Not retried**: plan and key errors (HTTP 401, 402, 403, or CoinGecko error codes 10002
  missing key, 10005 endpoint not in the plan, 10010/10011 key type and root URL do not
  match, 10012 time range beyond the plan's history) raise ``CoinGeckoPlanError``; other 4xx
  raise ``CoinGeckoRequestError``; well-formed JSON of the wrong shape raises
  ``CoinGeckoBadResponseError`` at once (asking again returns the same), and so does a
  price beyond a 64-bit float (``1e999``, which many parsers read as infinity and msgspec
  refuses as "Number out of range"), naming the price as written, its point and its day.
- **Exhausted retries** raise ``CoinGeckoRateLimitError`` (still 429),
  ``CoinGeckoUnavailableError`` (5xx, transport) or ``CoinGeckoBadResponseError`` (invalid
  JSON, an undecodable body), each naming the attempts. A 429 whose ``x-ratelimit-reset``
  lies past the budget raises ``CoinGeckoRateLimitError`` at once, with the reset as its
  ``retry_at`` (it was reported as a timeout, which hid that the plan's limit was the cause,
  until session 23).
- **Client-side rate limit**: requests start at least ``min_interval`` seconds apart (by
  default 6 s keyless, 2 s Demo, i.e. 30/min, 0.25 s paid), shared by all calls of a client.
"""

import abc
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args
from urllib.parse import quote, urlsplit

import httpx
import msgspec
import polars as pl
import tenacity

from cryptodudez.coingecko.prices import DAY_MS, PRICE_RULE, CoinRef, PricePoint, valid_price
from cryptodudez.resources import http_deadline
from cryptodudez.settings import PROJECT_DIR

log = logging.getLogger(__name__)

T = TypeVar("T")
KeyType = Literal["demo", "pro"]

PUBLIC_BASE_URL = "https://api.coingecko.com/api/v3"
PRO_BASE_URL = "https://pro-api.coingecko.com/api/v3"
KEY_HEADERS: dict[KeyType, str] = {"demo": "x-cg-demo-api-key", "pro": "x-cg-pro-api-key"}
# Seconds between request starts: keyless calls share an IP limit of a few per minute; the
# Demo plan allowed 30 calls/min (its docs now say 100): 2 s keeps under both; paid plans
# start at a few hundred per minute.
MIN_INTERVALS: dict[KeyType | None, float] = {None: 6.0, "demo": 2.0, "pro": 0.25}
PLAN_ERROR_CODES: dict[int, str] = {
    10002: "no API key was sent",
    10005: "the endpoint is not available on this plan",
    10010: "a Pro key was sent to the Demo root URL (or the key is invalid)",
    10011: "a Demo key was sent to the Pro root URL (or the key is invalid)",
    10012: "the time range is beyond the history this plan may query",
}
PLAN_STATUSES = frozenset({401, 402, 403})
MAX_BODY_BYTES = 64 * 1024 * 1024  # /coins/list is about 2 MB
# A socket timeout set to the time left may fire this much before the deadline by the clock.
_DEADLINE_GRAIN_S = 0.005
# The real CoinGecko answer for Bitcoin, 2022-01-01..2022-04-02 (the shared data's file),
# shipped with the project so the offline twin works on a fresh clone.
DEFAULT_RECORDING = PROJECT_DIR / "samples" / "coingecko_bitcoin_usd_daily_2022Q1.csv"
# A recorded timestamp beyond this (9999-12-31, ms) or before 1970 is not a CoinGecko day.
_LAST_MS = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp() * 1000)

# What build_coingecko reads.
ENV_MODE = "COINGECKO_MODE"            # live | offline; default: live when a key is set
ENV_API_KEY = "COINGECKO_API_KEY"      # the secret
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")  # what an HTTP header value may carry as a key
ENV_KEY_TYPE = "COINGECKO_KEY_TYPE"    # demo (default) | pro
ENV_BASE_URL = "COINGECKO_BASE_URL"    # optional root URL (a proxy, a test server)
ENV_RECORDING = "COINGECKO_RECORDING"  # offline: the daily-price CSV (default: shared data)


class CoinGeckoError(Exception):
    """Base of the CoinGecko errors.

    Attributes:
        attempts: how many HTTP requests the call made (None when none was needed).
    """

    def __init__(self, message: str, *, attempts: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts


class CoinGeckoPlanError(CoinGeckoError):
    """The key or the plan does not allow the request (401/402/403, codes 100xx); not retried.

    Attributes:
        status_code: the HTTP status.
        error_code: CoinGecko's ``error_code`` from the body, when there is one.
    """

    def __init__(self, message: str, *, status_code: int, error_code: int | None,
                 attempts: int | None = None) -> None:
        super().__init__(message, attempts=attempts)
        self.status_code = status_code
        self.error_code = error_code


class CoinGeckoRequestError(CoinGeckoError):
    """The request itself is wrong (another 4xx: unknown coin, bad parameter); not retried.

    Attributes:
        status_code: the HTTP status.
    """

    def __init__(self, message: str, *, status_code: int,
                 attempts: int | None = None) -> None:
        super().__init__(message, attempts=attempts)
        self.status_code = status_code


class CoinGeckoBadResponseError(CoinGeckoError):
    """The body is not the JSON expected: invalid after all attempts, or of the wrong shape."""


class CoinGeckoUnavailableError(CoinGeckoError):
    """Every attempt failed with 5xx, 408 or a transport error."""


class CoinGeckoRateLimitError(CoinGeckoUnavailableError):
    """Answered 429 at every attempt, or with a limit that resets only after the budget.

    Attributes:
        retry_at: UNIX time at which the last 429 said the limit resets (None when it did not
            say, or said something unreadable).
    """

    def __init__(self, message: str, *, attempts: int | None = None,
                 retry_at: float | None = None) -> None:
        super().__init__(message, attempts=attempts)
        self.retry_at = retry_at


class CoinGeckoTimeoutError(CoinGeckoError):
    """The call's total time budget ran out (or the next wait would have passed it)."""


class CoinGecko(abc.ABC):
    """The CoinGecko API as the platform uses it; assets annotate this type."""

    @abc.abstractmethod
    def coins_list(self) -> list[CoinRef]:
        """Every coin CoinGecko lists (``/coins/list``): id, symbol, name."""

    @abc.abstractmethod
    def market_chart_range(self, coin_id: str, vs_currency: str, start: datetime,
                           end: datetime, *, interval: str | None = "daily") -> list[PricePoint]:
        """Prices of ``coin_id`` in ``vs_currency`` stamped from ``start`` to ``end`` inclusive.

        ``/coins/{id}/market_chart/range``'s ``prices``, in the order served. ``interval``
        ``daily`` asks for one point per day at 00:00 UTC; None leaves CoinGecko's automatic
        granularity (hourly for 2 to 90 days, daily above).

        Args:
            coin_id: the API id (``bitcoin``).
            vs_currency: the quote currency (``usd``).
            start: the first instant, timezone-aware.
            end: the last instant, timezone-aware.
            interval: ``daily``, ``hourly`` or None.
        """


class _RetryableError(Exception):
    """An attempt failed in a way another attempt may not (internal to ``HttpCoinGecko``)."""

    def __init__(self, kind: Literal["rate_limited", "unavailable", "bad_response"],
                 message: str, *, retry_at: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_at = retry_at  # UNIX time before which not to ask again


class _UnreadablePriceError(Exception):
    """A market chart price no float holds (``1e999``), named with its point and day."""


class _MarketChart(msgspec.Struct):
    prices: list[PricePoint]


class _RawMarketChart(msgspec.Struct):
    prices: list[list[msgspec.Raw]]


_COINS_DECODER = msgspec.json.Decoder(list[CoinRef])
_CHART_DECODER = msgspec.json.Decoder(_MarketChart)
_RAW_CHART_DECODER = msgspec.json.Decoder(_RawMarketChart)


class HttpCoinGecko(CoinGecko):
    """The live API over HTTPS (see the module docstring for retries, limits and errors)."""

    def __init__(self, *, api_key: str | None = None, key_type: KeyType | None = None,
                 base_url: str | None = None, connect_timeout: float = 5.0,
                 read_timeout: float = 30.0, total_timeout: float = 120.0,
                 max_attempts: int = 5, backoff_initial: float = 1.0,
                 backoff_max: float = 30.0, backoff_jitter: float = 1.0,
                 min_interval: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """A client; nothing is opened until the first call.

        Args:
            api_key: the CoinGecko key, or None for the keyless public API.
            key_type: ``demo`` or ``pro``: the header and default root URL; required with a
                key, refused without one.
            base_url: the root URL (http or https, with a host), by default the one of
                ``key_type``.
            connect_timeout: seconds to connect (and to write or wait for a pooled
                connection), per attempt.
            read_timeout: seconds without a byte from the server, per attempt.
            total_timeout: seconds for a whole call, waits and retries included.
            max_attempts: requests per call at most (1 means no retry).
            backoff_initial: first backoff in seconds, doubled at each retry.
            backoff_max: longest backoff (a later ``x-ratelimit-reset`` is still honoured).
            backoff_jitter: up to this many seconds are added at random to every wait.
            min_interval: seconds between request starts; default by key type.
            sleep: how to wait (tests pass a recorder).
        """
        if (api_key is None) != (key_type is None):
            msg = ("HttpCoinGecko: an API key needs its key_type ('demo' or 'pro'), and a "
                   "key_type needs a key")
            raise ValueError(msg)
        if key_type is not None and key_type not in KEY_HEADERS:
            msg = f"HttpCoinGecko: key_type must be 'demo' or 'pro', got {key_type!r}"
            raise ValueError(msg)
        if api_key is not None and not _VISIBLE_ASCII.fullmatch(api_key):
            # Never the key itself: httpx's error for an illegal header value quoted it, and
            # it reached the output and Dagster's run storage (a reviewer).
            msg = (f"{ENV_API_KEY}: a key is visible ASCII characters only; this one holds a "
                   "space, a control character or a non-ASCII one (the key is not shown)")
            raise ValueError(msg)
        if max_attempts < 1 or total_timeout <= 0:
            msg = "HttpCoinGecko: max_attempts must be >= 1 and total_timeout > 0"
            raise ValueError(msg)
        if base_url is not None:
            _check_base_url("HttpCoinGecko: base_url", base_url)
        self.key_type = key_type
        self.base_url = (base_url or (PRO_BASE_URL if key_type == "pro"
                                      else PUBLIC_BASE_URL)).rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.max_attempts = max_attempts
        self.min_interval = MIN_INTERVALS[key_type] if min_interval is None else min_interval
        self._api_key = api_key
        self._sleep = sleep
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=backoff_initial, max=backoff_max, jitter=backoff_jitter)
        self._jitter = tenacity.wait_random(0, backoff_jitter)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._next_start = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None,
                 **options: Any) -> "HttpCoinGecko":
        """A client configured by the environment; no key means the keyless public API.

        Reads ``COINGECKO_API_KEY``, ``COINGECKO_KEY_TYPE`` (``demo`` unless ``pro``) and
        ``COINGECKO_BASE_URL``.

        Args:
            env: the environment (``os.environ`` when None).
            options: further constructor arguments (timeouts, attempts, backoff).

        Raises:
            ValueError: a key type or base URL that cannot work, naming the variable.
        """
        env = os.environ if env is None else env
        # A key read from a file (`$(cat key)`) ends in a newline: the ends are not the key.
        api_key = (env.get(ENV_API_KEY) or "").strip() or None
        key_type: KeyType | None = None
        if api_key is not None:
            raw = (env.get(ENV_KEY_TYPE) or "demo").strip().lower()
            if raw not in get_args(KeyType):
                msg = f"{ENV_KEY_TYPE}={raw!r}: use 'demo' or 'pro'"
                raise ValueError(msg)
            key_type = cast(KeyType, raw)
        base_url = env.get(ENV_BASE_URL) or None
        if base_url is not None:
            _check_base_url(ENV_BASE_URL, base_url)
        return cls(api_key=api_key, key_type=key_type, base_url=base_url, **options)

    def __repr__(self) -> str:
        key = "<hidden>" if self._api_key is not None else None
        return (f"HttpCoinGecko(base_url={self.base_url!r}, key_type={self.key_type!r}, "
                f"api_key={key})")

    def close(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> "HttpCoinGecko":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def coins_list(self) -> list[CoinRef]:
        """``/coins/list``."""
        return self._call("/coins/list", {}, _COINS_DECODER.decode)

    def market_chart_range(self, coin_id: str, vs_currency: str, start: datetime,
                           end: datetime, *, interval: str | None = "daily") -> list[PricePoint]:
        """``/coins/{coin_id}/market_chart/range`` from ``start`` to ``end`` (UNIX seconds)."""
        _check_range(start, end)
        params = {"vs_currency": vs_currency, "from": str(int(start.timestamp())),
                  "to": str(int(end.timestamp()))}
        if interval is not None:
            params["interval"] = interval
        path = f"/coins/{quote(coin_id, safe='')}/market_chart/range"
        return self._call(path, params, _chart_prices)

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                headers = {"accept": "application/json", "user-agent": "cryptodudez"}
                if self._api_key is not None and self.key_type is not None:
                    headers[KEY_HEADERS[self.key_type]] = self._api_key
                self._client = http_deadline.with_deadlines(httpx.Client(
                    base_url=self.base_url, headers=headers, follow_redirects=False))
            return self._client

    def _call(self, path: str, params: Mapping[str, str],
              decode: Callable[[bytes], T]) -> T:
        started = time.monotonic()
        deadline = started + self.total_timeout
        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            self._throttle(path, deadline, attempts)
            attempts += 1
            status, headers, body = self._send(path, params, deadline, attempts)
            return _interpret(path, status, headers, body, decode=decode, attempts=attempts)

        def stop(state: tenacity.RetryCallState) -> bool:
            return (state.attempt_number >= self.max_attempts
                    or time.monotonic() + state.upcoming_sleep >= deadline)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            log.warning("CoinGecko GET %s: %s; attempt %d of %d, next in %.2f s", path,
                        failure, state.attempt_number, self.max_attempts, state.upcoming_sleep)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_RetryableError), wait=self._wait, stop=stop,
            sleep=self._sleep, before_sleep=before_sleep, reraise=True)
        try:
            return retrying(attempt)
        except _RetryableError as failure:
            elapsed = time.monotonic() - started
            if (attempts < self.max_attempts and failure.kind == "rate_limited"
                    and failure.retry_at is not None
                    and failure.retry_at - time.time() >= deadline - time.monotonic()):
                reset = datetime.fromtimestamp(failure.retry_at, tz=UTC).isoformat()
                msg = (f"CoinGecko GET {path}: rate-limited (HTTP 429) after {attempts} "
                       f"attempt(s); the limit resets at {reset}, after the "
                       f"{self.total_timeout:g} s budget ends")
                raise CoinGeckoRateLimitError(msg, attempts=attempts,
                                              retry_at=failure.retry_at) from failure
            if attempts < self.max_attempts:
                msg = (f"CoinGecko GET {path}: gave up after {attempts} attempt(s) and "
                       f"{elapsed:.1f} s: the next one would pass the {self.total_timeout:g} s "
                       f"budget; last failure: {failure}")
                raise CoinGeckoTimeoutError(msg, attempts=attempts) from failure
            exhausted = {"rate_limited": CoinGeckoRateLimitError,
                         "unavailable": CoinGeckoUnavailableError,
                         "bad_response": CoinGeckoBadResponseError}[failure.kind]
            msg = (f"CoinGecko GET {path}: all {attempts} attempt(s) failed in "
                   f"{elapsed:.1f} s; last failure: {failure}")
            if exhausted is CoinGeckoRateLimitError:
                raise CoinGeckoRateLimitError(msg, attempts=attempts,
                                              retry_at=failure.retry_at) from failure
            raise exhausted(msg, attempts=attempts) from failure

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Exponential backoff with jitter; after a 429, at least until the limit resets."""
        wait = self._backoff(state)
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, _RetryableError) and failure.retry_at is not None:
            wait = max(wait, failure.retry_at - time.time() + self._jitter(state))
        return wait

    def _throttle(self, path: str, deadline: float, attempts: int) -> None:
        """Wait for this client's next request slot (``min_interval`` after the last one)."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            if start >= deadline:
                msg = (f"CoinGecko GET {path}: the client-side rate limit allows the next "
                       f"request only after the {self.total_timeout:g} s budget")
                raise CoinGeckoTimeoutError(msg, attempts=attempts)
            self._next_start = start + self.min_interval
        if start > now:
            self._sleep(start - now)

    def _send(self, path: str, params: Mapping[str, str], deadline: float,
              attempt: int) -> tuple[int, httpx.Headers, bytes]:
        """One request: status, headers and the whole body, within the deadline.

        Every socket operation (connect, TLS, write, each read of the headers and the body)
        is bounded by what is left until ``deadline`` as well as by its own timeout.
        """
        left = deadline - time.monotonic()
        if left <= 0:
            msg = f"CoinGecko GET {path}: the {self.total_timeout:g} s budget is spent"
            raise CoinGeckoTimeoutError(msg, attempts=attempt - 1)
        connect = min(self.connect_timeout, left)
        timeout = httpx.Timeout(connect=connect, read=min(self.read_timeout, left),
                                write=connect, pool=connect)
        body = bytearray()
        headers_in = False
        try:
            with (http_deadline.deadline(deadline),
                  self._http().stream("GET", path, params=params, timeout=timeout) as response):
                headers_in = True
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        msg = f"CoinGecko GET {path}: body over {MAX_BODY_BYTES} bytes"
                        raise CoinGeckoBadResponseError(msg, attempts=attempt)
                return response.status_code, response.headers, bytes(body)
        except httpx.TimeoutException as exc:
            # A socket timeout capped by the deadline fires at it (to the clock's grain).
            if time.monotonic() >= deadline - _DEADLINE_GRAIN_S:
                where = (f"the body was still arriving ({len(body)} bytes)" if headers_in
                         else f"{type(exc).__name__}: the status line and headers were still "
                              "arriving")
                msg = (f"CoinGecko GET {path}: {where} when the {self.total_timeout:g} s "
                       "budget ran out")
                raise CoinGeckoTimeoutError(msg, attempts=attempt) from exc
            raise _RetryableError("unavailable", f"{type(exc).__name__} ({exc})") from exc
        except httpx.TransportError as exc:
            raise _RetryableError("unavailable", f"{type(exc).__name__} ({exc})") from exc
        except httpx.DecodingError as exc:  # a damaged gzip or brotli body (not transport)
            encoding = response.headers.get("content-encoding", "encoded")
            msg = f"undecodable {encoding} body ({exc})"
            raise _RetryableError("bad_response", msg) from exc


class OfflineCoinGecko(CoinGecko):
    """Responses recorded from CoinGecko, served without a network.

    ``market_chart_range`` answers from a daily-price CSV (``timestamp_ms,price_usd``, one
    row per day at 00:00 UTC, as the market chart endpoint returned it): the recorded
    ``prices`` stamped within the request, decoded as the live client decodes them. A request
    reaching outside the recording fails as the live API fails for a range beyond the plan
    (``CoinGeckoPlanError``, code 10012); another coin, currency or interval than recorded
    fails with ``CoinGeckoRequestError``. ``coins_list`` serves ``RECORDED_COINS``. A
    recording that is missing raises ``FileNotFoundError`` (a folder ``IsADirectoryError``);
    one that is not such a CSV, holds no prices, or holds a price that is not positive and
    finite (``valid_price``, the rule ``validate_daily`` applies to every answer: inf, nan,
    0, -1), ``ValueError`` naming the file, the line, the day and the price, when it is
    first read (``recorded_days``, the CLI's check before a run, or the first request).
    """

    def __init__(self, prices_csv: Path | str = DEFAULT_RECORDING, *,
                 coin_id: str = "bitcoin", vs_currency: str = "usd",
                 coins: Sequence[CoinRef] | None = None) -> None:
        """A recording; the CSV is read at the first ``market_chart_range``."""
        self.prices_csv = Path(prices_csv)
        self.coin_id = coin_id
        self.vs_currency = vs_currency
        self._coins_body = msgspec.json.encode(list(RECORDED_COINS if coins is None
                                                    else coins))
        self._prices: pl.DataFrame | None = None

    def __repr__(self) -> str:
        return (f"OfflineCoinGecko({str(self.prices_csv)!r}, coin_id={self.coin_id!r}, "
                f"vs_currency={self.vs_currency!r})")

    def coins_list(self) -> list[CoinRef]:
        """The recorded ``/coins/list``."""
        return _COINS_DECODER.decode(self._coins_body)

    def market_chart_range(self, coin_id: str, vs_currency: str, start: datetime,
                           end: datetime, *, interval: str | None = "daily") -> list[PricePoint]:
        """The recorded daily points stamped from ``start`` to ``end`` inclusive."""
        _check_range(start, end)
        if coin_id not in {c.id for c in self.coins_list()}:
            msg = f"CoinGecko (offline): coin {coin_id!r} not found"
            raise CoinGeckoRequestError(msg, status_code=404)
        if (coin_id, vs_currency) != (self.coin_id, self.vs_currency) or interval != "daily":
            msg = (f"CoinGecko (offline): only daily {self.coin_id}/{self.vs_currency} prices "
                   f"are recorded, not {interval} {coin_id}/{vs_currency}")
            raise CoinGeckoRequestError(msg, status_code=404)
        prices = self._recording()
        first_ms, last_ms = prices["timestamp_ms"].min(), prices["timestamp_ms"].max()
        assert isinstance(first_ms, int) and isinstance(last_ms, int)
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        if start_ms < first_ms or end_ms >= last_ms + DAY_MS:
            msg = (f"CoinGecko (offline): {start.isoformat()}..{end.isoformat()} reaches "
                   f"outside the recording ({_iso(first_ms)}..{_iso(last_ms)}, daily); "
                   f"{PLAN_ERROR_CODES[10012]}")
            raise CoinGeckoPlanError(msg, status_code=401, error_code=10012)
        served = prices.filter(pl.col("timestamp_ms").is_between(start_ms, end_ms))
        body = msgspec.json.encode({"prices": served.rows(), "market_caps": [],
                                    "total_volumes": []})
        return _chart_prices(body)

    def recorded_days(self) -> tuple[date, date]:
        """The first and last UTC day whose whole day the recording covers (reads it).

        A request for days within them is not refused as beyond the recording.
        """
        prices = self._recording()
        first_ms, last_ms = prices["timestamp_ms"].min(), prices["timestamp_ms"].max()
        assert isinstance(first_ms, int) and isinstance(last_ms, int)
        return _date(first_ms + DAY_MS - 1), _date(last_ms)

    def _recording(self) -> pl.DataFrame:
        if self._prices is None:
            self._prices = self._read()
        return self._prices

    def _read(self) -> pl.DataFrame:
        where = f"CoinGecko (offline): the recording {self.prices_csv}"
        advice = (f"(set {ENV_RECORDING} to a CSV of timestamp_ms,price_usd, or {ENV_MODE}=live "
                  "with a key)")
        if self.prices_csv.is_dir():
            msg = f"{where} is a folder {advice}"
            raise IsADirectoryError(msg)
        if not self.prices_csv.is_file():
            msg = (f"CoinGecko (offline): no recording at {self.prices_csv} (set "
                   f"{ENV_RECORDING}, or {ENV_MODE}=live with a key)")
            raise FileNotFoundError(msg)
        try:
            prices = pl.read_csv(self.prices_csv,
                                 schema={"timestamp_ms": pl.Int64, "price_usd": pl.Float64})
        except pl.exceptions.PolarsError as exc:
            said = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            # what to do before the path and polars' own words: the CLI cuts a long line
            msg = (f"CoinGecko (offline): the recording is not a CSV of timestamp_ms,price_usd "
                   f"{advice}: {self.prices_csv}: {said}")
            raise ValueError(msg) from None
        if prices.is_empty():
            msg = f"{where} holds no prices {advice}"
            raise ValueError(msg)
        if prices.null_count().sum_horizontal().item():
            msg = f"{where} has empty values {advice}"
            raise ValueError(msg)
        if not prices["timestamp_ms"].is_between(0, _LAST_MS).all():
            msg = f"{where} has timestamps outside 1970..9999 {advice}"
            raise ValueError(msg)
        # msgspec encodes inf and nan as null, so they failed later as "Expected `float`, got
        # `null`", naming neither the file nor the day (QA); 0 and -1 failed validate_daily.
        bad = [row for row, price in enumerate(prices["price_usd"]) if not valid_price(price)]
        if bad:
            first = bad[0]
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            # line: the header is line 1, and a blank line is a row of empty values (refused)
            msg = (f"{where}: line {first + 2} ({_date(prices['timestamp_ms'][first])}) has "
                   f"price {prices['price_usd'][first]!r}, not {PRICE_RULE}{more} {advice}")
            raise ValueError(msg)
        return prices


# A trimmed /coins/list in the live shape. Symbols are not unique in the live list, so a
# second coin under Bitcoin's symbol "btc" stands for that here: a lookup of Bitcoin by
# symbol must be refused as ambiguous, and by id must succeed.
RECORDED_COINS: tuple[CoinRef, ...] = (
    CoinRef(id="btc-lookalike", symbol="btc", name="BTC Lookalike"),
    CoinRef(id="bitcoin", symbol="btc", name="Bitcoin"),
    CoinRef(id="bitcoin-cash", symbol="bch", name="Bitcoin Cash"),
    CoinRef(id="ethereum", symbol="eth", name="Ethereum"),
    CoinRef(id="tether", symbol="usdt", name="Tether"),
    CoinRef(id="wrapped-bitcoin", symbol="wbtc", name="Wrapped Bitcoin"),
)


def _check_base_url(name: str, url: str) -> None:
    """Refuse a root URL no request could go to: http or https, with a host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        problem = str(exc)
    else:
        if parts.scheme.lower() in ("http", "https") and parts.hostname:
            return
        problem = "not an http(s) URL with a host"
    msg = f"{name}={url!r}: {problem} (such as {PUBLIC_BASE_URL})"
    raise ValueError(msg)


def build_coingecko(env: Mapping[str, str]) -> CoinGecko:
    """The CoinGecko implementation ``env`` selects: offline unless told to go live.

    ``COINGECKO_MODE`` is ``live`` or ``offline``; unset, a ``COINGECKO_API_KEY`` means live.
    Live: ``HttpCoinGecko.from_env(env)``. Offline: ``OfflineCoinGecko`` over
    ``COINGECKO_RECORDING`` (default: the shipped Q1 2022 Bitcoin CSV in the shared data).
    Nothing is opened or read here; a mode, key type or base URL that cannot work raises
    ``ValueError`` naming the variable.
    """
    mode = (env.get(ENV_MODE) or ("live" if (env.get(ENV_API_KEY) or "").strip()
                                  else "offline")).lower()
    if mode == "live":
        return HttpCoinGecko.from_env(env)
    if mode == "offline":
        return OfflineCoinGecko(env.get(ENV_RECORDING) or DEFAULT_RECORDING)
    msg = f"{ENV_MODE}={mode!r}: use 'live' or 'offline'"
    raise ValueError(msg)


def reset_at(value: str | None, *, now: float) -> float | None:
    """The UNIX time an ``x-ratelimit-reset`` value names, or None when there is none.

    CoinGecko sends ``2025-07-25 14:54:00 +0000``; numbers above 1e9 are epoch seconds
    (above 1e12, milliseconds), smaller numbers seconds from ``now``; ISO 8601 and HTTP dates
    are read too. A date-time without a zone is UTC.
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if number > 1e12:
            return number / 1000
        if number > 1e9:
            return number
        return now + max(number, 0.0)
    parsers: tuple[Callable[[str], datetime], ...] = (
        lambda s: datetime.strptime(s, "%Y-%m-%d %H:%M:%S %z"),
        datetime.fromisoformat,
        parsedate_to_datetime,
    )
    for parse in parsers:
        try:
            instant = parse(text)
        except (ValueError, TypeError):
            continue
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        return instant.timestamp()
    return None


def _interpret(path: str, status: int, headers: httpx.Headers, body: bytes, *,
               decode: Callable[[bytes], T], attempts: int) -> T:
    """The decoded body of a 2xx, or the error a status and body mean."""
    if 200 <= status < 300:
        try:
            return decode(body)
        except _UnreadablePriceError as exc:  # asking again returns the same: not retried
            msg = f"CoinGecko GET {path}: {exc}"
            raise CoinGeckoBadResponseError(msg, attempts=attempts) from None
        except msgspec.ValidationError as exc:
            code, message = _error_details(body)
            if code is not None:
                raise _plan_or_request_error(path, status, code, message, attempts) from None
            msg = f"CoinGecko GET {path}: unexpected JSON: {exc}"
            raise CoinGeckoBadResponseError(msg, attempts=attempts) from None
        except msgspec.DecodeError as exc:
            msg = f"invalid JSON in a {len(body)}-byte body ({exc})"
            raise _RetryableError("bad_response", msg) from None
    code, message = _error_details(body)
    if status == 429:
        retry_at = reset_at(headers.get("x-ratelimit-reset"), now=time.time())
        until = f", limit resets {headers.get('x-ratelimit-reset')}" if retry_at else ""
        raise _RetryableError("rate_limited", f"HTTP 429 Too Many Requests{until}",
                         retry_at=retry_at)
    if status in PLAN_STATUSES or code in PLAN_ERROR_CODES:
        raise _plan_or_request_error(path, status, code, message, attempts)
    if status == 408 or status >= 500:
        raise _RetryableError("unavailable", f"HTTP {status}{f': {message}' if message else ''}")
    raise _plan_or_request_error(path, status, code, message, attempts)


def _chart_prices(body: bytes) -> list[PricePoint]:
    """The ``prices`` of a market chart body, as the live client and the offline twin read them.

    Raises:
        _UnreadablePriceError: a price beyond a 64-bit float (``1e999``): msgspec says only
            "Number out of range" and a JSON path.
        msgspec.ValidationError: another body of the wrong shape.
        msgspec.DecodeError: a body that is not JSON.
    """
    try:
        return _CHART_DECODER.decode(body).prices
    except msgspec.ValidationError:
        found = _unreadable_price(body)
        if found is None:
            raise
        raise _UnreadablePriceError(found) from None


def _unreadable_price(body: bytes) -> str | None:
    """The first price of ``body`` that is infinite as a float, said in words, or None."""
    try:
        points = _RAW_CHART_DECODER.decode(body).prices
    except msgspec.MsgspecError:
        return None
    for number, point in enumerate(points, 1):
        if len(point) != 2:
            continue
        written = bytes(point[1]).decode("utf-8", "replace")
        try:
            value = float(written)
        except ValueError:  # a string or an object: the shape error msgspec gave is the news
            continue
        if math.isfinite(value):
            continue
        try:
            when = f" at {_iso(msgspec.json.decode(point[0], type=int))}"
        except (msgspec.MsgspecError, ValueError, OverflowError, OSError):
            when = ""
        shown = written if len(written) <= 40 else f"{written[:37]}..."
        return (f"price {shown}{when} (point {number} of {len(points)}) is beyond a 64-bit "
                f"float ({value!r}), not {PRICE_RULE}")
    return None


def _plan_or_request_error(path: str, status: int, code: int | None, message: str,
                           attempts: int) -> CoinGeckoError:
    said = f": {message}" if message else ""
    if status in PLAN_STATUSES or code in PLAN_ERROR_CODES:
        meaning = PLAN_ERROR_CODES.get(code or 0, "the key or plan does not allow this request")
        coded = f", error_code {code}" if code is not None else ""
        msg = f"CoinGecko GET {path}: HTTP {status}{coded}: {meaning}{said}"
        return CoinGeckoPlanError(msg, status_code=status, error_code=code, attempts=attempts)
    coded = f", error_code {code}" if code is not None else ""
    msg = f"CoinGecko GET {path}: HTTP {status}{coded}{said}"
    return CoinGeckoRequestError(msg, status_code=status, attempts=attempts)


def _error_details(body: bytes) -> tuple[int | None, str]:
    """CoinGecko's ``error_code`` and message from an error body, as far as it has them.

    Shapes seen: ``{"error": {"status": {"error_code": 10012, "error_message": "..."}}}``,
    ``{"status": {"error_code": ..., "error_message": ...}}`` and ``{"error": "..."}``.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, ""
    if not isinstance(data, dict):
        return None, ""
    error = data.get("error")
    candidates = [error.get("status") if isinstance(error, dict) else None,
                  data.get("status"), error, data]
    for candidate in candidates:
        if isinstance(candidate, dict) and ("error_code" in candidate
                                            or "error_message" in candidate):
            code = candidate.get("error_code")
            message = str(candidate.get("error_message") or "")[:300]
            return (code if isinstance(code, int) else None), message
    return None, (error[:300] if isinstance(error, str) else "")


def _check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        msg = "market_chart_range: start and end must be timezone-aware"
        raise ValueError(msg)
    if end < start:
        msg = f"market_chart_range: end {end.isoformat()} is before start {start.isoformat()}"
        raise ValueError(msg)


def _iso(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat()


def _date(timestamp_ms: int) -> date:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).date()
