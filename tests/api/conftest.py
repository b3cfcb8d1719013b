"""Fixtures of the API tests: a lake with a published model, and one headless browser."""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cryptodudez.resources.lake import MODELS, Lake
from cryptodudez.transforms.lookup import LookupModel
from tests.helpers import publish

# Debian's chromium (apt-get install chromium); Playwright drives it, it never downloads one.
CHROMIUM = Path(os.environ.get("CRYPTODUDEZ_TEST_CHROMIUM", "/usr/lib/chromium/chromium"))


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(uri=str(tmp_path / "lake"))


@pytest.fixture
def model(lake: Lake) -> LookupModel:
    """Version ``v1`` published in ``lake``, as the API will load it."""
    publish(lake, "v1")
    return LookupModel.from_json(json.loads(lake.read_bytes(
        lake.path(MODELS, "volume_model", "v1", "lookup.json"))))


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
