"""``/coin``, ``/sentiment``, ``/merged`` and ``/correlation``: prices against tweet sentiment.

Per coin, never pooled, backward in time only (see :mod:`cryptodudez.mood`). The data are the
lake's validated ``coin_trades`` and ``tweet_sentiments`` tables, read by :class:`MoodStore`
(reloaded when their fragments change). A correlation the ``mood_correlation`` asset stored
in the warehouse under the same parameters and data version is served from there; any other
is computed here with the same functions and kept in a small in-process cache.

Light workers: polars, numpy and scipy are imported on the first request to one of these
routes, so a worker that only answers ``/predict`` never loads them.
"""

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from litestar import MediaType, Request, Response, get
from litestar.exceptions import HTTPException
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    Reference,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from serving.query import BadQuery, Param, parse_query, shown

if TYPE_CHECKING:
    from collections.abc import Callable

    import polars as pl

    from cryptodudez.storage import LakeStorage

TRADES, SENTIMENTS = "coin_trades", "tweet_sentiments"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_TOLERANCE = 1000
MAX_LAG = 20  # cryptodudez.mood.results.MAX_LAG, not imported here (light workers); tested
DEFAULT_BUCKET = "PT10S"
MAX_OFFSET = 999_999_999
CACHE_SIZE = 256
_COIN = re.compile(r"[A-Z0-9]{2,10}").fullmatch
_INT = re.compile(r"-?([0-9]+)").fullmatch  # the "-" only where the range goes below 0 (lag)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").fullmatch
INSTANT_GRAMMAR = ("an ISO-8601 instant with a zone, as RFC 3339 writes it "
                   "(2018-07-16T20:12:00Z, 2018-07-16T22:12:00.25+02:00), or a UTC day "
                   "(2018-07-16)")
NOTE = ("p-values and Fisher intervals assume independent pairs; buckets are autocorrelated, "
        "so read the moving-block bootstrap interval and the Benjamini-Hochberg q-value "
        "(adjusted across every coin, bucket and lag asked)")


def parse_int(name: str, raw: str | None, *, default: int, low: int, high: int) -> int:
    """A whole number in ``low..high`` (ASCII digits, a ``-`` when ``low`` < 0), or a 400.

    Leading zeros are ignored, however many (``0000000001`` is 1, as ``01`` is): the range
    is checked on the value. A number with more significant digits than the bounds have is
    out of range without being converted (``int`` of thousands of digits is slow, and over
    4,300 a ``ValueError``).
    """
    if raw is None:
        return default
    match = _INT(raw)
    if match is not None and (low < 0 or not raw.startswith("-")):
        digits = match[1].lstrip("0") or "0"
        if len(digits) <= len(str(max(-low, high))):
            value = -int(digits) if raw.startswith("-") else int(digits)
            if low <= value <= high:
                return value
    raise BadQuery(detail=f"query parameter {name!r} must be a whole number from "
                          f"{low} to {high}, got {shown(raw)}")


# RFC 3339's instant (ISO-8601's extended form with a zone), seconds optional, a fraction
# up to nanoseconds (Go's RFC3339Nano). ``datetime.fromisoformat`` alone also took
# ``20:12:00.Z`` and cut a seventh fractional digit off: ``start=…03.8164979Z`` then
# included the trade at ``…03.816497Z``, before the instant asked.
_INSTANT_TEXT = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2})?)"
    r"(?:(?<=:[0-9]{2}:[0-9]{2})\.([0-9]{1,9}))?([Zz]|[+-][0-9]{2}:[0-9]{2})").fullmatch


def parse_instant(name: str, raw: str | None) -> datetime | None:
    """An aware UTC instant from ``raw`` (None when not given), or a 400 naming ``name``.

    The data's clock has microseconds: a finer instant is the next microsecond on it (every
    bound is ``start <= ts`` or ``ts < end``, so this keeps exactly the records at or after
    it, or before it).
    """
    if raw is None:
        return None
    value, past_micro = None, False
    try:
        if _DATE(raw):
            day = date.fromisoformat(raw)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        if (parts := _INSTANT_TEXT(raw)) is not None:
            clock, fraction, zone = parts.groups()
            fraction = fraction or ""
            past_micro = fraction[6:].strip("0") != ""
            value = datetime.fromisoformat(
                clock.upper() + (f".{fraction[:6]:0<6}" if fraction else "")
                + ("+00:00" if zone in "Zz" else zone))
    except ValueError:
        value = None
    if value is None:
        raise BadQuery(detail=f"query parameter {name!r} must be {INSTANT_GRAMMAR}, "
                              f"got {shown(raw)}")
    try:
        return value.astimezone(UTC) + (timedelta(microseconds=1) if past_micro else
                                        timedelta(0))
    except (ValueError, OverflowError):
        # well formed, but near year 1 or 9999 its offset puts it outside what UTC can hold
        raise BadQuery(detail=f"query parameter {name!r} is {shown(raw)}, which is outside "
                              "the years 1 to 9999 in UTC") from None


