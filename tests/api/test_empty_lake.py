"""Before any data: a bad parameter to any route is a 400 naming it, never a 503.

A bad parameter includes one the route does not take (a misspelt optional parameter would
otherwise answer as if it had been left out); only the cache-buster ``_`` is ignored.

Every parameter of every data route is checked before the route reads the lake, so on an
empty lake (no model, no signal, no trades) a request that is good but for one parameter is a
400 naming that parameter, and only a request that is good throughout is a 503.
"""

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from litestar.testing import TestClient

from serving.app import ServingSettings, create_app

# Per route: a good query, and bad values of each of its parameters (None: left out).
ROUTES: dict[str, tuple[dict[str, str], dict[str, list[str | None]]]] = {
    "/coin": ({"coin": "ETH"}, {
        "coin": [None, "", "eth", "ETH,BTC", "E", "ÉTH"],
        "start": ["yesterday", "2018-07-16T20:00:00", "2018-13-01"],
        "end": ["tomorrow", "9999-12-31T23:59:59-01:00"],
        "limit": ["0", "1001", "x", "-1", "１"],
        "offset": ["-1", "1000000000", "x"],
    }),
    "/sentiment": ({}, {
        "coin": ["eth", "ETH,BTC", "E"],
        "start": ["yesterday", "0001-01-01T00:00:00+01:00"],
        "end": ["2018-13-01"],
        "limit": ["0", "1001"],
        "offset": ["-1", "1000000000"],
    }),
    "/merged": ({"coin": "ETH"}, {
        "coin": [None, "", "eth", "ETH,BTC"],
        "bucket": ["1M", "PT0S", "P1M", "PT10S,PT20S", "PT١٠S"],
        "tolerance": ["x", "-1", "1001"],
        "lag": ["21", "-21", "x", "+1"],
        "start": ["never", "2018-07-16T20:00:00"],
        "end": ["2018-02-30"],
    }),
    "/correlation": ({}, {
        "coin": ["eth", "ETH,ETH", "ETH,", "ETH,btc"],
        "bucket": ["P1M", "PT0S", "PT10S,PT10S", "PT1M,PT60S",
                   ",".join(f"PT{s}S" for s in range(1, 10))],
        "max_lag": ["-1", "21", "x"],
        "tolerance": ["-1", "1001"],
        "method": ["kendall", "Pearson"],
        "start": ["never"],
        "end": ["2018-13-01"],
    }),
    "/signal/eth": ({}, {"date": ["", "x", "2021-02-30", "2021-3-1"]}),
    "/predict": ({"vol_moving_avg": "1", "adj_close_rolling_med": "1"}, {
        "vol_moving_avg": [None, "", "x", "-1", "1e300"],
        "adj_close_rolling_med": [None, "nan", "1e10"],
    }),
}
# start not before end names 'start'
SPANS = {path: {**good, "start": "2018-07-17", "end": "2018-07-16"}
         for path, (good, bad) in ROUTES.items() if "end" in bad}


def _cases() -> Iterator[object]:
    for path, (good, bad) in ROUTES.items():
        for name, values in bad.items():
            for value in values:
                params = {k: v for k, v in good.items() if k != name}
                query = urlencode(params if value is None else {**params, name: value})
                yield pytest.param(path, query, name, id=f"{path} {name}={value!r}")
            twice = urlencode([*good.items(), (name, good.get(name, "1")),
                               (name, good.get(name, "1"))])
            yield pytest.param(path, twice, name, id=f"{path} {name} twice")
        # a parameter the route does not take: a misspelt one of its own, or another route's
        for name in (f"{next(iter(bad))}s", "bukcet", "vol_moving_avg" if path != "/predict"
                     else "coin"):
            query = urlencode({**good, name: "1"})
            yield pytest.param(path, query, name, id=f"{path} unknown {name}")
    for path, params in SPANS.items():
        yield pytest.param(path, urlencode(params), "start", id=f"{path} start after end")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    lake = Path(tmp_path_factory.mktemp("empty")) / "lake"
    with TestClient(app=create_app(ServingSettings(lake=str(lake), poll_seconds=60))) as c:
        yield c


@pytest.mark.parametrize(("path", "query", "name"), list(_cases()))
def test_a_bad_parameter_on_an_empty_lake_is_a_400_naming_it(client: TestClient, path: str,
                                                              query: str, name: str) -> None:
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400, (path, query, response.status_code, response.text)
    assert f"'{name}'" in response.json()["detail"], response.text


