"""What the model store and the signal store share: poll a ``LATEST`` pointer, swap whole.

A subclass says how to read the pointer and load a version; this base keeps the current
version, loads the latest at start, polls every ``poll_seconds`` in a thread (so a slow
read never blocks requests), and keeps the version it has (or none) when the latest cannot
be loaded, saying why in :attr:`PollingStore.problem`. Standard library only: an API worker
never imports Dagster or polars.
"""

import asyncio
import contextlib
import logging
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)
# A version that cannot be read (missing, half-written, malformed) is logged and skipped.
LOAD_ERRORS = (OSError, ValueError, KeyError)


class PollingStore(Generic[T]):
    """Holds ``current`` (a loaded version with a ``version`` attribute) and refreshes it."""

    name = "version"

    def __init__(self, *, poll_seconds: float = 2.0) -> None:
        self.poll_seconds = poll_seconds
        self.current: T | None = None
        self.problem: str | None = None
        """Which latest published version is not served, for clients (None when it is)."""
        self._failure: tuple[str, str] | None = None
        self._task: asyncio.Task[None] | None = None

    def latest_version(self) -> str | None:
        """The version ``LATEST`` points at, or None before any is published."""
        raise NotImplementedError

    def load(self, version: str) -> T:
        """Read one version whole."""
        raise NotImplementedError

    def refresh(self) -> bool:
        """Swap to the latest published version; True when it changed."""
        version = self.latest_version()
        if version is None or (self.current is not None
                               and getattr(self.current, "version", None) == version):
            return False
        self.current = self.load(version)
        log.info("serving %s version %s", self.name, version)
        return True

    def refresh_or_keep(self) -> None:
        """``refresh``, keeping the current version when the latest cannot be loaded.

        Which version failed is :attr:`problem` (the routes' 503 says it when nothing is
        served; the error itself, which may name the lake's paths, only in the log), and the
        log has one line each time the error changes, not a traceback every poll.
        """
        try:
            self.refresh()
        except LOAD_ERRORS as exc:
            problem = (f"the latest {self.name} ({self._latest_or_unknown()}) cannot be "
                       "loaded (the server's log says why)")
            error = f"{type(exc).__name__}: {exc}"
            if (problem, error) != self._failure:
                log.error("%s: %s; keeping %s", problem, error,
                          getattr(self.current, "version", None))
            self.problem, self._failure = problem, (problem, error)
        else:
            self.problem, self._failure = None, None

    def _latest_or_unknown(self) -> str:
        try:
            return self.latest_version() or "none"
        except LOAD_ERRORS:
            return "its pointer unreadable"

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            await asyncio.to_thread(self.refresh_or_keep)

    def start(self) -> None:
        """Load the latest version now and start polling for newer ones.

        A version that cannot be loaded does not stop the API (its other routes serve on):
        until a good version is published, the store holds none and its routes answer 503
        with :attr:`problem`.
        """
        self.refresh_or_keep()
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
