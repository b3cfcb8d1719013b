"""The mood routes' parameters on a lake with data: empty values, coin lists, what each reads.

The lake holds hand-written validated fragments (no pipeline): BTC and ETH trades over ten
minutes, and tweets mentioning BTC, ETH and DOGE (a coin the tweets mention that has no
trades).
"""

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from litestar.testing import TestClient
from scipy import stats

from serving.app import ServingSettings, create_app

T0 = datetime(2018, 7, 16, 20, 10, tzinfo=UTC)
BUCKET = timedelta(seconds=10)
UTC_US = pl.Datetime("us", "UTC")


def _trades(seed: int = 1) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for coin, first in (("BTC", 6000.0), ("ETH", 430.0)):
        price = first
        for i in range(200):  # one every 3 s: every 10 s bucket has trades
            price *= math.exp(rng.gauss(0, 0.002))
            rows.append({"uuid": f"{coin}-{i}", "coin": coin, "exchange": "COINBASE",
                         "quote": "USD", "ts": T0 + timedelta(seconds=3 * i), "price": price,
                         "size": 1.0, "taker_side": "BUY", "_source": "trades.txt",
                         "_line": len(rows) + 1})
    return pl.DataFrame(rows, schema={
        "uuid": pl.String, "coin": pl.String, "exchange": pl.String, "quote": pl.String,
        "ts": UTC_US, "price": pl.Float64, "size": pl.Float64, "taker_side": pl.String,
        "_source": pl.String, "_line": pl.Int64})


def _sentiments(seed: int = 2) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(150):  # one every 4 s, most buckets have some
        coins = rng.choice([["ETH"], ["BTC"], ["ETH", "BTC"], ["ETH", "DOGE"]])
        rows.append({"sentiment_id": f"s{i}", "ts": T0 + timedelta(seconds=4 * i + 1),
                     "coins": coins, "polarity": round(rng.uniform(-1, 1), 3),
                     "text": f"tweet {i}", "_source": "sentiments.txt", "_line": i + 1})
    return pl.DataFrame(rows, schema={
        "sentiment_id": pl.String, "ts": UTC_US, "coins": pl.List(pl.String),
        "polarity": pl.Float64, "text": pl.String, "_source": pl.String, "_line": pl.Int64})


def _lake(root: Path, *, trades: bool = True, sentiments: bool = True) -> str:
    for table, frame, wanted in (("coin_trades", _trades(), trades),
                                 ("tweet_sentiments", _sentiments(), sentiments)):
        if wanted:
            folder = root / "validated" / table
            folder.mkdir(parents=True)
            frame.write_parquet(folder / "part-0.parquet")
    return str(root)


def _client(lake: str) -> TestClient:
    return TestClient(app=create_app(ServingSettings(lake=lake, poll_seconds=60)))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with _client(_lake(tmp_path_factory.mktemp("mood") / "lake")) as c:
        yield c


