"""``HEAD /predict`` and ``HEAD /health`` answer like ``GET``: same status and headers, no body."""

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from cryptodudez.resources.lake import Lake
from cryptodudez.transforms.lookup import LookupModel
from serving.app import ServingSettings, create_app
from tests.api.live import LiveServer, raw_exchange, split_response

PATHS = [
    "/predict?vol_moving_avg=12345&adj_close_rolling_med=25",  # 200
    "/predict?vol_moving_avg=-1&adj_close_rolling_med=25",  # 400
    "/predict?adj_close_rolling_med=25",  # 400, missing
    "/health",  # 200
]


@pytest.fixture
def client(lake: Lake, model: LookupModel) -> Iterator[TestClient]:
    with TestClient(app=create_app(ServingSettings(lake=lake.uri, poll_seconds=60))) as c:
        yield c


@pytest.mark.parametrize("path", PATHS)
def test_head_is_get_without_the_body(client: TestClient, path: str) -> None:
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code
    assert dict(head.headers) == dict(get.headers)
    assert int(head.headers["content-length"]) == len(get.content) > 0
    assert head.content == b""


def test_head_without_a_model_is_503_like_get(lake: Lake) -> None:
    with TestClient(app=create_app(ServingSettings(lake=lake.uri, poll_seconds=60))) as c:
        path = "/predict?vol_moving_avg=1&adj_close_rolling_med=1"
        head, get = c.head(path), c.get(path)
        assert head.status_code == get.status_code == 503
        assert dict(head.headers) == dict(get.headers)
        assert head.content == b""
        health = c.head("/health")
        assert health.status_code == 200
        assert health.headers == c.get("/health").headers
        assert health.content == b""


def test_head_over_real_http_sends_no_body(lake: Lake, model: LookupModel) -> None:
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=60))
    with LiveServer(app) as base:
        port = int(base.rsplit(":", 1)[1])
        for path in PATHS:
            request = f"{{}} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            get_status, get_headers, get_body = split_response(
                raw_exchange(port, request.format("GET").encode()))
            head_status, head_headers, head_body = split_response(
                raw_exchange(port, request.format("HEAD").encode()))
            assert head_status == get_status, path
            assert get_status.split()[1] in (b"200", b"400"), path
            assert head_headers == get_headers, path
            assert int(get_headers[b"content-length"]) == len(get_body) > 0, path
            assert head_body == b"", path  # nothing after the headers on the wire