def parse_range(params: dict[str, str]) -> tuple[datetime | None, datetime | None]:
    """``start`` and ``end``, start before end."""
    start, end = parse_instant("start", params.get("start")), parse_instant("end",
                                                                             params.get("end"))
    if start and end and start >= end:
        raise BadQuery(detail=f"query parameter 'start' ({start.isoformat()}) must be "
                              f"before 'end' ({end.isoformat()})")
    return start, end


def parse_coins(raw: str | None, *, many: bool) -> list[str] | None:
    """Coins named in ``raw`` (comma-separated when ``many``), well-formed and each once.

    None when ``many`` and none is named (every coin with trades). Whether a coin has data
    depends on the data: :func:`known_coins` checks that, once they are loaded.
    """
    if raw is None:
        if many:
            return None
        raise BadQuery(detail="missing query parameter 'coin': a coin symbol in capitals "
                              "(BTC, ETH) that has trades")
    if not many and "," in raw:  # a list where one coin is taken: not a matter of capitals
        raise BadQuery(detail="query parameter 'coin' takes one coin symbol on this route, "
                              f"got a list: {shown(raw)}; ask for each coin on its own "
                              "(only /correlation takes a comma-separated list)")
    coins = raw.split(",") if many else [raw]
    if not all(_COIN(coin) for coin in coins):
        grammar = "coin symbols" if many else "a coin symbol"
        raise BadQuery(detail=f"query parameter 'coin' must be {grammar} in capitals "
                              f"(BTC, ETH), got {shown(raw)}")
    if len(set(coins)) != len(coins):
        raise BadQuery(detail=f"query parameter 'coin' repeats a coin: {shown(raw)}")
    return coins


def known_coins(coins: list[str] | None, known: list[str], *,
                data: str = TRADES) -> list[str]:
    """``coins`` (every known coin when None), each one in ``known``, or a 400.

    ``known`` are the coins of the table the route reads, ``data``: those with trades
    (``TRADES``) or those the tweets mention (``SENTIMENTS``, for ``/sentiment``).
    """
    if coins is None:
        return known
    for coin in coins:
        if coin not in known:
            if data == SENTIMENTS:
                raise BadQuery(detail=f"query parameter 'coin': no tweet sentiment mentions "
                                      f"{coin}; coins the sentiments mention: {known}")
            raise BadQuery(detail=f"query parameter 'coin': {coin} has no trades; "
                                  f"known coins: {known}")
    return coins


def parse_buckets(raw: str | None, *, many: bool) -> list[str]:
    """ISO-8601 bucket durations (comma-separated when ``many``), each checked."""
    from cryptodudez.mood.results import MAX_BUCKETS  # noqa: PLC0415 - light workers
    from cryptodudez.mood.series import parse_bucket  # noqa: PLC0415 - light workers

    text = DEFAULT_BUCKET if raw is None else raw
    texts = text.split(",") if many else [text]
    if len(texts) > MAX_BUCKETS:
        raise BadQuery(detail=f"query parameter 'bucket' names {len(texts)} buckets; "
                              f"at most {MAX_BUCKETS}")
    seen: dict[Any, str] = {}
    for text in texts:
        try:
            width = parse_bucket(text)
        except ValueError as exc:
            raise BadQuery(detail=f"query parameter 'bucket': {exc}") from None
        if width in seen:  # the same grid spelled twice (PT60S, PT1M) is one test, not two
            raise BadQuery(detail=f"query parameter 'bucket' repeats a bucket: {text} is "
                                  f"the same grid as {seen[width]}")
        seen[width] = text
    return texts