@pytest.mark.parametrize("path", list(ROUTES))
def test_a_good_request_on_an_empty_lake_is_a_503(client: TestClient, path: str) -> None:
    response = client.get(f"{path}?{urlencode(ROUTES[path][0])}")
    assert response.status_code == 503, response.text


@pytest.mark.parametrize("path", list(ROUTES))
def test_the_cache_buster_is_the_one_parameter_a_route_ignores(client: TestClient,
                                                               path: str) -> None:
    query = urlencode([*ROUTES[path][0].items(), ("_", "1"), ("_", "2")])
    assert client.get(f"{path}?{query}&").status_code == 503  # and a trailing '&'


@pytest.mark.parametrize(("path", "takes"), [
    ("/coin", "coin, end, limit, offset, start"),
    ("/sentiment", "coin, end, limit, offset, start"),
    ("/merged", "bucket, coin, end, lag, start, tolerance"),
    ("/correlation", "bucket, coin, end, max_lag, method, start, tolerance"),
    ("/signal/eth", "date"),
    ("/predict", "adj_close_rolling_med, vol_moving_avg"),
    ("/health", "none"),  # it answered 200 to any query (a reviewer)
])
def test_an_unknown_parameter_is_named_with_what_the_route_takes(client: TestClient, path: str,
                                                                 takes: str) -> None:
    response = client.get(f"{path}?bukcet=PT1M")
    assert response.status_code == 400
    assert response.json()["detail"] == \
        f"unknown query parameter 'bukcet'; this route takes: {takes}"


@pytest.mark.parametrize(("path", "detail"), [
    ("/coin?coin=XRP", "no coin trades have been ingested yet"),
    ("/sentiment?coin=XRP", "no tweet sentiments have been ingested yet"),  # what it reads
    ("/sentiment", "no tweet sentiments have been ingested yet"),
    ("/merged?coin=XRP", "no coin trades have been ingested yet"),
    ("/correlation?coin=ETH,XRP", "no coin trades have been ingested yet"),
])
def test_a_well_formed_coin_waits_for_the_data(client: TestClient, path: str,
                                               detail: str) -> None:
    """Whether a coin has data depends on the data: before any, it is a 503, not a 400."""
    response = client.get(path)
    assert response.status_code == 503, response.text
    assert response.json()["detail"] == detail


def _empty_cases() -> Iterator[object]:
    for path, (good, bad) in ROUTES.items():
        for name in bad:
            params = {k: v for k, v in good.items() if k != name}
            for query in (urlencode({**params, name: ""}), urlencode(params) + f"&{name}"):
                yield pytest.param(path, query.lstrip("&"), name, id=f"{path} {query}")


@pytest.mark.parametrize(("path", "query", "name"), list(_empty_cases()))
def test_an_empty_parameter_is_the_same_400_on_every_route(client: TestClient, path: str,
                                                           query: str, name: str) -> None:
    """``name=`` (or a bare ``name``) is never its default, nor "missing", nor a grammar error."""
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400, (path, query, response.status_code, response.text)
    assert response.json()["detail"].startswith(f"query parameter {name!r} is empty: give ")


@pytest.mark.parametrize(("path", "query", "detail"), [
    ("/signal/eth", "date=", "query parameter 'date' is empty: give a calendar date as "
     "YYYY-MM-DD in ASCII digits, for example 2021-03-01, or leave it out for the latest date"),
    ("/correlation", "bucket=", "query parameter 'bucket' is empty: give comma-separated "
     "ISO-8601 durations (PT10S,PT1M), or leave it out for PT10S"),
    ("/merged", "coin=", "query parameter 'coin' is empty: give a coin symbol in capitals "
     "(BTC, ETH) that has trades; it is required"),
    ("/predict", "vol_moving_avg=&adj_close_rolling_med=1", "query parameter 'vol_moving_avg' "
     "is empty: give a decimal number from 0 to 1e+15 (ASCII digits with an optional fraction "
     "and exponent, for example 12345, 0.25 or 1.5e4); it is required"),
])
def test_an_empty_parameter_says_what_to_give(client: TestClient, path: str, query: str,
                                              detail: str) -> None:
    response = client.get(f"{path}?{query}")
    assert (response.status_code, response.json()["detail"]) == (400, detail)
