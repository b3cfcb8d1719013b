"""``GET /predict`` accepts exactly ASCII decimal numbers within documented limits, given once.

The limits are written out here, not read from ``serving.app.LIMITS``: a wrong limit in the
code must fail these tests.
"""

import re
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from cryptodudez.resources.lake import Lake
from serving.app import ServingSettings, create_app
from tests.helpers import publish

VOLUME_LIMIT = 1e15  # docs/serving.md: vol_moving_avg from 0 to 1e15
PRICE_LIMIT = 1e9  # docs/serving.md: adj_close_rolling_med from 0 to 1e9
GOOD = {"vol_moving_avg": "12345", "adj_close_rolling_med": "25"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the module: the model never changes here."""
    lake = Lake(uri=str(tmp_path_factory.mktemp("api") / "lake"))
    publish(lake, "v1")
    with TestClient(app=create_app(ServingSettings(lake=lake.uri, poll_seconds=60))) as c:
        yield c


def _detail(client: TestClient, query: str) -> str:
    response = client.get(f"/predict?{query}")
    assert response.status_code == 400, (query, response.status_code, response.text)
    return str(response.json()["detail"])


def _with(name: str, encoded_value: str) -> str:
    """The good query with one parameter's (already percent-encoded) value replaced."""
    other = next(n for n in GOOD if n != name)
    return f"{name}={encoded_value}&{other}={GOOD[other]}"


@pytest.mark.parametrize("name", ["vol_moving_avg", "adj_close_rolling_med"])
@pytest.mark.parametrize(
    ("encoded", "why"),
    [
        ("%D9%A1%D9%A2%D9%A3", "Arabic-Indic digits 123"),
        ("%EF%BC%91%EF%BC%92", "fullwidth digits 12"),
        ("%E0%A5%A7%E0%A5%A8", "Devanagari digits 12"),
        ("%F0%9D%9F%8F", "mathematical bold digit 1"),
        ("1%C2%B2", "superscript two"),
        ("1_000", "underscore"),
        ("%2012", "leading space"),
        ("12%20", "trailing space"),
        ("+12", "leading '+' (a space in a query)"),
        ("%2B12", "explicit plus sign"),
        ("1e+4", "unencoded '+' in an exponent (a space)"),
        ("12%0A", "trailing newline"),
        ("%0912", "leading tab"),
        ("12%00", "NUL"),
        (".5", "no integer part"),
        ("5.", "no fraction digits"),
        ("1e", "no exponent digits"),
        ("0x10", "hexadecimal"),
        ("1%2C5", "decimal comma"),
        ("1.2.3", "two points"),
        ("nan", "NaN"),
        ("Infinity", "infinity"),
        ("--1", "two signs"),
        ("%C3%A91", "non-ASCII letter"),
    ],
)
def test_only_ascii_decimal_numbers_are_accepted(client: TestClient, name: str, encoded: str,
                                                 why: str) -> None:
    detail = _detail(client, _with(name, encoded))
    assert name in detail, why
    assert "must be a decimal number from 0 to" in detail, why
    assert "ASCII digits" in detail, why


@pytest.mark.parametrize(
    "value", ["0", "007", "12345", "12345.678", "0.25", "1.5e4", "15E3", "1e+4", "2.5e-05",
              "0e0", "-0"])
def test_the_documented_grammar_is_accepted(client: TestClient, value: str) -> None:
    for name in GOOD:
        response = client.get("/predict", params={**GOOD, name: value})
        assert response.status_code == 200, (name, value, response.text)
        assert isinstance(response.json(), int)


def test_fullwidth_and_arabic_digits_do_not_predict(client: TestClient) -> None:
    """The issue's cases: '١٢٣' answered as 123 and '１２' as 12 before."""
    for digits in ("١٢٣", "１２"):
        response = client.get("/predict", params={**GOOD, "vol_moving_avg": digits})
        assert response.status_code == 400
        assert "vol_moving_avg" in response.json()["detail"]


@pytest.mark.parametrize("name", ["vol_moving_avg", "adj_close_rolling_med"])
def test_a_400_digit_integer_is_refused_with_the_limit(client: TestClient, name: str) -> None:
    limit = "1e+15" if name == "vol_moving_avg" else "1e+09"
    detail = _detail(client, _with(name, "9" * 400))
    assert f"query parameter {name!r} must be <= {limit}" in detail
    assert "finite" not in detail
    assert "(400 characters)" in detail
    assert len(detail) < 200  # the value is cut, not echoed whole


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("vol_moving_avg=1&vol_moving_avg=2&adj_close_rolling_med=25", "vol_moving_avg"),
        ("vol_moving_avg=1&vol_moving_avg=1&adj_close_rolling_med=25", "vol_moving_avg"),
        ("vol_moving_avg=15000&vol_moving_avg=-1&adj_close_rolling_med=25", "vol_moving_avg"),
        ("vol_moving_avg=1&adj_close_rolling_med=25&adj_close_rolling_med=26",
         "adj_close_rolling_med"),
        ("vol_moving_avg=1&vol%5Fmoving%5Favg=2&adj_close_rolling_med=25", "vol_moving_avg"),
        ("vol_moving_avg=&vol_moving_avg=1&adj_close_rolling_med=25", "vol_moving_avg"),
    ],
)
def test_a_repeated_parameter_is_refused_naming_it(client: TestClient, query: str,
                                                   name: str) -> None:
    detail = _detail(client, query)
    assert f"query parameter {name!r} is given more than once" in detail