@dataclass(frozen=True)
class Loaded:
    """The mood inputs of one set of table fragments."""

    fragments: tuple[str, ...]
    trades: "pl.DataFrame"
    sentiments: "pl.DataFrame"
    trades_table: "pl.DataFrame"
    sentiments_table: "pl.DataFrame"
    version: str
    coins: list[str]  # the coins with trades
    mentioned: list[str]  # the coins the sentiments mention


class MoodStore:
    """The validated trades and sentiments, reloaded when their fragments change."""

    def __init__(self, lake: "LakeStorage", *, warehouse: str | None,
                 poll_seconds: float = 2.0) -> None:
        self.lake = lake
        self.warehouse = warehouse
        self.poll_seconds = poll_seconds
        self._loaded: Loaded | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    def _fragments(self) -> tuple[str, ...]:
        found: list[str] = []
        for table in (TRADES, SENTIMENTS):
            folder = self.lake.path("validated", table)
            if self.lake.fs.exists(folder):
                found += sorted(p for p in self.lake.fs.glob(f"{folder}/*.parquet")
                                if not p.rsplit("/", 1)[-1].startswith("."))
        return tuple(found)

    def _read(self, paths: list[str], empty: dict[str, Any]) -> "pl.DataFrame":
        import polars as pl  # noqa: PLC0415 - light workers

        if not paths:
            return pl.DataFrame(schema=empty)
        frames = []
        for path in paths:
            with self.lake.fs.open(path, "rb") as fh:
                frames.append(pl.read_parquet(fh))
        return pl.concat(frames, how="diagonal_relaxed")

    def current(self) -> Loaded:
        """The loaded inputs, re-read when the fragments changed (checked every poll)."""
        with self._lock:
            now = time.monotonic()
            if self._loaded is not None and now - self._checked < self.poll_seconds:
                return self._loaded
            self._checked = now
            fragments = self._fragments()
            if self._loaded is None or self._loaded.fragments != fragments:
                self._loaded = self._load(fragments)
                self.cache.clear()
            return self._loaded

    def _load(self, fragments: tuple[str, ...]) -> Loaded:
        import polars as pl  # noqa: PLC0415 - light workers

        from cryptodudez.mood import results  # noqa: PLC0415

        utc = pl.Datetime("us", "UTC")
        trade_paths = [p for p in fragments if f"/{TRADES}/" in p]
        mood_paths = [p for p in fragments if f"/{SENTIMENTS}/" in p]
        trades_table = self._read(trade_paths, {
            "uuid": pl.String, "coin": pl.String, "exchange": pl.String, "quote": pl.String,
            "ts": utc, "price": pl.Float64, "size": pl.Float64, "taker_side": pl.String,
            "_source": pl.String, "_line": pl.Int64})
        sentiments_table = self._read(mood_paths, {
            "sentiment_id": pl.String, "ts": utc, "coins": pl.List(pl.String),
            "polarity": pl.Float64, "text": pl.String, "_source": pl.String,
            "_line": pl.Int64})
        trades = results.trades_frame(trades_table)
        sentiments = results.sentiments_frame(sentiments_table)
        return Loaded(fragments, trades, sentiments,
                      trades_table.sort("ts", "_source", "_line"),
                      sentiments_table.sort("ts", "_source", "_line"),
                      results.data_version(trades, sentiments),
                      sorted(trades["coin"].unique().to_list()),
                      sorted(sentiments_table["coins"].explode().drop_nulls().unique()
                             .to_list()))

    def cached(self, key: tuple[str, str]) -> bytes | None:
        """A cached answer (most recently used kept)."""
        with self._lock:
            body = self.cache.get(key)
            if body is not None:
                self.cache.move_to_end(key)
            return body

    def remember(self, key: tuple[str, str], body: bytes) -> None:
        """Cache an answer, dropping the least recently used beyond ``CACHE_SIZE``."""
        with self._lock:
            self.cache[key] = body
            self.cache.move_to_end(key)
            while len(self.cache) > CACHE_SIZE:
                self.cache.popitem(last=False)


NOTHING_YET = {TRADES: "no coin trades have been ingested yet",
               SENTIMENTS: "no tweet sentiments have been ingested yet"}


