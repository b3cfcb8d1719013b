"""The prediction API: ``GET /predict`` answers the predicted volume as an integer.

``GET /signal/eth`` answers the ETH trading signal of a day (:mod:`serving.eth_signal`).

Build it with :func:`create_app`; importing this module touches no file.
"""

import inspect
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from litestar import HttpMethod, Litestar, MediaType, Request, Response, Router, get, route
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import HTTPException, NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import OpenAPIResponse, Operation, Parameter, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from cryptodudez.storage import LakeStorage
from serving.eth_signal import PATH as SIGNAL_PATH
from serving.eth_signal import eth_signal, signal_get
from serving.model_store import MODEL_NAME, ModelStore
from serving.mood import HANDLERS as MOOD_HANDLERS
from serving.mood import ROUTES as MOOD_ROUTES
from serving.mood import MoodStore
from serving.polling import PollingStore
from serving.query import BadQuery, Param, parse_query, shown
from serving.signal_store import SignalStore

log = logging.getLogger(__name__)

PARAMETERS = ("vol_moving_avg", "adj_close_rolling_med")
# Far above any real volume or price; beyond this a float prediction could overflow.
LIMITS = {"vol_moving_avg": 1e15, "adj_close_rolling_med": 1e9}
# The accepted numbers: ASCII digits, an optional fraction and an optional exponent (what
# Python's repr and JavaScript's String write for a float). No "_", no whitespace, no "+",
# no ".5" or "5.", no other digits. A leading "-" passes the grammar only so that a negative
# value gets its own message ("must be >= 0"); -0 is 0.
# fullmatch, not "$", which would also accept a trailing newline.
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?").fullmatch
GRAMMAR = "ASCII digits with an optional fraction and exponent, for example 12345, 0.25 or 1.5e4"
# Both required: an empty one is a 400 of parse_query ("is empty"), as on every route.
_KNOWN = {name: Param(f"a decimal number from 0 to {LIMITS[name]:g} ({GRAMMAR})")
          for name in PARAMETERS}

SCHEMA_PATH = "/schema"
# Swagger UI's files, served by the app itself from the swagger-ui-bundle-v2 wheel (the
# folder name carries the Swagger UI version, so a new version is a new URL for caches).
SWAGGER_UI = Path(str(swagger_ui_path))
ASSETS_PATH = f"{SCHEMA_PATH}/static/{SWAGGER_UI.name}"


@dataclass(frozen=True)
class ServingSettings:
    """Where the models (and signals) are and how often to look for a new version."""

    lake: str
    endpoint_url: str | None = None
    region: str | None = None
    poll_seconds: float = 2.0
    warehouse: str | None = None  # the warehouse file (stored correlation results), if any


class Health(msgspec.Struct):
    """``GET /health`` body."""

    status: str
    model: str
    version: str | None


def _is_decimal(raw: str) -> bool:
    """``raw`` is in the accepted grammar (plain ``123`` or ``123.45`` without the regex)."""
    if not raw.isascii():  # str.isdigit alone would take other scripts' digits
        return False
    whole, point, fraction = raw.partition(".")
    if whole.isdigit() and (not point or fraction.isdigit()):
        return True
    return _DECIMAL(raw) is not None


def parse_parameter(name: str, raw: str | None) -> float:
    """A number from 0 to ``LIMITS[name]`` from a query parameter, or a 400 naming it.

    ``raw`` None is a missing parameter; an empty one never gets here (:data:`_KNOWN`).
    """
    limit = LIMITS[name]
    if raw is None:
        raise BadQuery(detail=f"missing query parameter {name!r}: a decimal number from 0 to "
                              f"{limit:g} ({GRAMMAR})")
    if not _is_decimal(raw):
        raise BadQuery(detail=f"query parameter {name!r} must be a decimal number from 0 to "
                              f"{limit:g} ({GRAMMAR}), got {shown(raw)}")
    value = float(raw)  # the grammar leaves no NaN; too many digits give inf, caught below
    if value < 0:
        raise BadQuery(detail=f"query parameter {name!r} must be >= 0 (and <= {limit:g}), "
                              f"got {shown(raw)}")
    if not value <= limit:
        raise BadQuery(detail=f"query parameter {name!r} must be <= {limit:g}, "
                              f"got {shown(raw)}")
    return value


