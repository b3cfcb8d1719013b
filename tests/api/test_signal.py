"""``GET /signal/eth`` over real HTTP, and the signal artefact it serves.

Expected answers are written out from the published rows here, not computed by the serving
code: a wrong field, date or version in the code must fail these tests.
"""

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from cryptodudez.resources.lake import MODELS, Lake
from cryptodudez.storage import LakeStorage
from serving.app import ServingSettings, create_app
from serving.signal_store import (
    SignalRow,
    SignalStore,
    latest_signal_version,
    read_signals,
    write_signals,
)
from tests.api.live import LiveServer, raw_exchange, split_response
from tests.api.test_light_workers import HEAVY
from tests.helpers import publish, publish_signals

# 2021-01-01..2021-01-06 without 2021-01-04: the latest date is 2021-01-06.
DATES = [date(2021, 1, d) for d in (1, 2, 3, 5, 6)]
FIRST, LATEST = "2021-01-01", "2021-01-06"
FIELDS = {"date", "action", "probabilities", "model_version", "features_as_of", "served",
          "in_sample", "label_definition"}
NEXT_DAY = {"method": "horizon", "horizon": 1, "band": 0.01, "band_kind": "fixed"}


def expected(row: SignalRow, *, version: str = "v1", served: str = "model") -> dict[str, Any]:
    """The body ``GET /signal/eth`` answers for a row published by ``publish_signals``."""
    return {"date": row.date.isoformat(), "action": row.action,
            "probabilities": {"buy": row.probabilities["buy"],
                              "hodl": row.probabilities["hodl"],
                              "sell": row.probabilities["sell"]},
            "model_version": version, "features_as_of": f"{row.date.isoformat()}T00:00:00Z",
            "served": served, "in_sample": row.in_sample, "label_definition": NEXT_DAY}