def _store(request: Request, *, data: str = TRADES) -> Loaded:
    """The loaded inputs, or a 503 while the table the route reads (``data``) has no rows."""
    store: MoodStore = request.app.state.mood_store
    loaded = store.current()
    if not (loaded.coins if data == TRADES else loaded.sentiments_table.height):
        raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail=NOTHING_YET[data])
    return loaded


def _json(body: bytes) -> Response[bytes]:
    return Response(body, media_type=MediaType.JSON)


@dataclass(frozen=True)
class Paged:
    """The parsed parameters of ``/coin`` and ``/sentiment``."""

    coin: str | None  # None when none is asked (``/sentiment``)
    start: datetime | None
    end: datetime | None
    limit: int
    offset: int


def parse_paged(params: dict[str, str], *, coin_required: bool) -> Paged:
    """Every parameter of a paged route, each checked before any data is read."""
    raw_coin = params.get("coin")
    coins = parse_coins(raw_coin, many=False) if coin_required or raw_coin is not None \
        else None
    start, end = parse_range(params)
    return Paged(coin=coins[0] if coins else None, start=start, end=end,
                 limit=parse_int("limit", params.get("limit"), default=DEFAULT_LIMIT, low=1,
                                 high=MAX_LIMIT),
                 offset=parse_int("offset", params.get("offset"), default=0, low=0,
                                  high=MAX_OFFSET))


def _page(frame: "pl.DataFrame", asked: Paged) -> tuple["pl.DataFrame", dict[str, Any]]:
    limit, offset = asked.limit, asked.offset
    total = frame.height
    nxt = offset + limit if offset + limit < total else None
    return frame.slice(offset, limit), {"total": total, "limit": limit, "offset": offset,
                                        "next_offset": nxt}


def _in_range(frame: "pl.DataFrame", start: datetime | None,
              end: datetime | None) -> "pl.DataFrame":
    import polars as pl  # noqa: PLC0415 - light workers

    if start is not None:
        frame = frame.filter(pl.col("ts") >= start)
    if end is not None:
        frame = frame.filter(pl.col("ts") < end)
    return frame


def _whole(low: int, high: int) -> str:
    return f"a whole number from {low} to {high}"


# What each route takes: the names it knows and, for an empty value's 400, what to give.
_RANGE = {"start": Param(INSTANT_GRAMMAR, "no lower bound"),
          "end": Param(INSTANT_GRAMMAR, "no upper bound")}
_ONE_COIN = Param("a coin symbol in capitals (BTC, ETH) that has trades")
_PAGES = {"limit": Param(_whole(1, MAX_LIMIT), str(DEFAULT_LIMIT)),
          "offset": Param(_whole(0, MAX_OFFSET), "0")}
_BUCKET_Q = Param("an ISO-8601 duration (PT10S, PT1M, P1D)", DEFAULT_BUCKET)
_TOLERANCE_Q = Param(_whole(0, MAX_TOLERANCE), "0")
_COIN_Q = {"coin": _ONE_COIN, **_RANGE, **_PAGES}
_SENTIMENT_Q = {"coin": Param("a coin symbol in capitals (BTC, ETH) that tweets mention",
                              "every tweet"), **_RANGE, **_PAGES}


def coin_trades(request: Request) -> Response[bytes]:
    """One coin's trades in time order, paged."""
    import polars as pl  # noqa: PLC0415 - light workers

    asked = parse_paged(parse_query(request.scope["query_string"], _COIN_Q),
                        coin_required=True)
    loaded = _store(request)  # the coins known are the data's
    coin = known_coins([asked.coin] if asked.coin else None, loaded.coins)[0]
    rows = _in_range(loaded.trades_table.filter(pl.col("coin") == coin), asked.start,
                     asked.end)
    page, meta = _page(rows.select("ts", "price", "size", "taker_side", "exchange", "quote",
                                   "uuid"), asked)
    return _json(msgspec.json.encode({"coin": coin, **meta, "data_version": loaded.version,
                                      "items": page.to_dicts()}))


