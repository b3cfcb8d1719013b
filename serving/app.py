"""The prediction API: ``GET /predict`` answers the predicted volume as an integer.

Build it with :func:`create_app`; importing this module touches no file.
"""

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import unquote_plus

import msgspec
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPIResponse, Operation, Parameter, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_503_SERVICE_UNAVAILABLE

from cryptodudez.storage import LakeStorage
from serving.model_store import MODEL_NAME, ModelStore

PARAMETERS = ("vol_moving_avg", "adj_close_rolling_med")
# Far above any real volume or price; beyond this a float prediction could overflow.
LIMITS = {"vol_moving_avg": 1e15, "adj_close_rolling_med": 1e9}


@dataclass(frozen=True)
class ServingSettings:
    """Where the models are and how often to look for a new one."""

    lake: str
    endpoint_url: str | None = None
    region: str | None = None
    poll_seconds: float = 2.0


class Health(msgspec.Struct):
    """``GET /health`` body."""

    status: str
    model: str
    version: str | None


class BadRequest(HTTPException):
    """A 400 whose ``detail`` names the offending parameter."""

    status_code = HTTP_400_BAD_REQUEST


def parse_query(raw: bytes) -> dict[str, str]:
    """First value of each query parameter (the hot path: no multi-dict, no regex)."""
    out: dict[str, str] = {}
    for part in raw.split(b"&"):
        key, _, value = part.partition(b"=")
        name = key.decode("latin-1")
        if name in out:
            continue
        text = value.decode("latin-1")
        out[name] = unquote_plus(text) if ("%" in text or "+" in text) else text
    return out


def parse_parameter(name: str, raw: str | None) -> float:
    """A finite, non-negative float from a query parameter, or a 400 naming it."""
    if raw is None or raw == "":
        raise BadRequest(detail=f"missing query parameter {name!r}")
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(detail=f"query parameter {name!r} must be a number, got {raw[:40]!r}") \
            from None
    if not math.isfinite(value):
        raise BadRequest(detail=f"query parameter {name!r} must be finite, got {raw[:40]!r}")
    if value < 0:
        raise BadRequest(detail=f"query parameter {name!r} must be >= 0, got {raw[:40]!r}")
    if value > LIMITS[name]:
        raise BadRequest(detail=f"query parameter {name!r} must be <= {LIMITS[name]:g}, "
                                f"got {raw[:40]!r}")
    return value


def _query_param(name: str, description: str) -> Parameter:
    return Parameter(name=name, param_in="query", required=True, description=description,
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
            "400": OpenAPIResponse(description="a parameter is missing, not a number, "
                                               "negative, NaN, infinite or out of range"),
        }


@get(
    "/predict",
    media_type=MediaType.JSON,
    sync_to_thread=False,
    summary="Predicted trading volume",
    description="The volume the model predicts for a day, from the 30-day features, as an "
                "integer. Parameters must be finite and non-negative; fractional values are "
                "accepted (a moving average is rarely an integer).",
    operation_class=PredictOperation,
    response_description="predicted volume (integer)",
)
def predict(request: Request) -> int:
    """Predicted volume for the given features."""
    query = parse_query(request.scope["query_string"])
    volume = parse_parameter(PARAMETERS[0], query.get(PARAMETERS[0]))
    price = parse_parameter(PARAMETERS[1], query.get(PARAMETERS[1]))
    served = request.app.state.store.current
    if served is None:
        raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE,
                            detail="no model has been trained yet")
    return round(served.model.predict_one(volume, price))


@get("/health", sync_to_thread=False, summary="Service and model status")
def health(state: State) -> Health:
    """Which model version is being served."""
    served = state.store.current
    return Health(status="ok" if served else "no_model", model=MODEL_NAME,
                  version=served.version if served else None)


def _bad_request(_: Request, exc: HTTPException) -> Response[dict[str, object]]:
    return Response({"status_code": exc.status_code, "detail": exc.detail},
                    status_code=exc.status_code)


def create_app(settings: ServingSettings) -> Litestar:
    """The API, with the model store opened in the lifespan and kept on ``app.state``."""
    lake = LakeStorage(settings.lake, endpoint_url=settings.endpoint_url,
                       region_name=settings.region)

    @asynccontextmanager
    async def model_store(app: Litestar) -> AsyncIterator[None]:
        store = ModelStore(lake, poll_seconds=settings.poll_seconds)
        store.start()
        app.state.store = store
        try:
            yield
        finally:
            await store.stop()

    return Litestar(
        route_handlers=[predict, health],
        lifespan=[model_store],
        exception_handlers={BadRequest: _bad_request},
        openapi_config=OpenAPIConfig(title="cryptodudez prediction API", version="1.0.0",
                                     path="/schema"),
        logging_config=None,  # the server (uvicorn) or the embedding program owns logging
    )
