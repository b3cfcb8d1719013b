"""A 500 is logged once with its traceback, method and path; a client's 4xx is not logged.

A QA walkthrough found that a handler's unexpected exception left nothing in the log of
``cryptodudez serve``: the client got a 500 and the operator nothing (Litestar logs only with
a ``logging_config``, which the app leaves to the server, and uvicorn configures only its own
loggers). The fault here is a real one: a ``tweet_sentiments`` fragment that is not Parquet,
which ``/sentiment`` does not anticipate (polars raises ``ComputeError``).
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving.app import ServingSettings, create_app
from tests.api.live import LiveServer

GENERIC = {"status_code": 500, "detail": "Internal Server Error"}
FAILING = "/sentiment?limit=3&coin=ETH"
SECRET = "s3cr3t-value"  # a bad query value (a 400): never in the log
VALUE = "2031-05-17T13:37:42Z"  # a good one, of the request that fails: not in the log either


def _corrupt_lake(root: Path) -> Path:
    """A lake whose only sentiments fragment is not Parquet."""
    folder = root / "validated" / "tweet_sentiments"
    folder.mkdir(parents=True)
    (folder / "part-0.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    return root


def _logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("serving")]


def test_a_500_is_logged_with_its_traceback_and_path_and_a_400_is_not(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(ServingSettings(lake=str(_corrupt_lake(tmp_path / "lake")),
                                     poll_seconds=60))
    caplog.set_level(logging.DEBUG, logger="serving")
    with LiveServer(app) as base, httpx.Client(base_url=base, timeout=60.0) as http:
        for client_error in ("/sentiment?limit=0", f"/sentiment?limit={SECRET}",
                             "/sentiment?coin=eth", "/no-such-route", "/predict"):
            assert 400 <= http.get(client_error).status_code < 500, client_error
        assert http.post("/sentiment").status_code == 405
        assert _logged(caplog) == []  # the answer says it all; nothing for the operator

        answer = http.get(f"{FAILING}&start=2018-07-16&end={VALUE}")
        assert answer.status_code == 500
        assert answer.json() == GENERIC  # no traceback, no exception, no path for the client
        (record,) = _logged(caplog)
        assert record.levelno == logging.ERROR and record.name == "serving.app"
        assert record.getMessage() == (
            "500 answering GET '/sentiment' (query parameters 'limit', 'coin', 'start', 'end'; "
            "their values are not logged): ComputeError")
        assert record.exc_info is not None and record.exc_info[0] is not None
        assert record.exc_info[0].__name__ == "ComputeError"
        assert SECRET not in caplog.text and VALUE not in caplog.text
        assert "Traceback (most recent call last)" in caplog.text
        assert 'serving/mood.py", line' in caplog.text  # the frames down to the handler

        assert http.head(FAILING).status_code == 500  # HEAD goes through the same hook
        assert [r.getMessage().split(" (")[0] for r in _logged(caplog)] == [
            "500 answering GET '/sentiment'", "500 answering HEAD '/sentiment'"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_served_api_writes_a_500s_traceback_to_stderr(tmp_path: Path) -> None:
    """``python -m serving`` (what ``cryptodudez serve`` execs), with two worker processes."""
    lake = _corrupt_lake(tmp_path / "lake")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CRYPTODUDEZ_"))}
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port",
                             str(port), "--workers", "2"],
                            env={**env, "CRYPTODUDEZ_LAKE": str(lake)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # only a hung server reaches it
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the server did not answer within 300 s"
            try:
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=60.0) as http:
            assert http.get(f"/sentiment?limit={SECRET}").status_code == 400
            answer = http.get(f"{FAILING}&end={VALUE}")
            assert (answer.status_code, answer.json()) == (500, GENERIC)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate(timeout=5)
    stderr = err.decode()
    assert stderr.count("Traceback (most recent call last)") == 1, stderr
    assert ("ERROR:    500 answering GET '/sentiment' (query parameters 'limit', 'coin', 'end'; "
            "their values are not logged): ComputeError\n") in stderr, stderr
    assert "polars.exceptions.ComputeError: " in stderr
    assert SECRET not in stderr and VALUE not in stderr
