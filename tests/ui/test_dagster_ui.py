"""The Dagster UI in a real browser: webserver and daemon over a lake with a sample ingested.

Playwright drives Debian's Chromium (``executable_path``; never ``playwright install``): the
asset graph, a partition's metadata, the checks tab, and a "Materialize all" run that the
daemon dequeues and that reaches success. Screenshots go to a temporary folder, or to
``$CRYPTODUDEZ_UI_SHOTS`` (``scripts/ui_screenshots.sh`` refreshes ``docs/images/ui/`` so).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
import pytest
import yaml

from cryptodudez import commands
from cryptodudez.instance import free_port, write_instance_yaml
from cryptodudez.settings import PROJECT_DIR, Settings

pytestmark = [pytest.mark.xdist_group("ui"), pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

SAMPLE = PROJECT_DIR / "samples" / "cryptomood_sample.zip"
PARTITION = "cryptomood_sample.zip"
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 180
# Dagster's "Join the community" dialog stays away once this key is set (useStateWithStorage
# in the webserver's bundle: ``useStateWithStorage('communityNux', ...)``).
DISMISS_COMMUNITY = "window.localStorage.setItem('communityNux', 'true');"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT to the process group, then SIGKILL if it is still there after 20 s."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _start(procs: list[subprocess.Popen[bytes]], logs: Path, name: str, args: list[str],
           env: dict[str, str]) -> None:
    with (logs / f"{name}.log").open("wb") as log:
        procs.append(subprocess.Popen([str(BIN / "cryptodudez"), *args], cwd=PROJECT_DIR,
                                      env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))


# What the code server logs once it serves (its proxy has loaded the definitions).
CODE_SERVER_STARTED = "Started Dagster code proxy server"


def _wait_for_code_server(port: int, procs: list[subprocess.Popen[bytes]], logs: Path) -> None:
    """Wait for the code server's start-up line, then for its gRPC health check to pass.

    Each health check is a new ``dagster`` process that imports Dagster (seconds of CPU that
    slow the code server's own start on 2 cores), so it runs only once the log says the
    server is up (or at the deadline, should the wording change).
    """
    deadline = time.monotonic() + START_TIMEOUT_S
    log = logs / "code-location.log"
    while (CODE_SERVER_STARTED not in log.read_text(errors="replace")
           and procs[-1].poll() is None and time.monotonic() < deadline - 60):
        time.sleep(0.5)
    check = [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(port),
             "-h", "127.0.0.1"]
    while subprocess.run(check, capture_output=True, timeout=60, check=False).returncode:
        if procs[-1].poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the code server did not start:\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(1)


class DagsterUI(NamedTuple):
    base: str  # http://127.0.0.1:<port>
    home: Path  # its DAGSTER_HOME (SQLite)


@pytest.fixture(scope="session")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterUI]:
    """Code server, webserver and daemon over a lake with the cryptomood sample ingested.

    Session scope: xdist interleaves other modules' tests on this worker, and a module-scoped
    fixture would be torn down and started again (over a minute each time) between them.
    """
    root = tmp_path_factory.mktemp("dagster_ui")
    settings = Settings(lake=str(root / "lake"), dagster_home=str(root / "dagster"))
    write_instance_yaml(Path(settings.dagster_home), None)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", settings.dagster_home)  # restored after the ingest
        commands.land([SAMPLE], settings=settings)
        counts = commands.ingest(settings=settings, progress=False)
    assert counts["ingested"] == 1, counts
    assert counts["failed"] == 0, counts

    port, code_port = free_port(), free_port()
    # Production's split: the code server alone, the webserver and the daemon reaching it by
    # CRYPTODUDEZ_CODE_LOCATION; each started by the image's own command.
    proc_env = {**os.environ, "DAGSTER_HOME": settings.dagster_home,
                "CRYPTODUDEZ_LAKE": settings.lake, "DAGSTER_DISABLE_TELEMETRY": "1",
                "CRYPTODUDEZ_CODE_LOCATION": f"127.0.0.1:{code_port}"}
    logs = root / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _start(procs, logs, "code-location", ["code-location", "--host", "127.0.0.1",
                                              "--port", str(code_port)], proc_env)
        _wait_for_code_server(code_port, procs, logs)
        _start(procs, logs, "webserver", ["webserver", "--host", "127.0.0.1",
                                          "--port", str(port)], proc_env)
        _start(procs, logs, "daemon", ["daemon"], proc_env)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                _get_json(f"{base}/server_info")
                break
            except OSError:
                dead = [p.args for p in procs if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    tail = (logs / "webserver.log").read_text(errors="replace")[-3000:]
                    pytest.fail(f"the Dagster webserver did not start ({dead=}):\n{tail}")
                time.sleep(1)
        workspace = yaml.safe_load((Path(settings.dagster_home) / "workspace.yaml").read_text())
        assert workspace["load_from"] == [{"grpc_server": {
            "host": "127.0.0.1", "port": code_port, "location_name": "cryptodudez"}}]
        yield DagsterUI(base, Path(settings.dagster_home))
    finally:
        for proc in procs:
            _stop(proc)


@pytest.fixture
def page(browser: Any, dagster_ui: DagsterUI) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 860},
                                  base_url=dagster_ui.base)
    context.add_init_script(DISMISS_COMMUNITY)
    context.set_default_timeout(60_000)
    # expect() has its own 5 s default: too short while the other worker loads the machine.
    expect.set_options(timeout=60_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: ``$CRYPTODUDEZ_UI_SHOTS``, else a temporary folder."""
    configured = os.environ.get("CRYPTODUDEZ_UI_SHOTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("ui_shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _shot(page: Any, name: str, shots: Path) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.read_bytes().startswith(b"\x89PNG"), f"no screenshot written to {path}"


def test_asset_graph_lists_the_groups_and_assets(page: Any, shots: Path) -> None:
    page.goto("/asset-groups")  # the global lineage: one node per group
    for group in ("lake", "validated", "mood", "models", "feature_store"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    expect(page.get_by_text("Join the Dagster community")).to_have_count(0)
    _shot(page, "asset_graph", shots)
    page.goto("/locations/cryptodudez/asset-groups/mood")  # a group's lineage: its assets
    for name in ("coin_trades", "tweet_sentiments", "mood_correlation"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    expect(page.get_by_text("3 / 3 Passed")).to_be_visible()
    _shot(page, "mood_group", shots)


def test_partition_shows_the_ingest_metadata(page: Any, shots: Path) -> None:
    page.goto(f"/assets/coin_trades?view=partitions&partition={PARTITION}")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    for key in ("dagster/row_count", "rows_quarantined", "rows_superseded"):
        expect(page.get_by_text(key, exact=True).first).to_be_visible()
    expect(page.get_by_text("ingest_landed_file").first).to_be_visible()
    _shot(page, "partition_metadata", shots)


def test_checks_tab_lists_the_checks(page: Any, shots: Path) -> None:
    page.goto("/assets/coin_trades?view=checks")
    expect(page.get_by_text("Checks (4)")).to_be_visible()
    for check in ("coin_trades_rows_accounted", "coin_trades_keys_unique",
                  "coin_trades_schema_conforms"):
        expect(page.get_by_text(check, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded").first).to_be_visible()
    _shot(page, "checks", shots)


def test_materialize_all_reaches_success(page: Any, dagster_ui: DagsterUI, shots: Path) -> None:
    """The group's materialize-all button ("Materialize" for a one-asset group).

    The webserver queues the run, the daemon dequeues and launches it, and it succeeds.
    """
    before = set(_run_ids(dagster_ui.home))
    page.goto("/locations/cryptodudez/asset-groups/mood")
    expect(page.get_by_text("mood_correlation", exact=True).first).to_be_visible()
    # The button's accessible name carries its icon's ligature: match on the visible text.
    page.locator("button", has_text=re.compile(r"Materialize( all)?$")).first.click()
    deadline = time.monotonic() + 30
    while not (new := set(_run_ids(dagster_ui.home)) - before):
        assert time.monotonic() < deadline, "no run was launched"
        time.sleep(0.5)
    (run_id,) = new
    page.goto(f"/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(
        timeout=RUN_TIMEOUT_S * 1000)
    expect(page.get_by_text("mood_correlation").first).to_be_visible()
    _shot(page, "materialize_all_success", shots)


def _run_ids(home: Path) -> list[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [r.run_id for r in instance.get_runs()]