def _query_param(name: str, description: str) -> Parameter:
    return Parameter(name=name, param_in="query", required=True,
                     description=f"{description}; from 0 to {LIMITS[name]:g}, {GRAMMAR}",
                     schema=Schema(type=OpenAPIType.NUMBER, minimum=0, maximum=LIMITS[name]))


@dataclass
class PredictOperation(Operation):
    """OpenAPI operation of ``/predict``: documents the two query parameters.

    The handler parses them itself (one code path for every error message), so Litestar
    cannot infer them from its signature.
    """

    def __post_init__(self) -> None:
        self.parameters = [
            _query_param("vol_moving_avg", "mean Volume over the symbol's last 30 trading days"),
            _query_param("adj_close_rolling_med", "median Adj Close over the same 30 days"),
        ]
        self.responses = {
            **(self.responses or {}),
            "400": OpenAPIResponse(description="a parameter is missing, empty, given twice, "
                                               "not a decimal number in ASCII digits, "
                                               "negative or "
                                               "above its limit, or not one of these two; "
                                               "the detail names it"),
            "503": OpenAPIResponse(description="no model has been trained yet, or the latest "
                                               "cannot be loaded (the detail says which)"),
        }


def predict(request: Request) -> int:
    """Predicted volume for the given features."""
    query = parse_query(request.scope["query_string"], _KNOWN)
    volume = parse_parameter(PARAMETERS[0], query.get(PARAMETERS[0]))
    price = parse_parameter(PARAMETERS[1], query.get(PARAMETERS[1]))
    served = request.app.state.store.current
    if served is None:
        raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE,
                            detail=request.app.state.store.problem
                            or "no model has been trained yet")
    return round(served.model.predict_one(volume, price))


def health(request: Request) -> Health:
    """Which model version is being served."""
    parse_query(request.scope["query_string"], frozenset())  # it takes none: a 400 names one
    served = request.app.state.store.current
    return Health(status="ok" if served else "no_model", model=MODEL_NAME,
                  version=served.version if served else None)


predict_get = get(
    "/predict",
    media_type=MediaType.JSON,
    sync_to_thread=False,
    summary="Predicted trading volume",
    description="The volume the model predicts for a day, from the 30-day features, as an "
                f"integer. Each parameter is given once, as {GRAMMAR}; fractional values are "
                "accepted (a moving average is rarely an integer). `HEAD` answers with the "
                "same status and headers and no body.",
    operation_class=PredictOperation,
    response_description="predicted volume (integer)",
)(predict)

@dataclass
class HealthOperation(Operation):
    """OpenAPI operation of ``/health``: its 400 (it takes no query parameter)."""

    def __post_init__(self) -> None:
        self.responses = {
            **(self.responses or {}),
            "400": OpenAPIResponse(description="a query parameter was given: the route takes "
                                               "none; the detail names it"),
        }


health_get = get("/health", sync_to_thread=False, summary="Service and model status",
                 description="`HEAD` answers with the same status and headers and no body.",
                 operation_class=HealthOperation)(health)