def sentiments(request: Request) -> Response[bytes]:
    """Tweet sentiments in time order (those mentioning ``coin`` when given), paged."""
    import polars as pl  # noqa: PLC0415 - light workers

    asked = parse_paged(parse_query(request.scope["query_string"], _SENTIMENT_Q),
                        coin_required=False)
    loaded = _store(request, data=SENTIMENTS)  # it reads the sentiments alone
    rows = loaded.sentiments_table
    coin = None
    if asked.coin is not None:
        coin = known_coins([asked.coin], loaded.mentioned, data=SENTIMENTS)[0]
        rows = rows.filter(pl.col("coins").list.contains(pl.lit(coin)))
    page, meta = _page(_in_range(rows, asked.start, asked.end).select(
        "ts", "polarity", "coins", "text", "sentiment_id"), asked)
    return _json(msgspec.json.encode({"coin": coin, **meta, "data_version": loaded.version,
                                      "items": page.to_dicts()}))


_MERGED = {"coin": _ONE_COIN, "bucket": _BUCKET_Q, "tolerance": _TOLERANCE_Q,
           "lag": Param(_whole(-MAX_LAG, MAX_LAG), "0"), **_RANGE}


def merged_series(request: Request) -> Response[bytes]:
    """One coin's price buckets, each with the sentiment known by its end (backward join)."""
    from cryptodudez.mood import results  # noqa: PLC0415 - light workers

    params = parse_query(request.scope["query_string"], _MERGED)
    coins = parse_coins(params.get("coin"), many=False)
    bucket = parse_buckets(params.get("bucket"), many=False)[0]
    tolerance = parse_int("tolerance", params.get("tolerance"), default=0, low=0,
                          high=MAX_TOLERANCE)
    # lag < 0 is /correlation's negative lag: the same join (price leads sentiment)
    lag = parse_int("lag", params.get("lag"), default=0, low=-MAX_LAG, high=MAX_LAG)
    start, end = parse_range(params)
    loaded = _store(request)  # the coins known are the data's
    coin = known_coins(coins, loaded.coins)[0]
    frame = results.merged_rows(loaded.trades, loaded.sentiments, coin=coin, bucket=bucket,
                                tolerance_buckets=tolerance, start=start, end=end, lag=lag)
    rows = frame.select("bucket_start", "bucket_end", "price", "last_trade_ts", "trades",
                        "log_return", "asof_at", "sentiment_end", "sentiment", "tweets",
                        "last_tweet_ts")
    return _json(msgspec.json.encode({
        "coin": coin, "bucket": bucket, "tolerance": tolerance, "lag": lag,
        "start": start, "end": end, "data_version": loaded.version, "rows": rows.to_dicts()}))


METHODS = ("pearson", "spearman")
_CORRELATION = {"coin": Param("comma-separated coin symbols in capitals (BTC,ETH)",
                              "every coin with trades"),
                "bucket": Param("comma-separated ISO-8601 durations (PT10S,PT1M)",
                                DEFAULT_BUCKET),
                "tolerance": _TOLERANCE_Q, "max_lag": Param(_whole(0, MAX_LAG), "2"),
                "method": Param(" or ".join(METHODS), METHODS[0]), **_RANGE}


def correlation(request: Request) -> Response[bytes]:
    """The lagged correlation table per coin and bucket, with q-values across all asked."""
    from cryptodudez.mood import results  # noqa: PLC0415 - light workers

    params = parse_query(request.scope["query_string"], _CORRELATION)
    store: MoodStore = request.app.state.mood_store
    asked = parse_coins(params.get("coin"), many=True)
    buckets = parse_buckets(params.get("bucket"), many=True)
    method = params.get("method", METHODS[0])
    if method not in METHODS:
        raise BadQuery(detail="query parameter 'method' must be 'pearson' or 'spearman', "
                              f"got {shown(method)}")
    start, end = parse_range(params)
    max_lag = parse_int("max_lag", params.get("max_lag"), default=2, low=0, high=MAX_LAG)
    tolerance = parse_int("tolerance", params.get("tolerance"), default=0, low=0,
                          high=MAX_TOLERANCE)
    loaded = _store(request)  # the coins known are the data's
    coins = known_coins(asked, loaded.coins)
    mood = results.MoodParams(
        coins=tuple(coins), buckets=tuple(buckets), max_lag=max_lag,
        tolerance_buckets=tolerance, method=method, start=start, end=end)
    key = (mood.key(), loaded.version)
    body = store.cached(key)
    if body is not None:
        return _json(body)
    table, source = None, "computed"
    if store.warehouse:
        table = _stored(store.warehouse, mood, loaded.version)
        source = "warehouse" if table is not None else source
    if table is None:
        table = results.correlation(loaded.trades, loaded.sentiments, mood)
    body = msgspec.json.encode({
        "params": msgspec.json.decode(mood.as_json()), "params_key": key[0],
        "data_version": loaded.version, "source": source, "note": NOTE,
        "results": table.to_dicts()})
    store.remember(key, body)
    return _json(body)


