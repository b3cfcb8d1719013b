"""Minimal servers that split a request's cost into layers (see docs/serving.md).

Each is an ASGI app run by the same uvicorn configuration as ``cryptodudez serve``
(uvloop, httptools, no access log, one worker):

``raw_asgi``
    a bare ASGI callable that answers ``1`` to everything: socket + HTTP parsing floor.
``litestar_const``
    a Litestar ``GET /predict`` returning the constant ``1``: + routing and the framework.
``litestar_parse``
    the same route reading and validating both query parameters with the product's own
    ``serving.app.parse_parameter``, then returning a constant: + query parsing/validation.
``fastapi_const``
    a FastAPI route returning a constant: the reference apps' framework floor.

Run: ``uvicorn breakdown_apps:litestar_const --app-dir benchmarks/reference``.
"""

from typing import Any

from fastapi import FastAPI
from litestar import Litestar, MediaType, Request, get

from serving.app import PARAMETERS, parse_parameter

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