def without_body(app: ASGIApp) -> ASGIApp:
    """Middleware of the ``HEAD`` routes: the ``GET`` answer's status and headers, no body.

    Only the ``HEAD`` handlers carry it, so ``GET`` pays nothing for it.
    """

    async def head(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {"type": "http.response.body", "body": b"",
                           "more_body": message.get("more_body", False)}
            await send(message)

        await app(scope, receive, send_headers_only)

    return head


def _head(path: str, fn: Callable[..., object]) -> HTTPRouteHandler:
    return route(path, http_method=HttpMethod.HEAD, media_type=MediaType.JSON,
                 sync_to_thread=None if inspect.iscoroutinefunction(fn) else False,
                 include_in_schema=False, middleware=[without_body])(fn)


predict_head = _head("/predict", predict)
health_head = _head("/health", health)
signal_head = _head(SIGNAL_PATH, eth_signal)
mood_heads = [_head(path, fn) for path, fn in MOOD_HANDLERS.items()]


MAX_LOGGED_NAMES = 10
MAX_LOGGED_PATH = 200


async def log_unexpected(exc: Exception, scope: Scope) -> None:
    """Litestar's ``after_exception`` hook: a 500 is logged once, at ERROR, with its traceback.

    The client gets ``{"status_code": 500, "detail": "Internal Server Error"}`` and nothing
    more; with ``logging_config=None`` the operator got nothing at all. The log line names the
    method, the path and the query's parameter names, not their values (a value is whatever a
    client sent). An :class:`HTTPException` other than a 500 (a 400, 404 or 405 the client
    caused, a route's 503) says everything in its answer and is not logged. Async, so that a
    400 pays no thread hop for this.
    """
    if isinstance(exc, HTTPException) and exc.status_code != HTTP_500_INTERNAL_SERVER_ERROR:
        return
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    names = list(dict.fromkeys(part.partition("=")[0] for part in query.split("&") if part))
    asked = ""
    if names:
        listed = ", ".join(shown(name) for name in names[:MAX_LOGGED_NAMES])
        more = len(names) - MAX_LOGGED_NAMES
        asked = (f" (query parameters {listed}{f' and {more} more' if more > 0 else ''}; "
                 "their values are not logged)")
    log.error("500 answering %s %s%s: %s", scope.get("method", scope["type"]),
              shown(scope["path"], limit=MAX_LOGGED_PATH), asked, type(exc).__name__,
              exc_info=exc)


def _bad_request(_: Request, exc: HTTPException) -> Response[dict[str, object]]:
    return Response({"status_code": exc.status_code, "detail": exc.detail},
                    status_code=exc.status_code)


def create_app(settings: ServingSettings) -> Litestar:
    """The API, with the model and signal stores opened in the lifespan, on ``app.state``."""
    lake = LakeStorage(settings.lake, endpoint_url=settings.endpoint_url,
                       region_name=settings.region)

    def lifespan(attribute: str, store: PollingStore[Any]) -> Callable[[Litestar], Any]:
        """Open ``store`` on ``app.state.<attribute>`` for the app's life."""

        @asynccontextmanager
        async def run(app: Litestar) -> AsyncIterator[None]:
            store.start()
            setattr(app.state, attribute, store)
            try:
                yield
            finally:
                await store.stop()

        return run

    model_store = lifespan("store", ModelStore(lake, poll_seconds=settings.poll_seconds))
    signal_store = lifespan("signal_store",
                            SignalStore(lake, poll_seconds=settings.poll_seconds))

    @asynccontextmanager
    async def mood_store(app: Litestar) -> AsyncIterator[None]:
        # Loads nothing until a mood route is called (light workers).
        app.state.mood_store = MoodStore(lake, warehouse=settings.warehouse,
                                         poll_seconds=settings.poll_seconds)
        yield

    return Litestar(
        route_handlers=[predict_get, predict_head, health_get, health_head, signal_get,
                        signal_head, *MOOD_ROUTES, *mood_heads, _docs_assets()],
        lifespan=[model_store, signal_store, mood_store],
        exception_handlers={BadQuery: _bad_request},
        after_exception=[log_unexpected],
        openapi_config=OpenAPIConfig(title="cryptodudez prediction API", version="1.0.0",
                                     path=SCHEMA_PATH,
                                     render_plugins=[_swagger_ui(), YamlRenderPlugin()]),
        # The server (uvicorn, see serving.server.run) or the embedding program owns logging's
        # handlers; log_unexpected logs the 500s on this module's logger.
        logging_config=None,
    )


def _swagger_ui() -> SwaggerRenderPlugin:
    """Swagger UI at ``/schema`` (and ``/schema/swagger``), its files from this server."""
    return SwaggerRenderPlugin(
        path=["/", "/swagger"],
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )


def _docs_assets() -> Router:
    """The Swagger UI files (JavaScript, CSS, icons) under ``ASSETS_PATH``.

    Only the bundle's own files are looked up; any other path is a 404 before it reaches
    the file system, whose errors were 500s: a NUL byte (``ValueError``), a name over 255
    bytes (``ENAMETOOLONG``), a path through a file (``ENOTDIR``).
    """
    files = frozenset(f"{ASSETS_PATH}/{p.relative_to(SWAGGER_UI).as_posix()}"
                      for p in SWAGGER_UI.rglob("*") if p.is_file())

    def only_its_files(request: Request) -> None:
        if request.url.path not in files:
            raise NotFoundException(detail="no such file")

    return create_static_files_router(path=ASSETS_PATH, directories=[SWAGGER_UI],
                                      name="docs_assets", include_in_schema=False,
                                      cache_control=CacheControlHeader(max_age=86400),
                                      before_request=only_its_files)
