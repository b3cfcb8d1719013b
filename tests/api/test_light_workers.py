"""API workers are light: they never import Dagster, polars, numpy or scikit-learn.

Each uvicorn worker is a fresh interpreter; the data platform would cost ~240 MB and ~2.5 s in each.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptodudez.resources.lake import Lake
from tests.helpers import publish

HEAVY = ("dagster", "polars", "numpy", "sklearn")
# Packages whose native libraries a worker would map if it imported the data platform (Dagster
# itself maps nothing the API does not; the CLI that would bring it imports polars with it).
HEAVY_LIBRARIES = re.compile(r"site-packages/(_?polars[^/]*|numpy|sklearn)/")
WORKER_RSS_LIMIT_MB = 200  # a light worker is ~60 MB here; importing Dagster adds ~250 MB
QUERY = "/predict?vol_moving_avg=12345&adj_close_rolling_med=25"

SERVE_IN_PROCESS = f"""
import sys
from litestar.testing import TestClient
from serving.asgi import app

with TestClient(app=app) as client:
    response = client.get({QUERY!r})
    assert response.status_code == 200, response.text
    print(response.json())
loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)
assert not loaded, f"the API imported {{loaded}}"
"""


def _env(lake: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CRYPTODUDEZ_"))}
    return {**env, "CRYPTODUDEZ_LAKE": str(lake)}


@pytest.fixture
def published(tmp_path: Path) -> Path:
    lake = Lake(uri=str(tmp_path / "lake"))
    publish(lake, "v1")
    return Path(lake.root)


def test_the_asgi_app_serves_without_the_data_platform(published: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SERVE_IN_PROCESS], env=_env(published),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(published: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``cryptodudez serve`` with two workers on a free loopback port (its own group)."""
    port = _free_port()
    cli = Path(sys.executable).with_name("cryptodudez")
    proc = subprocess.Popen([str(cli), "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "2"], env=_env(published), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _workers(group: int) -> list[int]:
    """Processes of the group that uvicorn spawned as workers."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = stat.with_name("cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == group and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.slow
def test_cryptodudez_serve_workers_do_not_load_dagster(
        served: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, base = served
    deadline = time.monotonic() + 300  # only a hung server reaches it (a loaded 2-core CI: ~60 s)
    while True:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "the server did not answer within 300 s"
        try:
            with urllib.request.urlopen(base + QUERY, timeout=5) as response:
                assert response.status == 200
                break
        except OSError:
            time.sleep(0.1)
    workers = _workers(proc.pid)
    assert len(workers) == 2
    # A worker that maps httptools has finished its start-up imports (the re-import of the
    # parent's main script comes first); both do well before the deadline.
    while not all("/httptools/" in _maps(pid) for pid in workers):
        assert time.monotonic() < deadline, "the workers did not finish starting"
        time.sleep(0.1)
    for pid in workers:
        assert heavy_libraries(pid) == set(), pid
        assert rss_mb(pid) < WORKER_RSS_LIMIT_MB, pid


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def heavy_libraries(pid: int) -> set[str]:
    """Heavy packages with native code mapped into process ``pid``."""
    return set(HEAVY_LIBRARIES.findall(_maps(pid)))


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"process {pid} has no VmRSS")
