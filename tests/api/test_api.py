"""The prediction API over real HTTP: the Litestar test client and a live loopback server."""

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from litestar.testing import TestClient

from cryptodudez.resources.lake import MODELS, Lake
from cryptodudez.transforms.lookup import LookupModel
from serving.app import ASSETS_PATH, ServingSettings, create_app
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
        ("vol_moving_avg=&adj_close_rolling_med=25", "vol_moving_avg", "is empty"),
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
    assert "vol_moving_avg" in client.get("/schema/openapi.yaml").text


def test_no_model_yet_is_503_not_500(lake: Lake) -> None:
    with TestClient(app=create_app(ServingSettings(lake=lake.uri, poll_seconds=60))) as c:
        response = c.get("/predict?vol_moving_avg=1&adj_close_rolling_med=1")
        assert response.status_code == 503
        assert c.get("/health").json()["status"] == "no_model"


def test_on_an_empty_lake_a_bad_parameter_is_still_a_400(lake: Lake) -> None:
    """Parameters are checked before the data: 503 only for a request that is otherwise good."""
    with TestClient(app=create_app(ServingSettings(lake=lake.uri, poll_seconds=60))) as c:
        for path, named in [("/correlation?max_lag=-1", "'max_lag'"),
                            ("/correlation?bucket=PT0S", "'bucket'"),
                            ("/merged?coin=ETH&lag=21", "'lag'"),
                            ("/merged?coin=ETH&start=never", "'start'")]:
            response = c.get(path)
            assert response.status_code == 400, (path, response.text)
            assert named in response.json()["detail"]
        assert c.get("/correlation").status_code == 503
        assert c.get("/merged?coin=ETH").status_code == 503
        schema = c.get("/schema/openapi.json").json()
        assert "503" in schema["paths"]["/predict"]["get"]["responses"]


@pytest.mark.parametrize("path", ["%00", "a" * 256, "swagger-ui.css/x", "x/" * 2100,
                                  "../app.py", ""],
                         ids=["nul", "long-name", "through-a-file", "deep", "up", "folder"])
def test_a_docs_asset_path_that_is_no_file_of_the_bundle_is_a_404(
        client: TestClient, path: str) -> None:
    """The static files' file system raised (a 500) on a NUL byte (ValueError), a name over
    255 bytes (ENAMETOOLONG) and a path through a file (ENOTDIR)."""
    for method in (client.get, client.head):
        response = method(f"{ASSETS_PATH}/{path}")
        assert response.status_code == 404, response.text
    assert client.get(f"{ASSETS_PATH}/swagger-ui.css").status_code == 200
    assert client.head(f"{ASSETS_PATH}/favicon-32x32.png").status_code == 200


def test_live_server_swaps_models_under_concurrent_requests(lake: Lake) -> None:
    # Both versions are trained and written before any request: training takes seconds (far
    # longer on a loaded machine, with four request threads holding the GIL), and only the swap
    # (pointing LATEST at v2, as the pipeline publishes) has to happen under concurrent requests.
    new = publish(lake, "v2", scale=3.0, seed=1)
    old = publish(lake, "v1", scale=1.0)  # published last: LATEST points at v1
    query = {"vol_moving_avg": "200000", "adj_close_rolling_med": "30"}
    old_answer = round(old.predict_one(200000.0, 30.0))
    new_answer = round(new.predict_one(200000.0, 30.0))
    assert old_answer != new_answer
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=0.05))
    hammers = 4
    lock = threading.Lock()
    answers: Counter[tuple[int, int | None]] = Counter()  # (status, value): how many times
    answered = [0] * hammers  # requests answered, per hammer
    stop = threading.Event()
    # Every wait below is on a condition, with deadlines only a hung server would reach.
    with LiveServer(app) as base, httpx.Client(base_url=base, timeout=60.0) as http:
        assert http.get("/health").json()["version"] == "v1"

        def hammer(i: int) -> None:
            with httpx.Client(base_url=base, timeout=60.0) as c:
                while not stop.is_set():
                    r = c.get("/predict", params=query)
                    with lock:
                        answers[(r.status_code, r.json() if r.status_code == 200 else None)] += 1
                        answered[i] += 1

        with ThreadPoolExecutor(hammers) as pool:
            futures = [pool.submit(hammer, i) for i in range(hammers)]

            def wait_until(condition: Callable[[], bool], failure: str) -> None:
                deadline = time.monotonic() + 120
                while not condition():
                    for f in futures:
                        if f.done():
                            f.result()  # a hammer's own error, if it raised one
                            raise AssertionError("a hammer stopped before it was told to")
                    assert time.monotonic() < deadline, failure
                    time.sleep(0.01)

            def all_answered() -> bool:
                with lock:
                    return all(answered)

            def new_model_answered() -> bool:
                with lock:
                    return answers[(200, new_answer)] > 0

            try:
                wait_until(all_answered, "not every hammer got an answer from v1")
                lake.write_bytes(lake.path(MODELS, "volume_model", "LATEST"), b"v2")  # the swap
                wait_until(lambda: http.get("/health").json()["version"] == "v2",
                           "the new model was never served")
                wait_until(new_model_answered, "no request was answered by the new model")
            finally:
                stop.set()
            for f in futures:
                f.result()
    assert answers
    assert {status for status, _ in answers} == {200}
    values = {value for _, value in answers}
    assert values <= {old_answer, new_answer}
    assert len(values) == 2  # both versions answered, nothing in between


def test_percent_encoded_parameters(client: TestClient) -> None:
    encoded = client.get("/predict?vol_moving_avg=1%2E5e4&adj_close_rolling_med=%32%35")
    named = client.get("/predict?vol%5Fmoving%5Favg=15000&adj_close_rolling_med=25")
    plain = client.get("/predict?vol_moving_avg=15000&adj_close_rolling_med=25")
    assert encoded.status_code == named.status_code == plain.status_code == 200
    assert encoded.json() == named.json() == plain.json()
