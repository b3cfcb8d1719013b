"""Minimal servers that split a request's cost into layers (see docs/serving.md).

Each is an ASGI app run by the same uvicorn configuration as ``cryptodudez serve``
(uvloop, httptools, no access log, one worker):

``raw_asgi``
    a bare ASGI callable that answers ``1`` to everything: socket + HTTP parsing floor.
``litestar_const``
    a Litestar ``GET /predict`` returning the constant ``1``: + routing and the framework.
``litestar_parse``
    the same route reading both query parameters through Litestar's ``request.query_params``
    and validating them with the product's ``serving.app.parse_parameter``, then returning a
    constant: + Request injection, Litestar's query parsing, validation.
``fastapi_const``
    a FastAPI route returning a constant: the reference apps' framework floor.

And two sketches of a faster ``/predict`` (suggestions in docs/serving.md), both answering
exactly what the product answers, with the product's model (``ModelStore``, loaded once from
``CRYPTODUDEZ_LAKE``), its ``parse_query`` and ``parse_parameter``; run them with
``--factory``:

``make_litestar_asgi_predict``
    Litestar with ``/predict`` as an ``@asgi`` route: no signature model, no Response object.
``make_raw_asgi_predict``
    a bare ASGI callable in front (what a fast path before the framework would cost).

Run: ``uvicorn breakdown_apps:litestar_const --app-dir benchmarks/reference``.
"""

import os
from typing import Any

import msgspec
from fastapi import FastAPI
from litestar import Litestar, MediaType, Request, asgi, get
from litestar.exceptions import HTTPException

from cryptodudez.storage import LakeStorage
from serving.app import PARAMETERS, parse_parameter
from serving.model_store import ModelStore
from serving.query import parse_query

_BODY = b"1"
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1")],
}
_END = {"type": "http.response.body", "body": _BODY}


async def raw_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(_START)
    await send(_END)


@get("/predict", media_type=MediaType.JSON, sync_to_thread=False)
def _const() -> int:
    return 1


@get("/predict", media_type=MediaType.JSON, sync_to_thread=False)
def _parse(request: Request) -> int:
    query = request.query_params
    parse_parameter(PARAMETERS[0], query.get(PARAMETERS[0]))
    parse_parameter(PARAMETERS[1], query.get(PARAMETERS[1]))
    return 1


litestar_const = Litestar(route_handlers=[_const], openapi_config=None, logging_config=None)
litestar_parse = Litestar(route_handlers=[_parse], openapi_config=None, logging_config=None)

fastapi_const = FastAPI()


@fastapi_const.get("/predict")
async def _fastapi_predict() -> int:
    return 1


# ------------------------------------------------------------------ suggested fast paths
def _model() -> Any:
    store = ModelStore(LakeStorage(os.environ["CRYPTODUDEZ_LAKE"]))
    store.refresh()
    assert store.current is not None, "no model published in the lake"
    return store.current.model


def _answer(model: Any, query_string: bytes) -> tuple[int, bytes]:
    """Status and JSON body of ``/predict`` for a raw query string, as the product answers."""
    query = parse_query(query_string, frozenset(PARAMETERS))
    try:
        volume = parse_parameter(PARAMETERS[0], query.get(PARAMETERS[0]))
        price = parse_parameter(PARAMETERS[1], query.get(PARAMETERS[1]))
    except HTTPException as exc:
        return exc.status_code, msgspec.json.encode(
            {"status_code": exc.status_code, "detail": exc.detail})
    return 200, msgspec.json.encode(round(model.predict_one(volume, price)))


async def _send(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def make_litestar_asgi_predict() -> Litestar:
    model = _model()

    @asgi("/predict")
    async def predict(scope: Any, receive: Any, send: Any) -> None:
        await _send(send, *_answer(model, scope["query_string"]))

    return Litestar(route_handlers=[predict], openapi_config=None, logging_config=None)


def make_raw_asgi_predict() -> Any:
    model = _model()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await raw_asgi(scope, receive, send)
        elif scope["path"] == "/predict":
            await _send(send, *_answer(model, scope["query_string"]))
        else:
            await _send(send, 404, b"{}")

    return app