def wait_until(condition: Callable[[], bool], failure: str) -> None:
    """Wait on a condition; the deadline is one only a hung server reaches."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.02)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client,
                                                                       list[SignalRow]]]:
    """One live server for the module: version v1 of the signal and of the volume model."""
    lake = Lake(uri=str(tmp_path_factory.mktemp("signal") / "lake"))
    publish(lake, "v1")
    rows = publish_signals(lake, "v1", DATES)
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=60))
    with LiveServer(app) as base, httpx.Client(base_url=base, timeout=60.0) as http:
        yield http, rows


@pytest.fixture
def http(live: tuple[httpx.Client, list[SignalRow]]) -> httpx.Client:
    return live[0]


@pytest.fixture
def rows(live: tuple[httpx.Client, list[SignalRow]]) -> list[SignalRow]:
    return live[1]


# -- answers ---------------------------------------------------------------------------------


def test_each_date_answers_its_own_signal(http: httpx.Client, rows: list[SignalRow]) -> None:
    assert [r.date.isoformat() for r in rows] == [FIRST, "2021-01-02", "2021-01-03",
                                                  "2021-01-05", LATEST]
    answers = []
    for row in rows:
        response = http.get("/signal/eth", params={"date": row.date.isoformat()})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == expected(row)
        answers.append(response.json())
    assert len({json.dumps(a["probabilities"]) for a in answers}) == len(rows)  # all differ


def test_without_a_date_the_latest_date_answers(http: httpx.Client,
                                                rows: list[SignalRow]) -> None:
    latest = expected(rows[-1])
    assert latest["date"] == LATEST
    assert http.get("/signal/eth").json() == latest
    assert http.get("/signal/eth?").json() == latest
    assert http.get("/signal/eth?_=1&").json() == latest  # the cache-buster alone is ignored
    # Another parameter is a 400 naming it: a misspelt date must not answer the latest day.
    for query, name in (("dates=2021-01-02", "dates"), ("vol_moving_avg=1&x", "vol_moving_avg"),
                        ("date=2021-01-02&y=", "y")):
        response = http.get(f"/signal/eth?{query}")
        assert response.status_code == 400, query
        assert response.json()["detail"] == \
            f"unknown query parameter {name!r}; this route takes: date"


def test_percent_encoded_date(http: httpx.Client, rows: list[SignalRow]) -> None:
    assert http.get("/signal/eth?d%61te=2021%2D01%2D02").json() == expected(rows[1])


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("date=2021-02-30", "must be a real calendar date"),
        ("date=2021-13-01", "must be a real calendar date"),
        ("date=0000-01-01", "must be a real calendar date"),
        ("date=2021-1-01", "must be a calendar date as YYYY-MM-DD"),
        ("date=x", "must be a calendar date as YYYY-MM-DD"),
        ("date=20210101", "must be a calendar date as YYYY-MM-DD"),  # fromisoformat takes it
        ("date=2021-01-01T00:00:00", "must be a calendar date as YYYY-MM-DD"),
        ("date=2021-W01-1", "must be a calendar date as YYYY-MM-DD"),
        ("date=%202021-01-01", "must be a calendar date as YYYY-MM-DD"),
        ("date=2021-01-01%0A", "must be a calendar date as YYYY-MM-DD"),
        ("date=%EF%BC%92021-01-01", "must be a calendar date as YYYY-MM-DD"),  # fullwidth 2
        ("date=" + "2021-01-01" * 500, "(5000 characters)"),
        ("date=", "is empty"),
        ("date", "is empty"),
        ("date=2021-01-01&date=2021-01-02", "given more than once"),
        ("date=2021-01-01&date=2021-01-01", "given more than once"),
        ("date=&date=2021-01-01", "given more than once"),
    ],
)
def test_bad_dates_are_400_naming_date(http: httpx.Client, query: str, says: str) -> None:
    response = http.get(f"/signal/eth?{query}")
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status_code"] == 400
    assert "'date'" in body["detail"]
    assert says in body["detail"]
    assert len(body["detail"]) < 300  # a long value is shortened, not echoed whole


@pytest.mark.parametrize("day", ["2020-12-31", "2021-01-04", "2021-01-07", "2099-12-31"])
def test_a_date_without_features_is_404_saying_which_dates_exist(http: httpx.Client,
                                                                 day: str) -> None:
    response = http.get("/signal/eth", params={"date": day})
    assert response.status_code == 404, response.text
    detail = response.json()["detail"]
    assert day in detail
    assert f"{FIRST}..{LATEST}" in detail
    assert "1 of those days have no features" in detail  # 2021-01-04


def test_predict_and_health_are_unchanged_beside_the_signal(http: httpx.Client) -> None:
    assert http.get("/health").json() == {"status": "ok", "model": "volume_model",
                                          "version": "v1"}
    predicted = http.get("/predict", params={"vol_moving_avg": "12345",
                                             "adj_close_rolling_med": "25"})
    assert predicted.status_code == 200
    assert isinstance(predicted.json(), int)
    assert http.get("/predict?vol_moving_avg=1&adj_close_rolling_med=1&date=x").json() == \
        {"status_code": 400, "detail": "unknown query parameter 'date'; this route takes: "
                                       "adj_close_rolling_med, vol_moving_avg"}


@pytest.mark.parametrize(("path", "status"), [
    ("/signal/eth", b"200"),
    ("/signal/eth?date=2021-01-02", b"200"),
    ("/signal/eth?date=2021-02-30", b"400"),
    ("/signal/eth?date=2021-01-04", b"404"),
])
def test_head_is_get_without_the_body(http: httpx.Client, path: str, status: bytes) -> None:
    port = http.base_url.port
    assert port is not None
    request = f"{{}} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    get_status, get_headers, get_body = split_response(
        raw_exchange(port, request.format("GET").encode()))
    head_status, head_headers, head_body = split_response(
        raw_exchange(port, request.format("HEAD").encode()))
    assert get_status.split()[1] == status
    assert head_status == get_status
    assert head_headers == get_headers
    assert int(get_headers[b"content-length"]) == len(get_body) > 0
    assert head_body == b""


def test_openapi_documents_the_signal(http: httpx.Client) -> None:
    schema = http.get("/schema/openapi.json").json()
    path = schema["paths"]["/signal/eth"]
    assert set(path) == {"get"}  # HEAD is served, not listed (like /predict)
    operation = path["get"]
    [parameter] = operation["parameters"]
    assert parameter["name"] == "date"
    assert parameter["in"] == "query"
    assert parameter["required"] is False
    assert parameter["schema"]["type"] == "string"
    assert parameter["schema"]["format"] == "date"
    assert {"200", "400", "404", "503"} <= set(operation["responses"])
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    body = schema["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
    assert set(body["properties"]) == FIELDS
    assert "/signal/eth" in http.get("/schema/openapi.yaml").text
    assert set(schema["paths"]["/predict"]) == {"get"}  # /predict still documented


def test_in_sample_dates_say_so(http: httpx.Client, rows: list[SignalRow]) -> None:
    """The model refitted on every label predicts its own training days: the answer says so."""
    answers = {day: http.get("/signal/eth", params={"date": day}).json()["in_sample"]
               for day in (FIRST, "2021-01-02", "2021-01-03", "2021-01-05", LATEST)}
    # publish_signals puts the first half of the dates (2 of 5) in sample
    assert answers == {FIRST: True, "2021-01-02": True, "2021-01-03": False,
                       "2021-01-05": False, LATEST: False}
    assert [r.in_sample for r in rows] == list(answers.values())


def test_the_answer_names_its_label_definition(tmp_path: Path) -> None:
    """A signal made from 7-day labels with a 3 % band says so in every answer."""
    lake = Lake(uri=str(tmp_path / "lake"))
    weekly = {"method": "horizon", "horizon": 7, "band": 0.03, "band_kind": "fixed"}
    publish_signals(lake, "v1", DATES, labels=weekly)
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=60))
    with LiveServer(app) as base, httpx.Client(base_url=base, timeout=60.0) as http:
        for query in ("", f"?date={FIRST}"):
            assert http.get(f"/signal/eth{query}").json()["label_definition"] == {
                "method": "horizon", "horizon": 7, "band": 0.03, "band_kind": "fixed"}


def test_a_version_written_before_label_definitions_answers_null(tmp_path: Path) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    rows = publish_signals(lake, "v1", DATES)
    path = lake.path(MODELS, "eth_signal", "v1", "signals.json")
    document = json.loads(lake.read_bytes(path))
    del document["label_definition"]
    lake.write_bytes(path, json.dumps(document).encode())
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=60))
    with LiveServer(app) as base, httpx.Client(base_url=base, timeout=60.0) as http:
        assert http.get("/signal/eth").json() == {**expected(rows[-1]),
                                                  "label_definition": None}


def test_openapi_documents_in_sample_and_the_label_definition(http: httpx.Client) -> None:
    schema = http.get("/schema/openapi.json").json()
    ok = schema["paths"]["/signal/eth"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    body = schema["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
    assert "in_sample" in body["required"]
    in_sample = body["properties"]["in_sample"]
    assert in_sample["type"] == "boolean"
    assert "not a track record" in in_sample["description"]
    assert "label_definition" in body["required"]
    assert "label definition" in body["properties"]["label_definition"]["description"]
    (ref,) = [branch["$ref"] for branch in body["properties"]["label_definition"]["oneOf"]
              if "$ref" in branch]
    labels = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(labels["properties"]) == {"method", "horizon", "band", "band_kind"}
    assert "in_sample" in schema["paths"]["/signal/eth"]["get"]["description"]


# -- publishing while serving ----------------------------------------------------------------


def test_before_any_signal_is_published_503_then_the_first_is_served(tmp_path: Path) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=0.05))
    with LiveServer(app) as base, httpx.Client(base_url=base, timeout=60.0) as http:
        for query in ("", "?date=2021-01-01"):
            response = http.get(f"/signal/eth{query}")
            assert response.status_code == 503, response.text
            assert "no ETH signal has been published yet" in response.json()["detail"]
            head = http.head(f"/signal/eth{query}")
            assert head.status_code == 503
            assert head.content == b""
        assert http.get("/signal/eth?date=x").status_code == 400  # the query is checked first
        assert http.get("/health").json()["status"] == "no_model"  # unchanged
        rows = publish_signals(lake, "v1", DATES)
        wait_until(lambda: http.get("/signal/eth").status_code == 200,
                   "the first signal was never served")
        assert http.get("/signal/eth").json() == expected(rows[-1])


def test_a_new_version_is_served_without_a_restart(tmp_path: Path) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    old = publish_signals(lake, "v1", DATES)
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=0.05))
    with LiveServer(app) as base, httpx.Client(base_url=base, timeout=60.0) as http:
        assert http.get("/signal/eth").json() == expected(old[-1])
        assert http.get("/signal/eth?date=2021-01-07").status_code == 404
        new = publish_signals(lake, "v2", [*DATES, date(2021, 1, 7)],
                              served="baseline:always_hodl", seed=1)
        wait_until(lambda: http.get("/signal/eth").json()["model_version"] == "v2",
                   "the new version was never served")
        assert http.get("/signal/eth").json() == expected(new[-1], version="v2",
                                                          served="baseline:always_hodl")
        assert http.get("/signal/eth?date=2021-01-02").json() == expected(
            new[1], version="v2", served="baseline:always_hodl")
        assert new[1].probabilities != old[1].probabilities


def test_a_version_that_cannot_be_loaded_leaves_the_served_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    old = publish_signals(lake, "v1", DATES)
    good = json.loads(lake.read_bytes(lake.path(MODELS, "eth_signal", "v1", "signals.json")))
    broken = {**good, "version": "v2", "model_version": "v2",
              "rows": [{**good["rows"][0], "action": "moon"}]}
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=0.05))
    with caplog.at_level(logging.ERROR, logger="serving.polling"), LiveServer(app) as base, \
            httpx.Client(base_url=base, timeout=60.0) as http:
        assert http.get("/signal/eth").json() == expected(old[-1])
        lake.write_bytes(lake.path(MODELS, "eth_signal", "v2", "signals.json"),
                         json.dumps(broken).encode())
        lake.write_bytes(lake.path(MODELS, "eth_signal", "LATEST"), b"v2")
        wait_until(lambda: any("keeping v1" in r.getMessage() for r in caplog.records),
                   "the broken version was never tried")
        assert http.get("/signal/eth").json() == expected(old[-1])
        new = publish_signals(lake, "v3", DATES, seed=2)
        wait_until(lambda: http.get("/signal/eth").json()["model_version"] == "v3",
                   "the next good version was never served")
        assert http.get("/signal/eth").json() == expected(new[-1], version="v3")


def test_a_broken_signal_at_start_does_not_stop_the_api(tmp_path: Path) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    publish(lake, "v1")
    lake.write_bytes(lake.path(MODELS, "eth_signal", "v1", "signals.json"), b"{not json")
    lake.write_bytes(lake.path(MODELS, "eth_signal", "LATEST"), b"v1")
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=60))
    with LiveServer(app) as base, httpx.Client(base_url=base, timeout=60.0) as http:
        assert http.get("/signal/eth").status_code == 503
        assert http.get("/health").json()["status"] == "ok"


SERVE_IN_PROCESS = f"""
import sys
from litestar.testing import TestClient
from serving.asgi import app