def _bad(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 400, (path, response.status_code, response.text)
    return str(response.json()["detail"])


# Each answered 200 with the parameter's default before (an empty value was taken as absent).
@pytest.mark.parametrize(("path", "name"), [
    ("/correlation?coin=ETH&bucket=", "bucket"),
    ("/correlation?coin=ETH&method=", "method"),
    ("/correlation?coin=", "coin"),
    ("/correlation?coin=ETH&start=", "start"),
    ("/sentiment?coin=ETH&start=", "start"),
    ("/sentiment?coin=", "coin"),
    ("/sentiment?end=", "end"),
    ("/coin?coin=ETH&end", "end"),  # a bare name is an empty value too
    ("/merged?coin=ETH&bucket=", "bucket"),
    ("/merged?coin=ETH&start=", "start"),
])
def test_an_empty_parameter_is_a_400_not_its_default(client: TestClient, path: str,
                                                     name: str) -> None:
    assert _bad(client, path).startswith(f"query parameter {name!r} is empty: give ")


def test_an_absent_parameter_keeps_its_default(client: TestClient) -> None:
    response = client.get("/correlation?coin=ETH&max_lag=0")
    assert response.status_code == 200, response.text
    params = response.json()["params"]
    assert (params["buckets"], params["method"], params["tolerance_buckets"]) == \
        (["PT10S"], "pearson", 0)
    assert client.get("/sentiment").json()["total"] == 150


@pytest.mark.parametrize("path", ["/coin?coin=ETH,BTC", "/sentiment?coin=ETH,BTC",
                                  "/merged?coin=ETH,BTC"])
def test_a_list_of_coins_where_one_is_taken_says_so(client: TestClient, path: str) -> None:
    detail = _bad(client, path)
    assert detail.startswith("query parameter 'coin' takes one coin symbol on this route, got "
                             "a list: 'ETH,BTC'"), detail
    assert "capitals" not in detail  # they are capitals: that was not the mistake


def test_a_malformed_single_coin_is_still_about_capitals(client: TestClient) -> None:
    assert _bad(client, "/coin?coin=eth") == \
        "query parameter 'coin' must be a coin symbol in capitals (BTC, ETH), got 'eth'"
    assert _bad(client, "/correlation?coin=ETH,btc").startswith(
        "query parameter 'coin' must be coin symbols in capitals (BTC, ETH)")


def test_sentiment_knows_the_coins_the_tweets_mention(client: TestClient) -> None:
    """``/sentiment`` reads sentiments: a coin tweets mention is served without trades."""
    response = client.get("/sentiment?coin=DOGE&limit=1000")
    assert response.status_code == 200, response.text  # was "DOGE has no trades"
    page = response.json()
    assert page["total"] == sum("DOGE" in c for c in _sentiments()["coins"].to_list()) > 0
    assert all("DOGE" in item["coins"] for item in page["items"])
    assert _bad(client, "/sentiment?coin=XRP") == (
        "query parameter 'coin': no tweet sentiment mentions XRP; coins the sentiments "
        "mention: ['BTC', 'DOGE', 'ETH']")
    # the routes that read trades still ask for trades
    assert _bad(client, "/coin?coin=DOGE") == \
        "query parameter 'coin': DOGE has no trades; known coins: ['BTC', 'ETH']"


def test_without_sentiments_sentiment_says_sentiments(tmp_path: Path) -> None:
    with _client(_lake(tmp_path / "lake", sentiments=False)) as c:
        for path in ("/sentiment", "/sentiment?coin=ETH"):
            response = c.get(path)
            assert response.status_code == 503, response.text
            assert response.json()["detail"] == "no tweet sentiments have been ingested yet"
        assert c.get("/coin?coin=ETH").status_code == 200


def test_sentiments_without_trades_are_served(tmp_path: Path) -> None:
    with _client(_lake(tmp_path / "lake", trades=False)) as c:
        response = c.get("/sentiment?coin=ETH&limit=1")
        assert response.status_code == 200, response.text  # was a 503 about trades
        assert response.json()["items"][0]["coins"][0] == "ETH"
        coin = c.get("/coin?coin=ETH")
        assert (coin.status_code, coin.json()["detail"]) == \
            (503, "no coin trades have been ingested yet")


@pytest.mark.parametrize("lag", [-1, -3, -20, 2])
def test_merged_at_a_lag_holds_the_pairs_correlation_uses_for_it(client: TestClient,
                                                                 lag: int) -> None:
    """``/merged?lag=-k`` pairs each return with the sentiment ``/correlation`` pairs at -k."""
    merged = client.get(f"/merged?coin=ETH&bucket=PT10S&tolerance=1&lag={lag}")
    assert merged.status_code == 200, merged.text
    rows = merged.json()["rows"]
    assert merged.json()["lag"] == lag
    for row in rows:  # asof_at = bucket_end - lag buckets: after the bucket when lag < 0
        end = datetime.fromisoformat(row["bucket_end"])
        assert datetime.fromisoformat(row["asof_at"]) == end - lag * BUCKET
        if row["sentiment_end"] is not None:
            assert row["sentiment_end"] <= row["asof_at"]
    pairs = [(r["log_return"], r["sentiment"]) for r in rows
             if r["log_return"] is not None and r["sentiment"] is not None]
    if lag < 0:  # the reverse question: some returns are paired with later tweets
        assert any(r["sentiment_end"] is not None and r["sentiment_end"] > r["bucket_end"]
                   for r in rows)
    table = client.get(f"/correlation?coin=ETH&bucket=PT10S&tolerance=1&max_lag={abs(lag)}")
    assert table.status_code == 200, table.text
    (row,) = [r for r in table.json()["results"] if r["lag"] == lag]
    x, y = np.array(pairs).T
    assert row["n"] == len(pairs) >= 8
    assert row["pearson_r"] == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert row["spearman_rho"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize(("lag", "accepted"), [("-20", True), ("20", True), ("-21", False),
                                               ("21", False), ("--1", False), ("+1", False)])
def test_merged_takes_lags_from_minus_to_plus_max_lag(client: TestClient, lag: str,
                                                      accepted: bool) -> None:
    response = client.get(f"/merged?coin=ETH&lag={lag}")
    if accepted:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith(
            "query parameter 'lag' must be a whole number from -20 to 20, got ")


def test_the_lag_bound_is_the_one_correlation_uses() -> None:
    from cryptodudez.mood.results import MAX_LAG  # noqa: PLC0415
    from serving import mood  # noqa: PLC0415

    assert mood.MAX_LAG == MAX_LAG


def test_the_openapi_schema_documents_the_lag_range_and_stays_valid(client: TestClient) -> None:
    schema = client.get("/schema/openapi.json").json()
    lag = next(p for p in schema["paths"]["/merged"]["get"]["parameters"] if p["name"] == "lag")
    assert (lag["schema"]["minimum"], lag["schema"]["maximum"]) == (-20, 20)
    responses = schema["paths"]["/sentiment"]["get"]["responses"]
    assert responses["503"]["description"].startswith("no tweet sentiments have been ingested")
    for path in ("/coin", "/sentiment", "/merged", "/correlation"):
        for parameter in schema["paths"][path]["get"]["parameters"]:
            if parameter["schema"]["type"] == "string":
                assert parameter["schema"]["minLength"] == 1, (path, parameter["name"])
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(schema)


# Queries of every route, answered 200, 400 or 503 on this lake (no model, no signal).
ANSWERS = ["/coin?coin=ETH", "/coin?coin=BTC&limit=1&offset=3", "/coin?coin=eth",
           "/sentiment", "/sentiment?coin=DOGE&limit=2", "/sentiment?limit=0",
           "/merged?coin=ETH&bucket=PT2S", "/merged?coin=BTC&lag=-2&tolerance=1",
           "/merged?coin=ETH&start=2030-01-01T00:00:00Z", "/merged?coin=DOGE",
           "/correlation?coin=ETH,BTC&bucket=PT10S,PT1M&max_lag=3&method=spearman",
           "/correlation?coin=ETH&bucket=PT1H", "/correlation?max_lag=99",
           "/health", "/health?x=1", "/predict?vol_moving_avg=1&adj_close_rolling_med=1",
           "/predict", "/signal/eth", "/signal/eth?x=1"]


def test_every_answer_is_what_the_openapi_schema_documents(client: TestClient) -> None:
    """Each status is documented for its route and each JSON body validates against it.

    A QA walkthrough validated answers against the schema: ``/merged`` gave ``tweets: null``
    where the schema said integer (a generated client fails on those rows), and ``/health``
    answered a 400 it did not document. Comparing key names, as before, saw neither.
    """
    import jsonschema  # noqa: PLC0415
    import referencing  # noqa: PLC0415
    from referencing.jsonschema import DRAFT202012  # noqa: PLC0415

    doc = client.get("/schema/openapi.json").json()
    registry = referencing.Registry().with_resource("urn:api",
                                                    DRAFT202012.create_resource(doc))
    validated = 0
    for query in ANSWERS:
        response = client.get(query)
        route = query.split("?")[0]
        documented = doc["paths"][route]["get"]["responses"]
        status = str(response.status_code)
        assert status in documented, (query, status, response.text)
        if "application/json" not in documented[status].get("content", {}):
            continue
        pointer = "/".join(["", "paths", route.replace("/", "~1"), "get", "responses", status,
                            "content", "application~1json", "schema"])
        validator = jsonschema.Draft202012Validator({"$ref": f"urn:api#{pointer}"},
                                                    registry=registry)
        errors = [f"{e.message} at {list(e.absolute_path)}"
                  for e in validator.iter_errors(response.json())]
        assert errors == [], (query, errors[:3])
        validated += 1
    assert validated >= 9
    rows = client.get("/merged?coin=ETH&bucket=PT2S").json()["rows"]
    assert any(row["tweets"] is None for row in rows)  # the case the schema missed


# Every integer parameter of the mood routes, with a query the route answers 200 to besides.
INTEGERS = [("/coin?coin=ETH", "limit", 1), ("/coin?coin=ETH", "offset", 3),
            ("/sentiment?coin=ETH", "limit", 1), ("/sentiment", "offset", 3),
            ("/merged?coin=ETH", "tolerance", 1), ("/merged?coin=ETH", "lag", 1),
            ("/merged?coin=ETH", "lag", -1), ("/correlation?coin=ETH", "max_lag", 1),
            ("/correlation?coin=ETH&max_lag=0", "tolerance", 1)]


def _with(path: str, query: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{query}"


def _echoed(body: dict[str, object], name: str) -> object:
    """The value a route answers with for integer parameter ``name``."""
    if "params" in body:  # /correlation
        params = body["params"]
        assert isinstance(params, dict)
        return params["tolerance_buckets" if name == "tolerance" else name]
    return body[name]


@pytest.mark.parametrize(("path", "name", "value"), INTEGERS)
@pytest.mark.parametrize("zeros", [1, 9, 5000])
def test_an_integer_with_leading_zeros_is_its_value(client: TestClient, path: str, name: str,
                                                    value: int, zeros: int) -> None:
    """``/sentiment?limit=0000000001`` was a 400 while ``limit=01`` was 1 (at most 9 digits
    were read); every integer parameter now takes leading zeros, however many."""
    sign = "-" if value < 0 else ""
    plain = client.get(_with(path, f"{name}={value}"))
    padded = client.get(_with(path, f"{name}={sign}{'0' * zeros}{abs(value)}"))
    assert plain.status_code == padded.status_code == 200, padded.text[:300]
    assert _echoed(padded.json(), name) == value
    assert padded.content == plain.content


def test_the_two_spellings_of_the_report_answer_alike(client: TestClient) -> None:
    answers = [client.get(f"/sentiment?limit={text}") for text in ("0000000001", "01", "1")]
    assert {a.status_code for a in answers} == {200}
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert answers[0].json()["limit"] == 1 and len(answers[0].json()["items"]) == 1


@pytest.mark.parametrize(("path", "name", "raw", "bounds"), [
    ("/sentiment", "limit", "0000000000", "1 to 1000"),  # zero, however written
    ("/sentiment", "limit", "00000001001", "1 to 1000"),  # the range applies to the value
    ("/sentiment", "offset", "0" * 20 + "1000000000", "0 to 999999999"),
    ("/sentiment", "offset", "9" * 5000, "0 to 999999999"),  # not int()'s ValueError, a 500
    ("/sentiment", "limit", "0" * 5000 + "1" * 5000, "1 to 1000"),
    ("/merged?coin=ETH", "lag", "-000021", "-20 to 20"),
    ("/merged?coin=ETH", "lag", "-", "-20 to 20"),
    ("/merged?coin=ETH", "tolerance", "-0", "0 to 1000"),  # a sign only where the range is
    ("/correlation?coin=ETH", "max_lag", "0021", "0 to 20"),
    ("/coin?coin=ETH", "limit", "0x1", "1 to 1000"),
    ("/coin?coin=ETH", "limit", "%EF%BC%90%EF%BC%91", "1 to 1000"),  # fullwidth "01"
], ids=lambda v: f"{v[:12]}...({len(v)})" if isinstance(v, str) and len(v) > 30 else None)
def test_an_integer_outside_its_range_or_grammar_is_a_400(client: TestClient, path: str,
                                                          name: str, raw: str,
                                                          bounds: str) -> None:
    detail = _bad(client, _with(path, f"{name}={raw}"))
    assert detail.startswith(f"query parameter {name!r} must be a whole number from {bounds}, "
                             "got "), detail
    assert len(detail) < 200  # a long value is cut


@pytest.mark.parametrize(("raw", "says"), [
    ("9999-12-31T23:59:59-01:00", "outside the years 1 to 9999 in UTC"),
    ("0001-01-01T00:00:00+01:00", "outside the years 1 to 9999 in UTC"),
    ("2018-07-16T20:00:00", "must be an ISO-8601 instant with a zone"),
    ("2018-13-01", "must be an ISO-8601 instant with a zone"),
])
def test_an_instant_beyond_utcs_years_is_told_apart_from_a_malformed_one(
        client: TestClient, raw: str, says: str) -> None:
    """A well-formed instant with a zone was told it "must be an instant with a zone" (QA)."""
    answer = client.get("/coin", params={"coin": "ETH", "end": raw})
    assert answer.status_code == 400
    assert says in answer.json()["detail"]
    assert "'end'" in answer.json()["detail"]


@pytest.mark.parametrize(("bound", "total"), [
    ("start=2018-07-16T20:10:03.0000001Z", 198),  # the trade at 20:10:03 is before it
    ("start=2018-07-16T20:10:03.000000000Z", 199),  # zeros past the microsecond change nothing
    ("end=2018-07-16T20:10:03.0000001Z", 2),  # ... and is before this end
    ("end=2018-07-16T22:10:03.000000900%2B02:00", 2),
    ("end=2018-07-16 20:10:03Z", 1),  # RFC 3339's space
    ("start=2018-07-16t20:10:03z", 199),
])
def test_an_instant_finer_than_the_data_bounds_it_exactly(client: TestClient, bound: str,
                                                          total: int) -> None:
    """ETH trades every 3 s from 20:10:00. A seventh fractional digit was cut off (QA): the
    start ...03.8164979Z kept the trade at ...03.816497Z, before the instant asked."""
    answer = client.get(f"/coin?coin=ETH&limit=1&{bound}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == total


@pytest.mark.parametrize("raw", [
    "2018-07-16T20:12:00.Z", "2018-07-16T20:12:00.%2B01:00",  # a fraction without digits
    "2018-07-16T20:12.5Z", "20180716T201200Z", "2018-07-16T20:12:00%2B0100",
    "2018-07-16T20:12:03.1234567890Z", "2018-W29-1T20:12:00Z", "2018-197T20:12:00Z",
])
def test_an_instant_outside_rfc_3339_is_a_400(client: TestClient, raw: str) -> None:
    """``datetime.fromisoformat`` took these (QA); the docs promise one grammar."""
    detail = _bad(client, f"/coin?coin=ETH&start={raw}")
    assert detail.startswith("query parameter 'start' must be an ISO-8601 instant with a zone")
