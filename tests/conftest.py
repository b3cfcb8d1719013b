"""Shared fixtures: temporary lakes, Dagster instances, and the real data when present."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from cryptodudez.definitions import build_definitions
from cryptodudez.settings import PROJECT_DIR, Settings
from tests.xdist_guard import refuse_split_group

SHARED_DATA = PROJECT_DIR.parent / "shared" / "data"
SAMPLES = PROJECT_DIR / "samples"


def shared(*parts: str) -> Path:
    """A file of ../shared/data, skipping the test when the folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under ``--dist loadgroup``, a grouped test that lost its group fails (see the pin)."""
    refuse_split_group(item)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a fresh local lake and Dagster home under ``tmp_path``."""
    return Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dagster"))


@pytest.fixture
def defs(settings: Settings) -> dg.Definitions:
    """Definitions wired to the temporary lake."""
    return build_definitions(settings)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A temporary persistent (SQLite) Dagster instance."""
    with dg.instance_for_test() as inst:
        yield inst


# Debian's chromium (apt-get install chromium); Playwright drives it, it never downloads one.
CHROMIUM = Path(os.environ.get("CRYPTODUDEZ_TEST_CHROMIUM", "/usr/lib/chromium/chromium"))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session (skipped when it is not installed)."""
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              timeout=30_000)
        try:
            yield chromium
        finally:
            chromium.close()
