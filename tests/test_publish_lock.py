"""One publisher at a time, whatever the Dagster instance's configuration says.

The rule used to live in a ``dagster.yaml`` that only the CLI wrote; now the lake holds it.
"""

import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from cryptodudez import cli
from cryptodudez.definitions import build_definitions
from cryptodudez.resources.lake import VALIDATED, Lake
from cryptodudez.settings import PROJECT_DIR, Settings
from tests.helpers import land_and_ingest

SAMPLE = PROJECT_DIR / "samples" / "cryptocurrency_sample.zip"
_HOLD = ("import sys; from cryptodudez.resources.lake import Lake\n"
         "with Lake(uri=sys.argv[1]).publish_lock():\n"
         "    print('held', flush=True); sys.stdin.read()\n")


def _holder(lake_uri: str) -> subprocess.Popen[str]:
    """Another process holding the lake's publish lock until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, lake_uri], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=PROJECT_DIR)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_the_lock_excludes_another_process_and_is_freed_when_it_ends(tmp_path: Path) -> None:
    lake = Lake(uri=str(tmp_path / "lake"))
    holder = _holder(lake.uri)
    try:
        with pytest.raises(TimeoutError, match=r"publish\.lock"), \
                lake.publish_lock(timeout=0.3):
            pass
    finally:
        holder.kill()  # dies without unlocking: the OS frees the lock
        holder.communicate(timeout=30)
    with lake.publish_lock(timeout=30):
        pass


def test_an_ingest_waits_to_publish_while_another_publishes(tmp_path: Path) -> None:
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dh"))
    defs = build_definitions(settings)
    lake: Lake = defs.resources["lake"]
    holder = _holder(lake.uri)
    outcome: dict[str, bool] = {}
    with dg.instance_for_test() as instance:
        def run() -> None:
            result = land_and_ingest(defs, instance, {"c.zip": SAMPLE})["c.zip"]
            outcome["success"] = result.success

        worker = threading.Thread(target=run)
        worker.start()
        try:
            deadline = time.monotonic() + 600
            while not lake.staged(VALIDATED, "crypto_prices", "c.zip"):  # parsing goes on
                assert worker.is_alive() and time.monotonic() < deadline
                time.sleep(0.1)
            time.sleep(1.0)
            assert worker.is_alive()  # ... but publishing waits for the lock
            assert not lake.fragments(VALIDATED, "crypto_prices")
        finally:
            holder.communicate(timeout=30)  # release
        worker.join(timeout=600)
    assert outcome == {"success": True}
    assert lake.fragments(VALIDATED, "crypto_prices")


def test_dagster_home_holds_no_platform_rule(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))  # restored after the test
    home = cli.ensure_dagster_home(Settings(lake=str(tmp_path / "lake"),
                                            dagster_home=str(tmp_path / "dh")))
    assert "concurrency" not in (home / "dagster.yaml").read_text()