def test_an_encoded_plus_in_the_exponent_is_accepted(client: TestClient) -> None:
    encoded = client.get("/predict?vol_moving_avg=1.5e%2B4&adj_close_rolling_med=2.5E%2B1")
    plain = client.get("/predict?vol_moving_avg=15000&adj_close_rolling_med=25")
    assert encoded.status_code == plain.status_code == 200
    assert encoded.json() == plain.json()


def test_the_cache_buster_is_ignored_even_repeated(client: TestClient) -> None:
    for buster in ("_=1&_=2", "%5F=1"):  # also percent-encoded
        response = client.get(f"/predict?{buster}&vol_moving_avg=12345&adj_close_rolling_med=25")
        assert response.status_code == 200, buster


@pytest.mark.parametrize(("query", "name"), [
    ("vol_moving_av=12345", "vol_moving_av"),  # misspelt: not a missing parameter's message
    ("vol%5Fmoving%5Favg2=1", "vol_moving_avg2"),
    ("debug", "debug"),
    ("__=1", "__"),
])
def test_another_parameter_is_refused_naming_it(client: TestClient, query: str,
                                                name: str) -> None:
    detail = _detail(client, f"{query}&vol_moving_avg=12345&adj_close_rolling_med=25")
    assert detail.startswith(f"unknown query parameter {name!r}; ")


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        # vol_moving_avg: limit 1e15 (float steps near it are 0.125)
        ("vol_moving_avg", "1000000000000000", True),
        ("vol_moving_avg", "1e15", True),
        ("vol_moving_avg", "999999999999999.9", True),
        ("vol_moving_avg", "999999999999999", True),
        ("vol_moving_avg", "1000000000000000.5", False),
        ("vol_moving_avg", "1000000000000001", False),
        ("vol_moving_avg", "1.0000000000000001e15", False),
        ("vol_moving_avg", "1e16", False),
        # adj_close_rolling_med: limit 1e9
        ("adj_close_rolling_med", "1000000000", True),
        ("adj_close_rolling_med", "1e9", True),
        ("adj_close_rolling_med", "999999999.99", True),
        ("adj_close_rolling_med", "999999999", True),
        ("adj_close_rolling_med", "1000000000.01", False),
        ("adj_close_rolling_med", "1000000001", False),
        ("adj_close_rolling_med", "1e10", False),
        ("adj_close_rolling_med", "0", True),
        ("vol_moving_avg", "0", True),
    ],
)
def test_limits_at_just_below_and_just_above(client: TestClient, name: str, value: str,
                                             accepted: bool) -> None:
    response = client.get("/predict", params={**GOOD, name: value})
    if accepted:
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), int)
    else:
        limit = "1e+15" if name == "vol_moving_avg" else "1e+09"
        assert response.status_code == 400, response.text
        assert f"query parameter {name!r} must be <= {limit}" in response.json()["detail"]


def test_the_openapi_schema_states_the_same_limits_and_grammar(client: TestClient) -> None:
    schema = client.get("/schema/openapi.json").json()
    parameters = {p["name"]: p for p in schema["paths"]["/predict"]["get"]["parameters"]}
    assert parameters["vol_moving_avg"]["schema"]["maximum"] == VOLUME_LIMIT
    assert parameters["adj_close_rolling_med"]["schema"]["maximum"] == PRICE_LIMIT
    for name, parameter in parameters.items():
        assert parameter["schema"]["minimum"] == 0, name
        assert "ASCII digits" in parameter["description"], name
    assert "1e+15" in parameters["vol_moving_avg"]["description"]
    assert "1e+09" in parameters["adj_close_rolling_med"]["description"]


# The grammar, written independently of serving/app.py: ASCII digits, optional fraction,
# optional exponent; a leading "-" parses but only zero survives the ">= 0" rule.
ACCEPTED = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)


def _accepted(value: str, limit: float) -> bool:
    return ACCEPTED.fullmatch(value) is not None and 0 <= float(value) <= limit


def test_any_text_is_a_prediction_or_a_400_naming_the_parameter(client: TestClient) -> None:
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    number_like = st.from_regex(r"\A-?[0-9]{1,20}(\.[0-9]{1,8})?([eE][+-]?[0-9]{1,3})?\Z")
    # Pieces that float() or a careless check would take: signs, spaces, "_", other digits.
    pieces = ["0", "1", "9", ".", "e", "E", "+", "-", "_", " ", "\t", "\n", "\x00", "١", "１",
              "٣", "²", "nan", "inf", "infinity", "0x"]
    tricky = st.lists(st.sampled_from(pieces), min_size=1, max_size=8).map("".join)

    @hypothesis.settings(max_examples=200, deadline=None, derandomize=True)
    @hypothesis.given(name=st.sampled_from(sorted(GOOD)),
                      value=st.one_of(st.text(max_size=30), number_like, tricky))
    def check(name: str, value: str) -> None:
        response = client.get("/predict", params={**GOOD, name: value})
        limit = VOLUME_LIMIT if name == "vol_moving_avg" else PRICE_LIMIT
        if _accepted(value, limit):
            assert response.status_code == 200, (name, value, response.text)
        else:
            assert response.status_code == 400, (name, value, response.text)
            assert name in response.json()["detail"]

    check()