with TestClient(app=app) as client:
    response = client.get("/signal/eth")
    assert response.status_code == 200, response.text
    print(response.json()["date"])
loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)
assert not loaded, f"the API imported {{loaded}}"
"""


def test_the_signal_is_served_without_the_data_platform(tmp_path: Path) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    publish_signals(lake, "v1", DATES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CRYPTODUDEZ_"))}
    done = subprocess.run([sys.executable, "-c", SERVE_IN_PROCESS],
                          env={**env, "CRYPTODUDEZ_LAKE": lake.root}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == LATEST


# -- the artefact ----------------------------------------------------------------------------


class RecordingLake:
    """A lake that records what is written, in order."""

    def __init__(self) -> None:
        self.written: list[tuple[str, bytes]] = []

    def path(self, *parts: str) -> str:
        return "/".join(("root", *parts))

    def write_bytes(self, path: str, data: bytes) -> None:
        self.written.append((path, data))


def _row(day: date, **changes: Any) -> SignalRow:
    fields: dict[str, Any] = {"date": day, "action": "buy",
                              "probabilities": {"buy": 0.5, "hodl": 0.25, "sell": 0.25},
                              "features_as_of": datetime(2021, 1, 1, 12, 30, 5, tzinfo=UTC),
                              "in_sample": False}
    return SignalRow(**{**fields, **changes})


def test_the_artefact_is_written_as_documented_and_latest_last() -> None:
    lake = RecordingLake()
    rows = [_row(date(2021, 1, 2), action="sell", in_sample=True,
                 probabilities={"sell": 0.75, "buy": 0.0, "hodl": 0.25},
                 features_as_of=datetime(2021, 1, 2, 1, 30, tzinfo=timezone(timedelta(hours=2)))),
            _row(date(2021, 1, 1), features_as_of=datetime(2021, 1, 1, 23, 59, 59))]
    path = write_signals(lake, "v7", rows, served="baseline:momentum",
                         label_definition={**NEXT_DAY, "band": 0})
    assert path == "root/models/eth_signal/v7/signals.json"
    assert [p for p, _ in lake.written] == [path, "root/models/eth_signal/LATEST"]
    assert lake.written[1][1] == b"v7"
    assert json.loads(lake.written[0][1]) == {
        "version": "v7", "served": "baseline:momentum", "model_version": "v7",
        "classes": ["buy", "hodl", "sell"], "label_definition": {**NEXT_DAY, "band": 0.0},
        "rows": [
            {"date": "2021-01-01", "action": "buy",
             "probabilities": {"buy": 0.5, "hodl": 0.25, "sell": 0.25},
             "features_as_of": "2021-01-01T23:59:59Z", "in_sample": False},  # naive is UTC
            {"date": "2021-01-02", "action": "sell",
             "probabilities": {"buy": 0.0, "hodl": 0.25, "sell": 0.75},
             "features_as_of": "2021-01-01T23:30:00Z", "in_sample": True},  # to UTC
        ],
    }


def test_what_is_written_reads_back(tmp_path: Path) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    storage = LakeStorage(lake.uri)
    assert latest_signal_version(storage) is None
    rows = publish_signals(lake, "v1", DATES)
    assert latest_signal_version(storage) == "v1"
    signals = read_signals(storage, "v1")
    assert (signals.version, signals.served) == ("v1", "model")
    assert (signals.first, signals.latest) == (DATES[0], DATES[-1])
    assert list(signals.rows.values()) == rows
    assert list(signals.rows) == DATES


@pytest.mark.parametrize(
    ("version", "rows", "served", "says"),
    [
        ("", [_row(date(2021, 1, 1))], "model", "a version is"),
        ("../v1", [_row(date(2021, 1, 1))], "model", "a version is"),
        ("LATEST", [_row(date(2021, 1, 1))], "model", "a version is"),
        ("v1", [_row(date(2021, 1, 1))], "baseline:", "served must be"),
        ("v1", [_row(date(2021, 1, 1))], "Model", "served must be"),
        ("v1", [], "model", "has no rows"),
        ("v1", [_row(date(2021, 1, 1)), _row(date(2021, 1, 1))], "model", "more than one row"),
        ("v1", [_row(date(2021, 1, 1), action="moon")], "model", "action must be"),
        ("v1", [_row(date(2021, 1, 1), probabilities={"buy": 0.5, "sell": 0.5})], "model",
         "exactly the keys"),
        ("v1", [_row(date(2021, 1, 1), probabilities={"buy": 0.5, "hodl": 0.5, "sell": 0.5})],
         "model", "sum to 1"),
        ("v1", [_row(date(2021, 1, 1), probabilities={"buy": 1.5, "hodl": -0.5, "sell": 0.0})],
         "model", "from 0 to 1"),
        ("v1", [_row(date(2021, 1, 1), probabilities={"buy": float("nan"), "hodl": 0.5,
                                                      "sell": 0.5})], "model", "from 0 to 1"),
        ("v1", [_row(datetime(2021, 1, 1, tzinfo=UTC))], "model", "not a datetime"),
        ("v1", [_row(date(2021, 1, 1), features_as_of=date(2021, 1, 1))], "model",
         "must be a datetime"),
        ("v1", [_row(date(2021, 1, 1), in_sample=1)], "model", "in_sample"),
    ],
)
def test_a_bad_signal_is_refused_before_anything_is_written(
        version: str, rows: list[SignalRow], served: str, says: str) -> None:
    lake = RecordingLake()
    with pytest.raises(ValueError, match=re.escape(says)):
        write_signals(lake, version, rows, served=served, label_definition=NEXT_DAY)
    assert lake.written == []


@pytest.mark.parametrize(("labels", "says"), [
    ({**NEXT_DAY, "horizon": 0}, "horizon must be a whole number of days >= 1, got 0"),
    ({**NEXT_DAY, "horizon": True}, "horizon must be a whole number"),
    ({**NEXT_DAY, "band": -0.01}, "band must be a finite number >= 0, got -0.01"),
    ({**NEXT_DAY, "band": float("nan")}, "band must be a finite number"),
    ({**NEXT_DAY, "method": "barrier"}, "method must be one of"),
    ({**NEXT_DAY, "band_kind": "vol"}, "band_kind must be one of"),
    ({"horizon": 1, "band": 0.01}, "exactly the keys"),
    ({**NEXT_DAY, "serve": True}, "exactly the keys"),
])
def test_a_bad_label_definition_is_refused_before_anything_is_written(
        labels: dict[str, Any], says: str) -> None:
    lake = RecordingLake()
    with pytest.raises(ValueError, match=re.escape(says)):
        write_signals(lake, "v1", [_row(date(2021, 1, 1))], label_definition=labels)
    assert lake.written == []


def _good_document() -> dict[str, Any]:
    lake = RecordingLake()
    path = write_signals(lake, "v1", [_row(date(2021, 1, 1)), _row(date(2021, 1, 2))],
                         label_definition=NEXT_DAY)
    document: dict[str, Any] = json.loads(dict(lake.written)[path])
    return document


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d.update(version="v2"), "another version's file"),
        (lambda d: d.update(model_version="v0"), "model_version is not the version"),
        (lambda d: d.update(served="baseline"), "served without a name"),
        (lambda d: d.update(classes=["sell", "hodl", "buy"]), "other classes"),
        (lambda d: d.update(rows=[]), "no rows"),
        (lambda d: d["rows"].reverse(), "rows not sorted"),
        (lambda d: d["rows"].append(d["rows"][1]), "a date twice"),
        (lambda d: d["rows"][0].update(date="2021-02-30"), "not a calendar date"),
        (lambda d: d["rows"][0].update(date="20210101"), "not YYYY-MM-DD"),
        (lambda d: d["rows"][0].update(action="moon"), "unknown action"),
        (lambda d: d["rows"][0]["probabilities"].update(buy=0.9), "sum is not 1"),
        (lambda d: d["rows"][0]["probabilities"].update(buy=True), "a bool"),
        (lambda d: d["rows"][0].update(features_as_of="2021-01-01 00:00:00"),
         "instant without T and Z"),
        (lambda d: d["rows"][0].update(features_as_of="2021-01-01T25:00:00Z"),
         "impossible hour"),
        (lambda d: d["rows"][0].update(in_sample="yes"), "in_sample not a bool"),
        (lambda d: d["rows"][0].pop("in_sample"), "a key missing"),
        (lambda d: d["label_definition"].update(horizon=0), "a horizon of 0 days"),
        (lambda d: d["label_definition"].pop("band_kind"), "a label field missing"),
        (lambda d: d.update(label_definition=None), "a label definition that is null"),
    ],
)
def test_a_malformed_file_is_refused_by_the_reader(
        tmp_path: Path, change: Callable[[dict[str, Any]], object], why: str) -> None:
    document = _good_document()
    change(document)
    lake = Lake(uri=str(tmp_path / "lake"))
    lake.write_bytes(lake.path(MODELS, "eth_signal", "v1", "signals.json"),
                     json.dumps(document).encode())
    with pytest.raises(ValueError):
        read_signals(LakeStorage(lake.uri), "v1")
    lake.write_bytes(lake.path(MODELS, "eth_signal", "LATEST"), b"v1")
    store = SignalStore(LakeStorage(lake.uri))
    with pytest.raises(ValueError):
        store.refresh()
    assert store.current is None, why


def test_the_good_document_is_read(tmp_path: Path) -> None:
    """The malformed documents above are each one change away from this one, which reads."""
    lake = Lake(uri=str(tmp_path / "lake"))
    lake.write_bytes(lake.path(MODELS, "eth_signal", "v1", "signals.json"),
                     json.dumps(_good_document()).encode())
    signals = read_signals(LakeStorage(lake.uri), "v1")
    assert list(signals.rows) == [date(2021, 1, 1), date(2021, 1, 2)]


def test_a_version_pointer_that_leaves_the_folder_is_refused(tmp_path: Path) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    publish_signals(lake, "v1", DATES)
    lake.write_bytes(lake.path(MODELS, "eth_signal", "LATEST"), b"../volume_model")
    with pytest.raises(ValueError, match="a version is"):
        SignalStore(LakeStorage(lake.uri)).refresh()
