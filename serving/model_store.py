"""The served model: loaded from the lake at start-up, swapped for newer versions live.

A version is published by writing its files and then ``models/volume_model/LATEST``; the
store polls that pointer and swaps its reference to a fully loaded model in one assignment,
so a request holds either the old or the new model, never half of one.

Only light modules are imported here (the lake as plain files, the lookup table), so an
API worker never loads Dagster, polars or scikit-learn.
"""

import json
from dataclasses import dataclass

from cryptodudez.storage import MODELS, LakeStorage
from cryptodudez.transforms.lookup import LookupModel
from serving.polling import PollingStore

MODEL_NAME = "volume_model"


@dataclass(frozen=True)
class ServedModel:
    """A loaded model version."""

    version: str
    model: LookupModel


class ModelStore(PollingStore[ServedModel]):
    """Holds the current model; ``refresh`` loads a newer published version if any."""

    name = MODEL_NAME

    def __init__(self, lake: LakeStorage, *, poll_seconds: float = 2.0) -> None:
        super().__init__(poll_seconds=poll_seconds)
        self.lake = lake

    def latest_version(self) -> str | None:
        """The version ``LATEST`` points at, or None before any model is published."""
        pointer = self.lake.path(MODELS, MODEL_NAME, "LATEST")
        if not self.lake.exists(pointer):
            return None
        return self.lake.read_bytes(pointer).decode().strip() or None

    def load(self, version: str) -> ServedModel:
        """Read one version's lookup table."""
        raw = self.lake.read_bytes(self.lake.path(MODELS, MODEL_NAME, version, "lookup.json"))
        return ServedModel(version, LookupModel.from_json(json.loads(raw)))