def _stored(path: str, params: Any, version: str) -> "pl.DataFrame | None":
    """The warehouse's result for ``params`` on ``version``, or None (also without a file)."""
    import os  # noqa: PLC0415

    import duckdb  # noqa: PLC0415 - light workers

    from cryptodudez import duckfile  # noqa: PLC0415 - light workers
    from cryptodudez.mood import results  # noqa: PLC0415

    if not os.path.exists(path):
        return None
    try:
        with duckfile.reading(path) as con:
            return results.read_correlation(con, params, version)
    except (duckdb.Error, OSError):  # no result table yet, or an older file: compute instead
        return None


def _param(name: str, description: str, kind: OpenAPIType = OpenAPIType.STRING, *,
           required: bool = False, **schema: Any) -> Parameter:
    if kind == OpenAPIType.STRING:
        schema.setdefault("min_length", 1)  # an empty value is a 400 ("is empty")
    return Parameter(name=name, param_in="query", required=required, description=description,
                     schema=Schema(type=kind, **schema))


_COIN_P = "one coin symbol in capitals (BTC, ETH, LTC): one that has trades"
_START = f"keep events at or after this instant: {INSTANT_GRAMMAR}"
_END = f"keep events before this instant: {INSTANT_GRAMMAR}"
_BUCKET = ("time grid, an ISO-8601 duration P[nD][T[nH][nM][nS]] from 1 s to 30 days "
           "(PT10S, PT1M, PT1H, P1D); buckets are aligned to the Unix epoch")
_TOLERANCE = ("how many whole buckets older than the as-of instant the joined sentiment "
              f"bucket may end (0..{MAX_TOLERANCE}, default 0: exactly the bucket lag steps "
              "earlier)")


def _type(kind: OpenAPIType, description: str | None = None, *, nullable: bool = False,
          **schema: Any) -> Schema:
    types: Any = [kind, OpenAPIType.NULL] if nullable else kind
    return Schema(type=types, description=description, **schema)


_TEXT, _NUMBER, _INTEGER = OpenAPIType.STRING, OpenAPIType.NUMBER, OpenAPIType.INTEGER
_INSTANT: dict[str, Any] = {"format": "date-time"}
_PAGE = {"total": _type(_INTEGER, "rows matching, over all pages"),
         "limit": _type(_INTEGER), "offset": _type(_INTEGER),
         "next_offset": _type(_INTEGER, "offset of the next page; null on the last",
                              nullable=True),
         "data_version": _type(_TEXT, "digest of the trades and sentiments read")}


def _rows(description: str, **columns: Schema | Reference) -> Schema:
    return Schema(type=OpenAPIType.ARRAY, description=description,
                  items=Schema(type=OpenAPIType.OBJECT, properties=dict(columns)))


def _object(**properties: Schema | Reference) -> Schema:
    return Schema(type=OpenAPIType.OBJECT, properties=dict(properties),
                  required=sorted(properties))


def _operation(parameters: list[Any], errors: str, body: Schema, *,
               data: str = TRADES) -> type[Operation]:
    """The route's documented parameters and responses (its handler parses the query itself).

    The handlers return JSON bytes already encoded, so Litestar cannot infer the body's
    schema: ``body`` documents it.
    """
    @dataclass
    class MoodOperation(Operation):
        def __post_init__(self) -> None:
            self.parameters = parameters
            ok = (self.responses or {}).get("200")
            self.responses = {
                **(self.responses or {}),
                "200": OpenAPIResponse(
                    description=ok.description if isinstance(ok, OpenAPIResponse) else "OK",
                    content={MediaType.JSON: OpenAPIMediaType(schema=body)}),
                "400": OpenAPIResponse(description=errors + ", or a parameter given with an "
                                                   "empty value; the detail names it"),
                "503": OpenAPIResponse(description=f"{NOTHING_YET[data]} (only when every "
                                                   "parameter is good)"),
            }

    return MoodOperation


