"""The served model: loaded from the lake at start-up, swapped for newer versions live.

A version is published by writing its files and then ``models/volume_model/LATEST``; the
store polls that pointer and swaps its reference to a fully loaded model in one assignment,
so a request holds either the old or the new model, never half of one.

Only light modules are imported here (the lake as plain files, the lookup table), so an
API worker never loads Dagster, polars or scikit-learn.
"""

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

from cryptodudez.storage import MODELS, LakeStorage
from cryptodudez.transforms.lookup import LookupModel

MODEL_NAME = "volume_model"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """A loaded model version."""

    version: str
    model: LookupModel


class ModelStore:
    """Holds the current model; ``refresh`` loads a newer published version if any."""

    def __init__(self, lake: LakeStorage, *, poll_seconds: float = 2.0) -> None:
        self.lake = lake
        self.poll_seconds = poll_seconds
        self.current: ServedModel | None = None
        self._task: asyncio.Task[None] | None = None

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

    def refresh(self) -> bool:
        """Swap to the latest published version; True when the model changed."""
        version = self.latest_version()
        if version is None or (self.current is not None and self.current.version == version):
            return False
        loaded = self.load(version)
        self.current = loaded
        log.info("serving %s version %s", MODEL_NAME, version)
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await asyncio.to_thread(self.refresh)
            except (OSError, ValueError, KeyError):
                log.exception("could not load the latest model; keeping %s",
                              self.current.version if self.current else None)

    def start(self) -> None:
        """Load the latest model now and start polling for newer ones."""
        self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
