"""Fixtures of the API tests: a lake with a published model, and one headless browser."""

import json
from pathlib import Path

import pytest

from cryptodudez.resources.lake import MODELS, Lake
from cryptodudez.transforms.lookup import LookupModel
from tests.helpers import publish


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(uri=str(tmp_path / "lake"))


@pytest.fixture
def model(lake: Lake) -> LookupModel:
    """Version ``v1`` published in ``lake``, as the API will load it."""
    publish(lake, "v1")
    return LookupModel.from_json(json.loads(lake.read_bytes(
        lake.path(MODELS, "volume_model", "v1", "lookup.json"))))