def in_thread(fn: "Callable[[Request], Response[bytes]]") -> "Callable[..., Any]":
    """``fn`` (blocking: it reads the warehouse) as a coroutine running it in a worker thread.

    Used instead of litestar's ``sync_to_thread=True``: in litestar 2.25 such a ``GET``
    handler answers 500 once a ``HEAD`` handler follows it on the same path.
    """

    async def blocking(request: Request) -> Response[bytes]:
        return await anyio.to_thread.run_sync(fn, request)

    blocking.__name__ = blocking.__qualname__ = fn.__name__
    blocking.__doc__ = fn.__doc__
    return blocking


HANDLERS = {"/coin": in_thread(coin_trades), "/sentiment": in_thread(sentiments),
            "/merged": in_thread(merged_series), "/correlation": in_thread(correlation)}
"""The routes' functions by path, shared by their ``GET`` handlers and the app's ``HEAD`` ones."""

_PAGING = [_param("limit", f"page size, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT})",
                  OpenAPIType.INTEGER, minimum=1, maximum=MAX_LIMIT),
           _param("offset", f"rows to skip, 0..{MAX_OFFSET} (default 0)", OpenAPIType.INTEGER,
                  minimum=0, maximum=MAX_OFFSET)]

coin_get = get(
    "/coin", media_type=MediaType.JSON, summary="Trades of one coin",
    description="A coin's trades in time order (ts, price, size, taker side, exchange, "
                "quote currency, uuid), narrowed by `start`/`end`, paged (`next_offset` is "
                "null on the last page).",
    operation_class=_operation(
        [_param("coin", _COIN_P, required=True, pattern="^[A-Z0-9]{2,10}$"),
         _param("start", _START), _param("end", _END), *_PAGING],
        "coin missing, unknown or a list, a bad instant, start not before end, limit or "
        "offset out of range, a parameter given twice or one the route does not take",
        _object(coin=_type(_TEXT), **_PAGE, items=_rows(
            "the page's trades in time order", ts=_type(_TEXT, **_INSTANT),
            price=_type(_NUMBER), size=_type(_NUMBER), taker_side=_type(_TEXT),
            exchange=_type(_TEXT), quote=_type(_TEXT, "quote currency"), uuid=_type(_TEXT)))),
)(HANDLERS["/coin"])

sentiment_get = get(
    "/sentiment", media_type=MediaType.JSON,
    summary="Tweet sentiments",
    description="Tweet sentiments in time order (ts, polarity -1..1, the coins the tweet "
                "mentions, text); with `coin`, only tweets whose coins include it. Paged.",
    operation_class=_operation(
        [_param("coin", "one coin symbol in capitals (BTC, ETH, LTC): one that the tweets "
                "mention", pattern="^[A-Z0-9]{2,10}$"), _param("start", _START),
         _param("end", _END), *_PAGING],
        "a coin no tweet mentions or a list, a bad instant, start not before end, limit or "
        "offset out of range, a parameter given twice or one the route does not take",
        _object(coin=_type(_TEXT, "the coin asked, or null", nullable=True), **_PAGE,
                items=_rows("the page's sentiments in time order", ts=_type(_TEXT, **_INSTANT),
                            polarity=_type(_NUMBER, minimum=-1, maximum=1),
                            coins=Schema(type=OpenAPIType.ARRAY, items=_type(_TEXT)),
                            text=_type(_TEXT), sentiment_id=_type(_TEXT))),
        data=SENTIMENTS),
)(HANDLERS["/sentiment"])

