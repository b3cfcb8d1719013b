"""A published model that cannot be loaded never stops the API.

A reviewer truncated the latest ``lookup.json``: ``serve`` printed a 57-line traceback and
exited 3 at start, and a running server logged a traceback on every poll. Now the API starts
without that model, ``/predict`` answers 503 saying why, the reason is logged once, and the
next good version is served when it is published.
"""

import logging
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient

from cryptodudez.resources.lake import Lake
from cryptodudez.storage import MODELS
from serving.app import ServingSettings, create_app
from serving.server import announcement
from tests.helpers import publish

GOOD = "/predict?vol_moving_avg=12345&adj_close_rolling_med=25"


def test_a_corrupt_latest_model_is_a_503_that_says_why(
        tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    publish(lake, "v1")
    lookup = lake.path(MODELS, "volume_model", "v1", "lookup.json")
    lake.write_bytes(lookup, lake.read_bytes(lookup)[:100])  # truncated
    caplog.set_level(logging.ERROR, logger="serving.polling")
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=0.05))
    with TestClient(app=app) as client:
        answer = client.get(GOOD)
        assert answer.status_code == 503
        # which version, for the client; the error (it may name the lake's paths) in the log
        assert answer.json()["detail"] == \
            "the latest volume_model (v1) cannot be loaded (the server's log says why)"
        assert client.get("/health").json() == {"status": "no_model", "model": "volume_model",
                                                "version": None}
        time.sleep(0.5)  # about ten polls of the same broken version
        logged = [r for r in caplog.records if "cannot be loaded" in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info is None  # one line, once
        assert ": JSONDecodeError: " in logged[0].getMessage()
        publish(lake, "v2")
        deadline = time.monotonic() + 60
        while client.get(GOOD).status_code != 200:
            assert time.monotonic() < deadline, "the good version was never served"
            time.sleep(0.05)
        assert client.get("/health").json()["version"] == "v2"


@pytest.mark.parametrize(("damage", "error"), [("truncate", "JSONDecodeError: "),
                                              ("delete", "FileNotFoundError: ")])
def test_the_start_up_line_names_only_a_model_that_loads(
        tmp_path, damage: str, error: str) -> None:
    """``serve`` announced ``serving volume_model v2`` while every /predict answered 503
    (the latest version's file missing or corrupt): it now says what it serves."""
    lake = Lake(uri=str(tmp_path / "lake"))
    publish(lake, "v1")
    line = announcement(lake=lake.storage, host="127.0.0.1", port=8000, workers=2)
    assert line.startswith("serving volume_model v1 from ")
    publish(lake, "v2")
    lookup = lake.path(MODELS, "volume_model", "v2", "lookup.json")
    if damage == "truncate":
        lake.write_bytes(lookup, lake.read_bytes(lookup)[:100])
    else:
        Path(lookup).unlink()
    line = announcement(lake=lake.storage, host="127.0.0.1", port=8000, workers=2)
    assert "\n" not in line
    assert line.startswith("serving no volume_model (the latest, v2, cannot be loaded: "
                           f"{error}"), line
    assert line.endswith(f"; polling for one that loads) from {lake.uri} on "
                         "http://127.0.0.1:8000 (2 workers)"), line
