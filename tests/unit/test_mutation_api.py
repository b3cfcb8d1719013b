"""``GET /predict``'s parameter validation: answers the mutation run found untested
(docs/mutation.md). Every case goes through the app, as a client sees it.
"""

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from cryptodudez.resources.lake import Lake
from serving.app import ServingSettings, create_app
from tests.helpers import publish

GOOD = "vol_moving_avg=12345&adj_close_rolling_med=25"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    lake = Lake(uri=str(tmp_path_factory.mktemp("api") / "lake"))
    publish(lake, "v1")
    with TestClient(app=create_app(ServingSettings(lake=lake.uri, poll_seconds=60))) as c:
        yield c


def _detail(client: TestClient, query: str) -> str:
    response = client.get(f"/predict?{query}")
    assert response.status_code == 400, (query, response.text)
    return str(response.json()["detail"])


@pytest.mark.parametrize(("query", "name", "limit", "said"), [
    ("adj_close_rolling_med=25", "vol_moving_avg", "1e+15", "missing"),
    ("vol_moving_avg=&adj_close_rolling_med=25", "vol_moving_avg", "1e+15", "empty"),
    ("vol_moving_avg=12345", "adj_close_rolling_med", "1e+09", "missing"),
    ("vol_moving_avg=12345&adj_close_rolling_med=", "adj_close_rolling_med", "1e+09", "empty"),
    ("vol_moving_avg&adj_close_rolling_med=25", "vol_moving_avg", "1e+15", "empty"),  # no "="
])
def test_a_missing_or_empty_parameter_is_named_with_its_range(client: TestClient, query: str,
                                                              name: str, limit: str,
                                                              said: str) -> None:
    # An empty value is "empty" on every route, as on /correlation and /signal/eth (QA).
    start = (f"missing query parameter {name!r}: " if said == "missing" else
             f"query parameter {name!r} is empty: give ")
    assert _detail(client, query).startswith(
        f"{start}a decimal number from 0 to {limit} (ASCII digits")


@pytest.mark.parametrize(("name", "limit"), [("vol_moving_avg", "1e+15"),
                                             ("adj_close_rolling_med", "1e+09")])
def test_a_negative_number_is_refused_with_both_bounds(client: TestClient, name: str,
                                                       limit: str) -> None:
    other = "adj_close_rolling_med=25" if name == "vol_moving_avg" else "vol_moving_avg=1"
    detail = _detail(client, f"{name}=-0.5&{other}")
    assert detail == f"query parameter {name!r} must be >= 0 (and <= {limit}), got '-0.5'"


def test_an_offending_value_up_to_40_characters_is_echoed_whole(client: TestClient) -> None:
    value = "x" * 40
    detail = _detail(client, f"vol_moving_avg={value}&adj_close_rolling_med=25")
    assert detail.endswith(f"got {value!r}")
    assert "characters)" not in detail


def test_a_longer_offending_value_is_cut_to_40_with_its_length(client: TestClient) -> None:
    value = "x" * 41
    detail = _detail(client, f"vol_moving_avg={value}&adj_close_rolling_med=25")
    assert detail.endswith(f"got {'x' * 40!r}... (41 characters)")


def test_a_value_above_the_limit_names_it_and_the_value(client: TestClient) -> None:
    detail = _detail(client, "vol_moving_avg=12345&adj_close_rolling_med=1e10")
    assert detail == "query parameter 'adj_close_rolling_med' must be <= 1e+09, got '1e10'"


def test_percent_encoded_names_and_values_are_decoded(client: TestClient) -> None:
    plain = client.get(f"/predict?{GOOD}")
    encoded = client.get("/predict?vol%5Fmoving%5Favg=%31%32%33%34%35"
                         "&adj_close_rolling_med=2%35")
    assert plain.status_code == encoded.status_code == 200
    assert encoded.json() == plain.json()


def test_a_plain_query_is_not_percent_decoded(client: TestClient) -> None:
    """Without '%' or '+' the text is taken as it stands (and still validated)."""
    response = client.get(f"/predict?{GOOD}&_=x")
    assert response.status_code == 200