merged_get = get(
    "/merged", media_type=MediaType.JSON,
    summary="A coin's price buckets with the sentiment known at their end",
    description="Per bucket of `coin`'s trades: the last price, the log return from the "
                "previous bucket (null across an empty bucket), and the mean sentiment of the "
                "latest sentiment bucket ending at or before `asof_at` = bucket end - `lag` "
                "buckets (a backward as-of join from `asof_at`), with the timestamps that show "
                "it (`sentiment_end` <= `asof_at`). `lag` >= 0 never joins a later tweet "
                "(`asof_at` <= `bucket_end`); `lag` < 0 is the reverse question (price leads "
                "sentiment) and joins later tweets by definition. Each lag's pairs are those "
                "`/correlation` uses for that lag.",
    operation_class=_operation(
        [_param("coin", _COIN_P, required=True, pattern="^[A-Z0-9]{2,10}$"),
         _param("bucket", _BUCKET + "; default PT10S"),
         _param("tolerance", _TOLERANCE, OpenAPIType.INTEGER, minimum=0,
                maximum=MAX_TOLERANCE),
         _param("lag", f"sentiment lead in buckets, -{MAX_LAG}..{MAX_LAG} (default 0; > 0: "
                "sentiment leads price, < 0: price leads sentiment, as in /correlation)",
                OpenAPIType.INTEGER, minimum=-MAX_LAG, maximum=MAX_LAG),
         _param("start", _START), _param("end", _END)],
        "coin missing, unknown or a list, a bad bucket, tolerance or lag, a bad instant, a "
        "parameter given twice or one the route does not take",
        _object(coin=_type(_TEXT), bucket=_type(_TEXT), tolerance=_type(_INTEGER),
                lag=_type(_INTEGER), start=_type(_TEXT, nullable=True, **_INSTANT),
                end=_type(_TEXT, nullable=True, **_INSTANT),
                data_version=_PAGE["data_version"], rows=_rows(
                    "one per bucket with trades, in time order",
                    bucket_start=_type(_TEXT, **_INSTANT), bucket_end=_type(_TEXT, **_INSTANT),
                    price=_type(_NUMBER, "last trade price"),
                    last_trade_ts=_type(_TEXT, **_INSTANT), trades=_type(_INTEGER),
                    log_return=_type(_NUMBER, nullable=True),
                    asof_at=_type(_TEXT, **_INSTANT),
                    sentiment_end=_type(_TEXT, nullable=True, **_INSTANT),
                    sentiment=_type(_NUMBER, nullable=True),
                    tweets=_type(_INTEGER, "tweets of the sentiment bucket joined; null when "
                                 "none is joined, like sentiment", nullable=True),
                    last_tweet_ts=_type(_TEXT, nullable=True, **_INSTANT)))),
)(HANDLERS["/merged"])

correlation_get = get(
    "/correlation", media_type=MediaType.JSON,
    summary="Lagged price / sentiment correlation per coin",
    description="For each coin and bucket asked and each lag -max_lag..max_lag (lag > 0: "
                "sentiment leads price): n, Pearson r and Spearman rho with p-values, a 95 % "
                "Fisher interval, a 95 % seeded moving-block bootstrap interval and the "
                "Benjamini-Hochberg q-value of the `method`'s p-value across every row. Too few "
                "pairs (n < 8) or a constant side gives nulls with `null_reason`; a bootstrap "
                "that cannot resample (more than half its resamples have a constant side) "
                "gives null bootstrap bounds, the other numbers and `null_reason`. Never "
                "pooled across coins. " + NOTE + ".",
    operation_class=_operation(
        [_param("coin", "comma-separated coin symbols (default: every coin with trades)"),
         _param("bucket", "comma-separated " + _BUCKET + "; at most 8, no grid twice; "
                "default PT10S"),
         _param("max_lag", f"lags -max_lag..max_lag, 0..{MAX_LAG} (default 2)",
                OpenAPIType.INTEGER, minimum=0, maximum=MAX_LAG),
         _param("tolerance", _TOLERANCE, OpenAPIType.INTEGER, minimum=0,
                maximum=MAX_TOLERANCE),
         _param("method", "whose p-values the q-values adjust: pearson (default) or spearman",
                enum=list(METHODS)),
         _param("start", _START), _param("end", _END)],
        "an unknown or repeated coin or bucket, a bad bucket, max_lag, tolerance or method, "
        "a bad instant, start not before end, a parameter given twice or one the route does "
        "not take",
        _object(params=Schema(type=OpenAPIType.OBJECT, description="the parameters, "
                              "canonical (defaults filled in, instants in UTC)"),
                params_key=_type(_TEXT, "digest of params"),
                data_version=_PAGE["data_version"],
                source=_type(_TEXT, "where the table came from", enum=["computed",
                                                                       "warehouse"]),
                note=_type(_TEXT),
                results=_rows("one per coin, bucket and lag: n, r, rho, p-values, intervals, "
                              "q-value, or nulls with null_reason (which also says why "
                              "bootstrap_lo/bootstrap_hi alone are null)"))),
)(HANDLERS["/correlation"])

ROUTES = [coin_get, sentiment_get, merged_get, correlation_get]

