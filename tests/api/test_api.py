"""The prediction API over real HTTP: the Litestar test client and a live loopback server."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from litestar.testing import TestClient

from cryptodudez.resources.lake import Lake
from cryptodudez.transforms.lookup import LookupModel
from serving.app import ServingSettings, create_app
from tests.api.live import LiveServer
from tests.helpers import publish


@pytest.fixture
def client(lake: Lake, model: LookupModel) -> Iterator[TestClient]:
    with TestClient(app=create_app(ServingSettings(lake=lake.uri, poll_seconds=60))) as c:
        yield c


def test_predict_returns_the_models_integer(client: TestClient, model: LookupModel) -> None:
    response = client.get("/predict", params={"vol_moving_avg": "12345",
                                              "adj_close_rolling_med": "25"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == round(model.predict_one(12345.0, 25.0))
    assert isinstance(response.json(), int)
    fractional = client.get("/predict?vol_moving_avg=12345.5&adj_close_rolling_med=0.25")
    assert fractional.status_code == 200


@pytest.mark.parametrize(
    ("query", "parameter", "says"),
    [
        ("adj_close_rolling_med=25", "vol_moving_avg", "missing"),
        ("vol_moving_avg=12345", "adj_close_rolling_med", "missing"),
        ("", "vol_moving_avg", "missing"),
        ("vol_moving_avg=&adj_close_rolling_med=25", "vol_moving_avg", "missing"),
        ("vol_moving_avg=abc&adj_close_rolling_med=25", "vol_moving_avg",
         "must be a decimal number from 0 to 1e+15"),
        ("vol_moving_avg=1&adj_close_rolling_med=1,5", "adj_close_rolling_med",
         "must be a decimal number from 0 to 1e+09"),
        ("vol_moving_avg=-1&adj_close_rolling_med=25", "vol_moving_avg", "must be >= 0"),
        ("vol_moving_avg=1&adj_close_rolling_med=-0.5", "adj_close_rolling_med",
         "must be >= 0"),
        ("vol_moving_avg=nan&adj_close_rolling_med=25", "vol_moving_avg", "must be a decimal"),
        ("vol_moving_avg=1&adj_close_rolling_med=NaN", "adj_close_rolling_med",
         "must be a decimal"),
        ("vol_moving_avg=inf&adj_close_rolling_med=25", "vol_moving_avg", "must be a decimal"),
        ("vol_moving_avg=1&adj_close_rolling_med=-Infinity", "adj_close_rolling_med",
         "must be a decimal"),
        ("vol_moving_avg=1e309&adj_close_rolling_med=25", "vol_moving_avg", "must be <= 1e+15"),
        ("vol_moving_avg=1e300&adj_close_rolling_med=25", "vol_moving_avg", "must be <= 1e+15"),
        ("vol_moving_avg=1&adj_close_rolling_med=1e300", "adj_close_rolling_med",
         "must be <= 1e+09"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(client: TestClient, query: str,
                                                     parameter: str, says: str) -> None:
    response = client.get(f"/predict?{query}")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert parameter in detail
    assert says in detail


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "model": "volume_model",
                                            "version": "v1"}
    schema = client.get("/schema/openapi.json").json()
    params = {p["name"] for p in schema["paths"]["/predict"]["get"]["parameters"]}
    assert params == {"vol_moving_avg", "adj_close_rolling_med"}


def test_no_model_yet_is_503_not_500(lake: Lake) -> None:
    with TestClient(app=create_app(ServingSettings(lake=lake.uri, poll_seconds=60))) as c:
        response = c.get("/predict?vol_moving_avg=1&adj_close_rolling_med=1")
        assert response.status_code == 503
        assert c.get("/health").json()["status"] == "no_model"


def test_live_server_swaps_models_under_concurrent_requests(lake: Lake) -> None:
    old = publish(lake, "v1", scale=1.0)
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=0.05))
    query = {"vol_moving_avg": "200000", "adj_close_rolling_med": "30"}
    with LiveServer(app) as base, httpx.Client(base_url=base, timeout=5.0) as http:
        assert http.get("/health").json()["version"] == "v1"
        stop = threading.Event()

        def hammer() -> list[tuple[int, int | None]]:
            out = []
            deadline = time.monotonic() + 20  # bounded in time and in request count
            with httpx.Client(base_url=base, timeout=5.0) as c:
                while not stop.is_set() and len(out) < 20_000 and time.monotonic() < deadline:
                    r = c.get("/predict", params=query)
                    out.append((r.status_code, r.json() if r.status_code == 200 else None))
            return out

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(hammer) for _ in range(4)]
            time.sleep(0.3)
            assert not any(f.done() for f in futures)
            new = publish(lake, "v2", scale=3.0, seed=1)
            deadline = time.monotonic() + 10
            while http.get("/health").json()["version"] != "v2":
                assert time.monotonic() < deadline, "the new model was never served"
                time.sleep(0.05)
            time.sleep(0.2)
            stop.set()
            answers = [a for f in futures for a in f.result()]
    assert answers
    assert {status for status, _ in answers} == {200}
    values = {value for _, value in answers}
    expected = {round(old.predict_one(200000.0, 30.0)), round(new.predict_one(200000.0, 30.0))}
    assert values <= expected
    assert len(values) == 2  # both versions answered, nothing in between


def test_percent_encoded_parameters(client: TestClient) -> None:
    encoded = client.get("/predict?vol_moving_avg=1%2E5e4&adj_close_rolling_med=%32%35")
    named = client.get("/predict?vol%5Fmoving%5Favg=15000&adj_close_rolling_med=25")
    plain = client.get("/predict?vol_moving_avg=15000&adj_close_rolling_med=25")
    assert encoded.status_code == named.status_code == plain.status_code == 200
    assert encoded.json() == named.json() == plain.json()
